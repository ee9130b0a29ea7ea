"""Readiness probes against a real HTTP server: ready means answering, and a timeout says
why the app never was."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sluice.serve.readiness import http_ok, wait_until


class Flaky(BaseHTTPRequestHandler):
    """503 ("loading") for the first ``loading`` requests, then 200."""

    loading = 3
    seen = 0

    def do_GET(self) -> None:
        type(self).seen += 1
        status = 503 if type(self).seen <= type(self).loading else 200
        body = b"loading the model" if status == 503 else b"ready"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Flaky.seen = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_ready_once_the_app_answers(server: str) -> None:
    lines: list[str] = []
    ready, detail = wait_until(http_ok(f"{server}/readyz"), 30, lines.append, every_s=0)
    assert ready and detail.startswith("200")
    assert Flaky.seen == Flaky.loading + 1
    assert lines and "503: loading the model" in lines[0]


def test_past_the_timeout_the_last_reason_is_kept(server: str) -> None:
    Flaky.loading = 10**6
    try:
        ready, detail = wait_until(http_ok(f"{server}/readyz"), 1.5)
    finally:
        Flaky.loading = 3
    assert not ready and detail == "503: loading the model"


def test_an_unreachable_app_is_not_ready() -> None:
    ready, detail = wait_until(http_ok("http://127.0.0.1:9/readyz"), 0.5)
    assert not ready and detail
