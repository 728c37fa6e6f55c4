"""Operating zonegen (#10): a running watch's /metrics and /readyz against the fake API
server, JSON log lines of real processes, and the ``--json`` summaries.

Watches run as real processes (``python cli.py … watch --metrics-listen 127.0.0.1:0``)
whose "watch started" log line names the bound port, or in process with their own
:class:`Metrics` and :class:`Readiness`. Every wait polls a condition until a generous
deadline; no wall-clock threshold is asserted.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cli_process import cli_logging_to, run_cli
from tests.helpers import DEADLINE, cli, http_get, wait_for, zonegen
from tests.kubeapi import ENDPOINTSLICES, SERVICES, FakeKubeAPI, endpoint_slice, service
from tests.test_metrics import PER_SOURCE
from zonegen.health import MetricsServer, Readiness
from zonegen.metrics import Metrics
from zonegen.store import Store
from zonegen.watch import Watcher, WatchOptions, connect

DATA = Path(__file__).parent / "data"

Sample = tuple[str, tuple[tuple[str, str], ...]]


# --------------------------------------------------------------------------- helpers


def get(port: int, path: str) -> tuple[int, str]:
    return http_get(port, path, "127.0.0.1")


def scrape(port: int) -> dict[Sample, float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    status, text = get(port, "/metrics")
    assert status == 200
    samples: dict[Sample, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(port: int, name: str, **labels: str) -> float | None:
    if name in PER_SOURCE:  # one cluster: the default source
        labels.setdefault("source", "default")
    return scrape(port).get((name, tuple(sorted(labels.items()))))


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON log, each parsed (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def add_service(kube: FakeKubeAPI, name: str, addresses: list[str]) -> None:
    kube.add(SERVICES, service(name))
    kube.add(ENDPOINTSLICES, endpoint_slice(name, addresses))


def watch_process(db: Path, kubeconfig: Path, log: Path,
                  *extra: str) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """``zonegen --log-format json watch --metrics-listen 127.0.0.1:0 EXTRA`` logging to
    ``log``, its stdout piped (the summary), killed at the end of the ``with``."""
    return cli_logging_to(log, f"sqlite:///{db}", "--log-format", "json", "watch",
                          "--kubeconfig", str(kubeconfig), "--metrics-listen",
                          "127.0.0.1:0", *extra, stdout=subprocess.PIPE)


def metrics_port(log: Path, proc: subprocess.Popen[bytes]) -> int:
    """The port a ``--metrics-listen 127.0.0.1:0`` watch bound, from its start line."""
    def started() -> dict[str, Any] | None:
        if proc.poll() is not None:
            pytest.fail(f"watch exited {proc.returncode}: {log.read_text()}")
        text = log.read_text()
        for line in text.splitlines():
            obj: dict[str, Any] = json.loads(line)
            if obj["message"].startswith("watch started"):
                return obj
        return None

    line: dict[str, Any] = wait_for(started, "the watch started line")
    host, port = line["metrics"].rsplit(":", 1)
    assert host == "127.0.0.1"
    return int(port)


# --------------------------------------------------------------------------- a running watch


def test_watch_readiness_and_metrics_follow_the_cluster(
        kube: FakeKubeAPI, kubeconfig: Path, tmp_path: Path) -> None:
    add_service(kube, "db", ["10.0.0.1"])
    kube.hold(ENDPOINTSLICES)
    log = tmp_path / "watch.log"
    db = tmp_path / "z.db"
    try:
        with watch_process(db, kubeconfig, log) as proc:
            port = metrics_port(log, proc)
            assert get(port, "/healthz") == (200, "ok\n")
            # The Service list arrived, but the initial sync lands as one transaction:
            # neither kind is stored while the EndpointSlice list is held.
            wait_for(lambda: kube.lists("services"), "the Service list")
            assert get(port, "/readyz") == (503, (
                "watch: initial list of Service not stored\n"
                "watch: initial list of EndpointSlice not stored\n"))
            assert value(port, "zonegen_watch_synced", kind="EndpointSlice") == 0
            assert value(port, "zonegen_watch_synced", kind="Service") == 0
            kube.release(ENDPOINTSLICES)
            wait_for(lambda: get(port, "/readyz") == (200, "ok\n"), "ready")
            samples = scrape(port)
            assert {k: v for k, v in samples.items()
                    if k[0] in ("zonegen_events_stored_total", "zonegen_watch_synced",
                                "zonegen_watch_reconnects_total")} == {
                ("zonegen_events_stored_total",
                 (("kind", "Service"), ("source", "default"), ("type", "ADDED"))): 1.0,
                ("zonegen_events_stored_total",
                 (("kind", "EndpointSlice"), ("source", "default"), ("type", "ADDED"))): 1.0,
                ("zonegen_watch_synced", (("kind", "Service"), ("source", "default"))): 1.0,
                ("zonegen_watch_synced", (("kind", "EndpointSlice"), ("source", "default"))): 1.0,
                ("zonegen_watch_reconnects_total",
                 (("kind", "Service"), ("source", "default"))): 0.0,
                ("zonegen_watch_reconnects_total",
                 (("kind", "EndpointSlice"), ("source", "default"))): 0.0,
            }

            # A change moves the stored count by exactly one, and the last-event time.
            wait_for(lambda: kube.watches("services") and kube.watches("endpointslices"),
                     "both watches")
            assert value(port, "zonegen_watch_last_event_timestamp_seconds",
                         kind="Service") is None
            kube.modify(SERVICES, "default", "db",
                        lambda o: o["spec"].update(clusterIP="10.96.0.99",
                                                   clusterIPs=["10.96.0.99"]))
            wait_for(lambda: value(port, "zonegen_events_stored_total", kind="Service",
                                   type="MODIFIED") == 1, "the MODIFIED event counted")
            seen = value(port, "zonegen_watch_last_event_timestamp_seconds", kind="Service")
            stored = Store.open(f"sqlite:///{db}")
            try:
                modified = [e for e in stored.select_events() if e.type == "MODIFIED"]
            finally:
                stored.close()
            assert len(modified) == 1
            # Both stamped from the same clock reading path: the event's arrival time.
            assert seen is not None
            assert abs(seen - modified[0].received_at.timestamp()) < 1.0
            assert value(port, "zonegen_events_stored_total", kind="Service",
                         type="ADDED") == 1
            # Two versions (the initial sync, the change), each event observed once from
            # its arrival to the version that published it.
            wait_for(lambda: value(port, "zonegen_zone_versions_total") == 2,
                     "the second version counted")
            assert value(port, "zonegen_event_to_version_seconds_count") == 3

            # The fake server drops every watch: each kind reconnects exactly once.
            kube.drop_watches()
            for kind in ("Service", "EndpointSlice"):
                wait_for(lambda k=kind: value(port, "zonegen_watch_reconnects_total",
                                              kind=k) == 1, f"the {kind} reconnect")
            wait_for(lambda: len(kube.watches("services")) >= 2, "the Service watch back")
            assert get(port, "/readyz") == (200, "ok\n")

            # RBAC takes the watch of EndpointSlices away: not ready, naming it.
            kube.forbid(ENDPOINTSLICES, "watch")
            kube.drop_watches()
            wait_for(lambda: get(port, "/readyz")[0] == 503, "not ready after the 403")
            assert get(port, "/readyz") == (
                503, "watch: API server refused watch endpointslices (403)\n")
            assert value(port, "zonegen_watch_synced", kind="EndpointSlice") == 0
            assert value(port, "zonegen_watch_synced", kind="Service") == 1
            with kube.cond:
                kube.forbidden.clear()
            wait_for(lambda: get(port, "/readyz") == (200, "ok\n"), "ready again")
            assert value(port, "zonegen_watch_synced", kind="EndpointSlice") == 1
            proc.terminate()
            out, _ = proc.communicate(timeout=DEADLINE)
            assert proc.returncode == 0, log.read_text()
    finally:
        kube.release(ENDPOINTSLICES)
    lines = json_lines(log)
    assert out.decode().startswith("3 events stored")
    for obj in lines:
        assert {"time", "level", "logger", "message"} <= obj.keys()
    started = next(o for o in lines if o["message"].startswith("watch started"))
    assert started["api_server"] == kube.url
    assert started["kinds"] == ["Service", "EndpointSlice"]
    assert started["namespaces"] == ["*"]
    assert started["database"] == str(db)
    synced = {o["kind"]: o for o in lines if o.get("relist") is False}
    assert {k: (o["objects"], o["changes"]) for k, o in synced.items()} == {
        "Service": (1, 1), "EndpointSlice": (1, 1)}
    serials = [o for o in lines if o["message"].startswith("new serial")]
    assert serials
    assert all(isinstance(o["serial"], int) for o in serials)
    refused = [o for o in lines if o.get("status") == 403]
    assert refused
    assert all(o["level"] == "error" and o["kind"] == "EndpointSlice"
                           for o in refused)
    dropped = [o for o in lines if o["level"] == "warning"]
    assert {o["kind"] for o in dropped} >= {"Service", "EndpointSlice"}
    # Nothing per event at the default level: no line names the MODIFIED Service.
    assert not [o for o in lines if o["level"] == "debug"]


def test_a_refused_list_holds_readiness_naming_the_resource(
        kube: FakeKubeAPI, kubeconfig: Path, tmp_path: Path) -> None:
    """In process, with the watcher's own Metrics and Readiness (nothing process-wide)."""
    add_service(kube, "db", ["10.0.0.1"])
    kube.forbid(ENDPOINTSLICES, "list")
    metrics, readiness = Metrics(), Readiness()
    store = Store.open(f"sqlite:///{tmp_path / 'r.db'}")
    cluster = connect(str(kubeconfig))
    stop = threading.Event()
    watcher = Watcher(store, cluster, WatchOptions(backoff_initial=0.05, backoff_max=0.2,
                                                   project=False),
                      metrics=metrics, readiness=readiness)
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    try:
        with MetricsServer("127.0.0.1", 0, metrics, readiness) as server:
            thread.start()
            wait_for(lambda: len(readiness.reasons()) == 3, "the refusal held")
            assert get(server.port, "/readyz") == (503, (
                "watch: initial list of Service not stored\n"
                "watch: initial list of EndpointSlice not stored\n"
                "watch: API server refused list endpointslices (403)\n"))
            assert value(server.port, "zonegen_watch_synced", kind="EndpointSlice") == 0
            with kube.cond:
                kube.forbidden.clear()
            wait_for(lambda: readiness.ready, "ready once the list is allowed")
            assert get(server.port, "/readyz") == (200, "ok\n")
            assert value(server.port, "zonegen_events_stored_total", kind="EndpointSlice",
                         type="ADDED") == 1
            assert value(server.port, "zonegen_watch_synced", kind="EndpointSlice") == 1
            assert watcher.synced == {"Service": True, "EndpointSlice": True}
    finally:
        stop.set()
        thread.join(DEADLINE)
        cluster.close()
        store.close()


