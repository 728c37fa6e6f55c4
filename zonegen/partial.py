"""One catch-up's partial projection: only the Services its events touch, loaded from
the persisted read model (docs/DESIGN.md "Read model"), so folding costs what the change
touches, not the cluster."""

from __future__ import annotations

from itertools import chain

from zonegen import project
from zonegen.changes import to_change
from zonegen.model import (
    ENDPOINT_SLICE,
    ENDPOINTS,
    PTR,
    SERVICE,
    Change,
    Endpoints,
    EndpointSlice,
    Record,
    Service,
)
from zonegen.names import ptr_owner
from zonegen.project import NO_SERVICE, ObjectRow, ServiceKey
from zonegen.store import ReadModelChange, Store
from zonegen.store.readmodel import StoredRow


class PartialProjection:
    """One catch-up's partial projection: the Services its events touch, loaded from
    the read model before each chunk is folded (docs/DESIGN.md "Read model").

    For each chunk: the Service keys its changes touch (a slice's old Service from
    ``projected_objects``, its new one from its label), then those Services' objects
    (``projected_objects`` -> their events by seq -> reduced) and stored records, then
    every stored PTR at the reverse names their addresses (old and new) could own,
    which is all the cross-Service PTR rule reads. One query per table per chunk of
    keys; a Service is loaded once per catch-up. ``empty``: the model holds nothing yet
    (before the first version), so nothing is read."""

    def __init__(self, store: Store, name: str, *, empty: bool) -> None:
        self.store = store
        self.name = name
        self.empty = empty
        self.projection = project.Projection()
        self._stored: dict[ServiceKey, dict[Record, StoredRow]] = {}
        self._other_rows: dict[Record, StoredRow] = {}
        self._resolved: set[tuple[str, str]] = set()  # slices whose Service is known
        self._objects: dict[tuple[str, str, str], tuple[int, Change]] = {}

    def before(self, changes: list[tuple[int, Change]]) -> None:
        """Load what folding ``changes`` reads."""
        proj = self.projection
        keys: set[ServiceKey] = set()
        lookups: list[tuple[str, str]] = []
        for seq, change in changes:
            self._objects[change.key] = (seq, change)
            ns, name = change.namespace, change.name
            if change.kind == ENDPOINT_SLICE:
                if (ns, name) not in self._resolved:
                    lookups.append((ns, name))
                obj = change.obj
                if isinstance(obj, EndpointSlice) and obj.service_name:
                    keys.add((ns, obj.service_name))
            elif change.kind in (SERVICE, ENDPOINTS):
                keys.add((ns, name))
        if lookups and not self.empty:
            keys.update(self.store.slice_services(lookups, self.name).values())
        self._resolved.update(lookups)
        new = sorted(k for k in keys if not proj.is_loaded(k))
        loaded: list[Change] = []
        stored: dict[ServiceKey, dict[Record, StoredRow]] = {}
        if new and not self.empty:
            rows = self.store.objects_of(new, self.name)
            skip = _superseded(changes, set(new), rows)
            loaded = [to_change(e) for e in self.store.events_by_seq(
                r[3] for r in rows if r[:3] not in skip)]
            stored = self.store.records_of(new, self.name)
        for key in new:
            proj.load_service(key, frozenset(stored.get(key, ())))
        self._stored.update(stored)
        proj.load_objects(loaded)
        self._resolved.update((c.namespace, c.name) for c in loaded
                              if c.kind == ENDPOINT_SLICE)
        # Every reverse name a recompute of these Services could add or remove a PTR
        # at: the addresses of their objects, before and after, and their stored PTRs.
        addresses: set[str] = set()
        for change in chain(loaded, (c for _s, c in changes)):
            _addresses_of(change.obj, addresses)
        owners = {ptr_owner(a) for a in addresses}
        owners.update(r.owner for records in stored.values() for r in records
                      if r.rtype == PTR)
        need = proj.needs_ptr_owners(owners)
        if need:
            known = {row[0]: (key, r, row) for key, records in stored.items()
                     for r, row in records.items() if r.rtype == PTR}
            found = [] if self.empty else self.store.ptrs_at(need, self.name, known)
            proj.load_ptrs(need, ((k, r) for k, r, _v in found))
            for key, r, row in found:
                if not proj.is_loaded(key):
                    self._other_rows[r] = row

    def change(self, records_before: int) -> ReadModelChange:
        """What the folded changes do to the stored model: the loaded Services' record
        rows, the visibility of PTRs whose shadowing toggled, the object index, and the
        visible count (``records_before`` before them)."""
        proj = self.projection
        removed: list[int] = []
        added: list[tuple[ServiceKey, Record, bool]] = []
        replaced: list[tuple[int, Record, bool]] = []
        rewritten: list[tuple[int, Record, bool]] = []
        shown: list[int] = []
        hidden: list[int] = []
        count = records_before
        if self.empty:
            added.extend((NO_SERVICE, r, True) for r in project.APEX_RECORDS)
            count += len(project.APEX_RECORDS)
        visible = proj.visible
        for key in proj.loaded_services():
            old = self._stored.get(key, {})
            new = proj.service_records(*key)
            if not old and not new:
                continue
            # Rows of this Service's removed records, by (owner, rtype): a new record
            # takes one of its own owner and type first, so only its rdata, ttl and
            # visibility change and no index entry moves (an endpoint's address change
            # keeps the Service's A owner); any other free row next (owner changes).
            # Set differences in C: a burst diffs hundreds of thousands of records.
            gone, fresh = old.keys() - new, new - old.keys()
            free: dict[tuple[str, int], list[int]] = {}
            for r in gone:
                row_id, was = old[r]
                free.setdefault((r.owner, r.rtype), []).append(row_id)
                count -= was
            for r, (row_id, was) in old.items():
                if r.rtype == PTR and visible(r) != was and r not in gone:
                    (hidden if was else shown).append(row_id)
                    count += -1 if was else 1
            unmatched: list[tuple[Record, bool]] = []
            for r in fresh:
                now = r.rtype != PTR or visible(r)
                count += now
                same = free.get((r.owner, r.rtype))
                if same:
                    rewritten.append((same.pop(), r, now))
                else:
                    unmatched.append((r, now))
            rest = [row_id for ids in free.values() for row_id in ids]
            for r, now in unmatched:
                if rest:
                    replaced.append((rest.pop(), r, now))
                else:
                    added.append((key, r, now))
            removed.extend(rest)
        for _key, r in proj.other_ptrs():
            row_id, was = self._other_rows[r]
            if proj.visible(r) != was:
                (hidden if was else shown).append(row_id)
                count += -1 if was else 1
        objects, dropped = project.object_rows(self._objects.values())
        return ReadModelChange(self.name, removed, added, shown, hidden, objects, dropped,
                               count, replaced, rewritten)


