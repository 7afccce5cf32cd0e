"""GET /search: the form works without JavaScript, results show highlighted snippets and
stay inert, nothing found gives help, bad filter input gets the error summary."""

from __future__ import annotations

import re
from html import unescape

from search_helpers import unique
from xss_corpus import PAYLOADS, assert_inert


def one_h1(html: str) -> None:
    assert len(re.findall(r"<h1[\s>]", html)) == 1


def labelled(html: str, *ids: str) -> None:
    for field_id in ids:
        assert f'for="{field_id}"' in html and f'id="{field_id}"' in html, field_id


async def test_search_page_without_a_query_shows_the_form_and_tips(client):
    """An empty search page: one h1, a labelled GET form, and how to search."""
    page = await client.get("/search")
    assert page.status_code == 200
    one_h1(page.text)
    assert '<form method="get" action="/search"' in page.text
    labelled(page.text, "search-q", "kind", "category", "after", "before")
    assert "What would you like to find?" in page.text and "How to search" in page.text
    assert_inert(page.text, page=True, allow_script_src=True)


async def test_results_page_shows_highlighted_inert_results(forum, index, client):
    """Results link to the post, name the author and category, and mark the matched words."""
    word = unique()
    author = await forum.user("pagewriter", display_name="Page Writer")
    cat = await forum.category("Page tests")
    topic, post = await forum.topic(cat, author, "A page topic", f"something about {word} and more")
    noted = await forum.reply(topic, author, f"hard reading {word}", content_note="self-harm")
    await index.sync()
    page = await client.get("/search", params={"q": word})
    assert page.status_code == 200
    one_h1(page.text)
    html = page.text
    assert f'href="/p/{post}"' in html and f'href="/p/{noted}"' in html
    assert f"<mark>{word}</mark>" in html
    assert "Page Writer" in html and 'href="/c/page-tests"' in html
    assert "Content note: self-harm" in html and "<details" in html
    assert f'value="{word}"' in html  # the query stays in the box
    assert_inert(html, page=True, allow_script_src=True)


async def test_hostile_titles_and_text_stay_inert_on_the_page(forum, index, client):
    """XSS payloads as titles and post text: the results page has no executable markup."""
    word = unique()
    author = await forum.user("pagehostile")
    cat = await forum.category("Page hostile")
    for payload in PAYLOADS[:60]:
        payload = payload.replace("\x00", "")
        await forum.topic(cat, author, f"{payload[:150]} {word}", f"{payload} {word}")
    await index.sync()
    for n in (1, 2, 3, 4, 5, 6):
        page = await client.get("/search", params={"q": word, "page": n})
        assert page.status_code == 200
        assert_inert(page.text, page=True, allow_script_src=True)


async def test_no_results_page_helps(forum, index, client):
    """Nothing found: suggestions, a way to drop the filters, and (anonymous) a hint to log in."""
    page = await client.get("/search", params={"q": f"{unique()} zzzz", "kind": "post", "category": "nowhere"})
    assert page.status_code == 200
    one_h1(page.text)
    text = unescape(page.text)
    assert "No results for" in text and "check the spelling" in text and "try fewer words" in text
    assert "search again without the filters" in text
    assert "Log in" in text
    unknown = await client.get("/search", params={"q": "hello @nosuchperson"})
    assert "We could not find a member called" in unknown.text and "@nosuchperson" in unknown.text


async def test_form_filters_apply_and_pages_keep_them(forum, index, client):
    """The form's kind and dates filter; next/previous links keep every filter."""
    word = unique()
    author = await forum.user("filterer")
    cat = await forum.category("Filters")
    topic, _ = await forum.topic(cat, author, f"Filter {word}", f"first {word}")
    for n in range(25):
        await forum.reply(topic, author, f"reply {n} {word}")
    await index.sync()
    topics_only = await client.get("/search", params={"q": word, "kind": "topic"})
    assert topics_only.text.count('class="tica-topic"') == 1
    first = await client.get(
        "/search", params={"q": word, "kind": "post", "category": "filters", "after": "2000-01-01"}
    )
    assert first.text.count('class="tica-topic"') == 20
    links = re.findall(r'href="(/search\?[^"]+)"', first.text)
    assert any(
        "page=2" in unescape(link)
        and "kind=post" in unescape(link)
        and "category=filters" in unescape(link)
        and "after=2000-01-01" in unescape(link)
        for link in links
    )
    second = await client.get(
        "/search", params={"q": word, "kind": "post", "category": "filters", "after": "2000-01-01", "page": "2"}
    )
    assert second.text.count('class="tica-topic"') == 6
    assert "Previous" in second.text


async def test_bad_dates_get_the_error_summary(client):
    """A date that is not a date: the NHS.UK error summary links to the field; no 500."""
    page = await client.get("/search", params={"q": "anything", "after": "31/02/2024", "kind": "sideways"})
    assert page.status_code == 200
    one_h1(page.text)
    assert "There is a problem" in page.text and page.text.startswith("<!DOCTYPE html>")
    assert 'href="#after"' in page.text and 'href="#kind"' in page.text
    assert "<title>Error: " in page.text
