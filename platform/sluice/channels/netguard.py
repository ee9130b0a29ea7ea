"""Refuse webhook targets on private, loopback, link-local or reserved addresses.

A campaign spec is configuration, not code, but a webhook URL that resolves into the
cluster's network would turn delivery into a way of reaching internal services. Targets
are resolved and checked when the transport starts and again before every send (DNS can
change); hosts the spec allow-lists explicitly are let through.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from sluice.errors import ConfigError


def check_target(url: str, allow_hosts: tuple[str, ...] = ()) -> None:
    host = urlsplit(url).hostname or ""
    if host in allow_hosts:
        return
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise ConfigError(f"url: cannot resolve {host!r}: {exc}", field="url") from exc
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if (
            ip.is_private
            or ip.is_loopback
            or ip.is_link_local
            or ip.is_reserved
            or ip.is_multicast
            or ip.is_unspecified
        ):
            raise ConfigError(
                f"url: {host} resolves to {ip}, a private, loopback or link-local address; "
                "add it to allow_hosts to permit it",
                field="url",
            )