def test_a_resumed_watch_is_ready_before_any_list(
        kube: FakeKubeAPI, kubeconfig: Path, tmp_path: Path) -> None:
    """A restart with stored resume points has its lists stored already: ready at once,
    even while the API server holds new lists."""
    add_service(kube, "db", ["10.0.0.1"])
    db = f"sqlite:///{tmp_path / 'resume.db'}"
    assert run_cli(db, "watch", "--kubeconfig", str(kubeconfig), "--once").returncode == 0
    kube.hold(SERVICES)
    kube.hold(ENDPOINTSLICES)
    metrics, readiness = Metrics(), Readiness()
    store = Store.open(db)
    cluster = connect(str(kubeconfig))
    stop = threading.Event()
    watcher = Watcher(store, cluster, WatchOptions(project=False), metrics=metrics,
                      readiness=readiness)
    assert not readiness.ready  # nothing known before run() reads the resume points
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    try:
        thread.start()
        wait_for(lambda: readiness.ready, "ready from the stored resume points")
        assert metrics.watch_synced_gauge.labels("default", "Service")._value.get() == 1
    finally:
        stop.set()
        kube.release(SERVICES)
        kube.release(ENDPOINTSLICES)
        thread.join(DEADLINE)
        cluster.close()
        store.close()


# --------------------------------------------------------------------------- logs


