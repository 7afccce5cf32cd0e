"""Searching the index: the query language, turning it into a tsquery safely, finding and
ranking matches fast at a million posts, and snippets with highlighted words.

Query language: plain words, "quoted phrases", -exclusions, `or` between words (it binds
tighter than the implicit "and": `grief or loss support` is (grief or loss) and support),
and the filters @username, #category-slug, in:title, kind:post|topic|document_comment|message,
before:YYYY-MM-DD and after:YYYY-MM-DD (UTC dates; before is exclusive, after inclusive).
Nothing a person types is ever parsed as tsquery syntax: each word or phrase goes to
plainto_tsquery / phraseto_tsquery as a parameter and the pieces are combined with
&&, || and !!. Anything that does not parse as intended degrades to plain words.

Speed: ranking every match of a common word (say 150,000 of a million posts) is the
trap. Instead, candidates are the newest CANDIDATES matches, found through the GIN index
alone: each document carries facet lexemes for its day at eight granularities
(migrations/0002), so "matches in the last N days" is an index condition. The search
widens the window until it holds enough matches, then ranks only those candidates by
relevance (ts_rank: title weight A, body weight D) with a recency boost, and pages
through them. For a rare word the window soon covers everything: the result is exact.

Private messages are the one exception to "staff read everything": a message is found only by
the members of its conversation now (search.conversations), and by staff only when the
moderators' inbox is in it (its audience names `staff`). A member who left finds nothing said
in it any more, as they can follow nothing new in it: the safest and simplest rule.
"""

from __future__ import annotations

import html
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from shared import audience
from shared.audience import Viewer

PER_PAGE = 20
CANDIDATES = 200  # ranked per search: 10 pages
MAX_QUERY_CHARS = 500
MAX_TERMS = 24
MAX_TERM_CHARS = 100
SEARCH_BUDGET_MS = 80  # a phrase search stops widening after this (see find_candidates)
HALF_LIFE_DAYS = 180  # a match this much older needs twice the text rank to rank level
TAU_S = HALF_LIFE_DAYS * 86400 / math.log(2)
DAY_LEVELS = 8  # facet buckets of 4^0 .. 4^7 days
KIND_ALIASES = {
    "post": "post",
    "posts": "post",
    "reply": "post",
    "replies": "post",
    "topic": "topic",
    "topics": "topic",
    "document_comment": "document_comment",
    "comment": "document_comment",
    "comments": "document_comment",
    "message": "message",
    "messages": "message",
}
KINDS = ("topic", "post", "document_comment", "message")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_USERNAME = re.compile(r"[A-Za-z0-9_-]{1,40}")
_SLUG = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


# --- the query language ------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """A word (or several words without quotes) or a "quoted phrase"."""

    text: str
    phrase: bool = False


@dataclass
class ParsedQuery:
    """What a search asks for: groups of terms (each group: any of its terms), exclusions, filters."""

    groups: list[list[Term]] = field(default_factory=list)
    excluded: list[Term] = field(default_factory=list)
    author: str | None = None
    category: str | None = None
    kind: str | None = None
    in_title: bool = False
    before: date | None = None
    after: date | None = None

    @property
    def has_text(self) -> bool:
        return bool(self.groups or self.excluded)

    @property
    def has_filters(self) -> bool:
        return any((self.author, self.category, self.kind, self.in_title, self.before, self.after))

    @property
    def is_empty(self) -> bool:
        return not self.has_text and not self.has_filters

    def words(self) -> str:
        """Every term as plain words: the fallback when the query's shape means nothing."""
        return " ".join(t.text for group in self.groups for t in group) + " " + " ".join(t.text for t in self.excluded)

    def text_part(self) -> str:
        """The words, phrases, exclusions and `or`s, written back as query text (no filters)."""
        parts = [" or ".join(_quote(t) for t in group) for group in self.groups]
        parts += ["-" + _quote(t) for t in self.excluded]
        return " ".join(parts)


def _quote(term: Term) -> str:
    return f'"{term.text}"' if term.phrase else term.text


