"""The ``zonegen`` command line: parse, call one zonegen function, print. No logic here.

Every :class:`zonegen.errors.ZonegenError` becomes a one-line message on stderr and
exit code 1 (click's ClickException), never a traceback; usage errors (unknown or
conflicting options, numbers out of range) exit 2 as click's convention says. Options
several commands share are defined once, as decorators (``zone_options``,
``watch_options``), the way sqlite-utils groups its options.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import click

from zonegen import __version__
from zonegen.errors import InvalidOption, ZonegenError
from zonegen.logs import LOG_FORMATS

if TYPE_CHECKING:
    from zonegen.model import ZoneConfig
    from zonegen.projections import ProjectionSpec
    from zonegen.store import Store

F = TypeVar("F", bound=Callable[..., Any])

# Errors of a write to standard output that the reader or the device caused, not zonegen:
# `zonegen export > /dev/full`, `zonegen log | head -1`.
_STDOUT_ERRNOS = frozenset({errno.EPIPE, errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO,
                            errno.EBADF})


class _ClosedStdout(io.TextIOBase):
    """Standard output when the process started with it closed (`zonegen log >&-`):
    Python then sets ``sys.stdout`` to None and click would print into the void; this
    fails the first write instead, as a closed descriptor does."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "it is closed")


class ZonegenGroup(click.Group):
    """Turns package errors into one-line CLI errors."""

    def invoke(self, ctx: click.Context) -> Any:
        if sys.stdout is None:
            sys.stdout = _ClosedStdout()
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a full disk shows here, not at interpreter exit
            return result
        except InvalidOption as e:
            raise click.UsageError(str(e)) from None
        except ZonegenError as e:
            raise click.ClickException(str(e)) from None
        except OSError as e:
            if e.errno not in _STDOUT_ERRNOS or e.filename is not None:
                raise
            _silence_stdout()
            raise click.ClickException(
                f"cannot write to standard output: {e.strerror or e}") from None


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's own flush at exit, which would find
    the same full or closed stdout, neither fails nor prints "Exception ignored"."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # not a real file (click's test runner)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


#: Commands that run until stopped: their default log level shows their lifecycle.
LONG_RUNNING = frozenset({"serve", "watch"})


def _setup_logging(ctx: click.Context, *, long_running: bool) -> None:
    """(Re)configure the ``zonegen`` logger from the global options in ``ctx.obj``."""
    from zonegen.logs import setup_logging

    log_format, verbose, quiet = ctx.obj["log"]
    setup_logging(log_format, verbose, quiet, long_running=long_running)


def _echo_json(value: dict[str, Any]) -> None:
    """One JSON object on one line of standard output (a command's ``--json`` summary)."""
    import json

    click.echo(json.dumps(value, separators=(",", ":"), default=str))


@click.group(cls=ZonegenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db_url", envvar="ZONEGEN_DB", default="sqlite:///zonegen.db",
              show_default=True, metavar="URL",
              help="SQLAlchemy database URL of the event log (env ZONEGEN_DB).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), envvar="ZONEGEN_LOG_FORMAT",
              default="text", show_default=True,
              help="Log lines on stderr: text (TIME zonegen: LEVEL: message key=value) or "
                   "json (one object per line; env ZONEGEN_LOG_FORMAT).")
@click.version_option(__version__, prog_name="zonegen")
@click.pass_context
def main(ctx: click.Context, db_url: str, verbose: int, quiet: bool, log_format: str) -> None:
    """Publish Kubernetes service discovery as DNS zones.

    zonegen keeps every Service and EndpointSlice change in an append-only event log,
    projects it into the records of the Kubernetes DNS specification, and publishes
    them as RFC 1035 zone files or over AXFR/IXFR to BIND, Knot, NSD or PowerDNS.

    Example:

    \b
        zonegen --db sqlite:///zonegen.db watch --once
        zonegen export -o /var/lib/bind/cluster.local.zone
    """
    ctx.obj = {"db": db_url, "log": (log_format, verbose, quiet)}
    _setup_logging(ctx, long_running=ctx.invoked_subcommand in LONG_RUNNING)


def _iso(when: datetime) -> str:
    """ISO 8601 UTC with a Z, as the other JSON outputs write times."""
    from datetime import UTC

    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _open_store(ctx: click.Context,
                mode: Literal["read", "inspect", "write"] = "read") -> Store:
    """The database for this command, closed when it ends (and removed again when this
    command created it and failed before storing anything). ``mode`` is ``read``,
    ``inspect`` or ``write``: see zonegen.store.database."""
    from zonegen.store import opened

    return ctx.with_resource(opened(ctx.obj["db"], mode))


# --------------------------------------------------------------------------- types


if TYPE_CHECKING:
    _TimeBase = click.ParamType[datetime]
else:  # click < 8.4's ParamType is not generic at run time
    _TimeBase = click.ParamType


