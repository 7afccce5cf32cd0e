"""Topic pages: lists, categories, a topic with its posts, and every form (with CSRF),
working without JavaScript."""

from __future__ import annotations

import re

import pytest

from services.forum.topics.pages import diff_html, page_items
from shared.pages import ago

pytestmark = pytest.mark.usefixtures("numbered_groups")  # private categories name groups 1-10


@pytest.fixture
async def admin(member_factory):
    return await member_factory("ada", roles=("member", "admin"))


@pytest.fixture
async def category(admin):
    response = await admin.client.post(
        "/api/categories",
        json={"name": "Lived experience", "colour": "ae2573", "description": "Stories, at your own pace"},
    )
    return response.json()


async def new_topic(member, category_id, title="Finding my feet again", body="It has been a long year.", **extra):
    response = await member.client.post(
        "/api/topics", json={"category_id": category_id, "title": title, "body": body, **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()


def form(member, **fields):
    return {"csrf_token": member.session.csrf, **fields}


def h1_count(html):
    return len(re.findall(r"<h1[\s>]", html))


# --- lists -----------------------------------------------------------------------------------------


async def test_home_lists_topics_for_anyone(admin, category, client):
    """The home page lists topics with kind, category, author, replies and a <time>; no new-topic button."""
    topic = await new_topic(admin, category["id"], kind="narrative", content_note="grief")
    response = await client.get("/")
    assert response.status_code == 200
    html = response.text
    assert h1_count(html) == 1
    assert f'href="{topic["url"]}"' in html and "Finding my feet again" in html
    assert "Personal narrative" in html and "nhsuk-tag--purple" in html
    assert 'href="/c/lived-experience"' in html and 'fill="#ae2573"' in html
    assert "Ada" in html and "0 replies" in html
    assert re.search(r'<time datetime="[0-9T:.+-]+" title="[^"]+">just now</time>', html)
    assert "Content note:</strong> grief" in html
    assert "Start a new topic" not in html
    assert 'href="/login?next=/"' in html


async def test_home_for_members_shows_new_and_unread(admin, category, member_factory, pool):
    """Members see a button to start a topic, "New" tags, the new-since-last-visit note and unread counts."""
    reader = await member_factory()
    await pool.execute("UPDATE forum.users SET previous_visit_at = now() - interval '1 hour' WHERE id = $1", reader.id)
    fresh = await new_topic(admin, category["id"])
    html = (await reader.client.get("/")).text
    assert "Start a new topic" in html and 'href="/new-topic"' in html
    assert "New since your last visit" in html and ">New<" in html.replace("\n", "").replace(" ", "")
    await reader.client.get(fresh["url"])
    await admin.client.post(f"/api/topics/{fresh['id']}/posts", json={"body": "a reply"})
    html = (await reader.client.get("/")).text
    assert "1 unread" in html and "New since your last visit" not in html


async def test_home_filters_sorts_and_pages(admin, category, client, pool):
    """Kind links filter; sort links; 30 a page with NHS.UK pagination; bad values are 400 pages."""
    await new_topic(admin, category["id"], title="A blog post here", kind="blog")
    await pool.execute(
        "INSERT INTO forum.topics (category_id, title, slug, author_id, last_posted_at) "
        "SELECT $1, 'Older topic ' || n, 'older-topic-' || n, $2, now() - n * interval '1 hour' "
        "FROM generate_series(1, 30) n",
        category["id"],
        admin.id,
    )
    html = (await client.get("/")).text
    assert 'class="nhsuk-pagination' in html and 'href="/?page=2"' in html
    assert "A blog post here" in html and "Older topic 30" not in html
    assert "Older topic 30" in (await client.get("/?page=2")).text
    blogs = (await client.get("/?kind=blog")).text
    assert "A blog post here" in blogs and "Older topic 1<" not in blogs
    assert 'href="/?kind=blog&amp;sort=top"' in blogs
    assert (await client.get("/?sort=top")).status_code == 200
    for query in ("page=0", "page=abc", "sort=weird", "kind=poem"):
        response = await client.get(f"/?{query}")
        assert response.status_code == 400 and "text/html" in response.headers["content-type"]
    assert (await client.get("/?page=9")).status_code == 404


async def test_categories_page(admin, category, member_factory, client):
    """Categories list with swatch, description and count; private ones only for their group and staff."""
    await new_topic(admin, category["id"])
    await admin.client.post("/api/categories", json={"name": "Facilitators", "group_ids": [4]})
    html = (await client.get("/categories")).text
    assert h1_count(html) == 1
    assert "Lived experience" in html and "Stories, at your own pace" in html and "1 topic<" in html
    assert 'fill="#ae2573"' in html and "Facilitators" not in html
    insider = await member_factory(group_ids=(4,))
    inside = (await insider.client.get("/categories")).text
    assert "Facilitators" in inside and "Private" in inside and "Only members of Group 4" not in inside
    assert "Only members of Group 4" in (await admin.client.get("/categories")).text


async def test_category_page(admin, category, client):
    """A category page lists its own topics only; unknown and private categories are 404."""
    other = (await admin.client.post("/api/categories", json={"name": "Webinars"})).json()
    await new_topic(admin, category["id"], title="In lived experience")
    await new_topic(admin, other["id"], title="In webinars")
    html = (await client.get("/c/lived-experience")).text
    assert "In lived experience" in html and "In webinars" not in html and h1_count(html) == 1
    assert (await client.get("/c/nowhere")).status_code == 404
    assert (await client.get("/c/%00")).status_code == 404
    assert (await client.get("/c/" + "a" * 500)).status_code == 404
    private = (await admin.client.post("/api/categories", json={"name": "Secret", "group_ids": [9]})).json()
    assert (await client.get(f"/c/{private['slug']}")).status_code == 404
    assert (await admin.client.get(f"/c/{private['slug']}")).status_code == 200


# --- a topic ------------------------------------------------------------------------------------


async def test_topic_page_shows_posts(admin, category, member_factory, client):
    """Title h1, kind, content note, posts with anchors, avatars, folded notes, edited links, reactions."""
    sam = await member_factory("sam")
    topic = await new_topic(admin, category["id"], content_note="loss", body="**Opening** words")
    reply = (
        await sam.client.post(
            f"/api/topics/{topic['id']}/posts",
            json={"body": "Thinking of you", "content_note": "bereavement", "reply_to": topic["first_post"]["id"]},
        )
    ).json()
    await sam.client.patch(f"/api/posts/{reply['id']}", json={"body": "Thinking of you all"})
    await sam.client.post(f"/api/posts/{topic['first_post']['id']}/reactions", json={"kind": "hug"})
    response = await client.get(topic["url"])
    assert response.status_code == 200
    html = response.text
    assert h1_count(html) == 1 and "Finding my feet again</h1>" in html
    assert 'id="post-1"' in html and 'id="post-2"' in html
    assert "<strong>Opening</strong> words" in html
    assert "Content note: bereavement" in html and "nhsuk-details" in html
    assert "This topic talks about: loss" in html
    assert f'href="/posts/{reply["id"]}/revisions"' in html
    assert 'class="tica-avatar tica-avatar--' in html and ">S</span>" in html
    assert "in reply to" in html
    assert "Sending strength 1" in html  # anonymous: counts, no buttons
    assert "/react" not in html and 'action="/t/' not in html
    member_html = (await sam.client.get(topic["url"])).text
    assert f'action="/t/{topic["id"]}/posts/{topic["first_post"]["id"]}/react"' in member_html
    assert 'name="csrf_token"' in member_html and 'aria-pressed="true"' in member_html
    assert f'action="/t/{topic["id"]}/posts"' in member_html


async def test_topic_addresses(admin, category, client, member_factory):
    """Wrong slug: 301 to the right one; /t/{id}: 301; /p/{id}: 302 to the post; 404 for the rest."""
    topic = await new_topic(admin, category["id"])
    wrong = await client.get(f"/t/wrong-slug/{topic['id']}?page=1")
    assert wrong.status_code == 301 and wrong.headers["location"] == f"{topic['url']}?page=1"
    short = await client.get(f"/t/{topic['id']}")
    assert short.status_code == 301 and short.headers["location"] == topic["url"]
    post = await client.get(f"/p/{topic['first_post']['id']}")
    assert post.status_code == 302 and post.headers["location"] == f"{topic['url']}#post-1"
    for path in ("/t/x/999999", "/t/x/abc", "/p/999999", "/p/abc", "/t/999999", f"{topic['url']}?page=2"):
        assert (await client.get(path)).status_code == 404, path
    assert (await client.get(f"{topic['url']}?page=0")).status_code == 400
    private = (await admin.client.post("/api/categories", json={"name": "Secret", "group_ids": [9]})).json()
    hidden = await new_topic(admin, private["id"])
    outsider = await member_factory()
    for path in (
        hidden["url"],
        f"/t/{hidden['id']}",
        f"/p/{hidden['first_post']['id']}",
        f"/posts/{hidden['first_post']['id']}/revisions",
    ):
        assert (await outsider.client.get(path)).status_code == 404, path


async def test_topic_pagination(admin, category, client):
    """Twenty posts a page with numbered NHS.UK pagination; /p/ finds the right page."""
    topic = await new_topic(admin, category["id"])
    ids = []
    for n in range(21):
        ids.append((await admin.client.post(f"/api/topics/{topic['id']}/posts", json={"body": f"r{n}"})).json()["id"])
    html = (await client.get(topic["url"])).text
    assert "nhsuk-pagination--numbered" in html and f'href="{topic["url"]}?page=2"' in html
    assert 'id="post-22"' not in html
    assert 'id="post-22"' in (await client.get(f"{topic['url']}?page=2")).text
    location = (await client.get(f"/p/{ids[-1]}")).headers["location"]
    assert location == f"{topic['url']}?page=2#post-22"


async def test_reply_form(admin, category, member_factory, client):
    """Replying through the form: 303 to the new post; errors in the summary (422); CSRF required."""
    sam = await member_factory("sam")
    topic = await new_topic(admin, category["id"])
    url = f"/t/{topic['id']}/posts"
    done = await sam.client.post(url, data=form(sam, body="Me **too**", content_note="", reply_to=""))
    assert done.status_code == 303 and done.headers["location"] == f"{topic['url']}#post-2"
    assert "Me <strong>too</strong>" in (await client.get(topic["url"])).text
    empty = await sam.client.post(url, data=form(sam, body="   ", content_note=""))
    assert empty.status_code == 422
    assert "There is a problem" in empty.text and 'href="#body"' in empty.text and "Your post is required" in empty.text
    long_note = await sam.client.post(url, data=form(sam, body="Keep this text", content_note="n" * 101))
    assert long_note.status_code == 422 and "Keep this text</textarea>" in long_note.text
    bad_reply_to = await sam.client.post(url, data=form(sam, body="x", reply_to="abc"))
    assert bad_reply_to.status_code == 422
    assert (await sam.client.post(url, data={"body": "no token"})).status_code == 403
    assert (await sam.client.post(url, data={"body": "bad token", "csrf_token": "nope"})).status_code == 403
    assert (await sam.client.post("/t/999999/posts", data=form(sam, body="x"))).status_code == 404
    # The refused form's address opened again (a reload or a bookmark, without JavaScript): the topic's reply form.
    opened = await sam.client.get(url)
    assert opened.status_code == 303 and opened.headers["location"] == f"{topic['url']}#reply"
    assert (await sam.client.get("/t/999999/posts")).status_code == 404


async def test_reply_form_anonymous_goes_to_login(admin, category, client):
    """An anonymous reply (with a valid browser CSRF token) is sent to log in, then back to the topic."""
    topic = await new_topic(admin, category["id"])
    await client.get("/")  # sets the tica_csrf cookie
    token = client.cookies.get("tica_csrf")
    response = await client.post(f"/t/{topic['id']}/posts", data={"csrf_token": token, "body": "hi"})
    assert response.status_code == 303 and response.headers["location"] == f"/login?next=/t/{topic['id']}"


async def test_closed_topic_hides_reply_form(admin, category, member_factory, pool):
    """A closed topic says so instead of showing the form, and the form post is refused."""
    sam = await member_factory("sam")
    topic = await new_topic(admin, category["id"])
    await pool.execute("UPDATE forum.topics SET closed = true WHERE id = $1", topic["id"])
    html = (await sam.client.get(topic["url"])).text
    assert "This topic is closed" in html and f'action="/t/{topic["id"]}/posts"' not in html
    refused = await sam.client.post(f"/t/{topic['id']}/posts", data=form(sam, body="x"))
    assert refused.status_code == 403 and "closed" in refused.text


async def test_reply_to_and_quote_links(admin, category, member_factory):
    """?reply_to= adds a hidden field; ?quote= fills the box with a [quote] of the post."""
    sam = await member_factory("sam")
    topic = await new_topic(admin, category["id"], body="Line one\nLine <two>")
    first = topic["first_post"]["id"]
    html = (await sam.client.get(f"{topic['url']}?reply_to={first}")).text
    assert f'name="reply_to" value="{first}"' in html and "Replying to post #1 by ada" in html
    quoted = (await sam.client.get(f"{topic['url']}?quote={first}")).text
    expected = f"[quote=&#34;ada, post:{first}, topic:{topic['id']}&#34;]\nLine one\nLine &lt;two&gt;\n[/quote]"
    assert expected in quoted
    ignored = (await sam.client.get(f"{topic['url']}?reply_to=999999&quote=abc")).text
    assert 'name="reply_to"' not in ignored


async def test_react_form_toggles(admin, category, member_factory, pool):
    """A reaction button gives the reaction, and pressing it again takes it back."""
    sam = await member_factory("sam")
    topic = await new_topic(admin, category["id"])
    post_id = topic["first_post"]["id"]
    url = f"/t/{topic['id']}/posts/{post_id}/react"
    response = await sam.client.post(url, data=form(sam, kind="hug"))
    assert response.status_code == 303 and response.headers["location"] == f"{topic['url']}#post-1"
    assert await pool.fetchval("SELECT reactions FROM forum.posts WHERE id = $1", post_id) == {"hug": 1}
    await sam.client.post(url, data=form(sam, kind="hug"))
    assert await pool.fetchval("SELECT reactions FROM forum.posts WHERE id = $1", post_id) == {}
    assert (await sam.client.post(url, data=form(sam, kind="frown"))).status_code == 422
    assert (await sam.client.post(url, data={"kind": "hug"})).status_code == 403
    other = await new_topic(admin, category["id"], title="Another topic here")
    assert (
        await sam.client.post(f"/t/{other['id']}/posts/{post_id}/react", data=form(sam, kind="hug"))
    ).status_code == 404


# --- starting, editing, deleting ------------------------------------------------------------------


async def test_new_topic_form(admin, category, member_factory, client, pool):
    """GET shows labelled fields; POST starts the topic (303); errors come back in the summary."""
    assert (await client.get("/new-topic")).headers["location"] == "/login?next=/new-topic"
    sam = await member_factory("sam")
    page = await sam.client.get(f"/new-topic?category={category['id']}")
    assert page.status_code == 200 and h1_count(page.text) == 1
    for field in ("category_id", "kind", "title", "body", "content_note"):
        assert f'for="{field}"' in page.text or f'id="{field}"' in page.text
    assert f'value="{category["id"]}" selected' in page.text
    created = await sam.client.post(
        "/new-topic",
        data=form(
            sam,
            category_id=str(category["id"]),
            kind="blog",
            title="A letter to my younger self",
            body="Dear me,",
            content_note="",
        ),
    )
    assert created.status_code == 303
    topic_id = await pool.fetchval("SELECT id FROM forum.topics WHERE title = 'A letter to my younger self'")
    assert created.headers["location"] == f"/t/a-letter-to-my-younger-self/{topic_id}"
    bad = await sam.client.post("/new-topic", data=form(sam, category_id="", kind="rant", title="abc", body=""))
    assert bad.status_code == 422
    for text in (
        "Category is required",
        "Kind of topic must be one of",
        "Title must be at least 5 characters",
        "Your post is required",
    ):
        assert text in bad.text
    assert 'value="abc"' in bad.text
    gone = await sam.client.post("/new-topic", data=form(sam, category_id="99999", title="Long enough", body="x"))
    assert gone.status_code == 422 and "Category must be one of the categories listed" in gone.text
    assert (await sam.client.post("/new-topic", data={"title": "x"})).status_code == 403


async def test_new_topic_needs_verified_email(category, member_factory, pool):
    """Without a confirmed email the page explains, and a post is refused."""
    sam = await member_factory("sam")
    await pool.execute("UPDATE forum.users SET email_verified_at = NULL WHERE id = $1", sam.id)
    page = await sam.client.get("/new-topic")
    assert "confirm your email address" in page.text and 'action="/new-topic"' not in page.text
    refused = await sam.client.post(
        "/new-topic", data=form(sam, category_id=str(category["id"]), title="Long enough", body="x")
    )
    assert refused.status_code == 403


async def test_edit_form_and_revisions_page(admin, category, member_factory):
    """Edit through the form with a reason; the revisions page shows who, why and a diff."""
    sam = await member_factory("sam")
    topic = await new_topic(admin, category["id"])
    post = (await sam.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "I felt <scared> then"})).json()
    page = await sam.client.get(f"/posts/{post['id']}/edit")
    assert page.status_code == 200 and "I felt &lt;scared&gt; then</textarea>" in page.text
    saved = await sam.client.post(
        f"/posts/{post['id']}/edit",
        data=form(sam, body="I felt safe then", content_note="", edit_reason="I'm in a better place"),
    )
    assert saved.status_code == 303 and saved.headers["location"] == f"{topic['url']}#post-2"
    revisions = await sam.client.get(f"/posts/{post['id']}/revisions")
    assert revisions.status_code == 200 and h1_count(revisions.text) == 1
    html = revisions.text
    assert "I&#39;m in a better place" in html or "I&#x27;m in a better place" in html
    assert "&lt;scared&gt;</del>" in html and "safe</ins>" in html
    invalid = await sam.client.post(f"/posts/{post['id']}/edit", data=form(sam, body=""))
    assert invalid.status_code == 422 and "There is a problem" in invalid.text
    other = await member_factory()
    assert (await other.client.get(f"/posts/{post['id']}/edit")).status_code == 403
    assert (await other.client.post(f"/posts/{post['id']}/edit", data=form(other, body="x"))).status_code == 403
    assert (await sam.client.post(f"/posts/{post['id']}/edit", data={"body": "x"})).status_code == 403


