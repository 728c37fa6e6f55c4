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
from zonegen.logs import fields
from zonegen.metrics import Metrics, process_metrics
from zonegen.model import ZoneConfig
from zonegen.projections import DEFAULT
from zonegen.serve.feed import StoreFeed
from zonegen.serve.options import ProjectionZones, ServeOptions, WatchConfig, extra_zone_config
from zonegen.serve.server import Server, ServeReport, where

if TYPE_CHECKING:
    from zonegen.store import Store

log = logging.getLogger("zonegen")


def serve(store: Store, configs: Sequence[ZoneConfig], options: ServeOptions, *,
          watch: WatchConfig | None = None, ready: Callable[[str], None] | None = None,
          stop: threading.Event | None = None, metrics: Metrics | None = None,
          readiness: Readiness | None = None,
          projections: Sequence[ProjectionZones] = ()) -> ServeReport:
    """``zonegen serve``: serve ``configs`` from ``store`` until SIGINT/SIGTERM (or
    ``stop``), then close every socket and return the totals.

    ``configs`` are the default projection's zones; ``projections`` (instead) name the
    zones of each projection served (``--zone a.k8s.example.org=source:a``): each has its
    own feed, serial, journal, NOTIFY and readiness condition, and is registered in the
    store (``Store.register_projection``) so every writer keeps folding it.

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
    plan = tuple(projections) or (ProjectionZones(DEFAULT, tuple(configs)),)
    if not store.read_only:
        for p in plan:
            if store.register_projection(p.spec):
                log.info("projection %s registered", p.spec.target,
                         extra=fields(projection=p.spec.name))
    # With --watch, the watcher projects the default projection's events as it commits
    # them; every other served projection is folded by its feed (after one quiet poll
    # interval, so a writer that folds it too is not raced).
    feeds = [StoreFeed(store, p.configs, spec=p.spec,
                       project=(watch is None or p.spec != DEFAULT) and not store.read_only,
                       max_versions=options.journal_versions,
                       max_records=options.journal_records) for p in plan]

    metrics_listen = options.metrics_listen
    if metrics_listen is not None:
        metrics = metrics if metrics is not None else process_metrics()
        readiness = readiness if readiness is not None else process_readiness()
    for each in feeds:
        each.metrics = metrics
    server = Server(options, feeds, metrics=metrics, readiness=readiness)
    endpoint = None
    if metrics_listen is not None and metrics is not None and readiness is not None:
        endpoint = MetricsServer(*metrics_listen, metrics, readiness).start()
    try:
        return asyncio.run(_serve_main(server, feeds[0], watch, ready, stop, endpoint))
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

            several = len(server.feeds) > 1

            def on_commit(commit: Commit) -> None:
                # another projection's events (no default version) are news for its feed
                if commit.versions or (several and commit.stored):
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
            zones = server.report.where(upto="serial ", never="(no version yet: SERVFAIL)")
            ready(f"serving {zones} on "
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


def serve_command(store: Store, config: ZoneConfig | Sequence[ProjectionZones], *,
                  extra_zones: Sequence[str] = (), options: ServeOptions | None = None,
                  watch: WatchConfig | None = None,
                  ready: Callable[[str], None] | None = None) -> ServeReport:
    """``zonegen serve``: ``config`` plus ``extra_zones`` (the default projection), or
    each projection's zones (:func:`~zonegen.serve.options.projection_zones`), until
    SIGINT/SIGTERM.

    :raises ZonegenError: bad options, an address in use, an unreadable store.
    """
    if isinstance(config, ZoneConfig):
        configs = [config, *(extra_zone_config(config, z) for z in extra_zones)]
        zones = [c.zone for c in configs]
        if len(set(zones)) != len(zones):
            raise InvalidInput(f"zone served twice: {', '.join(zones)}")
        return serve(store, configs, options or ServeOptions(), watch=watch, ready=ready)
    return serve(store, (), options or ServeOptions(), watch=watch, ready=ready,
                 projections=config)
