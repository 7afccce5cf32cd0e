"""The topic page's posts: how each shows to a viewer (PostFacts, post_view, built on access.py's
predicates) and the cache of their rendered markup (post_fragment); also the small helpers every
page here uses to show people (person, author_of) and views to templates (shown).
"""

from __future__ import annotations

import operator
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, NamedTuple
from urllib.parse import quote

import asyncpg
import jinja2
from markupsafe import Markup
from starlette.requests import Request

from services.forum import access
from services.forum.accounts.accounts import avatar_index, initials
from services.forum.topics import posts
from services.forum.topics.topics import ANONYMOUS_NAME
from services.forum.writings.reactions import REACTION_EMOJI_HTML, REACTION_KINDS, REACTION_LABELS
from shared.pages import ago, when
from shared.sessions import Session

ANONYMOUS_PERSON: dict[str, Any] = {
    "id": None,
    "username": None,
    "display_name": ANONYMOUS_NAME,
    "url": None,
    "avatar": {"initials": "AM"},
    "avatar_class": "tica-avatar--6",
}


# --- small helpers ----------------------------------------------------------------------------


def person(user_id: int, username: str, display_name: str) -> dict[str, Any]:
    """An author as templates show them, with the initials avatar accounts use too."""
    return {
        "id": user_id,
        "username": username,
        "display_name": display_name,
        "url": f"/u/{quote(username)}",
        "avatar": {"initials": initials(display_name, username)},
        "avatar_class": f"tica-avatar--{avatar_index(user_id)}",
    }


def author_of(row: asyncpg.Record, who: Session | None) -> dict[str, Any]:
    """A post's or topic's author as pages show them: "Anonymous member" for a pseudonymous one."""
    if row["anonymous"]:
        return {**ANONYMOUS_PERSON, "you": who is not None and who.user_id == row["author_id"]}
    return person(row["author_id"], row["username"], row["display_name"])


@dataclass(frozen=True)
class Viewing:
    """The viewer's choices that change how each post on a page is shown (what they did about each
    post, its flags, appeals and reactions, comes on the post rows: posts.VIEWER_POST_COLUMNS)."""

    levels: dict[int, str] = field(default_factory=dict)  # members they mute or ignore
    show_notes: bool = False  # content notes open rather than folded
    staff: bool = False


def viewing(who: Session | None, topic: asyncpg.Record) -> Viewing:
    """The viewer's choices, from what the topic row carries (topics.VIEWER_COLUMNS): no query of its own."""
    if who is None:
        return Viewing()
    return Viewing(
        levels=dict(zip(topic["viewer_muted"], topic["viewer_mute_levels"], strict=True)),
        show_notes=(topic["viewer_content_notes"] or "collapse") == "show",
        staff=access.is_staff(who),
    )


class Shown(SimpleNamespace):
    """A view's values as attributes: Jinja looks `post.number` up as an attribute first, and a
    dict's failed attribute lookup (then an item lookup) was a large share of the topic page's time."""


def shown(value: Any) -> Any:
    """Dicts (also inside lists) as Shown objects, for templates that read many values from many items."""
    if type(value) is dict:
        return Shown(**{key: shown(item) for key, item in value.items()})
    if type(value) is list:
        return [shown(item) for item in value]
    return value


class PostFacts(NamedTuple):
    """Everything about the viewer that changes how one post shows: their role towards it, what they
    chose (mutes, content notes) and did (flags, appeals, reactions). With the post's own fields and the
    topic, it is all a post's markup depends on, so it keys the fragment cache (no viewer's state can
    reach another viewer whose facts differ)."""

    signed_in: bool
    own: bool
    staff: bool
    hidden: bool  # its text withheld from this viewer
    can_edit: bool
    moderation_reason: str | None  # shown to the author and staff only
    ignored: bool
    notes_open: bool
    flagged: bool
    appealed: bool
    given: tuple[str, ...]  # the kinds of reaction they gave, in order
    can_flag: bool  # access.may_flag, and not flagged already
    can_appeal: bool  # access.may_appeal, and not appealed already
    can_hide: bool
    can_react: bool