def clean_query(raw: str) -> str:
    """The query without control characters (NUL included), bounded in length."""
    return _CONTROL.sub(" ", raw or "")[:MAX_QUERY_CHARS].strip()


def _tokens(text: str) -> list[tuple[bool, bool, str]]:
    """(negated, quoted, text) for each token; an unclosed quote runs to the end."""
    tokens = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        negated = text[i] == "-" and i + 1 < n and not text[i + 1].isspace()
        if negated:
            i += 1
        if text[i] == '"':
            end = text.find('"', i + 1)
            end = n if end < 0 else end
            tokens.append((negated, True, text[i + 1 : end]))
            i = end + 1
        else:
            end = i
            while end < n and not text[end].isspace():
                end += 1
            tokens.append((negated, False, text[i:end]))
            i = end
    return tokens


def parse_date(value: str) -> date | None:
    if not _DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _apply_filter(parsed: ParsedQuery, token: str) -> bool:
    """Set the filter a token names; False when it is not a (valid) filter."""
    lower = token.lower()
    if token.startswith("@") and _USERNAME.fullmatch(token[1:]):
        parsed.author = token[1:]
    elif token.startswith("#") and _SLUG.fullmatch(token[1:]) and len(token) <= 61:
        parsed.category = token[1:].lower()
    elif lower in ("in:title", "in:titles"):
        parsed.in_title = True
    elif lower.startswith("kind:") and lower[5:] in KIND_ALIASES:
        parsed.kind = KIND_ALIASES[lower[5:]]
    elif lower.startswith(("before:", "after:")):
        name, _, value = lower.partition(":")
        day = parse_date(value)
        if day is None:
            return False
        setattr(parsed, name, day)
    else:
        return False
    return True


def parse(raw: str) -> ParsedQuery:
    """Parse the query language; never fails: what is not understood is searched as words."""
    parsed = ParsedQuery()
    pending_or = False
    for negated, quoted, text in _tokens(clean_query(raw)):
        text = text.strip()[:MAX_TERM_CHARS]
        if not text:
            continue
        if not quoted and not negated and text.lower() == "or":
            pending_or = bool(parsed.groups)
            continue
        if not quoted and not negated and _apply_filter(parsed, text):
            pending_or = False
            continue
        if len(parsed.groups) + len(parsed.excluded) >= MAX_TERMS:
            break
        term = Term(text, phrase=quoted)
        if negated:
            parsed.excluded.append(term)
        elif pending_or:
            parsed.groups[-1].append(term)
        else:
            parsed.groups.append([term])
        pending_or = False
    return parsed


# --- from query to tsquery -------------------------------------------------------------


def tsquery_sql(groups: list[list[Term]], excluded: list[Term], first_param: int = 1) -> tuple[str, list[str]]:
    """A SQL expression building the tsquery from parameters, and those parameters."""
    params: list[str] = []

    def piece(term: Term) -> str:
        params.append(term.text)
        function = "phraseto_tsquery" if term.phrase else "plainto_tsquery"
        return f"{function}('english', ${first_param + len(params) - 1}::text)"

    parts = ["(" + " || ".join(piece(t) for t in group) + ")" for group in groups]
    parts += [f"(!! {piece(t)})" for t in excluded]
    return (" && ".join(parts) if parts else "''::tsquery"), params


PREPARE_SQL = """
SELECT q::text AS query, querytree(q) AS tree, (now() AT TIME ZONE 'UTC')::date AS today,
       (SELECT user_id FROM search.users WHERE lower(username) = lower($1::text) ORDER BY user_id DESC LIMIT 1)
           AS author_id,
       (SELECT category_id FROM search.categories WHERE lower(slug) = lower($2::text)
        ORDER BY category_id DESC LIMIT 1) AS category_id,
       (SELECT (histogram_bounds::text::timestamptz[])[1] FROM pg_stats
        WHERE schemaname = 'search' AND tablename = 'documents' AND attname = 'created_at') AS oldest
FROM (SELECT {expr} AS q) AS built
"""


