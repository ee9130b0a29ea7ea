"""One egress guard for every outbound connection a campaign spec controls.

A campaign spec is configuration, not code, but a webhook URL, an SMTP relay, a relay's
status API or an LLM base URL that reaches into the cluster's network would make a spec a
way of reaching internal services (a cloud metadata endpoint, the database, Ray's
dashboard). So each such connection is made through a :class:`Guard`:

* the host is resolved ONCE per connection and every address it resolves to is vetted;
  one address that is not globally routable refuses the host, unless the host (the exact
  name or IP literal, case-insensitive, trailing dot ignored) is in the spec's
  ``allow_hosts``;
* the caller connects to a vetted address, never to the name, so a name that answers
  differently the next time it is resolved (DNS rebinding) cannot redirect it. TLS still
  checks the certificate against the name (SNI) and HTTP still sends it as ``Host``.

Globally routable: ``ipaddress``'s ``is_global``, not multicast, not shared address space
(100.64.0.0/10, where a cloud metadata endpoint lives at 100.100.100.200), not local-use
NAT64 (64:ff9b:1::/48), and for an IPv6 address that embeds an IPv4 one (6to4 2002::/16,
Teredo 2001::/32 (server and client), NAT64 64:ff9b::/96, IPv4-mapped and -compatible) an
embedded address that is globally routable itself (IPv4-mapped and NAT64 addresses are
judged by that address alone: a connection to one reaches it). A refusal is a
:class:`ConfigError` naming the spec field. :class:`PinnedTransport`
(:func:`guarded_client`) and :class:`AsyncPinnedTransport` (:func:`guarded_async_client`,
for the LLM client) are the httpx transports that do this for every new HTTP connection;
SMTP uses :meth:`Guard.addresses` directly.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
import httpcore
import httpx

from sluice.errors import ConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Iterable[tuple[Any, ...]]]
"""``socket.getaddrinfo``'s shape: (host, port) to (family, type, proto, name, sockaddr)s."""

SHARED = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
V4_COMPATIBLE = ipaddress.ip_network("::/96")


def canonical(host: str) -> str:
    """``host`` for comparison with allow_hosts: lower case, no trailing dot or brackets,
    IP literals in their compressed form."""
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def embedded_ipv4(ip: IPAddress) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries (6to4, Teredo, NAT64, mapped, compatible)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ()
    if ip.ipv4_mapped is not None:
        return (ip.ipv4_mapped,)
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    if ip.teredo is not None:
        return ip.teredo  # (server: bits 32..63, client: NOT of the last 32 bits)
    if ip in NAT64 or (ip in V4_COMPATIBLE and int(ip) > 1):
        return (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF),)
    return ()


def refusal(ip: IPAddress) -> str | None:
    """Why a connection to ``ip`` is refused, or None when it is globally routable."""
    for inner in embedded_ipv4(ip):
        why = refusal(inner)
        if why is not None:
            return f"an address embedding {inner}, {why}"
    if isinstance(ip, ipaddress.IPv6Address) and (ip.ipv4_mapped or ip in NAT64):
        return None  # a connection to it goes to the embedded address, vetted above
    checks = (
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip in SHARED, "a shared address space (100.64.0.0/10) address"),
        (ip in LOCAL_NAT64, "a local-use NAT64 address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "an address that is not globally routable"),
    )
    return next((why for refused, why in checks if refused), None)


