"""Screening what members write, and the help offered to them.

- Watched words (managed by admins): block a post, hold it for approval, censor the word, or
  flag the post for moderators. Words and phrases match whole, case-insensitively.
- Safeguarding phrases: built-in crisis phrases, plus or minus admins' changes. A matching post
  is published (people are not silenced; TICA_SAFEGUARDING_HOLD can hold it instead), its author
  sees the support panel, and a high-priority safeguarding reviewable reaches moderators.
- The support panel and the "Get support" page's content.
- Posting rules: rate limits (stricter for new members; staff are not limited) and a new
  member's first posts waiting for approval.
- The review items an automatic check opens (writings/reviews.py is the one way into the queue).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from services.forum import access
from services.forum.moderation import audit
from services.forum.outbox import write_event
from services.forum.writings import reviews
from shared import ratelimit
from shared.events import PostFlagged
from shared.sessions import Session
from shared.settings import Settings
from shared.web import ApiError, Runtime

WORD_ACTIONS = ("block", "require_approval", "censor", "flag")
WORD_ACTION_LABELS = {
    "block": "Block the post",
    "require_approval": "Hold the post for approval",
    "censor": "Censor the word",
    "flag": "Flag the post for moderators",
}
WORD_MAX = 100
# Letters, digits, spaces, hyphens and apostrophes, with * for "any ending" (e.g. "scam*").
WORD_PATTERN = r"[\w][\w '\u2019*-]*"
CENSOR_MARK = "\u25a0"

# Crisis phrases tica watches for out of the box. Admins can add phrases and switch any of
# these off; matching is whole-phrase, case-insensitive, and "self harm" also matches
# "self-harm" (spaces and hyphens are the same), "can't" also "cant" and with a curly apostrophe.
DEFAULT_CRISIS_PHRASES = (
    "kill myself",
    "killing myself",
    "end my life",
    "ending my life",
    "end it all",
    "take my own life",
    "taking my own life",
    "want to die",
    "wanna die",
    "wish I was dead",
    "wish I were dead",
    "better off dead",
    "better off without me",
    "suicide",
    "suicidal",
    "self harm",
    "self harming",
    "hurt myself",
    "hurting myself",
    "cut myself",
    "cutting myself",
    "no reason to live",
    "nothing to live for",
    "overdose",
    "can't go on",
    "can't do this anymore",
    "can't cope anymore",
    "don't want to be here anymore",
    "not safe right now",
)

# The calm support panel and the /support page. Kept as data so the API can offer it too.
SUPPORT: dict[str, Any] = {
    "heading": "Support is here if you need it",
    "intro": (
        "If things feel too much right now, you do not have to cope on your own. "
        "These services are free and confidential, and they are there for you."
    ),
    "services": [
        {
            "name": "Samaritans",
            "action": "Call 116 123",
            "href": "tel:116123",
            "detail": "Free, any time, day or night. You can also email jo@samaritans.org.",
            "url": "https://www.samaritans.org",
        },
        {
            "name": "Shout",
            "action": "Text SHOUT to 85258",
            "href": "sms:85258",
            "detail": "Free, confidential text support, any time.",
            "url": "https://giveusashout.org",
        },
        {
            "name": "NHS 111",
            "action": "Call 111 and choose option 2",
            "href": "tel:111",
            "detail": "Urgent mental health help from your local NHS crisis team, any time.",
            "url": "https://www.nhs.uk/nhs-services/mental-health-services/where-to-get-urgent-help-for-mental-health/",
        },
        {
            "name": "In an emergency",
            "action": "Call 999",
            "href": "tel:999",
            "detail": "If your life, or someone else's, is at risk now, or you cannot keep yourself safe.",
            "url": None,
        },
    ],
    "after": "You can find this at any time through the \u201cGet support\u201d link at the top of every page.",
}


def support_panel(*, held: bool = False) -> dict[str, Any]:
    """The support panel shown to a member whose post matched a safeguarding phrase."""
    shared = (
        "Your post will appear once a moderator has read it, which is usually soon."
        if held
        else "Your post has been shared with the community."
    )
    note = f"{shared} A moderator may get in touch to see how you are; you choose whether to reply."
    return {**SUPPORT, "post_note": note}


# --- matching -----------------------------------------------------------------------------------

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_SEPARATORS = re.compile(r"[\s\-\u2010\u2011\u2012\u2013]+")


def normalise(text: str) -> str:
    """Text as matching sees it: compatibility forms folded, one kind of apostrophe."""
    return unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)


def clean_phrase(phrase: str) -> str:
    """A word or phrase as stored: normalised, single spaces, hyphens kept as typed."""
    return " ".join(normalise(phrase).split())


_ANY_APOSTROPHE = "['\u2019\u2018\u02bc]?"


def _token_pattern(token: str) -> str:
    """One word of a phrase: * matches any ending, an apostrophe may be curly or left out."""
    parts = [
        r"\w*" if piece == "*" else re.escape(piece).replace("'", _ANY_APOSTROPHE) for piece in re.split(r"(\*)", token)
    ]
    return "".join(parts)


def phrase_pattern(phrase: str) -> str:
    """A regular expression matching a phrase as whole words; spaces and hyphens are interchangeable."""
    tokens = [t for t in _SEPARATORS.split(normalise(phrase)) if t]
    return r"(?<!\w)" + r"[\s\-\u2010\u2011\u2012\u2013]+".join(_token_pattern(t) for t in tokens) + r"(?!\w)"


@dataclass(frozen=True)
class Matcher:
    """Finds which of a list of phrases a text contains."""

    phrases: tuple[str, ...]
    _compiled: tuple[re.Pattern[str], ...] = field(default=(), repr=False)

    @classmethod
    def of(cls, phrases: Iterable[str]) -> Matcher:
        return _matcher(tuple(phrases))

    def find(self, text: str) -> list[str]:
        """The phrases found in the text, in list order."""
        folded = normalise(text)
        return [phrase for phrase, pattern in zip(self.phrases, self._compiled, strict=True) if pattern.search(folded)]

    def censor(self, text: str) -> str:
        """The text with every match replaced by a run of ■ (the rest of it unchanged)."""
        for pattern in self._compiled:
            text = pattern.sub(lambda m: CENSOR_MARK * len(m.group(0)), text)
        return text


@functools.lru_cache(maxsize=64)
def _matcher(phrases: tuple[str, ...]) -> Matcher:
    """Matchers are immutable: every post screened against the same lists shares one (built once)."""
    unique = tuple(dict.fromkeys(p for p in phrases if p.strip()))
    return Matcher(unique, tuple(re.compile(phrase_pattern(p), re.IGNORECASE) for p in unique))


_TAG = re.compile(r"(<[^>]*>)")


def censor_html(cooked: str, matcher: Matcher) -> str:
    """Censor words in sanitised HTML: text between tags only, so markup and links stay whole."""
    if not matcher.phrases:
        return cooked
    parts = _TAG.split(cooked)
    return "".join(part if part.startswith("<") else matcher.censor(part) for part in parts)


# --- watched words and safeguarding phrases: storage ------------------------------------------------


async def watched_words(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every watched word with its action, alphabetically."""
    return list(
        await conn.fetch(
            "SELECT w.id, w.word, w.action, w.created_at, u.username AS created_by "
            "FROM forum.watched_words w LEFT JOIN forum.users u ON u.id = w.created_by ORDER BY lower(w.word)"
        )
    )


