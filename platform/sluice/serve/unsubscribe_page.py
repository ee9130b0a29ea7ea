"""The pages a person sees after following an unsubscribe link from a mail client.

Plain HTML: no script, no external resource (the one stylesheet is inline and allowed by
its hash in the Content-Security-Policy), every value escaped, never the token. The
responses are not cached, not framed, not indexed and send no referrer (the page's URL
holds the token).
"""

from __future__ import annotations

import base64
import hashlib
from html import escape

from fastapi.responses import HTMLResponse

from sluice.channels.unsubscribe import Unsubscribe

CONFIRM_FIELD, CONFIRM_VALUE = "confirm", "unsubscribe"
"""What the confirmation page's form posts (``confirm=unsubscribe``): it tells the form
apart from a mail client's RFC 8058 one-click POST (``List-Unsubscribe=One-Click``)."""

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;"
    "color:#1a1a1a;line-height:1.5}"
    "button{font:inherit;padding:.6rem 1.2rem;border:0;border-radius:.3rem;"
    "background:#1a4d8f;color:#fff;cursor:pointer}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
}
CHANNEL_WORDS = {"email": "emails", "sms": "text messages", "push": "push notifications"}


def _page(title: str, body: str, status: int) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex, nofollow">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _what(u: Unsubscribe) -> str:
    """``emails from <brand>``, escaped."""
    return f"{escape(CHANNEL_WORDS.get(u.channel, u.channel))} from {escape(u.brand)}"


def confirm(u: Unsubscribe) -> HTMLResponse:
    """The confirmation page: nothing changes until its button posts the form (to this
    same URL: a form without ``action`` posts to the page's own address)."""
    return _page(
        "Unsubscribe",
        f"<p>Stop {_what(u)}?</p>"
        "<p>Nothing changes until you press the button.</p>"
        '<form method="post">'
        f'<button type="submit" name="{CONFIRM_FIELD}" value="{CONFIRM_VALUE}">'
        "Unsubscribe</button></form>",
        200,
    )


def done(u: Unsubscribe, duplicate: bool) -> HTMLResponse:
    """After the form's POST."""
    title = "You were already unsubscribed" if duplicate else "You are unsubscribed"
    return _page(title, f"<p>You will get no more {_what(u)}.</p>", 200)


def invalid() -> HTMLResponse:
    """A token that is malformed, forged, of an old format or signed by a retired key."""
    return _page(
        "This unsubscribe link is not valid",
        "<p>The link may be incomplete: check that the whole address was copied from "
        "the message. If it still does not work, reply to the message and ask to be "
        "unsubscribed.</p>",
        404,
    )


def unavailable() -> HTMLResponse:
    """The service cannot check links now (its keyring is unreadable)."""
    return _page(
        "Unsubscribing is unavailable right now",
        "<p>Please try the link again later.</p>",
        503,
    )
