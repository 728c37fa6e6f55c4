"""One part of a zone's wire build, for a load split across processes: what the helper
process of :mod:`zonegen.serve.halves` runs (``python -m zonegen.zonehalf``) and what
the server builds of its own part.

Kept out of :mod:`zonegen.serve`, whose package imports the whole server: the helper
imports only the store and the wire builder, so it reads sooner (about half the import
time), and that is time the server waits for it.

The helper reads one pickled request on stdin, ``(url, projection, config, version_id,
serial, since, keys_since)``, builds the owners from ``sort_key`` ``since`` on in its own
snapshot, and writes one pickled head on stdout: ``("span", names, sizes, counts, extra,
below, length, warnings, rows)`` followed by ``length`` octets of fragments; or
``("moved", why)`` when its snapshot holds another version than ``version_id``, or
``("disorder", why)`` when its rows are not in canonical owner order. Anything else
(a traceback on stderr, a cut answer) is a failure the server falls back from.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterable, Iterator
from itertools import count
from operator import itemgetter

from zonegen.model import ZoneConfig
from zonegen.selection import NotInOrder, StoredRecord
from zonegen.wire import WireSpan, WireZoneBuilder

PROTOCOL = pickle.HIGHEST_PROTOCOL


def build_span(rows: Iterable[StoredRecord], config: ZoneConfig, serial: int,
               keys: tuple[str | None, str | None], warnings: list[str]) -> WireSpan:
    """The owners of ``rows`` (a range of the stored order) packed as
    :meth:`ZoneSet.from_rows <zonegen.serve.zoneset.ZoneSet.from_rows>` packs a whole
    zone, with the NS and glue owners whose canonical keys lie in ``keys`` (``[since,
    until)``), and the names below each name counted (:meth:`WireZoneBuilder.span`).

    :raises NotInOrder: ``rows`` are not in canonical owner order.
    """
    builder = WireZoneBuilder(config, serial, warnings, keys=keys)
    pack = builder.add
    for owner, selection in builder.owner_selector().select_rows(rows):
        pack(owner, selection)
    return builder.span(below=True)


def counted(rows: Iterable[StoredRecord], counter: Iterator[int]) -> Iterator[StoredRecord]:
    """``rows`` passing by ``counter`` (its next value is their number afterwards), in C:
    a generator would cost a frame resume per row."""
    return map(_first, zip(rows, counter, strict=False))


_first = itemgetter(0)


def main() -> int:
    """The helper: read the request, build the part from ``since`` on, answer."""
    from zonegen.store import opened

    out = sys.stdout.buffer
    url, projection, config, version_id, serial, since, keys_since = pickle.load(  # noqa: S301
        sys.stdin.buffer)  # the server that started this process asks
    warnings: list[str] = []
    counter = count()
    with opened(url, "read") as store, \
            store.current_rows(projection, [config], since=since) as (version, rows):
        if version is None or version.version_id != version_id:
            pickle.dump(("moved", "read another version"), out, PROTOCOL)
            return 0
        try:
            span = build_span(counted(rows, counter), config, serial, (keys_since, None),
                              warnings)
        except NotInOrder as e:
            pickle.dump(("disorder", str(e)), out, PROTOCOL)
            return 0
    pickle.dump(("span", span.names, span.sizes, span.counts, span.extra, span.below,
                 len(span.data), warnings, next(counter)), out, PROTOCOL)
    out.write(span.data)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
