"""What every channel transport does: send one message, and say whether one was sent.

Outcomes are typed on purpose: :class:`TransientSendError` means the provider certainly
did not take the message (safe to try again), :class:`PermanentSendError` means it
refused it, :class:`AmbiguousSendError` means the request went out and no answer came
back, and :class:`ChannelDownError` means the channel itself is broken (no message of it
can go out). Ambiguous sends are never retried blindly: :meth:`Transport.reconcile` asks the
provider (or the transport's own record) whether the message arrived.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class SendError(Exception):
    """Base of send outcomes other than success."""


class TransientSendError(SendError):
    """Not delivered; trying again may work."""


class PermanentSendError(SendError):
    """Refused by the provider; trying again will not help."""


class AmbiguousSendError(SendError):
    """The request went out and its outcome is unknown."""


class ChannelDownError(SendError):
    """The channel itself fails, not this message: authentication refused, a TLS
    failure, a host that does not resolve or is refused as a target. No message of the
    channel can go out until an operator mends it, so delivery on it stops at once (the
    circuit breaker opens) and its messages stay reserved for a resume."""


@dataclass(frozen=True)
class OutboundMessage:
    """One message as the ledger stores it (its payload) plus its key."""

    idempotency_key: str
    channel: str
    address: str
    run_id: str
    campaign_id: str
    customer_id: str
    decision_id: str | None = None
    offer_id: str | None = None
    offer_url: str | None = None
    subject: str | None = None
    preheader: str | None = None
    body: str | None = None
    cta: str | None = None
    text: str | None = None
    unsubscribe_token: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_payload(cls, key: str, payload: dict[str, Any]) -> OutboundMessage:
        known = _PAYLOAD_FIELDS
        return cls(
            idempotency_key=key,
            **{k: v for k, v in payload.items() if k in known},
            extra={k: v for k, v in payload.items() if k not in known},
        )


_PAYLOAD_FIELDS = frozenset(OutboundMessage.__dataclass_fields__) - {"idempotency_key", "extra"}
"""The message fields a ledger payload carries by name; the rest of it is ``extra``."""


class Transport(Protocol):
    name: str

    def send(self, message: OutboundMessage) -> str:
        """Deliver the message; return the provider's message id."""
        ...

    def reconcile(self, message: OutboundMessage) -> bool | None:
        """Whether an earlier, ambiguous attempt delivered the message (None: cannot tell)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class BatchTransport(Transport, Protocol):
    """A transport that makes many messages durable at once (one write and one sync),
    where sending them one by one would pay that cost per message."""

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[str]:
        """Deliver every message; their provider message ids, in order. On an error none,
        some or all may have gone: the caller reconciles each one."""
        ...
