"""Moderation pages without JavaScript: the flag dialog, the review queue (priority order, context,
one-click actions, 409 when someone else acted), appeals, hiding a post, moderating a topic,
watched words and safeguarding phrases; all escaped."""

from __future__ import annotations

import html

from moderation_helpers import (
    flag,
    reply,
    review_of,
    settings_changed,
)
from xss_corpus import PAYLOADS, assert_inert


def form(member, **fields):
    return {**fields, "csrf_token": member.session.csrf}


async def test_flag_dialog(sam, topic, member_factory, pool, client):
    """GET shows the reasons with hints; POST records the flag and thanks; errors use the error summary."""
    post = await reply(sam, topic["id"], "Worrying words")
    bea = await member_factory("bea")
    page = await bea.client.get(f"/posts/{post['id']}/flag")
    assert page.status_code == 200 and page.text.count("<h1") == 1
    for label in ("Off topic", "Inappropriate", "Spam", "Safeguarding concern", "Something else"):
        assert label in page.text
    empty = await bea.client.post(f"/posts/{post['id']}/flag", data=form(bea))
    assert empty.status_code == 422 and 'href="#reason"' in empty.text
    other = await bea.client.post(f"/posts/{post['id']}/flag", data=form(bea, reason="other"))
    assert other.status_code == 422 and "#note" in other.text
    done = await bea.client.post(f"/posts/{post['id']}/flag", data=form(bea, reason="safeguarding", note="Worried"))
    assert done.status_code == 200 and "Thank you for flagging" in done.text and "looked at first" in done.text
    assert (await review_of(pool, post["id"], "safeguarding"))["status"] == "pending"
    assert (await bea.client.get(f"/posts/{post['id']}/flag")).status_code == 409
    assert "You flagged this post" in (await bea.client.get(topic["url"])).text
    assert (await sam.client.get(f"/posts/{post['id']}/flag")).status_code == 403
    assert (await bea.client.post(f"/posts/{post['id']}/flag", data={"reason": "spam"})).status_code == 403
    visitor = await client.get(f"/posts/{post['id']}/flag")
    assert visitor.status_code == 303 and visitor.headers["location"].startswith("/login")


async def test_topic_page_offers_the_right_links(sam, topic, member_factory, moderator):
    """Members see Flag and Mute or ignore on others' posts; moderators also Hide and Moderate topic."""
    post = await reply(sam, topic["id"], "A post")
    bea = await member_factory("bea")
    html = (await bea.client.get(topic["url"])).text
    assert f'href="/posts/{post["id"]}/flag"' in html and 'href="/u/sam/mute"' in html
    assert f'href="/posts/{post["id"]}/moderate"' not in html and "Moderate topic" not in html
    own = (await sam.client.get(topic["url"])).text
    assert f'href="/posts/{post["id"]}/flag"' not in own
    staff = (await moderator.client.get(topic["url"])).text
    assert f'href="/posts/{post["id"]}/moderate"' in staff and f'href="/topics/{topic["id"]}/moderate"' in staff
    assert 'href="/review"' in staff and 'href="/review"' not in html


