"""Send one alert: a signed webhook POST (http.client) or an e-mail (smtplib)."""

from __future__ import annotations

import base64
import http.client
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any
from urllib.parse import urlsplit

from coldchain import __version__
from coldchain.domain import alerts as rules


@dataclass(frozen=True)
class Sent:
    """What came back: an HTTP status or SMTP reply code (None: no answer) and its text."""

    code: int | None
    detail: str


def post_webhook(
    url: str, body: bytes, *, secret: str, key: str, alert_type: str, timeout_s: float, now: int
) -> Sent:
    """POST the body, signed, once; redirects are not followed (a 3xx is an answer)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            host, parts.port, timeout=timeout_s, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(host, parts.port, timeout=timeout_s)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"coldchain/{__version__}",
        rules.SIGNATURE_HEADER: rules.signature(secret, now, body),
        rules.DELIVERY_HEADER: key,
        "X-Coldchain-Alert": alert_type,
    }
    if parts.username:
        userinfo = f"{parts.username}:{parts.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(userinfo).decode()
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read(500).decode("utf-8", "replace").strip()
    except (OSError, http.client.HTTPException) as exc:
        return Sent(None, f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()
    detail = f"HTTP {response.status} {response.reason}"
    return Sent(response.status, f"{detail}: {text[:200]}" if text else detail)


@dataclass(frozen=True)
class SmtpSettings:
    """The [alerts] smtp_* settings."""

    host: str
    port: int
    sender: str
    starttls: bool
    username: str
    password: str
    timeout_s: float

    @classmethod
    def from_values(cls, values: Any) -> SmtpSettings:
        """Read them from the flattened settings."""
        return cls(
            host=str(values["alerts_smtp_host"]),
            port=int(values["alerts_smtp_port"]),
            sender=str(values["alerts_smtp_from"]),
            starttls=bool(values["alerts_smtp_starttls"]),
            username=str(values["alerts_smtp_username"]),
            password=str(values["alerts_smtp_password"]),
            timeout_s=float(values["alerts_smtp_timeout_s"]),
        )


def send_email(smtp: SmtpSettings, *, to: str, subject: str, text: str, key: str) -> Sent:
    """Send one message to one address; the reply to DATA (or the refusal) is the outcome."""
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(idstring=key.replace("-", "."), domain="coldchain")
    message[rules.DELIVERY_HEADER] = key
    message.set_content(text)
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as client:
            client.ehlo()
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if smtp.username:
                client.login(smtp.username, smtp.password)
            code, reply = client.mail(smtp.sender)
            if code != 250:
                return Sent(code, _reply("MAIL FROM", code, reply))
            code, reply = client.rcpt(to)
            if code not in (250, 251):
                return Sent(code, _reply("RCPT TO", code, reply))
            code, reply = client.data(message.as_bytes())
            return Sent(code, _reply("DATA", code, reply))
    except smtplib.SMTPResponseException as exc:
        return Sent(exc.smtp_code, _reply(type(exc).__name__, exc.smtp_code, exc.smtp_error))
    except (OSError, smtplib.SMTPException) as exc:
        return Sent(None, f"{type(exc).__name__}: {exc}")


def _reply(step: str, code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return f"SMTP {step} {code} {text}".strip()