def test_watch_once_json_log_lines_carry_fields(kube: FakeKubeAPI, kubeconfig: Path,
                                                tmp_path: Path) -> None:
    add_service(kube, "db", ["10.0.0.1", "10.0.0.2"])
    db = f"sqlite:///{tmp_path / 'j.db'}"
    done = run_cli(db, "-v", "--log-format", "json", "watch", "--kubeconfig",
                   str(kubeconfig), "--once")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert lines
    for obj in lines:
        assert {"time", "level", "message"} <= obj.keys()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", obj["time"])
    synced = {o["kind"]: (o["objects"], o["changes"]) for o in lines
              if o["message"].split(":")[0].endswith(" synced")}
    assert synced == {"Service": (1, 1), "EndpointSlice": (1, 1)}
    [serial] = [o for o in lines if o["message"].startswith("new serial")]
    # Said in the order it happened: both lists stored, then the serial they make.
    assert [o["message"].split(":")[0] for o in lines
            if o["message"].split(":")[0].endswith(" synced") or o is serial] == [
        "EndpointSlice synced", "Service synced", f"new serial {serial['serial']}"]
    store = Store.open(db)
    try:
        version = store.latest_version()
    finally:
        store.close()
    assert version is not None
    assert (serial["serial"], serial["version"], serial["last_event_seq"]) == (
        version.serial, version.version_id, 2)
    assert done.stdout.startswith(f"2 events stored (0 already known, 0 malformed "
                                  f"skipped) in 1 commits; 2 lists, 0 reconnects; 1 zone "
                                  f"versions; serial {version.serial}")


