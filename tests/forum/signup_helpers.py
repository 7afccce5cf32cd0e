"""Helpers of the sign-up and invitation tests: a real SMTP server for the mails, a registration
mode set as admins set it (the forum's live settings), and the links mails carry."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from argon2 import PasswordHasher
from moderation_helpers import settings_changed
from notify_helpers import MailSink, parts, smtp_server

from services.forum.accounts import passwords
from services.notify.worker import create_worker

PASSWORD = "correct horse battery"


def cheap_hashing(monkeypatch: Any) -> None:
    """Real argon2id with cheap parameters, so registrations and logins are quick."""
    monkeypatch.setattr(passwords, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    passwords._dummy_hash.cache_clear()


@dataclass
class Mailbox:
    """A real SMTP server (aiosmtpd) and the worker that delivers queued mail to it."""

    sink: MailSink
    port: int
    settings: Any

    async def deliver(self) -> list[EmailMessage]:
        """Run the queued mail jobs through the SMTP server; every message received so far."""
        worker = create_worker(self.settings.replace(smtp_url=f"smtp://127.0.0.1:{self.port}"), burst=True)
        await worker.main()
        await worker.close()
        return list(self.sink.messages)

    async def to(self, address: str) -> list[EmailMessage]:
        """The messages to one address (after delivering what is queued)."""
        await self.deliver()
        return self.sink.to(address)

    async def last_to(self, address: str, subject: str | None = None) -> tuple[str, str, str]:
        """The subject, text and HTML of the latest message to an address (with this subject, when
        given: mails queued together may arrive in any order)."""
        messages = [m for m in await self.to(address) if subject is None or str(m["Subject"]) == subject]
        assert messages, f"no mail to {address}" + (f" about {subject!r}" if subject else "")
        text, html_part = parts(messages[-1])
        return str(messages[-1]["Subject"]), text, html_part


@contextmanager
def mailbox(settings: Any) -> Iterator[Mailbox]:
    with smtp_server() as (sink, port):
        yield Mailbox(sink, port, settings)


@contextmanager
def mode(app: Any, registration_mode: str, **more: Any) -> Iterator[None]:
    """The forum's sign-up mode (and other settings) as if admins had set it, restored afterwards."""
    with settings_changed(app, registration_mode=registration_mode, **more):
        yield


def link(text: str, path: str, name: str = "token") -> str:
    """The token of a link to `path` in a mail's text."""
    match = re.search(rf"http://testserver{re.escape(path)}\?{name}=([A-Za-z0-9_.%-]+)", text)
    assert match, text
    return match.group(1).replace("%2E", ".")


def text_of(page: str) -> str:
    """A page's words without its tags, entities decoded, blanks squeezed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def form(member: Any, **fields: Any) -> dict[str, Any]:
    """A page form's fields with the member's CSRF token."""
    return {**fields, "csrf_token": member.session.csrf}


def body(**changes: Any) -> dict[str, Any]:
    """A registration's JSON body."""
    return {"username": "rowan", "email": "rowan@example.org", "password": PASSWORD, **changes}


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the page has no CSRF field"
    return match.group(1)


async def submit(client: Any, form_page: str, action: str, data: dict[str, Any]) -> Any:
    """GET the form page, then POST the form with its CSRF token, as a browser does."""
    page = await client.get(form_page)
    assert page.status_code == 200, page.text
    return await client.post(action, data={"csrf_token": csrf_of(page.text), **data})
