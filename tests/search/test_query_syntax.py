"""Every element of the query language through GET /api/search: words, stemming, phrases,
exclusions, `or`, and each filter; plus the parser on its own and bad syntax degrading."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from search_helpers import found

from services.search import query
from services.search.query import Term, parse


@pytest.fixture
async def world(forum, index):
    """Two members, two categories, topics and replies with known words: {name: (kind, id)}."""
    alice = await forum.user("alice")
    bob = await forum.user("bob_b", display_name="Bob B")
    practice = await forum.category("Practice", "practice")
    lived = await forum.category("Lived experience", "lived-experience")
    t1, p1 = await forum.topic(
        practice, alice, "Grounding techniques for panic", "Slow breathing helped me through panic attacks at work"
    )
    p2 = await forum.reply(t1, bob, "Breathing exercises never helped me, but walking outside did")
    t2, p3 = await forum.topic(
        lived, bob, "Sleep after a difficult shift", "Nightmares and poor sleep after the ward closed"
    )
    p4 = await forum.reply(t2, alice, "A safe space to talk helped with the nightmares")
    p5 = await forum.reply(t2, alice, "Space is important, and feeling safe comes first")
    await index.sync()
    return {
        "t1": ("topic", t1),
        "t2": ("topic", t2),
        "p1": ("post", p1),
        "p2": ("post", p2),
        "p3": ("post", p3),
        "p4": ("post", p4),
        "p5": ("post", p5),
    }


async def hits(search, q: str) -> set[tuple[str, int]]:
    return set(found(await search(q)))


async def test_plain_words_match_all_words_with_english_stemming(world, search):
    """Plain words must all appear, in any form: "helping" finds "helped", "attack" finds "attacks"."""
    assert await hits(search, "breathing helping") == {world["p1"], world["p2"]}
    assert await hits(search, "panic attack") == {world["p1"]}
    assert await hits(search, "Nightmare") == {world["p3"], world["p4"]}


async def test_quoted_phrase_matches_words_together(world, search):
    """ "safe space" finds the words side by side, not "space ... safety" apart."""
    assert await hits(search, '"safe space"') == {world["p4"]}
    assert await hits(search, "safe space") == {world["p4"], world["p5"]}


async def test_exclusion_leaves_out_what_mentions_a_word(world, search):
    """-word drops results containing it, also for a phrase: -"never helped"."""
    assert await hits(search, "breathing -walking") == {world["p1"]}
    assert await hits(search, 'breathing -"never helped"') == {world["p1"]}


async def test_or_between_words_finds_either(world, search):
    """`grounding or nightmares` finds either; `or` binds tighter than the implicit and."""
    assert await hits(search, "grounding or nightmares") == {world["t1"], world["p3"], world["p4"]}
    assert await hits(search, "walking or sleep helped") == {world["p2"]}
    assert await hits(search, "nightmares OR panic -breathing") == {world["t1"], world["p3"], world["p4"]}


async def test_author_filter(world, search):
    """@username keeps one member's posts and topics; alone it lists them, newest first."""
    assert await hits(search, "helped @alice") == {world["p1"], world["p4"]}
    assert await hits(search, "helped @ALICE") == {world["p1"], world["p4"]}
    assert found(await search("@bob_b")) == [world["p3"], world["t2"], world["p2"]]
    assert (await search("helped @nobody_here"))["items"] == []


async def test_category_filter(world, search):
    """#category-slug keeps one category."""
    assert await hits(search, "helped #lived-experience") == {world["p4"]}
    assert await hits(search, "helped #practice") == {world["p1"], world["p2"]}
    assert (await search("helped #no-such-category"))["items"] == []


async def test_in_title_searches_topic_titles(world, search):
    """in:title finds topics by their titles only."""
    assert found(await search("panic in:title")) == [world["t1"]]
    assert (await search("breathing in:title"))["items"] == []


async def test_kind_filter(world, search):
    """kind:topic and kind:post keep one kind of result."""
    assert await hits(search, "sleep kind:topic") == {world["t2"]}
    assert await hits(search, "sleep kind:post") == {world["p3"]}
    assert (await search("sleep kind:document_comment"))["items"] == []


async def test_date_filters(forum, index, search):
    """before: is exclusive, after: inclusive, both UTC dates; they work on old and recent posts."""
    dora = await forum.user("dora")
    cat = await forum.category("Dates")
    now = datetime.now(UTC)
    old_day = (now - timedelta(days=400)).date()
    week_day = (now - timedelta(days=7)).date()
    noon = {
        name: datetime(d.year, d.month, d.day, 12, tzinfo=UTC)
        for name, d in (("old", old_day), ("week", week_day), ("today", now.date()))
    }
    topic, old = await forum.topic(cat, dora, "Calendar", "marmalade story", created_at=noon["old"])
    week = await forum.reply(topic, dora, "marmalade again", created_at=noon["week"])
    today = await forum.reply(topic, dora, "marmalade today", created_at=min(noon["today"], now))
    await index.sync()
    old, week, today = ("post", old), ("post", week), ("post", today)
    assert await hits(search, "marmalade") == {old, week, today}
    assert found(await search(f"marmalade before:{old_day + timedelta(days=1)}")) == [old]
    assert (await search(f"marmalade before:{old_day}"))["items"] == []
    assert await hits(search, f"marmalade after:{week_day}") == {week, today}
    between = f"after:{old_day + timedelta(days=1)} before:{now.date()}"
    assert found(await search(f"marmalade {between}")) == [week]
    assert found(await search(f"{between} @dora")) == [week]
    assert (await search(f"marmalade after:{now.date()} before:{week_day}"))["items"] == []