async def add_watched_word(conn: asyncpg.Connection, who: Session, word: str, action: str) -> asyncpg.Record:
    """Watch for a word (admins); 409 when it is already watched."""
    access.require_admin(who)
    word = check_phrase(word, "word")
    if action not in WORD_ACTIONS:
        raise ApiError(
            422, "invalid", "Some fields need attention.", {"action": f"must be one of: {', '.join(WORD_ACTIONS)}"}
        )
    row = await conn.fetchrow(
        "INSERT INTO forum.watched_words (word, action, created_by) VALUES ($1, $2, $3) "
        "ON CONFLICT (lower(word)) DO NOTHING RETURNING id, word, action, created_at",
        word,
        action,
        who.user_id,
    )
    if row is None:
        raise ApiError(
            409, "already_watched", f"\u201c{word}\u201d is already watched.", {"word": "is already watched"}
        )
    await audit.record_by(conn, who, "watched_word.add", row["id"], after={"word": word, "action": action})
    return row


async def remove_watched_word(conn: asyncpg.Connection, who: Session, word_id: int) -> None:
    """Stop watching a word (admins); 404 when there is no such word."""
    access.require_admin(who)
    row = await conn.fetchrow("DELETE FROM forum.watched_words WHERE id = $1 RETURNING id, word, action", word_id)
    if row is None:
        raise ApiError(404, "not_found", "That word is not watched.")
    before = {"word": row["word"], "action": row["action"]}
    await audit.record_by(conn, who, "watched_word.remove", word_id, before=before)


