"""Resolvers and a recording HTTP server for the egress-guard tests: real sockets, with
DNS answers chosen by the test (a rebinding name answers differently on each lookup)."""

from __future__ import annotations

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FIELD = "channels.webhook.url"
# Globally routable, so the guard lets it through; nothing in these tests answers there.
PUBLIC = "8.8.8.8"


def answers(*addresses: str) -> Any:
    """A resolver (socket.getaddrinfo's shape) that answers ``addresses``, always."""

    def resolve(host: str, port: int) -> list[tuple[Any, ...]]:
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    return resolve


class Rebinding:
    """A resolver that answers ``first`` to the first ``times`` lookups and ``then`` to
    every later one: what a DNS-rebinding name does."""

    def __init__(self, first: str, then: str, times: int = 1) -> None:
        self.first, self.then, self.times, self.calls = first, then, times, 0

    def __call__(self, host: str, port: int) -> list[tuple[Any, ...]]:
        self.calls += 1
        chosen = self.first if self.calls <= self.times else self.then
        return list(answers(chosen)(host, port))


class Recorder:
    """A real HTTP(S) server on 127.0.0.1 that records every request reaching it."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[tuple[str, str, str]] = []  # method, path, Host header
        self.status, self.body = 200, b"{}"
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.requests.append((self.command, self.path, self.headers["Host"]))
                self.send_response(recorder.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(recorder.body)))
                self.end_headers()
                self.wfile.write(recorder.body)

            do_GET = do_POST = _answer  # noqa: N815 (http.server's handler names)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