def test_log_format_from_the_environment_and_text_lines(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "List", "items": [
        {"kind": "Service", "apiVersion": "v1", "metadata": {"name": "x"}}]}))
    as_json = zonegen(["ingest", str(bad)], db=db, env={"ZONEGEN_LOG_FORMAT": "json"})
    assert as_json.returncode == 0, as_json.stderr
    [line] = [json.loads(x) for x in as_json.stderr.splitlines()]
    assert line["level"] == "warning"
    assert line["message"].startswith(f"{bad}")
    as_text = zonegen(["--log-format", "text", "ingest", str(bad)], db=tmp_path / "t.db")
    [text] = as_text.stderr.splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z zonegen: warning: "
                        + re.escape(line["message"]), text)
    wrong = zonegen(["--log-format", "xml", "ingest", str(bad)], db=db)
    assert wrong.returncode == 2
    assert "'xml' is not one of 'text', 'json'" in wrong.stderr


# --------------------------------------------------------------------------- --json


def _numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", text)]


def test_json_summaries_carry_the_numbers_of_the_text_lines(tmp_path: Path) -> None:
    files = [str(DATA / "consul.json")]
    text_db, json_db = tmp_path / "t.db", tmp_path / "j.db"
    when = ["--time", "2026-03-01T03:00:00Z"]
    text = cli("ingest", *when, *files, db=text_db)
    data = cli("ingest", "--json", *when, *files, db=json_db)
    assert (text.exit_code, data.exit_code) == (0, 0)
    report = json.loads(data.stdout)
    assert report == {"new_events": 2, "duplicates": 0, "stale": 0,
                      "deleted_by_snapshot": 0, "skipped_kinds": {}, "invalid": 0,
                      "serial": report["serial"]}
    assert text.stdout == (f"2 new events; 0 duplicates skipped; serial "
                           f"{report['serial']}\n")

    again = json.loads(cli("ingest", "--json", *files, db=json_db).stdout)
    assert (again["new_events"], again["duplicates"]) == (0, 2)

    project = json.loads(cli("project", "--json", db=json_db).stdout)
    assert project == {"serial": report["serial"], "versions": 0}
    assert cli("project", db=json_db).stdout == f"serial {report['serial']} (no " \
                                                "DNS-visible change)\n"
    rebuild = json.loads(cli("project", "--rebuild", "--json", db=json_db).stdout)
    rebuild_text = cli("project", "--rebuild", db=json_db).stdout
    assert rebuild["identical"] is True
    assert (rebuild["missing"], rebuild["extra"]) == (0, 0)
    assert _numbers(rebuild_text)[:2] == [rebuild["events"], rebuild["records"]]

    out = tmp_path / "zone"
    exported = cli("export", "-o", str(out), "--json", db=json_db)
    assert exported.exit_code == 0
    assert exported.stderr == ""
    summary = json.loads(exported.stdout)
    text_summary = cli("export", "-o", str(out), db=json_db).stderr
    assert text_summary == (f"cluster.local. serial {summary['serial']}: "
                            f"{summary['records']} records written to {out}\n")
    assert summary["zone"] == "cluster.local."
    assert summary["path"] == str(out)
    assert summary["records"] == len([x for x in out.read_text().splitlines()
                                      if x and not x.startswith("$")])
    usage = cli("export", "--json", db=json_db)
    assert usage.exit_code == 2
    assert "--json summarizes the file written by -o" in usage.stderr

    compacted = json.loads(cli("compact", "--keep-versions", "1", "--json",
                               db=json_db).stdout)
    assert compacted == {"removed_anything": False, "versions_deleted": 0,
                         "changes_deleted": 0, "events_deleted": 0, "snapshot_records": 0,
                         "history_start_serial": report["serial"], "compacted_at": None}
    assert cli("compact", "--keep-versions", "1", db=json_db).stdout == \
        f"nothing to compact; history begins at serial {report['serial']}\n"


