"""Building the transport of each channel from the campaign spec, where the run delivers.

Secrets are read here, in the delivering process (the run's coordinator actor, a review
approval), from the environment variables the spec names: the SMTP password
(``password_env``) and the webhook signing secret (``secret_env``). They never travel in
a spec, an actor argument or a log line. ``SLUICE_SMTP_HOST``, ``SLUICE_SMTP_PORT`` and
``SLUICE_SMTP_USER`` in that environment override the spec's relay settings.

Every connection a spec controls (the SMTP relay, its ``reconcile_url``, a webhook's
``url``) goes through the egress guard (:mod:`sluice.channels.netguard`) with the
channel's ``allow_hosts``. A relay host from ``SLUICE_SMTP_HOST`` is the operator's, not
the spec's: it is allowed as it is (still resolved once per connection and dialled by
address); the spec's ``reconcile_url`` is not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from sluice.channels.base import Transport
from sluice.channels.outbox import OutboxTransport
from sluice.channels.smtp import SmtpTransport
from sluice.channels.webhook import WebhookTransport
from sluice.contracts.campaign import CampaignSpec, OutboxChannel, SmtpChannel, WebhookChannel
from sluice.errors import ConfigError


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None
    password: str | None
    operator_host: bool = False
    """The host came from ``SLUICE_SMTP_HOST``: the operator's, allowed as it is."""


def smtp_settings(channel: str, cfg: SmtpChannel, env: Mapping[str, str]) -> SmtpSettings:
    """The relay settings for ``cfg`` with the environment's overrides and password."""
    field = f"channels.{channel}"
    port_text = env.get("SLUICE_SMTP_PORT")
    try:
        port = int(port_text) if port_text else cfg.port
    except ValueError as exc:
        raise ConfigError(
            f"{field}.port: SLUICE_SMTP_PORT is not a port number", field=f"{field}.port"
        ) from exc
    if not 1 <= port <= 65535:
        raise ConfigError(f"{field}.port: {port} is not a port number", field=f"{field}.port")
    username = env.get("SLUICE_SMTP_USER") or cfg.username
    password = env.get(cfg.password_env) or None
    if username and password is None:
        raise ConfigError(
            f"{field}.password_env: SMTP user {username!r} needs a password in "
            f"{cfg.password_env}, which is not set where the run delivers",
            field=f"{field}.password_env",
        )
    host = env.get("SLUICE_SMTP_HOST")
    return SmtpSettings(host or cfg.host, port, username, password, operator_host=bool(host))


def make_transports(
    spec: CampaignSpec, run_id: str, env: Mapping[str, str] | None = None
) -> dict[str, Transport]:
    env = os.environ if env is None else env
    out: dict[str, Transport] = {}
    for channel, cfg in spec.channels.items():
        if isinstance(cfg, SmtpChannel):
            relay = smtp_settings(channel.value, cfg, env)
            out[channel.value] = SmtpTransport(
                relay.host,
                relay.port,
                cfg.from_address,
                cfg.from_name,
                str(cfg.unsubscribe_url),
                starttls=cfg.starttls,
                use_ssl=cfg.ssl,
                username=relay.username,
                password=relay.password,
                reconcile_url=str(cfg.reconcile_url) if cfg.reconcile_url else None,
                timeout_s=cfg.timeout_s,
                allow_hosts=cfg.allow_hosts,
                trust_host=relay.operator_host,
                field=f"channels.{channel.value}",
            )
        elif isinstance(cfg, WebhookChannel):
            secret = env.get(cfg.secret_env)
            if not secret:
                raise ConfigError(
                    f"channels.{channel.value}.secret_env: {cfg.secret_env} is not set",
                    field=f"channels.{channel.value}.secret_env",
                )
            out[channel.value] = WebhookTransport(
                str(cfg.url),
                secret.encode(),
                cfg.allow_hosts,
                cfg.timeout_s,
                cfg.max_attempts,
                cfg.backoff_s,
                field=f"channels.{channel.value}.url",
            )
        elif isinstance(cfg, OutboxChannel):
            out[channel.value] = OutboxTransport(cfg.path, run_id, channel.value, cfg.format)
    return out


def lease_for(spec: CampaignSpec) -> timedelta:
    """A delivery lease longer than any one attempt on the spec's channels can take
    (connect, the SMTP exchange and the relay's reply each bounded by ``timeout_s``; a
    webhook's own retries with their backoff), with half as much again to spare, and
    half a minute at least: a live attempt's lease never runs out under it."""
    longest = 0.0
    for cfg in spec.channels.values():
        if isinstance(cfg, SmtpChannel):
            longest = max(longest, 3 * cfg.timeout_s)
        elif isinstance(cfg, WebhookChannel):
            backoff = sum(cfg.backoff_s * 2**k for k in range(cfg.max_attempts))
            longest = max(longest, cfg.max_attempts * cfg.timeout_s + backoff)
    return timedelta(seconds=max(30.0, 1.5 * longest))


def concurrency(spec: CampaignSpec, channel: str) -> int:
    from sluice.contracts.customer import Channel

    return int(spec.channels[Channel(channel)].concurrency)
