"""SMTP email, with the DATA phase split so that a lost reply is known to be ambiguous.

A message is sent on a per-thread connection (STARTTLS, implicit TLS and AUTH
optional). Refusals before the message body is transmitted are definite (4xx transient,
5xx permanent). Once the body and its terminating dot are on the wire, a dropped
connection or a missing reply is *ambiguous*; :meth:`SmtpTransport.reconcile` asks the
relay's message-status API (``reconcile_url``) whether it has the Message-ID, which
carries the idempotency key.

The relay's host and the status API's URL go through the egress guard
(:mod:`sluice.channels.netguard`): each new connection resolves the host once, vets every
address, and connects to a vetted address, never to the name; STARTTLS and implicit TLS
still check the relay's certificate against the name. Private and loopback relays need the
channel's ``allow_hosts`` (``trust_host``: the host is the operator's, allowed as it is;
the status API still needs ``allow_hosts``).
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
from sluice.channels.netguard import Guard, Resolver, guarded_client
from sluice.errors import ConfigError


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
        allow_hosts: tuple[str, ...] = (),
        trust_host: bool = False,
        field: str = "channels.email",
        resolver: Resolver = socket.getaddrinfo,
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
        relay_allowed = (*allow_hosts, host) if trust_host else allow_hosts
        self.guard = Guard(f"{field}.host", relay_allowed, resolver)
        self.guard.addresses(host, port)
        self.status: httpx.Client | None = None
        if reconcile_url:
            status_guard = Guard(f"{field}.reconcile_url", allow_hosts, resolver)
            status_guard.check_url(reconcile_url)
            self.status = guarded_client(status_guard, timeout_s)
        self._local = threading.local()

    def _open(self) -> smtplib.SMTP:
        """A connection to a vetted address of the relay, TLS checked against its name."""
        failure: OSError | None = None
        for address in self.guard.addresses(self.host, self.port):
            if self.use_ssl:
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    timeout=self.timeout_s, context=ssl.create_default_context()
                )
            else:
                conn = smtplib.SMTP(timeout=self.timeout_s)
            # smtplib names the TLS server (SNI, certificate) after _host, which connect()
            # leaves alone: the relay's name, not the address dialled.
            conn._host = self.host  # type: ignore[attr-defined]
            try:
                conn.connect(address, self.port)
            except ssl.SSLError:
                conn.close()
                raise
            except OSError as exc:
                conn.close()
                failure = exc
                continue
            return conn
        assert failure is not None
        raise failure

    def _connection(self) -> smtplib.SMTP:
        conn: smtplib.SMTP | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            conn = self._open()
            if self.starttls and not self.use_ssl:
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
        except ConfigError as exc:  # unresolvable, or resolving to a refused address now
            raise ChannelDownError(exc.message) from exc
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
        if not self.reconcile_url or self.status is None:
            return None
        mid = message_id(message.idempotency_key, self.from_address)
        try:
            r = self.status.get(f"{self.reconcile_url.rstrip('/')}/{quote(mid, safe='')}")
        except (httpx.HTTPError, ConfigError):
            return None
        if r.status_code == 200:
            return True
        if r.status_code == 404:
            return False
        return None

    def close(self) -> None:
        self._drop()
        if self.status is not None:
            self.status.close()
