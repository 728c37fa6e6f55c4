"""Real secondaries for ``zonegen serve``: BIND ``named`` and Knot ``knotd`` on 127.0.0.1
high free ports, each in its own tmp_path, configured as in docs/SECONDARIES.md,
and killed by PID file in teardown even when the test fails."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.helpers import wait_until

SECRET = "c2VjcmV0LWtleS1mb3ItenhvbmVnZW4tdGVzdHMtMTIzNDU2Nzg="
KEY_NAME = "xfr-key"

needs_named = pytest.mark.skipif(shutil.which("named") is None,
                                 reason="BIND named is not installed (apt-get install bind9)")
needs_knotd = pytest.mark.skipif(shutil.which("knotd") is None,
                                 reason="Knot knotd is not installed (apt-get install knot)")


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = int(t.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def soa_serial(port: int, zone: str, timeout: float = 0.5) -> int | None:
    """The serial a server answers for ``zone``'s SOA, None when it has none (yet)."""
    try:
        r = dns.query.udp(dns.message.make_query(zone, dns.rdatatype.SOA), "127.0.0.1",
                          port=port, timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return None
    if r.rcode() != dns.rcode.NOERROR or not r.answer:
        return None
    return int(r.answer[0][0].serial)


def dig(port: int, name: str, rtype: str) -> set[str]:
    proc = subprocess.run(["dig", "+short", "+norecurse", "@127.0.0.1", "-p", str(port),
                           name, rtype], capture_output=True, text=True, timeout=20,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {line.strip() for line in proc.stdout.splitlines() if line.strip()}


@dataclass
class Secondary:
    """One running secondary daemon."""

    kind: str  # "named" or "knotd"
    directory: Path
    port: int
    pidfile: Path
    logfile: Path
    zone: str

    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return "(no log)"

    def describe(self) -> str:
        return f"--- {self.kind} log ({self.logfile}) ---\n{self.log()}"

    def serial(self) -> int | None:
        return soa_serial(self.port, self.zone)

    def wait_serial(self, serial: int, seconds: float = 30.0) -> None:
        ok = wait_until(lambda: self.serial() == serial, seconds)
        assert ok, (f"{self.kind} did not reach serial {serial} (has {self.serial()})\n"
                    + self.describe())

    def wait_log(self, text: str, seconds: float = 30.0) -> None:
        ok = wait_until(lambda: text in self.log(), seconds, 0.02)
        assert ok, f"{self.kind} never logged {text!r}\n" + self.describe()

    def stop(self) -> None:
        pid = _read_pid(self.pidfile)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not wait_until(lambda: not _alive(pid), 10, 0.02):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not _alive(pid), 5, 0.02)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def _daemon(kind: str, argv: list[str], secondary: Secondary) -> Secondary:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{kind} failed to start: {proc.stdout}{proc.stderr}\n"
                             + secondary.describe())
    if not wait_until(lambda: _read_pid(secondary.pidfile) is not None, 20):
        raise AssertionError(f"{kind} wrote no PID file\n" + secondary.describe())
    return secondary


def start_named(directory: Path, zone: str | list[str], primary_port: int | list[int], *,
                key: bool = False, port: int | None = None) -> Secondary:
    """``named`` as a secondary of ``zone`` (or of every zone in a list) from the
    primary (or every primary, in order) on loopback at ``primary_port``."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    key_clause = (f'key "{KEY_NAME}" {{ algorithm hmac-sha256; secret "{SECRET}"; }};'
                  if key else "")
    key_ref = f' key "{KEY_NAME}"' if key else ""
    ports = primary_port if isinstance(primary_port, list) else [primary_port]
    primaries = " ".join(f"127.0.0.1 port {p}{key_ref};" for p in ports)
    zones = [zone] if isinstance(zone, str) else zone
    blocks = "".join(f"""
zone "{name}" {{
    type secondary;
    primaries {{ {primaries} }};
    file "{name}.db";
    allow-notify {{ 127.0.0.1; }};
    request-ixfr yes;
}};
""" for name in zones)
    conf = directory / "named.conf"
    conf.write_text(f"""
options {{
    directory "{directory}";
    pid-file "{directory}/named.pid";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    allow-query {{ 127.0.0.1; }};
    notify no;
    dnssec-validation no;
}};
{key_clause}
controls {{ }};
logging {{
    channel f {{ file "{directory}/named.log"; severity info; print-time yes; }};
    category default {{ f; }}; category xfer-in {{ f; }}; category notify {{ f; }};
}};
{blocks}""")
    sec = Secondary("named", directory, port, directory / "named.pid",
                    directory / "named.log", zones[0])
    return _daemon("named", ["named", "-c", str(conf), "-u", "root"], sec)


def start_knotd(directory: Path, zone: str, primary_port: int, *, key: bool = False,
                port: int | None = None) -> Secondary:
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    key_section = (f"key:\n  - id: {KEY_NAME}\n    algorithm: hmac-sha256\n"
                   f"    secret: {SECRET}\n") if key else ""
    key_ref = f"    key: {KEY_NAME}\n" if key else ""
    conf = directory / "knot.conf"
    conf.write_text(f"""server:
    listen: 127.0.0.1@{port}
    rundir: {directory}
    user: root
{key_section}remote:
  - id: primary
    address: 127.0.0.1@{primary_port}
{key_ref}acl:
  - id: notify-from-primary
    address: 127.0.0.1
{key_ref}    action: notify
template:
  - id: default
    storage: {directory}
    file: "%s.zone"
zone:
  - domain: {zone}
    master: primary
    acl: notify-from-primary
log:
  - target: {directory}/knot.log
    any: info
""")
    sec = Secondary("knotd", directory, port, directory / "knot.pid",
                    directory / "knot.log", zone)
    return _daemon("knotd", ["knotd", "-c", str(conf), "-d"], sec)


@pytest.fixture
def secondaries() -> Iterator[list[Secondary]]:
    """Collects started daemons; stops every one in teardown, whatever happened."""
    started: list[Secondary] = []
    try:
        yield started
    finally:
        for sec in started:
            sec.stop()
