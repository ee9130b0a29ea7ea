"""Signed webhooks: HMAC-SHA256 over timestamp and body, retries, idempotency key.

Each request carries ``X-Sluice-Idempotency-Key``, ``X-Sluice-Timestamp`` and
``X-Sluice-Signature: v1=<hex hmac_sha256(secret, timestamp + "." + body)>``. Receivers
are expected to deduplicate on the key (a 409 for a key already received counts as
delivered). Connection failures and 429/5xx are retried with exponential backoff; a
timeout after the request went out is ambiguous and is reconciled by replaying the same
request under the same key, never by sending a new one.

The URL goes through the egress guard (:mod:`sluice.channels.netguard`): checked when the
transport is built, and each new connection dials an address vetted just before, never the
name. Errors carry the receiver's status code and a fixed reason, never its response body
(the ledger keeps them and ``sluice audit`` shows them: an internal service's error page
has no place there).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time

import httpx

from sluice.channels.base import (
    AmbiguousSendError,
    ChannelDownError,
    OutboundMessage,
    PermanentSendError,
    TransientSendError,
)
from sluice.channels.netguard import Guard, Resolver, guarded_client
from sluice.errors import ConfigError


def status_error(status: int) -> str:
    """``"<status>: <fixed reason>"``: the response body never goes into an error."""
    if status == 429:
        return f"{status}: throttled by the receiver"
    return f"{status}: " + ("the receiver failed" if status >= 500 else "refused by the receiver")


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookTransport:
    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: bytes,
        allow_hosts: tuple[str, ...] = (),
        timeout_s: float = 10.0,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        field: str = "channels.webhook.url",
        resolver: Resolver = socket.getaddrinfo,
    ) -> None:
        guard = Guard(field, allow_hosts, resolver)
        guard.check_url(url)
        self.url, self.secret, self.allow_hosts = url, secret, allow_hosts
        self.max_attempts, self.backoff_s = max_attempts, backoff_s
        self.client = guarded_client(guard, timeout_s)

    def _body(self, m: OutboundMessage) -> bytes:
        doc = {
            "idempotency_key": m.idempotency_key,
            "channel": m.channel,
            "to": m.address,
            "text": m.text,
            "subject": m.subject,
            "body": m.body,
            "campaign_id": m.campaign_id,
            "run_id": m.run_id,
            "decision_id": m.decision_id,
            "offer_id": m.offer_id,
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    def _post(self, m: OutboundMessage) -> httpx.Response:
        body = self._body(m)
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Sluice-Idempotency-Key": m.idempotency_key,
            "X-Sluice-Timestamp": ts,
            "X-Sluice-Signature": signature(self.secret, ts, body),
        }
        try:
            return self.client.post(self.url, content=body, headers=headers)
        except ConfigError as exc:  # the guard refused the address the name resolves to now
            raise ChannelDownError(exc.message) from exc

    def send(self, message: OutboundMessage) -> str:
        ambiguous: Exception | None = None
        for attempt in range(self.max_attempts):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                r = self._post(message)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                last: Exception = TransientSendError(f"cannot connect: {exc}")
                continue
            except (
                httpx.ReadTimeout,
                httpx.RemoteProtocolError,
                httpx.ReadError,
                httpx.WriteError,
            ) as exc:
                # The request may have arrived: replay under the same key.
                ambiguous = exc
                continue
            if r.status_code in (200, 201, 202, 204, 409):
                ambiguous = None
                return str(r.headers.get("x-message-id") or message.idempotency_key)
            if r.status_code == 429 or r.status_code >= 500:
                last = TransientSendError(status_error(r.status_code))
                continue
            if r.status_code in (401, 403, 407):
                raise ChannelDownError(f"the receiver refused our credentials: {r.status_code}")
            raise PermanentSendError(status_error(r.status_code))
        if ambiguous is not None:
            raise AmbiguousSendError(f"no answer after {self.max_attempts} attempts: {ambiguous}")
        raise last

    def reconcile(self, message: OutboundMessage) -> bool | None:
        """Replay under the same key: the receiver deduplicates, so this confirms delivery."""
        try:
            self.send(message)
        except (AmbiguousSendError, TransientSendError, ChannelDownError):
            return None
        except PermanentSendError:
            return False
        return True

    def close(self) -> None:
        self.client.close()
