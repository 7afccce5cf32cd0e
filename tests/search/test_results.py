"""What a search answers: ranking (title above body, recent above old), stable pages, the
candidate cap, highlighted snippets that stay inert whatever the text, and no 500 for any q."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from search_helpers import found, unique
from xss_corpus import PAYLOADS, assert_inert

from services.search import query


async def test_title_match_ranks_above_body_match(forum, index, search):
    """A topic whose title has the word comes before posts that only mention it."""
    word = unique()
    author = await forum.user("ranker")
    cat = await forum.category("Ranking")
    at = datetime.now(UTC) - timedelta(days=1)
    await forum.topic(cat, author, "Something else", f"mentions {word} once", created_at=at)
    titled, _ = await forum.topic(cat, author, f"All about {word}", "nothing here", created_at=at)
    await index.sync()
    assert found(await search(word))[0] == ("topic", titled)


async def test_recent_match_ranks_above_an_old_one(forum, index, search):
    """Of two posts saying the same, the newer comes first; the old one is still found."""
    word = unique()
    author = await forum.user("ager")
    cat = await forum.category("Ageing")
    now = datetime.now(UTC)
    topic, _ = await forum.topic(cat, author, "Ages", "start", created_at=now - timedelta(days=900))
    old = await forum.reply(topic, author, f"the same words {word}", created_at=now - timedelta(days=800))
    new = await forum.reply(topic, author, f"the same words {word}", created_at=now - timedelta(days=2))
    await index.sync()
    assert found(await search(word)) == [("post", new), ("post", old)]


async def test_pages_are_stable_and_complete(forum, index, search):
    """45 equal matches at the same moment: three pages, each result once, the same every time."""
    word = unique()
    author = await forum.user("pager")
    cat = await forum.category("Paging")
    at = datetime.now(UTC) - timedelta(hours=1)
    topic, first = await forum.topic(cat, author, "Pages", f"{word} post", created_at=at)
    posts = {first} | {await forum.reply(topic, author, f"{word} post", created_at=at) for _ in range(44)}
    await index.sync()
    pages = [await search(word, page=n) for n in (1, 2, 3)]
    assert [len(p["items"]) for p in pages] == [20, 20, 5]
    assert [p["next"] for p in pages] == [2, 3, None]
    seen = [item["id"] for p in pages for item in p["items"]]
    assert sorted(seen) == sorted(posts)
    assert seen[:20] == sorted(posts, reverse=True)[:20]  # ties: newest id first
    assert (await search(word, page=2))["items"] == pages[1]["items"]
    assert (await search(word, page=4))["items"] == []


async def test_only_the_newest_candidates_are_ranked(forum, index, search, monkeypatch):
    """With more matches than CANDIDATES, the newest CANDIDATES are ranked and paged; no more pages."""
    monkeypatch.setattr(query, "CANDIDATES", 30)
    word = unique()
    author = await forum.user("many")
    cat = await forum.category("Many")
    now = datetime.now(UTC)
    topic, _ = await forum.topic(cat, author, "Many", "start", created_at=now - timedelta(days=60))
    posts = [
        await forum.reply(topic, author, f"{word} number {n}", created_at=now - timedelta(days=50 - n))
        for n in range(50)
    ]
    await index.sync()
    pages = [await search(word, page=n) for n in (1, 2)]
    assert pages[1]["next"] is None
    ranked = {item["id"] for p in pages for item in p["items"]}
    assert ranked == set(posts[-30:])


async def test_snippet_highlights_matches_and_escapes_everything_else(forum, index, search):
    """The snippet wraps matches in <mark>, escapes the rest, and shows < > as harmless look-alikes."""
    word = unique()
    author = await forum.user("snipper")
    cat = await forum.category("Snippets")
    await forum.topic(cat, author, "Snip", f'{word} & "quotes" <img src=x onerror=alert(1)> end')
    await index.sync()
    snippet = (await search(word))["items"][0]["snippet"]
    assert snippet.startswith(f"<mark>{word}</mark>")
    assert snippet.startswith(f"<mark>{word}</mark> &amp; &quot;quotes&quot; \u2039img src=x onerror=alert")
    assert_inert(snippet)


async def test_hostile_text_stays_inert_in_snippets(forum, index, search):
    """Every XSS payload, as post text and as a topic title, gives inert snippets with a <mark>."""
    word = unique()
    author = await forum.user("hostile")
    cat = await forum.category("Hostile")
    for payload in PAYLOADS:
        payload = payload.replace("\x00", "")  # PostgreSQL text cannot hold NUL; the forum drops it too
        await forum.topic(cat, author, f"{payload[:150]} {word}", f"{payload} {word} {payload}")
    await index.sync()
    snippets = []
    for kind in ("topic", "post"):
        page = 1
        while page:
            body = await search(f"{word} kind:{kind}", page=page)
            snippets += [item["snippet"] for item in body["items"]]
            page = body["next"]
    assert len(snippets) == 2 * len(PAYLOADS)
    for snippet in snippets:
        assert f"<mark>{word}</mark>" in snippet
        assert_inert(snippet)


FUZZ = [
    '"',
    '""',
    '"""',
    '"a',
    'a"',
    "-",
    "--",
    '-"',
    "- -",
    "or",
    "OR OR",
    "or -",
    "!",
    "!!",
    "&",
    "|",
    "&&",
    "||",
    "<->",
    "<2>",
    ":*",
    "'",
    "''",
    "a'b",
    "\\",
    "\\\\",
    "(",
    ")",
    "()",
    "((a))",
    "a & b | !c",
    "'a':*",
    "@",
    "@@",
    "#",
    "##",
    "@a@b",
    "#-",
    "#a--b",
    "in:",
    "in:title",
    "kind:",
    "kind:post kind:topic",
    "before:",
    "after:",
    "before:0000-00-00",
    "after:9999-99-99",
    "before:2024-13-01",
    "after:1-1-1",
    "before:0001-01-01",
    "after:9999-12-31",
    "before:1970-01-01 after:1970-01-01",
    "\x00",
    "a\x00b",
    "\x01\x02\x03",
    "\u202e\u200b\ufeff",
    "🙂 😢",
    "汉字",
    "ÅÄÖ åäö",
    "ﬁ",
    "\U0010fffd",
    "a" * 5000,
    "word " * 300,
    '"' + "x " * 300 + '"',
    "-" * 1000,
    "or " * 400,
    "%",
    "%00",
    "%s%n",
    "'; DROP TABLE search.documents; --",
    "$1",
    "$$",
    "\n\t\r",
    "<script>alert(1)</script>",
]


async def test_no_query_makes_a_500(client, forum, index):
    """Odd, hostile, huge and unicode queries answer 200 (or 400 when empty), on the API and the page."""
    author = await forum.user("fuzzer")
    cat = await forum.category("Fuzz")
    await forum.topic(cat, author, "Fuzz target", "a b c word x y z 汉字 åäö")
    await index.sync()
    for q in FUZZ:
        for extra in ({}, {"page": "2"}):
            response = await client.get("/api/search", params={"q": q, **extra})
            assert response.status_code in (200, 400), (q, response.text)
            if response.status_code == 400:
                assert response.json()["error"]["code"] == "q_required", q
            page = await client.get("/search", params={"q": q, "kind": "post", "after": q[:20], **extra})
            assert page.status_code == 200, (q, page.text[:500])