def two_versions(db: Path, tmp_path: Path) -> tuple[int, int]:
    """The seed's Consul cluster at 03:00, then one pod fewer at 04:00: two serials."""
    src = json.loads((DATA / "consul.json").read_text())
    first = tmp_path / "one.json"
    first.write_text(json.dumps(src))
    one = json.loads(cli("ingest", "--json", "--time", "2026-03-01T03:00:00Z", str(first),
                         db=db).stdout)
    slice_ = next(o for o in src["items"] if o["kind"] == "EndpointSlice")
    slice_["metadata"]["resourceVersion"] = "999999"
    slice_["endpoints"] = slice_["endpoints"][:1]
    second = tmp_path / "two.json"
    second.write_text(json.dumps(slice_))
    two = json.loads(cli("ingest", "--json", "--time", "2026-03-01T04:00:00Z", str(second),
                         db=db).stdout)
    return one["serial"], two["serial"]


def test_compact_json_after_removing_versions(tmp_path: Path) -> None:
    db, text_db = tmp_path / "c.db", tmp_path / "t.db"
    _, newest = two_versions(db, tmp_path)
    assert two_versions(text_db, tmp_path)[1] == newest
    result = json.loads(cli("compact", "--keep-versions", "1", "--json", db=db).stdout)
    text = cli("compact", "--keep-versions", "1", db=text_db).stdout
    assert result["removed_anything"] is True
    assert result["history_start_serial"] == newest
    assert _numbers(text)[:4] == [result["versions_deleted"], result["changes_deleted"],
                                  result["events_deleted"], result["snapshot_records"]]
    assert f"history begins at serial {newest} (compacted on " in text
    # Each database was compacted at its own "now": the same form, not the same second.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", result["compacted_at"])