async def test_queue_page_orders_items_and_acts_in_one_click(app, sam, topic, member_factory, moderator, pool):
    """Safeguarding first; each item shows reasons, flags, the post and its buttons; a button acts at once."""
    spam = await reply(sam, topic["id"], "Cheap watches")
    await flag(await member_factory(), spam["id"], "spam")
    with settings_changed(app, new_member_review_posts=10):
        waiting = await reply(sam, topic["id"], "My first words", status=202)
    crisis = await reply(sam, topic["id"], "I feel suicidal tonight")
    page = await moderator.client.get("/review")
    assert page.status_code == 200 and page.text.count("<h1") == 1
    assert 'id="search-field" name="q" type="search" autocomplete="off" placeholder="Search" value=""' in page.text
    text = page.text
    order = [
        text.index(f'id="review-{(await review_of(pool, p, k))["id"]}"')
        for p, k in ((crisis["id"], "safeguarding"), (spam["id"], "flagged_post"), (waiting["id"], "queued_post"))
    ]
    assert order == sorted(order)
    assert "Safeguarding phrase" in text and "Cheap watches" in text and "Approve and publish" in text
    assert 'value="ignore"' in text and "Keep visible" in text and 'value="reject"' in text
    item = await review_of(pool, waiting["id"], "queued_post")
    done = await moderator.client.post(f"/review/{item['id']}", data=form(moderator, action="approve"))
    assert done.status_code == 303 and done.headers["location"] == "/review?done=approve"
    confirmed = html.unescape((await moderator.client.get("/review?done=approve")).text)
    assert "You approved " in confirmed and "and published it." in confirmed  # in words, not "Done: Approve"
    again = await moderator.client.post(f"/review/{item['id']}", data=form(moderator, action="reject", reason="x"))
    assert again.status_code == 409 and "already dealt with this item" in again.text
    spam_item = await review_of(pool, spam["id"], "flagged_post")
    no_reason = await moderator.client.post(f"/review/{spam_item['id']}", data=form(moderator, action="hide"))
    assert no_reason.status_code == 422 and f'href="#reason-{spam_item["id"]}"' in no_reason.text
    assert (await moderator.client.post(f"/review/{spam_item['id']}", data={"action": "hide"})).status_code == 403
    assert (await moderator.client.post("/review/999999", data=form(moderator, action="approve"))).status_code == 404
    bad = await moderator.client.post(f"/review/{spam_item['id']}", data=form(moderator, action="explode"))
    assert bad.status_code == 422
    resolved = await moderator.client.get("/review?status=approved")
    assert "My first words" in resolved.text and "Approve</strong> by Mo" in resolved.text
    assert (await moderator.client.get("/review?status=nope")).status_code == 400


async def test_hide_page_and_author_view(sam, topic, moderator, member_factory):
    """A moderator hides a post with a reason; its author sees the reason and how to appeal; others a placeholder."""
    post = await reply(sam, topic["id"], "Something hurtful")
    page = await moderator.client.get(f"/posts/{post['id']}/moderate")
    assert page.status_code == 200 and "Reason (the author sees it)" in page.text
    missing = await moderator.client.post(f"/posts/{post['id']}/moderate", data=form(moderator))
    assert missing.status_code == 422 and "There is a problem" in missing.text
    done = await moderator.client.post(f"/posts/{post['id']}/moderate", data=form(moderator, reason="It named someone"))
    assert done.status_code == 303
    own = (await sam.client.get(topic["url"])).text
    assert "Your post is hidden from other members" in own and "It named someone" in own
    assert f'href="/posts/{post["id"]}/appeal"' in own
    other = (await (await member_factory()).client.get(topic["url"])).text
    assert "This post was hidden by a moderator" in other and "It named someone" not in other
    restore = await moderator.client.get(f"/posts/{post['id']}/moderate")
    assert "Restore post" in restore.text


async def test_appeal_page(sam, topic, moderator):
    post = await reply(sam, topic["id"], "My words")
    await moderator.client.post(f"/api/posts/{post['id']}/hide", json={"reason": "Too graphic"})
    page = await sam.client.get(f"/posts/{post['id']}/appeal")
    assert page.status_code == 200 and "Too graphic" in page.text
    empty = await sam.client.post(f"/posts/{post['id']}/appeal", data=form(sam, text="  "))
    assert empty.status_code == 422 and 'href="#text"' in empty.text
    sent = await sam.client.post(f"/posts/{post['id']}/appeal", data=form(sam, text="I added a content note"))
    assert sent.status_code == 303
    assert "You have appealed" in (await sam.client.get(topic["url"])).text
    assert (await sam.client.post(f"/posts/{post['id']}/appeal", data=form(sam, text="again"))).status_code == 409
    assert "I added a content note" in (await moderator.client.get("/review?kind=appeal")).text


