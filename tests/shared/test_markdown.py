"""Tests for shared.markdown: Markdown features, mentions, quotes, plain text, excerpts and the XSS corpus."""

from __future__ import annotations

import time
from collections.abc import Iterable

import pytest
from xss_corpus import PAYLOADS, assert_inert

from shared.markdown import LINK_REL, Rendered, excerpt, plain_text, render

# --- Markdown features -----------------------------------------------------------------------------


def test_basic_markdown_renders() -> None:
    """Emphasis, headings, lists and code render to the expected tags."""
    cooked = render("# Title\n\n**bold** _em_ `code`\n\n- a\n- b\n\n```python\nx = 1\n```").cooked
    assert "<h1>Title</h1>" in cooked
    assert "<strong>bold</strong> <em>em</em> <code>code</code>" in cooked
    assert "<ul>\n<li>a</li>\n<li>b</li>\n</ul>" in cooked
    assert '<pre><code class="language-python">x = 1\n</code></pre>' in cooked


def test_single_newline_is_a_line_break() -> None:
    """A single newline inside a paragraph becomes <br>, as forum users expect."""
    assert render("line one\nline two").cooked == "<p>line one<br>\nline two</p>"


def test_empty_input() -> None:
    """Empty and whitespace-only posts render to nothing."""
    assert render("") == Rendered(cooked="", text="", mentions=(), quotes=())
    assert render("  \n\n ").cooked == ""


def test_tables_use_alignment_classes_not_styles() -> None:
    """GFM tables render, with column alignment as a class rather than an inline style."""
    cooked = render("| a | b | c |\n|:--|:-:|--:|\n| 1 | 2 | 3 |").cooked
    assert "<table>" in cooked and "<thead>" in cooked and "<tbody>" in cooked
    assert '<th class="align-left">a</th>' in cooked
    assert '<td class="align-center">2</td>' in cooked
    assert '<td class="align-right">3</td>' in cooked
    assert "style" not in cooked


def test_strikethrough() -> None:
    """~~text~~ renders as struck-through text."""
    assert render("~~gone~~").cooked == "<p><s>gone</s></p>"


def test_linkify_urls_and_emails() -> None:
    """Bare URLs, www. hosts and email addresses become links."""
    cooked = render("see https://example.org/a?b=1 or www.example.com or mail help@example.org").cooked
    assert f'<a href="https://example.org/a?b=1" rel="{LINK_REL}">https://example.org/a?b=1</a>' in cooked
    assert f'<a href="http://www.example.com" rel="{LINK_REL}">www.example.com</a>' in cooked
    assert f'<a href="mailto:help@example.org" rel="{LINK_REL}">help@example.org</a>' in cooked


def test_every_link_has_rel() -> None:
    """Inline, reference, auto, linkified, mention and quote links all carry rel="nofollow ugc noopener"."""
    raw = (
        '[quote="bob, post:1, topic:2"]\nq\n[/quote]\n\n'
        "[a](https://a.example) [b][r] <https://c.example> https://d.example @alice\n\n[r]: https://b.example"
    )
    cooked = render(raw).cooked
    assert cooked.count("<a ") == 6
    assert cooked.count(f'rel="{LINK_REL}"') == 6


def test_raw_html_is_shown_as_text() -> None:
    """Raw HTML in Markdown is escaped, so the reader sees what the author typed."""
    result = render("<b>hi</b> <script>alert(1)</script>")
    assert result.cooked == "<p>&lt;b&gt;hi&lt;/b&gt; &lt;script&gt;alert(1)&lt;/script&gt;</p>"
    assert result.text == "<b>hi</b> <script>alert(1)</script>"


@pytest.mark.parametrize(
    ("raw", "href"),
    [
        ("[x](https://example.org)", "https://example.org"),
        ("[x](http://example.org)", "http://example.org"),
        ("[x](mailto:a@example.org)", "mailto:a@example.org"),
        ("[x](/t/1)", "/t/1"),
        ("[x](#top)", "#top"),
    ],
)
def test_allowed_link_schemes(raw: str, href: str) -> None:
    """http, https, mailto and relative links are kept."""
    assert f'href="{href}"' in render(raw).cooked


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "vbscript:x", "data:text/html,x", "file:///etc/passwd", "ftp://x"]
)
def test_other_link_schemes_are_not_links(url: str) -> None:
    """Any other scheme leaves the Markdown as plain text, with no href."""
    assert "href" not in render(f"[x]({url})").cooked


