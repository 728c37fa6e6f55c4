"""The writer lease and its fence (zonegen/store/lease.py), on SQLite and on a real
PostgreSQL server: one holder at a time, takeovers move the epoch, and a store fenced
with a lease that was taken over writes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.test_store import ev
from zonegen.model import A, Record, RecordChange
from zonegen.store import PROJECTION, LeaseLost, Store, writer_leases

pytest_plugins = ["tests.postgres"]  # backend_url: SQLite and PostgreSQL


@pytest.fixture
def stores(backend_url: str) -> Iterator[tuple[Store, Store]]:
    """Two replicas' stores on one database."""
    a, b = Store.open(backend_url), Store.open(backend_url)
    yield a, b
    a.close()
    b.close()


def _expire(store: Store) -> None:
    """What the lease time passing does (deterministic: no sleeping)."""
    with store._write(fenced=False) as conn:
        conn.execute(writer_leases.update().values(expires_us=0))


def test_one_holder_at_a_time_and_a_takeover_moves_the_epoch(
        stores: tuple[Store, Store]) -> None:
    a, b = stores
    first = a.take_lease("a", 15)
    assert first is not None
    assert (first.holder, first.epoch) == ("a", 1)
    assert b.take_lease("b", 15) is None
    assert a.take_lease("a", 15) == a.current_lease()  # its own: renewed, same epoch
    assert a.current_lease().epoch == 1  # type: ignore[union-attr]
    _expire(a)
    second = b.take_lease("b", 15)
    assert second is not None
    assert (second.holder, second.epoch) == ("b", 2)
    assert a.renew_lease(first, 15) is None  # taken over: the old holder learns it
    assert b.renew_lease(second, 15) is not None
    b.release_lease(second)
    third = a.take_lease("a", 15)  # released: free at once
    assert third is not None
    assert third.epoch == 3


def test_a_deposed_writer_cannot_append_commit_or_move_resume_points(
        stores: tuple[Store, Store]) -> None:
    a, b = stores
    lease = a.take_lease("replica-a", 15)
    assert lease is not None
    a.fence_writes(lease)
    a.append_events([ev("web", "1")], resume=[("k8s", "Service", "1")])  # holds it: fine
    _expire(a)
    taken = b.take_lease("replica-b", 15)
    assert taken is not None
    before = (b.max_event_seq(), b.resume_point("k8s", "Service"), b.max_tracking_seq())
    with pytest.raises(LeaseLost) as refused:
        a.append_events([ev("api", "2")], resume=[("k8s", "Service", "2")])
    message = str(refused.value)
    assert "\n" not in message
    assert "write refused: this replica (replica-a) lost the writer lease at epoch 1; " \
        "it is now held by replica-b (epoch 2)" in message
    with pytest.raises(LeaseLost), a.appending() as appender:
        appender.append([ev("api", "2")])
    record = Record("web.default.svc.cluster.local.", A, ("10.0.0.1",), 30)
    with pytest.raises(LeaseLost):
        a.commit_version((PROJECTION, 0, 1), serial=7, changes=[RecordChange(True, record, 1)])
    assert (b.max_event_seq(), b.resume_point("k8s", "Service"),
            b.max_tracking_seq()) == before
    assert b.latest_version() is None
    b.fence_writes(taken)  # the new holder writes
    assert b.append_events([ev("api", "2")]).stored == (2,)


def test_migration_0003_from_the_previous_revision_keeps_the_log(backend_url: str) -> None:
    """0002 -> 0003 adds the lease table to a database holding events; 0003 -> 0002
    removes it again and keeps them."""
    from zonegen import migrate

    s = Store.open(backend_url)
    try:
        migrate.downgrade(s.engine, "0002")
        # Raw SQL: this zonegen's appends write the columns of the newest schema.
        with s.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO events (seq, received_us, source, type, kind, namespace, name, "
                "uid, resource_version, object) VALUES (1, 1, 'test', 'ADDED', 'Service', "
                "'default', 'web', 'uid-web', '1', '{}')"))
        migrate.upgrade(s.engine, "0003")
        assert s.current_revision() == "0003"
        assert s.take_lease("a", 15) is not None
        migrate.downgrade(s.engine, "0002")
        assert s.current_revision() == "0002"
        with s.engine.connect() as conn:
            assert [r.name for r in conn.execute(sa.text("SELECT name FROM events"))] == ["web"]
        s.upgrade()
        assert s.current_lease() is None
    finally:
        s.close()
