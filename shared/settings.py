"""Settings: every environment variable tica reads, typed, read once at start-up.

`Settings.from_env()` is the only place that looks at `os.environ`; the result is
passed explicitly (app.state, worker ctx). A missing or invalid value raises
`SettingsError`, whose one-line message names the variable.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class SettingsError(Exception):
    """A variable is missing or invalid; the message names it."""


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, how to parse it, its default, what it is for."""

    name: str
    attr: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    # Admins may change it from /admin/settings (kept in the database, applied by every process
    # within seconds: shared/site_settings.py); the environment variable is then only the default.
    editable: bool = False


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            raise ValueError(f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return value

    return parse


def _port(value: str) -> int:
    port = int(value)
    if not 0 < port < 65536:
        raise ValueError("must be a port number between 1 and 65535")
    return port


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive whole number")
    return number


def _whole_number(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be a whole number, 0 or more")
    return number


def _yes_no(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _minutes(value: str) -> float:
    number = float(value)
    if not 0 < number <= 24 * 60:
        raise ValueError("must be a number of minutes, more than 0 and at most 1440 (a day)")
    return number


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http:// or https:// URL")
    return value.rstrip("/")


def _secret(value: str) -> str:
    if len(value) < 32:
        raise ValueError(
            "must be at least 32 characters (try: python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    return value


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
    return level


def _storage_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme == "file" and parts.path:
        return value
    if parts.scheme not in ("s3", "s3+http") or not parts.hostname or not parts.path.strip("/"):
        raise ValueError("must be file:///folder, or s3://KEY:SECRET@host/bucket?region=R (s3+http:// without TLS)")
    if not parts.username or not parts.password:
        raise ValueError("an s3:// URL must carry the access key and secret: s3://KEY:SECRET@host/bucket")
    return value


def _networks(value: str) -> tuple[str, ...]:
    """Comma-separated addresses or CIDR networks (IPv4 or IPv6), each checked."""
    items = tuple(item.strip() for item in value.split(",") if item.strip())
    if not items:
        raise ValueError("must list at least one address or network, e.g. 127.0.0.1,10.0.0.0/8")
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or a network like 10.0.0.0/8") from None
    return items


REGISTRATION_MODES = ("open", "approval", "invite")
SITE_NAME_MAX = 60
SHORT_TEXT_MAX = 300
LONG_TEXT_MAX = 5000


def _registration_mode(value: str) -> str:
    mode = value.strip().lower()
    if mode not in REGISTRATION_MODES:
        raise ValueError(f"must be one of {', '.join(REGISTRATION_MODES)}")
    return mode


def _site_name(value: str) -> str:
    name = " ".join(value.split())
    if not 0 < len(name) <= SITE_NAME_MAX:
        raise ValueError(f"must be 1 to {SITE_NAME_MAX} characters")
    return name


def _short_text(value: str) -> str:
    text = " ".join(value.split())
    if not 0 < len(text) <= SHORT_TEXT_MAX:
        raise ValueError(f"must be 1 to {SHORT_TEXT_MAX} characters")
    return text


def _long_text(value: str) -> str:
    text = value.strip()
    if len(text) > LONG_TEXT_MAX:
        raise ValueError(f"must be at most {LONG_TEXT_MAX} characters")
    return text


def _prefix(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise ValueError("must be a non-empty string without spaces")
    return value


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "DATABASE_URL",
        "database_url",
        _url("postgresql", "postgres"),
        None,
        "PostgreSQL server; unset: an embedded PostgreSQL under DATA_DIR",
    ),
    Variable(
        "REDIS_URL",
        "redis_url",
        _url("redis", "rediss", "unix"),
        None,
        "Redis server; unset: an embedded Redis under DATA_DIR",
    ),
    Variable(
        "SMTP_URL",
        "smtp_url",
        _url("smtp", "smtps"),
        None,
        "mail server, e.g. smtp://user:pass@host:587?starttls=1; unset: mail is caught and shown at /dev/mail",
    ),
    Variable("PORT", "port", _port, 8000, "HTTP port of `tica run` and `tica serve`"),
    Variable(
        "TICA_BASE_URL",
        "base_url",
        _base_url,
        None,
        "public origin used in emails and links; default http://127.0.0.1:PORT",
    ),
    Variable(
        "TICA_SECRET_KEY",
        "secret_key",
        _secret,
        None,
        "signs tokens and unsubscribe links; required with DATABASE_URL, else generated under DATA_DIR",
    ),
    Variable("DATA_DIR", "data_dir", Path, Path("var"), "uploads and embedded server data"),
    Variable(
        "TICA_REDIS_PREFIX",
        "redis_prefix",
        _prefix,
        "tica:",
        "prefix of every Redis key and stream (lets several installs share one Redis)",
    ),
    Variable(
        "TICA_TRUSTED_PROXIES",
        "trusted_proxies",
        _networks,
        ("127.0.0.1",),
        "proxies whose X-Forwarded-For and X-Forwarded-Proto are believed: comma-separated addresses or "
        "networks (e.g. 10.0.0.0/8); everyone else is seen as the address that connected",
    ),
    Variable(
        "TICA_RECLAIM_IDLE_S",
        "reclaim_idle_s",
        _positive_int,
        30,
        "seconds an event may stay unacknowledged by a stopped consumer before another replica takes it over",
    ),
    Variable("TICA_LOG_LEVEL", "log_level", _log_level, "INFO", "DEBUG, INFO, WARNING or ERROR"),
    Variable(
        "TICA_STREAM_MAXLEN",
        "stream_maxlen",
        _positive_int,
        200_000,
        "events kept in the stream: the resume window of live clients",
    ),
    Variable(
        "TICA_MAX_BODY_BYTES",
        "max_body_bytes",
        _positive_int,
        1_000_000,
        "largest request body accepted outside uploads (413 above it)",
    ),
    Variable(
        "TICA_MAX_UPLOAD_BYTES",
        "max_upload_bytes",
        _positive_int,
        25 * 1024 * 1024,
        "largest file a member can upload to the library (413 above it)",
    ),
    Variable(
        "TICA_STORAGE_URL",
        "storage_url",
        _storage_url,
        None,
        "where uploaded files are kept; unset: DATA_DIR/uploads; s3://KEY:SECRET@host/bucket?region=R for S3",
    ),
    # Moderation and safety (services/forum/moderation/, writings/flags.py).
    Variable(
        "TICA_FLAG_HIDE_SCORE",
        "flag_hide_score",
        _positive_int,
        3,
        "flag score at which a post is hidden until a moderator reviews it (a member's flag counts 1, "
        "a moderator's 3; safeguarding flags never hide)",
        editable=True,
    ),
    Variable(
        "TICA_NEW_MEMBER_REVIEW_POSTS",
        "new_member_review_posts",
        _whole_number,
        0,
        "how many of a new member's first posts wait for a moderator's approval (0: none wait)",
        editable=True,
    ),
    Variable(
        "TICA_NEW_MEMBER_DAYS",
        "new_member_days",
        _whole_number,
        3,
        "days after joining during which the stricter new-member rate limits apply",
        editable=True,
    ),
    Variable(
        "TICA_SAFEGUARDING_HOLD",
        "safeguarding_hold",
        _yes_no,
        False,
        "true: hold posts matching a safeguarding phrase for review; false: publish them and alert moderators",
        editable=True,
    ),
    Variable(
        "TICA_POSTS_PER_MINUTE",
        "posts_per_minute",
        _positive_int,
        10,
        "posts (topics and replies) a member may write per minute; staff are not limited",
        editable=True,
    ),
    Variable(
        "TICA_NEW_MEMBER_POSTS_PER_MINUTE",
        "new_member_posts_per_minute",
        _positive_int,
        3,
        "posts a new member may write per minute",
        editable=True,
    ),
    Variable(
        "TICA_EDITS_PER_MINUTE",
        "edits_per_minute",
        _positive_int,
        10,
        "edits (of posts and comments) a member may make per minute; staff are not limited",
        editable=True,
    ),
    Variable(
        "TICA_NEW_MEMBER_EDITS_PER_MINUTE",
        "new_member_edits_per_minute",
        _positive_int,
        5,
        "edits a new member may make per minute",
        editable=True,
    ),
    Variable(
        "TICA_RENDER_BUDGET_MS",
        "render_budget_ms",
        _positive_int,
        2000,
        "longest a text may take to render to HTML (in a worker process); longer: refused as too complex (422)",
    ),
    Variable(
        "TICA_TOPICS_PER_DAY", "topics_per_day", _positive_int, 20, "topics a member may start per day", editable=True
    ),
    Variable(
        "TICA_NEW_MEMBER_TOPICS_PER_DAY",
        "new_member_topics_per_day",
        _positive_int,
        5,
        "topics a new member may start per day",
        editable=True,
    ),
    Variable(
        "TICA_FLAGS_PER_DAY",
        "flags_per_day",
        _positive_int,
        30,
        "posts and comments a member may flag per day",
        editable=True,
    ),
    Variable(
        "TICA_NEW_MEMBER_FLAGS_PER_DAY",
        "new_member_flags_per_day",
        _positive_int,
        10,
        "posts and comments a new member may flag per day",
        editable=True,
    ),
    Variable(
        "TICA_CONVERSATIONS_PER_DAY",
        "conversations_per_day",
        _positive_int,
        20,
        "private conversations a member may start per day",
        editable=True,
    ),
    Variable(
        "TICA_NEW_MEMBER_CONVERSATIONS_PER_DAY",
        "new_member_conversations_per_day",
        _positive_int,
        3,
        "private conversations a new member may start per day",
        editable=True,
    ),
    Variable(
        "TICA_CONVERSATION_MAX_MEMBERS",
        "conversation_max_members",
        _positive_int,
        10,
        "most people one private conversation may hold, its starter included",
        editable=True,
    ),
    # Safeguarding (editable by admins).
    Variable(
        "TICA_SAFEGUARDING_REALERT_MINUTES",
        "safeguarding_realert_minutes",
        _minutes,
        30.0,
        "minutes a safeguarding item may wait unpicked before staff, admins too, are alerted again",
        editable=True,
    ),
    Variable(
        "TICA_QUICK_EXIT",
        "quick_exit",
        _yes_no,
        True,
        "show the 'Leave this site quickly' control on every page (Escape twice does the same)",
        editable=True,
    ),
    Variable(
        "TICA_QUICK_EXIT_URL",
        "quick_exit_url",
        _base_url,
        "https://www.bbc.co.uk/weather",
        "the neutral page 'Leave this site quickly' goes to",
        editable=True,
    ),
    # The community itself (editable by admins; the environment gives the defaults).
    Variable(
        "TICA_SITE_NAME",
        "site_name",
        _site_name,
        "tica",
        "the community's name, in the header, titles and mails",
        editable=True,
    ),
    Variable(
        "TICA_WELCOME_TEXT",
        "welcome_text",
        _long_text,
        "",
        "a welcome shown to visitors at the top of the home page, written in Markdown",
        editable=True,
    ),
    Variable(
        "TICA_REGISTRATION_MODE",
        "registration_mode",
        _registration_mode,
        "open",
        "open: anyone may register; approval: new accounts wait for a moderator; invite: by invitation only",
        editable=True,
    ),
    Variable(
        "TICA_SIGNUP_QUESTION",
        "signup_question",
        _short_text,
        "Tell us a little about yourself and what brings you to this community.",
        "the question a person answers when registering needs approval",
        editable=True,
    ),
)


@dataclass(frozen=True)
class Settings:
    """The typed settings of one process."""

    database_url: str | None = None
    redis_url: str | None = None
    smtp_url: str | None = None
    port: int = 8000
    base_url: str | None = None
    secret_key: str | None = None
    data_dir: Path = Path("var")
    redis_prefix: str = "tica:"
    trusted_proxies: tuple[str, ...] = ("127.0.0.1",)
    reclaim_idle_s: int = 30
    log_level: str = "INFO"
    stream_maxlen: int = 200_000
    max_body_bytes: int = 1_000_000
    max_upload_bytes: int = 25 * 1024 * 1024
    storage_url: str | None = None
    flag_hide_score: int = 3
    new_member_review_posts: int = 0
    new_member_days: int = 3
    safeguarding_hold: bool = False
    posts_per_minute: int = 10
    new_member_posts_per_minute: int = 3
    edits_per_minute: int = 10
    new_member_edits_per_minute: int = 5
    render_budget_ms: int = 2000
    topics_per_day: int = 20
    new_member_topics_per_day: int = 5
    flags_per_day: int = 30
    new_member_flags_per_day: int = 10
    conversations_per_day: int = 20
    new_member_conversations_per_day: int = 3
    conversation_max_members: int = 10
    safeguarding_realert_minutes: float = 30.0
    quick_exit: bool = True
    quick_exit_url: str = "https://www.bbc.co.uk/weather"
    site_name: str = "tica"
    welcome_text: str = ""
    registration_mode: str = "open"
    signup_question: str = "Tell us a little about yourself and what brings you to this community."
    # Set by the process that starts, not by the environment.
    embedded: bool = field(default=False)
    dev_mail: bool = field(default=False)  # show caught mail at /dev/mail (`tica run` without SMTP_URL)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check every variable; raise SettingsError naming the first bad one."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for var in VARIABLES:
            raw = environ.get(var.name)
            if raw is None or raw == "":
                values[var.attr] = var.default
                continue
            try:
                values[var.attr] = var.parse(raw)
            except ValueError as exc:
                reason = str(exc) if not str(exc).startswith("invalid literal") else "must be a whole number"
                raise SettingsError(f"{var.name} is invalid: {reason}") from None
        settings = cls(**values)
        if settings.secret_key is None and settings.database_url is not None:
            raise SettingsError("TICA_SECRET_KEY is missing: it is required when DATABASE_URL is set")
        return settings

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def public_url(self) -> str:
        return self.base_url or f"http://127.0.0.1:{self.port}"

    @property
    def https(self) -> bool:
        """Whether the public URL is https: cookies are then Secure and HSTS is sent."""
        return self.public_url.startswith("https://")

    def with_local_secret(self) -> Settings:
        """Settings with a secret key, generated once under DATA_DIR when none is configured."""
        if self.secret_key:
            return self
        path = self.data_dir / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return self.replace(secret_key=path.read_text().strip())

    @property
    def key(self) -> bytes:
        if not self.secret_key:
            raise SettingsError("TICA_SECRET_KEY is missing")
        return self.secret_key.encode()
