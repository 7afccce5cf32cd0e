"""Content pipeline: a post's raw Markdown becomes sanitised `cooked` HTML, plain text, mentions and quotes.

This module owns the only path by which user-written text turns into HTML anywhere in tica:

1. markdown-it (CommonMark + tables, strikethrough, linkify, soft line breaks as <br>) with raw HTML
   disabled, plus two tica extensions: Discourse-style `[quote="name, post:1, topic:2"]` blocks and
   `@username` mentions. It decides what markup we *mean* to emit.
2. bleach re-parses that output against an explicit allow-list (tags, attributes, URL schemes). It
   guarantees nothing else survives, even if step 1 has a bug.

Callers store `Rendered.cooked` beside the raw text and never re-sanitise; templates output it as-is.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import signal
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser
from typing import Any

import bleach
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_block import StateBlock
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

__all__ = [
    "LINK_REL",
    "USERNAME_RE",
    "Rendered",
    "TooComplex",
    "close_render_pool",
    "excerpt",
    "plain_text",
    "render",
    "render_async",
]

_USERNAME = r"[A-Za-z0-9_-]{3,20}"
USERNAME_RE = re.compile(rf"^{_USERNAME}$")
LINK_REL = "nofollow ugc noopener"

KnownUsers = Callable[[Iterable[str]], set[str]]


@dataclass(frozen=True)
class Rendered:
    """The result of rendering one post."""

    cooked: str  # sanitised HTML
    text: str  # plain text (for search and digests): no markup, whitespace collapsed
    mentions: tuple[str, ...]  # lowercased usernames mentioned outside quotes, in order, unique
    quotes: tuple[int, ...]  # post ids quoted, unique, in order


# --- URLs ------------------------------------------------------------------------------------------

_LINK_SCHEMES = frozenset({"http", "https", "mailto"})
# Browsers ignore ASCII whitespace and control characters inside a scheme ("java\tscript:"), so we
# strip them before looking for one; the same normalisation bleach applies.
_URL_NOISE_RE = re.compile(r"[\x00-\x20\x7f-\xa0\s]+")
_SCHEME_RE = re.compile(r"^([a-z][a-z0-9+.-]*):")


def _scheme(url: str) -> str | None:
    """The URL's scheme, lowercased, as a browser would see it; None for a relative URL."""
    match = _SCHEME_RE.match(_URL_NOISE_RE.sub("", url).lower())
    return match.group(1) if match else None


def _is_link_url(url: str) -> bool:
    scheme = _scheme(url)
    return scheme is None or scheme in _LINK_SCHEMES


def _is_own_image_url(url: str) -> bool:
    """An image tica serves itself: a path on this site. A browser fetches an image without a click,
    so one from elsewhere would tell a third party who read the post, and when (a tracking pixel)."""
    path = _URL_NOISE_RE.sub("", url)
    # "//host/x" and "/\\host/x" are other origins, written without a scheme.
    return _scheme(url) is None and path.startswith("/") and not path.startswith(("//", "/\\"))


class _Markdown(MarkdownIt):
    """markdown-it with a link validator that allow-lists schemes instead of deny-listing a few."""

    def validateLink(self, url: str) -> bool:
        return _is_link_url(url)


# --- Per-render state ------------------------------------------------------------------------------

# A quote's closing tag is found by scanning forward; a post full of unclosed openers would make that
# quadratic, so each render gets a line budget, after which further [quote] lines stay literal text.
_QUOTE_SCAN_BUDGET = 50_000
# markdown-it stops parsing (dropping the rest of the post) at its nesting limit of 20; quotes deeper
# than this stay literal text instead, so nothing the author wrote disappears.
_MAX_QUOTE_DEPTH = 6


@dataclass
class _Context:
    """What the tica rules read and collect during one render; lives in markdown-it's env."""

    known_users: KnownUsers | None
    mentions: list[str] = field(default_factory=list)
    quotes: list[int] = field(default_factory=list)
    scan_budget: int = _QUOTE_SCAN_BUDGET
    quote_depth: int = 0