def check_phrase(value: str, name: str) -> str:
    """A watched word or safeguarding phrase as stored; 422 when it cannot be one."""
    phrase = clean_phrase(value)
    if not phrase:
        raise ApiError(422, "invalid", "Some fields need attention.", {name: "is required"})
    if len(phrase) > WORD_MAX:
        raise ApiError(422, "invalid", "Some fields need attention.", {name: f"must be at most {WORD_MAX} characters"})
    if not re.fullmatch(WORD_PATTERN, phrase) or not re.search(r"\w", phrase):
        raise ApiError(
            422,
            "invalid",
            "Some fields need attention.",
            {name: "may use letters, numbers, spaces, hyphens, apostrophes and * only"},
        )
    return phrase


@dataclass(frozen=True)
class Phrase:
    """A safeguarding phrase as the admin page shows it."""

    phrase: str
    builtin: bool
    active: bool


async def safeguarding_phrases(conn: asyncpg.Connection) -> list[Phrase]:
    """Built-in phrases (on or switched off) and admins' own, built-in first."""
    rows = await conn.fetch("SELECT phrase, active FROM forum.safeguarding_phrases ORDER BY lower(phrase)")
    return phrase_list([(row["phrase"], row["active"]) for row in rows])


def phrase_list(stored: list[tuple[str, bool]]) -> list[Phrase]:
    """safeguarding_phrases from the table's (phrase, active) rows, in order."""
    changes = {phrase.lower(): active for phrase, active in stored}
    builtin = [Phrase(p, True, changes.get(p.lower(), True)) for p in DEFAULT_CRISIS_PHRASES]
    known = {p.lower() for p in DEFAULT_CRISIS_PHRASES}
    added = [Phrase(phrase, False, True) for phrase, active in stored if phrase.lower() not in known and active]
    return builtin + added


