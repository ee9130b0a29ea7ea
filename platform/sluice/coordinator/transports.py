"""Building the transport of each channel from the campaign spec."""

from __future__ import annotations

import os

from sluice.campaign.spec import CampaignSpec, OutboxChannel, SmtpChannel, WebhookChannel
from sluice.channels.base import Transport
from sluice.channels.outbox import OutboxTransport
from sluice.channels.smtp import SmtpTransport
from sluice.channels.webhook import WebhookTransport
from sluice.errors import ConfigError


def make_transports(spec: CampaignSpec, run_id: str) -> dict[str, Transport]:
    out: dict[str, Transport] = {}
    for channel, cfg in spec.channels.items():
        if isinstance(cfg, SmtpChannel):
            out[channel.value] = SmtpTransport(
                cfg.host,
                cfg.port,
                cfg.from_address,
                cfg.from_name,
                str(cfg.unsubscribe_url),
                starttls=cfg.starttls,
                use_ssl=cfg.ssl,
                username=cfg.username,
                password=cfg.password.get_secret_value() if cfg.password else None,
                reconcile_url=str(cfg.reconcile_url) if cfg.reconcile_url else None,
                timeout_s=cfg.timeout_s,
            )
        elif isinstance(cfg, WebhookChannel):
            secret = os.environ.get(cfg.secret_env)
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
            )
        elif isinstance(cfg, OutboxChannel):
            out[channel.value] = OutboxTransport(cfg.path, run_id, channel.value, cfg.format)
    return out


def concurrency(spec: CampaignSpec, channel: str) -> int:
    from sluice.contracts.customer import Channel

    return int(spec.channels[Channel(channel)].concurrency)