_ENV_KEY = "tica"


def _context(env: EnvType) -> _Context:
    ctx = env.get(_ENV_KEY)
    if not isinstance(ctx, _Context):  # markdown-it used directly, e.g. from a REPL
        ctx = env[_ENV_KEY] = _Context(known_users=None)
    return ctx


# --- [quote] blocks --------------------------------------------------------------------------------

_QUOTE_OPEN_RE = re.compile(r'\[quote(?:=(?:"([^"\n]*)"|([^"\]\n]*)))?\]', re.IGNORECASE)
_QUOTE_CLOSE = "[/quote]"
_ID_RE = re.compile(r"^[0-9]{1,9}$")


@dataclass(frozen=True)
class _Attribution:
    """Who is quoted: always a name; a post (and topic) only when the quote came from the reply button."""

    username: str
    post: int | None
    topic: int | None


def _parse_attribution(spec: str | None) -> _Attribution | None:
    """`alice, post:12, topic:3` -> _Attribution; None (a plain blockquote) when absent or malformed."""
    if not spec:
        return None
    username, *pairs = (part.strip() for part in spec.split(","))
    ids: dict[str, int] = {}
    for pair in pairs:
        key, sep, value = pair.partition(":")
        if not sep:
            return None
        key, value = key.strip().lower(), value.strip()
        if key in ("post", "topic"):
            if not _ID_RE.match(value):
                return None
            ids[key] = int(value)
        # Other keys (Discourse's `full:true`, ...) carry nothing we render.
    if not username or ("topic" in ids and "post" not in ids):
        return None
    return _Attribution(username=username, post=ids.get("post"), topic=ids.get("topic"))


def _line(state: StateBlock, line: int) -> str:
    return state.src[state.bMarks[line] + state.tShift[line] : state.eMarks[line]].rstrip()


def _find_quote_close(state: StateBlock, start_line: int, end_line: int) -> int | None:
    """The line closing the quote opened at start_line (nested quotes counted), or None."""
    ctx = _context(state.env)
    depth = 1
    for line in range(start_line + 1, end_line):
        ctx.scan_budget -= 1
        if ctx.scan_budget < 0:
            return None
        begin = state.bMarks[line] + state.tShift[line]
        if begin < state.eMarks[line] and state.sCount[line] < state.blkIndent:
            return None  # a less indented line ends the enclosing list item, and the quote with it
        if state.is_code_block(line) or state.src[begin : begin + 1] != "[":
            continue
        text = _line(state, line)
        if text.lower() == _QUOTE_CLOSE:
            depth -= 1
            if depth == 0:
                return line
        elif _QUOTE_OPEN_RE.fullmatch(text):
            depth += 1
    return None


