"""k8s/: every manifest validated offline against the Kubernetes schemas (kubernetes-validate,
strict: an unknown field is an error), the kustomization rendered (by tests/deploy/kustomize.py,
and compared with `kubectl kustomize` where that exists), and the promises the manifests make
to each other and to pgcat.toml: ports, probes, the drain timeline, the checksum, the worker
count, selectors, and a NetworkPolicy that admits only labelled clients.

kubernetes-validate ships its schemas inside the wheel (kubernetes_validate/
kubernetes-json-schema/v1.25.0 ... v1.37.0, with -strict variants) and resolves their $refs
from a local registry, so it never needs the network; test_validation_needs_no_network keeps
it that way.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from pgcat_py.config import parse_config

from .kustomize import Resource, by_kind, load_yaml_documents, render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
MONITORING = K8S / "components" / "monitoring"
CONFIG = K8S / "pgcat.toml"
CONFIG_PATH = "/etc/pgcat/pgcat.toml"
# The oldest release the manifests promise (the preStop `sleep` action is 1.30) and the
# newest the installed kubernetes-validate knows.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
CUSTOM_KINDS = {"ServiceMonitor"}  # CRDs: no upstream schema, checked field by field below
CLIENT_LABEL = ("pgcat-py/client", "true")


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def validate(resource: Resource, version: str) -> None:
    kubernetes_validate.validate(resource, version, strict=True)


def config_text() -> str:
    return CONFIG.read_text()


@pytest.fixture(scope="module")
def base() -> dict[str, Resource]:
    return by_kind(render(K8S))


@pytest.fixture
def monitoring_overlay(tmp_path: Path) -> Path:
    """An overlay outside k8s/ (kustomize refuses one inside its base) with the component."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    spec = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": [os.path.relpath(K8S, overlay)],
            "components": [os.path.relpath(MONITORING, overlay)]}
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(spec))
    return overlay


def pod_spec(base: dict[str, Resource]) -> dict[str, Any]:
    spec: dict[str, Any] = base["Deployment"]["spec"]["template"]["spec"]
    return spec


