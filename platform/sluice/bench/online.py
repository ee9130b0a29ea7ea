"""``sluice bench online``: the decision service against the same API in one process.

In one run, with the same model, keys and request (one customer to ``/v1/score``):
(a) the baseline, :mod:`sluice.bench.bare_app`, i.e. the service's own FastAPI app with
in-process scoring under one uvicorn process, no Ray; (b) the Sluice Serve app started
by ``sluice serve`` exactly as users start it (``deployments/decision.yaml``, fast path).
Each is loaded for ``seconds`` at ``concurrency`` from a separate load-generator process,
one at a time, with nothing else running.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow.parquet as pq

from sluice.bench.batch import scratch_env, scratch_settings
from sluice.settings import SluiceSettings

BASE_CUSTOMERS = 50_000
SWEEP = (8, 16, 32, 64, 128)
"""Connections of the load sweep on the Serve app, until p99 crosses P99_LIMIT_MS."""
P99_LIMIT_MS = 50.0


@dataclass(frozen=True)
class OnlineBench:
    seconds: float
    concurrency: int
    bare_rps: float
    sluice_rps: float
    ratio_rps: float
    bare_p50_ms: float
    sluice_p50_ms: float
    bare_p99_ms: float
    sluice_p99_ms: float
    ratio_p99: float
    bare_errors: int
    sluice_errors: int
    sweep: tuple[tuple[int, float, float], ...] = ()
    """(connections, rps, p99 ms) of the Serve app under rising load."""
    rps_at_p99_50ms: float | None = None
    """The highest rps the sweep measured with p99 at or under 50 ms (None: none did)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prepare(work: Path, settings: SluiceSettings) -> tuple[str, Path]:
    """A trained, promoted model and a score-scoped key in ``work/home``; the request body."""
    from sluice.auth import KeyStore, Scope
    from sluice.data import SynthCalendar, SynthConfig, synthesize
    from sluice.features import write_synthetic_features
    from sluice.registry import Registry
    from sluice.training import TrainConfig, train

    cal = SynthCalendar.today(settings.clock)
    synthesize(SynthConfig(customers=BASE_CUSTOMERS, seed=31, end=cal.history_end), work / "data")
    for name, cutoff in (
        ("train", cal.train_cutoff),
        ("valid", cal.valid_cutoff),
        ("audience", cal.score_cutoff),
    ):
        write_synthetic_features(work / "data", cutoff, work / f"{name}.parquet")
    trained = train(work / "train.parquet", work / "valid.parquet", TrainConfig())
    registry = Registry(settings)
    info = registry.register(trained)
    registry.promote(info.version, floors={}, ceilings={}, by="bench")
    key, _ = KeyStore(settings.home_dir / "api-keys.json").create("bench-online", (Scope.SCORE,))
    row = pq.read_table(work / "audience.parquet").slice(0, 1).to_pylist()[0]
    body = work / "body.json"
    body.write_text(json.dumps({"rows": [row]}))
    return key, body


def _load(
    url: str,
    body: Path,
    key: str,
    seconds: float,
    concurrency: int,
    env: dict[str, str],
    route: str = "/v1/score",
) -> dict[str, float]:
    cmd = [
        sys.executable,
        "-m",
        "sluice.bench.loadgen",
        "--url",
        f"{url}{route}",
        "--body",
        str(body),
        "--header",
        f"Authorization: Bearer {key}",
        "--seconds",
        str(seconds),
        "--concurrency",
        str(concurrency),
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=seconds + 120, check=True
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _wait_ready(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not become ready")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_online_bench(seconds: float, concurrency: int, work: Path, config: Path) -> OnlineBench:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    settings = scratch_settings(work / "home")
    env = scratch_env(settings)
    key, body = _prepare(work, settings)

    port = _free_port()
    bare = subprocess.Popen(
        [sys.executable, "-m", "sluice.bench.bare_app", "--port", str(port)],
        env=env,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}", 120)
        a = _load(f"http://127.0.0.1:{port}", body, key, seconds, concurrency, env)
    finally:
        _stop(bare)

    port = _free_port()
    cmd = [sys.executable, "-m", "sluice", "serve", "--port", str(port), "--config", str(config)]
    served = subprocess.Popen(
        cmd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert served.stdout is not None
        line = served.stdout.readline()
        if not line:
            raise RuntimeError("sluice serve exited before it was ready")
        url = json.loads(line)["url"]
        b = _load(url, body, key, seconds, concurrency, env)
        sweep = _sweep(url, body, key, max(5.0, seconds / 3), env)
    finally:
        _stop(served)
    under = [rps for _, rps, p99 in sweep if p99 <= P99_LIMIT_MS]

    return OnlineBench(
        seconds=seconds,
        concurrency=concurrency,
        bare_rps=a["rps"],
        sluice_rps=b["rps"],
        ratio_rps=round(b["rps"] / a["rps"], 3) if a["rps"] else float("nan"),
        bare_p50_ms=a["p50_ms"],
        sluice_p50_ms=b["p50_ms"],
        bare_p99_ms=a["p99_ms"],
        sluice_p99_ms=b["p99_ms"],
        ratio_p99=round(b["p99_ms"] / a["p99_ms"], 3) if a["p99_ms"] else float("nan"),
        bare_errors=int(a["errors"]),
        sluice_errors=int(b["errors"]),
        sweep=tuple(sweep),
        rps_at_p99_50ms=max(under) if under else None,
    )


def _sweep(
    url: str, body: Path, key: str, seconds: float, env: dict[str, str]
) -> list[tuple[int, float, float]]:
    """Rising load (:data:`SWEEP` connections) until p99 passes :data:`P99_LIMIT_MS`."""
    out = []
    for connections in SWEEP:
        r = _load(url, body, key, seconds, connections, env)
        out.append((connections, r["rps"], r["p99_ms"]))
        if r["p99_ms"] > P99_LIMIT_MS:
            break
    return out
