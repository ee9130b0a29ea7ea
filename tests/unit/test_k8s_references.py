"""The k8s/ manifests are complete and in step: every Secret and ConfigMap they name
exists or is documented, the RayService serves exactly deployments/*.yaml, the RayJob
resumes its one run on retry, and Prometheus scrapes named ports (the orchestrator:
test_k8s_orchestrator.py)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from k8s_support import (
    DEV_API_KEY,
    EXTERNAL_SECRETS,
    K8S,
    OVERLAYS,
    REPO,
    SERVE_APPS,
    Doc,
    containers,
    environments,
    is_sluice_image,
    name_of,
    pod_specs,
    ray_cluster_spec,
    ray_groups,
    render,
    render_env,
    walk,
)


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
        if app_name == "llm":
            # On Kubernetes the LLM app asks every caller for a key (scope llm), on top of
            # its NetworkPolicy; the local configs leave keys off (loopback only).
            assert app["args"].get("require_api_key") is True, env
            overlay_only = {"require_api_key"}
            if env == "prod":
                # deployments/llm-gpu.yaml pins no GPU type; the overlay may, for its node
                # group (which must then advertise it: test_rayservice_shape).
                assert app["args"].get("accelerator_type") in (None, "L4")
                overlay_only.add("accelerator_type")
            kept = {k: v for k, v in app["args"].items() if k not in overlay_only}
            app = {**app, "args": kept}
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
    raw = yaml.safe_load(service["spec"]["serveConfigV2"])
    schema = ServeDeploySchema.model_validate(raw)  # raises on an invalid config
    # Every application survives validation with the name, code and route it was given.
    assert schema.applications, env
    assert [a.name for a in schema.applications] == [a["name"] for a in raw["applications"]]
    assert all(a.import_path and a.route_prefix for a in schema.applications), env


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
    from sluice.contracts.campaign import CampaignSpec

    campaign = CampaignSpec.model_validate(yaml.safe_load(configmap["data"][spec_path.name]))
    assert campaign.model.endswith("@champion")
    # The comment next to the retry settings says why a retry cannot send twice.
    source = (K8S / "campaign" / "rayjob.yaml").read_text()
    assert "idempotency key" in source and "resumes this same run" in source


def test_campaign_overlay_uses_the_platform_namespace_and_image(env: str) -> None:
    def identity(docs: list[Doc]) -> tuple[set[str], set[str]]:
        spaces = {d["metadata"]["namespace"] for d in docs if d["kind"] != "Namespace"}
        images = {c["image"] for d in docs for _, c in containers(d)}
        images = {i for i in images if is_sluice_image(i)}
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