def _superseded(changes: list[tuple[int, Change]], new: set[ServiceKey],
                rows: list[ObjectRow]) -> set[tuple[str, str, str]]:
    """The stored EndpointSlices (of the Services in ``new``, loaded now) that folding
    ``changes`` never reads: a slice whose first change here keeps it in the Service it
    fed, when that is the first change touching the Service. Its stored version would
    only be replaced before anything recomputes the Service (recomputes are deferred to
    the next touch), so reading and reducing it is wasted: in a burst that moves every
    endpoint, half of what loading the touched Services cost. Its old addresses'
    PTRs are in the Service's stored records, which are loaded (with their reverse
    names' PTR context) either way. Any other change (a Service or Endpoints, a
    deletion, a move to another Service, a Service touched earlier in ``changes``)
    keeps the stored versions it meets, so exact causes stay exact."""
    fed = {r[:3]: (r[4], r[5]) for r in rows}
    touched: set[ServiceKey] = set()
    seen: set[tuple[str, str, str]] = set()
    skip: set[tuple[str, str, str]] = set()
    for _seq, change in changes:
        key = change.key
        old = fed.get(key)
        now = project.fed_service(change)
        if (key not in seen and change.kind == ENDPOINT_SLICE and old is not None
                and old == now and now in new and now not in touched):
            skip.add(key)
        seen.add(key)
        if change.kind in (SERVICE, ENDPOINTS):
            touched.add((change.namespace, change.name))
        for service in (old, now):
            if service is not None:
                touched.add(service)
    return skip


def _addresses_of(obj: object, out: set[str]) -> None:
    """Every address an object could publish (ready or not): cluster IPs, endpoint
    addresses."""
    if isinstance(obj, Service):
        out.update(obj.cluster_ips)
    elif isinstance(obj, EndpointSlice):
        for ep in obj.endpoints:
            out.update(ep.addresses)
    elif isinstance(obj, Endpoints):
        for sl in obj.slices:
            for ep in sl.endpoints:
                out.update(ep.addresses)
