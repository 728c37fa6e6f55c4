"""Ingest: every shape kubectl prints, snapshots, idempotence and bad input."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from zonegen import ingest
from zonegen.errors import InvalidInput
from zonegen.ingest import ingest_files, read_items
from zonegen.model import ADDED, DELETED, MODIFIED, SRV, A, Record
from zonegen.runner import ProjectionRunner
from zonegen.store import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store.open("sqlite://")
    yield s
    s.close()


def service(name: str, rv: str = "1", ns: str = "default", cluster_ip: str = "10.96.0.1",
            **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}",
                         "resourceVersion": rv},
            "spec": {"clusterIP": cluster_ip, "ports": [{"name": "http", "port": 80}], **spec}}


def slice_(name: str, svc: str, addresses: list[str], rv: str = "1", ns: str = "default",
           hostname: str | None = None) -> dict[str, Any]:
    eps = [{"addresses": [a], "conditions": {"ready": True},
            **({"hostname": hostname} if hostname else {})} for a in addresses]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}",
                         "resourceVersion": rv,
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "endpoints": eps,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


def write(tmp_path: Path, name: str, content: Any) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def names(store: Store) -> list[tuple[str, str, str]]:
    return [(e.type, e.kind, e.name) for e in store.select_events()]


def records(store: Store) -> frozenset[Record]:
    runner = ProjectionRunner(store)
    runner.catch_up()
    return runner.projection.records()


# ----------------------------------------------------------------- shapes


def items_of(text: str, chunk_size: int = ingest.CHUNK) -> list[tuple[str | None, str]]:
    return [(i.type, i.obj.get("metadata", {}).get("name", i.obj.get("kind")))
            for i in read_items(io.StringIO(text), "input", chunk_size)]


def test_single_object() -> None:
    assert items_of(json.dumps(service("a"))) == [(None, "a")]


def test_typed_list_with_kindless_items_before_kind() -> None:
    items = [{k: v for k, v in service(n).items() if k != "kind"} for n in ("a", "b")]
    text = json.dumps({"items": items, "kind": "ServiceList", "apiVersion": "v1",
                       "metadata": {"resourceVersion": "9"}})
    got = list(read_items(io.StringIO(text), "input"))
    assert [(i.obj["kind"], i.obj["metadata"]["name"]) for i in got[:2]] == [
        ("Service", "a"), ("Service", "b")]
    assert got[2].type == "LIST"


def test_kubectl_list_of_mixed_kinds() -> None:
    text = json.dumps({"apiVersion": "v1", "kind": "List", "metadata": {},
                       "items": [service("a"), slice_("a-1", "a", ["10.0.0.1"])]})
    assert items_of(text) == [(None, "a"), (None, "a-1")]


def test_watch_events_one_per_line_and_concatenated() -> None:
    events = [{"type": "ADDED", "object": service("a")},
              {"type": "BOOKMARK", "object": {"kind": "Service",
                                              "metadata": {"resourceVersion": "5"}}},
              {"type": "MODIFIED", "object": service("a", rv="2")},
              {"type": "DELETED", "object": service("a", rv="3")}]
    per_line = "\n".join(json.dumps(e) for e in events) + "\n"
    concatenated = "".join(json.dumps(e, indent=2) for e in events)
    expected = [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert items_of(per_line) == expected
    assert items_of(concatenated) == expected


def test_concatenated_objects_as_kubectl_get_w_prints_them() -> None:
    text = json.dumps(service("a"), indent=4) + "\n" + json.dumps(service("a", rv="2"), indent=4)
    assert items_of(text) == [(None, "a"), (None, "a")]


def test_yaml_documents_and_yaml_list() -> None:
    docs = yaml.safe_dump_all([service("a"), slice_("a-1", "a", ["10.0.0.1"])])
    assert items_of(docs) == [(None, "a"), (None, "a-1")]
    as_list = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [service("b")]})
    assert items_of(as_list) == [(None, "b")]


def test_json_array() -> None:
    assert items_of(json.dumps([service("a"), service("b")])) == [(None, "a"), (None, "b")]


def test_reader_is_incremental_across_tiny_chunks() -> None:
    """Every chunk boundary (inside strings, numbers, keys) must be survived."""
    items = [service(f"svc-{i}", rv=str(1000 + i)) for i in range(30)]
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {}})
    got = list(read_items(io.StringIO(text), "input", 7))
    assert [i.obj for i in got] == items
    events = "\n".join(json.dumps({"type": "ADDED", "object": o}) for o in items)
    assert [i.obj for i in read_items(io.StringIO(events), "input", 7)] == items


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=5).filter(lambda k: k not in ("items", "object")),
                       _json_values, max_size=4),
       st.integers(min_value=1, max_value=9), st.sampled_from([None, 1]),
       st.integers(min_value=0, max_value=3))
def test_reader_equals_json_loads_at_any_chunk_size(
        doc: dict[str, Any], chunk: int, indent: int | None, lead: int) -> None:
    """Top-level values (numbers too) cut anywhere by a chunk boundary; leading blank
    lines longer than a chunk."""
    text = "\n" * lead + json.dumps(doc, indent=indent)
    got = list(read_items(io.StringIO(text), "input", chunk))
    assert [i.obj for i in got] == [json.loads(text)]


class _Pieces(io.StringIO):
    """A stream that returns exactly the given pieces, one per read."""

    def __init__(self, *pieces: str) -> None:
        super().__init__()
        self.pieces = list(pieces)

    def read(self, size: int | None = -1, /) -> str:
        return self.pieces.pop(0) if self.pieces else ""


@pytest.mark.parametrize("number", ["0.5", "1e5", "1E-5", "-2.25e+3"])
def test_top_level_number_cut_inside_fraction_or_exponent(number: str) -> None:
    text = '{"kind": "Service", "x": ' + number + "}"
    for cut in range(1, len(text)):
        got = list(read_items(_Pieces(text[:cut], text[cut:]), "input"))
        assert [i.obj for i in got] == [json.loads(text)], cut


def test_input_starting_with_more_whitespace_than_a_chunk() -> None:
    assert items_of("\n" * 10 + json.dumps(service("a")), 4) == [(None, "a")]
    assert items_of("   \n" * 3 + yaml.safe_dump(service("b")), 4) == [(None, "b")]


@pytest.mark.parametrize(("text", "message"), [
    ('{"kind": "Service", "metadata": {"name": "a"', "truncated"),
    ('{"kind": "List", "items": [{"kind": "Service"}, {"kin', "truncated"),
    ('{"kind": "Service",, }', "malformed JSON"),
    ('{"type": "ADDED", "object": {"kind": "Service"}}\n{"type": "ADD', "truncated"),
    ("kind: Service\nmetadata: [unclosed\n", "malformed YAML"),
    ("42", "not a Kubernetes object"),
    ('{"type": "SOMETHING", "object": {}}', "SOMETHING"),
])
def test_malformed_input_names_the_file(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        list(read_items(io.StringIO(text), "bad.json"))
    assert "bad.json" in str(info.value)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------- storing


def test_ingest_list_then_reingest_adds_nothing(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "all.json", {"kind": "List", "items": [
        service("a"), slice_("a-1", "a", ["10.0.0.1"])]})
    first = ingest_files(store, [path], when=T0)
    assert (first.new_events, first.duplicates) == (2, 0)
    assert names(store) == [(ADDED, "Service", "a"), (ADDED, "EndpointSlice", "a-1")]
    serial = first.serial
    again = ingest_files(store, [path], when=T0)
    assert (again.new_events, again.duplicates) == (0, 2)
    assert again.serial == serial
    assert again.summary() == f"0 new events; 2 duplicates skipped; serial {serial}"


def test_changed_object_becomes_modified(store: Store, tmp_path: Path) -> None:
    ingest_files(store, [write(tmp_path, "1.json", service("a"))], when=T0)
    ingest_files(store, [write(tmp_path, "2.json", service("a", rv="2",
                                                           cluster_ip="10.96.0.9"))], when=T0)
    assert names(store) == [(ADDED, "Service", "a"), (MODIFIED, "Service", "a")]
    assert Record("a.default.svc", A, ("10.96.0.9",)) in records(store)


def test_recreated_object_with_new_uid_is_deleted_then_added(store: Store,
                                                             tmp_path: Path) -> None:
    ingest_files(store, [write(tmp_path, "1.json", service("a"))], when=T0)
    again = service("a", rv="7")
    again["metadata"]["uid"] = "uid-new"
    ingest_files(store, [write(tmp_path, "2.json", again)], when=T0)
    assert [(e.type, e.uid) for e in store.select_events()] == [
        (ADDED, "uid-default-a"), (DELETED, "uid-default-a"), (ADDED, "uid-new")]


def test_watch_stream_is_stored_with_its_types(store: Store, tmp_path: Path) -> None:
    events = [{"type": "ADDED", "object": service("a")},
              {"type": "MODIFIED", "object": service("a", rv="2", cluster_ip="10.96.0.2")},
              {"type": "DELETED", "object": service("a", rv="3", cluster_ip="10.96.0.2")}]
    path = write(tmp_path, "w.json", "\n".join(json.dumps(e) for e in events))
    report = ingest_files(store, [path], when=T0)
    assert report.new_events == 3
    assert names(store) == [(ADDED, "Service", "a"), (MODIFIED, "Service", "a"),
                            (DELETED, "Service", "a")]
    assert not [r for r in records(store) if r.owner.endswith("default.svc")]
    assert ingest_files(store, [path], when=T0).new_events == 0


def test_snapshot_deletes_what_vanished(store: Store, tmp_path: Path) -> None:
    both = write(tmp_path, "both.json", {"kind": "List", "items": [
        service("a"), service("b"), slice_("a-1", "a", ["10.0.0.1"])]})
    ingest_files(store, [both], snapshot=True, when=T0)
    only_a = write(tmp_path, "a.json", {"kind": "ServiceList", "items": [service("a")]})
    report = ingest_files(store, [only_a], snapshot=True, when=T0)
    assert report.deleted_by_snapshot == 1
    # The EndpointSlice kind was not in this snapshot: it is left alone.
    assert names(store)[-1] == (DELETED, "Service", "b")
    assert store.heads()[("EndpointSlice", "default", "a-1")].deleted is False
    deleted = store.select_events()[-1]
    assert json.loads(deleted.object_json)["metadata"]["name"] == "b"
    # Repeating the snapshot changes nothing.
    assert ingest_files(store, [only_a], snapshot=True, when=T0).new_events == 0


def test_empty_typed_list_snapshot_deletes_every_object_of_that_kind(
        store: Store, tmp_path: Path) -> None:
    ingest_files(store, [write(tmp_path, "a.json", {"kind": "List", "items": [
        service("a"), service("b")]})], when=T0)
    report = ingest_files(store, [write(tmp_path, "e.json", {"kind": "ServiceList",
                                                            "items": []})],
                          snapshot=True, when=T0)
    assert report.deleted_by_snapshot == 2


def test_without_snapshot_nothing_is_deleted(store: Store, tmp_path: Path) -> None:
    ingest_files(store, [write(tmp_path, "a.json", {"kind": "List", "items": [
        service("a"), service("b")]})], when=T0)
    ingest_files(store, [write(tmp_path, "b.json", service("a"))], when=T0)
    assert all(e.type == ADDED for e in store.select_events())


def test_other_kinds_are_counted_and_skipped(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "mixed.json", {"kind": "List", "items": [
        service("a"), {"kind": "ConfigMap", "metadata": {"name": "x", "uid": "u"}},
        {"kind": "Pod", "metadata": {"name": "p", "uid": "u2"}},
        {"kind": "Pod", "metadata": {"name": "q", "uid": "u3"}}]})
    report = ingest_files(store, [path], when=T0)
    assert report.new_events == 1
    assert report.skipped_kinds == {"ConfigMap": 1, "Pod": 2}
    assert "skipped other kinds: 1 ConfigMap, 2 Pod" in report.summary()


def test_managed_fields_are_stripped(store: Store, tmp_path: Path) -> None:
    obj = service("a")
    obj["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    obj["metadata"]["labels"] = {"app": "a"}
    ingest_files(store, [write(tmp_path, "a.json", obj)], when=T0)
    stored = json.loads(store.select_events()[0].object_json)
    assert "managedFields" not in stored["metadata"]
    assert stored["metadata"]["labels"] == {"app": "a"}


def test_stdin(store: Store) -> None:
    report = ingest_files(store, ["-"], stdin=io.StringIO(json.dumps(service("a"))), when=T0)
    assert report.new_events == 1


def test_hand_made_objects_without_resource_version_are_idempotent(
        store: Store, tmp_path: Path) -> None:
    obj = service("a")
    del obj["metadata"]["resourceVersion"]
    path = write(tmp_path, "a.json", obj)
    assert ingest_files(store, [path], when=T0).new_events == 1
    assert ingest_files(store, [path], when=T0).new_events == 0
    obj["spec"]["clusterIP"] = "10.96.0.77"
    assert ingest_files(store, [write(tmp_path, "b.json", obj)], when=T0).new_events == 1
    assert store.select_events()[-1].type == MODIFIED


# ----------------------------------------------------------------- bad input


def test_missing_file(store: Store, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"nope\.json: does not exist"):
        ingest_files(store, [str(tmp_path / "nope.json")])


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000,
                                  '{"a":' * 100_000 + "1" + "}" * 100_000],
                         ids=["arrays", "objects"])
def test_json_nested_100000_deep_is_one_line(store: Store, tmp_path: Path,
                                             text: str) -> None:
    """Was a RecursionError traceback from the JSON decoder."""
    path = write(tmp_path, "deep.json", text)
    with pytest.raises(InvalidInput, match=r"^.*deep\.json: nested too deeply to read$"):
        ingest_files(store, [path])
    assert store.select_events() == []


def test_reads_a_fifo_and_a_pipe_like_files(store: Store, tmp_path: Path) -> None:
    """A FIFO and /dev/fd/N (what ``<(kubectl get ...)`` passes) were "does not exist"."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "w", encoding="utf-8") as w:
            w.write(json.dumps(service("a")))

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    ingest_files(store, [str(fifo)], when=T0, project=False)
    writer.join(10)
    r, w = os.pipe()
    os.write(w, json.dumps(service("b")).encode())
    os.close(w)
    try:
        ingest_files(store, [f"/dev/fd/{r}"], when=T0, project=False)
    finally:
        os.close(r)
    assert names(store) == [("ADDED", "Service", "a"), ("ADDED", "Service", "b")]


