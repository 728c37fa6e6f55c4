"""A loopback fake of the Kubernetes API server's list/watch protocol, for tests and benches.

It speaks just enough of the real protocol for the official ``kubernetes`` client to
list and watch Services, discovery.k8s.io/v1 EndpointSlices and v1 Endpoints, and, when
``mcs_versions`` says so, the Multi-Cluster Services ServiceImports and ServiceExports
of ``multicluster.x-k8s.io`` with their discovery documents (``/apis/<group>`` and
``/apis/<group>/<version>``; 404 without the CRDs, as a real cluster): paged lists
(``limit``/``continue``, each list a snapshot; a continue token can be made to
expire, answered 410 Expired as after an etcd compaction) carrying
``metadata.resourceVersion``, and watches
(``watch=true&resourceVersion=…&allowWatchBookmarks=true&timeoutSeconds=…``) streamed as
chunked JSON lines, with BOOKMARKs, 410 Gone for a compacted resourceVersion (as an ERROR
watch event or as an HTTP 410), dropped connections and a server that goes down and up on
the same port. Tests drive it directly (``add``/``modify``/``delete``/``compact``/
``drop_watches``/``stop``/``start``; ``hold``/``release`` a resource's lists or only
their later pages (``hold_pages``), ``expire_continues``, ``forbid`` a verb as RBAC
would); every event line is encoded once when it happens,
so a burst of 50,000 events streams at the speed of the socket.

Like ``APIConnServeTest`` in CoreDNS's Kubernetes plugin, but at the HTTP level, so the
real client, its kubeconfig loading and its urllib3 transport are all exercised.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import itertools
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SERVICES = "services"
ENDPOINTSLICES = "endpointslices"
ENDPOINTS = "endpoints"
SERVICEIMPORTS = "serviceimports"
SERVICEEXPORTS = "serviceexports"
MCS_GROUP = "multicluster.x-k8s.io"
MCS_SERVICE_NAME = "multicluster.kubernetes.io/service-name"
MCS_SOURCE_CLUSTER = "multicluster.kubernetes.io/source-cluster"

_PREFIX = {
    SERVICES: "/api/v1",
    ENDPOINTS: "/api/v1",
    ENDPOINTSLICES: "/apis/discovery.k8s.io/v1",
}
_MCS = (SERVICEIMPORTS, SERVICEEXPORTS)
_KIND = {SERVICES: "Service", ENDPOINTS: "Endpoints", ENDPOINTSLICES: "EndpointSlice",
         SERVICEIMPORTS: "ServiceImport", SERVICEEXPORTS: "ServiceExport"}
_API_VERSION = {SERVICES: "v1", ENDPOINTS: "v1", ENDPOINTSLICES: "discovery.k8s.io/v1"}

TOKEN = "zonegen-test-token"
EXPIRED_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. "
    "You can start a new list without the continue parameter.")
"""The message of the API server's 410 for an expired continue token (shortened)."""


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


@dataclass
class _History:
    """Every event of one resource, in resourceVersion order, pre-encoded."""

    rvs: list[int] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)


@dataclass
class Request:
    """One request the server received (tests assert on the client's behaviour)."""

    path: str
    query: dict[str, str]
    authorization: str | None
    status: int = 0  # the HTTP status answered (0 until answered)


