"""Safety: whole-word matching, watched words (block, hold, censor, flag), safeguarding phrases
(publish, support panel, top of the queue, or hold), the Get support page, and rate limits."""

from __future__ import annotations

import pytest
from moderation_helpers import (
    audit_actions,
    events,
    flag,
    new_topic,
    reply,
    review_of,
    settings_changed,
)

from services.forum.moderation import screening

# --- matching ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phrase", "text", "found"),
    [
        ("scam", "This is a SCAM!", True),
        ("scam", "I like scampi", False),
        ("scam", "anti-scam advice", True),
        ("scam*", "scammers everywhere", True),
        ("self harm", "thoughts of self-harm", True),
        ("self-harm", "thoughts of self harm", True),
        ("self harm", "selfharm", False),
        ("can't go on", "I cant go on", True),
        ("can't go on", "I can\u2019t go on", True),
        ("can't go on", "I can't  go   on", True),
        ("end my life", "the end of my life story", False),
        ("kill myself", "Kill Myself", True),
        ("overdose", "overdosed", False),
        ("suicide", "suicide prevention training", True),
    ],
)
def test_phrases_match_whole_and_in_any_case(phrase, text, found):
    assert bool(screening.Matcher.of([phrase]).find(text)) is found


def test_censor_blots_out_only_the_word():
    matcher = screening.Matcher.of(["darn"])
    assert matcher.censor("Darn it, darned") == "\u25a0\u25a0\u25a0\u25a0 it, darned"
    html = '<p>darn <a href="https://darn.example/darn">darn link</a></p>'
    assert screening.censor_html(html, matcher) == (
        '<p>\u25a0\u25a0\u25a0\u25a0 <a href="https://darn.example/darn">\u25a0\u25a0\u25a0\u25a0 link</a></p>'
    )


# --- watched words ------------------------------------------------------------------------------


async def add_word(admin, word, action):
    response = await admin.client.post("/api/admin/watched-words", json={"word": word, "action": action})
    assert response.status_code == 201, response.text
    return response.json()


async def test_watched_words_api(admin, member_factory, client, pool):
    """Admins add, list and remove words (audited); duplicates 409; bad input 422; others 401/403."""
    word = await add_word(admin, "  Cheap   Pills ", "block")
    assert (word["word"], word["action"]) == ("Cheap Pills", "block")
    listed = (await admin.client.get("/api/admin/watched-words")).json()["items"]
    assert [w["word"] for w in listed] == ["Cheap Pills"]
    dup = await admin.client.post("/api/admin/watched-words", json={"word": "cheap pills", "action": "flag"})
    assert dup.status_code == 409
    for bad in (
        {"word": "", "action": "block"},
        {"word": "x", "action": "ban"},
        {"word": "<b>", "action": "flag"},
        {"word": "x" * 101, "action": "flag"},
        {"word": "ok"},
    ):
        assert (await admin.client.post("/api/admin/watched-words", json=bad)).status_code == 422, bad
    member = await member_factory()
    assert (
        await member.client.post("/api/admin/watched-words", json={"word": "a", "action": "flag"})
    ).status_code == 403
    assert (await client.get("/api/admin/watched-words")).status_code == 401
    assert (await admin.client.delete(f"/api/admin/watched-words/{word['id']}")).status_code == 204
    assert (await admin.client.delete(f"/api/admin/watched-words/{word['id']}")).status_code == 404
    assert await audit_actions(pool) == ["watched_word.add", "watched_word.remove"]


async def test_a_blocked_word_is_refused_naming_it(admin, sam, topic, category):
    """422 blocked_word with the word in the message, for replies, topics (titles too) and edits."""
    await add_word(admin, "bitcoin", "block")
    response = await sam.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "Invest in Bitcoin today"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "blocked_word" and "\u201cbitcoin\u201d" in error["message"] and "body" in error["fields"]
    titled = await sam.client.post(
        "/api/topics", json={"category_id": category["id"], "title": "Bitcoin tips here", "body": "hello"}
    )
    assert titled.status_code == 422
    post = await reply(sam, topic["id"], "A fine reply")
    edited = await sam.client.patch(f"/api/posts/{post['id']}", json={"body": "Now about bitcoin"})
    assert edited.status_code == 422 and edited.json()["error"]["code"] == "blocked_word"


async def test_require_approval_holds_the_post(admin, sam, topic, pool):
    """A require_approval word: 202 pending_review, a queued_post item saying which word."""
    await add_word(admin, "dm me", "require_approval")
    held = await reply(sam, topic["id"], "DM me for details", status=202)
    item = await review_of(pool, held["id"], "queued_post")
    assert item["reasons"] == ["Watched word \u201cdm me\u201d: held for approval"]


async def test_censor_blots_out_the_word_but_keeps_the_raw_text(admin, sam, topic, client, pool):
    await add_word(admin, "damn", "censor")
    post = await reply(sam, topic["id"], "Damn this week")
    assert "Damn" not in post["cooked"] and "\u25a0\u25a0\u25a0\u25a0 this week" in post["cooked"]
    assert post["raw"] == "Damn this week"
    assert "Damn" not in (await client.get(topic["url"])).text
    [created] = [e for e in await events(pool, "post.created") if e.post_id == post["id"]]
    assert created.text == "\u25a0\u25a0\u25a0\u25a0 this week"


