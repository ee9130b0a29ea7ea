"""A recording reverse proxy in front of the LLM app: every request that reaches the
app's HTTP boundary is kept, byte for byte, then forwarded unchanged."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx


class LLMRecorder:
    """``base_url`` is the proxy's OpenAI base URL (same path as the upstream's)."""

    def __init__(self, upstream_base: str) -> None:
        parts = urlsplit(upstream_base)
        self.upstream = f"{parts.scheme}://{parts.netloc}"
        self.path = parts.path
        self.requests: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    def bodies(self) -> list[str]:
        """Every request body seen so far, decoded."""
        with self._lock:
            return [body.decode("utf-8", "replace") for _, body in self.requests]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def __enter__(self) -> LLMRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with recorder._lock:
                    recorder.requests.append((self.path, body))
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in {"content-type", "authorization", "accept"}
                }
                url = recorder.upstream + self.path
                reply = httpx.request(method, url, content=body, headers=headers, timeout=600)
                self.send_response(reply.status_code)
                self.send_header("Content-Type", reply.headers.get("content-type", "text/plain"))
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

            def do_GET(self) -> None:
                self._forward("GET")

            def do_POST(self) -> None:
                self._forward("POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
