"""How zonegen's log lines look: ``--log-format text|json`` on stderr.

``text`` is for people: ``2026-12-03T07:25:23.123Z zonegen: info: new serial zone=…``
(an ISO 8601 UTC timestamp and the level on every line, structured fields appended as
logfmt ``key=value``). ``json`` is for log pipelines, as external-dns's
``--log-format json``: one object per line with ``time``, ``level``, ``logger``,
``message`` and the fields. Callers attach fields with :func:`fields`::

    log.info("new serial", extra=fields(zone=zone, serial=serial, added=3, removed=1))

Exceptions become one field (``exception``) on the same line. Imports no zonegen module.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, date, datetime
from typing import Any, Final, TextIO

#: The values of ``--log-format``.
LOG_FORMATS: Final = ("text", "json")

LOGGER = "zonegen"

#: Where :func:`fields` puts the structured fields on a LogRecord.
_FIELDS_ATTR: Final = "zonegen_fields"

#: The attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "taskName", _FIELDS_ATTR}

#: Keys the JSON object uses itself; a field of that name gets a trailing underscore.
_RESERVED: Final = frozenset({"time", "level", "logger", "message", "exception", "stack"})


def fields(**values: Any) -> dict[str, Any]:
    """The ``extra=`` of a log call carrying structured fields (``serial=``, ``zone=``,
    ``kind=``, ``peer=``, counts …). Any name works, ``name`` and ``message`` included:
    they travel in one record attribute, so they never clash with LogRecord's own."""
    return {_FIELDS_ATTR: values}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of ``record``: those of :func:`fields` and any other
    ``extra=`` key, in the order given."""
    found = {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}
    found.update(getattr(record, _FIELDS_ATTR, None) or {})
    return found


def _time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _plain(value: Any) -> Any:
    """A JSON-able form of a field value (datetimes as ISO 8601, sets as sorted lists)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted((_plain(v) for v in value), key=str)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record_fields(record).items():
            line[f"{key}_" if key in _RESERVED else key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=_plain)


def _logfmt(value: Any) -> str:
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    text = value if isinstance(value, str) else _plain(value)
    if not isinstance(text, str):
        return json.dumps(text, ensure_ascii=False, separators=(",", ":"))
    if text and text.isprintable() and not any(c in text for c in ' ="'):
        return text
    return json.dumps(text, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``TIME zonegen: LEVEL: message key=value …`` on one line: the pre-#10 shape
    (``zonegen: warning: …``) behind an ISO timestamp, so greps keep working."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{_time(record)} zonegen: {record.levelname.lower()}: "
                 f"{_one_line(record.getMessage())}"]
        parts.extend(f"{key}={_logfmt(value)}"
                     for key, value in record_fields(record).items())
        if record.exc_info:
            parts.append(f"exception={_logfmt(self.formatException(record.exc_info))}")
        if record.stack_info:
            parts.append(f"stack={_logfmt(self.formatStack(record.stack_info))}")
        return " ".join(parts)


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time of the record (click's
    CliRunner and pytest swap it), never to a stream closed since setup."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def level_for(verbosity: int, quiet: bool, *, long_running: bool = False) -> int:
    """The level of the ``zonegen`` logger for ``-v`` × N and ``-q``.

    A one-shot command (export, ingest …) says only what went wrong by default; a
    long-running serve/watch also logs its lifecycle (#10: started, synced, each new
    serial, transfers, NOTIFY outcomes, reconnects), so its default is INFO. ``-v`` adds
    detail, ``-q`` keeps errors only (warnings too, for a long-running one).
    """
    if long_running:
        if quiet:
            return logging.WARNING
        return logging.DEBUG if verbosity >= 1 else logging.INFO
    if quiet:
        return logging.ERROR
    return logging.DEBUG if verbosity > 1 else logging.INFO if verbosity else logging.WARNING


def setup_logging(format: str = "text", verbosity: int = 0, quiet: bool = False, *,
                  long_running: bool = False) -> logging.Logger:
    """Make the ``zonegen`` logger write ``format`` lines (``text``/``json``) to stderr
    at the level :func:`level_for` gives. Replaces any handler set before, so calling
    it again (the group callback, then serve/watch with ``long_running=True``) is safe.

    :raises ValueError: ``format`` is not one of :data:`LOG_FORMATS` (click's
        ``Choice`` rejects it first on the command line).
    """
    if format not in LOG_FORMATS:
        raise ValueError(f"log format {format!r}: expected one of {', '.join(LOG_FORMATS)}")
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    logger = logging.getLogger(LOGGER)
    logger.handlers[:] = [handler]
    logger.setLevel(level_for(verbosity, quiet, long_running=long_running))
    return logger