def test_cli_reads_dev_stdin(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "cli.py", "--db", f"sqlite:///{tmp_path / 'z.db'}", "ingest",
         "/dev/stdin", "--no-project"],
        input=json.dumps(service("a")), cwd=root, capture_output=True, text=True,
        timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1 new events")


def test_record_warning_is_reported_once(store: Store, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """A negative port was reported by ingest and again by the projector."""
    svc = service("a", ports=[{"name": "http", "port": -5}])
    with caplog.at_level(logging.WARNING, logger="zonegen"):
        ingest_files(store, [write(tmp_path, "a.json", svc)], when=T0)
    assert [r.getMessage() for r in caplog.records if "-5" in r.getMessage()] == [
        "Service default/a: port http has invalid number -5; it gives no SRV record"]


def test_truncated_stream_stores_nothing(store: Store, tmp_path: Path) -> None:
    good = write(tmp_path, "good.json", service("keep"))
    ingest_files(store, [good], when=T0)
    lines = "\n".join(json.dumps({"type": "ADDED", "object": service(f"s{i}")})
                      for i in range(5))
    bad = write(tmp_path, "bad.json", lines[:-30])
    with pytest.raises(InvalidInput, match="bad.json"):
        ingest_files(store, [bad], snapshot=True)
    # Nothing from the broken input, and nothing already stored was lost.
    assert names(store) == [(ADDED, "Service", "keep")]


def test_not_utf8(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "bin.json"
    path.write_bytes(b"\xff\xfe\x00{garbage")
    with pytest.raises(InvalidInput, match="bin.json: not UTF-8"):
        ingest_files(store, [str(path)])


@pytest.mark.parametrize(("obj", "message"), [
    ({"kind": "Service", "metadata": {"uid": "u"}, "spec": {}}, "metadata.name is missing"),
    ({"kind": "Service", "metadata": {"name": "x"}, "spec": {}}, "metadata.uid is missing"),
    ({"kind": "Service"}, "no metadata"),
    ({"kind": "EndpointSlice", "metadata": {"name": "x", "uid": "u"}, "addressType": "IPX"},
     "addressType"),
    ({"kind": "Service", "metadata": {"name": "x", "uid": "u"}, "spec": {"ports": 7}},
     "spec.ports is not a list"),
])
def test_invalid_objects_are_skipped_with_a_warning_naming_them(
        store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        obj: dict[str, Any], message: str) -> None:
    path = write(tmp_path, "odd.json", {"kind": "List", "items": [obj, service("fine")]})
    with caplog.at_level(logging.WARNING, logger="zonegen"):
        report = ingest_files(store, [path], when=T0)
    assert report.invalid == 1
    assert report.new_events == 1
    assert any(message in r.getMessage() and "odd.json" in r.getMessage()
               for r in caplog.records)


def test_service_with_invalid_port_keeps_its_other_records(
        store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    svc = service("a", ports=[{"name": "http", "port": 80}, {"name": "bad", "port": 70000},
                              {"name": "worse", "port": "eighty"}])
    with caplog.at_level(logging.WARNING, logger="zonegen"):
        ingest_files(store, [write(tmp_path, "a.json", svc)], when=T0)
    assert any("invalid number 70000" in r.getMessage() for r in caplog.records)
    got = {r for r in records(store) if r.owner.endswith("a.default.svc")}
    assert got == {
        Record("a.default.svc", A, ("10.96.0.1",)),
        Record("a.default.svc", SRV, (0, 33, 80, "a.default.svc")),
        Record("_http._tcp.a.default.svc", SRV, (0, 100, 80, "a.default.svc")),
    }


def test_slice_pointing_at_no_service_publishes_nothing_until_it_appears(
        store: Store, tmp_path: Path) -> None:
    ingest_files(store, [write(tmp_path, "s.json", slice_("x-1", "x", ["10.0.0.9"]))],
                 when=T0)
    assert not [r for r in records(store) if "x.default" in r.owner]
    ingest_files(store, [write(tmp_path, "x.json", service("x", cluster_ip="None"))],
                 when=T0)
    assert Record("x.default.svc", A, ("10.0.0.9",)) in records(store)


def test_invalid_hostname_falls_back_to_the_dashed_address(
        store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    objs = [service("h", cluster_ip="None"),
            slice_("h-1", "h", ["10.0.0.5"], hostname="Not_Valid!")]
    with caplog.at_level(logging.WARNING, logger="zonegen"):
        ingest_files(store, [write(tmp_path, "h.json", {"kind": "List", "items": objs})],
                     when=T0)
    assert Record("10-0-0-5.h.default.svc", A, ("10.0.0.5",)) in records(store)
    assert any("Not_Valid!" in r.getMessage() or "not_valid!" in r.getMessage()
               for r in caplog.records)


def test_label_over_63_octets_is_skipped(store: Store, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    long_port = "p" * 63  # "_" + 63 characters is a 64-octet label
    svc = service("l", ports=[{"name": long_port, "port": 81}, {"name": "ok", "port": 82}])
    with caplog.at_level(logging.WARNING, logger="zonegen"):
        ingest_files(store, [write(tmp_path, "l.json", svc)], when=T0)
    owners = {r.owner for r in records(store)}
    assert "_ok._tcp.l.default.svc" in owners
    assert not [o for o in owners if long_port in o]
    assert any("Service default/l" in r.getMessage() for r in caplog.records)


def test_yaml_timestamps_and_binary_values(store: Store, tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """Unquoted YAML timestamps stay strings (they used to become datetimes and crash the
    JSON encoding with a traceback); values JSON cannot hold skip the object, one line."""
    text = ("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  namespace: default\n"
            "  uid: u1\n  resourceVersion: '1'\n  creationTimestamp: 2024-01-01T00:00:00Z\n"
            "spec:\n  clusterIP: 10.96.0.1\n---\n"
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: b\n  uid: u2\n"
            "  annotations:\n    blob: !!binary aGVsbG8=\nspec:\n  clusterIP: 10.96.0.2\n")
    report = ingest_files(store, [write(tmp_path, "a.yaml", text)], when=T0)
    assert (report.new_events, report.invalid) == (1, 1)
    stored = json.loads(store.select_events()[0].object_json)
    assert stored["metadata"]["creationTimestamp"] == "2024-01-01T00:00:00Z"
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "a.yaml document 2" in warning
    assert "\n" not in warning


def test_snapshot_keeps_an_object_it_holds_in_an_unreadable_form(
        store: Store, tmp_path: Path) -> None:
    """An object present in the snapshot but rejected by the reducer exists: skipped with
    a warning, not recorded as deleted (the watcher's relist does the same)."""
    ingest_files(store, [write(tmp_path, "1.json", {"kind": "List", "items": [
        service("a"), service("b")]})], when=T0)
    bad = service("b", rv="2")
    bad["spec"]["clusterIPs"] = "not a list"
    report = ingest_files(store, [write(tmp_path, "2.json", {"kind": "ServiceList", "items": [
        service("a"), bad]})], snapshot=True, when=T0)
    assert (report.invalid, report.deleted_by_snapshot) == (1, 0)
    assert [t for t, _, _ in names(store)] == [ADDED, ADDED]


def test_recreation_within_one_input_deletes_the_stored_object(
        store: Store, tmp_path: Path) -> None:
    """The DELETED event of an object created earlier in the same input carries that
    object (it used to carry '{}': its head had no sequence number yet)."""
    again = service("a", rv="7", cluster_ip="10.96.0.7")
    again["metadata"]["uid"] = "uid-new"
    text = json.dumps(service("a")) + "\n" + json.dumps(again)
    ingest_files(store, [write(tmp_path, "a.json", text)], when=T0)
    events = store.select_events()
    assert [(e.type, e.uid) for e in events] == [
        (ADDED, "uid-default-a"), (DELETED, "uid-default-a"), (ADDED, "uid-new")]
    assert events[1].object() == service("a")


def test_reingesting_old_files_never_rolls_back(store: Store, tmp_path: Path) -> None:
    files = [write(tmp_path, f"v{i}.json", {"kind": "List", "items": [
        service("a", rv=str(10 * i), cluster_ip=f"10.96.0.{i}")]}) for i in (1, 2, 3)]
    for i, path in enumerate(files):
        ingest_files(store, [path], when=T0.replace(hour=i))
    before = store.select_events()
    report = ingest_files(store, files[:2], when=T0.replace(hour=5))
    assert (report.new_events, report.stale) == (0, 2)
    assert "2 older versions skipped" in report.summary()
    assert store.select_events() == before
    assert Record("a.default.svc", A, ("10.96.0.3",)) in records(store)


def test_reingesting_a_file_from_before_a_recreate_keeps_the_new_object(
        store: Store, tmp_path: Path) -> None:
    old = write(tmp_path, "old.json", service("a", rv="1"))
    ingest_files(store, [old], when=T0)
    recreated = service("a", rv="5", cluster_ip="10.96.0.5")
    recreated["metadata"]["uid"] = "uid-second"
    ingest_files(store, [write(tmp_path, "new.json", recreated)], when=T0)
    before = store.select_events()
    assert ingest_files(store, [old], snapshot=True, when=T0).new_events == 0
    assert store.select_events() == before
    assert store.heads()[("Service", "default", "a")].uid == "uid-second"


def test_hand_made_objects_may_return_to_earlier_content(store: Store,
                                                         tmp_path: Path) -> None:
    obj = service("a")
    del obj["metadata"]["resourceVersion"]
    first = write(tmp_path, "1.json", obj)
    ingest_files(store, [first], when=T0)
    obj["spec"]["clusterIP"] = "10.96.0.9"
    ingest_files(store, [write(tmp_path, "2.json", obj)], when=T0)
    assert ingest_files(store, [first], when=T0).new_events == 1
    assert Record("a.default.svc", A, ("10.96.0.1",)) in records(store)


def test_items_that_are_not_a_list_are_refused(store: Store, tmp_path: Path) -> None:
    ingest_files(store, [write(tmp_path, "a.json", service("a"))], when=T0)
    bad = write(tmp_path, "bad.json", '{"kind": "ServiceList", "items": "x"}')
    with pytest.raises(InvalidInput, match="items is not a list"):
        ingest_files(store, [bad], snapshot=True, when=T0)
    assert [e.type for e in store.select_events()] == [ADDED]


def test_watch_streams_are_checked_against_the_log(store: Store, tmp_path: Path) -> None:
    first = [{"type": "ADDED", "object": service("a")},
             {"type": "MODIFIED", "object": service("a", rv="2", cluster_ip="10.96.0.2")}]
    ingest_files(store, [write(tmp_path, "w1.json",
                               "\n".join(json.dumps(e) for e in first))], when=T0)
    # A new `kubectl get -w` session starts by listing what exists as ADDED.
    recreated = service("a", rv="9", cluster_ip="10.96.0.9")
    recreated["metadata"]["uid"] = "uid-second"
    second = [{"type": "ADDED", "object": service("a", rv="2", cluster_ip="10.96.0.2")},
              {"type": "ADDED", "object": recreated}]
    report = ingest_files(store, [write(tmp_path, "w2.json",
                                        "\n".join(json.dumps(e) for e in second))], when=T0)
    assert (report.new_events, report.duplicates) == (2, 1)
    assert [(e.type, e.uid, e.resource_version) for e in store.select_events()] == [
        (ADDED, "uid-default-a", "1"), (MODIFIED, "uid-default-a", "2"),
        (DELETED, "uid-default-a", "2"), (ADDED, "uid-second", "9")]


# --------------------------------------------------------------------------- MCS kinds


def test_service_import_and_export_lists_are_read(store: Store, tmp_path: Path) -> None:
    """kubectl get serviceimports,serviceexports -o json: kind-less items of typed lists,
    stored as their kind; a --snapshot of imports deletes a vanished one."""
    imports = {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImportList",
               "items": [{"apiVersion": "multicluster.x-k8s.io/v1beta1",
                          "metadata": {"name": "db", "namespace": "shop", "uid": "u-i",
                                       "resourceVersion": "3"},
                          "spec": {"type": "Headless"}}]}
    exports = {"kind": "ServiceExportList", "items": [
        {"metadata": {"name": "db", "namespace": "shop", "uid": "u-e",
                      "resourceVersion": "4"}}]}
    report = ingest_files(store, [write(tmp_path, "i.json", imports),
                                  write(tmp_path, "e.json", exports)], project=False)
    assert (report.new_events, report.skipped_kinds, report.invalid) == (2, {}, 0)
    assert names(store) == [(ADDED, "ServiceImport", "db"), (ADDED, "ServiceExport", "db")]
    assert [(e.source, e.origin) for e in store.select_events()] == [("default", "ingest")] * 2
    imports["items"] = []
    ingest_files(store, [write(tmp_path, "i.json", imports)], snapshot=True, project=False)
    assert names(store)[-1] == (DELETED, "ServiceImport", "db")
    assert len(names(store)) == 3
