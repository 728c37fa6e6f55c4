"""A secondary's NOTIFY port on loopback, for the tests of ``serve``'s NOTIFY: written
once, so every test reads NOTIFYs the same way and a stray message fails the test."""

from __future__ import annotations

import socket
import threading

import dns.message
import dns.opcode
import dns.rdatatype


class NotifyListener:
    """Records the (zone, SOA serial) of each NOTIFY it receives, in arrival order, in
    :attr:`received`, and acknowledges it as a secondary does. A NOTIFY without a SOA
    in its answer is recorded with serial -1, so an exact comparison fails on it; any
    other message goes to :attr:`strays` and fails :meth:`close`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.received: list[tuple[str, int]] = []
        self.strays: list[dns.message.Message] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            message = dns.message.from_wire(data)
            if message.opcode() != dns.opcode.NOTIFY:
                self.strays.append(message)
                continue
            serial = next((int(rd.serial) for rr in message.answer for rd in rr
                           if rd.rdtype == dns.rdatatype.SOA), -1)
            self.received.append((message.question[0].name.to_text(), serial))
            self.sock.sendto(dns.message.make_response(message).to_wire(), peer)

    def close(self) -> None:
        """Stop listening; fail if anything but a NOTIFY arrived."""
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        assert self.strays == [], f"not NOTIFYs: {self.strays}"