class Rights(NamedTuple):
    """What access.py answers about one writing for one viewer."""

    own: bool
    hidden: bool
    can_edit: bool
    may_flag: bool
    may_appeal: bool
    can_hide: bool
    can_react: bool
    sees_reason: bool  # the moderation reason (posts.moderation_note's rule)


def rights(who: Session | None, status: str, author_id: int) -> Rights:
    return Rights(
        who is not None and who.user_id == author_id,
        access.text_withheld(who, status, author_id),
        access.may_edit(who, status, author_id),
        access.may_flag(who, status, author_id),
        access.may_appeal(who, status, author_id),
        access.may_hide(who, status),
        access.may_react(who, status),
        posts.shows_moderation_reason(who, status, author_id),
    )


def post_facts(
    row: asyncpg.Record, who: Session | None, seen: Viewing, asked: dict[tuple[str, int], Rights]
) -> PostFacts:
    """The viewer-specific inputs of one post's markup. `asked` keeps access.py's answers for the
    page, so it is asked once per status and author rather than once per post."""
    status, author_id = row["status"], row["author_id"]
    known = asked.get((status, author_id))
    if known is None:
        known = asked[status, author_id] = rights(who, status, author_id)
    own = known.own
    return PostFacts(
        who is not None,
        own,
        seen.staff,
        known.hidden,
        known.can_edit,
        row["moderation_reason"] if known.sees_reason else None,
        # A pseudonymous post is never folded for its author being ignored: that would say who wrote it.
        not own and not row["anonymous"] and seen.levels.get(author_id) == "ignored",
        seen.show_notes,
        row["flagged"],
        row["appealed"],
        tuple(row["given"]),  # in order of kind (the statement sorts them)
        known.may_flag and not row["flagged"],
        known.may_appeal and not row["appealed"],
        known.can_hide,
        known.can_react,
    )


# The only post fields the topic page's post markup reads (post_view gets these and nothing else).
POST_FIELDS = (
    "id",
    "post_number",
    "author_id",
    "username",
    "display_name",
    "anonymous",
    "status",
    "revision",
    "cooked",
    "content_note",
    "created_at",
    "reactions",
    "reply_to_post_id",
    "reply_to_post_number",
    "reply_to_username",
    "reply_to_anonymous",
)
_POST_VALUES = operator.itemgetter(*POST_FIELDS)
_REACTIONS_AT = POST_FIELDS.index("reactions")


