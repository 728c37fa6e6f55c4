"""zonegen.logs: every JSON line parses and carries its fields; text lines carry time and level."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.helpers import run_python
from zonegen.logs import LOG_FORMATS, fields, level_for, setup_logging

TEXT_LINE = re.compile(
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) zonegen: (debug|info|warning|error|critical): ")


@pytest.fixture
def zonegen_logger() -> Iterator[logging.Logger]:
    """Restore the "zonegen" logger after a test reconfigures it."""
    logger = logging.getLogger("zonegen")
    handlers, level = logger.handlers[:], logger.level
    try:
        yield logger
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err.splitlines()


def test_json_lines_parse_and_carry_the_fields(
        zonegen_logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("json", 0, False, long_running=True)
    log = logging.getLogger("zonegen.runner")
    log.info("new serial", extra=fields(zone="cluster.local", serial=2026120301,
                                        added=3, removed=1))
    log.warning("transfer refused", extra={"peer": "10.0.0.9", "type": "AXFR"})
    log.info("%s: watching", "Service", extra=fields(
        kind="Service", name="kubernetes", message="clash", time=7, kinds=("a", "b"),
        at=datetime(2026, 12, 3, 7, 0, tzinfo=UTC), peers={"10.0.0.2", "10.0.0.1"}))
    log.debug("not at the default level of a long-running command")
    lines = stderr_lines(capsys)
    assert len(lines) == 3
    first, second, third = (json.loads(line) for line in lines)
    for obj in (first, second, third):
        moment = datetime.fromisoformat(obj["time"])
        assert moment.tzinfo is not None
        assert abs((datetime.now(UTC) - moment).total_seconds()) < 3600
        assert obj["logger"] == "zonegen.runner"
    assert {k: v for k, v in first.items() if k != "time"} == {
        "level": "info", "logger": "zonegen.runner", "message": "new serial",
        "zone": "cluster.local", "serial": 2026120301, "added": 3, "removed": 1}
    assert (second["level"], second["peer"], second["type"]) == ("warning", "10.0.0.9", "AXFR")
    assert third["message"] == "Service: watching"
    assert (third["message_"], third["time_"], third["name"]) == ("clash", 7, "kubernetes")
    assert third["kinds"] == ["a", "b"]
    assert third["at"] == "2026-12-03T07:00:00+00:00"
    assert third["peers"] == ["10.0.0.1", "10.0.0.2"]


def test_an_exception_is_one_field_on_one_line(
        zonegen_logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    for log_format in LOG_FORMATS:
        setup_logging(log_format, 0, False)
        try:
            raise ValueError("bad value\nsecond line")
        except ValueError:
            logging.getLogger("zonegen.store").exception(
                "commit failed", extra=fields(serial=9))
        (line,) = stderr_lines(capsys)
        if log_format == "json":
            obj = json.loads(line)
            assert obj["exception"].startswith("Traceback (most recent call last):\n")
            assert obj["exception"].endswith("ValueError: bad value\nsecond line")
            assert (obj["level"], obj["serial"]) == ("error", 9)
        else:
            assert TEXT_LINE.match(line)
            assert ' serial=9 exception="Traceback (most recent call last):\\n' in line
            assert line.endswith('ValueError: bad value\\nsecond line"')


def test_text_lines_have_time_level_and_logfmt_fields(
        zonegen_logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("text", 1, False)
    log = logging.getLogger("zonegen.serve")
    log.info("transfer served", extra=fields(
        type="AXFR", peer="127.0.0.1:5300", records=117, bytes=6120, seconds=0.25,
        zone="cluster.local", note="two words", empty="", quote='say "hi"', ok=True,
        missing=None))
    log.warning("a message\nthat spans lines")
    log.debug("hidden at -v")
    first, second = stderr_lines(capsys)
    match = TEXT_LINE.match(first)
    assert match is not None
    assert datetime.fromisoformat(match.group(1)).tzinfo is not None
    assert first[match.end():] == (
        'transfer served type=AXFR peer=127.0.0.1:5300 records=117 bytes=6120 '
        'seconds=0.25 zone=cluster.local note="two words" empty="" '
        'quote="say \\"hi\\"" ok=true missing=null')
    assert TEXT_LINE.match(second)
    assert second.endswith("zonegen: warning: a message\\nthat spans lines")


def test_setup_again_replaces_the_handler_and_follows_a_swapped_stderr(
        zonegen_logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("text")
    setup_logging("json")
    logging.getLogger("zonegen").warning("once")
    (line,) = stderr_lines(capsys)
    assert json.loads(line)["message"] == "once"
    assert len(zonegen_logger.handlers) == 1


def test_levels_for_one_shot_and_long_running_commands() -> None:
    table = {
        (0, False, False): logging.WARNING, (1, False, False): logging.INFO,
        (2, False, False): logging.DEBUG, (0, True, False): logging.ERROR,
        (0, False, True): logging.INFO, (1, False, True): logging.DEBUG,
        (3, False, True): logging.DEBUG, (0, True, True): logging.WARNING,
    }
    for (verbosity, quiet, long_running), level in table.items():
        assert level_for(verbosity, quiet, long_running=long_running) == level


def test_unknown_format_is_refused(zonegen_logger: logging.Logger) -> None:
    with pytest.raises(ValueError, match="log format 'xml': expected one of text, json"):
        setup_logging("xml")


def test_a_process_writes_json_lines_on_stderr_only() -> None:
    program = (
        "import logging\n"
        "from zonegen.logs import setup_logging, fields\n"
        "setup_logging('json', 0, False, long_running=True)\n"
        "log = logging.getLogger('zonegen.watch')\n"
        "log.info('synced', extra=fields(kind='Service', objects=2))\n"
        "log.warning('reconnecting', extra=fields(kind='EndpointSlice', status=403))\n"
    )
    proc = run_python(program)
    assert proc.stdout == ""
    objs = [json.loads(line) for line in proc.stderr.splitlines()]
    assert [(o["level"], o["message"], o["kind"]) for o in objs] == [
        ("info", "synced", "Service"), ("warning", "reconnecting", "EndpointSlice")]
    assert (objs[0]["objects"], objs[1]["status"]) == (2, 403)