@dataclass(frozen=True)
class Prepared:
    """A parsed query made ready for the index: its tsquery text and resolved filters."""

    tsquery: str  # '' when the search has no words (filters only)
    today: date  # the database's date (UTC): the one that dates the posts
    oldest: datetime | None  # about when the oldest document was written (planner statistics)
    author_id: int | None
    category_id: int | None
    unknown_author: bool
    unknown_category: bool


async def prepare(conn: asyncpg.Connection, parsed: ParsedQuery) -> Prepared:
    """Build the tsquery in PostgreSQL (stemming, stop words) and resolve @username and #category."""
    expr, params = tsquery_sql(parsed.groups, parsed.excluded, first_param=3)
    row = await conn.fetchrow(PREPARE_SQL.format(expr=expr), parsed.author, parsed.category, *params)
    assert row is not None
    tsquery = row["query"]
    if tsquery and row["tree"] == "T":
        # Only exclusions (e.g. "-grief"): searching everything but a word means nothing, so search the words.
        expr, params = tsquery_sql([[Term(parsed.words())]], [], first_param=3)
        row = await conn.fetchrow(PREPARE_SQL.format(expr=expr), parsed.author, parsed.category, *params)
        assert row is not None
        tsquery = row["query"]
    return Prepared(
        tsquery,
        row["today"],
        row["oldest"],
        row["author_id"],
        row["category_id"],
        unknown_author=parsed.author is not None and row["author_id"] is None,
        unknown_category=parsed.category is not None and row["category_id"] is None,
    )


def lexeme(name: str, value: object) -> str:
    """A facet lexeme as tsquery text (see migrations/0002: it contains a space)."""
    text = f"@ {name}:{value}"
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def facets(parsed: ParsedQuery, prepared: Prepared) -> list[str]:
    """The filters as tsquery text over facet lexemes, to be AND-ed.

    Only the filters asked for: a facet every document has (such as "any kind") would
    cost the index a walk through a posting list of every document.
    """
    parts = []
    kind = "topic" if parsed.in_title else parsed.kind
    if kind:
        parts.append(lexeme("kind", kind))
    if prepared.author_id is not None:
        parts.append(lexeme("author", prepared.author_id))
    if prepared.category_id is not None:
        parts.append(lexeme("category", prepared.category_id))
    return parts


def day_cover(first_day: int, last_day: int) -> str:
    """Days first_day..last_day (days since 1970-01-01, UTC) as the fewest aligned buckets, OR-ed."""
    buckets = []
    day = first_day
    while day <= last_day:
        level = 0
        while level + 1 < DAY_LEVELS and day % (4 ** (level + 1)) == 0 and day + 4 ** (level + 1) - 1 <= last_day:
            level += 1
        buckets.append(lexeme(f"days{level}", day >> (2 * level)))
        day += 4**level
    return " | ".join(buckets)


def day_number(moment: date) -> int:
    return (moment - date(1970, 1, 1)).days


# --- finding and ranking candidates -------------------------------------------------------

CANDIDATES_SQL = """
SELECT kind, id, created_at, {rank} AS rank
FROM (SELECT kind, id, created_at, tsv FROM search.documents
      WHERE status = 'visible' AND tsv @@ ($1::tsquery && $2::tsquery)
        AND {may_read}
        AND ($4::timestamptz IS NULL OR created_at < $4::timestamptz)
        AND ($5::timestamptz IS NULL OR created_at >= $5::timestamptz)
      ORDER BY created_at DESC, kind, id DESC
      LIMIT $6) AS newest
"""
# Who may read a document: a message only through the viewer's own conversations (`private`, and
# `staff` for staff: messages with the moderators' inbox), everything else by its audience (NULL:
# staff, who read everything else).
MAY_READ_SQL = (
    "(CASE WHEN {d}kind = 'message' THEN {d}audience && {private}::text[]"
    " ELSE {audiences}::text[] IS NULL OR {d}audience && {audiences}::text[] END)"
)
CANDIDATES_SQL = CANDIDATES_SQL.replace("{may_read}", MAY_READ_SQL.format(d="", private="$7", audiences="$3"))
RANK_SQL = "ts_rank('{0.1, 0.2, 0.4, 1.0}', tsv, $1::tsquery, 1)"