class FakeKubeAPI:
    """The cluster state, its event history and the HTTP server in front of them."""

    def __init__(self, port: int = 0, require_token: bool = True,
                 mcs_versions: tuple[str, ...] = (),
                 mcs_resources: tuple[str, ...] = _MCS, first_rv: int = 1000) -> None:
        """``mcs_versions``: the ``multicluster.x-k8s.io`` versions served (newest
        last; empty: the CRDs are not installed), each serving ``mcs_resources``.
        ``first_rv``: the resourceVersion before the first change (the first object
        added gets ``first_rv + 1``; 0 numbers them 1, 2, 3, ... as a bench's
        pre-made database does)."""
        self.port = port
        self.require_token = require_token
        self.mcs_versions = mcs_versions
        self.mcs_resources = mcs_resources if mcs_versions else ()
        self.prefix = dict(_PREFIX)
        self.api_version = dict(_API_VERSION)
        if mcs_versions:
            newest = mcs_versions[-1]
            for r in _MCS:
                self.prefix[r] = f"/apis/{MCS_GROUP}/{newest}"
                self.api_version[r] = f"{MCS_GROUP}/{newest}"
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            r: {} for r in self.prefix}
        self.history: dict[str, _History] = {r: _History() for r in self.prefix}
        self.rv = first_rv
        self.compacted_rv = 0
        self.gone_as_http = False  # 410 as an HTTP status instead of an ERROR event
        self.garbage_watches = False  # watches answer 200 with lines that are not JSON
        self.held: set[str] = set()  # resources whose lists get no answer until released
        self.held_pages: set[str] = set()  # ... whose pages after the first get none
        self.continues_expire = False  # every continue token is too old (410) at once
        self.forbidden: set[tuple[str, str]] = set()  # (resource, "list"/"watch"): 403
        self.requests: list[Request] = []
        self.watch_count = 0
        self.cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._generation = 0  # bumped by drop_watches/stop: open watches end abruptly
        self._continues: dict[str, tuple[str, list[bytes]]] = {}
        self._ids = itertools.count(1)

    # ----------------------------------------------------------------- server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeKubeAPI:
        """Listen (again) on 127.0.0.1, on the same port after the first start."""
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-kube-api",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go down: stop listening and cut every open connection."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.drop_watches()

    @property
    def running(self) -> bool:
        return self._server is not None

    def drop_watches(self) -> None:
        """Cut every open connection mid-stream (no terminating chunk)."""
        with self.cond:
            self._generation += 1
            conns = list(self._conns)
            self.cond.notify_all()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def write_kubeconfig(self, path: Path, context: str = "fake") -> Path:
        """A kubeconfig pointing the real client at this server, with a bearer token."""
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "fake-cluster", "cluster": {"server": self.url}}],
            "users": [{"name": "fake-user", "user": {"token": TOKEN}}],
            "contexts": [{"name": context,
                          "context": {"cluster": "fake-cluster", "user": "fake-user"}}],
        }))
        return path

    # ----------------------------------------------------------------- cluster state

    def _record(self, resource: str, typ: str, obj: dict[str, Any]) -> None:
        """Append one event to the history (caller holds ``cond``) and wake watchers."""
        line = json.dumps({"type": typ, "object": obj}, separators=(",", ":")).encode() + b"\n"
        h = self.history[resource]
        h.rvs.append(self.rv)
        h.namespaces.append(obj.get("metadata", {}).get("namespace", ""))
        h.lines.append(line)
        self.cond.notify_all()

    def add(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create an object: uid, resourceVersion and managedFields are filled in."""
        obj = copy.deepcopy(obj)
        with self.cond:
            self.rv += 1
            meta = obj.setdefault("metadata", {})
            meta.setdefault("namespace", "default")
            meta.setdefault("uid", str(uuid.uuid4()))
            meta["resourceVersion"] = str(self.rv)
            meta.setdefault("managedFields", [{"manager": "kube-controller-manager",
                                                "operation": "Update"}])
            obj["kind"] = _KIND[resource]
            obj["apiVersion"] = self.api_version[resource]
            self.objects[resource][(meta["namespace"], meta["name"])] = obj
            self._record(resource, "ADDED", obj)
        return obj

    def modify(self, resource: str, namespace: str, name: str,
               change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Change an object in place with ``change`` and bump its resourceVersion."""
        with self.cond:
            obj = copy.deepcopy(self.objects[resource][(namespace, name)])
            change(obj)
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self.objects[resource][(namespace, name)] = obj
            self._record(resource, "MODIFIED", obj)
        return obj

    def delete(self, resource: str, namespace: str, name: str) -> None:
        with self.cond:
            obj = copy.deepcopy(self.objects[resource].pop((namespace, name)))
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self._record(resource, "DELETED", obj)

    def raw_event(self, resource: str, typ: str, obj: dict[str, Any]) -> None:
        """Stream an arbitrary (possibly malformed) event without touching the state."""
        with self.cond:
            self.rv += 1
            if isinstance(obj.get("metadata"), dict):
                obj["metadata"]["resourceVersion"] = str(self.rv)
            self._record(resource, typ, obj)

    def bookmark(self, resource: str) -> int:
        """Send a BOOKMARK at the current resourceVersion to every watch of ``resource``."""
        with self.cond:
            self.rv += 1
            obj = {"kind": _KIND[resource], "apiVersion": self.api_version[resource],
                   "metadata": {"resourceVersion": str(self.rv)}}
            line = json.dumps({"type": "BOOKMARK", "object": obj}).encode() + b"\n"
            h = self.history[resource]
            h.rvs.append(self.rv)
            h.namespaces.append("*bookmark*")
            h.lines.append(line)
            self.cond.notify_all()
            return self.rv

    def compact(self) -> None:
        """Forget all history: watches from any older resourceVersion get 410 Gone."""
        with self.cond:
            self.compacted_rv = self.rv
            for r in self.history:
                self.history[r] = _History()

    def events(self, resource: str) -> list[tuple[str, str, str, str]]:
        """(type, namespace/name, uid, resourceVersion) of every event still in the
        history of ``resource`` (bookmarks excluded): what a watcher should have logged."""
        with self.cond:
            lines = list(self.history[resource].lines)
        out = []
        for line in lines:
            ev = json.loads(line)
            if ev["type"] == "BOOKMARK":
                continue
            meta = ev["object"].get("metadata", {})
            out.append((ev["type"], f"{meta.get('namespace')}/{meta.get('name')}",
                        meta.get("uid", ""), meta.get("resourceVersion", "")))
        return out

    def hold(self, resource: str) -> None:
        """Accept list requests for ``resource`` but send no answer until :meth:`release`
        (a slow or stalled API server; a client's read timeout ends the wait)."""
        with self.cond:
            self.held.add(resource)

    def hold_pages(self, resource: str) -> None:
        """Answer the first page of each list of ``resource`` but hold every continue
        request until :meth:`release`: a list caught between pages."""
        with self.cond:
            self.held_pages.add(resource)

    def release(self, resource: str) -> None:
        """Answer the held lists (or pages) of ``resource`` (with the state at that
        moment)."""
        with self.cond:
            self.held.discard(resource)
            self.held_pages.discard(resource)
            self.cond.notify_all()

    def expire_continues(self) -> int:
        """Expire every continue token handed out so far (the API server's snapshot
        was compacted): its next use is answered 410 Expired. Returns how many."""
        with self.cond:
            expired = len(self._continues)
            self._continues.clear()
            return expired

    def forbid(self, resource: str, verb: str) -> None:
        """Answer ``verb`` ("list" or "watch") on ``resource`` with 403, as RBAC does."""
        with self.cond:
            self.forbidden.add((resource, verb))

    def lists(self, path_part: str = "") -> list[Request]:
        """List requests of resources (discovery requests are :meth:`discoveries`)."""
        return [r for r in self.requests if r.query.get("watch") not in ("true", "1")
                and path_part in r.path and self._route(r.path) is not None]

    def discoveries(self) -> list[Request]:
        """Requests under ``/apis/<group>[/<version>]`` (API discovery)."""
        return [r for r in self.requests if r.path.startswith("/apis/")
                and r.path.count("/") <= 3]

    def watches(self, path_part: str = "") -> list[Request]:
        return [r for r in self.requests if r.query.get("watch") in ("true", "1")
                and path_part in r.path]

    # ----------------------------------------------------------------- protocol

    def _route(self, path: str) -> tuple[str, str | None] | None:
        """(resource, namespace or None) for a list/watch path, or None."""
        for resource, prefix in self._served_prefixes():
            if path == f"{prefix}/{resource}":
                return resource, None
            head = f"{prefix}/namespaces/"
            if path.startswith(head) and path.endswith(f"/{resource}"):
                ns = path[len(head):-len(resource) - 1]
                if ns and "/" not in ns:
                    return resource, ns
        return None

    def _list_body(self, resource: str, namespace: str | None,
                   query: dict[str, str]) -> tuple[int, bytes]:
        limit = int(query.get("limit") or 0)
        token = query.get("continue")
        with self.cond:
            if token:
                if token not in self._continues or self.continues_expire:
                    self._continues.pop(token, None)
                    return 410, json.dumps(_status(410, "Expired", EXPIRED_CONTINUE)).encode()
                list_rv, rest = self._continues.pop(token)
            else:
                list_rv = str(self.rv)
                rest = [json.dumps(o, separators=(",", ":")).encode()
                        for (ns, _), o in sorted(self.objects[resource].items())
                        if namespace is None or ns == namespace]
            page, rest = (rest[:limit], rest[limit:]) if limit else (rest, [])
            meta: dict[str, Any] = {"resourceVersion": list_rv}
            if rest:
                nxt = f"c{next(self._ids)}"
                self._continues[nxt] = (list_rv, rest)
                meta["continue"] = nxt
                meta["remainingItemCount"] = len(rest)
        head = json.dumps({"kind": _KIND[resource] + "List",
                           "apiVersion": self.api_version[resource], "metadata": meta})
        body = head[:-1].encode() + b',"items":[' + b",".join(page) + b"]}"
        return 200, body

    def _served_prefixes(self) -> list[tuple[str, str]]:
        """(resource, path prefix) of every served path: each MCS resource under every
        served version (a v1alpha1 client still lists it)."""
        out = [(r, p) for r, p in _PREFIX.items()]
        for version in self.mcs_versions:
            out += [(r, f"/apis/{MCS_GROUP}/{version}") for r in self.mcs_resources]
        return out

    def _discovery(self, path: str) -> dict[str, Any] | None:
        """The APIGroup or APIResourceList document at ``path``, or None (404)."""
        if not self.mcs_versions:
            return None
        versions = [{"groupVersion": f"{MCS_GROUP}/{v}", "version": v}
                    for v in reversed(self.mcs_versions)]
        if path == f"/apis/{MCS_GROUP}":
            return {"kind": "APIGroup", "apiVersion": "v1", "name": MCS_GROUP,
                    "versions": versions, "preferredVersion": versions[0]}
        for v in self.mcs_versions:
            if path == f"/apis/{MCS_GROUP}/{v}":
                return {"kind": "APIResourceList", "apiVersion": "v1",
                        "groupVersion": f"{MCS_GROUP}/{v}",
                        "resources": [{"name": r, "singularName": r[:-1], "namespaced": True,
                                       "kind": _KIND[r], "verbs": ["get", "list", "watch"]}
                                      for r in self.mcs_resources]}
        return None

    def _watch_lines(self, resource: str, namespace: str | None, since: int,
                     deadline: float, generation: int) -> Iterator[bytes]:
        """Batches of event lines after ``since`` until the deadline or a drop."""
        h = self.history[resource]
        pos = bisect.bisect_right(h.rvs, since)
        while True:
            with self.cond:
                while (len(h.rvs) <= pos and self._generation == generation
                       and time.monotonic() < deadline and self.history[resource] is h):
                    self.cond.wait(max(0.0, min(0.5, deadline - time.monotonic())))
                if self._generation != generation:
                    raise ConnectionAbortedError("dropped by the test")
                if self.history[resource] is not h:  # compacted under the watch
                    h = self.history[resource]
                    pos = bisect.bisect_right(h.rvs, since)
                    continue
                end = len(h.rvs)
                batch = [line for line, ns in zip(h.lines[pos:end], h.namespaces[pos:end],
                                                  strict=True)
                         if namespace is None or ns in (namespace, "*bookmark*")]
                if end > pos:
                    since = h.rvs[end - 1]
                pos = end
            if batch:
                yield b"".join(batch)
            elif time.monotonic() >= deadline:
                return

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Quiet: tests read ``api.requests`` instead."""

            def setup(self) -> None:
                super().setup()
                with api.cond:
                    api._conns.add(self.connection)

            def finish(self) -> None:
                with api.cond:
                    api._conns.discard(self.connection)
                with contextlib.suppress(OSError):
                    super().finish()

            received: Request | None = None  # (``request`` is the socket)

            def _send(self, code: int, body: bytes) -> None:
                if self.received is not None:
                    self.received.status = code
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                auth = self.headers.get("Authorization")
                self.received = Request(parts.path, query, auth)
                with api.cond:
                    api.requests.append(self.received)
                if api.require_token and auth != f"Bearer {TOKEN}":
                    self._send(401, json.dumps(_status(401, "Unauthorized",
                                                       "Unauthorized")).encode())
                    return
                route = api._route(parts.path)
                document = api._discovery(parts.path) if route is None else None
                if document is not None:
                    self._send(200, json.dumps(document).encode())
                    return
                if route is None:
                    self._send(404, json.dumps(_status(404, "NotFound",
                                                       "the server could not find it")).encode())
                    return
                resource, namespace = route
                verb = "watch" if query.get("watch") in ("true", "1") else "list"
                if (resource, verb) in api.forbidden:
                    group = api.prefix[resource].removeprefix("/apis/").split("/")[0]
                    group = "" if group.startswith("/api") else group
                    self._send(403, json.dumps(_status(
                        403, "Forbidden",
                        f'{resource}{"." + group if group else ""} is forbidden: User '
                        f'"system:serviceaccount:zonegen:zonegen" cannot {verb} resource '
                        f'"{resource}" in API group "{group}" at the cluster scope')).encode())
                    return
                if verb == "list":
                    with api.cond:
                        while (resource in api.held or (resource in api.held_pages
                                                        and query.get("continue"))
                               ) and api._server is not None:
                            api.cond.wait(0.1)
                    code, body = api._list_body(resource, namespace, query)
                    self._send(code, body)
                    return
                self._watch(resource, namespace, query)

            def _watch(self, resource: str, namespace: str | None,
                       query: dict[str, str]) -> None:
                since = int(query.get("resourceVersion") or 0)
                timeout = float(query.get("timeoutSeconds") or 1800)
                with api.cond:
                    api.watch_count += 1
                    generation = api._generation
                    gone = since < api.compacted_rv
                if gone and api.gone_as_http:
                    self._send(410, json.dumps(_status(
                        410, "Expired", f"too old resource version: {since} "
                                        f"({api.compacted_rv})")).encode())
                    return
                if self.received is not None:
                    self.received.status = 200
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    if api.garbage_watches:
                        self._chunk(b"<html>bad gateway</html>\n")
                    elif gone:
                        err = {"type": "ERROR", "object": _status(
                            410, "Expired",
                            f"too old resource version: {since} ({api.compacted_rv})")}
                        self._chunk(json.dumps(err).encode() + b"\n")
                    else:
                        for data in api._watch_lines(resource, namespace, since,
                                                     time.monotonic() + timeout, generation):
                            self._chunk(data)
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (ConnectionAbortedError, OSError):
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

        return Handler


# --------------------------------------------------------------------------- objects


def service(name: str, namespace: str = "default", cluster_ip: str | None = "10.96.0.10",
            ports: tuple[tuple[str, int], ...] = (("http", 80),)) -> dict[str, Any]:
    """A v1 Service (``cluster_ip=None`` makes it headless)."""
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip or "None",
            "clusterIPs": [cluster_ip or "None"],
            "ports": [{"name": n, "port": p, "protocol": "TCP", "targetPort": p}
                      for n, p in ports],
            "selector": {"app": name},
        },
    }


def endpoint_slice(service_name: str, addresses: list[str], namespace: str = "default",
                   name: str | None = None,
                   ports: tuple[tuple[str, int], ...] = (("http", 80),)) -> dict[str, Any]:
    """A discovery.k8s.io/v1 EndpointSlice with one ready endpoint per address."""
    return {
        "metadata": {"name": name or f"{service_name}-abcde", "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": service_name}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [a], "conditions": {"ready": True},
                       "targetRef": {"kind": "Pod", "name": f"{service_name}-{i}"}}
                      for i, a in enumerate(addresses)],
        "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports],
    }


def endpoints(service_name: str, addresses: list[str],
              namespace: str = "default") -> dict[str, Any]:
    """A legacy v1 Endpoints object."""
    return {
        "metadata": {"name": service_name, "namespace": namespace},
        "subsets": [{"addresses": [{"ip": a} for a in addresses],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}],
    }


def service_import(name: str, namespace: str = "default", ips: tuple[str, ...] = (),
                   ports: tuple[tuple[str, int], ...] = (("http", 80),),
                   headless: bool = False) -> dict[str, Any]:
    """A ServiceImport (``multicluster.x-k8s.io``), ClusterSetIP unless ``headless``."""
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": "Headless" if headless else "ClusterSetIP", "ips": list(ips),
                 "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports]},
    }


def service_export(name: str, namespace: str = "default") -> dict[str, Any]:
    """A ServiceExport: only its name matters."""
    return {"metadata": {"name": name, "namespace": namespace}}


def mcs_slice(service_name: str, cluster_id: str, addresses: list[str],
              namespace: str = "default", hostnames: list[str] | None = None,
              ports: tuple[tuple[str, int], ...] = (("http", 80),)) -> dict[str, Any]:
    """An EndpointSlice an MCS controller made for a ServiceImport: the two MCS labels
    (and a ``kubernetes.io/service-name`` naming a derived local Service, as some
    implementations set it)."""
    obj = endpoint_slice(f"derived-{service_name}", addresses, namespace,
                         name=f"{service_name}-{cluster_id.replace('.', '-')}", ports=ports)
    obj["metadata"]["labels"].update({MCS_SERVICE_NAME: service_name,
                                      MCS_SOURCE_CLUSTER: cluster_id})
    for endpoint, hostname in zip(obj["endpoints"], hostnames or [], strict=False):
        endpoint["hostname"] = hostname
    return obj
