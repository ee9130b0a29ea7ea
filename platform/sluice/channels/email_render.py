"""Email bodies and headers: plain text and HTML from the same copy, as SMTP carries them.

Built with the ``email`` package's MIME classes under its compat32 policy, with every
header value checked and encoded here: the policy-driven ``EmailMessage`` API parses each
header it is given back into a tree, which made rendering the costliest step of sending.
Header values never carry line breaks (a copy or profile field cannot inject headers);
non-ASCII values become RFC 2047 encoded words; bodies are UTF-8, quoted-printable.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr

from sluice.channels.base import OutboundMessage

WIRE = compat32.clone(linesep="\r\n", max_line_length=998)
"""CRLF lines up to RFC 5322's 998 characters: long unsubscribe URLs stay one intact
header value instead of being folded."""

_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP


def message_id(key: str, from_address: str) -> str:
    return f"<{key}@{from_address.rsplit('@', 1)[-1]}>"


def one_line(name: str, value: str) -> str:
    """``value``, refused if it holds a line break (it would start another header)."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name}: a header value cannot contain a line break")
    return value


def header(name: str, value: str) -> str:
    """``value`` as a header carries it: one line; encoded words if it is not ASCII."""
    one_line(name, value)
    return value if value.isascii() else Header(value, "utf-8").encode(maxlinelen=998)


def render(m: OutboundMessage, from_address: str, from_name: str, unsubscribe_url: str) -> bytes:
    """A multipart/alternative email with one-click unsubscribe headers (RFC 8058), as
    CRLF-terminated bytes ready for SMTP's DATA (before dot-stuffing)."""
    unsub = (
        f"{unsubscribe_url.rstrip('/')}/{m.unsubscribe_token}"
        if m.unsubscribe_token
        else unsubscribe_url
    )
    domain = from_address.rsplit("@", 1)[-1]
    msg = MIMEMultipart("alternative")
    headers = {
        "From": formataddr((one_line("from_name", from_name), from_address), charset="utf-8"),
        "To": header("address", m.address),
        "Subject": header("subject", m.subject or ""),
        "Date": format_datetime(datetime.now(UTC)),
        "Message-ID": message_id(m.idempotency_key, from_address),
        "X-Sluice-Idempotency-Key": header("idempotency_key", m.idempotency_key),
        "X-Sluice-Campaign": header("campaign_id", m.campaign_id),
        "X-Sluice-Run": header("run_id", m.run_id),
        "X-Sluice-Customer": header("customer_id", m.customer_id),
    }
    if m.decision_id:
        headers["X-Sluice-Decision"] = header("decision_id", m.decision_id)
    headers["List-Unsubscribe"] = header(
        "unsubscribe_url", f"<{unsub}>, <mailto:unsubscribe@{domain}?subject=unsubscribe>"
    )
    headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in headers.items():
        msg[name] = value
    link = m.offer_url or ""
    text = f"{m.body or ''}\n\n{m.cta or ''}: {link}\n\nUnsubscribe: {unsub}\n"
    msg.attach(MIMEText(text, "plain", _UTF8))  # type: ignore[arg-type]
    body_html = "<br>".join(html.escape(line) for line in (m.body or "").splitlines())
    msg.attach(
        MIMEText(
            "<!doctype html><html><body>"
            f'<span style="display:none">{html.escape(m.preheader or "")}</span>'
            f"<p>{body_html}</p>"
            f'<p><a href="{html.escape(link, quote=True)}">{html.escape(m.cta or "")}</a></p>'
            f'<p style="font-size:12px"><a href="{html.escape(unsub, quote=True)}">'
            "Unsubscribe</a></p></body></html>\n",
            "html",
            _UTF8,  # type: ignore[arg-type]
        )
    )
    return msg.as_bytes(policy=WIRE)
