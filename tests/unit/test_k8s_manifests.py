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

import copy
import re
from pathlib import Path

import pytest
from k8s_support import (
    EXTERNAL_SECRETS,
    OVERLAYS,
    RAY_GROUP,
    RAY_KINDS,
    SERVE_APPS,
    crd_errors,
    environments,
    name_of,
    overlay_id,
    render,
    render_env,
)


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