def _quote_block(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    """Block rule: `[quote=...]` alone on a line, Markdown, then `[/quote]` alone on a line."""
    begin = state.bMarks[start_line] + state.tShift[start_line]
    if state.src[begin : begin + 1] != "[" or state.is_code_block(start_line):
        return False
    opener = _QUOTE_OPEN_RE.fullmatch(_line(state, start_line))
    if opener is None:
        return False
    ctx = _context(state.env)
    if ctx.quote_depth >= _MAX_QUOTE_DEPTH:
        return False
    if silent:
        return True
    close_line = _find_quote_close(state, start_line, end_line)
    if close_line is None:
        return False  # unclosed: the opener stays visible as text, which shows the author what went wrong

    attribution = _parse_attribution(opener.group(1) if opener.group(1) is not None else opener.group(2))
    old_parent, old_line_max = state.parentType, state.lineMax
    state.parentType = "blockquote"
    state.lineMax = close_line  # lazy paragraph continuation must not run past [/quote]

    token = state.push("tica_quote_open", "aside", 1)
    token.block, token.map, token.meta = True, [start_line, close_line], {"attribution": attribution}
    ctx.quote_depth += 1
    state.md.block.tokenize(state, start_line + 1, close_line)
    ctx.quote_depth -= 1
    token = state.push("tica_quote_close", "aside", -1)
    token.block, token.meta = True, {"attribution": attribution}

    state.parentType, state.lineMax = old_parent, old_line_max
    state.line = close_line + 1
    return True


def _render_quote_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    attribution: _Attribution | None = tokens[idx].meta["attribution"]
    if attribution is None:
        return "<blockquote>\n"
    said = f"{escape(attribution.username)} said:"
    if attribution.post is None:
        return f'<aside class="quote"><div class="title">{said}</div><blockquote>\n'
    data = f' data-post="{attribution.post}"'
    if attribution.topic is not None:
        data += f' data-topic="{attribution.topic}"'
    link = f'<a href="/p/{attribution.post}" rel="{LINK_REL}">{said}</a>'
    return f'<aside class="quote"{data}><div class="title">{link}</div><blockquote>\n'


def _render_quote_close(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return "</blockquote>\n" if tokens[idx].meta["attribution"] is None else "</blockquote></aside>\n"


# --- @mentions -------------------------------------------------------------------------------------

# Not after a word character or one of `@ . + / -`, so emails (a@b.org), paths (/@x) and fediverse
# handles (@a@b) are left alone; not followed by more name characters, so 21+ chars never half-match.
_MENTION_RE = re.compile(rf"(?<![\w@.+/-])@({_USERNAME})(?![\w@-])")


def _with_depth(tokens: Sequence[Token], opening: str, closing: str) -> Iterator[tuple[Token, int]]:
    """Each token other than the opening and closing ones, with how deep inside such a pair it sits."""
    depth = 0
    for token in tokens:
        if token.type == opening:
            depth += 1
        elif token.type == closing:
            depth -= 1
        else:
            yield token, depth


def _mentionable_text(children: Sequence[Token]) -> Iterator[Token]:
    """Text tokens outside links; code spans are `code_inline` tokens and never reach here."""
    for child, link_depth in _with_depth(children, "link_open", "link_close"):
        if child.type == "text" and link_depth == 0 and "@" in child.content:
            yield child


def _inline_tokens(tokens: Sequence[Token]) -> Iterator[tuple[Token, bool]]:
    """Each inline token with whether it sits inside a [quote] block."""
    for token, quote_depth in _with_depth(tokens, "tica_quote_open", "tica_quote_close"):
        if token.type == "inline" and token.children:
            yield token, quote_depth > 0


def _split_mentions(text: Token, linked: set[str]) -> list[Token]:
    """One text token as text and mention-link tokens."""
    out: list[Token] = []
    pos = 0
    for match in _MENTION_RE.finditer(text.content):
        name = match.group(1).lower()
        if name not in linked:
            continue
        if match.start() > pos:
            out.append(Token("text", "", 0, content=text.content[pos : match.start()]))
        out.append(Token("link_open", "a", 1, attrs={"href": f"/u/{name}", "class": "mention"}, meta={"mention": name}))
        out.append(Token("text", "", 0, content=match.group(0)))
        out.append(Token("link_close", "a", -1))
        pos = match.end()
    if not out:
        return [text]
    if pos < len(text.content):
        out.append(Token("text", "", 0, content=text.content[pos:]))
    return out


def _lookup(candidates: list[str], known_users: KnownUsers | None) -> set[str]:
    """The candidates that should become links; one lookup per post, not one per mention."""
    if known_users is None:
        return set(candidates)
    return {name.lower() for name in known_users(candidates)} & set(candidates)


def _link_mentions(state: StateCore) -> None:
    """Core rule: turn @name into a link to /u/name when the user exists (or always, with no lookup)."""
    ctx = _context(state.env)
    inlines = list(_inline_tokens(state.tokens))
    candidates: dict[str, None] = {}  # an ordered set
    for inline, _ in inlines:
        for text in _mentionable_text(inline.children or []):
            candidates.update((m.group(1).lower(), None) for m in _MENTION_RE.finditer(text.content))
    if not candidates:
        return
    linked = _lookup(list(candidates), ctx.known_users)
    if not linked:
        return

    for inline, in_quote in inlines:
        mentionable = {id(text) for text in _mentionable_text(inline.children or [])}
        children: list[Token] = []
        for child in inline.children or []:
            children.extend(_split_mentions(child, linked) if id(child) in mentionable else [child])
        inline.children = children
        if in_quote:
            continue  # quoted mentions are linked, but quoting a post must not notify the people it mentions
        for child in children:
            name = child.meta.get("mention") if child.type == "link_open" else None
            if name and name not in ctx.mentions:
                ctx.mentions.append(name)


# --- Final token touches ---------------------------------------------------------------------------

_ALIGN_RE = re.compile(r"^text-align:(left|right|center)$")


def _finish_tokens(state: StateCore) -> None:
    """Core rule: rel on every link, table alignment as a class (no inline styles), quoted post ids."""
    ctx = _context(state.env)
    for token in state.tokens:
        if token.type in ("th_open", "td_open"):
            style = token.attrs.pop("style", None)
            align = _ALIGN_RE.match(str(style)) if style is not None else None
            if align:
                token.attrSet("class", f"align-{align.group(1)}")
        elif token.type == "tica_quote_open":
            attribution: _Attribution | None = token.meta["attribution"]
            if attribution is not None and attribution.post is not None and attribution.post not in ctx.quotes:
                ctx.quotes.append(attribution.post)
        elif token.type == "inline" and token.children:
            token.children = _own_images_only(token.children)
            for child in token.children:
                if child.type == "link_open":
                    child.attrSet("rel", LINK_REL)


def _own_images_only(children: Sequence[Token]) -> list[Token]:
    """Inline tokens with each image from another origin turned into a link to it, named by its alt
    text (or its address): the reader sees what it is and may open it, nobody learns they read the post.
    Inside a link only the alt text stays, since links do not nest."""
    out: list[Token] = []
    link_depth = 0
    for child in children:
        link_depth += 1 if child.type == "link_open" else -1 if child.type == "link_close" else 0
        src = str(child.attrGet("src") or "") if child.type == "image" else ""
        if child.type != "image" or _is_own_image_url(src):
            out.append(child)
            continue
        alt = "".join(part.content for part in child.children or [] if part.type in ("text", "code_inline"))
        text = Token("text", "", 0, content=alt.strip() or src)
        if link_depth:
            out.append(text)
            continue
        attrs: dict[str, str | int | float] = {"href": src}
        title = child.attrGet("title")
        if title:
            attrs["title"] = title
        out += [Token("link_open", "a", 1, attrs=attrs), text, Token("link_close", "a", -1)]
    return out


def _build_markdown() -> MarkdownIt:
    md = _Markdown("commonmark", {"html": False, "linkify": True, "breaks": True, "typographer": False})
    md.enable(["table", "strikethrough", "linkify"])
    md.block.ruler.before(
        "fence", "tica_quote", _quote_block, {"alt": ["paragraph", "reference", "blockquote", "list"]}
    )
    # Before text_join a backslash-escaped @ is still a separate token, which lets authors opt out of a mention.
    md.core.ruler.before("text_join", "tica_mentions", _link_mentions)
    md.core.ruler.push("tica_finish", _finish_tokens)
    md.add_render_rule("tica_quote_open", _render_quote_open)
    md.add_render_rule("tica_quote_close", _render_quote_close)
    return md


_MD = _build_markdown()


# --- Sanitising ------------------------------------------------------------------------------------

_TAGS = frozenset(
    {
        "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "s", "del", "code", "pre",
        "blockquote", "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th", "td", "aside", "div",
    }
)  # fmt: skip


def _any(value: str) -> bool:
    return True


def _equals(expected: str) -> Callable[[str], bool]:
    return lambda value: value == expected


def _matches(pattern: str) -> Callable[[str], bool]:
    return lambda value: re.fullmatch(pattern, value) is not None


_ALIGN_CLASS = _matches(r"align-(left|right|center)")
# Every attribute we emit, per tag, with the values it may take. Anything else is dropped: no style,
# no on*, no id/name (which could clobber page globals), no target.
_ATTRIBUTES: Mapping[str, Mapping[str, Callable[[str], bool]]] = {
    "a": {"href": _is_link_url, "title": _any, "rel": _equals(LINK_REL), "class": _equals("mention")},
    "img": {"src": _is_own_image_url, "alt": _any, "title": _any},
    "ol": {"start": _matches(r"[0-9]{1,9}")},
    "code": {"class": _matches(r"language-[A-Za-z0-9_+#.-]{1,40}")},
    "th": {"class": _ALIGN_CLASS},
    "td": {"class": _ALIGN_CLASS},
    "aside": {"class": _equals("quote"), "data-post": _matches(r"[0-9]{1,9}"), "data-topic": _matches(r"[0-9]{1,9}")},
    "div": {"class": _equals("title")},
}


def _allow_attribute(tag: str, name: str, value: str) -> bool:
    check = _ATTRIBUTES.get(tag, {}).get(name)
    return check is not None and check(value)


# bleach's Cleaner keeps parser state and is not thread-safe; build one per thread, once.
_local = threading.local()


def _cleaner() -> bleach.Cleaner:
    cleaner: bleach.Cleaner | None = getattr(_local, "cleaner", None)
    if cleaner is None:
        cleaner = _local.cleaner = bleach.Cleaner(
            tags=_TAGS,
            attributes=_allow_attribute,
            protocols=_LINK_SCHEMES,
            strip=True,
            strip_comments=True,
        )
    return cleaner


# --- Public API ------------------------------------------------------------------------------------


def render(raw: str, *, known_users: KnownUsers | None = None) -> Rendered:
    """Render a post's raw Markdown.

    `known_users` gets the lowercased candidate usernames once and returns those that exist; only they
    are linked and reported. Without it every well-formed @name is linked. Mentions inside [quote]
    blocks are linked but not reported, so quoting a post does not re-notify the people it mentions.
    """
    ctx = _Context(known_users=known_users)
    env: dict[str, Any] = {_ENV_KEY: ctx}
    cooked = _cleaner().clean(_MD.render(raw, env)).strip()
    return Rendered(cooked=cooked, text=plain_text(cooked), mentions=tuple(ctx.mentions), quotes=tuple(ctx.quotes))


# Elements after which words must not run together in plain text.
_BLOCK_TAGS = frozenset(
    {
        "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "ul", "ol", "li",
        "table", "thead", "tbody", "tr", "th", "td", "aside", "div", "section", "article", "header", "footer",
    }
)  # fmt: skip
_INVISIBLE_TAGS = frozenset({"script", "style", "template", "head", "title"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE_TAGS:
            self._hidden += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE_TAGS:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def plain_text(html: str) -> str:
    """Text content of an HTML fragment, entities decoded, whitespace collapsed to single spaces."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return " ".join("".join(parser.parts).split())


def excerpt(text: str, max_chars: int = 200) -> str:
    """At most max_chars characters of text, cut at a word boundary, with an ellipsis if cut."""
    text = " ".join(text.split())
    if max_chars < 2:
        raise ValueError("max_chars must leave room for a character and the ellipsis")
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]  # leave room for the ellipsis
    if text[max_chars - 1] != " " and " " in cut:
        cut = cut.rsplit(" ", 1)[0]  # the next character continues a word: drop the partial word
    return cut.rstrip(" ,;:.-") + "…"


# --- Rendering off the event loop ------------------------------------------------------------------

# A long table or a deep list takes markdown-it and bleach seconds of pure Python: on the event loop
# that would stall every request and websocket of the process. Services render in worker processes
# instead, each render within a budget of CPU time.

KnownUsersAsync = Callable[[list[str]], Awaitable[set[str]]]


class TooComplex(Exception):
    """A text took longer than its budget to render: it is refused, never half shown."""


class _OverBudget(BaseException):
    """Raised in a worker by its CPU timer; a BaseException, so no `except Exception` on the way swallows it."""


def _over_budget(signum: int, frame: object) -> None:
    raise _OverBudget


def _start_worker() -> None:
    # Ctrl-C in a terminal reaches the whole process group: the parent stops, then ends the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGPROF, _over_budget)


def _render_job(raw: str, known: frozenset[str] | None, budget_ms: int) -> tuple[Rendered, tuple[str, ...]]:
    """In a worker: render linking `known` names (every well-formed one when None), within budget_ms of
    the worker's CPU time; also the lowercased candidate names found, for the caller to look up."""
    candidates: list[str] = []

    def lookup(names: Iterable[str]) -> set[str]:
        candidates.extend(names)
        return set(candidates) if known is None else set(known)

    signal.setitimer(signal.ITIMER_PROF, budget_ms / 1000)
    try:
        rendered = render(raw, known_users=lookup)
    except _OverBudget:
        raise TooComplex from None
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
    return rendered, tuple(candidates)


class _RenderPool:
    """The worker processes of one service process, started at its first render.

    One per process, like the parsers above: it holds processes, not settings (the budget comes with
    each call). spawn: each worker is a fresh interpreter, never a fork of a service process with its
    threads and sockets, and a child of this process, so closing the pool reaps it (a forkserver's
    children outlived it as zombies when the service stopped).
    """

    def __init__(self) -> None:
        self._executor: ProcessPoolExecutor | None = None

    def _running(self) -> ProcessPoolExecutor:
        if self._executor is None:
            context = multiprocessing.get_context("spawn")
            workers = min(4, os.cpu_count() or 1)
            self._executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker)
        return self._executor

    async def run(self, raw: str, known: frozenset[str] | None, budget_ms: int) -> tuple[Rendered, tuple[str, ...]]:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            executor = self._running()
            try:
                return await loop.run_in_executor(executor, _render_job, raw, known, budget_ms)
            except _OverBudget:  # the timer fired as the render ended: over budget all the same
                raise TooComplex from None
            except BrokenProcessPool:
                # A worker died (killed, out of memory): start afresh once; a text that kills
                # workers again is refused like any other that cannot be rendered.
                if self._executor is executor:
                    self._executor = None
                    executor.shutdown(wait=False, cancel_futures=True)
                if attempt == 2:
                    raise TooComplex from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        """End the workers (they start again at the next render)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


_POOL = _RenderPool()


async def render_async(raw: str, *, budget_ms: int, known_users: KnownUsersAsync | None = None) -> Rendered:
    """render() in a worker process, so the event loop never waits on it; TooComplex when it takes
    more than budget_ms of CPU time.

    `known_users` (awaited on this side, e.g. a database lookup) gets the lowercased candidate
    usernames and returns those that exist; without it every well-formed @name is linked. The first
    render links every candidate, so when all of them exist (the usual case) one render is enough.
    """
    rendered, candidates = await _POOL.run(raw, None, budget_ms)
    if known_users is None or not candidates:
        return rendered
    known = {name.lower() for name in await known_users(list(candidates))} & set(candidates)
    if known == set(candidates):
        return rendered
    rendered, _ = await _POOL.run(raw, frozenset(known), budget_ms)
    return rendered


def close_render_pool() -> None:
    """Stop this process's render workers (a service's shutdown; tests)."""
    _POOL.close()