async def test_stop_words_only_and_exclusions_only_degrade(world, search):
    """Only stop words find nothing (no error); only exclusions search the words instead."""
    assert (await search("the and of"))["items"] == []
    assert await hits(search, "-nightmares") == {world["p3"], world["p4"]}


async def test_bad_syntax_degrades_to_plain_words(world, search):
    """Unbalanced quotes, stray operators and unknown filters search as words; nothing errors."""
    assert await hits(search, '"safe space') == {world["p4"]}
    assert await hits(search, "breathing & | ! ( ) :* <-> helped") == {world["p1"], world["p2"]}
    assert await hits(search, "kind:nonsense breathing") == set()  # "kind" and "nonsense" are words
    assert await hits(search, "before:tomorrow nightmares") == set()
    assert await hits(search, "or or nightmares or") == {world["p3"], world["p4"]}


async def test_empty_query_is_400(client):
    """An empty q is a clear 400 in the error shape; so is a bad page number."""
    for params in ({}, {"q": ""}, {"q": "   "}, {"q": "\x00\x01"}):
        response = await client.get("/api/search", params=params)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "q_required"
        assert response.json()["error"]["fields"] == {"q": "is required"}
    for page in ("0", "x", "-1", "1001"):
        response = await client.get("/api/search", params={"q": "x", "page": page})
        assert response.status_code == 400 and response.json()["error"]["fields"].keys() == {"page"}


# --- the parser and its helpers on their own ------------------------------------------------


def test_parse_reads_every_element():
    """Words, phrases, exclusions, `or` groups and each filter."""
    parsed = parse(
        'grief or loss "peer support" -medication @Sam_1 #Lived-Experience in:title kind:topics '
        "before:2024-03-01 after:2023-12-31 extra"
    )
    assert parsed.groups == [[Term("grief"), Term("loss")], [Term("peer support", phrase=True)], [Term("extra")]]
    assert parsed.excluded == [Term("medication")]
    assert (parsed.author, parsed.category, parsed.in_title, parsed.kind) == (
        "Sam_1",
        "lived-experience",
        True,
        "topic",
    )
    assert (parsed.before, parsed.after) == (date(2024, 3, 1), date(2023, 12, 31))


@pytest.mark.parametrize(
    "raw, words",
    [
        ('"unclosed phrase', [[Term("unclosed phrase", phrase=True)]]),
        ("kind:nonsense", [[Term("kind:nonsense")]]),
        ("before:2024-02-30", [[Term("before:2024-02-30")]]),
        ("@", [[Term("@")]]),
        ("# -", [[Term("#")], [Term("-")]]),
        ("or", []),
        ("a or or b", [[Term("a"), Term("b")]]),
        ("\x00grief\x1f", [[Term("grief")]]),
    ],
)
def test_parse_degrades_to_words(raw, words):
    """What is not a valid filter or operator stays a word; control characters are dropped."""
    assert parse(raw).groups == words


def test_parse_bounds_length_and_terms():
    """A very long query is cut to MAX_QUERY_CHARS and MAX_TERMS terms."""
    assert len(parse("word " * 1000).groups) == query.MAX_TERMS
    assert len(query.clean_query("x" * 10_000)) == query.MAX_QUERY_CHARS


def test_tsquery_sql_passes_words_only_as_parameters():
    """Typed text never reaches the SQL text: it is all parameters."""
    sql, params = query.tsquery_sql(
        [[Term("a'); DROP TABLE x; --"), Term("b", phrase=True)]], [Term("c")], first_param=3
    )
    assert "DROP" not in sql and params == ["a'); DROP TABLE x; --", "b", "c"]
    assert sql == (
        "(plainto_tsquery('english', $3::text) || phraseto_tsquery('english', $4::text)) && "
        "(!! plainto_tsquery('english', $5::text))"
    )


@pytest.mark.parametrize("first, last", [(0, 0), (5, 5), (0, 15), (1, 100), (19000, 20471), (3, 70000)])
def test_day_cover_covers_exactly_the_days(first, last):
    """The bucket lexemes of a window cover each day in it once, and no other day."""
    covered: list[int] = []
    for lexeme in query.day_cover(first, last).split(" | "):
        name, value = lexeme.strip("'").split(":")
        level = int(name.removeprefix("@ days"))
        start = int(value) << (2 * level)
        covered += range(start, start + 4**level)
    assert covered == list(range(first, last + 1))


def test_highlight_escapes_everything_but_the_marks():
    """Hostile text is escaped first; only our private markers become <mark>."""
    raw = '<script>alert(1)</script> \x02grief\x03 & "loss" \x02unclosed <b>'
    assert query.highlight(raw) == (
        "&lt;script&gt;alert(1)&lt;/script&gt; <mark>grief</mark> &amp; &quot;loss&quot; unclosed &lt;b&gt;"
    )
