"""The Kubernetes API server as zonegen reaches it: kubeconfig, client, and one GET.

Loads the client configuration (a kubeconfig, ``KUBECONFIG``, or the in-cluster service
account) through the official ``kubernetes`` client and sends every request through its
``ApiClient`` (auth, TLS, proxies), but hands back the raw urllib3 response: callers
decode JSON themselves, never the client's generated models. Every failure is turned
into one short line naming the server, so the watcher and the CLI can print it as is.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3

from zonegen.errors import WatchError
from zonegen.model import ENDPOINT_SLICE, ENDPOINTS, SERVICE, SERVICE_EXPORT, SERVICE_IMPORT

IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

# --------------------------------------------------------------------------- resources


@dataclass(frozen=True, slots=True)
class Resource:
    """Where one kind lives in the API: ``{prefix}[/namespaces/{ns}]/{plural}``."""

    kind: str
    prefix: str
    plural: str
    api_version: str

    def path(self, namespace: str | None) -> str:
        if namespace is None:
            return f"{self.prefix}/{self.plural}"
        return f"{self.prefix}/namespaces/{namespace}/{self.plural}"


RESOURCES: dict[str, Resource] = {
    SERVICE: Resource(SERVICE, "/api/v1", "services", "v1"),
    ENDPOINT_SLICE: Resource(ENDPOINT_SLICE, "/apis/discovery.k8s.io/v1", "endpointslices",
                             "discovery.k8s.io/v1"),
    ENDPOINTS: Resource(ENDPOINTS, "/api/v1", "endpoints", "v1"),
}

MCS_KINDS = (SERVICE_IMPORT, SERVICE_EXPORT)
"""Kinds of ``multicluster.x-k8s.io``: a CRD, so where (and whether) they are served is
learnt by discovery (:meth:`Cluster.mcs_resources`), not known in advance."""


# --------------------------------------------------------------------------- errors


class Gone(Exception):
    """The resourceVersion asked for is compacted (HTTP 410 or an ERROR watch event)."""


class StreamFailed(Exception):
    """A request or stream failed in a way a reconnect may cure."""


class NotFound(StreamFailed):
    """HTTP 404: the path is not served (a CRD that is not installed)."""


class Refused(StreamFailed):
    """The server refused the request (HTTP 401/403): credentials or RBAC, not the
    network. Retrying is still right for a long-running watcher (RBAC may be fixed
    while it runs), but it is an error, and ``--once`` gives up at once."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status  # 401 or 403, for readiness reasons and logs


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps (urllib3 nests the OS error several levels deep:
    ``reason``, ``__cause__``, ``__context__``, exception arguments), each once."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack.extend([getattr(e, "reason", None), e.__cause__, e.__context__])
        stack.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))


def reason(exc: BaseException) -> str:
    """A short cause for a transport error: the innermost OS error's text when there is
    one ('connection refused'), not urllib3's nested repr."""
    for e in _causes(exc):
        if isinstance(e, OSError) and e.strerror:
            return e.strerror.lower()
        if isinstance(e, urllib3.exceptions.ReadTimeoutError):
            return "read timed out"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def status_message(body: bytes, status: int) -> str:
    """'HTTP 403: <the Status object's message>' (or just the code)."""
    try:
        obj = json.loads(body)
        if isinstance(obj, dict) and obj.get("message"):
            return f"HTTP {status}: {obj['message']}"
    except ValueError:
        pass
    return f"HTTP {status}"


def _timed_out(exc: BaseException) -> bool:
    """Whether the server accepted nothing or answered nothing in time (not a refused
    connection: urllib3 makes NewConnectionError a subclass of its timeout)."""
    for e in _causes(exc):
        if isinstance(e, urllib3.exceptions.NewConnectionError):
            return False
        if isinstance(e, urllib3.exceptions.TimeoutError | TimeoutError):
            return True
    return False


# --------------------------------------------------------------------------- the cluster