def test_images_same_origin_only() -> None:
    """Images keep same-origin sources with alt text; a remote one is a link (test_markdown_images);
    data: images are not rendered."""
    assert render("![a cat](https://example.org/cat.png)").cooked == (
        f'<p><a href="https://example.org/cat.png" rel="{LINK_REL}">a cat</a></p>'
    )
    assert '<img src="/uploads/1.png" alt="up">' in render("![up](/uploads/1.png)").cooked
    assert "<img" not in render("![x](data:image/png;base64,iVBORw0KGgo=)").cooked
    assert "src" not in render("![x](mailto:a@example.org)").cooked


# --- Mentions --------------------------------------------------------------------------------------


def test_mention_links_to_profile() -> None:
    """@name links to /u/name with class "mention", keeping the author's capitalisation as text."""
    result = render("thanks @Alice_B-1!")
    assert result.cooked == f'<p>thanks <a href="/u/alice_b-1" class="mention" rel="{LINK_REL}">@Alice_B-1</a>!</p>'
    assert result.mentions == ("alice_b-1",)


def test_mentions_lowercased_unique_in_order() -> None:
    """mentions lists each lowercased username once, in order of first appearance."""
    assert render("@carol @Alice @bob @ALICE @carol").mentions == ("carol", "alice", "bob")


@pytest.mark.parametrize(
    "raw",
    [
        "`@alice`",
        "```\n@alice\n```",
        "    @alice",
        "alice@example.org",
        "alice@localhost",
        "[@alice](https://example.org)",
        "https://example.org/@alice",
        "@al",
        "@" + "a" * 21,
        "@alice@example.social",
        "\\@alice",
    ],
)
def test_not_a_mention(raw: str) -> None:
    """Code, emails, link text, URLs, bad lengths, fediverse handles and escaped @ are not mentions."""
    result = render(raw)
    assert result.mentions == ()
    assert 'class="mention"' not in result.cooked


def test_mention_at_length_limits() -> None:
    """Usernames of exactly 3 and 20 characters are mentions."""
    assert render("@abc @" + "b" * 20).mentions == ("abc", "b" * 20)


def test_known_users_filters_mentions() -> None:
    """With known_users only existing users are linked and reported; others stay plain text."""
    result = render("@alice @Ghost @bob", known_users=lambda names: {"alice", "bob"})
    assert result.mentions == ("alice", "bob")
    assert "@Ghost" in result.cooked
    assert 'href="/u/ghost"' not in result.cooked


def test_known_users_called_once_with_lowercased_candidates() -> None:
    """known_users is called once per render with each lowercased candidate once, and not at all without any."""
    calls: list[list[str]] = []

    def known(names: Iterable[str]) -> set[str]:
        calls.append(list(names))
        return set()

    render("@Alice and @bob and @ALICE, `@carol`", known_users=known)
    assert calls == [["alice", "bob"]]
    render("no mentions here, alice@example.org", known_users=known)
    assert len(calls) == 1


def test_known_users_answer_is_case_insensitive_and_bounded() -> None:
    """An answer in another case still matches, and names never asked about are ignored."""
    result = render("@alice", known_users=lambda names: {"ALICE", "mallory"})
    assert result.mentions == ("alice",)


def test_mentions_inside_quotes_are_linked_not_reported() -> None:
    """A mention inside a quote is linked but not reported, so quoting does not re-notify."""
    result = render('[quote="bob, post:1, topic:1"]\nhi @carol\n[/quote]\n\n@dave')
    assert 'href="/u/carol"' in result.cooked
    assert result.mentions == ("dave",)


# --- Quotes ----------------------------------------------------------------------------------------


def test_quote_renders_attributed_aside() -> None:
    """A full [quote] renders an aside with post and topic ids, a link to the post and rendered Markdown."""
    result = render('[quote="alice, post:123, topic:45"]\nsome **bold** words\n[/quote]')
    assert result.cooked == (
        '<aside class="quote" data-post="123" data-topic="45">'
        f'<div class="title"><a href="/p/123" rel="{LINK_REL}">alice said:</a></div><blockquote>\n'
        "<p>some <strong>bold</strong> words</p>\n</blockquote></aside>"
    )
    assert result.quotes == (123,)


def test_quote_attribution_is_escaped() -> None:
    """The quoted username is shown escaped, never as markup."""
    cooked = render('[quote="<b>x</b> & <script>, post:1, topic:1"]\nhi\n[/quote]').cooked
    assert "&lt;b&gt;x&lt;/b&gt; &amp; &lt;script&gt; said:" in cooked
    assert_inert(cooked)


