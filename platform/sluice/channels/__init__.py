"""Delivery channels: SMTP email, signed webhooks, the file outbox."""

from sluice.channels.base import (
    AmbiguousSendError,
    OutboundMessage,
    PermanentSendError,
    SendError,
    TransientSendError,
    Transport,
)

__all__ = [
    "AmbiguousSendError",
    "OutboundMessage",
    "PermanentSendError",
    "SendError",
    "TransientSendError",
    "Transport",
]
