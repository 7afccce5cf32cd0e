"""The mails about accounts (confirm your address, someone tried to register with it, reset your
password; sign-ups approved or not, invitations to join) and `compose`, which writes any of the
forum's mails in text and HTML.

A mail names the community by the site name admins chose (`site_name`, editable at any time):
the builders write SITE where the name goes and `send` puts in the name as it is when the mail is
queued, so no caller needs to pass it and a renamed community is never called "tica" by mistake.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from services.forum.accounts.accounts import User
from services.forum.accounts.tokens import VERIFY_TOKEN_TTL
from shared.jobs import enqueue_mail
from shared.web import Runtime

# Where a mail names the community. A control character no member's text can hold (names, notes
# and answers refuse them), so only our own words carry it.
SITE = "\x1esite\x1e"


@dataclass(frozen=True)
class Mail:
    """A mail ready to send: its subject, and its text in plain text and HTML."""

    subject: str
    text: str
    html: str

    def for_site(self, site_name: str) -> Mail:
        """The mail with the community's name where it says SITE (escaped in the HTML part)."""
        return Mail(
            self.subject.replace(SITE, site_name),
            self.text.replace(SITE, site_name),
            self.html.replace(SITE, escape(site_name)),
        )


def compose(
    *, greeting_name: str, paragraphs: list[str], link: str | None = None, after: list[str] | None = None, subject: str
) -> Mail:
    """A plain, kind mail in text and HTML; every piece of text is escaped in the HTML part."""
    parts_text = [f"Hello {greeting_name},", *paragraphs]
    parts_html = [f"<p>Hello {escape(greeting_name)},</p>", *(f"<p>{escape(p)}</p>" for p in paragraphs)]
    if link:
        parts_text.append(link)
        parts_html.append(f'<p><a href="{escape(link)}">{escape(link)}</a></p>')
    for paragraph in [*(after or []), f"The {SITE} team"]:
        parts_text.append(paragraph)
        parts_html.append(f"<p>{escape(paragraph)}</p>")
    return Mail(subject, "\n\n".join(parts_text) + "\n", "\n".join(parts_html))


# --- registering ---------------------------------------------------------------------------------------


def verification_mail(base_url: str, user: User, token: str, *, waiting: bool = False) -> Mail:
    """The link that confirms a new account's email address (`waiting`: the account waits for a
    moderator's approval, and the mail says what happens next)."""
    if waiting:
        opening = f"Thank you for asking to join {SITE}. Confirm your email address by opening this link:"
        next_steps = [
            "A moderator will read your request, usually within a few days. We will email you when they "
            "have. Until then you will not be able to log in.",
        ]
    else:
        opening = f"Welcome to {SITE}. Confirm your email address by opening this link:"
        next_steps = []
    return compose(
        subject=f"Confirm your email address for {SITE}",
        greeting_name=user.display_name,
        paragraphs=[opening],
        link=f"{base_url}/verify?token={token}",
        after=[
            f"The link works for {VERIFY_TOKEN_TTL.days} days.",
            *next_steps,
            f"If you did not create an account on {SITE}, you can ignore this email. Nothing else will happen.",
        ],
    )


def already_registered_mail(base_url: str, user: User) -> Mail:
    """To the owner of an address someone tried to register again."""
    return compose(
        subject=f"Someone tried to create a {SITE} account with your email address",
        greeting_name=user.display_name,
        paragraphs=[
            f"Someone, perhaps you, tried to create a new {SITE} account with this email address. You already have "
            f"an account, with the username {user.username}, so we did not create another one.",
            f"If it was you, you can log in at {base_url}/login. If you have forgotten your password, "
            "you can choose a new one here:",
        ],
        link=f"{base_url}/reset",
        after=["If it was not you, you do not need to do anything. Your account is safe."],
    )


