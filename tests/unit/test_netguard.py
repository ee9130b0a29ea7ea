"""The egress guard against real sockets: refused address classes, allow_hosts, DNS
rebinding (a name that answers a public address to the check and loopback afterwards),
TLS that keeps the name while dialling the address, and errors without response bodies."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import pickle
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluice.channels.base import (
    ChannelDownError,
    OutboundMessage,
    PermanentSendError,
    TransientSendError,
)
from sluice.channels.netguard import Guard, PinnedTransport, guarded_async_client
from sluice.channels.smtp import SmtpTransport
from sluice.channels.webhook import WebhookTransport
from sluice.contracts.campaign import CampaignSpec
from sluice.coordinator.transports import make_transports
from sluice.devtools.mailsink import MailSink
from sluice.errors import ConfigError
from sluice.generation.batch import GenerationConfig
from sluice.generation.client import LLMUnavailableError, OpenAIChatClient

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


@pytest.fixture
def server() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.close()


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.5", "a private address"),
        ("192.168.1.1", "a private address"),
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("100.100.100.200", "shared address space"),
        ("100.64.0.1", "shared address space"),
        ("2002:a00:5::1", "embedding 10.0.0.5, a private address"),  # 6to4
        # Teredo: server 65.54.227.120 (bits 32..63), client NOT(last 32 bits) = 10.0.0.5.
        ("2001:0:4136:e378:8000:63bf:f5ff:fffa", "embedding 10.0.0.5, a private address"),
        ("2001:0:a00:5:8000:63bf:f7f7:f7f7", "embedding 10.0.0.5, a private address"),
        ("64:ff9b::a00:5", "embedding 10.0.0.5, a private address"),  # NAT64
        ("64:ff9b::a9fe:a9fe", "embedding 169.254.169.254, a link-local address"),
        ("64:ff9b:1::808:808", "a local-use NAT64 address"),
        ("::ffff:127.0.0.1", "embedding 127.0.0.1, a loopback address"),  # IPv4-mapped
        ("::a00:5", "embedding 10.0.0.5, a private address"),  # IPv4-compatible
        ("224.0.0.1", "a multicast address"),
        ("ff0e::1", "a multicast address"),
        ("0.0.0.0", "the unspecified address"),
        ("::", "the unspecified address"),
    ],
)
def test_each_non_global_address_class_is_refused(address: str, reason: str) -> None:
    named = Guard(FIELD, resolver=answers(address))
    with pytest.raises(ConfigError) as info:
        named.addresses("hook.example.com", 443)
    assert info.value.field == FIELD
    ip = ipaddress.ip_address(address)
    assert info.value.message.startswith(f"{FIELD}: hook.example.com resolves to {ip}, ")
    assert reason in info.value.message
    assert info.value.message.endswith("add the host to allow_hosts to permit it")
    with pytest.raises(ConfigError, match="allow_hosts"):  # the IP literal itself
        Guard(FIELD).addresses(address, 443)


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "2606:4700:4700::1111", "2002:808:808::1", "64:ff9b::808:808", "::ffff:8.8.8.8"],
)
def test_globally_routable_addresses_pass(address: str) -> None:
    vetted = Guard(FIELD, resolver=answers(address)).addresses("hook.example.com", 443)
    assert vetted == (str(ipaddress.ip_address(address)),)


def test_one_refused_address_refuses_the_name_and_lookup_failures_name_the_field() -> None:
    with pytest.raises(ConfigError, match=re.escape("10.0.0.5, a private address")):
        Guard(FIELD, resolver=answers(PUBLIC, "10.0.0.5")).addresses("mixed.example.com", 443)

    def fails(host: str, port: int) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(ConfigError, match=f"^{FIELD}: cannot resolve 'nx.example.com'"):
        Guard(FIELD, resolver=fails).addresses("nx.example.com", 443)


def test_allow_hosts_lets_exactly_the_listed_host_through() -> None:
    private = answers("10.0.0.5")
    guard = Guard(FIELD, ("Relay.Internal.", "::1"), private)
    assert guard.addresses("relay.internal", 587) == ("10.0.0.5",)
    assert guard.addresses("RELAY.INTERNAL.", 587) == ("10.0.0.5",)
    assert guard.addresses("[0:0::1]", 443) == ("::1",)
    with pytest.raises(ConfigError, match="add the host to allow_hosts"):
        guard.addresses("other.internal", 587)  # same address, another name
    with pytest.raises(ConfigError):  # an allowed IP does not allow a name resolving to it
        Guard(FIELD, ("10.0.0.5",), private).addresses("relay.internal", 587)


def test_the_pinned_transport_dials_the_vetted_address_and_keeps_the_host(
    server: Recorder,
) -> None:
    transport = PinnedTransport(Guard(FIELD, ("localhost",), answers("127.0.0.1")))
    with httpx.Client(transport=transport, timeout=5) as client:
        assert client.get(f"http://localhost:{server.port}/x").status_code == 200
    assert server.requests == [("GET", "/x", f"localhost:{server.port}")]
    assert list(transport.backend.dialled) == [("localhost", server.port, "127.0.0.1")]


def test_dns_rebinding_never_reaches_a_loopback_server(server: Recorder) -> None:
    """The name answers a public address first and 127.0.0.1 afterwards. The transport
    dials the address it vetted (the public one) and, on the next connection, vets the new
    answer and refuses it: the loopback server never hears from it. Resolving the name a
    second time to connect (``localhost`` is 127.0.0.1 to the system resolver) would
    reach the server."""
    rebinding = Rebinding(PUBLIC, "127.0.0.1")
    transport = PinnedTransport(Guard(FIELD, resolver=rebinding))
    url = f"http://localhost:{server.port}/internal"
    with httpx.Client(transport=transport, timeout=0.5) as client:
        with pytest.raises(httpx.TransportError):  # nothing answers at PUBLIC:port
            client.get(url)
        with pytest.raises(
            ConfigError, match=re.escape("localhost resolves to 127.0.0.1, a loopback")
        ):
            client.get(url)
    assert rebinding.calls == 2
    assert list(transport.backend.dialled) == [("localhost", server.port, PUBLIC)]
    assert server.requests == []


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


def test_the_async_client_is_pinned_as_well(server: Recorder) -> None:
    async def run() -> None:
        allowed = Guard(FIELD, ("localhost",), answers("127.0.0.1"))
        async with guarded_async_client(allowed, timeout=5) as client:
            assert (await client.get(f"http://localhost:{server.port}/ok")).status_code == 200
        rebinding = Rebinding(PUBLIC, "127.0.0.1")
        async with guarded_async_client(Guard(FIELD, resolver=rebinding), timeout=0.5) as c:
            with pytest.raises(httpx.TransportError):
                await c.get(f"http://localhost:{server.port}/internal")
            with pytest.raises(ConfigError, match="a loopback address"):
                await c.get(f"http://localhost:{server.port}/internal")

    asyncio.run(run())
    assert server.requests == [("GET", "/ok", f"localhost:{server.port}")]


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for the name ``localhost`` only (no IP address)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_sends_the_name_as_sni_and_checks_the_certificate_against_it(
    tmp_path: Path,
) -> None:
    cert, key = _certificate(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    sni: list[str | None] = []
    tls.sni_callback = lambda _sock, name, _ctx: sni.append(name)  # type: ignore[assignment,misc]
    https = Recorder(tls)
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        by_name = PinnedTransport(Guard(FIELD, ("localhost",), answers("127.0.0.1")), None, trust)
        with httpx.Client(transport=by_name, timeout=5) as client:
            assert client.get(f"https://localhost:{https.port}/").status_code == 200
        assert sni == ["localhost"]
        assert list(by_name.backend.dialled) == [("localhost", https.port, "127.0.0.1")]
        # The certificate names localhost, not 127.0.0.1: checked against the address it
        # would fail, which is what this URL does.
        by_address = PinnedTransport(Guard(FIELD, ("127.0.0.1",)), None, trust)
        with (
            httpx.Client(transport=by_address, timeout=5) as client,
            pytest.raises(httpx.ConnectError, match="certificate"),
        ):
            client.get(f"https://127.0.0.1:{https.port}/")
        assert len(https.requests) == 1
    finally:
        https.close()


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