class TimeType(_TimeBase):
    """A time as users type it (ISO 8601, UTC when no offset is given), parsed by
    :func:`zonegen.clock.parse_time`. A bad time stays zonegen's one-line error (exit 1)
    with zonegen's wording, as before this type existed."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        from zonegen.clock import parse_time

        return parse_time(str(value))


TIME = TimeType()

# The largest row count SQL can take; a larger --last is out of range (a usage error),
# not an OverflowError in the database driver.
MAX_COUNT = 2**63 - 1


# --------------------------------------------------------------------------- option groups


def _apply(options: list[Callable[[F], F]], func: F) -> F:
    for option in reversed(options):
        func = option(func)
    return func


def zone_options(func: F) -> F:
    """The options that say how a zone is published (export, serve, history, diff, why,
    demo); the command turns them into a ZoneConfig with :func:`_zone_config`."""
    return _apply([
        click.option("--zone", default="cluster.local", show_default=True,
                     help="Zone to publish: the cluster domain, any other domain, or a "
                          "reverse zone (…in-addr.arpa / …ip6.arpa) for PTR records."),
        click.option("--forward-zone", default=None, metavar="ZONE",
                     help="Domain that Service names live in (default: --zone, or "
                          "cluster.local for a reverse zone)."),
        click.option("--ns", "nameservers", multiple=True, metavar="NAME[=ADDRESS]",
                     help="NS record (repeatable). A NAME with a dot is absolute, a single "
                          "label is in the zone. Default ns.dns.<zone>=127.0.0.1."),
        click.option("--hostmaster", default=None, metavar="NAME",
                     help="SOA RNAME (NAME or MAILBOX@DOMAIN). Default hostmaster.<zone> "
                          "(hostmaster.<forward zone> for a reverse zone)."),
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
    ], func)


def _checked_by(rule: Callable[[str], str]) -> Callable[..., str | None]:
    """A click callback applying ``rule`` (zonegen.sources): its InvalidOption becomes a
    usage error naming the option; an absent value stays None."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return rule(value)
        except InvalidOption as e:
            raise click.BadParameter(str(e), ctx, param) from None

    return callback


def _source_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--source``: an RFC 1123 label, else a usage error."""
    from zonegen.sources import check_source_name

    return _checked_by(check_source_name)(ctx, param, value)


def _sources_names(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
                   ) -> tuple[str, ...]:
    """A repeatable ``--source``: each an RFC 1123 label, else a usage error."""
    return tuple(str(_source_name(ctx, param, v)) for v in value)


def _cluster_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--cluster-id``: an RFC 1123 subdomain, else a usage error."""
    from zonegen.sources import check_cluster_id

    return _checked_by(check_cluster_id)(ctx, param, value)


def projection_option(func: F) -> F:
    """``--source NAME``: the commands that read one zone (export, history, diff, why,
    status) read the zone of that source's projection instead of the default one.
    ``--zone ZONE=TARGET`` says the same with a zone name and any projection."""
    return click.option(
        "--source", "projection_source", default=None, callback=_source_name,
        metavar="NAME",
        help="The zone of this source (cluster): the projection source:NAME, published "
             "as --zone (default cluster.local). Same as --zone ZONE=source:NAME; "
             "--zone ZONE=imports:HUB or ZONE=exports:A,B,... name a clusterset "
             "projection.")(func)


def _zone_and_projection(ctx: click.Context, kwargs: dict[str, Any]
                         ) -> tuple[ZoneConfig, ProjectionSpec]:
    """The zone options as a ZoneConfig and the projection they select: ``--zone
    ZONE[=TARGET]`` or ``--source NAME`` (not both); bad targets are usage errors."""
    from zonegen.projections import CLUSTER_LOCAL, ProjectionSpec, parse_zone_option

    source = kwargs.pop("projection_source", None)
    try:
        zone, spec = parse_zone_option(kwargs["zone"])
    except InvalidOption as e:
        raise click.BadParameter(str(e), ctx, param_hint="'--zone'") from None
    if source is not None:
        if "=" in kwargs["zone"]:
            raise click.UsageError("--source NAME and --zone ZONE=TARGET both pick a "
                                   "projection; give one of them")
        spec = ProjectionSpec(CLUSTER_LOCAL, (source,))
    kwargs["zone"] = zone
    return _zone_config(kwargs), spec


def _projection_store(ctx: click.Context, spec: ProjectionSpec,
                      mode: Literal["read", "inspect", "write"] = "read") -> Store:
    """The store for a command reading ``spec``'s zone; the first use of a projection
    registers it, so writers keep it folded (zonegen.runner.adopt_projection)."""
    from zonegen.runner import adopt_projection

    store = _open_store(ctx, mode)
    adopt_projection(store, spec)
    return store


