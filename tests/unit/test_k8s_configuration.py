"""One configuration for every Sluice process on Kubernetes.

Every container that runs Sluice code touching the database or signing and verifying
unsubscribe tokens (the Ray heads and workers of the RayService, the batch RayCluster
and campaign RayJobs, and the orchestrator) reads the database URL and the unsubscribe
secret from the same Secret keys, in every overlay; and no Serve pod keeps its
SLUICE_HOME in an emptyDir (a throwaway per-pod directory that no campaign reads).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from k8s_support import environments, name_of, pod_specs, render_env

SHARED = {
    "SLUICE_DATABASE_URL": ("sluice-database", "ledger-url"),
    "SLUICE_UNSUBSCRIBE_SECRET": ("sluice-delivery", "unsubscribe-secret"),
}
HOME = "/var/lib/sluice"
NOT_SLUICE_PROCESSES = ("ray-job-submitter", "mlflow", "submit")
"""Containers of the Sluice image that run no Sluice process touching the database: a
RayJob's submitter, the MLflow server, the CronJob's ``ray job submit``."""


def _sluice_processes(env: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, container, pod spec) of every Sluice process container of an environment."""
    for doc in render_env(env):
        if doc["kind"] not in ("RayService", "RayCluster", "RayJob", "Deployment"):
            continue
        for where, pod in pod_specs(doc):
            for c in pod.get("containers") or []:
                if not str(c.get("image", "")).startswith("sluice"):
                    continue
                if c["name"] in NOT_SLUICE_PROCESSES:
                    continue
                yield f"{where} {c['name']}", c, pod


@pytest.mark.parametrize("env", environments())
def test_every_sluice_process_reads_the_same_database_and_unsubscribe_secret(env: str) -> None:
    found = list(_sluice_processes(env))
    kinds = {where.split("/")[0] for where, _, _ in found}
    assert {"RayService", "RayCluster", "RayJob", "Deployment"} <= kinds
    problems = []
    for where, container, _ in found:
        refs = {
            e["name"]: (
                e["valueFrom"]["secretKeyRef"]["name"],
                e["valueFrom"]["secretKeyRef"]["key"],
            )
            for e in container.get("env") or []
            if "secretKeyRef" in (e.get("valueFrom") or {})
        }
        for name, ref in SHARED.items():
            if refs.get(name) != ref:
                problems.append(f"{where}: {name} is {refs.get(name)}, not secret {ref}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("env", environments())
def test_no_serve_pod_keeps_its_home_in_an_empty_dir(env: str) -> None:
    serve = [d for d in render_env(env) if d["kind"] == "RayService"]
    assert serve, f"{env}: no RayService"
    problems = []
    for doc in serve:
        for where, pod in pod_specs(doc):
            volumes = {v["name"]: v for v in pod.get("volumes") or []}
            for c in pod.get("containers") or []:
                home = [m for m in c.get("volumeMounts") or [] if m["mountPath"] == HOME]
                if not home:
                    problems.append(f"{where} {c['name']}: nothing mounted at {HOME}")
                    continue
                volume = volumes[home[0]["name"]]
                if "persistentVolumeClaim" not in volume:
                    problems.append(f"{where} {c['name']}: {HOME} is {sorted(volume)}")
    assert not problems, "\n".join(problems)
    assert name_of(serve[0]) == "RayService/sluice"


@pytest.mark.parametrize("env", environments())
def test_the_api_keys_secret_is_mounted_so_that_updates_reach_running_pods(env: str) -> None:
    """No subPath (a subPath mount is never refreshed), and SLUICE_API_KEYS_FILE names the
    file inside the mounted directory."""
    docs = render_env(env)
    config = next(d for d in docs if d["kind"] == "ConfigMap" and name_of(d).endswith("sluice-env"))
    keys_file = config["data"]["SLUICE_API_KEYS_FILE"]
    mounts = []
    for doc in docs:
        for where, pod in pod_specs(doc):
            secret_volumes = {
                v["name"]
                for v in pod.get("volumes") or []
                if (v.get("secret") or {}).get("secretName") == "sluice-api-keys"
            }
            for c in pod.get("containers") or []:
                for m in c.get("volumeMounts") or []:
                    if m["name"] in secret_volumes:
                        mounts.append((f"{where} {c['name']}", m))
    assert mounts, f"{env}: the API keys Secret is mounted nowhere"
    for where, m in mounts:
        assert "subPath" not in m, f"{where}: a subPath mount of the keys is never refreshed"
        assert keys_file == f"{m['mountPath']}/api-keys.json", where