async def test_a_flag_word_puts_the_post_in_the_queue(admin, sam, topic, moderator, pool):
    """A flag word publishes the post and opens a flagged_post item (an automatic post.flagged)."""
    await add_word(admin, "meet up", "flag")
    post = await reply(sam, topic["id"], "Shall we meet up?")
    assert post["status"] == "visible"
    item = await review_of(pool, post["id"], "flagged_post")
    assert item["reasons"] == ["Watched word \u201cmeet up\u201d"] and item["score"] == 0
    [flagged] = await events(pool, "post.flagged")
    assert flagged.flag_id is None and flagged.review_kind == "flagged_post"


# --- safeguarding ------------------------------------------------------------------------------------


async def test_a_safeguarding_match_is_published_offers_support_and_comes_first(
    sam, topic, member_factory, moderator, pool
):
    """Published (201) with the support panel; a safeguarding item tops the queue; post.flagged is sent."""
    spam = await reply(sam, topic["id"], "An advert")
    for _ in range(2):
        await flag(await member_factory(), spam["id"], "spam")
    post = await reply(sam, topic["id"], "Some days I feel I can't go on.")
    assert post["status"] == "visible"
    panel = post["support"]
    assert "116 123" in str(panel) and "85258" in str(panel) and "option 2" in str(panel) and "999" in str(panel)
    items = (await moderator.client.get("/api/review")).json()["items"]
    assert items[0]["kind"] == "safeguarding" and items[0]["post"]["id"] == post["id"]
    assert items[0]["reasons"] == ["Safeguarding phrase \u201ccan't go on\u201d"]
    [flagged] = [e for e in await events(pool, "post.flagged") if e.post_id == post["id"]]
    assert (flagged.reason, flagged.priority, flagged.flag_id) == ("safeguarding", 3, None)
    assert any(e.post_id == post["id"] for e in await events(pool, "post.created"))
    plain = await reply(sam, topic["id"], "A good day today")
    assert "support" not in plain


async def test_the_author_sees_the_support_panel_on_the_page(sam, topic):
    """Through the reply form: the redirect carries the notice and the topic page shows the panel first."""
    page = await sam.client.get(topic["url"])
    token = sam.session.csrf
    response = await sam.client.post(
        f"/t/{topic['id']}/posts", data={"body": "I want to end my life", "csrf_token": token}
    )
    assert response.status_code == 303 and "notice=support" in response.headers["location"]
    shown = await sam.client.get(response.headers["location"])
    assert shown.status_code == 200
    text = shown.text
    assert text.index("Support is here if you need it") < text.index("<h1")
    assert "116 123" in text and "85258" in text and "option 2" in text and "999" in text
    assert page.status_code == 200


async def test_safeguarding_hold_holds_the_post_and_still_offers_support(app, sam, topic, pool):
    """TICA_SAFEGUARDING_HOLD=true: 202, one safeguarding item that holds it, and the panel says so."""
    with settings_changed(app, safeguarding_hold=True):
        held = await reply(sam, topic["id"], "I have thought about suicide", status=202)
    assert held["support"]["post_note"].startswith("Your post will appear once a moderator")
    item = await review_of(pool, held["id"], "safeguarding")
    assert item["priority"] == 3 and any("held for review" in r for r in item["reasons"])
    assert await review_of(pool, held["id"], "queued_post") is None


async def test_an_edit_adding_a_crisis_phrase_reaches_moderators(sam, topic, pool):
    post = await reply(sam, topic["id"], "An ordinary day")
    await sam.client.patch(f"/api/posts/{post['id']}", json={"body": "An ordinary day. I want to die."})
    assert (await review_of(pool, post["id"], "safeguarding"))["status"] == "pending"


async def test_safeguarding_phrases_api(admin, sam, topic, member_factory, client, pool):
    """Built-in phrases can be switched off and on, own ones added and removed; matching follows; audited."""
    listed = (await admin.client.get("/api/admin/safeguarding-phrases")).json()["items"]
    assert {"phrase": "kill myself", "builtin": True, "active": True} in listed
    assert len(listed) == len(screening.DEFAULT_CRISIS_PHRASES)
    assert (await admin.client.delete("/api/admin/safeguarding-phrases/overdose")).status_code == 204
    assert (await admin.client.delete("/api/admin/safeguarding-phrases/overdose")).status_code == 404
    post = await reply(sam, topic["id"], "Talking about overdose awareness week")
    assert "support" not in post
    added = await admin.client.post("/api/admin/safeguarding-phrases", json={"phrase": "give up on everything"})
    assert added.status_code == 201 and added.json() == {
        "phrase": "give up on everything",
        "builtin": False,
        "active": True,
    }
    assert (
        await admin.client.post("/api/admin/safeguarding-phrases", json={"phrase": "Give up on everything"})
    ).status_code == 409
    assert "support" in await reply(sam, topic["id"], "I want to give up on everything")
    assert (await admin.client.post("/api/admin/safeguarding-phrases", json={"phrase": "overdose"})).status_code == 201
    assert (await admin.client.delete("/api/admin/safeguarding-phrases/give%20up%20on%20everything")).status_code == 204
    after = {p["phrase"]: p for p in (await admin.client.get("/api/admin/safeguarding-phrases")).json()["items"]}
    assert after["overdose"]["active"] and "give up on everything" not in after
    assert (await admin.client.delete("/api/admin/safeguarding-phrases/%3Cb%3E")).status_code == 404
    assert (await admin.client.post("/api/admin/safeguarding-phrases", json={"phrase": ""})).status_code == 422
    member = await member_factory()
    assert (await member.client.get("/api/admin/safeguarding-phrases")).status_code == 403
    assert (await client.delete("/api/admin/safeguarding-phrases/overdose")).status_code == 401
    assert await audit_actions(pool) == [
        "safeguarding_phrase.remove",
        "safeguarding_phrase.add",
        "safeguarding_phrase.add",
        "safeguarding_phrase.remove",
    ]