def watch_options(func: F) -> F:
    """How to reach and what to watch in Kubernetes (``watch``, and ``serve --watch``)."""
    return _apply([
        click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None,
                     help="kubeconfig file (default: $KUBECONFIG, the in-cluster service "
                          "account when run in a Pod, else ~/.kube/config)."),
        click.option("--context", default=None, help="kubeconfig context (default: current)."),
        click.option("-n", "--namespace", "namespaces", multiple=True, metavar="NS",
                     help="Watch only this namespace (repeatable; default: all namespaces)."),
        click.option("--endpoints", "legacy_endpoints", is_flag=True,
                     help="Watch legacy v1 Endpoints instead of discovery.k8s.io/v1 "
                          "EndpointSlices."),
        click.option("--source", default=None, callback=_source_name,
                     help="The cluster's source name (an RFC 1123 label; default: "
                          "default): its events, resume points and objects are kept "
                          "apart from other sources'. How they arrived is recorded as "
                          "the origin watch:<context or API server host>."),
        click.option("--request-timeout", type=click.FloatRange(min=0.001), default=10.0,
                     show_default=True, metavar="SECONDS",
                     help="Give up on an API server that does not answer a list (or a "
                          "connection) within this long; watches keep their own timeout."),
    ], func)


def _zone_config(kwargs: dict[str, Any]) -> ZoneConfig:
    from zonegen.names import zone_config

    return zone_config(
        zone=kwargs.pop("zone"), forward_zone=kwargs.pop("forward_zone"),
        nameservers=kwargs.pop("nameservers"), hostmaster=kwargs.pop("hostmaster"),
        ttl=kwargs.pop("ttl"), refresh=kwargs.pop("refresh"), retry=kwargs.pop("retry"),
        expire=kwargs.pop("expire"), minimum=kwargs.pop("minimum"),
    )


# --------------------------------------------------------------------------- db


@main.group()
def db() -> None:
    """Database schema (migrations run automatically; these are for operators).

    Example:

    \b
        zonegen --db postgresql://zonegen@db/zonegen db upgrade
    """


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply all migrations to the database.

    Example:

    \b
        zonegen --db sqlite:///var/lib/zonegen/zonegen.db db upgrade
    """
    store = _open_store(ctx, "write")
    click.echo(f"{store.where}: schema at revision {store.current_revision()}")


@db.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Print the schema revision of the database.

    Example:

    \b
        zonegen --db sqlite:///var/lib/zonegen/zonegen.db db current
    """
    store = _open_store(ctx, "inspect")
    click.echo(store.current_revision() or "empty (no schema yet)")


# --------------------------------------------------------------------------- ingest


@main.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE... | -")
@click.option("--snapshot", is_flag=True,
              help="The input is the whole truth for the kinds it contains: stored "
                   "objects of those kinds missing from it get DELETED events.")
@click.option("--source", default="default", show_default=True, callback=_source_name,
              help="The cluster these objects belong to (an RFC 1123 label); a "
                   "--snapshot only deletes objects of this source.")
@click.option("--cluster-id", default=None, callback=_cluster_id, metavar="ID",
              help="The source's cluster id for multi-cluster DNS names (an RFC 1123 "
                   "subdomain; default: the source name, or the one stored before).")
@click.option("--time", "when", type=TIME, default=None, metavar="ISO8601",
              help="Stamp events and the zone version with this time instead of now "
                   "(for replaying recorded incidents and for tests).")
@click.option("--no-project", is_flag=True, help="Only store events; do not project.")
@click.option("--json", "as_json", is_flag=True,
              help="The summary as one JSON object on stdout.")
@click.pass_context
def ingest(ctx: click.Context, files: tuple[str, ...], snapshot: bool, source: str,
           cluster_id: str | None, when: datetime | None, no_project: bool,
           as_json: bool) -> None:
    """Store Services, EndpointSlices and Endpoints printed by kubectl.

    Reads JSON or YAML: single objects, Lists, or watch-event streams from
    `kubectl get -w -o json --output-watch-events`. Re-ingesting the same input adds
    nothing. Then projects the new events into a zone version.

    Example:

    \b
        kubectl get services,endpointslices -A -o json | zonegen ingest --snapshot -
    """
    from zonegen.ingest import ingest_files

    report = ingest_files(_open_store(ctx, "write"), list(files), snapshot=snapshot,
                          source=source, cluster_id=cluster_id,
                          when=when, project=not no_project)
    if as_json:
        _echo_json(report.to_json())
    else:
        click.echo(report.summary())


# --------------------------------------------------------------------------- project


@main.command("project")
@click.option("--rebuild", is_flag=True,
              help="Replay the whole log from nothing and check that it yields the "
                   "identical record set.")
@click.option("--source", "projection_source", default=None, callback=_source_name,
              metavar="NAME", help="Only the projection source:NAME (default: every "
                                   "registered projection).")
@click.option("--projection", "target", default=None, metavar="TARGET",
              help="Only this projection: source:NAME, imports:NAME or exports:A,B,...")