def container(base: dict[str, Resource]) -> dict[str, Any]:
    containers = pod_spec(base)["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def general() -> dict[str, Any]:
    table: dict[str, Any] = tomllib.loads(config_text())["general"]
    return table


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def cpus(quantity: str) -> int:
    """A CPU quantity in whole CPUs, rounded up, as resourceFieldRef with divisor 1 does."""
    if quantity.endswith("m"):
        return math.ceil(int(quantity[:-1]) / 1000)
    return math.ceil(float(quantity))


# --- schemas ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_file_validates_strictly(path: Path, version: str) -> None:
    documents = load_yaml_documents(path)
    assert documents, f"{path} is empty"
    for document in documents:
        if document["kind"] in CUSTOM_KINDS:
            continue
        validate(document, version)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_rendered_base_validates_strictly_and_needs_no_crd(version: str) -> None:
    resources = render(K8S)
    kinds = sorted(r["kind"] for r in resources)
    assert kinds == ["Deployment", "HorizontalPodAutoscaler", "NetworkPolicy",
                     "PodDisruptionBudget", "Secret", "Service"]
    for resource in resources:
        validate(resource, version)  # SchemaNotFoundError for anything not built in


def test_strict_validation_rejects_a_misspelt_field(base: dict[str, Resource]) -> None:
    """Guards the guard: a typo must fail, or the tests above prove nothing."""
    broken = copy.deepcopy(base["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken, K8S_VERSIONS[-1])


def test_validation_needs_no_network(monkeypatch: pytest.MonkeyPatch,
                                     base: dict[str, Resource]) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"kubernetes-validate opened a connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for resource in base.values():
        validate(resource, K8S_VERSIONS[-1])


# --- rendering --------------------------------------------------------------------------


def test_the_secret_holds_pgcat_toml_and_no_configmap_does(base: dict[str, Resource]) -> None:
    secret = base["Secret"]
    assert base64.b64decode(secret["data"]["pgcat.toml"]).decode() == config_text()
    assert "ConfigMap" not in base
    volume = next(v for v in pod_spec(base)["volumes"] if "secret" in v)
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]


def test_the_monitoring_component_adds_a_servicemonitor_and_the_dashboard(
        monitoring_overlay: Path, base: dict[str, Resource]) -> None:
    rendered = by_kind(render(monitoring_overlay))
    assert set(rendered) == set(base) | {"ServiceMonitor", "ConfigMap"}
    monitor = rendered["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service = base["Service"]
    assert matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}
        assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"
    dashboard = rendered["ConfigMap"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    (name, text), = dashboard["data"].items()
    assert json.loads(text) == json.loads((MONITORING / name).read_text())
    for resource in rendered.values():
        if resource["kind"] not in CUSTOM_KINDS:
            validate(resource, K8S_VERSIONS[-1])


def kubectl_kustomize(directory: Path) -> list[Resource]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl here: tests/deploy/kustomize.py alone rendered the manifests")
    done = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def ordered(resources: list[Resource]) -> list[Resource]:
    """Sorted, with Secret data decoded (kubectl wraps base64 lines at 70 characters)."""
    normalized = copy.deepcopy(resources)
    for resource in normalized:
        if resource["kind"] == "Secret":
            resource["data"] = {key: base64.b64decode(value)
                                for key, value in resource["data"].items()}
    return sorted(normalized, key=lambda r: (r["kind"], r["metadata"]["name"]))


def test_kubectl_kustomize_renders_the_same_base() -> None:
    assert ordered(kubectl_kustomize(K8S)) == ordered(render(K8S))


def test_kubectl_kustomize_renders_the_same_monitoring_overlay(monitoring_overlay: Path) -> None:
    assert ordered(kubectl_kustomize(monitoring_overlay)) == ordered(render(monitoring_overlay))


# --- the Deployment and pgcat.toml agree --------------------------------------------------


def test_the_config_passes_check_with_the_workers_variable() -> None:
    limit = "2"
    env = {**os.environ, "PGCAT_WORKERS": str(cpus(limit))}
    done = subprocess.run([sys.executable, "-m", "pgcat_py", "--check", str(CONFIG)], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_the_worker_count_comes_from_the_cpu_limit(base: dict[str, Resource]) -> None:
    c = container(base)
    env = {e["name"]: e for e in c["env"]}
    ref = env["PGCAT_WORKERS"]["valueFrom"]["resourceFieldRef"]
    assert ref == {"containerName": c["name"], "resource": "limits.cpu", "divisor": "1"}
    assert general()["worker_threads"] == "${PGCAT_WORKERS}"
    workers = cpus(c["resources"]["limits"]["cpu"])
    loaded = parse_config(config_text(), str(CONFIG), environ={"PGCAT_WORKERS": str(workers)})
    assert loaded.config.general.worker_threads == workers


def test_the_container_runs_the_config_from_the_secret(base: dict[str, Resource]) -> None:
    c = container(base)
    assert [*c["command"], *c["args"]] == ["pgcat-py", CONFIG_PATH]
    mount = next(m for m in c["volumeMounts"] if m["name"] == "config")
    # a directory mount: a subPath mount would never see an updated Secret
    assert mount["mountPath"] == str(Path(CONFIG_PATH).parent) and "subPath" not in mount
    assert mount["readOnly"] is True


def test_ports_are_named_and_match_the_config(base: dict[str, Resource]) -> None:
    ports = {p["name"]: p["containerPort"] for p in container(base)["ports"]}
    g = general()
    assert ports == {"postgres": g["port"], "metrics": g["prometheus_exporter_port"]}
    assert ports == {"postgres": 6432, "metrics": 9930}
    assert g["enable_prometheus_exporter"] is True, "the probes need /healthz"
    service_ports = {p["name"]: (p["port"], p["targetPort"])
                     for p in base["Service"]["spec"]["ports"]}
    assert service_ports == {"postgres": (6432, "postgres"), "metrics": (9930, "metrics")}


def test_probes_ask_healthz(base: dict[str, Resource]) -> None:
    c = container(base)
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}, probe


def test_the_grace_period_covers_the_pause_and_the_drain(base: dict[str, Resource]) -> None:
    pause = container(base)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pause >= 5, "endpoints need a few seconds to drop the pod everywhere"
    drain = general()["shutdown_timeout"] / 1000
    assert pod_spec(base)["terminationGracePeriodSeconds"] > pause + drain


def test_the_pod_template_carries_the_config_checksum(base: dict[str, Resource]) -> None:
    annotations = base["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    expected = hashlib.sha256(CONFIG.read_bytes()).hexdigest()
    assert annotations["checksum/config"] == expected, (
        "k8s/pgcat.toml changed: update checksum/config in k8s/deployment.yaml "
        "(k8s/README.md, 'Changing the config')")


def test_the_container_is_locked_down(base: dict[str, Resource]) -> None:
    pod = pod_spec(base)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    context = container(base)["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False
    tmp = next(m for m in container(base)["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp["name"])


def test_requests_and_limits_are_set(base: dict[str, Resource]) -> None:
    resources = container(base)["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}, kind


# --- the objects find each other -----------------------------------------------------------


def test_selectors_pick_the_pods(base: dict[str, Resource]) -> None:
    deployment = base["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert matches(deployment["spec"]["selector"]["matchLabels"], labels)
    assert matches(base["Service"]["spec"]["selector"], labels)
    assert matches(base["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"], labels)
    assert matches(base["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"], labels)
    assert deployment["spec"]["replicas"] == 2
    assert base["PodDisruptionBudget"]["spec"]["minAvailable"] < deployment["spec"]["replicas"]


def test_the_autoscaler_scales_the_deployment_on_cpu(base: dict[str, Resource]) -> None:
    spec = base["HorizontalPodAutoscaler"]["spec"]
    target = spec["scaleTargetRef"]
    deployment = base["Deployment"]["metadata"]["name"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment)
    assert [m["resource"]["name"] for m in spec["metrics"]] == ["cpu"]
    assert spec["minReplicas"] >= 2


def test_only_labelled_clients_reach_the_postgres_port(base: dict[str, Resource]) -> None:
    policy = base["NetworkPolicy"]["spec"]
    assert "Ingress" in policy["policyTypes"]
    for rule in policy["ingress"]:
        assert rule.get("from") and rule.get("ports"), "a rule without from/ports admits all"
    postgres_rules = [r for r in policy["ingress"]
                      if any(p["port"] == "postgres" for p in r["ports"])]
    assert len(postgres_rules) == 1
    (peer,) = postgres_rules[0]["from"]
    assert peer == {"podSelector": {"matchLabels": dict([CLIENT_LABEL])}}
    for rule in policy["ingress"]:
        for peer in rule["from"]:
            assert peer.get("podSelector", {}).get("matchLabels"), "every peer names a label"
