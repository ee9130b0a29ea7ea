"""The k8s/ manifests keep the policies k8s/README.md promises: tagged images, resources,
the restricted security context, no exposed Ray ports, one Ray version, resolvable
Secrets and ConfigMaps, Serve configs equal to deployments/*.yaml."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from k8s_support import (
    DASHBOARD_PORT,
    INTERNAL_PORTS,
    K8S,
    RAY_GROUP,
    REPO,
    SERVE_PORT,
    containers,
    environments,
    name_of,
    overlay_id,
    pinned_ray_version,
    pod_specs,
    ray_cluster_spec,
    render,
    render_env,
)


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
