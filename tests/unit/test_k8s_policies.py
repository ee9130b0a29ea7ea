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
    ORCHESTRATOR,
    ORCHESTRATOR_LABELS,
    OVERLAYS,
    RAY_GROUP,
    REPO,
    SERVE_PORT,
    containers,
    environments,
    is_sluice_image,
    name_of,
    overlay_id,
    pinned_ray_version,
    pod_labels,
    pod_specs,
    ray_cluster_spec,
    render,
    render_env,
    selects,
)


def test_images_are_tagged_never_latest_and_sluice_is_one_image(overlay: Path) -> None:
    sluice_images = set()
    for doc in render(overlay):
        for where, container in containers(doc):
            image = container["image"]
            tag = image_tag(image)
            assert tag, f"{where}: image {image!r} has no tag"
            assert tag != "latest", f"{where}: image {image!r} uses :latest"
            if is_sluice_image(image):
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


def _selects_ray_pods(service: Mapping[str, Any], docs: list[Mapping[str, Any]]) -> bool:
    """Whether a Service may front Ray pods: it selects some (their template labels, plus
    the ray.io/* labels KubeRay adds), names a ray.io/* label, or selects no pods at all
    (its endpoints could be anything)."""
    selector = service["spec"].get("selector")
    if not selector or any(key.startswith("ray.io/") for key in selector):
        return True
    ray_pods = [
        labels
        for doc in docs
        if doc["apiVersion"].startswith(f"{RAY_GROUP}/")
        for _, labels in pod_labels(doc)
    ]
    return any(selects(selector, labels) for labels in ray_pods)


def test_no_service_exposes_ray_internal_ports(overlay: Path) -> None:
    docs = render(overlay)
    problems = []
    for doc in docs:
        for where, port in _service_ports(doc):
            numbers = {port.get("port"), port.get("targetPort")} & INTERNAL_PORTS
            # 6379 is also Redis's port: a Service of Redis pods (the dev event stream) is
            # not the GCS. Any Service that may reach a Ray pod is held to the rule.
            if numbers and (doc["kind"] != "Service" or _selects_ray_pods(doc, docs)):
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


def _ports(rule: Mapping[str, Any]) -> set[tuple[str, int]] | None:
    """(protocol, port) pairs a rule admits (None: every port)."""
    ports = rule.get("ports")
    if not ports:
        return None
    return {(p.get("protocol", "TCP"), int(p["port"])) for p in ports}


def _admits(rule: Mapping[str, Any], protocol: str, port: int) -> bool:
    ports = _ports(rule)
    return ports is None or (protocol, port) in ports


def _public_ipv4(peer: Mapping[str, Any]) -> bool:
    block = peer.get("ipBlock") or {}
    return block.get("cidr") == "0.0.0.0/0" and "10.0.0.0/8" in (block.get("except") or [])


def test_orchestrator_network_policies(env: str) -> None:
    """The orchestrator's egress: DNS, PostgreSQL (the ledger) and Redis (the event stream)
    wherever production runs them, SMTP relays and webhooks on public addresses only, and
    not the Kubernetes API. Its ingress: nothing from outside the namespace."""
    docs = render(OVERLAYS / env)
    [deployment] = [d for d in docs if name_of(d) == f"Deployment/{ORCHESTRATOR}"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels == ORCHESTRATOR_LABELS, labels
    policies = [
        p
        for p in docs
        if p["kind"] == "NetworkPolicy" and selects(p["spec"]["podSelector"], labels)
    ]
    egress_policies = [p for p in policies if "Egress" in p["spec"].get("policyTypes", [])]
    assert any(not p["spec"].get("egress") for p in egress_policies), "egress is not denied"
    rules = [r for p in egress_policies for r in p["spec"].get("egress") or []]

    def reachable(protocol: str, port: int, outside: bool) -> list[Mapping[str, Any]]:
        """Rules admitting the port; outside: to any address beyond the namespace."""
        found = []
        for rule in rules:
            if not _admits(rule, protocol, port):
                continue
            peers = rule.get("to") or []
            if not outside or not peers or any("ipBlock" in p for p in peers):
                found.append(rule)
        return found

    assert reachable("UDP", 53, outside=False) and reachable("TCP", 53, outside=False), "DNS"
    for port, what in ((5432, "PostgreSQL"), (6379, "Redis")):
        assert reachable("TCP", port, outside=False), f"{what} ({port}) in the namespace"
        assert reachable("TCP", port, outside=True), f"{what} ({port}) managed, outside"
    for port in (25, 465, 587, 443):
        admitted = reachable("TCP", port, outside=True)
        assert admitted, f"SMTP/HTTPS port {port} not admitted"
        for rule in admitted:  # public addresses only, as for the Ray pods
            peers = rule.get("to") or []
            assert peers and any(_public_ipv4(p) for p in peers), f"{port}: {rule}"
    # The Kubernetes API (6443) is the Ray heads' (the autoscaler's), not the orchestrator's.
    assert not reachable("TCP", 6443, outside=True), "the orchestrator reaches the API server"
    for policy in policies:
        for rule in policy["spec"].get("ingress") or []:
            peers = rule.get("from") or []
            outside = not peers or any("namespaceSelector" in p or "ipBlock" in p for p in peers)
            assert not outside, f"{name_of(policy)} admits traffic from outside to the orchestrator"