@dataclass(frozen=True)
class Guard:
    """The egress policy of one spec field (``field`` names it in every error)."""

    field: str
    allow_hosts: tuple[str, ...] = ()
    resolver: Resolver = socket.getaddrinfo

    def allowed(self, host: str) -> bool:
        return canonical(host) in {canonical(h) for h in self.allow_hosts}

    def addresses(self, host: str, port: int) -> tuple[str, ...]:
        """The addresses to connect to for ``host``: resolved once, each one vetted."""
        try:
            ips: list[IPAddress] = [ipaddress.ip_address(host.strip("[]"))]
            literal = True
        except ValueError:
            literal = False
            try:
                infos = self.resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise ConfigError(
                    f"{self.field}: cannot resolve {host!r}: {exc}", field=self.field
                ) from exc
            ips = []
            for family, *_, sockaddr in infos:
                if family in (socket.AF_INET, socket.AF_INET6):
                    ip = ipaddress.ip_address(sockaddr[0])
                    ips += [] if ip in ips else [ip]
        if not ips:
            raise ConfigError(f"{self.field}: {host!r} has no IP address", field=self.field)
        if not self.allowed(host):
            for ip in ips:
                why = refusal(ip)
                if why is not None:
                    subject = f"{ip} is" if literal else f"{host} resolves to {ip},"
                    raise ConfigError(
                        f"{self.field}: {subject} {why}; add the host to allow_hosts to permit it",
                        field=self.field,
                    )
        return tuple(str(ip) for ip in ips)

    def check_url(self, url: str) -> tuple[str, ...]:
        """Vet an http(s) URL's host now (a spec error is reported before any work)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{self.field}: {url!r} is not an http(s) URL", field=self.field)
        return self.addresses(parts.hostname, 443 if parts.scheme == "https" else 80)


class PinnedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, dialling for each new connection an address the guard
    has just vetted instead of the name. ``dialled`` keeps the last (host, port, address)
    tried."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.dialled: deque[tuple[str, int, str]] = deque(maxlen=16)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        failure: Exception | None = None
        for address in self.guard.addresses(host, port):
            self.dialled.append((host, port, address))
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure


class AsyncPinnedBackend(httpcore.AnyIOBackend):
    """:class:`PinnedBackend` for async clients (resolution runs in a worker thread)."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.dialled: deque[tuple[str, int, str]] = deque(maxlen=16)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        vet = functools.partial(self.guard.addresses, host, port)
        failure: Exception | None = None
        for address in await anyio.to_thread.run_sync(vet):
            self.dialled.append((host, port, address))
            try:
                return await super().connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure


def _pool_settings(
    limits: httpx.Limits | None, ssl_context: ssl.SSLContext | None
) -> dict[str, Any]:
    limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
    return {
        "ssl_context": ssl_context or httpx.create_ssl_context(),
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
    }


class PinnedTransport(httpx.HTTPTransport):
    """An httpx transport whose connections go through a :class:`PinnedBackend`: to the
    vetted address, with the URL's host kept for ``Host``, SNI and certificate checks
    (``ssl_context``: default, the system's CAs). It uses no proxy, the environment's
    included: a proxy would connect by name."""

    def __init__(
        self,
        guard: Guard,
        limits: httpx.Limits | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        settings = _pool_settings(limits, ssl_context)
        super().__init__(verify=settings["ssl_context"])
        self.backend = PinnedBackend(guard)
        self._pool = httpcore.ConnectionPool(**settings, network_backend=self.backend)


class AsyncPinnedTransport(httpx.AsyncHTTPTransport):
    """:class:`PinnedTransport` for async clients."""

    def __init__(
        self,
        guard: Guard,
        limits: httpx.Limits | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        settings = _pool_settings(limits, ssl_context)
        super().__init__(verify=settings["ssl_context"])
        self.backend = AsyncPinnedBackend(guard)
        self._pool = httpcore.AsyncConnectionPool(**settings, network_backend=self.backend)


def guarded_client(guard: Guard, timeout_s: float) -> httpx.Client:
    """An httpx client for the URLs of ``guard``'s field (redirects are not followed)."""
    return httpx.Client(transport=PinnedTransport(guard), timeout=timeout_s, trust_env=False)


def guarded_async_client(
    guard: Guard, limits: httpx.Limits | None = None, **client: Any
) -> httpx.AsyncClient:
    """An async httpx client on :class:`AsyncPinnedTransport` (``client``: the other
    ``httpx.AsyncClient`` arguments, e.g. ``timeout``); a redirect it follows is vetted
    like any new connection."""
    transport = AsyncPinnedTransport(guard, limits)
    return httpx.AsyncClient(transport=transport, trust_env=False, **client)
