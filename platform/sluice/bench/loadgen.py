"""A small HTTP/1.1 load generator: N keep-alive connections, one request in flight on
each, for a fixed time. Run as its own process so that it never shares an interpreter
with the server it measures.

``python -m sluice.bench.loadgen --url URL --body FILE [--header K:V] --seconds S
--concurrency N`` prints one JSON line: requests, errors, rps, p50_ms, p99_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit


def _request(host: str, path: str, body: bytes, headers: list[str]) -> bytes:
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _one(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def _worker(
    url: str,
    payload: bytes,
    until: float,
    warm_until: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reader, writer = await asyncio.open_connection(host, port)
    while True:
        started = time.perf_counter()
        if started >= until:
            break
        try:
            writer.write(payload)
            await writer.drain()
            status = await _one(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            errors.append(0)
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
            continue
        if started >= warm_until:
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
    writer.close()


async def run(
    url: str, body: bytes, headers: list[str], seconds: float, concurrency: int, warmup: float
) -> dict[str, float]:
    parts = urlsplit(url)
    payload = _request(parts.netloc, parts.path or "/", body, headers)
    start = time.perf_counter()
    warm_until, until = start + warmup, start + warmup + seconds
    latencies: list[float] = []
    errors: list[int] = []
    await asyncio.gather(
        *[_worker(url, payload, until, warm_until, latencies, errors) for _ in range(concurrency)]
    )
    latencies.sort()
    n = len(latencies)

    def pick(q: float) -> float:
        return round(latencies[min(n - 1, int(n * q))] * 1000, 3) if n else float("nan")

    return {
        "requests": n,
        "errors": len(errors),
        "rps": round(n / seconds, 1),
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True, help="file with the JSON request body")
    parser.add_argument("--header", action="append", default=[], help="extra header, 'Name: value'")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=2)
    args = parser.parse_args(argv)
    body = Path(args.body).read_bytes().strip()
    figures = asyncio.run(
        run(args.url, body, args.header, args.seconds, args.concurrency, args.warmup)
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
