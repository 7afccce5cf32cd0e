"""The mails about accounts (confirm your address, someone tried to register with it, reset
your password) and `compose`, which writes any of the forum's mails in text and HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from services.forum.accounts.accounts import User
from services.forum.accounts.tokens import VERIFY_TOKEN_TTL
from shared.jobs import enqueue_mail
from shared.web import Runtime


@dataclass(frozen=True)
class Mail:
    """A mail ready to send: its subject, and its text in plain text and HTML."""

    subject: str
    text: str
    html: str


def compose(
    *, greeting_name: str, paragraphs: list[str], link: str | None = None, after: list[str] | None = None, subject: str
) -> Mail:
    """A plain, kind mail in text and HTML; every piece of text is escaped in the HTML part."""
    parts_text = [f"Hello {greeting_name},", *paragraphs]
    parts_html = [f"<p>Hello {escape(greeting_name)},</p>", *(f"<p>{escape(p)}</p>" for p in paragraphs)]
    if link:
        parts_text.append(link)
        parts_html.append(f'<p><a href="{escape(link)}">{escape(link)}</a></p>')
    for paragraph in [*(after or []), "tica community"]:
        parts_text.append(paragraph)
        parts_html.append(f"<p>{escape(paragraph)}</p>")
    return Mail(subject, "\n\n".join(parts_text) + "\n", "\n".join(parts_html))


def verification_mail(base_url: str, user: User, token: str) -> Mail:
    """The link that confirms a new account's email address."""
    return compose(
        subject="Confirm your email address for tica",
        greeting_name=user.display_name,
        paragraphs=["Welcome to tica. Confirm your email address by opening this link:"],
        link=f"{base_url}/verify?token={token}",
        after=[
            f"The link works for {VERIFY_TOKEN_TTL.days} days.",
            "If you did not create an account on tica, you can ignore this email. Nothing else will happen.",
        ],
    )


def already_registered_mail(base_url: str, user: User) -> Mail:
    """To the owner of an address someone tried to register again."""
    return compose(
        subject="Someone tried to create a tica account with your email address",
        greeting_name=user.display_name,
        paragraphs=[
            "Someone, perhaps you, tried to create a new tica account with this email address. You already have "
            f"an account, with the username {user.username}, so we did not create another one.",
            f"If it was you, you can log in at {base_url}/login. If you have forgotten your password, "
            "you can choose a new one here:",
        ],
        link=f"{base_url}/reset",
        after=["If it was not you, you do not need to do anything. Your account is safe."],
    )


def reset_mail(base_url: str, user: User, token: str) -> Mail:
    """The one-time link to choose a new password."""
    return compose(
        subject="Choose a new password for tica",
        greeting_name=user.display_name,
        paragraphs=[
            f"Someone asked to reset the password of your tica account ({user.username}). "
            "To choose a new password, open this link:"
        ],
        link=f"{base_url}/reset/confirm?token={token}",
        after=[
            "The link works for 1 hour and only once.",
            "If you did not ask for this, you can ignore this email. Your password stays the same.",
        ],
    )


async def send(rt: Runtime, *, to: str, mail: Mail, key: str) -> None:
    """Queue a mail for notify to send; the key makes a retry send it once."""
    await enqueue_mail(rt.extras["queue"], to=to, subject=mail.subject, text=mail.text, html=mail.html, key=key)
