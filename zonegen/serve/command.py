"""``zonegen serve`` as a process: the server, signals, and ``--watch``'s watcher thread."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from zonegen import election as replicas
from zonegen.errors import InvalidInput
from zonegen.health import MetricsServer, Readiness, process_readiness
from zonegen.metrics import Metrics, process_metrics
from zonegen.model import ZoneConfig
from zonegen.serve.feed import StoreFeed
from zonegen.serve.options import ServeOptions, WatchConfig, extra_zone_config
from zonegen.serve.server import Server, ServeReport, where

if TYPE_CHECKING:
    from zonegen.store import Store

log = logging.getLogger("zonegen")


def serve(store: Store, configs: Sequence[ZoneConfig], options: ServeOptions, *,
          watch: WatchConfig | None = None, ready: Callable[[str], None] | None = None,
          stop: threading.Event | None = None, metrics: Metrics | None = None,
          readiness: Readiness | None = None) -> ServeReport:
    """``zonegen serve``: serve ``configs`` from ``store`` until SIGINT/SIGTERM (or
    ``stop``), then close every socket and return the totals.

    With ``watch``, the Kubernetes watcher runs in this process (a thread) and wakes the
    server after each commit, so new versions are served and NOTIFYed at once; it then
    projects its own events and the server only reads versions.

    With ``options.metrics_listen`` (host, port; port 0 picks one, named in the
    ``ready`` line), ``/metrics``, ``/healthz`` and ``/readyz`` are served there from
    ``metrics`` and ``readiness`` (default: the process-wide ones, which the watcher
    reports to as well); ``/readyz`` says "serve: no zone version loaded" until the newest stored
    version is served.

    :raises ServeError: an address cannot be bound.
    :raises MetricsListenError: the metrics address cannot be bound.
    :raises StoreError: the store cannot be read.
    :raises WatchError: ``watch`` configuration unusable.
    """
    feed = StoreFeed(store, configs, project=watch is None and not store.read_only,
                     max_versions=options.journal_versions,
                     max_records=options.journal_records)

    metrics_listen = options.metrics_listen
    if metrics_listen is not None:
        metrics = metrics if metrics is not None else process_metrics()
        readiness = readiness if readiness is not None else process_readiness()
    feed.metrics = metrics
    server = Server(options, feed, metrics=metrics, readiness=readiness)
    endpoint = None
    if metrics_listen is not None and metrics is not None and readiness is not None:
        endpoint = MetricsServer(*metrics_listen, metrics, readiness).start()
    try:
        return asyncio.run(_serve_main(server, feed, watch, ready, stop, endpoint))
    finally:
        if endpoint is not None:
            endpoint.stop()


async def _serve_main(server: Server, feed: StoreFeed, watch: WatchConfig | None,
                      ready: Callable[[str], None] | None,
                      stop_flag: threading.Event | None,
                      endpoint: MetricsServer | None) -> ServeReport:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    watcher_stop = threading.Event()
    watcher_thread: threading.Thread | None = None
    watcher_error: list[BaseException] = []
    installed: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    if stop_flag is not None:
        threading.Thread(target=lambda: (stop_flag.wait(), loop.call_soon_threadsafe(stop.set)),
                         daemon=True).start()
    cluster = None
    try:
        await server.start()
        if watch is not None:
            from zonegen.watch import Commit, Watcher, WatchOptions, connect

            cluster = connect(watch.kubeconfig, watch.context)

            def on_commit(commit: Commit) -> None:
                if commit.versions:
                    server.wake()

            # the watcher projects its own commits (the feed does not, in this mode) and
            # reports into the same metrics and readiness as the server
            watch_options = dataclasses.replace(watch.options or WatchOptions(), project=True)
            connected = cluster

            def lead(stop_watching: threading.Event) -> None:
                Watcher(feed.store, connected, watch_options, on_commit=on_commit,
                        metrics=server.metrics,
                        readiness=server.readiness).run(stop_watching)

            def run_watcher() -> None:
                try:
                    replicas.watch_as_elected(feed.store, lead, watch.lease_seconds,
                                              watcher_stop)
                except BaseException as e:  # noqa: BLE001 - reported by serve()
                    watcher_error.append(e)
                    loop.call_soon_threadsafe(stop.set)

            watcher_thread = threading.Thread(target=run_watcher, name="zonegen-watch",
                                              daemon=True)
            watcher_thread.start()
        if ready is not None:
            serial = server.report.serial
            at = f"serial {serial}" if serial is not None else "(no version yet: SERVFAIL)"
            ready(f"serving {', '.join(server.report.zones)} {at} on "
                  + ", ".join(f"{where(h, p)} (udp, tcp)" for h, p in server.addresses)
                  + (f"; metrics on http://{where_http(endpoint.host, endpoint.port)}"
                     "/metrics" if endpoint is not None else ""))
        await stop.wait()
        log.info("stopping")
    finally:
        watcher_stop.set()
        if watcher_thread is not None:
            await loop.run_in_executor(None, watcher_thread.join, 60)
        if cluster is not None:
            cluster.close()
        await server.aclose()
        for sig in installed:
            loop.remove_signal_handler(sig)
    if watcher_error:
        raise watcher_error[0]
    return server.report


def where_http(host: str, port: int) -> str:
    """``host:port`` as in a URL (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def serve_command(store: Store, config: ZoneConfig, *, extra_zones: Sequence[str] = (),
                  options: ServeOptions | None = None, watch: WatchConfig | None = None,
                  ready: Callable[[str], None] | None = None) -> ServeReport:
    """``zonegen serve``: ``config`` plus ``extra_zones``, until SIGINT/SIGTERM.

    :raises ZonegenError: bad options, an address in use, an unreadable store.
    """
    configs = [config, *(extra_zone_config(config, z) for z in extra_zones)]
    zones = [c.zone for c in configs]
    if len(set(zones)) != len(zones):
        raise InvalidInput(f"zone served twice: {', '.join(zones)}")
    return serve(store, configs, options or ServeOptions(), watch=watch, ready=ready)
