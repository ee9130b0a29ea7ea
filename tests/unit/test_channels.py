"""Channel transports against real servers on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from sluice.channels.base import (
    AmbiguousSendError,
    ChannelDownError,
    OutboundMessage,
    PermanentSendError,
    TransientSendError,
)
from sluice.channels.outbox import OutboxTransport
from sluice.channels.smtp import SmtpTransport
from sluice.channels.unsubscribe import Keyring, Unsubscribe, make_token, read_token
from sluice.channels.webhook import WebhookTransport, signature
from sluice.devtools.mailsink import MailSink
from sluice.errors import ConfigError, InputError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def message(key: str = "k" * 40, address: str = "ada@example.com", **kw: Any) -> OutboundMessage:
    base: dict[str, Any] = {
        "idempotency_key": key,
        "channel": "email",
        "address": address,
        "run_id": "run-1",
        "campaign_id": "camp",
        "customer_id": "c1",
        "decision_id": "dec_1",
        "offer_id": "o1",
        "offer_url": "https://shop.example.com/o1",
        "subject": "Ada, boots are 20% off",
        "preheader": "Until Dec 31",
        "body": "Hi Ada,\n.a line starting with a dot\nBoots.",
        "cta": "Shop",
        "unsubscribe_token": "T" * 90,
    }
    base.update(kw)
    return OutboundMessage(**base)


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MailSink]:
    s = MailSink(tmp_path / "mail").start()
    yield s
    s.stop()


def smtp(port: int, reconcile_url: str | None = None) -> SmtpTransport:
    return SmtpTransport(
        "127.0.0.1",
        port,
        "offers@shop.example.com",
        "Shop",
        "https://shop.example.com/u",
        reconcile_url=reconcile_url,
        timeout_s=5,
        allow_hosts=("127.0.0.1",),  # the loopback test servers
    )


def test_smtp_delivers_with_idempotency_and_one_click_unsubscribe_headers(sink: MailSink) -> None:
    t = smtp(sink.smtp_port, sink.status_url)
    mid = t.send(message())
    assert mid == "<" + "k" * 40 + "@shop.example.com>"
    [msg] = sink.store.messages()
    assert msg["Message-ID"] == mid and msg["X-Sluice-Idempotency-Key"] == "k" * 40
    assert msg["List-Unsubscribe"].startswith("<https://shop.example.com/u/" + "T" * 90 + ">")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert ".a line starting with a dot" in text  # dot-stuffing round-trips
    assert t.reconcile(message()) is True and t.reconcile(message(key="z" * 40)) is False
    assert smtp(sink.smtp_port).reconcile(message()) is None  # no status API configured
    t.close()


def test_smtp_carries_non_ascii_copy_and_refuses_header_injection(sink: MailSink) -> None:
    t = smtp(sink.smtp_port)
    t.send(message(subject="Jürgen, Wanderstiefel −20 % 🥾", body="Grüße,\nbis Sonntag."))
    [msg] = sink.store.messages()
    assert msg["Subject"] == "Jürgen, Wanderstiefel −20 % 🥾"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert text.replace("\r\n", "\n").startswith("Grüße,\nbis Sonntag.")
    assert "bis Sonntag." in msg.get_body(preferencelist=("html",)).get_content()
    # A line break in any header value would start a header of its own: refused, unsent.
    for field in ("subject", "customer_id", "address"):
        with pytest.raises(ValueError, match=field):
            t.send(message(key="i" * 40, **{field: "x\r\nBcc: everyone@example.com"}))
    assert len(sink.store.messages()) == 1
    t.close()


class Refusing:
    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        return (
            "550 No such user"
            if address.startswith("nobody")
            else "451 Try later"
            if address.startswith("busy")
            else self._ok(envelope, address)
        )

    @staticmethod
    def _ok(envelope: Any, address: str) -> str:
        envelope.rcpt_tos.append(address)
        return "250 OK"


class HangsUpAfterData:
    """Keeps the message, then drops the connection before replying."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope.content)
        server.transport.abort()
        return "250 OK"


