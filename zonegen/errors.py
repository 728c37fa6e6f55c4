"""The one exception root of zonegen and the warnings it reports.

Every error a user can cause is a :class:`ZonegenError` whose message is a single line
naming the file, object or peer at fault, so the CLI can print it without a traceback.
Pure: imports nothing that does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


class ZonegenError(Exception):
    """A zonegen operation failed."""

    def __init__(self, *args: object) -> None:
        if not args:
            args = ((self.__doc__ or type(self).__name__).strip(),)
        super().__init__(*args)


class InvalidObject(ZonegenError):
    """A Kubernetes object is malformed."""


class InvalidInput(ZonegenError):
    """An input file cannot be read or parsed."""


class InvalidZone(ZonegenError):
    """A zone name or zone option is not usable."""


class UnknownSerial(ZonegenError):
    """The requested serial is not in the kept journal."""


class InvalidOption(InvalidInput):
    """An option value or a combination of options makes no sense (a usage error: the
    command line exits 2, as click does for its own checks)."""


class StoreError(ZonegenError):
    """The database cannot be opened, read or written."""


class WatchError(ZonegenError):
    """The Kubernetes API server cannot be listed or watched."""


@dataclass(frozen=True, slots=True)
class InvalidName:
    """A warning: a record was not published because a name would be invalid DNS.

    Returned as a value (not raised) so the rest of the Service is still published and
    the zone never breaks (RECORDS.md, "Names that cannot be published").
    """

    kind: str
    namespace: str
    name: str
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}: {'; '.join(self.reasons)}"
