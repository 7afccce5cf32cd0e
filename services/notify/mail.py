"""Sending mail: the arq job every service enqueues, through SMTP_URL or, when it
is unset, into the development mailbox shown at /dev/mail; and the templates of
notify's own mail (a text and an HTML part each), and the one rule of what mail may quote.

A job carries an idempotency key; notify.sent_mail records each key in the same
transaction as the send, so a retried job never sends twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import jinja2
from arq import Retry

from shared.settings import Settings
from shared.web import Runtime

log = logging.getLogger("tica.mail")

DEV_MAILBOX_SIZE = 200
RETRY_BASE_S = 5
TEMPLATES_DIR = Path(__file__).parent / "templates"
# Header lines up to SMTP's limit: folding an unsubscribe URL onto a new line puts a space before it.
MAIL_POLICY = compat32.clone(max_line_length=998)


def mask(address: str) -> str:
    """An address fit for logs: first letter and domain only."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def dev_mailbox_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}dev-mail"


def from_address(settings: Settings) -> str:
    """No-reply at the site's host, in the site's name (as admins set it)."""
    host = urlsplit(settings.public_url).hostname or "localhost"
    domain = host if "." in host else f"{host}.localdomain"
    return formataddr((settings.site_name, f"no-reply@{domain}"))


@cache
def mail_environment() -> jinja2.Environment:
    """Templates of notify's mail: HTML parts escaped, text parts as written."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render_mail(name: str, context: dict[str, Any]) -> tuple[str, str]:
    """The text and HTML parts of `notify/mail/{name}.txt` and `.html`."""
    env = mail_environment()
    text = env.get_template(f"notify/mail/{name}.txt").render(context)
    html = env.get_template(f"notify/mail/{name}.html").render(context)
    return text, html


def quotable(excerpt: str | None, *, note: str | None, sensitive: bool, status: str | None) -> str | None:
    """The words of a post that mail may quote: none when it carries a content note (its own or its
    topic's), matched a safeguarding phrase, or is not visible (hidden, deleted, or never published:
    notify does not know a waiting post). The one rule for digests and notification emails."""
    if note or sensitive or status != "visible":
        return None
    return excerpt or None


def build_message(
    settings: Settings, *, to: str, subject: str, text: str, html: str | None, headers: dict[str, str] | None = None
) -> Message:
    """A text mail, or text and HTML alternatives; UTF-8 throughout.

    Built with the email package's compat32 classes: the modern EmailMessage API parses and
    refolds every header and was half of the CPU of sending 100,000 digests.
    """
    text_part = MIMEText(text, "plain", "utf-8", policy=MAIL_POLICY)
    message: Message = text_part
    if html:
        message = MIMEMultipart("alternative", policy=MAIL_POLICY)
        message.attach(text_part)
        message.attach(MIMEText(html, "html", "utf-8", policy=MAIL_POLICY))
    message["From"] = from_address(settings)
    message["To"] = to
    message["Subject"] = _header("Subject", subject)
    message["Message-ID"] = make_msgid(domain="tica")
    message["Date"] = formatdate(localtime=False, usegmt=True)
    for name, value in (headers or {}).items():
        message[name] = _header(name, value)
    return message


def _header(name: str, value: str) -> str:
    """ASCII as it is; anything else RFC 2047-encoded (folded knowing the header's name)."""
    return value if value.isascii() else Header(value, "utf-8", header_name=name).encode()


async def deliver(settings: Settings, rt: Runtime, message: Message) -> None:
    """Hand a message to the SMTP server, or to the development mailbox."""
    if settings.smtp_url is None:
        entry = {
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "at": time.time(),
            "text": _part(message, "plain"),
            "html": _part(message, "html"),
            "headers": {k: str(v) for k, v in message.items()},
        }
        key = dev_mailbox_key(settings)
        pipe = rt.redis.pipeline(transaction=True)
        pipe.lpush(key, json.dumps(entry))
        pipe.ltrim(key, 0, DEV_MAILBOX_SIZE - 1)
        await pipe.execute()
        return
    url = urlsplit(settings.smtp_url)
    query = parse_qs(url.query)
    # Flattened here, not by aiosmtplib: it would refold long headers (an unsubscribe URL) at 78 characters.
    raw = message.as_bytes(policy=MAIL_POLICY.clone(linesep="\r\n"))
    await aiosmtplib.send(
        raw,
        sender=parseaddr(str(message["From"]))[1],
        recipients=[parseaddr(str(message["To"]))[1]],
        hostname=url.hostname or "localhost",
        port=url.port or (465 if url.scheme == "smtps" else 25),
        username=unquote(url.username) if url.username else None,
        password=unquote(url.password) if url.password else None,
        use_tls=url.scheme == "smtps",
        start_tls=query.get("starttls", ["0"])[0] in ("1", "true"),
        timeout=30,
    )


def _part(message: Message, subtype: str) -> str | None:
    for part in message.walk():
        if part.get_content_type() == f"text/{subtype}":
            payload = part.get_payload(decode=True)
            return payload.decode(part.get_content_charset() or "utf-8") if isinstance(payload, bytes) else None
    return None


async def send_mail(
    ctx: dict[str, Any],
    *,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    key: str,
    headers: dict[str, str] | None = None,
) -> bool:
    """Job: send one mail once. Returns False when this key was already sent."""
    rt: Runtime = ctx["runtime"]
    recipient_hash = hashlib.sha256(to.lower().encode()).hexdigest()
    async with rt.pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            "INSERT INTO notify.sent_mail (idempotency_key, recipient_hash) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING RETURNING true",
            key,
            recipient_hash,
        )
        if not inserted:
            log.info("mail %s to %s was already sent", key, mask(to))
            return False
        message = build_message(rt.settings, to=to, subject=subject, text=text, html=html, headers=headers)
        try:
            await deliver(rt.settings, rt, message)
        except (aiosmtplib.SMTPException, OSError) as exc:
            attempt = int(ctx.get("job_try", 1))
            log.warning("mail %s to %s failed (attempt %d): %s", key, mask(to), attempt, exc)
            raise Retry(defer=RETRY_BASE_S * 2 ** (attempt - 1)) from exc
    log.info("mail %s sent to %s", key, mask(to))
    return True