def test_watch_once_json_summary(kube: FakeKubeAPI, kubeconfig: Path,
                                 tmp_path: Path) -> None:
    add_service(kube, "db", ["10.0.0.1"])
    db = f"sqlite:///{tmp_path / 'w.db'}"
    done = run_cli(db, "watch", "--kubeconfig", str(kubeconfig), "--once", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    summary = json.loads(done.stdout)
    assert summary == {"stored": 2, "duplicates": 0, "malformed": 0, "commits": 1,
                       "lists": 2, "reconnects": 0, "versions": 1,
                       "serial": summary["serial"]}
    again = run_cli(db, "watch", "--kubeconfig", str(kubeconfig), "--once")
    assert again.stdout.startswith("0 events stored (0 already known, 0 malformed skipped)"
                                   " in 1 commits; 2 lists, 0 reconnects; 0 zone versions")
    usage = run_cli(db, "watch", "--kubeconfig", str(kubeconfig), "--once",
                    "--metrics-listen", "127.0.0.1:0")
    assert usage.returncode == 2
    bad = run_cli(db, "watch", "--kubeconfig", str(kubeconfig), "--metrics-listen", "nowhere")
    assert bad.returncode == 1
    assert bad.stderr.splitlines()[-1] == (
        "Error: --metrics-listen 'nowhere': expected HOST:PORT or [IPV6]:PORT")


def test_diff_json_states_the_two_versions(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    old, new = two_versions(db, tmp_path)
    result = cli("diff", "--json", str(old), str(new), db=db)
    assert result.exit_code == 0, result.output
    head, *records = (json.loads(x) for x in result.stdout.splitlines())
    assert head == {"zone": "cluster.local.",
                    "from": {"serial": old, "time": "2026-03-01T03:00:00Z"},
                    "to": {"serial": new, "time": "2026-03-01T04:00:00Z"},
                    "added": sum(r["change"] == "added" for r in records),
                    "removed": sum(r["change"] == "removed" for r in records)}
    assert head["removed"] > 0
    text_head = cli("diff", str(old), str(new), db=db).stdout
    assert text_head.splitlines()[0].endswith(
        f": {head['added']} added, {head['removed']} removed")


# --------------------------------------------------------------------------- the writer


def test_events_stored_counts_only_new_events(tmp_path: Path) -> None:
    """A batch partly already in the log (a restart replaying its last events) counts
    exactly the events stored, by kind and type."""
    from datetime import UTC, datetime

    from zonegen.model import Event
    from zonegen.writer import EventWriter, WriterOptions, WriteTotals

    def event(typ: str, kind: str, name: str, rv: str) -> Event:
        return Event(0, datetime(2026, 12, 3, tzinfo=UTC), "default", typ, kind, "default",
                     name, f"uid-{name}", rv, "{}")

    store = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    metrics = Metrics()
    old = event("ADDED", "Service", "a", "1")
    store.append_events([old])
    writer = EventWriter(store, WriterOptions(project=False), lambda: 0.0, WriteTotals(),
                         threading.Lock(), metrics=metrics)
    halt = threading.Event()
    writer.start(halt)
    try:
        writer.put_group([old, event("ADDED", "Service", "b", "2"),
                          event("ADDED", "EndpointSlice", "b-1", "3")], [])
        writer.put(event("MODIFIED", "Service", "b", "4"), None)
        writer.put(event("ADDED", "Service", "a", "1"), None)  # the same again
        writer.barrier()
    finally:
        writer.stop()
        store.close()
    counts = {(s.labels["kind"], s.labels["type"]): s.value
              for family in metrics.registry.collect()
              if family.name == "zonegen_events_stored" for s in family.samples
              if s.name.endswith("_total")}
    assert counts == {("Service", "ADDED"): 1, ("EndpointSlice", "ADDED"): 1,
                      ("Service", "MODIFIED"): 1}


def test_a_watcher_stopped_by_a_store_failure_is_not_ready(
        kube: FakeKubeAPI, kubeconfig: Path, tmp_path: Path) -> None:
    """serve --watch keeps running after its watcher dies: /readyz must say so."""
    import sqlite3

    from zonegen.errors import StoreError

    add_service(kube, "db", ["10.0.0.1"])
    path = tmp_path / "f.db"
    metrics, readiness = Metrics(), Readiness()
    store = Store.open(f"sqlite:///{path}")
    cluster = connect(str(kubeconfig))
    stop = threading.Event()
    watcher = Watcher(store, cluster, WatchOptions(project=False), metrics=metrics,
                      readiness=readiness)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            watcher.run(stop)
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            failure.append(e)

    thread = threading.Thread(target=run, daemon=True)
    try:
        thread.start()
        wait_for(lambda: readiness.ready, "ready after the initial sync")
        wait_for(lambda: kube.watches("services"), "the Service watch")
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("DROP TABLE resume_points")
            db.commit()
        kube.add(SERVICES, service("web"))
        thread.join(DEADLINE)
        assert not thread.is_alive()
    finally:
        stop.set()
        thread.join(DEADLINE)
        cluster.close()
        store.close()
    assert len(failure) == 1
    assert isinstance(failure[0], StoreError)
    [reason] = readiness.reasons()
    assert reason.startswith("watch: stopped: ")
    assert metrics.watch_synced_gauge.labels("default", "Service")._value.get() == 0
