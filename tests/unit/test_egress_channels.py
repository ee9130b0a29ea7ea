"""Every channel a spec controls goes through the egress guard: webhooks (errors without
response bodies), SMTP relays and their status API, the spec's allow_hosts, and the LLM
client built on a spec's URL; against real servers, with DNS answers chosen by the test."""

from __future__ import annotations

import asyncio
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from egress_support import PUBLIC, Rebinding, Recorder, answers

from sluice.channels.base import (
    ChannelDownError,
    OutboundMessage,
    PermanentSendError,
    TransientSendError,
)
from sluice.channels.smtp import SmtpTransport
from sluice.channels.webhook import WebhookTransport
from sluice.contracts.campaign import CampaignSpec
from sluice.coordinator.transports import make_transports
from sluice.devtools.mailsink import MailSink
from sluice.errors import ConfigError
from sluice.generation.batch import GenerationConfig
from sluice.generation.client import LLMUnavailableError, OpenAIChatClient


def message(key: str = "k" * 40) -> OutboundMessage:
    return OutboundMessage(
        idempotency_key=key,
        channel="email",
        address="ada@example.com",
        run_id="run-1",
        campaign_id="camp",
        customer_id="c1",
        decision_id="dec_1",
        offer_id="o1",
        offer_url="https://shop.example.com/o1",
        subject="Boots",
        body="Hi Ada",
        cta="Shop",
        unsubscribe_token="T" * 90,
    )


def test_a_webhook_checked_then_rebound_never_reaches_loopback(server: Recorder) -> None:
    """The old failure: the URL is checked before the send (public), then the connection
    resolves the name again (loopback). Here the check at start and the connection of the
    first send see the public address, which is dialled (nothing answers); the second send's
    connection sees loopback and is refused. Connecting by name after a check would have
    reached the server (``localhost`` is 127.0.0.1 to the system resolver)."""
    rebinding = Rebinding(PUBLIC, "127.0.0.1", times=2)
    url = f"http://localhost:{server.port}/hook"
    hook = WebhookTransport(url, b"s", timeout_s=0.5, max_attempts=1, resolver=rebinding)
    with pytest.raises(TransientSendError, match="cannot connect"):
        hook.send(message())
    with pytest.raises(ChannelDownError, match=re.escape("127.0.0.1, a loopback address")):
        hook.send(message())
    assert rebinding.calls == 3 and server.requests == []
    hook.close()


def test_webhook_errors_carry_the_status_and_never_the_response_body(server: Recorder) -> None:
    hook = WebhookTransport(
        f"http://127.0.0.1:{server.port}/hook", b"s", allow_hosts=("127.0.0.1",), max_attempts=1
    )
    server.body = b'{"error": "db at 10.1.2.3 refused user admin password=hunter2"}'
    server.status = 404
    with pytest.raises(PermanentSendError) as permanent:
        hook.send(message())
    assert str(permanent.value) == "404: refused by the receiver"
    for status, reason in ((503, "the receiver failed"), (429, "throttled by the receiver")):
        server.status = status
        with pytest.raises(TransientSendError) as transient:
            hook.send(message())
        assert str(transient.value) == f"{status}: {reason}"
    assert len(server.requests) == 3
    for error in (permanent.value, transient.value):
        assert "hunter2" not in str(error) and "10.1.2.3" not in str(error)
    hook.close()


def smtp(host: str, port: int, **kw: Any) -> SmtpTransport:
    return SmtpTransport(
        host, port, "offers@shop.example.com", "Shop", "https://shop.example.com/u", **kw
    )


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MailSink]:
    s = MailSink(tmp_path / "mail").start()
    yield s
    s.stop()


def test_smtp_relay_and_status_api_are_guarded(sink: MailSink) -> None:
    with pytest.raises(ConfigError, match=re.escape("127.0.0.1 is a loopback address")) as info:
        smtp("127.0.0.1", sink.smtp_port)
    assert info.value.field == "channels.email.host"
    with pytest.raises(ConfigError, match="a link-local address") as info:
        smtp(
            "relay.example.com",
            587,
            reconcile_url="http://169.254.169.254/latest/meta-data",
            resolver=answers(PUBLIC),
        )
    assert info.value.field == "channels.email.reconcile_url"
    # The operator's relay (SLUICE_SMTP_HOST) is trusted; the spec's status API is not.
    smtp("127.0.0.1", sink.smtp_port, trust_host=True).close()
    with pytest.raises(ConfigError, match="reconcile_url"):
        smtp("127.0.0.1", sink.smtp_port, trust_host=True, reconcile_url=sink.status_url)
    assert sink.store.messages() == []


