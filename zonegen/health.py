"""Readiness conditions and the HTTP endpoint Prometheus and Kubernetes probe.

``--metrics-listen HOST:PORT`` serves ``/metrics`` (Prometheus text from a
:class:`~zonegen.metrics.Metrics` registry), ``/healthz`` (200 while the process runs)
and ``/readyz`` (200 only when no component holds a readiness condition; 503 listing
them otherwise), as CoreDNS serves metrics and ``/ready`` on their own port. Readiness is
a set of named conditions the components set and clear, so each reason is stated by the
component that knows it. Uses the stdlib HTTP server in a daemon thread: a probe or a
scrape is a few requests a minute.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from prometheus_client.exposition import choose_encoder

from zonegen.errors import ZonegenError
from zonegen.metrics import Metrics

log = logging.getLogger(__name__)


class MetricsListenError(ZonegenError):
    """The metrics endpoint cannot listen."""


class Readiness:
    """Named conditions that keep the process not ready, each with its reason.

    A component calls :meth:`block` when it cannot do its job (``"watch:Service"``,
    ``"watch: initial list of Service not stored"``) and :meth:`unblock` with the same
    key when it can again. Ready means no condition is held. Thread-safe.
    """

    def __init__(self) -> None:
        self._reasons: dict[str, str] = {}
        self._lock = threading.Lock()

    def block(self, key: str, reason: str) -> None:
        """Hold (or restate) condition ``key``; the newest reason wins."""
        with self._lock:
            previous = self._reasons.get(key)
            self._reasons[key] = reason
        if previous != reason:
            log.debug("not ready: %s", reason)

    def unblock(self, key: str) -> None:
        """Clear condition ``key`` (a no-op if it is not held)."""
        with self._lock:
            reason = self._reasons.pop(key, None)
        if reason is not None:
            log.debug("no longer: %s", reason)

    def reasons(self) -> list[str]:
        """The held reasons, in the order their conditions were first set."""
        with self._lock:
            return list(self._reasons.values())

    @property
    def ready(self) -> bool:
        with self._lock:
            return not self._reasons


_process_readiness: Readiness | None = None
_process_lock = threading.Lock()


def process_readiness() -> Readiness:
    """The process-wide :class:`Readiness` that ``/readyz`` of a running zonegen reports."""
    global _process_readiness
    with _process_lock:
        if _process_readiness is None:
            _process_readiness = Readiness()
        return _process_readiness


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 30  # a stalled client cannot hold a thread forever
    server_version = "zonegen"
    error_content_type = "text/plain; charset=utf-8"
    error_message_format = "%(code)d %(message)s\n"

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _not_allowed(self) -> None:
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self._body(b"405 method not allowed\n", "text/plain; charset=utf-8", head=False)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _answer(self, head: bool) -> None:
        url = urlsplit(self.path)
        text = "text/plain; charset=utf-8"
        if url.path == "/metrics":
            registry = self.server.metrics.registry
            names = parse_qs(url.query).get("name[]")
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            body = encoder(registry.restricted_registry(names) if names else registry)
            self.send_response(200)
            self._body(body, content_type, head)
        elif url.path == "/healthz":
            self.send_response(200)
            self._body(b"ok\n", text, head)
        elif url.path == "/readyz":
            reasons = self.server.readiness.reasons()
            if reasons:
                self.send_response(503)
                self._body("".join(f"{r}\n" for r in reasons).encode(), text, head)
            else:
                self.send_response(200)
                self._body(b"ok\n", text, head)
        else:
            self.send_response(404)
            self._body(b"404 not found: try /metrics, /healthz or /readyz\n", text, head)

    def _body(self, body: bytes, content_type: str, head: bool) -> None:
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # Probes arrive every few seconds: nothing per request at the default level.
        log.debug("metrics endpoint: %s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], metrics: Metrics,
                 readiness: Readiness) -> None:
        self.metrics = metrics
        self.readiness = readiness
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up mid-response is not our error: one debug line, no
        # traceback on stderr (socketserver's default prints one).
        log.debug("metrics endpoint: request from %s failed", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on ``(host, port)`` in a daemon thread.

    Use as a context manager or call :meth:`start`/:meth:`stop`. Port 0 picks a free port
    (:attr:`port` tells which). ``host`` is a literal IP address (``0.0.0.0``, ``::``).

    :raises MetricsListenError: the address cannot be bound (in use, not local …).
    """

    def __init__(self, host: str, port: int, metrics: Metrics,
                 readiness: Readiness) -> None:
        cls = _Server6 if ipaddress.ip_address(host).version == 6 else _Server
        try:
            self._server = cls((host, port), metrics, readiness)
        except OSError as e:
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            raise MetricsListenError(
                f"metrics endpoint {where}: cannot listen: {e.strerror or e}") from None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever,
                                            kwargs={"poll_interval": 0.2},
                                            name="zonegen-metrics", daemon=True)
            self._thread.start()
            log.info("metrics endpoint listening on %s:%d (/metrics, /healthz, /readyz)",
                     self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop accepting, wait for the serving thread, close the socket. Idempotent."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