# Only the GIN index can answer these queries quickly: never let a misestimate pick a scan.
SEARCH_SETTINGS_SQL = (
    "SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off; SET LOCAL jit = off; "
    "SET LOCAL statement_timeout = '10s'; SET LOCAL client_min_messages = warning"
)


@dataclass(frozen=True)
class Candidate:
    kind: str
    id: int
    created_at: datetime
    score: float


def windows(parsed: ParsedQuery, today: date) -> tuple[int, int]:
    """(first, last) day a search may look at, after the date filters (days since 1970-01-01)."""
    last = day_number(today) + 1  # tomorrow too: clocks differ a little
    if parsed.before is not None:
        last = min(last, day_number(parsed.before) - 1)
    first = max(day_number(parsed.after), 0) if parsed.after is not None else 0
    return first, last


async def find_candidates(
    conn: asyncpg.Connection,
    parsed: ParsedQuery,
    prepared: Prepared,
    audiences: list[str] | None,
    *,
    today: date,
    limit: int,
    private: Sequence[str] = (),
) -> tuple[list[Candidate], bool]:
    """The newest `limit` matches, ranked; and whether there may be more matches than that.

    Looks at the last 2 days first, then widens the window to where about 1.5 x limit
    matches should be (by 2x to 16x) until it holds more than `limit` or covers every
    allowed day. When the matches so far say there are few in all (a rare word), it goes
    straight to every day: that costs a row read per match, and there are few. With a
    `before:` the window stays an index condition to the end, so a date long ago never
    turns into reading every match of a common word.

    Phrases are the exception: the index finds documents with all the words, and each
    must be read to check the words are side by side, so a phrase of common words costs
    a row read per document with the words, not per match. Its windows grow by 4x at
    most, and when the next step would take the search past SEARCH_BUDGET_MS it settles
    for the matches found so far: the newest ones.
    """
    started = time.perf_counter()
    sql = CANDIDATES_SQL.format(rank=RANK_SQL if prepared.tsquery else "0::real")
    filters = facets(parsed, prepared)
    before, after = _midnight(parsed.before), _midnight(parsed.after)
    first_allowed, last_day = windows(parsed, today)
    if last_day < first_allowed:
        return [], False
    oldest = day_number(prepared.oldest.date()) if prepared.oldest else last_day - 3650
    history_days = last_day - max(first_allowed, oldest) + 1
    phrases = any(term.phrase for group in parsed.groups for term in group)
    span = 2
    while True:
        first_day = max(last_day - span + 1, first_allowed)
        every_day = first_day == first_allowed
        parts = list(filters)
        if not every_day or parsed.before is not None or not (filters or prepared.tsquery):
            parts.append(f"({day_cover(first_day, last_day)})")
        step_started = time.perf_counter()
        rows = await conn.fetch(
            sql, prepared.tsquery, " & ".join(parts), audiences, before, after, limit + 1, list(private)
        )
        if len(rows) > limit or every_day:
            break
        growth = min(4.0 if phrases else 16.0, max(2.0, 1.5 * limit / max(len(rows), 1)))
        expected = max(len(rows), 1) * history_days / (last_day - first_day + 1)
        if phrases:
            # The next step costs about `growth` times this one: stop before it breaks the budget.
            now = time.perf_counter()
            if (now - started + (now - step_started) * growth) * 1000 > SEARCH_BUDGET_MS:
                return rank([dict(r) for r in rows]), True
            span = int(span * growth)
        elif expected <= 3 * limit:
            span = last_day - first_allowed + 1  # few in all: read them all
        else:
            span = int(span * growth)
    more = len(rows) > limit
    return rank([dict(r) for r in rows[:limit]]), more


