"""SMTP email, with the DATA phase split so that a lost reply is known to be ambiguous.

A message is sent on a per-thread connection (STARTTLS, implicit TLS and AUTH
optional). Refusals before the message body is transmitted are definite (4xx transient,
5xx permanent). Once the body and its terminating dot are on the wire, a dropped
connection or a missing reply is *ambiguous*; :meth:`SmtpTransport.reconcile` asks the
relay's message-status API (``reconcile_url``) whether it has the Message-ID, which
carries the idempotency key.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import socket
import ssl
import threading
from urllib.parse import quote

import httpx

from sluice.channels.base import (
    AmbiguousSendError,
    ChannelDownError,
    OutboundMessage,
    PermanentSendError,
    TransientSendError,
)
from sluice.channels.email_render import message_id, render


def _data(email: bytes) -> bytes:
    """The message as SMTP's DATA transmits it: dot-stuffed and dot-terminated."""
    data = re.sub(rb"(?m)^\.", b"..", email)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class SmtpTransport:
    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        from_address: str,
        from_name: str,
        unsubscribe_url: str,
        starttls: bool = False,
        use_ssl: bool = False,
        username: str | None = None,
        password: str | None = None,
        reconcile_url: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.host, self.port = host, port
        self.from_address, self.from_name, self.unsubscribe_url = (
            from_address,
            from_name,
            unsubscribe_url,
        )
        self.starttls, self.use_ssl = starttls, use_ssl
        self.username, self.password = username, password
        self.reconcile_url = reconcile_url
        self.timeout_s = timeout_s
        self._local = threading.local()

    def _connection(self) -> smtplib.SMTP:
        conn: smtplib.SMTP | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            if self.use_ssl:
                conn = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    timeout=self.timeout_s,
                    context=ssl.create_default_context(),
                )
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
                if self.starttls:
                    conn.starttls(context=ssl.create_default_context())
            conn.ehlo_or_helo_if_needed()
            if self.username:
                conn.login(self.username, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise ChannelDownError(
                f"{self.host}:{self.port} refused authentication as {self.username!r}: "
                f"{exc.smtp_code} {exc.smtp_error!r}"
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise ChannelDownError(f"{self.host}:{self.port}: {exc}") from exc
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise ChannelDownError(f"TLS with {self.host}:{self.port} failed: {exc}") from exc
        except socket.gaierror as exc:
            raise ChannelDownError(f"SMTP host {self.host!r} does not resolve: {exc}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientSendError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    @staticmethod
    def _refused(code: int, reply: bytes, step: str) -> Exception:
        text = f"{step}: {code} {reply.decode(errors='replace')}"
        return PermanentSendError(text) if 500 <= code < 600 else TransientSendError(text)

    def send(self, message: OutboundMessage) -> str:
        email = render(message, self.from_address, self.from_name, self.unsubscribe_url)
        mid = message_id(message.idempotency_key, self.from_address)
        conn = self._connection()
        try:
            code, reply = conn.mail(self.from_address)
            if code != 250:
                conn.rset()
                raise self._refused(code, reply, "MAIL")
            code, reply = conn.rcpt(message.address)
            if code not in (250, 251):
                conn.rset()
                raise self._refused(code, reply, "RCPT")
            code, reply = conn.docmd("DATA")
            if code != 354:
                conn.rset()
                raise self._refused(code, reply, "DATA")
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise TransientSendError(f"connection lost before the message was sent: {exc}") from exc
        # From here on the relay may have the message: failures are ambiguous.
        try:
            conn.send(_data(email))
            code, reply = conn.getreply()
        except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise AmbiguousSendError(f"no reply after the message body: {exc}") from exc
        if code != 250:
            raise self._refused(code, reply, "end of DATA")
        return mid

    def reconcile(self, message: OutboundMessage) -> bool | None:
        if not self.reconcile_url:
            return None
        mid = message_id(message.idempotency_key, self.from_address)
        try:
            r = httpx.get(
                f"{self.reconcile_url.rstrip('/')}/{quote(mid, safe='')}", timeout=self.timeout_s
            )
        except httpx.HTTPError:
            return None
        if r.status_code == 200:
            return True
        if r.status_code == 404:
            return False
        return None

    def close(self) -> None:
        self._drop()
