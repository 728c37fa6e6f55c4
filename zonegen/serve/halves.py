"""A big zone loaded in two halves at once: the owners before a middle key in this
process, the rest in a helper process, then joined (issue #11: ``serve`` start to first
answer at 1M records against ``named`` loading the same file).

Building the wire zone from the read model is CPU-bound Python (selection and encoding,
a few microseconds per row), so one process uses one core however many the machine
has; the two halves of the order index are independent runs of owners, and a
:class:`~zonegen.wire.WireSpan` is plain data that pickles. The helper is
:mod:`zonegen.zonehalf` run with the server's interpreter: it reads its half in its
own snapshot and answers only when that snapshot holds the same version
as the server's, so the joined zone is one version's. Whenever anything differs from
the plain path's conditions (the helper fails or sees another version, a half is not in
canonical order, the halves do not meet in order) :func:`load_halves` returns None and
the caller loads the zone in one piece, which is always correct.

Only for SQLite files (the helper opens the same file), one zone of at least
:data:`MIN_RECORDS` records (below that, starting the helper costs more than it saves),
and a process that can use two CPUs at once (:func:`usable_cpus`: on one CPU the split
only adds work).
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import tempfile
import time
from itertools import count
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import dns.name

import zonegen
from zonegen.model import ZoneConfig
from zonegen.selection import NotInOrder, OwnerSelector, canonical_key
from zonegen.serial import MODULUS
from zonegen.serve.zoneset import ZoneSet
from zonegen.wire import WireSpan, WireZone
from zonegen.zonehalf import PROTOCOL, build_span, counted

if TYPE_CHECKING:
    from zonegen.store import Store

log = logging.getLogger("zonegen")

MIN_RECORDS = 200_000
"""Records a zone needs before its load is split: the helper's start (an interpreter and
the imports, ~0.3 s) is then well below the half it saves."""

HERE = 0.55
"""The share of the zone's rows built in this process: a little over half, since the
helper starts an interpreter (~0.3 s) before it reads, which is about what joining
the halves costs here afterwards."""


def file_url(store: Store) -> str | None:
    """The URL a helper process opens the same database with, or None when the store
    is not a SQLite file (an in-memory database exists only in this process; a server
    database is left to the plain path)."""
    url = store.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return f"sqlite:///{Path(str(url.database)).resolve()}"


def load_halves(store: Store, projection: str, config: ZoneConfig,
                min_records: int = MIN_RECORDS) -> tuple[ZoneSet, int] | None:
    """The zone ``config`` of ``projection``'s newest version and the rows it was built
    from, built in two processes; None when the split does not apply or did not work
    out (see the module docstring): the caller then loads it in one piece.

    :raises StoreError: the store cannot be read (this process's half).
    """
    url = file_url(store)
    if url is None or usable_cpus() < 2 or store.record_count(projection) < min_records:
        return None
    # the median of the sampled rows of this zone; the NS and glue owners split at the
    # canonical key of its owner. Any key splits correctly (where the halves meet is
    # checked): a poor one only makes one half longer.
    absolute = OwnerSelector(config, None).absolute  # the selection's own rule
    ours = [(key, full) for key, owner in store.sample_keys(projection)
            if (full := absolute(owner))]
    if not ours:
        return None
    middle, owner = ours[int(len(ours) * HERE)]
    until = canonical_key(owner)
    started = time.perf_counter()
    try:
        helper = _Helper.start()
    except OSError as e:  # no interpreter to run (an embedded or frozen server)
        log.info("split load: cannot start a helper (%s); loading in one piece", e)
        return None
    try:
        warnings: list[str] = []
        counter = count()
        with store.current_rows(projection, [config], until=middle) as (version, rows):
            if version is None:
                return None
            helper.ask((url, projection, config, version.version_id, version.serial,
                        middle, until))
            try:
                mine = build_span(counted(rows, counter), config, version.serial,
                                  (None, until), warnings)
            except NotInOrder as e:
                log.debug("split load: %s; loading in one piece", e)
                return None
            rows_here = next(counter)
        built = time.perf_counter()
        answer = helper.answer()
        waited = time.perf_counter()
    finally:
        helper.stop()
    if answer is None:
        return None
    theirs, their_warnings, rows_there = answer
    zone = WireZone.joined(config, version.serial, [mine, theirs])
    if zone is None:
        log.debug("split load: the halves do not meet in canonical order; loading in "
                  "one piece")
        return None
    log.debug("split load: %d rows here in %.0f ms, waited %.0f ms for %d there, "
              "joined in %.0f ms", rows_here, (built - started) * 1000,
              (waited - built) * 1000, rows_there, (time.perf_counter() - waited) * 1000)
    for message in dict.fromkeys(warnings + their_warnings):
        log.warning("%s", message)
    zones = ZoneSet(version.version_id, version.serial % MODULUS,
                    {dns.name.from_text(config.zone): zone})
    return zones, rows_here + rows_there


def usable_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """How many CPUs this process can keep busy at once: the CPUs it may run on, capped
    by its cgroup's CPU quota (v2 ``cpu.max``, v1 ``cpu/cpu.cfs_quota_us`` over
    ``cpu.cfs_period_us``), at least 1. A Pod limited to one CPU (``limits.cpu: 1``) may
    see every core of its node, but a split load there would only add the helper's
    start and the join to a single CPU's work (about 0.5 s at 1M records)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota(cgroup)
    if quota is not None:
        cpus = min(cpus, max(1, int(quota)))
    return max(1, cpus)