@click.option("--json", "as_json", is_flag=True,
              help="The summary as one JSON object on stdout.")
@click.pass_context
def project_cmd(ctx: click.Context, rebuild: bool, projection_source: str | None,
                target: str | None, as_json: bool) -> None:
    """Fold pending events into new zone versions and print the serials.

    Every registered projection (the default zone, and each one `export --zone
    ZONE=TARGET` or `--source` named) is folded; --source/--projection pick one.

    Example:

    \b
        zonegen project --rebuild
        zonegen project --rebuild --source b
    """
    from zonegen.export import project_pending, rebuild_check
    from zonegen.projections import CLUSTER_LOCAL, ProjectionSpec, parse_target

    if projection_source is not None and target is not None:
        raise click.UsageError("--source and --projection both pick a projection; "
                               "give one of them")
    store = _open_store(ctx, "write")
    specs = store.projections()
    if target is not None:
        try:
            specs = [parse_target(target)]
        except InvalidOption as e:
            raise click.BadParameter(str(e), ctx, param_hint="'--projection'") from None
    elif projection_source is not None:
        specs = [ProjectionSpec(CLUSTER_LOCAL, (projection_source,))]
    if target is not None or projection_source is not None:
        from zonegen.runner import adopt_projection

        adopt_projection(store, specs[0])  # registers it when new
    label = len(specs) > 1 or specs[0].name != "projection"
    if rebuild:
        reports = [(spec, rebuild_check(store, spec=spec)) for spec in specs]
        if as_json:
            rows = {spec.target: {
                "events": r.events, "records": r.records, "identical": r.identical,
                "missing": len(r.missing), "extra": len(r.extra),
                "seconds": round(r.seconds, 6)} for spec, r in reports}
            _echo_json(next(iter(rows.values())) if len(rows) == 1 else rows)
        else:
            for spec, report in reports:
                click.echo(f"{spec.target}: {report.summary()}" if label
                           else report.summary())
        if not all(r.identical for _, r in reports):
            sys.exit(1)
        return
    results = [(spec, project_pending(store, spec=spec)) for spec in specs]
    if as_json:
        values = {spec.target: {"serial": r.serial, "versions": r.versions}
                  for spec, r in results}
        _echo_json(next(iter(values.values())) if len(values) == 1 else values)
    else:
        for spec, result in results:
            click.echo(f"{spec.target}: {result.summary()}" if label else result.summary())


# --------------------------------------------------------------------------- source


@main.group("source")
def source_group() -> None:
    """The sources (clusters) in the log: list them, remove one that went away.

    Example:

    \b
        zonegen source remove b
    """


@source_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@click.pass_context
def source_list_cmd(ctx: click.Context, as_json: bool) -> None:
    """Every source the log knows: cluster id, events, newest arrival, resume points.

    Example:

    \b
        zonegen source list
    """
    from zonegen.status import source_list

    states = source_list(_open_store(ctx))
    if as_json:
        _echo_json({s.name: s.to_json() for s in states})
        return
    for state in states:
        click.echo(state.text())


@source_group.command("remove")
@click.argument("name", callback=_source_name)
@click.option("--force", is_flag=True, help="Also remove the source default.")
@click.option("--json", "as_json", is_flag=True,
              help="The summary as one JSON object on stdout.")
@click.pass_context
def source_remove_cmd(ctx: click.Context, name: str, force: bool, as_json: bool) -> None:
    """A cluster went away: delete every object of source NAME from its zones.

    Appends a DELETED event for every live object of NAME, drops its watch resume
    points and its registration (its cluster id is free again), then folds every
    projection: each drops exactly that cluster's records, and `history` and `why`
    name the source of the removals. Its events stay in the log (past zones remain
    exportable). Stop any `watch --source NAME` first: a running watch would list the
    cluster again and re-add everything. `default` needs --force.

    Example:

    \b
        zonegen source remove b
    """
    from zonegen.removal import remove_source

    report = remove_source(_open_store(ctx, "write"), name, force=force)
    if as_json:
        _echo_json({"source": report.source, "deleted": report.deleted,
                    "resume_points": report.resume_points,
                    "serials": dict(report.serials)})
    else:
        click.echo(report.summary())


# --------------------------------------------------------------------------- export


@main.command()
@zone_options
@projection_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=False),
              default=None, help="Write the zone atomically to FILE (default: stdout).")
@click.option("--serial", type=click.IntRange(0, 2**32 - 1), default=None,
              help="Export the zone as published at this serial.")
@click.option("--at", "at", type=TIME, default=None, metavar="TIME",
              help="Export the zone as it was at this time (ISO 8601; UTC when no offset "
                   "is given).")
@click.option("--json", "as_json", is_flag=True,
              help="With -o: the summary as one JSON object on stdout (instead of the "
                   "text line on stderr).")