@pytest.mark.parametrize(
    "opener",
    [
        '[quote="alice, post:abc, topic:1"]',
        '[quote="alice, post:1, topic:-2"]',
        '[quote="alice, post:1.5, topic:2"]',
        '[quote="alice, post:, topic:2"]',
        '[quote="alice, topic:2"]',
        '[quote="alice, post:12345678901, topic:2"]',
        '[quote="alice, nonsense"]',
        '[quote=", post:1, topic:2"]',
    ],
)
def test_quote_with_bad_ids_degrades_to_blockquote(opener: str) -> None:
    """Non-integer, missing-post or malformed attributions give a plain blockquote and no quoted id."""
    result = render(f"{opener}\ninner\n[/quote]")
    assert result.cooked == "<blockquote>\n<p>inner</p>\n</blockquote>"
    assert result.quotes == ()


def test_quote_without_attribution() -> None:
    """[quote] with no attribution is a plain blockquote."""
    assert render("[quote]\ninner\n[/quote]").cooked == "<blockquote>\n<p>inner</p>\n</blockquote>"


def test_quote_with_name_only() -> None:
    """[quote="name"] shows who said it, without a link or ids."""
    result = render('[quote="alice"]\ninner\n[/quote]')
    assert result.cooked.startswith('<aside class="quote"><div class="title">alice said:</div><blockquote>')
    assert result.quotes == ()


def test_nested_quotes_and_quote_ids() -> None:
    """Quotes nest, and quotes lists each quoted post id once, outer first."""
    raw = (
        '[quote="a, post:1, topic:9"]\nouter\n[quote="b, post:2, topic:9"]\ninner\n[/quote]\n[/quote]\n\n'
        '[quote="a, post:1, topic:9"]\nagain\n[/quote]'
    )
    result = render(raw)
    assert result.cooked.count('<aside class="quote"') == 3
    assert result.cooked.index('data-post="2"') < result.cooked.index("</aside>")
    assert result.quotes == (1, 2)


def test_quote_inside_list_item() -> None:
    """A quote indented into a list item stays inside the item."""
    cooked = render('- item\n\n  [quote="a, post:1, topic:1"]\n  inner\n  [/quote]\n- next').cooked
    assert cooked.index("<li>") < cooked.index("<aside") < cooked.index("</aside>") < cooked.index("</li>")


def test_unclosed_quote_stays_text() -> None:
    """An unclosed [quote] is left as text so the author can see and fix it."""
    result = render('[quote="a, post:1, topic:1"]\nno end')
    assert result.cooked == "<p>[quote=&quot;a, post:1, topic:1&quot;]<br>\nno end</p>"
    assert result.quotes == ()


def test_deeply_nested_quotes_keep_all_text() -> None:
    """Quotes nested beyond the depth limit become text instead of losing the innermost content."""
    depth = 30
    raw = "".join(f'[quote="u{i}, post:{i + 1}, topic:1"]\n' for i in range(depth)) + "deepest\n" + "[/quote]\n" * depth
    result = render(raw)
    assert "deepest" in result.text
    assert 0 < len(result.quotes) < depth
    assert_inert(result.cooked)


def test_many_unclosed_quotes_render_quickly() -> None:
    """Thousands of unclosed [quote] lines do not make rendering quadratic."""
    raw = "[quote]\n" * 5000 + "[/quote]\n"
    start = time.perf_counter()
    render(raw)
    assert time.perf_counter() - start < 5


# --- Plain text and excerpts -----------------------------------------------------------------------


def test_rendered_text_has_no_markup() -> None:
    """Rendered.text has words from all blocks, entities decoded, whitespace collapsed."""
    result = render("# Hello\n\nSome **bold** & <em> text\n\n- one\n- two\n\n|a|b|\n|-|-|\n|c|d|")
    assert result.text == "Hello Some bold & <em> text one two a b c d"


def test_plain_text_separates_blocks_and_skips_scripts() -> None:
    """plain_text puts spaces between block elements and ignores script and style contents."""
    html = "<p>one</p><p>two<br>three</p><script>x()</script><style>p{}</style><div>four&nbsp;&amp;\n five</div>"
    assert plain_text(html) == "one two three four & five"


def test_excerpt_short_text_unchanged() -> None:
    """Text within the limit is returned whole (whitespace collapsed), without an ellipsis."""
    assert excerpt("a  short\ntext", 20) == "a short text"
    assert excerpt("x" * 20, 20) == "x" * 20


def test_excerpt_cuts_at_word_boundary() -> None:
    """Long text is cut after a whole word, with an ellipsis, within max_chars."""
    text = "The quick brown fox jumps over the lazy dog"
    assert excerpt(text, 20) == "The quick brown fox…"
    assert excerpt(text, 19) == "The quick brown…"
    assert excerpt("Hello, world and more", 8) == "Hello…"
    assert all(len(excerpt(text, n)) <= n for n in range(2, 50))


def test_excerpt_hard_cuts_a_single_long_word() -> None:
    """A single word longer than the limit is cut mid-word."""
    assert excerpt("a" * 50, 10) == "a" * 9 + "…"


