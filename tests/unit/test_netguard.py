"""The egress guard against real sockets: refused address classes, allow_hosts, DNS
rebinding (a name that answers a public address to the check and loopback afterwards),
and TLS that keeps the name while dialling the address."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import re
import socket
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from egress_support import FIELD, PUBLIC, Rebinding, Recorder, answers

from sluice.channels.netguard import Guard, PinnedTransport, guarded_async_client
from sluice.errors import ConfigError


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