def already_waiting_mail(*, display_name: str, username: str) -> Mail:
    """To a person waiting for approval whose address someone tried to register again."""
    return compose(
        subject=f"Someone tried to create a {SITE} account with your email address",
        greeting_name=display_name,
        paragraphs=[
            f"Someone, perhaps you, tried to create a new {SITE} account with this email address. You have "
            f"already asked to join, with the username {username}, so we did not start another request.",
            "A moderator will read your request soon. We will email you when they have.",
        ],
        after=["If it was not you, you do not need to do anything."],
    )


def reset_mail(base_url: str, user: User, token: str) -> Mail:
    """The one-time link to choose a new password."""
    return compose(
        subject=f"Choose a new password for {SITE}",
        greeting_name=user.display_name,
        paragraphs=[
            f"Someone asked to reset the password of your {SITE} account ({user.username}). "
            "To choose a new password, open this link:"
        ],
        link=f"{base_url}/reset/confirm?token={token}",
        after=[
            "The link works for 1 hour and only once.",
            "If you did not ask for this, you can ignore this email. Your password stays the same.",
        ],
    )


# --- sign-ups and invitations ------------------------------------------------------------------------


def _note(intro: str, note: str) -> list[str]:
    return [intro, note] if note else []


def approved_mail(base_url: str, *, display_name: str, username: str, verified: bool, note: str = "") -> Mail:
    """A waiting account was approved: welcome, and how to sign in."""
    confirm = (
        []
        if verified
        else [
            "You have not confirmed your email address yet. The link in our first email still works for "
            f"{VERIFY_TOKEN_TTL.days} days after you registered; once you have logged in you can also ask "
            "for a new one from your profile."
        ]
    )
    return compose(
        subject=f"Welcome: you can now sign in to {SITE}",
        greeting_name=display_name,
        paragraphs=[
            f"Good news: a moderator has read your request to join {SITE} and welcomed you. "
            f"You can now log in with your username, {username}, and the password you chose:",
        ],
        link=f"{base_url}/login",
        after=[*_note("The moderator added a note for you:", note), *confirm, "We are glad you are here."],
    )


def declined_mail(base_url: str, *, display_name: str, note: str = "") -> Mail:
    """A waiting account was not approved: said kindly, with the moderator's note if they wrote one."""
    return compose(
        subject=f"Your request to join {SITE}",
        greeting_name=display_name,
        paragraphs=[
            f"Thank you for asking to join {SITE}. A moderator has read your request, and we are not able "
            "to open an account for you at the moment.",
            *_note("The moderator added a note for you:", note),
            "This is not a judgement of you. Communities like ours are sometimes set up for a particular "
            "group of people or a particular purpose, and a request can simply not fit that at this time.",
            "We have not kept your details. If you think something was misunderstood, you are welcome to "
            f"ask again by creating an account at {base_url}/register.",
        ],
        after=["Take care of yourself."],
    )


def invitation_mail(link: str, *, inviter: str, note: str, days: int) -> Mail:
    """An invitation to join, with its signed link to the registration form ("Hello there": we do
    not know their name yet)."""
    return compose(
        subject=f"You are invited to join {SITE}",
        greeting_name="there",
        paragraphs=[
            f"{inviter} has invited you to join {SITE}.",
            *_note(f"{inviter} added a note for you:", note),
            "To create your account, open this link:",
        ],
        link=link,
        after=[
            f"The link works for {days} days, for one account. If you create it with this email address, "
            "you will not need to confirm the address again.",
            "If you were not expecting this, you can ignore this email. Nothing will happen.",
        ],
    )


async def send(rt: Runtime, *, to: str, mail: Mail, key: str) -> None:
    """Queue a mail for notify to send, with the community's name as it is now; the key makes a
    retry send it once."""
    ready = mail.for_site(rt.settings.site_name)
    await enqueue_mail(rt.extras["queue"], to=to, subject=ready.subject, text=ready.text, html=ready.html, key=key)
