"""Email bodies and headers: plain text and HTML from the same copy."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr

from sluice.channels.base import OutboundMessage

EMAIL_POLICY = SMTP.clone(max_line_length=998)
"""CRLF lines up to RFC 5322's 998 characters: long unsubscribe URLs stay one intact
header value instead of being folded into encoded words."""


def message_id(key: str, from_address: str) -> str:
    return f"<{key}@{from_address.rsplit('@', 1)[-1]}>"


def render(
    m: OutboundMessage, from_address: str, from_name: str, unsubscribe_url: str
) -> EmailMessage:
    """A multipart/alternative email with one-click unsubscribe headers (RFC 8058)."""
    unsub = (
        f"{unsubscribe_url.rstrip('/')}/{m.unsubscribe_token}"
        if m.unsubscribe_token
        else unsubscribe_url
    )
    domain = from_address.rsplit("@", 1)[-1]
    msg = EmailMessage(policy=EMAIL_POLICY)
    msg["From"] = formataddr((from_name, from_address))
    msg["To"] = m.address
    msg["Subject"] = m.subject or ""
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message_id(m.idempotency_key, from_address)
    msg["X-Sluice-Idempotency-Key"] = m.idempotency_key
    msg["X-Sluice-Campaign"] = m.campaign_id
    msg["X-Sluice-Run"] = m.run_id
    msg["X-Sluice-Customer"] = m.customer_id
    if m.decision_id:
        msg["X-Sluice-Decision"] = m.decision_id
    msg["List-Unsubscribe"] = f"<{unsub}>, <mailto:unsubscribe@{domain}?subject=unsubscribe>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    link = m.offer_url or ""
    text = f"{m.body or ''}\n\n{m.cta or ''}: {link}\n\nUnsubscribe: {unsub}\n"
    msg.set_content(text)
    body_html = "<br>".join(html.escape(line) for line in (m.body or "").splitlines())
    msg.add_alternative(
        "<!doctype html><html><body>"
        f'<span style="display:none">{html.escape(m.preheader or "")}</span>'
        f"<p>{body_html}</p>"
        f'<p><a href="{html.escape(link, quote=True)}">{html.escape(m.cta or "")}</a></p>'
        f'<p style="font-size:12px"><a href="{html.escape(unsub, quote=True)}">Unsubscribe</a></p>'
        "</body></html>",
        subtype="html",
    )
    return msg
