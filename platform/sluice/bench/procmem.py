"""Peak memory of a process tree, sampled while it runs."""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass

import psutil


def tree_memory(root: psutil.Process) -> int:
    """Proportional set size (shared pages split fairly) of ``root`` and its descendants."""
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for p in procs:
        try:
            info = p.memory_full_info()
            total += getattr(info, "pss", info.rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


@dataclass
class MeasuredRun:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_bytes: int


def run_measured(
    cmd: list[str], env: dict[str, str], interval_s: float = 0.2, timeout_s: float = 1800
) -> MeasuredRun:
    """Run ``cmd``, sampling the memory of its process tree until it exits."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()
    root = psutil.Process(proc.pid)

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_memory(root))
            stop.wait(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout_s)
    finally:
        stop.set()
        sampler.join()
    return MeasuredRun(proc.returncode, out, err, time.perf_counter() - started, peak)
