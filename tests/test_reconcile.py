"""The one reconcile of a listing with the log, and the one stored encoding (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from zonegen.errors import InvalidObject
from zonegen.model import ObjectKey
from zonegen.reconcile import Reconciler, Vanished, content_version, stored_object
from zonegen.store import ObjectHead

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def svc(name: str, uid: str = "u1", rv: str | None = "1", **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": uid}
    if rv is not None:
        meta["resourceVersion"] = rv
    return {"kind": "Service", "metadata": meta, "spec": {"clusterIP": "10.96.0.1"}, **extra}


def head(name: str, uid: str = "u1", rv: str = "1", seq: int = 7,
         deleted: bool = False) -> ObjectHead:
    return ObjectHead("Service", "ns", name, uid, rv, seq, deleted)


def outcome(o: Any) -> tuple[str, str, str, str]:
    if isinstance(o, Vanished):
        return ("VANISHED", o.name, o.uid, o.resource_version)
    return (o.type, o.name, o.uid, o.resource_version)


def run(heads: list[ObjectHead], items: list[tuple[dict[str, Any], str | None]],
        complete: bool = True, known: set[tuple[str, str]] | None = None
        ) -> tuple[list[tuple[str, str, str, str]], Reconciler]:
    by_key: dict[ObjectKey, ObjectHead] = {(h.kind, h.namespace, h.name): h for h in heads}
    r = Reconciler(by_key, "test", T0,
                   known_version=(lambda u, v: (u, v) in known) if known else None)
    out = []
    for obj, typ in items:
        out.extend(outcome(o) for o in r.listed("Service", obj, typ))
    if complete:
        out.extend(outcome(o) for o in r.vanished(["Service"]))
    return out, r


@pytest.mark.parametrize(("heads", "items", "expected"), [
    ([], [(svc("a"), None)], [("ADDED", "a", "u1", "1")]),
    ([head("a")], [(svc("a"), None)], []),
    ([head("a")], [(svc("a", rv="2"), None)], [("MODIFIED", "a", "u1", "2")]),
    ([head("a")], [(svc("a", uid="u2", rv="5"), None)],
     [("VANISHED", "a", "u1", "1"), ("ADDED", "a", "u2", "5")]),
    ([head("a", deleted=True)], [(svc("a", rv="3"), None)], [("ADDED", "a", "u1", "3")]),
    ([head("a"), head("b", uid="u9")], [(svc("a"), None)], [("VANISHED", "b", "u9", "1")]),
    ([head("b", deleted=True)], [], []),
    ([], [(svc("a"), "ADDED"), (svc("a", rv="2"), "MODIFIED"), (svc("a", rv="3"), "DELETED")],
     [("ADDED", "a", "u1", "1"), ("MODIFIED", "a", "u1", "2"), ("DELETED", "a", "u1", "3")]),
    ([], [(svc("a"), None), (svc("a", uid="u2"), None)],
     [("ADDED", "a", "u1", "1"), ("VANISHED", "a", "u1", "1"), ("ADDED", "a", "u2", "1")]),
    ([head("a", rv="3")], [(svc("a", rv="old"), None), (svc("a", rv="3"), None)], []),
], ids=["new", "unchanged", "changed", "recreated", "back-after-delete", "vanished",
        "deleted-stays-deleted", "watch-types-kept", "recreated-within-input",
        "old-version-is-stale"])
def test_reconcile_table(heads: list[ObjectHead], items: list[tuple[dict[str, Any], str | None]],
                         expected: list[tuple[str, str, str, str]]) -> None:
    got, _ = run(heads, items, known={("u1", "old")})
    assert got == expected


def test_counts_and_incomplete_listing() -> None:
    got, r = run([head("a"), head("b")], [(svc("a"), None)], complete=False,
                 known={("u1", "0")})
    assert got == []  # b is not deleted: the listing was not complete
    assert (r.unchanged, r.stale) == (1, 0)
    _, r = run([head("a", rv="3")], [(svc("a", rv="0"), None)], known={("u1", "0")})
    assert r.stale == 1


def test_vanished_within_the_listing_has_no_sequence_number() -> None:
    r = Reconciler({}, "test", T0)
    r.listed("Service", svc("a"))
    [gone, _] = r.listed("Service", svc("a", uid="u2"))
    assert isinstance(gone, Vanished)
    assert gone.last_seq == 0
    assert head("a").last_seq == 7
    [gone] = Reconciler({("Service", "ns", "a"): head("a")}, "t", T0).vanished(["Service"])
    assert isinstance(gone, Vanished)
    assert gone.last_seq == 7
    event = gone.event('{"x":1}', "src", T0)
    assert (event.type, event.uid, event.resource_version, event.object_json) == (
        "DELETED", "u1", "1", '{"x":1}')


def test_malformed_object_is_seen_so_never_deleted() -> None:
    r = Reconciler({("Service", "ns", "a"): head("a")}, "test", T0)
    bad = svc("a", rv="2")
    bad["spec"] = "not-a-mapping"
    with pytest.raises(InvalidObject):
        r.listed("Service", bad)
    assert r.vanished(["Service"]) == []


def test_hand_made_objects_get_a_content_version() -> None:
    r = Reconciler({}, "test", T0)
    [event] = r.listed("Service", svc("a", rv=None))
    assert event.resource_version == content_version(event.object_json)
    assert r.listed("Service", svc("a", rv=None)) == []


def test_stored_object_is_canonical() -> None:
    """Key order, managedFields and missing kind/apiVersion never change the bytes."""
    api_order = {"metadata": {"name": "a", "managedFields": [{"manager": "x"}],
                              "labels": {"team": "caf\u00e9"}},
                 "spec": {"ports": [{"port": 80, "name": "http"}]}}
    kubectl_order = {"apiVersion": "v1", "kind": "Service",
                     "spec": {"ports": [{"name": "http", "port": 80}]},
                     "metadata": {"labels": {"team": "caf\u00e9"}, "name": "a"}}
    assert stored_object("Service", api_order) == stored_object("Service", kubectl_order)
    text = stored_object("Service", api_order)
    assert text.isascii()
    assert json.loads(text) == kubectl_order
    assert "managedFields" in api_order["metadata"]  # the input is not changed
    assert json.loads(stored_object("EndpointSlice", {}))["apiVersion"] == "discovery.k8s.io/v1"