def rank(rows: list[dict[str, Any]]) -> list[Candidate]:
    """Order by relevance with a recency boost; ties broken by time, then kind and id (stable pages).

    score = ln(text rank) + age boost, where the boost grows by ln 2 every HALF_LIFE_DAYS:
    the order of two documents never changes as time passes, so page 2 follows page 1.
    """
    scored = [
        Candidate(
            r["kind"],
            r["id"],
            r["created_at"],
            math.log(max(float(r["rank"]), 1e-6)) + r["created_at"].timestamp() / TAU_S,
        )
        for r in rows
    ]
    return sorted(scored, key=lambda c: (-c.score, -c.created_at.timestamp(), c.kind, -c.id))


def _midnight(day: date | None) -> datetime | None:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None


# --- the page of results ---------------------------------------------------------------------

# \x02 and \x03 never occur in indexed text (store.clean_text): they mark the matched words
# until everything else has been escaped, and only then become <mark>. As for the vector
# (migrations/0002), < and > become look-alikes so the parser never drops text as a "tag".
HEADLINE_OPTIONS = (
    'StartSel=\x02, StopSel=\x03, MaxWords=35, MinWords=15, ShortWord=3, MaxFragments=2, FragmentDelimiter=" … "'
)
SNIPPET_SOURCE_CHARS = 20_000
EXCERPT_CHARS = 240

PAGE_SQL = """
SELECT d.kind, d.id, d.topic_id, d.post_number, d.document_id, d.title, d.slug, d.content_note, d.topic_kind,
       d.created_at, d.author_id, d.anonymous, d.conversation_id, d.from_moderators, u.username, u.display_name,
       d.category_id,
       c.slug AS category_slug, c.name AS category_name,
       CASE WHEN $4 THEN ts_headline('english',
                                     translate(CASE WHEN d.kind = 'topic' THEN d.title ELSE left(d.body, $6) END,
                                               '<>', '\u2039\u203a'),
                                     $3::tsquery, $5)
            ELSE left(CASE WHEN d.kind = 'topic' THEN d.title ELSE d.body END, $7) END AS snippet
FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS page(kind, id, n)
JOIN search.documents d ON d.kind = page.kind AND d.id = page.id
LEFT JOIN search.users u ON u.user_id = d.author_id
LEFT JOIN search.categories c ON c.category_id = d.category_id
WHERE d.status = 'visible' AND {may_read}
ORDER BY page.n
""".replace("{may_read}", MAY_READ_SQL.format(d="d.", private="$9", audiences="$8"))


def highlight(raw: str) -> str:
    """A headline as HTML: everything escaped, then the marked words wrapped in <mark>."""
    escaped = html.escape(raw, quote=True)
    marked = re.sub("\x02([^\x02\x03]*)\x03", r"<mark>\1</mark>", escaped)
    return marked.replace("\x02", "").replace("\x03", "")


def excerpt(text: str, chars: int = EXCERPT_CHARS) -> str:
    """The start of a text as escaped HTML, cut at a word."""
    text = " ".join(text.split())
    if len(text) > chars:
        text = text[:chars].rsplit(" ", 1)[0] + " …"
    return html.escape(text, quote=True)


# How the forum shows the author of a pseudonymous topic or post, to everyone
# (ANONYMOUS_AUTHOR in services/forum/topics/topics.py).
ANONYMOUS_AUTHOR = {"id": None, "username": "anonymous", "display_name": "Anonymous member"}
# A message from the moderators' shared inbox: no one moderator's name (as the forum shows it).
MODERATORS_AUTHOR = {"id": None, "username": "moderators", "display_name": "The moderators"}


def url_for(
    kind: str, id: int, *, slug: str = "", document_id: int | None = None, conversation_id: int | None = None
) -> str:
    """Where a result lives on the forum's pages (a comment or message: its anchor on its page)."""
    if kind == "message":
        return f"/messages/{conversation_id}#message-{id}"
    if kind == "topic":
        return f"/t/{slug or 'topic'}/{id}"
    if kind == "post":
        return f"/p/{id}"
    return f"/library/documents/{document_id}#comment-{id}"


