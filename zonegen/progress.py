"""A progress bar on stderr for long work, shown only to a person at a terminal.

Ingest of a big file (bytes read), ``project --rebuild`` (events folded), ``compact`` and
an ``export --serial`` that folds much history wrap their loop in :class:`Progress`.
When stderr is not a TTY (CI, a pipe, a log collector) it prints nothing at all, so
scripts and log pipelines see the same output as before. Drawn by tqdm, the well-kept
standard, rather than by hand. Imports no zonegen module.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, AnyStr, Generic, TextIO

if TYPE_CHECKING:
    from tqdm import tqdm


def is_terminal(stream: TextIO) -> bool:
    """``stream`` is an open terminal (a closed or wrapped stream counts as not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class Progress:
    """A bar of ``total`` units (``None``: unknown, then a counter and a rate).

    ``unit="B"`` shows kB/MB and bytes/s. Use as a context manager and call
    :meth:`update` as work is done. The bar appears only after ``delay`` seconds, so quick
    runs never flicker one; the finished bar stays (with its count and time). While it
    shows, the ``zonegen`` logger writes above it instead of through it.
    """

    def __init__(self, total: int | None = None, *, description: str = "",
                 unit: str = "it", stream: TextIO | None = None, enabled: bool = True,
                 delay: float = 1.0) -> None:
        self._stream = stream
        self._options: dict[str, Any] = {
            "total": total, "desc": description or None, "unit": unit,
            "unit_scale": unit == "B", "unit_divisor": 1024 if unit == "B" else 1000,
            "delay": delay, "leave": True, "dynamic_ncols": True,
        }
        self._enabled = enabled
        self._bar: tqdm[Any] | None = None
        self._exit = ExitStack()

    @property
    def shown(self) -> bool:
        """Whether a bar is being drawn (stderr is a terminal and progress is enabled)."""
        return self._bar is not None

    def __enter__(self) -> Progress:
        stream = self._stream if self._stream is not None else sys.stderr
        if self._enabled and is_terminal(stream):
            # imported only to draw: most runs never show a bar, and tqdm (with the
            # asyncio its logging helper pulls in) costs a tenth of a second to import
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._bar = self._exit.enter_context(tqdm(file=stream, **self._options))
            self._exit.enter_context(logging_redirect_tqdm(
                loggers=[logging.getLogger("zonegen")], tqdm_class=tqdm))
        return self

    def update(self, n: int = 1) -> None:
        """``n`` more units are done."""
        if self._bar is not None:
            self._bar.update(n)

    def set_total(self, total: int | None) -> None:
        """The total became known (or changed) after the start."""
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def reading(self, file: IO[AnyStr]) -> ProgressReader[AnyStr]:
        """``file`` with every read counted as progress (bytes, or characters for a
        text file), for parsers such as ``json.load`` that read the file themselves."""
        return ProgressReader(file, self)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._exit.close()
        self._bar = None


class ProgressReader(Generic[AnyStr]):
    """A file whose reads advance a :class:`Progress`; everything else passes through."""

    def __init__(self, file: IO[AnyStr], progress: Progress) -> None:
        self._file: IO[AnyStr] = file
        self._progress: Progress = progress

    def read(self, size: int = -1) -> AnyStr:
        data = self._file.read(size)
        self._progress.update(len(data))
        return data

    def read1(self, size: int = -1) -> AnyStr:
        """As ``read``: io.TextIOWrapper reads a binary file through ``read1``, so a
        text stream over a counted binary file counts bytes, not characters."""
        data: AnyStr = self._file.read1(size)  # type: ignore[attr-defined]
        self._progress.update(len(data))
        return data

    def readline(self, size: int = -1) -> AnyStr:
        line = self._file.readline(size)
        self._progress.update(len(line))
        return line

    def __iter__(self) -> Iterator[AnyStr]:
        for line in self._file:
            self._progress.update(len(line))
            yield line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)