def test_smtp_dials_the_vetted_address_and_keeps_the_name_for_tls(sink: MailSink) -> None:
    t = smtp(
        "localhost",
        sink.smtp_port,
        allow_hosts=("localhost",),
        reconcile_url=sink.status_url.replace("127.0.0.1", "localhost"),
        resolver=answers("127.0.0.1"),
    )
    t.send(message())
    conn = t._local.conn
    assert conn._host == "localhost"  # STARTTLS / implicit TLS check this name
    assert conn.sock.getpeername()[0] == "127.0.0.1"
    assert t.reconcile(message()) is True
    assert len(sink.store.messages()) == 1
    t.close()


def test_smtp_refuses_a_relay_name_that_rebinds_to_loopback(sink: MailSink) -> None:
    """Checked at start (public), the first connection dials the public address it vetted
    (nothing answers); the next connection's lookup answers loopback and is refused."""
    rebinding = Rebinding(PUBLIC, "127.0.0.1", times=2)
    t = smtp("relay.example.com", sink.smtp_port, resolver=rebinding, timeout_s=0.5)
    with pytest.raises(TransientSendError, match="cannot connect"):
        t.send(message())
    with pytest.raises(ChannelDownError, match=re.escape("resolves to 127.0.0.1, a loopback")):
        t.send(message())
    assert rebinding.calls == 3 and sink.store.messages() == []


def test_spec_channels_are_guarded_with_their_allow_hosts(tmp_path: Path) -> None:
    def spec(email: dict[str, Any], sms: dict[str, Any]) -> CampaignSpec:
        audience = {"features": str(tmp_path), "customers": str(tmp_path / "c.parquet")}
        return CampaignSpec.model_validate(
            {
                "campaign_id": "c",
                "name": "c",
                "audience": audience,
                "channels": {"email": email, "sms": sms},
            }
        )

    env = {"SLUICE_WEBHOOK_SECRET": "s"}
    hook = {"transport": "webhook", "url": "http://10.0.0.5/hook"}
    with pytest.raises(ConfigError) as info:
        make_transports(spec({"transport": "smtp"}, hook), "r", env)
    assert info.value.field == "channels.email.host"  # the default host is 127.0.0.1
    email = {"transport": "smtp", "allow_hosts": ["127.0.0.1"]}
    with pytest.raises(ConfigError) as info:
        make_transports(spec(email, hook), "r", env)
    assert info.value.field == "channels.sms.url"
    allowed = make_transports(spec(email, {**hook, "allow_hosts": ["10.0.0.5"]}), "r", env)
    assert set(allowed) == {"email", "sms"}
    # The relay the operator names in SLUICE_SMTP_HOST is the operator's, not the spec's.
    operator = make_transports(
        spec({"transport": "smtp"}, {**hook, "allow_hosts": ["10.0.0.5"]}),
        "r",
        {**env, "SLUICE_SMTP_HOST": "127.0.0.1"},
    )
    for transport in (*allowed.values(), *operator.values()):
        transport.close()


def test_the_llm_client_built_on_a_spec_url_is_guarded(server: Recorder) -> None:
    url = f"http://127.0.0.1:{server.port}/v1"
    config = GenerationConfig(url, egress=("127.0.0.1",))
    copy = pickle.loads(pickle.dumps(config))  # how it reaches the Ray actor
    assert copy.egress == ("127.0.0.1",)
    server.body = (
        b'{"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": '
        b'[{"index": 0, "message": {"role": "assistant", "content": "hi"}, '
        b'"finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1, '
        b'"total_tokens": 2}}'
    )

    async def ask(egress: tuple[str, ...]) -> str:
        client = OpenAIChatClient(url, "m", egress=egress)
        try:
            done = await client.complete([{"role": "user", "content": "hi"}], {}, {}, 5)
            return done.text
        finally:
            await client.close()

    assert asyncio.run(ask(copy.egress or ())) == "hi"
    assert server.requests == [("POST", "/v1/chat/completions", f"127.0.0.1:{server.port}")]
    with pytest.raises(
        LLMUnavailableError, match=re.escape("copy.llm_url: 127.0.0.1 is a loopback")
    ):
        asyncio.run(ask(()))
    assert len(server.requests) == 1