async def test_delete_flow_removes_text(admin, category, member_factory, client):
    """Confirm, delete (303), and the text is gone from the page; the first post cannot be deleted alone."""
    sam = await member_factory("sam")
    topic = await new_topic(admin, category["id"])
    post = (await sam.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "Too much, too soon"})).json()
    confirm = await sam.client.get(f"/posts/{post['id']}/delete")
    assert confirm.status_code == 200 and "Delete post 2?" in confirm.text and 'name="csrf_token"' in confirm.text
    assert (await sam.client.post(f"/posts/{post['id']}/delete", data={})).status_code == 403
    deleted = await sam.client.post(f"/posts/{post['id']}/delete", data=form(sam))
    assert deleted.status_code == 303
    html = (await client.get(topic["url"])).text
    assert "Too much, too soon" not in html and "This post was deleted." in html
    assert (await client.get(f"/posts/{post['id']}/revisions")).status_code == 404
    first = await admin.client.get(f"/posts/{topic['first_post']['id']}/delete")
    assert first.status_code == 409 and "delete the topic instead" in first.text
    assert (await client.get(f"/posts/{post['id']}/delete")).status_code == 303  # anonymous: log in


# --- helpers ---------------------------------------------------------------------------------------


def test_ago():
    """Relative times read naturally."""
    from datetime import UTC, datetime, timedelta

    now = datetime(2025, 3, 20, 12, tzinfo=UTC)
    assert ago(now - timedelta(seconds=30), now) == "just now"
    assert ago(now - timedelta(minutes=1), now) == "1 minute ago"
    assert ago(now - timedelta(hours=5), now) == "5 hours ago"
    assert ago(now - timedelta(days=2), now) == "2 days ago"
    assert ago(now - timedelta(days=30), now) == "18 February 2025"


def test_diff_escapes_everything():
    """The revision diff marks changes and escapes every piece of text."""
    from xss_corpus import assert_inert

    html = str(diff_html("Hello <b>world</b>", "Hello <script>alert(1)</script> world"))
    assert_inert(html)
    assert "<script" not in html and "<b>" not in html and "&lt;" in html
    assert "<ins>" in html and "<del>" in html
    assert str(diff_html("a", 'a "b" <i>')) == (
        'a<ins><span class="nhsuk-u-visually-hidden">added: </span> &#34;b&#34; &lt;i&gt;</ins>'
    )
    assert str(diff_html("same", "same")) == "same"


def test_page_items():
    """Numbered pages show the first, last and neighbours, with gaps."""
    numbers = [(i["number"], i.get("ellipsis", False)) for i in page_items("/t/x/1", 5, 9)]
    assert numbers == [(1, False), (0, True), (4, False), (5, False), (6, False), (0, True), (9, False)]
