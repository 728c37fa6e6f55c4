"""Publishing a zone as a file: the current one, or any past one.

Pending events are projected first (:func:`zonegen.runner.ensure_projected`, so users
never have to run ``project``; on a read-only database nothing is written and the newest
stored version is exported). The current zone is streamed from the persisted read model
(``Store.current_records``, kept in the transaction of each version) in canonical order;
a past one (``--serial``, ``--at``) is folded from the stored record changes. Neither
depends on today's projector code, so each is the zone as it was published.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from zonegen import zonefile
from zonegen.clock import Clock
from zonegen.errors import UnknownSerial
from zonegen.model import Record, ZoneConfig, ZoneVersion
from zonegen.progress import Progress
from zonegen.projections import DEFAULT, ProjectionSpec
from zonegen.runner import RebuildReport, ensure_projected, runner_for
from zonegen.selection import NotInOrder
from zonegen.store import Store

log = logging.getLogger("zonegen")


@dataclass(frozen=True, slots=True)
class ProjectResult:
    versions: int
    serial: int | None

    def summary(self) -> str:
        if self.versions:
            return f"serial {self.serial} ({self.versions} new zone versions)"
        return f"serial {self.serial} (no DNS-visible change)"


@dataclass(frozen=True, slots=True)
class ExportResult:
    zone: str
    serial: int
    records: int
    path: str | None

    def summary(self) -> str:
        where = f" to {self.path}" if self.path else ""
        return f"{self.zone} serial {self.serial}: {self.records} records written{where}"


def project_pending(store: Store, clock: Clock = time.time,
                    spec: ProjectionSpec = DEFAULT) -> ProjectResult:
    """Fold every pending event; the result names the current serial."""
    done = ensure_projected(store, clock, spec=spec)
    return ProjectResult(len(done.made),
                         done.version.serial if done.version is not None else None)


def rebuild_check(store: Store, progress: Progress | None = None,
                  spec: ProjectionSpec = DEFAULT) -> RebuildReport:
    """``project --rebuild``: replay the whole log and compare with the current zone
    (``progress``, default a bar on stderr when it is a terminal, counts the events)."""
    return runner_for(store, spec).rebuild(progress)


def zone_content(store: Store, serial: int | None = None, at: datetime | None = None,
                 clock: Clock = time.time, progress: Progress | None = None,
                 spec: ProjectionSpec = DEFAULT) -> tuple[int, Iterable[Record]]:
    """The serial and records of the current zone, or of a past one. A past one may fold
    much history: ``progress`` (default: a bar on stderr when it is a terminal) counts
    the stored rows folded.

    :raises UnknownSerial: ``serial`` was never published, or ``at`` is before the
        first version.
    """
    if serial is not None:
        version = store.find_version(serial, projection=spec.name)
    else:
        # Pending events may make the version current at ``at`` (now, or later).
        current = ensure_projected(store, clock, spec=spec).version
        if at is not None:
            version = store.find_version_at(at, projection=spec.name)
        elif current is None:  # only a read-only database that was never projected
            raise UnknownSerial(f"{store.where}: no zone version exists yet")
        else:
            version = current
            return version.serial, store.records_at(version.version_id)
    bar = progress if progress is not None else Progress(
        description=f"folding history to serial {version.serial}", unit="row")
    with bar:
        return version.serial, store.records_at(version.version_id, bar.update)


def export_zone(
    store: Store,
    config: ZoneConfig,
    serial: int | None = None,
    at: datetime | None = None,
    output: str | None = None,
    stream: IO[str] | None = None,
    progress: Progress | None = None,
    spec: ProjectionSpec = DEFAULT,
) -> ExportResult:
    """Render a zone and write it atomically to ``output`` (``-``: standard output), or
    to ``stream``.

    The current zone (no ``serial``, no ``at``) is streamed from the persisted read
    model in canonical order as stored rows (``Store.current_rows``,
    :func:`zonefile.render_rows`):
    memory is one owner and one block of text, not the zone, and nothing is sorted but
    each owner's few lines (issue #11). A past zone is folded from the journal and
    sorted whole (:func:`zone_content`).

    :raises UnknownSerial: the requested past version does not exist.
    :raises ZonegenError: the file cannot be written (the old file is then intact).
    """
    if output == "-":  # the usual spelling of standard output
        output, stream = None, stream or sys.stdout
    warnings: list[str] = []
    # To a stream the text goes through a temporary file first (on disk past 16 MB), so
    # a zone whose rendering fails half way (a store error mid-stream, records out of
    # order) writes nothing rather than a part of a zone; and so that a failing stream
    # is reported as itself, not as the store read it interrupted.
    with tempfile.SpooledTemporaryFile(max_size=1 << 24, mode="w+", encoding="utf-8",
                                       newline="\n") as spool:
        if serial is None and at is None:
            ensure_projected(store, spec=spec)
            unordered = False
            with store.current_rows(spec.name, [config]) as (version, rows):
                if version is None:  # only a read-only database never projected
                    raise UnknownSerial(f"{store.where}: no zone version exists yet")
                number = version.serial
                try:
                    counted = _render(zonefile.render_rows(rows, config, number, warnings),
                                      output, spool)
                except NotInOrder as e:
                    log.debug("%s: stored order is not %s's (%s); sorting the zone instead",
                              store.where, config.zone, e)
                    unordered = True
            if unordered:  # outside the block: it holds the only connection of sqlite://
                warnings.clear()
                spool.seek(0)
                spool.truncate()
                counted = _render(zonefile.render(store.records_at(version.version_id),
                                                  config, number, warnings), output, spool)
        else:
            number, past = zone_content(store, serial, at, progress=progress, spec=spec)
            counted = _render(zonefile.render(past, config, number, warnings), output, spool)
        if output is None and stream is not None:
            spool.seek(0)
            shutil.copyfileobj(spool, stream, 1 << 20)
            stream.flush()
    for message in warnings:
        log.warning("%s", message)
    return ExportResult(config.zone, number, counted.records, output)


def _render(lines: Iterable[str], output: str | None, spool: IO[str]) -> _Counted:
    """Write ``lines`` atomically to ``output``, else to ``spool``; their count."""
    counted = _Counted(lines)
    if output is not None:
        zonefile.write(output, counted)
    else:
        spool.writelines(counted)
    return counted


def zone_size(records: Iterable[Record], config: ZoneConfig, serial: int) -> int:
    """How many records ``config.zone`` holds as ``export`` writes it (SOA, NS and glue
    included), from a whole record set."""
    counted = _Counted(zonefile.render(records, config, serial, []))
    for _ in counted:
        pass
    return counted.records


def current_zone_sizes(store: Store, configs: Sequence[ZoneConfig],
                       spec: ProjectionSpec = DEFAULT) -> tuple[ZoneVersion | None, list[int]]:
    """The read model's version and, per zone of ``configs``, how many records ``export``
    writes for it now (SOA, NS and glue included): what ``zonegen status`` shows.

    Counted from the persisted read model as ``export`` streams it (its rows of that
    zone only, :func:`zonefile.count_rows`: the same selection, no text made), never by
    folding the journal (24 s and 880 MB at 1M records). Projects nothing: a read-only
    report of what is stored (None before the first version).
    """
    version: ZoneVersion | None = None
    sizes: list[int] = []
    for config in configs:
        with store.current_rows(spec.name, [config]) as (stored, rows):
            version = stored
            if version is None:
                return None, []
            try:
                sizes.append(zonefile.count_rows(rows, config))
                continue
            except NotInOrder:
                pass
        # outside the block: it holds the only connection of sqlite://
        sizes.append(zone_size(store.records_at(version.version_id), config, version.serial))
    return version, sizes


class _Counted:
    """Passes rendered blocks through while counting their lines."""

    def __init__(self, blocks: Iterable[str]) -> None:
        self._blocks = blocks
        self.lines = 0

    def __iter__(self) -> _Counted:
        self._iter = iter(self._blocks)
        return self

    def __next__(self) -> str:
        block = next(self._iter)
        self.lines += block.count("\n")
        return block

    @property
    def records(self) -> int:
        """Every line is a record except the two directives ($ORIGIN, $TTL)."""
        return self.lines - 2