@click.pass_context
def export(ctx: click.Context, /, output: str | None, serial: int | None,
           at: datetime | None, as_json: bool, **kwargs: Any) -> None:
    """Write the zone as an RFC 1035 master file.

    --zone ZONE=source:NAME (or --source NAME) writes the zone of one source (cluster),
    with its own serials; the first use registers that projection, so `watch` and
    `ingest` keep it up to date from then on.

    Example:

    \b
        zonegen export --zone cluster.local -o /var/lib/bind/cluster.local.zone
        zonegen export --zone a.k8s.example.org=source:a -o a.k8s.example.org.zone
    """
    from zonegen.export import export_zone

    if serial is not None and at is not None:
        raise click.UsageError("--serial and --at both pick a version; give one of them")
    if as_json and not output:
        raise click.UsageError("--json summarizes the file written by -o; without -o "
                               "standard output is the zone itself")
    config, spec = _zone_and_projection(ctx, kwargs)
    result = export_zone(_projection_store(ctx, spec), config, serial=serial, at=at,
                         output=output, stream=None if output else sys.stdout, spec=spec)
    if as_json:
        _echo_json({"zone": result.zone, "serial": result.serial, "records": result.records,
                    "path": result.path})
    elif output:
        click.echo(result.summary(), err=True)


# --------------------------------------------------------------------------- demo


@main.command()
@zone_options
@click.pass_context
def demo(ctx: click.Context, /, **kwargs: Any) -> None:
    """Ingest a built-in sample cluster into a temporary database and print its zone.

    Example:

    \b
        zonegen demo --zone example.org --ns ns1=192.0.2.53
    """
    from zonegen.demo import run_demo

    run_demo(_zone_config(kwargs), sys.stdout)


# --------------------------------------------------------------------------- watch