async def test_topic_moderation_page(topic, moderator, admin):
    other = (await admin.client.post("/api/categories", json={"name": "Practice"})).json()
    page = await moderator.client.get(f"/topics/{topic['id']}/moderate")
    assert page.status_code == 200 and "Closed: only moderators can reply" in page.text
    done = await moderator.client.post(
        f"/topics/{topic['id']}/moderate",
        data=form(moderator, closed="1", category_id=str(other["id"]), reason="Better there"),
    )
    assert done.status_code == 303 and done.headers["location"] == topic["url"]
    data = (await moderator.client.get(f"/api/topics/{topic['id']}")).json()
    assert data["closed"] is True and data["pinned"] is False and data["category_id"] == other["id"]
    bad = await moderator.client.post(f"/topics/{topic['id']}/moderate", data=form(moderator, category_id="999999"))
    assert bad.status_code == 422
    assert (await moderator.client.get("/topics/999999/moderate")).status_code == 404


async def test_watched_words_page(admin):
    page = await admin.client.get("/admin/watched-words")
    assert page.status_code == 200 and "No words are watched" in page.text
    added = await admin.client.post("/admin/watched-words", data=form(admin, word="crypto", action="flag"))
    assert added.status_code == 303
    listed = (await admin.client.get("/admin/watched-words")).text
    assert "crypto" in listed and "Flag the post for moderators" in listed
    dup = await admin.client.post("/admin/watched-words", data=form(admin, word="Crypto", action="block"))
    assert dup.status_code == 409 and "already watched" in dup.text
    empty = await admin.client.post("/admin/watched-words", data=form(admin, word="", action=""))
    assert empty.status_code == 422 and 'href="#word"' in empty.text
    word_id = (await admin.client.get("/api/admin/watched-words")).json()["items"][0]["id"]
    assert (await admin.client.post(f"/admin/watched-words/{word_id}/delete", data=form(admin))).status_code == 303
    assert (await admin.client.post(f"/admin/watched-words/{word_id}/delete", data=form(admin))).status_code == 404


async def test_safeguarding_page(admin):
    page = await admin.client.get("/admin/safeguarding")
    assert page.status_code == 200 and "kill myself" in page.text and "published straight away" in page.text
    off = await admin.client.post("/admin/safeguarding", data=form(admin, phrase="overdose", action="remove"))
    assert off.status_code == 303
    assert "Built-in phrases you switched off" in (await admin.client.get("/admin/safeguarding")).text
    on = await admin.client.post("/admin/safeguarding", data=form(admin, phrase="overdose", action="add"))
    assert on.status_code == 303
    added = await admin.client.post("/admin/safeguarding", data=form(admin, phrase="no way out", action="add"))
    assert added.status_code == 303 and "no way out" in (await admin.client.get("/admin/safeguarding")).text
    bad = await admin.client.post("/admin/safeguarding", data=form(admin, phrase="<script>", action="add"))
    assert bad.status_code == 422 and "&lt;script&gt;" in bad.text


async def test_what_people_wrote_stays_inert_on_moderation_pages(sam, topic, member_factory, moderator, admin, roomy):
    """Payloads as posts, flag notes, appeals and reasons: the queue, member and audit pages stay inert."""
    payloads = [p for p in PAYLOADS if "\x00" not in p][:25]
    bea = await member_factory("bea")
    for n, payload in enumerate(payloads):
        post = await reply(sam, topic["id"], payload, content_note=payload[:100])
        await flag(bea, post["id"], "other", note=payload[:1000])
        if n % 5 == 0:
            await moderator.client.post(f"/api/posts/{post['id']}/hide", json={"reason": payload[:500]})
            await sam.client.post(f"/api/posts/{post['id']}/appeal", json={"text": payload})
    for path in ("/review", "/review?status=all", "/review?kind=appeal", "/review/members/sam", topic["url"]):
        page = await moderator.client.get(path)
        assert page.status_code == 200, path
        assert_inert(page.text, page=True, allow_script_src=True)
    assert_inert((await admin.client.get("/admin/audit-log")).text, page=True, allow_script_src=True)
    assert_inert((await sam.client.get(topic["url"])).text, page=True, allow_script_src=True)


async def test_list_pages_leave_the_search_box_empty(client, topic):
    """The header's search box shows a search's words only, never a page's own list settings."""
    for path in ("/", "/?sort=top", "/c/general"):
        page = await client.get(path)
        assert page.status_code == 200 and 'placeholder="Search" value=""' in page.text, path