def test_smtp_outcomes_are_typed(tmp_path: Path) -> None:
    port = free_port()
    refusing = Controller(Refusing(), hostname="127.0.0.1", port=port)
    refusing.start()
    try:
        with pytest.raises(PermanentSendError, match="550"):
            smtp(port).send(message(address="nobody@example.com"))
        with pytest.raises(TransientSendError, match="451"):
            smtp(port).send(message(address="busy@example.com"))
    finally:
        refusing.stop()
    with pytest.raises(TransientSendError, match="cannot connect"):
        smtp(free_port()).send(message())
    port = free_port()
    handler = HangsUpAfterData()
    flaky = Controller(handler, hostname="127.0.0.1", port=port)
    flaky.start()
    try:
        with pytest.raises(AmbiguousSendError, match="no reply after the message body"):
            smtp(port).send(message())
        assert len(handler.received) == 1  # the relay has it: retrying blindly would duplicate it
    finally:
        flaky.stop()


class Receiver:
    """A webhook receiver: checks the signature, deduplicates keys, can fail or stall."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.keys: list[str] = []
        self.fail_next = 0
        self.stall_next = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ts, sig = self.headers["X-Sluice-Timestamp"], self.headers["X-Sluice-Signature"]
                key = self.headers["X-Sluice-Idempotency-Key"]
                expected = (
                    "v1="
                    + hmac.new(
                        receiver.secret, ts.encode() + b"." + body, hashlib.sha256
                    ).hexdigest()
                )
                if (
                    not hmac.compare_digest(sig, expected)
                    or json.loads(body)["idempotency_key"] != key
                ):
                    self._reply(401)
                    return
                if receiver.fail_next:
                    receiver.fail_next -= 1
                    self._reply(503)
                    return
                duplicate = key in receiver.keys
                if not duplicate:
                    receiver.keys.append(key)
                if receiver.stall_next:
                    delay, receiver.stall_next = receiver.stall_next, 0.0
                    time.sleep(delay)
                self._reply(409 if duplicate else 200)

            def _reply(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/sms"


def test_webhooks_are_signed_retried_and_deduplicated() -> None:
    r = Receiver(b"s3cret")
    t = WebhookTransport(
        r.url, b"s3cret", allow_hosts=("127.0.0.1",), timeout_s=1, max_attempts=4, backoff_s=0.01
    )
    r.fail_next = 2
    assert t.send(message(key="a" * 40, channel="sms", text="hi")) == "a" * 40
    assert r.keys == ["a" * 40]
    # A timeout after the request went out is replayed under the same key, not sent anew.
    r.stall_next = 1.5
    t.send(message(key="b" * 40, channel="sms", text="hi"))
    assert r.keys == ["a" * 40, "b" * 40]
    assert t.reconcile(message(key="b" * 40, channel="sms", text="hi")) is True
    assert r.keys == ["a" * 40, "b" * 40]
    bad = WebhookTransport(r.url, b"wrong", allow_hosts=("127.0.0.1",), max_attempts=1)
    # A receiver that refuses our signature refuses every message: the channel is down.
    with pytest.raises(ChannelDownError, match="401"):
        bad.send(message(key="c" * 40, channel="sms", text="hi"))
    assert (
        signature(b"k", "1", b"{}") == "v1=" + hmac.new(b"k", b"1.{}", hashlib.sha256).hexdigest()
    )
    r.server.shutdown()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "http://169.254.169.254/latest",
        "http://10.0.0.5/hook",
        "http://[::1]:80/x",
    ],
)
def test_private_targets_are_refused_unless_allow_listed(url: str) -> None:
    with pytest.raises(ConfigError, match="allow_hosts"):
        WebhookTransport(url, b"s")
    host = url.split("//")[1].split("/")[0].rsplit(":", 1)[0].strip("[]")
    WebhookTransport(url, b"s", allow_hosts=(host,))


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_outbox_writes_and_reads_back(tmp_path: Path, fmt: str) -> None:
    t = OutboxTransport(tmp_path, "run-1", "sms", fmt)
    assert not t.reconcile(message(key="a" * 40))
    t.send(message(key="a" * 40, channel="sms", text="hi"))
    assert t.reconcile(message(key="a" * 40)) and not t.reconcile(message(key="b" * 40))


def test_unsubscribe_tokens_are_signed() -> None:
    keys, other = Keyring.of("a1b2c3d4" * 8), Keyring.of("f0e1d2c3" * 8)
    u = Unsubscribe("c1", "outdoors", "email", "run-1")
    token = make_token(u, keys)
    assert read_token(token, keys) == u
    with pytest.raises(InputError):
        read_token(token, other)
    with pytest.raises(InputError):
        read_token(token[:-2] + "xx", keys)