def test_excerpt_rejects_tiny_limits() -> None:
    """max_chars must leave room for a character and the ellipsis."""
    with pytest.raises(ValueError):
        excerpt("hello", 1)


# --- XSS corpus ------------------------------------------------------------------------------------


def test_corpus_is_large() -> None:
    """The corpus has at least 70 distinct payloads."""
    assert len(set(PAYLOADS)) >= 70


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_renders_inert(payload: str) -> None:
    """Each payload renders to inert HTML, alone, quoted, in a list and with a mention lookup."""
    assert_inert(render(payload).cooked)
    assert_inert(render(f'[quote="x, post:1, topic:1"]\n{payload}\n[/quote]').cooked)
    assert_inert(render(f"- {payload}").cooked)
    assert_inert(render(payload, known_users=lambda names: set(names)).cooked)


def test_all_payloads_together_render_inert() -> None:
    """The whole corpus as one post (where payloads can interact) renders inert."""
    assert_inert(render("\n\n".join(PAYLOADS)).cooked)
    assert_inert(render("\n".join(PAYLOADS)).cooked)


@pytest.mark.parametrize(
    "html",
    [
        "<script>alert(1)</script>",
        "<SCRIPT>alert(1)</SCRIPT>",
        '<a href="javascript:alert(1)">x</a>',
        '<a href=" JaVaScRiPt:alert(1)">x</a>',
        '<a href="jav&#x09;ascript:alert(1)">x</a>',
        '<a href="&#106;avascript:alert(1)">x</a>',
        '<a href="java\nscript:alert(1)">x</a>',
        '<img src="data:image/png;base64,AAAA">',
        '<img src="x" onerror="alert(1)">',
        '<img srcset="/a.png 1x, javascript:alert(1) 2x">',
        '<p style="color:red">x</p>',
        "<iframe></iframe>",
        "<object></object>",
        "<embed>",
        "<style>p{}</style>",
        '<base href="/">',
        '<form action="/x"></form>',
        '<meta http-equiv="refresh" content="0">',
        '<link rel="stylesheet" href="/static/a.css">',
        "<svg></svg>",
        "<math></math>",
        '<svg><a xlink:href="vbscript:x">x</a></svg>',
        '<button formaction="javascript:alert(1)">x</button>',
        '<a href="ftp://example.org">x</a>',
    ],
)
def test_assert_inert_rejects_dangerous_fragments(html: str) -> None:
    """The checker can fail: each dangerous fragment is rejected."""
    with pytest.raises(AssertionError):
        assert_inert(html)


@pytest.mark.parametrize(
    "html",
    [
        '<a href="https://example.org">x</a> <a href="/t/1">y</a> <a href="#top">z</a> <a href="mailto:a@b.org">m</a>',
        '<img src="http://example.org/a.png" alt="a">',
        "<p>javascript:alert(1) written as text</p>",
        '<a href="jav%09ascript:alert(1)">a relative path, not a scheme</a>',
    ],
)
def test_assert_inert_accepts_safe_fragments(html: str) -> None:
    """Safe links, images and text that merely mentions javascript: pass."""
    assert_inert(html)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>tica</title><link rel="stylesheet" href="/static/app.css"><link rel="icon" href="/static/favicon.ico">
</head><body><svg class="icon" aria-hidden="true"><path d="M0 0h24v24H0z"></path></svg>
<form action="/t/1/reply" method="post"><button type="submit">Reply</button></form>
<script src="/static/app.js" defer></script></body></html>"""


def test_assert_inert_accepts_a_normal_page() -> None:
    """A page's own meta, stylesheet, icon, form, inline SVG and static script pass in page mode."""
    assert_inert(_PAGE, page=True, allow_script_src=True)


def test_assert_inert_page_mode_limits() -> None:
    """Page mode still rejects static scripts unless allowed, inline or foreign scripts, and refresh metas."""
    with pytest.raises(AssertionError):
        assert_inert(_PAGE, page=True)
    with pytest.raises(AssertionError):
        assert_inert(_PAGE)
    bad_pages = [
        '<script src="/static/a.js">alert(1)</script>',
        '<script src="https://evil.example/a.js"></script>',
        '<script src="//evil.example/static/a.js"></script>',
        '<script src="/static/a.js" onload="alert(1)"></script>',
        "<script>alert(1)</script>",
        '<meta http-equiv="refresh" content="0;url=/x">',
        '<link rel="stylesheet" href="https://evil.example/a.css">',
        '<form action="https://evil.example/steal"></form>',
        '<svg><animate attributeName="href" values="javascript:alert(1)"/></svg>',
        "<base href='/'>",
    ]
    for html in bad_pages:
        with pytest.raises(AssertionError):
            assert_inert(html, page=True, allow_script_src=True)
