"""Sending mail: the arq job every service enqueues, through SMTP_URL or, when it
is unset, into the development mailbox shown at /dev/mail.

A job carries an idempotency key; notify.sent_mail records each key in the same
transaction as the send, so a retried job never sends twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
from arq import Retry

from shared.settings import Settings
from shared.web import Runtime

log = logging.getLogger("tica.mail")

DEV_MAILBOX_SIZE = 200
FROM_NAME = "tica community"
RETRY_BASE_S = 5


def mask(address: str) -> str:
    """An address fit for logs: first letter and domain only."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def dev_mailbox_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}dev-mail"


def from_address(settings: Settings) -> str:
    host = urlsplit(settings.public_url).hostname or "localhost"
    domain = host if "." in host else f"{host}.localdomain"
    return formataddr((FROM_NAME, f"no-reply@{domain}"))


def build_message(settings: Settings, *, to: str, subject: str, text: str, html: str | None,
                  headers: dict[str, str] | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = from_address(settings)
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="tica")
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    return message


async def deliver(settings: Settings, rt: Runtime, message: EmailMessage) -> None:
    """Hand a message to the SMTP server, or to the development mailbox."""
    if settings.smtp_url is None:
        entry = {"to": message["To"], "subject": message["Subject"], "at": time.time(),
                 "text": _part(message, "plain"), "html": _part(message, "html"),
                 "headers": {k: str(v) for k, v in message.items()}}
        key = dev_mailbox_key(settings)
        pipe = rt.redis.pipeline(transaction=True)
        pipe.lpush(key, json.dumps(entry))
        pipe.ltrim(key, 0, DEV_MAILBOX_SIZE - 1)
        await pipe.execute()
        return
    url = urlsplit(settings.smtp_url)
    query = parse_qs(url.query)
    await aiosmtplib.send(
        message,
        hostname=url.hostname or "localhost",
        port=url.port or (465 if url.scheme == "smtps" else 25),
        username=unquote(url.username) if url.username else None,
        password=unquote(url.password) if url.password else None,
        use_tls=url.scheme == "smtps",
        start_tls=True if query.get("starttls", ["0"])[0] in ("1", "true") else False,
        timeout=30,
    )


def _part(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    return part.get_content() if part is not None else None


async def send_mail(ctx: dict[str, Any], *, to: str, subject: str, text: str, html: str | None = None,
                    key: str, headers: dict[str, str] | None = None) -> bool:
    """Job: send one mail once. Returns False when this key was already sent."""
    rt: Runtime = ctx["runtime"]
    recipient_hash = hashlib.sha256(to.lower().encode()).hexdigest()
    async with rt.pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            "INSERT INTO notify.sent_mail (idempotency_key, recipient_hash) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING RETURNING true",
            key, recipient_hash,
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