async def set_safeguarding_phrase(conn: asyncpg.Connection, who: Session, phrase: str, *, active: bool) -> Phrase:
    """Add a phrase (or switch a built-in one back on), or remove one (admins); 404 removing an unknown one."""
    access.require_admin(who)
    phrase = check_phrase(phrase, "phrase")
    current = {p.phrase.lower(): p for p in await safeguarding_phrases(conn)}
    found = current.get(phrase.lower())
    if not active and (found is None or not found.active):
        raise ApiError(404, "not_found", f"\u201c{phrase}\u201d is not on the list.")
    if active and found is not None and found.active:
        raise ApiError(
            409, "already_listed", f"\u201c{phrase}\u201d is already on the list.", {"phrase": "is already listed"}
        )
    builtin = phrase.lower() in {p.lower() for p in DEFAULT_CRISIS_PHRASES}
    if builtin == active:
        # Back to the built-in state, or an own phrase removed: no change row is needed.
        row_id = await conn.fetchval(
            "DELETE FROM forum.safeguarding_phrases WHERE lower(phrase) = lower($1) RETURNING id", phrase
        )
    else:
        row_id = await conn.fetchval(
            "INSERT INTO forum.safeguarding_phrases (phrase, active, created_by) VALUES ($1, $2, $3) "
            "ON CONFLICT (lower(phrase)) DO UPDATE SET active = EXCLUDED.active RETURNING id",
            phrase,
            active,
            who.user_id,
        )
    if active:
        await audit.record_by(conn, who, "safeguarding_phrase.add", row_id, after={"phrase": phrase})
    else:
        await audit.record_by(conn, who, "safeguarding_phrase.remove", row_id, before={"phrase": phrase})
    return Phrase(found.phrase if found else phrase, builtin, active)


# --- screening what members write ------------------------------------------------------------------


@dataclass(frozen=True)
class Screening:
    """What the watched words and safeguarding phrases found in a text."""

    blocked: list[str] = field(default_factory=list)
    approval: list[str] = field(default_factory=list)
    censored: Matcher = field(default_factory=lambda: Matcher.of(()))
    flagged: list[str] = field(default_factory=list)
    crisis: list[str] = field(default_factory=list)


# Both lists screen() needs, in one round trip (paired arrays share an ORDER BY; lower(phrase) is unique).
SCREEN_LISTS_SQL = """
SELECT ARRAY(SELECT word FROM forum.watched_words ORDER BY id) AS words,
       ARRAY(SELECT action FROM forum.watched_words ORDER BY id) AS actions,
       ARRAY(SELECT phrase FROM forum.safeguarding_phrases ORDER BY lower(phrase)) AS phrases,
       ARRAY(SELECT active FROM forum.safeguarding_phrases ORDER BY lower(phrase)) AS phrases_active
"""


async def screen(conn: asyncpg.Connection, text: str) -> Screening:
    """Check a text (title and body) against the watched words and safeguarding phrases."""
    lists = await conn.fetchrow(SCREEN_LISTS_SQL)
    by_action: dict[str, list[str]] = {action: [] for action in WORD_ACTIONS}
    for word, action in zip(lists["words"], lists["actions"], strict=True):
        by_action[action].append(word)
    found = {action: Matcher.of(listed).find(text) for action, listed in by_action.items() if action != "censor"}
    phrases = phrase_list(list(zip(lists["phrases"], lists["phrases_active"], strict=True)))
    return Screening(
        blocked=found["block"],
        approval=found["require_approval"],
        censored=Matcher.of(by_action["censor"]),
        flagged=found["flag"],
        crisis=Matcher.of([p.phrase for p in phrases if p.active]).find(text),
    )


def check_not_blocked(screening: Screening, field_name: str = "body") -> None:
    """422 naming the blocked word(s), so the author knows what to change."""
    if not screening.blocked:
        return
    words = ", ".join(f"\u201c{w}\u201d" for w in screening.blocked)
    plural = "s" if len(screening.blocked) > 1 else ""
    raise ApiError(
        422,
        "blocked_word",
        f"Your post contains {words}, which cannot be used here. Please change the word{plural} and try again.",
        {field_name: f"contains {words}, which cannot be used here"},
    )


# --- posting rules: rate limits and new members -----------------------------------------------------


@dataclass(frozen=True)
class PostingRules:
    """What checks on posting need beyond the database: the settings, and Redis for rate limits.

    Code that writes on nobody's behalf (demo data) passes no rules: no limits, no queue, no screening.
    """

    settings: Settings
    redis: aioredis.Redis

    @classmethod
    def of(cls, rt: Runtime) -> PostingRules:
        return cls(rt.settings, rt.redis)


@dataclass(frozen=True)
class Limit:
    scope: str
    limit: int
    window_s: int
    message: str


