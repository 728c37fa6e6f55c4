"""deploy/: every manifest is valid for the official Kubernetes client's models with no
unknown field; the dashboard's queries use only the metric families zonegen defines."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from zonegen.metrics import FAMILIES, Metrics

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "monitoring" / "zonegen-dashboard.json"
MODELS = kubernetes.client.models


# --------------------------------------------------------------------------- loading


def kustomizations() -> list[Path]:
    return sorted(DEPLOY.rglob("kustomization.yaml"))


def patch_files() -> set[Path]:
    """Files a kustomization names under ``patches:``: partial objects, by design."""
    found = set()
    for kustomization in kustomizations():
        spec = yaml.safe_load(kustomization.read_text())
        for patch in spec.get("patches", []):
            found.add((kustomization.parent / patch["path"]).resolve())
    return found


def manifests() -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every object in deploy/ except kustomizations and patches."""
    patches = patch_files()
    for path in sorted(DEPLOY.rglob("*.yaml")):
        if path.name == "kustomization.yaml" or path.resolve() in patches:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path, doc


def model_name(doc: dict[str, Any]) -> str:
    version = doc["apiVersion"].rsplit("/", 1)[-1]
    return f"{version[0].upper()}{version[1:]}{doc['kind']}"


# --------------------------------------------------------------------------- strictness


def unknown_fields(value: Any, type_name: str, where: str) -> list[str]:
    """Every key of ``value`` that the client's model ``type_name`` does not have (and
    every value of the wrong primitive type), walking nested models, lists and maps.
    Keys starting with ``$`` (strategic-merge directives) are allowed in patches."""
    problems: list[str] = []
    list_of = re.fullmatch(r"List\[(.+)\]", type_name)
    dict_of = re.fullmatch(r"Dict\[str, (.+)\]", type_name)
    if list_of:
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        for i, item in enumerate(value):
            problems += unknown_fields(item, list_of.group(1), f"{where}[{i}]")
    elif dict_of:
        if not isinstance(value, dict):
            return [f"{where}: expected a map"]
        for key, item in value.items():
            problems += unknown_fields(item, dict_of.group(1), f"{where}.{key}")
    elif type_name == "str":
        if not isinstance(value, str):
            problems.append(f"{where}: expected a string, got {value!r}")
    elif type_name == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{where}: expected an integer, got {value!r}")
    elif type_name == "bool":
        if not isinstance(value, bool):
            problems.append(f"{where}: expected true/false, got {value!r}")
    elif type_name in ("object", "float", "datetime", "date"):
        pass
    else:
        model = getattr(MODELS, type_name)
        if not isinstance(value, dict):
            return [f"{where}: expected an object ({type_name})"]
        by_key = {json_key: attr for attr, json_key in model.attribute_map.items()}
        for key, item in value.items():
            if key.startswith("$"):
                continue
            if key not in by_key:
                problems.append(f"{where}.{key}: not a field of {type_name}")
                continue
            problems += unknown_fields(item, model.openapi_types[by_key[key]],
                                       f"{where}.{key}")
    return problems


def deserialize(doc: dict[str, Any]) -> Any:
    """The object through the client's own deserializer (required fields, enums)."""
    return kubernetes.client.ApiClient().deserialize(json.dumps(doc), model_name(doc),
                                                     "application/json")


# ServiceMonitor (monitoring.coreos.com/v1) is a CRD the client has no model for: the
# fields zonegen's manifest may use, from the Prometheus Operator's API reference.
SERVICE_MONITOR: dict[str, Any] = {
    "apiVersion": "str", "kind": "str", "metadata": "V1ObjectMeta",
    "spec": {
        "selector": "V1LabelSelector",
        "namespaceSelector": {"any": "bool", "matchNames": ["str"]},
        "jobLabel": "str", "targetLabels": ["str"], "podTargetLabels": ["str"],
        "endpoints": [{
            "port": "str", "targetPort": "object", "path": "str", "scheme": "str",
            "interval": "str", "scrapeTimeout": "str", "honorLabels": "bool",
            "params": "object", "relabelings": "object", "metricRelabelings": "object",
        }],
    },
}