def item_out(row: asyncpg.Record, *, highlighted: bool) -> dict[str, Any]:
    """One result in the API's shape."""
    author = None
    if row["from_moderators"]:
        author = dict(MODERATORS_AUTHOR)
    elif row["anonymous"]:
        author = dict(ANONYMOUS_AUTHOR)
    elif row["author_id"] is not None and row["username"] is not None:
        author = {"id": row["author_id"], "username": row["username"], "display_name": row["display_name"]}
    category = None
    if row["category_slug"] is not None:
        category = {"id": row["category_id"], "slug": row["category_slug"], "name": row["category_name"]}
    snippet = row["snippet"] or ""
    return {
        "kind": row["kind"],
        "id": row["id"],
        "topic_id": row["topic_id"],
        "post_number": row["post_number"],
        "document_id": row["document_id"],
        "conversation_id": row["conversation_id"],
        "title": row["title"],
        "snippet": highlight(snippet) if highlighted else excerpt(snippet),
        "author": author,
        "created_at": row["created_at"].isoformat(),
        "url": url_for(
            row["kind"],
            row["id"],
            slug=row["slug"],
            document_id=row["document_id"],
            conversation_id=row["conversation_id"],
        ),
        "category": category,
        "topic_kind": row["topic_kind"],
        "content_note": row["content_note"],
    }


@dataclass
class SearchResult:
    """One page of results, and what the page needs to explain them."""

    items: list[dict[str, Any]]
    page: int
    next_page: int | None
    took_ms: float
    more_than_shown: bool  # more matches than the CANDIDATES ranked
    prepared: Prepared | None


def audiences_for(viewer: Viewer | None) -> list[str] | None:
    """The audience filter for a viewer (None: a visitor): None for staff, who may read everything."""
    audiences = audience.for_viewer(viewer)
    return None if audience.is_staff_audience(audiences) else audiences


CONVERSATIONS_OF_SQL = "SELECT conversation_id FROM search.conversations WHERE member_ids @> ARRAY[$1::bigint]"


async def private_audiences(conn: asyncpg.Connection, viewer: Viewer | None) -> list[str]:
    """The audiences through which a viewer finds private messages: each conversation they are in
    now, and `staff` for staff (conversations with the moderators' inbox). A visitor: none."""
    if viewer is None:
        return []
    rows = await conn.fetch(CONVERSATIONS_OF_SQL, viewer.user_id)
    found = [audience.conversation(r["conversation_id"]) for r in rows]
    return [*found, audience.STAFF] if viewer.is_staff else found


async def search(
    pool: asyncpg.Pool,
    parsed: ParsedQuery,
    audiences: list[str] | None,
    *,
    page: int = 1,
    per_page: int = PER_PAGE,
    viewer: Viewer | None = None,
) -> SearchResult:
    """One page of what the viewer (audiences; None: staff) may see, best first; private messages
    only those of `viewer`'s own conversations (none without a viewer)."""
    started = time.perf_counter()
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        private = await private_audiences(conn, viewer)
        await conn.execute(SEARCH_SETTINGS_SQL)
        prepared = await prepare(conn, parsed)
        if (
            prepared.unknown_author
            or prepared.unknown_category
            or (parsed.has_text and not prepared.tsquery and not parsed.has_filters)
        ):
            return SearchResult([], page, None, _ms(started), False, prepared)
        candidates, more = await find_candidates(
            conn, parsed, prepared, audiences, today=prepared.today, limit=CANDIDATES, private=private
        )
        start = (page - 1) * per_page
        chosen = candidates[start : start + per_page]
        rows = (
            await conn.fetch(
                PAGE_SQL,
                [c.kind for c in chosen],
                [c.id for c in chosen],
                prepared.tsquery or "",
                bool(prepared.tsquery),
                HEADLINE_OPTIONS,
                SNIPPET_SOURCE_CHARS,
                EXCERPT_CHARS * 2,
                audiences,
                private,
            )
            if chosen
            else []
        )
    items = [item_out(row, highlighted=bool(prepared.tsquery)) for row in rows]
    next_page = page + 1 if len(candidates) > start + per_page else None
    return SearchResult(items, page, next_page, _ms(started), more, prepared)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