class _SourcesCommand(click.Command):
    """``watch`` with repeatable sources: ``--source a --kubeconfig A --source b
    --kubeconfig B --context ctx-b``. Each ``--kubeconfig``/``--context``/``--cluster-id``
    belongs to the ``--source`` before it, which click's flat options cannot say, so the
    arguments are split into groups here, before click parses the rest. The groups land
    in ``ctx.meta["zonegen.sources"]`` (None without any ``--source``: the options are
    then click's as usual)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        groups, rest = _source_groups(args)
        ctx.meta["zonegen.sources"] = groups
        return super().parse_args(ctx, rest)


_PER_SOURCE = {"--kubeconfig": "kubeconfig", "--context": "context",
               "--cluster-id": "cluster_id"}


def _source_groups(args: list[str]) -> tuple[list[dict[str, str]] | None, list[str]]:
    """``(groups, the other arguments)``: one dict per ``--source`` (``name`` and the
    per-source options after it). A single ``--source`` also takes the per-source
    options before it (``watch --kubeconfig F --source a``)."""
    from zonegen.sources import check_source_name

    groups: list[dict[str, str]] = []
    before: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        option, eq, value = arg.partition("=")
        if option != "--source" and option not in _PER_SOURCE or (
                not eq and i + 1 >= len(args)):
            rest.append(arg)
            i += 1
            continue
        if not eq:
            value = args[i + 1]
            i += 1
        i += 1
        if option == "--source":
            try:
                groups.append({"name": check_source_name(value)})
            except InvalidOption as e:
                raise click.BadParameter(str(e), param_hint="'--source'") from None
            continue
        target = groups[-1] if groups else before
        key = _PER_SOURCE[option]
        if key in target:
            whose = f"source {target['name']}" if "name" in target else "the source"
            raise click.UsageError(f"{option} given twice for {whose}")
        target[key] = value
    if not groups:
        return None, args
    if before:
        if len(groups) > 1:
            raise click.UsageError(
                f"{', '.join(sorted('--' + k.replace('_', '-') for k in before))} before "
                "the first --source: with several sources, each --kubeconfig, --context "
                "and --cluster-id follows the --source it belongs to")
        for key, value in before.items():
            if key in groups[0]:
                raise click.UsageError(f"--{key.replace('_', '-')} given twice for "
                                       f"source {groups[0]['name']}")
            groups[0][key] = value
    names = [g["name"] for g in groups]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise click.UsageError(f"--source {twice[0]} given twice")
    return groups, rest


@main.command(cls=_SourcesCommand)
@watch_options
@click.option("--cluster-id", default=None, callback=_cluster_id, metavar="ID",
              help="The source's cluster id for multi-cluster DNS names (an RFC 1123 "
                   "subdomain; default: the source name, or the one stored before). "
                   "Like --kubeconfig and --context, it belongs to the --source before it.")
@click.option("--no-mcs", is_flag=True,
              help="Do not look for Multi-Cluster Services ServiceImports and "
                   "ServiceExports (for RBAC that does not grant them).")
@click.option("--once", is_flag=True, help="List, store, project, exit (cron-style).")
@click.option("--no-project", is_flag=True,
              help="Only store events; another zonegen (serve, export) projects them.")
@click.option("--metrics-listen", default=None, metavar="HOST:PORT",
              help="Serve /metrics (Prometheus), /healthz and /readyz on HOST:PORT "
                   "(e.g. 0.0.0.0:9153; port 0 picks one, named in the start line).")
@click.option("--json", "as_json", is_flag=True,
              help="The final summary as one JSON object on stdout.")
@click.pass_context
def watch(ctx: click.Context, kubeconfig: str | None, context: str | None,
          namespaces: tuple[str, ...], legacy_endpoints: bool, source: str | None,
          cluster_id: str | None, no_mcs: bool, once: bool, no_project: bool,
          request_timeout: float,
          metrics_listen: str | None, as_json: bool) -> None:
    """List, then watch, Services and EndpointSlices (and the Multi-Cluster Services
    ServiceImports and ServiceExports, where installed) into the event log.

    Resumes where the last run stopped; after a 410 Gone (or at first start) it relists
    and records DELETED events for objects that vanished while nobody watched. Stops
    cleanly on SIGINT/SIGTERM, committing what it has received. Several clusters: repeat
    --source NAME, each followed by its own --kubeconfig/--context/--cluster-id.

    Example:

    \b
        zonegen watch --context prod -n shop -n payments
        zonegen watch --source east --kubeconfig east.yaml \\
                      --source west --kubeconfig west.yaml --context admin@west
    """
    from zonegen.serve import parse_hostport
    from zonegen.watch import SourceConfig, WatchOptions, watch_command

    groups = ctx.meta.get("zonegen.sources")
    if groups is None:
        sources = [SourceConfig(source or "default", kubeconfig, context, cluster_id)]
    else:
        for group in groups:
            if "cluster_id" in group:
                _cluster_id(ctx, next(p for p in ctx.command.params
                                      if p.name == "cluster_id"), group["cluster_id"])
        sources = [SourceConfig(g["name"], g.get("kubeconfig"), g.get("context"),
                                g.get("cluster_id")) for g in groups]

    if once and metrics_listen:
        raise click.UsageError("--metrics-listen serves a running watch; --once exits "
                               "after one list")
    if once:  # cron-style: a one-shot command's logging (warnings only by default)
        _setup_logging(ctx, long_running=False)
    listen = parse_hostport(metrics_listen, "--metrics-listen") if metrics_listen else None
    options = WatchOptions(namespaces=namespaces, legacy_endpoints=legacy_endpoints,
                           source=source, project=not no_project, mcs=not no_mcs,
                           request_timeout=request_timeout)
    report = watch_command(_open_store(ctx, "write"), options=options, once=once,
                           metrics_listen=listen, sources=sources)
    if as_json:
        _echo_json(report.to_json())
    else:
        click.echo(report.summary())


# --------------------------------------------------------------------------- audit


def _print_json_lines(values: Iterable[dict[str, Any]]) -> None:
    from zonegen.history import to_json_line

    for value in values:
        click.echo(to_json_line(value))


@main.command()
@zone_options
@projection_option
@click.argument("name")
@click.option("--type", "rtype", default=None, metavar="TYPE",
              help="Only records of this type (A, AAAA, CNAME, PTR, SRV, TXT).")
@click.option("--since", type=TIME, default=None, metavar="TIME",
              help="Only changes at or after TIME.")
@click.option("--until", type=TIME, default=None, metavar="TIME",
              help="Only changes at or before TIME.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per change, per line.")
@click.pass_context
def history(ctx: click.Context, /, name: str, rtype: str | None, since: datetime | None,
            until: datetime | None, as_json: bool, **kwargs: Any) -> None:
    """Every change of the records at NAME, with the Kubernetes event that caused it.

    NAME is absolute when it has a trailing dot or ends with --zone, else relative to
    --zone (for a reverse zone, the PTR owner). Times are ISO 8601, UTC when no offset
    is given.

    Example:

    \b
        zonegen history web.shop.svc --type A --since 2026-11-25T03:00
    """
    from zonegen.history import format_history, name_history

    config, spec = _zone_and_projection(ctx, kwargs)
    store = _projection_store(ctx, spec)
    entries = name_history(store, name, config, type=rtype, since=since,
                           until=until, spec=spec)
    note = store.history_note(projection=spec.name)
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
@projection_option
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option("--json", "as_json", is_flag=True,
              help="JSON lines: first the two versions compared and the counts, then one "
                   "object per record.")
@click.pass_context
def diff(ctx: click.Context, /, a: str, b: str, as_json: bool, **kwargs: Any) -> None:
    """Records added (+) and removed (-) going from version A to version B.

    A and B are serials or times (ISO 8601; a time means the version current then).

    Example:

    \b
        zonegen diff 2026-11-25T03:00 2026-11-25T03:15
    """
    from zonegen.history import diff_versions, format_diff

    config, spec = _zone_and_projection(ctx, kwargs)
    result = diff_versions(_projection_store(ctx, spec), a, b, config, spec)
    if as_json:
        added = sum(1 for line in result.lines if line.change == "+")
        _echo_json({"zone": result.zone,
                    "from": {"serial": result.old.serial, "time": _iso(result.old.time)},
                    "to": {"serial": result.new.serial, "time": _iso(result.new.time)},
                    "added": added, "removed": len(result.lines) - added})
        _print_json_lines(line.to_json() for line in result.lines)
        return
    for line in format_diff(result):
        click.echo(line)


@main.command("log")
@click.option("--since", type=TIME, default=None, metavar="TIME",
              help="Events received at or after TIME.")
@click.option("--until", type=TIME, default=None, metavar="TIME",
              help="Events received at or before TIME.")
@click.option("--kind", default=None, help="Service, EndpointSlice or Endpoints.")
@click.option("--namespace", "-n", default=None, help="Only this namespace.")
@click.option("--name", default=None, help="Only objects of this name.")
@click.option("--source", "sources", multiple=True, callback=_sources_names, metavar="NAME",
              help="Only events of this source (cluster; repeatable).")
@click.option("--last", type=click.IntRange(max=MAX_COUNT), default=None, metavar="N",
              help="Only the newest N events.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per event, per line, with the object as received.")
@click.pass_context
def log_cmd(ctx: click.Context, since: datetime | None, until: datetime | None,
            kind: str | None,
            namespace: str | None, name: str | None, sources: tuple[str, ...],
            last: int | None, as_json: bool) -> None:
    """The raw event log, newest last: what Kubernetes said, and when.

    Example:

    \b
        zonegen log --kind EndpointSlice -n shop --since 2026-11-25T03:00
    """
    from zonegen.history import event_json, event_log, format_log

    store = _open_store(ctx)
    events = event_log(store, since=since, until=until, kind=kind,
                       namespace=namespace, name=name, last=last,
                       sources=list(sources) or None)
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
@projection_option
@click.argument("name")
@click.argument("rtype", metavar="TYPE")
@click.argument("rdata", nargs=-1, required=True, metavar="RDATA...")
@click.option("--json", "as_json", is_flag=True, help="The answer as one JSON object.")
@click.pass_context
def why(ctx: click.Context, /, name: str, rtype: str, rdata: tuple[str, ...], as_json: bool,
        **kwargs: Any) -> None:
    """Why NAME TYPE RDATA is in the zone: the event that added it and the Service,
    EndpointSlices and Endpoints it is projected from (with resourceVersions).

    Example:

    \b
        zonegen why web.shop.svc A 10.244.1.7
    """
    from zonegen.history import format_why, to_json_line
    from zonegen.history import why as explain

    config, spec = _zone_and_projection(ctx, kwargs)
    report = explain(_projection_store(ctx, spec), name, rtype, " ".join(rdata), config,
                     spec)
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
@click.option("--json", "as_json", is_flag=True,
              help="The summary as one JSON object on stdout.")
@click.pass_context
def compact(ctx: click.Context, keep_days: float | None, keep_versions: int | None,
            as_json: bool) -> None:
    """Delete old zone versions and the events they consumed (only when asked).

    The oldest kept version gets a snapshot of its records, so later exports, history,
    diffs and IXFR stay exact; older serials then answer "history begins at serial N".

    Example:

    \b
        zonegen compact --keep-days 30
    """
    from zonegen.history import compact as run_compact

    report = run_compact(_open_store(ctx, "write"), keep_days=keep_days,
                         keep_versions=keep_versions)
    if not as_json:
        click.echo(report.summary())
        return
    start = report.start
    _echo_json({
        "removed_anything": report.removed_anything,
        "versions_deleted": report.versions_deleted,
        "changes_deleted": report.changes_deleted,
        "events_deleted": report.events_deleted,
        "snapshot_records": report.snapshot_records,
        "history_start_serial": start.version.serial if start else None,
        "compacted_at": _iso(start.compacted_at) if start and start.compacted_at else None,
    })


# --------------------------------------------------------------------------- serve


def _zones_repeatable(func: F) -> F:
    """serve: ``--zone ZONE[=TARGET]`` repeatable, one zone per projection or several
    (the shared ``zone_options`` take one zone)."""
    params: list[click.Parameter] = getattr(func, "__click_params__", [])
    for i, param in enumerate(params):
        if param.name == "zone":
            params[i] = click.Option(
                ["--zone", "zones"], multiple=True, metavar="ZONE[=TARGET]",
                help="Zone to publish (repeatable; default cluster.local): ZONE alone is "
                     "the default source's projection; ZONE=source:NAME one cluster's, "
                     "ZONE=imports:NAME or ZONE=exports:A,B,... a clusterset. Each "
                     "projection has its own serial, journal and NOTIFY.")
    return func


@main.command()
@_zones_repeatable
@zone_options
@click.option("--extra-zone", "extra_zones", multiple=True, metavar="ZONE[=TARGET]",
              help="Also serve ZONE (e.g. 10.in-addr.arpa) at the serial of the first "
                   "--zone's projection (or of TARGET's), with its forward zone and NS "
                   "names (repeatable).")
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
@click.option("--metrics-listen", metavar="HOST:PORT",
              help="Serve /metrics, /healthz and /readyz on HOST:PORT (port 0: any free "
                   "port, named in the serving line).")
@click.option("--watch", "watch_cluster", is_flag=True,
              help="Also watch Kubernetes in this process (see `zonegen watch`), with "
                   "the watch options below.")
@click.option("--lease-seconds", type=click.FloatRange(min=1, max=3600), default=15.0,
              show_default=True,
              help="With --watch on PostgreSQL: the writer lease. Replicas on one database "
                   "elect one writer; if it dies another takes over after this long.")
@watch_options
@click.pass_context
def serve(ctx: click.Context, /, extra_zones: tuple[str, ...], listen: tuple[str, ...],
          allow_transfer: tuple[str, ...], tsig_keys: tuple[str, ...],
          tsig_keyfiles: tuple[str, ...], notify: tuple[str, ...], poll: float,
          max_transfers: int, metrics_listen: str | None, watch_cluster: bool,
          kubeconfig: str | None,
          context: str | None, namespaces: tuple[str, ...], legacy_endpoints: bool,
          source: str | None, request_timeout: float, **kwargs: Any) -> None:
    """Serve the zone over DNS: answers, AXFR, IXFR and NOTIFY, until SIGINT/SIGTERM.

    New zone versions written to the database by `zonegen watch` or `zonegen ingest`
    are served within --poll seconds and NOTIFYed to every --notify secondary.

    Example:

    \b
        zonegen serve --watch --listen 0.0.0.0:53 --notify 192.0.2.2:53 \\
            --tsig-keyfile /etc/zonegen/transfer.key
        zonegen serve --zone a.k8s.example.org=source:a \\
            --zone b.k8s.example.org=source:b --zone clusterset.local=exports:a,b
    """
    from zonegen.serve import projection_zones, serve_command, serve_options, watch_config
    from zonegen.watch import WatchOptions

    options = serve_options(listen=listen, allow_transfer=allow_transfer,
                            tsig_keys=tsig_keys, tsig_keyfiles=tsig_keyfiles, notify=notify,
                            poll=poll, max_transfers=max_transfers,
                            metrics_listen=metrics_listen)
    watching = watch_config(watch_cluster, kubeconfig, context, WatchOptions(
        namespaces=namespaces, legacy_endpoints=legacy_endpoints, source=source,
        request_timeout=request_timeout), lease_seconds=kwargs.pop("lease_seconds"))
    plan = projection_zones(kwargs.pop("zones"), extra_zones, **kwargs)
    report = serve_command(_open_store(ctx, "write" if watch_cluster else "read"), plan,
                           options=options, watch=watching, ready=_ready_line(ctx))
    click.echo(report.summary())


def _ready_line(ctx: click.Context) -> Callable[[str], None]:
    """Where serve's "serving ... on ..." line goes: stderr as it is, or, with
    ``--log-format json``, a JSON log record like every other stderr line."""
    if ctx.obj["log"][0] != "json":
        return lambda line: click.echo(line, err=True)
    import logging

    log = logging.getLogger("zonegen")
    # Printed whatever -q says in text; so at least at the logger's threshold here.
    return lambda line: log.log(max(logging.INFO, log.getEffectiveLevel()), line)


# --------------------------------------------------------------------------- status


@main.command("status")
@zone_options
@projection_option
@click.option("--extra-zone", "extra_zones", multiple=True, metavar="ZONE",
              help="Also count the records of ZONE (e.g. 10.in-addr.arpa), as "
                   "`serve --extra-zone` publishes it (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@click.pass_context
def status_command(ctx: click.Context, /, extra_zones: tuple[str, ...], as_json: bool,
                   **kwargs: Any) -> None:
    """Where the zone is now: serial and its time, records per zone, events stored and
    not yet projected, the newest event per kind, watch resume points, and the oldest
    serial an IXFR or `export --serial` can start from. Never writes.

    Example:

    \b
        zonegen status --extra-zone 10.in-addr.arpa --json
    """
    import json

    from zonegen.serve.options import extra_zone_config
    from zonegen.status import status

    config, spec = _zone_and_projection(ctx, kwargs)
    configs = [config, *(extra_zone_config(config, z) for z in extra_zones)]
    report = status(_open_store(ctx), configs, spec)
    if as_json:
        click.echo(json.dumps(report.to_json(), separators=(",", ":")))
        return
    for line in report.lines():
        click.echo(line)


if __name__ == "__main__":
    main()