def schema_problems(value: Any, schema: Any, where: str) -> list[str]:
    if isinstance(schema, str):
        return unknown_fields(value, schema, where)
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        return [p for i, item in enumerate(value)
                for p in schema_problems(item, schema[0], f"{where}[{i}]")]
    if not isinstance(value, dict):
        return [f"{where}: expected an object"]
    problems = [f"{where}.{k}: not a field" for k in value if k not in schema]
    for key, item in value.items():
        if key in schema:
            problems += schema_problems(item, schema[key], f"{where}.{key}")
    return problems


def validate(doc: dict[str, Any], where: str) -> list[str]:
    if doc["apiVersion"] == "monitoring.coreos.com/v1":
        assert doc["kind"] == "ServiceMonitor", where
        return schema_problems(doc, SERVICE_MONITOR, where)
    problems = unknown_fields(doc, model_name(doc), where)
    if not problems:
        deserialize(doc)  # raises on a missing required field or a bad enum value
    return problems


# --------------------------------------------------------------------------- tests


def test_the_strict_check_catches_an_unknown_or_misplaced_field() -> None:
    good = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
            "spec": {"ports": [{"port": 53, "protocol": "UDP"}]}}
    assert validate(good, "good") == []
    bad = json.loads(json.dumps(good))
    bad["spec"]["ports"][0]["containerPort"] = 53
    bad["spec"]["externalTraficPolicy"] = "Local"
    bad["metadata"]["labels"] = {"a": 1}
    assert sorted(validate(bad, "bad")) == [
        "bad.metadata.labels.a: expected a string, got 1",
        "bad.spec.externalTraficPolicy: not a field of V1ServiceSpec",
        "bad.spec.ports[0].containerPort: not a field of V1ServicePort",
    ]
    monitor = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
               "metadata": {"name": "m"},
               "spec": {"selector": {"matchLabels": {"a": "b"}},
                        "endpoints": [{"port": "metrics", "intervall": "30s"}]}}
    assert validate(monitor, "m") == ["m.spec.endpoints[0].intervall: not a field"]
    with pytest.raises(ValueError, match="port"):
        deserialize({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                     "spec": {"ports": [{"protocol": "UDP"}]}})  # port is required


def test_every_manifest_loads_into_the_client_models_with_no_unknown_field() -> None:
    seen = []
    for path, doc in manifests():
        where = f"{path.relative_to(ROOT)}:{doc['kind']}/{doc['metadata']['name']}"
        assert validate(doc, where) == []
        seen.append(doc["kind"])
    assert sorted(set(seen)) == [
        "ClusterRole", "ClusterRoleBinding", "Deployment", "Namespace",
        "PersistentVolumeClaim", "PodDisruptionBudget", "Service", "ServiceAccount",
        "ServiceMonitor"]


def test_patches_use_only_fields_of_the_objects_they_patch() -> None:
    assert patch_files()
    for path in sorted(patch_files()):
        for doc in yaml.safe_load_all(path.read_text()):
            assert unknown_fields(doc, model_name(doc), str(path.relative_to(ROOT))) == []


def test_kustomizations_name_existing_files() -> None:
    allowed = {"apiVersion", "kind", "resources", "patches", "configMapGenerator",
               "generatorOptions", "namespace", "labels", "images", "components"}
    for kustomization in kustomizations():
        spec = yaml.safe_load(kustomization.read_text())
        assert set(spec) <= allowed, kustomization
        assert spec["kind"] == "Kustomization"
        for resource in spec.get("resources", []):
            assert (kustomization.parent / resource).exists(), (kustomization, resource)
        for patch in spec.get("patches", []):
            assert (kustomization.parent / patch["path"]).is_file()
        for generator in spec.get("configMapGenerator", []):
            for file in generator["files"]:
                assert (kustomization.parent / file).is_file()


def base_objects() -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for path, d in manifests()
            if path.parent == DEPLOY / "base"}


def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def option(args: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(f"{name}=")]
    return value