MINUTE_S, DAY_S = 60, 86400


def is_new_member(settings: Settings, joined_at: datetime, now: datetime | None = None) -> bool:
    """Whether a member joined recently enough for the stricter new-member limits."""
    return (now or datetime.now(UTC)) - joined_at < timedelta(days=settings.new_member_days)


def posting_limits(settings: Settings, *, new_member: bool, topic: bool) -> list[Limit]:
    """The limits one post counts against: posts per minute, and topics per day for a new topic."""
    per_minute = settings.new_member_posts_per_minute if new_member else settings.posts_per_minute
    limits = [
        Limit(
            "posts-minute",
            per_minute,
            MINUTE_S,
            "You are posting quickly. To keep conversations calm for everyone, please wait {wait} "
            "before posting again. What you wrote is still here.",
        )
    ]
    if topic:
        per_day = settings.new_member_topics_per_day if new_member else settings.topics_per_day
        limits.append(
            Limit(
                "topics-day",
                per_day,
                DAY_S,
                f"You have started {per_day} topics today, which is the most we allow in a day"
                + (" for new members" if new_member else "")
                + ". You can reply in existing topics, or start a new one in {wait}.",
            )
        )
    return limits


def flag_limit(settings: Settings, *, new_member: bool) -> Limit:
    per_day = settings.new_member_flags_per_day if new_member else settings.flags_per_day
    return Limit(
        "flags-day",
        per_day,
        DAY_S,
        f"You have flagged {per_day} posts or comments today, which is the most we allow in a day. Thank you for "
        "looking out for the community. You can flag again in {wait}. If someone is at risk now, "
        "please use the \u201cGet support\u201d page.",
    )