def _cgroup_quota(cgroup: Path) -> float | None:
    """The CPU quota as CPUs (quota / period), or None when there is none or it cannot
    be read (no cgroup file system: then only the affinity counts)."""
    try:
        fields = (cgroup / "cpu.max").read_text().split()  # v2: "max 100000", "50000 100000"
    except OSError:
        try:  # v1
            quota = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
            period = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            return None
        return quota / period if quota > 0 and period > 0 else None
    try:
        if len(fields) != 2 or fields[0] == "max":
            return None
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


class _Helper:
    """The helper process: started first (its interpreter starts while this process
    reads), asked once the version is known, answered with a pickled span."""

    def __init__(self, proc: subprocess.Popen[bytes], errors: IO[bytes]) -> None:
        self.proc = proc
        self.errors = errors

    @classmethod
    def start(cls) -> _Helper:
        env = dict(os.environ)
        # the helper imports this very package, wherever the server's came from
        root = str(Path(zonegen.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        proc = subprocess.Popen([sys.executable, "-m", "zonegen.zonehalf"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=errors, env=env)
        return cls(proc, errors)

    def ask(self, request: tuple[Any, ...]) -> None:
        stdin = self.proc.stdin
        if stdin is None:
            raise RuntimeError("helper started without a pipe")
        try:
            pickle.dump(request, stdin, PROTOCOL)
            stdin.close()
        except OSError:
            pass  # it died: answer() says why

    def answer(self) -> tuple[WireSpan, list[str], int] | None:
        """Its half, its warnings and the rows it read; None when it failed or saw
        another version (logged at debug level: the caller just loads in one piece)."""
        stdout = self.proc.stdout
        if stdout is None:
            raise RuntimeError("helper started without a pipe")
        try:
            head = pickle.load(stdout)  # noqa: S301 - our own child's answer
            if head[0] != "span":
                log.debug("split load: helper %s; loading in one piece", head[1])
                return None
            _, names, sizes, counts, extra, below, length, warnings, rows = head
            data = stdout.read(length)
            if len(data) != length:
                raise EOFError("helper output cut short")
        except (EOFError, OSError, pickle.UnpicklingError, ValueError) as e:
            self.proc.wait()
            self.errors.seek(0)
            last = self.errors.read().decode("utf-8", "replace").strip().splitlines()
            # info, not debug: a helper that cannot start makes every load slower
            log.info("split load: helper failed (%s%s); loading in one piece", e,
                     f": {last[-1]}" if last else "")
            return None
        return WireSpan(names, data, sizes, counts, extra, below), warnings, rows

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        self.errors.close()