def check_probes_and_ports(container: dict[str, Any]) -> None:
    ports = {p["name"]: p for p in container["ports"]}
    metrics_port = int(option(container["args"], "--metrics-listen").rsplit(":", 1)[1])
    assert (ports["metrics"]["containerPort"], ports["metrics"]["protocol"]) == (
        metrics_port, "TCP")
    listen_port = int(option(container["args"], "--listen").rsplit(":", 1)[1])
    assert {(p["containerPort"], p["protocol"]) for n, p in ports.items()
            if n.startswith("dns")} == {(listen_port, "UDP"), (listen_port, "TCP")}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                        ("startupProbe", "/readyz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}, probe
    startup = container["startupProbe"]
    # a large first list (100k+ objects) and first zone load: at least 10 minutes
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    assert container["command"] == ["zonegen", "--log-format=json"]


def test_single_replica_deployment() -> None:
    objects = base_objects()
    deployment = objects[("Deployment", "zonegen")]
    spec = deployment["spec"]
    assert (spec["replicas"], spec["strategy"]) == (1, {"type": "Recreate"})
    container = container_of(deployment)
    check_probes_and_ports(container)
    args = container["args"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    # SQLite on the PVC, never on an emptyDir
    db_path = option(args, "--db").removeprefix("sqlite:///")
    assert db_path.startswith(mounts["data"]["mountPath"] + "/")
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] in {
        name for kind, name in objects if kind == "PersistentVolumeClaim"}
    # TSIG from a Secret, mounted read-only, named by --tsig-keyfile
    keyfile = option(args, "--tsig-keyfile")
    assert keyfile.startswith(mounts["tsig"]["mountPath"] + "/")
    assert mounts["tsig"]["readOnly"] is True
    assert volumes["tsig"]["secret"]["secretName"] == "zonegen-tsig"
    # the metrics Service the ServiceMonitor selects exposes the metrics port by name
    metrics_service = objects[("Service", "zonegen-metrics")]
    assert [p["targetPort"] for p in metrics_service["spec"]["ports"]] == ["metrics"]
    (monitor,) = [d for _, d in manifests() if d["kind"] == "ServiceMonitor"]
    labels = monitor["spec"]["selector"]["matchLabels"]
    assert labels.items() <= metrics_service["metadata"]["labels"].items()
    assert not labels.items() <= objects[("Service", "zonegen")]["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]


def test_external_service_exposes_port_53_keeping_source_addresses() -> None:
    (service,) = [d for p, d in manifests() if p.parent.name == "external"]
    spec = service["spec"]
    assert spec["type"] == "LoadBalancer"
    assert spec["externalTrafficPolicy"] == "Local"
    assert {(p["port"], p["protocol"], p["targetPort"]) for p in spec["ports"]} == {
        (53, "UDP", "dns-udp"), (53, "TCP", "dns-tcp")}
    text = (DEPLOY / "external" / "service.yaml").read_text()
    assert "allow-notify" in text  # the NOTIFY source-address caveat


def test_replicated_patch_runs_postgres_replicas_with_a_lease() -> None:
    (patch,) = [d for d in yaml.safe_load_all(
        (DEPLOY / "replicated" / "deployment-patch.yaml").read_text())]
    spec = patch["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    container = container_of(patch)
    assert not [a for a in container["args"] if a.startswith("--db")]
    assert int(option(container["args"], "--lease-seconds")) > 0
    (env,) = container["env"]
    assert env["name"] == "ZONEGEN_DB"
    assert env["valueFrom"]["secretKeyRef"] == {"name": "zonegen-db", "key": "url"}


KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(KUBECTL is None, reason="kubectl (with kustomize) is not installed")
def test_every_kustomization_builds_and_the_result_is_valid() -> None:
    built: dict[str, list[dict[str, Any]]] = {}
    for kustomization in kustomizations():
        assert KUBECTL is not None
        proc = subprocess.run([KUBECTL, "kustomize", str(kustomization.parent)],
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        name = str(kustomization.parent.relative_to(DEPLOY))
        built[name] = [d for d in yaml.safe_load_all(proc.stdout) if d]
        for doc in built[name]:
            if doc["kind"] == "ConfigMap":
                assert json.loads(doc["data"]["zonegen-dashboard.json"])["uid"] == "zonegen"
                continue
            assert validate(doc, f"{name}:{doc['kind']}/{doc['metadata']['name']}") == []
    assert {d["kind"] for d in built["."]} == {d["kind"] for d in built["base"]}
    replicated = built["replicated"]
    assert "PersistentVolumeClaim" not in {d["kind"] for d in replicated}
    (deployment,) = [d for d in replicated if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    container = container_of(deployment)
    check_probes_and_ports(container)
    assert "data" not in {m["name"] for m in container["volumeMounts"]}
    assert "data" not in {v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert "--lease-seconds=15" in container["args"]


# --------------------------------------------------------------------------- dashboard

PROMQL_FUNCTIONS = frozenset({
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp",
    "clamp_max", "clamp_min", "count_over_time", "day_of_month", "day_of_week", "day_of_year",
    "days_in_month", "delta", "deriv", "exp", "floor", "histogram_quantile", "hour", "idelta",
    "increase", "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2",
    "max_over_time", "min_over_time", "minute", "month", "predict_linear", "present_over_time",
    "quantile_over_time", "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc",
    "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time", "time", "timestamp",
    "vector", "year"
})
AGGREGATIONS = frozenset({
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
    "topk", "quantile"
})
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = frozenset({"bool", "and", "or", "unless", "offset", "atan2", "inf", "nan"})
TOKEN = re.compile(r"""
    (?P<space>\s+) | (?P<duration>\d+(?:ms|[smhdwy])\b) | (?P<number>\d+(?:\.\d*)?(?:e[+-]?\d+)?)
    | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*) | (?P<var>\$\{?\w+\}?) | (?P<op>==|!=|>=|<=|[-+*/%^<>(),])
    """, re.VERBOSE)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects.

    A small lexer rather than a parser dependency: strings, label matchers and ranges
    are cut first, then every bare name must be a known function or aggregation (when a
    ``(`` follows), a keyword, a label in a grouping clause, or a metric name.
    :raises AssertionError: unbalanced brackets or an unknown function.
    """
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    assert text.count("{") == text.count("}"), expr
    assert text.count("[") == text.count("]"), expr
    assert "__name__" not in text, f"select metrics by name, not by __name__: {expr}"
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = TOKEN.match(text, pos)
        assert match is not None, f"cannot read {text[pos:]!r} in {expr}"
        pos = match.end()
        if match.lastgroup != "space":
            tokens.append((match.lastgroup or "", match.group()))
    assert [t for _, t in tokens].count("(") == [t for _, t in tokens].count(")"), expr
    names: set[str] = set()
    i = 0
    while i < len(tokens):
        kind, token = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "name" and token in GROUPING and following == "(":
            i = tokens.index((tokens[i + 1][0], ")"), i + 1)  # skip the label list
        elif kind == "name" and token in AGGREGATIONS and following in ("(", "by", "without"):
            pass
        elif kind == "name" and following == "(":
            assert token in PROMQL_FUNCTIONS, f"unknown function {token}() in {expr}"
        elif kind == "name" and token.lower() not in KEYWORDS:
            names.add(token)
        i += 1
    return names


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
            assert match is not None, query
            queries.append(match.group(1))
    return queries


def allowed_sample_names() -> set[str]:
    """FAMILIES, and the _bucket/_sum/_count series of those that are histograms."""
    metrics = Metrics()
    histograms = {f.name for f in text_string_to_metric_families(
        generate_latest(metrics.registry).decode()) if f.type == "histogram"}
    assert histograms == {"zonegen_event_to_version_seconds"}
    return set(FAMILIES) | {h + s for h in histograms for s in ("_bucket", "_sum", "_count")}


def test_the_promql_lexer() -> None:
    assert metric_names(
        'histogram_quantile(0.99, sum by (le, zone) (rate(a_bucket{x="}"}[5m]))) '
        '/ on (zone) group_left () b offset 1h + count without (kind) (c == bool 1)'
    ) == {"a_bucket", "b", "c"}
    with pytest.raises(AssertionError, match="unknown function"):
        metric_names("rates(a[5m])")


def test_dashboard_uses_only_zonegen_metric_names() -> None:
    allowed = allowed_sample_names()
    used: set[str] = set()
    for query in dashboard_queries():
        names = metric_names(query)
        assert names, query
        assert names <= allowed, f"{query}: unknown {sorted(names - allowed)}"
        used |= names
    # the panels the issue asks for
    assert {"zonegen_zone_serial", "zonegen_zone_versions_total",
            "zonegen_event_to_version_seconds_bucket", "zonegen_transfers_total",
            "zonegen_notify_total", "zonegen_watch_synced",
            "zonegen_watch_last_event_timestamp_seconds"} <= used
    assert any(q.startswith("histogram_quantile(0.99,") for q in dashboard_queries())
    notify = [q for q in dashboard_queries() if "zonegen_notify_total" in q]
    assert any('result!="acknowledged"' in q for q in notify)