# --- Get support ------------------------------------------------------------------------------------


async def test_support_page_and_api(client):
    """/support and /api/support: Samaritans 116 123, SHOUT 85258, NHS 111 option 2, 999."""
    page = await client.get("/support")
    assert page.status_code == 200
    for needed in ("Get support", "116 123", 'href="tel:116123"', "85258", "111", "option 2", "999"):
        assert needed in page.text, needed
    assert page.text.count("<h1") == 1
    api = (await client.get("/api/support")).json()
    assert [s["name"] for s in api["services"]] == ["Samaritans", "Shout", "NHS 111", "In an emergency"]


async def test_get_support_is_in_the_same_place_on_every_page(client, sam, topic):
    """The header's first menu item is "Get support", for visitors and members, on every kind of page (first, so
    a narrow screen never folds it behind "More")."""
    for who in (client, sam.client):
        for path in ("/", "/categories", topic["url"], "/support", "/login", "/no-such-page"):
            response = await who.get(path)
            if response.status_code == 303:  # /login sends a member on
                continue
            html = response.text
            menu = html[html.index('class="nhsuk-header__navigation-list"') :]
            menu = menu[: menu.index("</ul>")]
            links = [part.split('"')[0] for part in menu.split('href="')[1:]]
            assert links[0] == "/support", (path, links)


# --- rate limits ------------------------------------------------------------------------------------


async def test_posting_too_fast_answers_429_with_retry_after(app, sam, topic):
    with settings_changed(app, new_member_posts_per_minute=2):
        for n in range(2):
            await reply(sam, topic["id"], f"quick {n}")
        response = await sam.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "one more"})
    assert response.status_code == 429
    assert 0 < int(response.headers["retry-after"]) <= 60
    assert "please wait" in response.json()["error"]["message"]


async def test_new_members_have_stricter_limits_and_staff_none(app, sam, topic, moderator, pool):
    """A member who joined long ago gets the ordinary limit; staff are not limited at all."""
    with settings_changed(app, new_member_posts_per_minute=1, posts_per_minute=3):
        await reply(sam, topic["id"], "first")
        await reply(sam, topic["id"], "second", status=429)
        await pool.execute("UPDATE forum.users SET created_at = now() - interval '30 days' WHERE id = $1", sam.id)
        await reply(sam, topic["id"], "third")  # the second try was not counted
        await reply(sam, topic["id"], "fourth")
        await reply(sam, topic["id"], "fifth", status=429)
        for n in range(5):
            await reply(moderator, topic["id"], f"staff {n}")


async def test_topics_per_day(app, sam, category):
    with settings_changed(app, new_member_topics_per_day=1):
        await new_topic(sam, category["id"], "My first topic here")
        response = await sam.client.post(
            "/api/topics", json={"category_id": category["id"], "title": "My second topic", "body": "x"}
        )
    assert response.status_code == 429 and "topics today" in response.json()["error"]["message"]
    assert int(response.headers["retry-after"]) > 3600


async def test_flags_per_day(app, sam, topic, member_factory):
    bea = await member_factory("bea")
    posts = [await reply(sam, topic["id"], f"post {n}") for n in range(2)]
    with settings_changed(app, new_member_flags_per_day=1):
        assert (await flag(bea, posts[0]["id"], "spam")).status_code == 201
        response = await flag(bea, posts[1]["id"], "spam")
    assert response.status_code == 429 and "Get support" in response.json()["error"]["message"]
    assert response.headers["retry-after"]


async def test_the_reply_form_explains_a_rate_limit_kindly(app, sam, topic):
    """The page answers 429 with Retry-After, keeps what was written and says why, in the error summary."""
    with settings_changed(app, new_member_posts_per_minute=1):
        await reply(sam, topic["id"], "first")
        page = await sam.client.post(
            f"/t/{topic['id']}/posts", data={"body": "Words I do not want to lose", "csrf_token": sam.session.csrf}
        )
    assert page.status_code == 429 and page.headers["retry-after"]
    assert "There is a problem" in page.text and "please wait" in page.text
    assert "Words I do not want to lose" in page.text
