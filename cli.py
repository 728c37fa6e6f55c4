"""The ``zonegen`` command line: parse, call one zonegen function, print. No logic here.

Every :class:`zonegen.errors.ZonegenError` becomes a one-line message on stderr and
exit code 1 (click's ClickException), never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, TypeVar

import click

from zonegen import __version__
from zonegen.errors import ZonegenError

F = TypeVar("F", bound=Callable[..., Any])


class ZonegenGroup(click.Group):
    """Turns package errors into one-line CLI errors."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ZonegenError as e:
            raise click.ClickException(str(e)) from None
        except BrokenPipeError:
            # `zonegen export | head`: the reader left; that is not an error of ours.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(0)


class _WarningFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = record.levelname.lower()
        return f"zonegen: {level}: {record.getMessage()}"


def _setup_logging(verbose: int, quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_WarningFormatter())
    logger = logging.getLogger("zonegen")
    logger.handlers[:] = [handler]
    if quiet:
        logger.setLevel(logging.ERROR)
    else:
        logger.setLevel(logging.DEBUG if verbose > 1 else
                        logging.INFO if verbose else logging.WARNING)


@click.group(cls=ZonegenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db_url", envvar="ZONEGEN_DB", default="sqlite:///zonegen.db",
              show_default=True, metavar="URL",
              help="SQLAlchemy database URL of the event log (env ZONEGEN_DB).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.version_option(__version__, prog_name="zonegen")
@click.pass_context
def main(ctx: click.Context, db_url: str, verbose: int, quiet: bool) -> None:
    """Publish Kubernetes service discovery as DNS zones.

    zonegen keeps every Service and EndpointSlice change in an append-only event log,
    projects it into the records of the Kubernetes DNS specification, and publishes
    them as RFC 1035 zone files or over AXFR/IXFR to BIND, Knot, NSD or PowerDNS.
    """
    _setup_logging(verbose, quiet)
    ctx.obj = {"db": db_url}


def _open_store(ctx: click.Context,
                mode: Literal["read", "inspect", "write"] = "read") -> Any:
    """The database for this command, closed when it ends (and removed again when this
    command created it and failed before storing anything). ``mode`` is ``read``,
    ``inspect`` or ``write``: see zonegen.store.database."""
    from zonegen.store import opened

    return ctx.with_resource(opened(ctx.obj["db"], mode))


def zone_options(func: F) -> F:
    """The options that say how a zone is published (export, serve, history)."""
    options = [
        click.option("--zone", default="cluster.local", show_default=True,
                     help="Zone to publish: the cluster domain, any other domain, or a "
                          "reverse zone (…in-addr.arpa / …ip6.arpa) for PTR records."),
        click.option("--forward-zone", default=None, metavar="ZONE",
                     help="Domain that Service names live in (default: --zone, or "
                          "cluster.local for a reverse zone)."),
        click.option("--ns", "nameservers", multiple=True, metavar="NAME[=ADDRESS]",
                     help="NS record (repeatable). Default ns.dns.<zone>=127.0.0.1."),
        click.option("--hostmaster", default=None, metavar="NAME",
                     help="SOA RNAME. Default hostmaster.<zone> (hostmaster.<forward zone> for "
                          "a reverse zone)."),
        click.option("--ttl", type=click.IntRange(0, 2**31 - 1), default=5,
                     show_default=True, help="TTL of every record (CoreDNS's default)."),
        click.option("--refresh", type=click.IntRange(0, 2**31 - 1), default=7200,
                     show_default=True, help="SOA refresh."),
        click.option("--retry", type=click.IntRange(0, 2**31 - 1), default=1800,
                     show_default=True, help="SOA retry."),
        click.option("--expire", type=click.IntRange(0, 2**31 - 1), default=86400,
                     show_default=True, help="SOA expire."),
        click.option("--minimum", type=click.IntRange(0, 2**31 - 1), default=5,
                     show_default=True, help="SOA minimum (negative-caching TTL)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _zone_config(kwargs: dict[str, Any]) -> Any:
    from zonegen.names import zone_config

    return zone_config(
        zone=kwargs.pop("zone"), forward_zone=kwargs.pop("forward_zone"),
        nameservers=kwargs.pop("nameservers"), hostmaster=kwargs.pop("hostmaster"),
        ttl=kwargs.pop("ttl"), refresh=kwargs.pop("refresh"), retry=kwargs.pop("retry"),
        expire=kwargs.pop("expire"), minimum=kwargs.pop("minimum"),
    )


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    from zonegen.clock import parse_time

    return parse_time(value)


# --------------------------------------------------------------------------- db


@main.group()
def db() -> None:
    """Database schema (migrations run automatically; these are for operators)."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply all migrations to the database."""
    store = _open_store(ctx, "write")
    click.echo(f"{store.where}: schema at revision {store.current_revision()}")


@db.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Print the schema revision of the database."""
    store = _open_store(ctx, "inspect")
    click.echo(store.current_revision() or "empty (no schema yet)")


# --------------------------------------------------------------------------- ingest


@main.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE... | -")
@click.option("--snapshot", is_flag=True,
              help="The input is the whole truth for the kinds it contains: stored "
                   "objects of those kinds missing from it get DELETED events.")
@click.option("--source", default="ingest", show_default=True,
              help="Source name recorded with each event.")
@click.option("--time", "when", default=None, metavar="ISO8601",
              help="Stamp events and the zone version with this time instead of now "
                   "(for replaying recorded incidents and for tests).")
@click.option("--no-project", is_flag=True, help="Only store events; do not project.")
@click.pass_context
def ingest(ctx: click.Context, files: tuple[str, ...], snapshot: bool, source: str,
           when: str | None, no_project: bool) -> None:
    """Store Services, EndpointSlices and Endpoints printed by kubectl.

    Reads JSON or YAML: single objects, Lists, or watch-event streams from
    `kubectl get -w -o json --output-watch-events`. Re-ingesting the same input adds
    nothing. Then projects the new events into a zone version.
    """
    from zonegen.ingest import ingest_files

    report = ingest_files(_open_store(ctx, "write"), list(files), snapshot=snapshot, source=source,
                          when=_parse_time(when), project=not no_project)
    click.echo(report.summary())


# --------------------------------------------------------------------------- project


@main.command("project")
@click.option("--rebuild", is_flag=True,
              help="Replay the whole log from nothing and check that it yields the "
                   "identical record set.")
@click.pass_context
def project_cmd(ctx: click.Context, rebuild: bool) -> None:
    """Fold pending events into a new zone version and print its serial."""
    from zonegen.export import project_pending, rebuild_check

    store = _open_store(ctx, "write")
    if rebuild:
        report = rebuild_check(store)
        click.echo(report.summary())
        if not report.identical:
            sys.exit(1)
        return
    click.echo(project_pending(store).summary())


# --------------------------------------------------------------------------- export


@main.command()
@zone_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=False),
              default=None, help="Write the zone atomically to FILE (default: stdout).")
@click.option("--serial", type=click.IntRange(0, 2**32 - 1), default=None,
              help="Export the zone as published at this serial.")
@click.option("--at", "at", default=None, metavar="TIME",
              help="Export the zone as it was at this time (ISO 8601; UTC when no offset "
                   "is given).")
@click.pass_context
def export(ctx: click.Context, /, output: str | None, serial: int | None, at: str | None,
           **kwargs: Any) -> None:
    """Write the zone as an RFC 1035 master file."""
    from zonegen.export import export_zone

    config = _zone_config(kwargs)
    result = export_zone(_open_store(ctx), config, serial=serial, at=_parse_time(at),
                         output=output, stream=None if output else sys.stdout)
    if output:
        click.echo(result.summary(), err=True)


# --------------------------------------------------------------------------- demo


@main.command()
@zone_options
@click.pass_context
def demo(ctx: click.Context, /, **kwargs: Any) -> None:
    """Ingest a built-in sample cluster into a temporary database and print its zone."""
    from zonegen.demo import run_demo

    run_demo(_zone_config(kwargs), sys.stdout)


# --------------------------------------------------------------------------- watch


@main.command()
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None,
              help="kubeconfig file (default: $KUBECONFIG, the in-cluster service "
                   "account when run in a Pod, else ~/.kube/config).")
@click.option("--context", default=None, help="kubeconfig context (default: current).")
@click.option("-n", "--namespace", "namespaces", multiple=True, metavar="NS",
              help="Watch only this namespace (repeatable; default: all namespaces).")
@click.option("--endpoints", "legacy_endpoints", is_flag=True,
              help="Watch legacy v1 Endpoints instead of discovery.k8s.io/v1 EndpointSlices.")
@click.option("--source", default=None,
              help="Source name recorded with each event and resume point "
                   "(default: watch:<context or API server host>).")
@click.option("--once", is_flag=True, help="List, store, project, exit (cron-style).")
@click.option("--no-project", is_flag=True,
              help="Only store events; another zonegen (serve, export) projects them.")
@click.pass_context
def watch(ctx: click.Context, kubeconfig: str | None, context: str | None,
          namespaces: tuple[str, ...], legacy_endpoints: bool, source: str | None,
          once: bool, no_project: bool) -> None:
    """List, then watch, Services and EndpointSlices into the event log.

    Resumes where the last run stopped; after a 410 Gone (or at first start) it relists
    and records DELETED events for objects that vanished while nobody watched. Stops
    cleanly on SIGINT/SIGTERM, committing what it has received.
    """
    from zonegen.watch import WatchOptions, watch_command

    options = WatchOptions(namespaces=namespaces, legacy_endpoints=legacy_endpoints,
                           source=source, project=not no_project)
    report = watch_command(_open_store(ctx, "write"), kubeconfig=kubeconfig, context=context,
                           options=options, once=once)
    click.echo(report.summary())


# --------------------------------------------------------------------------- audit


def _print_json_lines(values: Any) -> None:
    from zonegen.history import to_json_line

    for value in values:
        click.echo(to_json_line(value))


@main.command()
@zone_options
@click.argument("name")
@click.option("--type", "rtype", default=None, metavar="TYPE",
              help="Only records of this type (A, AAAA, CNAME, PTR, SRV, TXT).")
@click.option("--since", default=None, metavar="TIME", help="Only changes at or after TIME.")
@click.option("--until", default=None, metavar="TIME", help="Only changes at or before TIME.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per change, per line.")
@click.pass_context
def history(ctx: click.Context, /, name: str, rtype: str | None, since: str | None,
            until: str | None, as_json: bool, **kwargs: Any) -> None:
    """Every change of the records at NAME, with the Kubernetes event that caused it.

    NAME is absolute with a trailing dot, or relative to --zone (for a reverse zone,
    the PTR owner). Times are ISO 8601, UTC when no offset is given.
    """
    from zonegen.history import format_history, name_history

    config = _zone_config(kwargs)
    store = _open_store(ctx)
    entries = name_history(store, name, config, type=rtype, since=_parse_time(since),
                           until=_parse_time(until))
    note = store.history_note()
    if as_json:
        if note:
            click.echo(f"zonegen: {note}", err=True)
        _print_json_lines(e.to_json() for e in entries)
        return
    if note:
        click.echo(f"; {note}")
    if not entries:
        click.echo("; no changes")
        return
    for line in format_history(entries):
        click.echo(line)


@main.command()
@zone_options
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per record, per line.")
@click.pass_context
def diff(ctx: click.Context, /, a: str, b: str, as_json: bool, **kwargs: Any) -> None:
    """Records added (+) and removed (-) going from version A to version B.

    A and B are serials or times (ISO 8601; a time means the version current then).
    """
    from zonegen.history import diff_versions, format_diff

    result = diff_versions(_open_store(ctx), a, b, _zone_config(kwargs))
    if as_json:
        _print_json_lines(line.to_json() for line in result.lines)
        return
    for line in format_diff(result):
        click.echo(line)


@main.command("log")
@click.option("--since", default=None, metavar="TIME", help="Events received at or after TIME.")
@click.option("--until", default=None, metavar="TIME", help="Events received at or before TIME.")
@click.option("--kind", default=None, help="Service, EndpointSlice or Endpoints.")
@click.option("--namespace", "-n", default=None, help="Only this namespace.")
@click.option("--name", default=None, help="Only objects of this name.")
@click.option("--last", type=int, default=None, metavar="N", help="Only the newest N events.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per event, per line, with the object as received.")
@click.pass_context
def log_cmd(ctx: click.Context, since: str | None, until: str | None, kind: str | None,
            namespace: str | None, name: str | None, last: int | None, as_json: bool) -> None:
    """The raw event log, newest last: what Kubernetes said, and when."""
    from zonegen.history import event_json, event_log, format_log

    store = _open_store(ctx)
    events = event_log(store, since=_parse_time(since), until=_parse_time(until), kind=kind,
                       namespace=namespace, name=name, last=last)
    if as_json:
        _print_json_lines(event_json(e) for e in events)
        return
    note = store.history_note()
    if note:
        click.echo(f"; {note}")
    for line in format_log(events):
        click.echo(line)


@main.command()
@zone_options
@click.argument("name")
@click.argument("rtype", metavar="TYPE")
@click.argument("rdata", nargs=-1, required=True, metavar="RDATA...")
@click.option("--json", "as_json", is_flag=True, help="The answer as one JSON object.")
@click.pass_context
def why(ctx: click.Context, /, name: str, rtype: str, rdata: tuple[str, ...], as_json: bool,
        **kwargs: Any) -> None:
    """Why NAME TYPE RDATA is in the zone: the event that added it and the Service,
    EndpointSlices and Endpoints it is projected from (with resourceVersions)."""
    from zonegen.history import format_why, to_json_line
    from zonegen.history import why as explain

    report = explain(_open_store(ctx), name, rtype, " ".join(rdata), _zone_config(kwargs))
    if as_json:
        click.echo(to_json_line(report.to_json()))
        return
    for line in format_why(report):
        click.echo(line)


@main.command()
@click.option("--keep-days", type=float, default=None, metavar="D",
              help="Keep what is needed to export any time in the last D days.")
@click.option("--keep-versions", type=int, default=None, metavar="K",
              help="Keep the newest K zone versions.")
@click.pass_context
def compact(ctx: click.Context, keep_days: float | None, keep_versions: int | None) -> None:
    """Delete old zone versions and the events they consumed (only when asked).

    The oldest kept version gets a snapshot of its records, so later exports, history,
    diffs and IXFR stay exact; older serials then answer "history begins at serial N".
    """
    from zonegen.history import compact as run_compact

    click.echo(run_compact(_open_store(ctx, "write"), keep_days=keep_days,
                           keep_versions=keep_versions).summary())


# --------------------------------------------------------------------------- serve


@main.command()
@zone_options
@click.option("--extra-zone", "extra_zones", multiple=True, metavar="ZONE",
              help="Also serve ZONE (e.g. 10.in-addr.arpa) from the same log at the same "
                   "serial, with the same SOA/NS options (repeatable).")
@click.option("--listen", multiple=True, metavar="HOST:PORT",
              help="Address to answer on, UDP and TCP (repeatable; IPv6 as [::1]:5353). "
                   "Default 127.0.0.1:5353.")
@click.option("--allow-transfer", multiple=True, metavar="CIDR",
              help="Clients allowed AXFR/IXFR (repeatable). Default 127.0.0.0/8 and ::1.")
@click.option("--tsig-key", "tsig_keys", multiple=True, metavar="NAME:ALGORITHM:SECRET",
              help="TSIG key (repeatable); when any is given, transfers must be signed.")
@click.option("--tsig-keyfile", "tsig_keyfiles", multiple=True,
              type=click.Path(dir_okay=False), metavar="FILE",
              help='TSIG keys in BIND syntax: key "name" { algorithm hmac-sha256; '
                   'secret "..."; }; (repeatable).')
@click.option("--notify", multiple=True, metavar="HOST:PORT",
              help="Secondary to NOTIFY on every new serial (repeatable); signed with the "
                   "first TSIG key when keys are configured.")
@click.option("--poll", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Seconds between checks of the database for new zone versions.")
@click.option("--max-transfers", type=click.IntRange(min=1), default=16, show_default=True,
              help="Concurrent AXFR/IXFR at most.")
@click.option("--watch", "watch_cluster", is_flag=True,
              help="Also watch Kubernetes in this process (see `zonegen watch`).")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None,
              help="With --watch: kubeconfig file.")
@click.option("--context", default=None, help="With --watch: kubeconfig context.")
@click.option("-n", "--namespace", "namespaces", multiple=True, metavar="NS",
              help="With --watch: only this namespace (repeatable).")
@click.option("--endpoints", "legacy_endpoints", is_flag=True,
              help="With --watch: legacy v1 Endpoints instead of EndpointSlices.")
@click.option("--source", default=None, help="With --watch: source name of the events.")
@click.pass_context
def serve(ctx: click.Context, /, extra_zones: tuple[str, ...], listen: tuple[str, ...],
          allow_transfer: tuple[str, ...], tsig_keys: tuple[str, ...],
          tsig_keyfiles: tuple[str, ...], notify: tuple[str, ...], poll: float,
          max_transfers: int, watch_cluster: bool, kubeconfig: str | None,
          context: str | None, namespaces: tuple[str, ...], legacy_endpoints: bool,
          source: str | None, **kwargs: Any) -> None:
    """Serve the zone over DNS: answers, AXFR, IXFR and NOTIFY, until SIGINT/SIGTERM.

    New zone versions written to the database by `zonegen watch` or `zonegen ingest`
    are served within --poll seconds and NOTIFYed to every --notify secondary.
    """
    from zonegen.serve import WatchConfig, serve_command, serve_options
    from zonegen.watch import WatchOptions

    options = serve_options(listen=listen, allow_transfer=allow_transfer,
                            tsig_keys=tsig_keys, tsig_keyfiles=tsig_keyfiles, notify=notify,
                            poll=poll, max_transfers=max_transfers)
    watch_config = WatchConfig(kubeconfig, context, WatchOptions(
        namespaces=namespaces, legacy_endpoints=legacy_endpoints, source=source)
    ) if watch_cluster else None
    report = serve_command(_open_store(ctx, "write" if watch_cluster else "read"),
                           _zone_config(kwargs), extra_zones=extra_zones,
                           options=options, watch=watch_config,
                           ready=lambda line: click.echo(line, err=True))
    click.echo(report.summary())


if __name__ == "__main__":
    main()