def post_view(
    post: dict[str, Any],
    facts: PostFacts,
    topic_url: str,
    created: dict[str, str],
    badges: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A post (its POST_FIELDS) as the topic page shows it to a viewer with these facts, and the
    badges its author chose to show (never beside an anonymous post); withheld text never reaches
    the template."""
    hidden, own, signed_in = facts.hidden, facts.own, facts.signed_in
    status, anonymous = post["status"], post["anonymous"]
    counts = post["reactions"] if status != "deleted" else {}
    reactions = [
        {
            "kind": kind,
            "label": REACTION_LABELS[kind],
            "emoji": REACTION_EMOJI_HTML[kind],
            "count": int(counts.get(kind, 0)),
            "given": kind in facts.given,
        }
        for kind in REACTION_KINDS
    ]
    if anonymous:
        author = {**ANONYMOUS_PERSON, "you": own}
    else:
        author = {**person(post["author_id"], post["username"], post["display_name"]), "badges": list(badges)}
    return {
        "own": own,
        "anonymous": anonymous,
        "moderation_reason": facts.moderation_reason,
        "ignored": facts.ignored,
        "notes_open": facts.notes_open,
        "can_flag": facts.can_flag,
        "flagged": facts.flagged,
        "can_appeal": facts.can_appeal,
        "appealed": facts.appealed,
        "can_hide": facts.can_hide,
        "can_restore": facts.staff and status == "hidden",
        "can_reveal": facts.staff and anonymous,
        "can_mute": signed_in and not own and not anonymous and status != "deleted",
        "mute_url": None if anonymous else f"/u/{quote(post['username'])}/mute",
        "id": post["id"],
        "number": post["post_number"],
        "author": author,
        "status": status,
        "hidden": hidden,
        "cooked": Markup("") if hidden else Markup(post["cooked"]),  # noqa: S704 - sanitised by shared.markdown
        "content_note": None if hidden else post["content_note"],
        "created": created,
        "edited": post["revision"] > 1 and status != "deleted",
        "can_edit": facts.can_edit,
        "can_delete": facts.can_edit and post["post_number"] > 1,
        "reply_to": (
            {
                "number": post["reply_to_post_number"],
                "username": ANONYMOUS_NAME if post["reply_to_anonymous"] else post["reply_to_username"],
                "url": f"/p/{post['reply_to_post_id']}",
            }
            if post["reply_to_post_id"]
            else None
        ),
        "reactions": reactions,
        "counted": [r for r in reactions if r["count"]],  # what readers who cannot react see
        "can_react": facts.can_react,
        "reply_url": f"{topic_url}?reply_to={post['id']}#reply",
        "quote_url": f"{topic_url}?quote={post['id']}#reply",
    }


# --- the post fragment cache -------------------------------------------------------------------

# Stands for the viewer's CSRF token inside cached markup (forms in a post carry it); random per process,
# so no post text can contain it. The page puts the viewer's own token in its place.
CSRF_SLOT = f"tica-csrf-slot-{secrets.token_hex(16)}"
FRAGMENTS_MAX = 4096  # posts' markup per worker (a few KB each)


class FragmentCache:
    """Rendered post markup, least recently used first out. A fragment is a pure function of its key
    (the post's fields, the viewer's PostFacts, the topic, the time shown), so an edit, a reaction or a
    moderation change makes a new key on the next request in every worker: nothing to invalidate."""

    def __init__(self, size: int = FRAGMENTS_MAX) -> None:
        self.size = size
        self.items: OrderedDict[tuple[Any, ...], list[str]] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> list[str] | None:
        """The markup for this key, if rendered before."""
        found = self.items.get(key)
        if found is not None:
            self.items.move_to_end(key)
        return found

    def put(self, key: tuple[Any, ...], markup: list[str]) -> None:
        """Keep markup for this key, forgetting the least recently used past the size."""
        self.items[key] = markup
        if len(self.items) > self.size:
            self.items.popitem(last=False)


def fragment_cache(request: Request) -> FragmentCache:
    """This app's (this worker's) fragment cache."""
    state = request.app.state
    cache: FragmentCache | None = getattr(state, "post_fragments", None)
    if cache is None:
        cache = state.post_fragments = FragmentCache()
    return cache


def post_fragment(
    request: Request,
    row: asyncpg.Record,
    facts: PostFacts,
    topic: dict[str, Any],
    replies_open: bool,
    csrf_html: str,
    badges: tuple[str, ...] = (),
) -> str:
    """One post's markup (topics/_post.html, rendered with autoescape) for a viewer with these facts,
    from the cache when it can; `csrf_html` is the viewer's CSRF token, escaped; `badges` the names
    of the badges its author chose to show (directory.shown_badges)."""
    values = _POST_VALUES(row)  # POST_FIELDS in order; reactions (a dict) keyed as sorted pairs
    reactions = values[_REACTIONS_AT]
    created_text = ago(row["created_at"])
    key = (
        values[:_REACTIONS_AT],
        tuple(sorted(reactions.items())),
        values[_REACTIONS_AT + 1 :],
        facts,
        topic["id"],
        topic["url"],
        replies_open,
        created_text,
        badges,
    )
    cache = fragment_cache(request)
    parts = cache.get(key)  # the markup split where the viewer's CSRF token goes
    if parts is None:
        post = dict(zip(POST_FIELDS, values, strict=True))
        env: jinja2.Environment = request.app.state.templates
        parts = (
            env.get_template("topics/_post.html")
            .render(
                post=shown(post_view(post, facts, topic["url"], when(post["created_at"], created_text), badges)),
                topic=Shown(id=topic["id"]),
                cannot_reply=not replies_open,
                csrf_token=CSRF_SLOT,
            )
            .split(CSRF_SLOT)
        )
        cache.put(key, parts)
    return csrf_html.join(parts)
