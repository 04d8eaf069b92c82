"""A small kustomize renderer for the tests: exactly the features k8s/ uses, and an error
for anything else, so a manifest change that needs more fails loudly here instead of being
rendered wrong. Where `kubectl kustomize` exists, test_k8s.py checks that both agree.

Supported: `resources` (YAML files, or directories with their own kustomization),
`components` (kind Component), `secretGenerator` and `configMapGenerator` from `files` with
`disableNameSuffixHash: true`, `labels` and `annotations` options, and `images`.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KNOWN_KEYS = {"apiVersion", "kind", "resources", "components", "secretGenerator",
              "configMapGenerator", "images"}
GENERATOR_KEYS = {"name", "files", "options", "type"}
OPTION_KEYS = {"disableNameSuffixHash", "labels", "annotations"}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class UnsupportedKustomization(Exception):
    """The kustomization uses something this renderer does not do."""


def kustomization_file(directory: Path) -> Path:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"no kustomization in {directory}")


def load_yaml_documents(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def render(directory: Path, expected_kind: str = "Kustomization") -> list[Resource]:
    """The resources `kubectl kustomize directory` would print (order aside)."""
    spec = yaml.safe_load(kustomization_file(directory).read_text())
    unknown = set(spec) - KNOWN_KEYS
    if unknown:
        raise UnsupportedKustomization(f"{directory}: {sorted(unknown)}")
    if spec.get("kind", "Kustomization") != expected_kind:
        raise UnsupportedKustomization(f"{directory}: kind {spec.get('kind')}, "
                                       f"expected {expected_kind}")
    resources: list[Resource] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        resources += render(path) if path.is_dir() else load_yaml_documents(path)
    for entry in spec.get("secretGenerator", []):
        resources.append(_generate(directory, entry, "Secret"))
    for entry in spec.get("configMapGenerator", []):
        resources.append(_generate(directory, entry, "ConfigMap"))
    for entry in spec.get("components", []):
        resources += render((directory / entry).resolve(), expected_kind="Component")
    for image in spec.get("images", []):
        _set_image(resources, image)
    _check_unique(resources)
    return resources


def _generate(directory: Path, entry: dict[str, Any], kind: str) -> Resource:
    unknown = set(entry) - GENERATOR_KEYS
    options = entry.get("options", {})
    unknown |= set(options) - OPTION_KEYS
    if unknown:
        raise UnsupportedKustomization(f"{kind} generator {entry.get('name')}: {sorted(unknown)}")
    if not options.get("disableNameSuffixHash"):
        raise UnsupportedKustomization(f"{entry['name']}: name suffix hashes are not rendered")
    data: dict[str, str] = {}
    for item in entry.get("files", []):
        if "=" in item:
            name, _, source = item.partition("=")
        else:
            name, source = Path(item).name, item
        content = (directory / source).read_bytes()
        data[name] = (base64.b64encode(content).decode("ascii") if kind == "Secret"
                      else content.decode("utf-8"))
    metadata: dict[str, Any] = {"name": entry["name"]}
    for field in ("labels", "annotations"):
        if options.get(field):
            metadata[field] = dict(options[field])
    resource: Resource = {"apiVersion": "v1", "kind": kind, "metadata": metadata, "data": data}
    if kind == "Secret":
        resource["type"] = entry.get("type", "Opaque")
    return resource


def _set_image(resources: list[Resource], image: dict[str, str]) -> None:
    for resource in resources:
        if resource.get("kind") not in POD_TEMPLATE_KINDS:
            continue
        pod = resource["spec"]["template"]["spec"]
        for container in [*pod.get("containers", []), *pod.get("initContainers", [])]:
            name, _, tag = container["image"].partition(":")
            if name != image["name"]:
                continue
            new_name = image.get("newName", name)
            new_tag = image.get("newTag", tag)
            container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name
            if image.get("digest"):
                container["image"] = f"{new_name}@{image['digest']}"


def _check_unique(resources: list[Resource]) -> None:
    seen: set[tuple[str, str]] = set()
    for resource in resources:
        key = (resource["kind"], resource["metadata"]["name"])
        if key in seen:
            raise UnsupportedKustomization(f"{key} defined twice")
        seen.add(key)


def by_kind(resources: list[Resource]) -> dict[str, Resource]:
    """{kind: resource} for a rendering with one resource of each kind."""
    found: dict[str, Resource] = {}
    for resource in resources:
        assert resource["kind"] not in found, f"two {resource['kind']}s"
        found[resource["kind"]] = copy.deepcopy(resource)
    return found