def _in_words(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    if seconds < 3600:
        minutes = -(-seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = -(-seconds // 3600)
    return f"{hours} hour{'s' if hours != 1 else ''}"


async def enforce_flag_limit(conn: asyncpg.Connection, who: Session, rules: PostingRules) -> None:
    """Count one flag (on a post or a document comment: one daily allowance for both) against the
    flagger's limit, stricter for new members; staff are not limited. 429 when it is reached."""
    if who.is_staff:
        return
    joined = await conn.fetchval("SELECT created_at FROM forum.users WHERE id = $1", who.user_id)
    await enforce_limits(
        rules, who.user_id, [flag_limit(rules.settings, new_member=is_new_member(rules.settings, joined))]
    )


async def enforce_limits(rules: PostingRules, user_id: int, limits: Sequence[Limit]) -> None:
    """Count one action against each limit; 429 with Retry-After (and nothing counted) when one is reached."""
    counted: list[str] = []
    for limit in limits:
        key = ratelimit.rate_key(rules.settings.redis_prefix, limit.scope, str(user_id))
        result = await ratelimit.hit(rules.redis, key, limit=limit.limit, window_s=limit.window_s)
        if not result.allowed:
            for earlier in [*counted, key]:
                await ratelimit.undo(rules.redis, earlier)
            raise ratelimit.too_many(result, limit.message.format(wait=_in_words(result.retry_after_s)))
        counted.append(key)


PUBLISHED_COUNT_SQL = "SELECT count(*) FROM forum.posts WHERE author_id = $1 AND status IN ('visible', 'hidden')"


@dataclass(frozen=True)
class PostReview:
    """What the checks decided about a new post: publish it or hold it, and what moderators should see."""

    pending: bool = False
    reasons: tuple[str, ...] = ()  # why it waits
    crisis: tuple[str, ...] = ()  # safeguarding phrases found
    flagged: tuple[str, ...] = ()  # watched words that flag it
    censored: Matcher = field(default_factory=lambda: Matcher.of(()))


async def review_new_post(
    conn: asyncpg.Connection,
    who: Session,
    author: asyncpg.Record,
    *,
    text: str,
    rules: PostingRules | None,
    topic: bool,
) -> PostReview:
    """Screen a new post and apply the posting rules (validate first: 422 blocked word, 429 too fast).

    Staff are not rate limited and never wait for approval; safeguarding applies to everyone.
    """
    if rules is None:
        return PostReview()
    screening = await screen(conn, text)
    check_not_blocked(screening)
    if who.is_staff:
        return PostReview(crisis=tuple(screening.crisis), censored=screening.censored)
    new_member = is_new_member(rules.settings, author["created_at"])
    await enforce_limits(rules, who.user_id, posting_limits(rules.settings, new_member=new_member, topic=topic))
    reasons = [f"Watched word \u201c{w}\u201d: held for approval" for w in screening.approval]
    wanted = rules.settings.new_member_review_posts
    if wanted and await conn.fetchval(PUBLISHED_COUNT_SQL, who.user_id) < wanted:
        reasons.append(f"One of a new member\u2019s first {wanted} post{'s' if wanted != 1 else ''}")
    if screening.crisis and rules.settings.safeguarding_hold:
        reasons.append("Safeguarding phrase: held for review (TICA_SAFEGUARDING_HOLD)")
    return PostReview(
        pending=bool(reasons),
        reasons=tuple(reasons),
        crisis=tuple(screening.crisis),
        flagged=tuple(screening.flagged),
        censored=screening.censored,
    )


async def review_edit(conn: asyncpg.Connection, *, old_text: str, new_text: str) -> PostReview:
    """Screen an author's edit: blocked words refused; new crisis phrases or flag words raise a review."""
    screening = await screen(conn, new_text)
    check_not_blocked(screening)
    before = await screen(conn, old_text)
    return PostReview(
        crisis=tuple(p for p in screening.crisis if p not in before.crisis),
        flagged=tuple(w for w in screening.flagged if w not in before.flagged),
        censored=screening.censored,
    )


# --- asking moderators to look -----------------------------------------------------------------------


async def open_reviews_for_new_post(
    conn: asyncpg.Connection, post: asyncpg.Record, review: PostReview, *, category_id: int
) -> None:
    """The reviewables a new (or edited) post needs: its place in the queue, safeguarding, watched-word flags."""
    crisis_reasons = [f"Safeguarding phrase \u201c{p}\u201d" for p in review.crisis]
    flag_reasons = [f"Watched word \u201c{w}\u201d" for w in review.flagged]
    if post["status"] == "pending" and (review.reasons or review.crisis):
        # One item holds a waiting post: safeguarding (first in the queue) when a phrase matched.
        kind = "safeguarding" if review.crisis else "queued_post"
        priority = reviews.PRIORITY_SAFEGUARDING if review.crisis else reviews.PRIORITY_NORMAL
        row = await reviews.open_review(
            conn, kind=kind, writing=post, reasons=[*review.reasons, *crisis_reasons, *flag_reasons], priority=priority
        )
        if review.crisis:
            await _automatic_flag(conn, post, row, "safeguarding", category_id)
        return
    if review.crisis:
        row = await reviews.open_review(
            conn, kind="safeguarding", writing=post, reasons=crisis_reasons, priority=reviews.PRIORITY_SAFEGUARDING
        )
        await _automatic_flag(conn, post, row, "safeguarding", category_id)
    if review.flagged:
        row = await reviews.open_review(conn, kind="flagged_post", writing=post, reasons=flag_reasons)
        await _automatic_flag(conn, post, row, "inappropriate", category_id)


async def _automatic_flag(
    conn: asyncpg.Connection, post: asyncpg.Record, review: asyncpg.Record, reason: str, category_id: int
) -> None:
    await write_event(
        conn,
        PostFlagged(
            post_id=post["id"],
            topic_id=post["topic_id"],
            category_id=category_id,
            author_id=post["author_id"],
            reason=reason,
            review_id=review["id"],
            review_kind=review["kind"],
            score=review["score"],
            priority=review["priority"],
        ),
        actor_id=None,
    )
