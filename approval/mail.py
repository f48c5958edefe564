"""Sending mail over SMTP, configured by one URL. Plain library code: no Flask, no models.

    smtp://host[:port]                    plain SMTP (port 25), for a relay on the same network
    smtp://user:pass@host:587?starttls=1  upgrade to TLS before signing in (submission port)
    smtps://user:pass@host[:465]          TLS from the first byte (implicit TLS)

Further query options: from=Name <address> (the sender), timeout=SECONDS (default 10),
cafile=PATH (trust a private CA). Certificates are always checked; user and password may be
percent-encoded.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_TIMEOUT = 10.0
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_OPTIONS = {"starttls", "from", "timeout", "cafile"}


class MailError(Exception):
    """Mail could not be handed to the server; the message says why, without secrets."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    sender: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    cafile: str | None = None

    def __repr__(self) -> str:  # never print the password
        return f"<SmtpSettings {self.describe()}>"

    def describe(self) -> str:
        """Where mail goes, for logs and messages: no password."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}@" if self.username else ""
        tls = "?starttls=1" if self.starttls else ""
        return f"{scheme}://{user}{self.host}:{self.port}{tls}"


def parse_smtp_url(url: str) -> SmtpSettings:
    """Read an smtp:// or smtps:// URL; ValueError says what is wrong with it."""
    parts = urlsplit(url.strip())
    if parts.scheme not in {"smtp", "smtps"}:
        raise ValueError("use smtp://host[:port] or smtps://host[:port]")
    if not parts.hostname:
        raise ValueError("the mail server's host name is missing")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535") from None
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - _OPTIONS)
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r}; known: {', '.join(sorted(_OPTIONS))}")

    def option(name: str) -> str | None:
        values = query.get(name)
        return values[-1] if values else None

    starttls = _flag(option("starttls"), "starttls")
    implicit = parts.scheme == "smtps"
    if implicit and starttls:
        raise ValueError("smtps:// is TLS already; starttls applies to smtp:// only")
    sender = option("from")
    if sender is not None and "@" not in parseaddr(sender)[1]:
        raise ValueError(f"from={sender!r} is not an email address")
    timeout = DEFAULT_TIMEOUT
    if option("timeout") is not None:
        try:
            timeout = float(option("timeout") or "")
        except ValueError:
            raise ValueError("timeout must be a number of seconds") from None
        if not 0 < timeout <= 300:
            raise ValueError("timeout must be more than 0 and at most 300 seconds")
    return SmtpSettings(
        host=parts.hostname,
        port=port or (465 if implicit else 25),
        implicit_tls=implicit,
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        sender=sender,
        timeout=timeout,
        cafile=option("cafile") or None,
    )


def _flag(value: str | None, name: str) -> bool:
    if value is None:
        return False
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(f"{name} must be 1 or 0, got {value!r}")


def build_message(*, sender: str, to: str, subject: str, body: str) -> EmailMessage:
    """A plain-text UTF-8 message; header injection is refused by the email package."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = Address(addr_spec=to)
    message["Subject"] = subject
    message.set_content(body)
    return message


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.cafile)


@contextmanager
def connect(settings: SmtpSettings) -> Iterator[smtplib.SMTP]:
    """An open, signed-in SMTP connection; MailError if it cannot be had."""
    try:
        if settings.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host,
                settings.port,
                timeout=settings.timeout,
                context=_tls_context(settings),
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"cannot reach {settings.describe()}: {_why(exc)}") from exc
    try:
        try:
            if settings.starttls:
                client.starttls(context=_tls_context(settings))
            if settings.username:
                client.login(settings.username, settings.password or "")
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"{settings.describe()} refused the session: {_why(exc)}") from exc
        yield client
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()


def send_one(client: smtplib.SMTP, message: EmailMessage) -> None:
    """Hand one message to an open connection; MailError if the server refuses it."""
    try:
        refused = client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"the server refused the message: {_why(exc)}") from exc
    if refused:  # some recipients refused, others taken: ours have one recipient each
        raise MailError(f"the server refused the recipient: {_why_refused(refused)}")


def _why(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode("utf-8", "replace") if exc.smtp_error else ""
        return f"{exc.smtp_code} {text}".strip()
    return str(exc) or type(exc).__name__


def _why_refused(refused: dict[str, tuple[int, bytes]]) -> str:
    address, (code, text) = next(iter(refused.items()))
    return f"{address}: {code} {text.decode('utf-8', 'replace')}"
