"""``sluice mailsink``: a local SMTP server that keeps what it receives.

A real SMTP server (aiosmtpd) on loopback for demos, tests and benchmarks, in the role
an email service provider plays in production: it stores every message it accepts
(one file each, named by Message-ID, in a Maildir-like directory) and answers a
message-status API, ``GET /messages/<Message-ID>`` (200 when accepted, 404 otherwise),
which Sluice's SMTP transport uses to reconcile ambiguous sends. Messages are stored
before the SMTP ``250`` reply, and every delivery attempt is counted, so a test can
tell "received once" from "sent twice". ``reply_delay_s`` holds the ``250`` back after
the message is stored, as a slow provider does: the window in which a crashed sender
cannot know whether its message arrived. With ``credentials`` it requires SMTP AUTH
(PLAIN or LOGIN) before it takes mail, as a real relay does.
"""

from __future__ import annotations

import asyncio
import email
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class MailStore:
    root: Path
    attempts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        (self.root / "new").mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _name(message_id: str) -> str:
        return message_id.strip("<>").replace("/", "_")

    def accept(self, raw: bytes) -> str:
        msg = email.message_from_bytes(raw, policy=default_policy)
        mid = str(msg.get("Message-ID", "")).strip() or f"<anonymous-{len(self.attempts)}@sink>"
        with self.lock:
            self.attempts[mid] += 1
            path = self.root / "new" / f"{self._name(mid)}.eml"
            copies = self.attempts[mid] - 1  # duplicates are kept too, side by side
            target = path if copies == 0 else path.with_name(f"{self._name(mid)}.dup{copies}.eml")
            target.write_bytes(raw)
        return mid

    def has(self, message_id: str) -> bool:
        return (self.root / "new" / f"{self._name(message_id)}.eml").exists()

    def messages(self) -> list[email.message.EmailMessage]:
        out = []
        for p in sorted((self.root / "new").glob("*.eml")):
            out.append(email.message_from_bytes(p.read_bytes(), policy=default_policy))
        return out


class _Handler:
    def __init__(self, store: MailStore, reply_delay_s: float = 0.0) -> None:
        self.store = store
        self.reply_delay_s = reply_delay_s

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.store.accept(envelope.original_content or envelope.content)
        if self.reply_delay_s:
            await asyncio.sleep(self.reply_delay_s)
        return "250 Message accepted for delivery"


def _status_handler(store: MailStore) -> type[BaseHTTPRequestHandler]:
    class StatusHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/messages/"):
                mid = unquote(self.path.removeprefix("/messages/"))
                found = store.has(mid)
                body = json.dumps({"message_id": mid, "accepted": found}).encode()
                self.send_response(200 if found else 404)
            elif self.path == "/stats":
                body = json.dumps(
                    {
                        "messages": len(list((store.root / "new").glob("*.eml"))),
                        "attempts": sum(store.attempts.values()),
                    }
                ).encode()
                self.send_response(200)
            else:
                body = b"{}"
                self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return StatusHandler


@dataclass(frozen=True)
class _Authenticator:
    user: str
    password: str

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user.encode()
            and auth_data.password == self.password.encode()
        )
        return AuthResult(success=ok, handled=False)


class MailSink:
    """SMTP on ``smtp_port`` and the status API on ``http_port`` (0: pick free ports)."""

    def __init__(
        self,
        root: Path,
        host: str = "127.0.0.1",
        smtp_port: int = 0,
        http_port: int = 0,
        reply_delay_s: float = 0.0,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        import socket

        self.store = MailStore(root)
        self.host = host
        if smtp_port == 0:
            with socket.socket() as s:
                s.bind((host, 0))
                smtp_port = s.getsockname()[1]
        auth: dict[str, Any] = {}
        if credentials is not None:
            # Loopback only, so no TLS: AUTH in the clear is allowed here.
            auth = {
                "authenticator": _Authenticator(*credentials),
                "auth_required": True,
                "auth_require_tls": False,
            }
        self.controller = Controller(
            _Handler(self.store, reply_delay_s), hostname=host, port=smtp_port, **auth
        )
        self.http = ThreadingHTTPServer((host, http_port), _status_handler(self.store))
        self._thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def smtp_port(self) -> int:
        return int(self.controller.port)

    @property
    def status_url(self) -> str:
        return f"http://{self.host}:{self.http.server_address[1]}/messages"

    def start(self) -> MailSink:
        self.controller.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
        self.http.shutdown()
        self.http.server_close()