@dataclass
class Cluster:
    """A configured client for one API server, and the names it goes by in logs."""

    api: Any  # kubernetes.client.ApiClient (the client ships no type hints)
    host: str  # the server URL, for error messages: every one names the server
    context: str | None  # kubeconfig context, None in-cluster

    @property
    def default_source(self) -> str:
        """``watch:<context or cluster host>``: the origin recorded with every event
        this cluster's watch stores (the source *name*, which keys resume points and
        objects, is the operator's ``--source``; see ``zonegen.sources``)."""
        if self.context:
            return f"watch:{self.context}"
        return "watch:" + self.host.split("://", 1)[-1].rstrip("/")

    def get(self, path: str, query: list[tuple[str, str]],
            timeout: tuple[float, float]) -> Any:
        """GET ``path`` (auth, TLS, proxies as configured) and return the raw urllib3
        response, unread. ``timeout`` is (connect, read) in seconds; the read timeout
        bounds each wait for bytes, so a server that accepts and never answers ends in
        a :class:`StreamFailed` saying so instead of a silent hang.

        :raises Gone: HTTP 410.
        :raises Refused: HTTP 401 or 403.
        :raises StreamFailed: transport error, timeout or any other non-2xx status.
        """
        api = self.api
        try:
            method, url, headers, body, post = api.param_serialize(
                "GET", path, query_params=query,
                header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
            rest = api.call_api(method, url, headers, body, post, _request_timeout=timeout)
        except Exception as e:  # urllib3/OS errors, ApiException (TLS), exec plugins
            if _timed_out(e):
                raise StreamFailed(f"no answer within {max(timeout):g} s") from None
            raise StreamFailed(reason(e)) from None
        resp = rest.response
        if 200 <= resp.status < 300:
            return resp
        try:
            data = resp.read()
        except (urllib3.exceptions.HTTPError, OSError):
            data = b""
        finally:
            resp.release_conn()
        if resp.status == 410:
            raise Gone(status_message(data, 410))
        if resp.status in (401, 403):
            raise Refused(status_message(data, resp.status), resp.status)
        if resp.status == 404:
            raise NotFound(status_message(data, 404))
        raise StreamFailed(status_message(data, resp.status))

    def get_json(self, path: str, query: list[tuple[str, str]],
                 timeout: tuple[float, float]) -> dict[str, Any]:
        """GET ``path`` and decode its body, a JSON object (a list page).

        :raises Gone, Refused, StreamFailed: as :meth:`get`; also a body that stalls,
            breaks off or is not a JSON object.
        """
        resp = self.get(path, query, timeout)
        try:
            body = resp.read()
        except (urllib3.exceptions.HTTPError, OSError) as e:
            if _timed_out(e):
                raise StreamFailed(f"no answer within {max(timeout):g} s") from None
            raise StreamFailed(reason(e)) from None
        finally:
            resp.release_conn()
        try:
            page = json.loads(body)
        except (ValueError, RecursionError):
            raise StreamFailed("list response is not JSON") from None
        if not isinstance(page, dict):
            raise StreamFailed("list response is not a JSON object")
        return page

    def mcs_resources(self, timeout: float) -> dict[str, Resource]:
        """Where this server serves ServiceImports and ServiceExports
        (``multicluster.x-k8s.io``), by discovery: per kind, the first of
        ``mcs.PREFERRED_VERSIONS`` (v1beta1, then v1alpha1) the group serves and whose
        resource list has the kind. A kind absent from the answer (the group or the CRD
        is not installed: HTTP 404) is not in the result.

        :raises StreamFailed: discovery failed otherwise (unreachable, refused, ...).
        """
        from zonegen.mcs import GROUP, PLURALS, PREFERRED_VERSIONS

        deadline = (timeout, timeout)
        try:
            group = self.get_json(f"/apis/{GROUP}", [], deadline)
        except NotFound:
            return {}
        served = {str(v.get("version")) for v in group.get("versions") or ()
                  if isinstance(v, dict)}
        found: dict[str, Resource] = {}
        for version in PREFERRED_VERSIONS:
            if version not in served or len(found) == len(PLURALS):
                continue
            try:
                listing = self.get_json(f"/apis/{GROUP}/{version}", [], deadline)
            except NotFound:
                continue
            names = {r.get("name") for r in listing.get("resources") or ()
                     if isinstance(r, dict)}
            for kind, plural in PLURALS.items():
                if kind not in found and plural in names:
                    found[kind] = Resource(kind, f"/apis/{GROUP}/{version}", plural,
                                           f"{GROUP}/{version}")
        return found

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.api.close()


# --------------------------------------------------------------------------- connecting


def connect(kubeconfig: str | None = None, context: str | None = None) -> Cluster:
    """Load client configuration: ``kubeconfig`` (or ``KUBECONFIG``, which may list several
    files) when given, else the in-cluster service account when running in a Pod, else
    ``~/.kube/config``. Nothing is sent to the server yet.

    :raises WatchError: no configuration is found, or it cannot be loaded.
    """
    import yaml
    from kubernetes import client
    from kubernetes.config.config_exception import ConfigException

    config = _kube_config()

    cfg = client.Configuration()
    # Our own backoff retries; urllib3's immediate retries would only hide the outage.
    cfg.retries = False
    explicit = kubeconfig or os.environ.get("KUBECONFIG")
    in_cluster = (not explicit and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
                  and IN_CLUSTER_TOKEN.exists())
    try:
        if in_cluster:
            config.load_incluster_config(client_configuration=cfg)
            ctx_name = None
        else:
            path = explicit or os.path.expanduser("~/.kube/config")
            if not explicit and not os.path.exists(path):
                raise WatchError("no Kubernetes configuration: give --kubeconfig, set "
                                 "KUBECONFIG, or run zonegen in a Pod")
            # KUBECONFIG may list several files; like kubectl, skip the missing ones
            # unless none is left.
            files = [kubeconfig] if kubeconfig else [f for f in path.split(os.pathsep) if f]
            present = [f for f in files if os.path.exists(os.path.expanduser(f))]
            for one in present or files[:1]:
                check_kubeconfig(one)
            config.load_kube_config(config_file=path, context=context,
                                    client_configuration=cfg, persist_config=False)
            ctx_name = context or _current_context(path)
    except ConfigException as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WatchError(f"Kubernetes configuration: {first}") from None
    except OSError as e:
        raise WatchError(f"Kubernetes configuration: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise WatchError(f"Kubernetes configuration {explicit or '~/.kube/config'}{where}: "
                         f"malformed YAML: {problem}") from None
    return Cluster(client.ApiClient(configuration=cfg), str(cfg.host), ctx_name)


KUBECONFIG_LISTS = ("clusters", "contexts", "users")


def check_kubeconfig(path: str) -> None:
    """Refuse, in one line naming the file, a kubeconfig the client would crash on with
    a TypeError: missing, not a mapping, or ``clusters``/``contexts``/``users`` that are
    not lists of mappings. Everything else is left to the client's own checks.

    :raises WatchError: the file is missing or has the wrong shape.
    """
    import yaml

    p = Path(path).expanduser()
    if not p.exists():
        raise WatchError(f"Kubernetes configuration {path}: does not exist")
    if p.is_dir():
        raise WatchError(f"Kubernetes configuration {path}: is a directory")
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise WatchError(f"Kubernetes configuration {path}: not UTF-8 text") from None
    except RecursionError:
        raise WatchError(f"Kubernetes configuration {path}: nested too deeply") from None
    if doc is None:
        return  # empty: the client says "no configuration found"
    if not isinstance(doc, dict):
        raise WatchError(f"Kubernetes configuration {path}: not a kubeconfig (a YAML "
                         f"{_yaml_type(doc)}, not a mapping)")
    for key in KUBECONFIG_LISTS:
        value = doc.get(key)
        if value is None:
            continue
        if not isinstance(value, list):
            raise WatchError(f"Kubernetes configuration {path}: {key} is a "
                             f"{_yaml_type(value)}, not a list")
        for i, entry in enumerate(value):
            if not isinstance(entry, dict):
                raise WatchError(f"Kubernetes configuration {path}: {key}[{i}] is a "
                                 f"{_yaml_type(entry)}, not a mapping")


def _yaml_type(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "scalar"


def _kube_config() -> Any:
    """``kubernetes.config``, typed as Any: its loaders carry no annotations."""
    from kubernetes import config

    return config


def _current_context(path: str) -> str | None:
    try:
        _, active = _kube_config().list_kube_config_contexts(config_file=path)
    except Exception:  # the context is only a name for the source; loading succeeded
        return None
    name = active.get("name") if isinstance(active, Mapping) else None
    return str(name) if name else None
