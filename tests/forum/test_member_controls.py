"""Member controls: mute and ignore (private, user.muted for notify), ignored members' posts
folded away, the content-note choice, and pseudonymous posting ("Anonymous member")."""

from __future__ import annotations

from moderation_helpers import (
    audit_actions,
    envelopes,
    events,
    new_category,
    new_topic,
    reply,
)

# --- mute and ignore ---------------------------------------------------------------------------


async def test_mute_ignore_and_undo(sam, member_factory, pool):
    """PUT /api/users/{id}/mute: user.muted only when something changed; GET /api/me/controls lists them."""
    bea = await member_factory("bea")
    url = f"/api/users/{bea.id}/mute"
    response = await sam.client.put(url, json={"level": "muted"})
    assert response.status_code == 200 and response.json() == {"user_id": bea.id, "username": "bea", "level": "muted"}
    await sam.client.put(url, json={"level": "muted"})
    await sam.client.put(url, json={"level": "ignored"})
    controls = (await sam.client.get("/api/me/controls")).json()
    assert controls["content_notes"] == "collapse"
    assert [(m["user"]["username"], m["level"]) for m in controls["members"]] == [("bea", "ignored")]
    await sam.client.put(url, json={"level": "none"})
    await sam.client.put(url, json={"level": "none"})
    assert (await sam.client.get("/api/me/controls")).json()["members"] == []
    assert [(e.user_id, e.muted_user_id, e.level) for e in await events(pool, "user.muted")] == [
        (sam.id, bea.id, "muted"),
        (sam.id, bea.id, "ignored"),
        (sam.id, bea.id, "none"),
    ]
    assert await audit_actions(pool) == []  # a member's own choice, not a moderation action


async def test_mute_errors(sam, moderator, client):
    """401 visitor, 403 no CSRF, 404 nobody, 409 staff, 422 yourself or a bad level."""
    assert (await client.put(f"/api/users/{sam.id}/mute", json={"level": "muted"})).status_code == 401
    no_csrf = await sam.client.put(
        f"/api/users/{moderator.id}/mute", json={"level": "muted"}, headers={"X-CSRF-Token": ""}
    )
    assert no_csrf.status_code == 403
    assert (await sam.client.put("/api/users/999999/mute", json={"level": "muted"})).status_code == 404
    assert (await sam.client.put("/api/users/x/mute", json={"level": "muted"})).status_code == 404
    staff = await sam.client.put(f"/api/users/{moderator.id}/mute", json={"level": "ignored"})
    assert staff.status_code == 409 and staff.json()["error"]["code"] == "is_staff"
    assert (await sam.client.put(f"/api/users/{sam.id}/mute", json={"level": "muted"})).status_code == 422
    assert (await sam.client.put(f"/api/users/{moderator.id}/mute", json={"level": "blocked"})).status_code == 422
    assert (await sam.client.put(f"/api/users/{moderator.id}/mute", content=b"nope")).status_code == 400


async def test_an_ignored_members_posts_are_folded_away(sam, topic, member_factory):
    """Ignored: their posts start folded on the topic page. Muted only: shown as usual."""
    bea = await member_factory("bea")
    cal = await member_factory("cal")
    await reply(bea, topic["id"], "Words from Bea")
    await reply(cal, topic["id"], "Words from Cal")
    await sam.client.put(f"/api/users/{bea.id}/mute", json={"level": "ignored"})
    await sam.client.put(f"/api/users/{cal.id}/mute", json={"level": "muted"})
    html = (await sam.client.get(topic["url"])).text
    folded = html[html.index("A post by a member you ignore") :]
    assert "Words from Bea" in folded[:2000]
    assert html.count("A post by a member you ignore") == 1
    assert "A post by a member you ignore" not in (await bea.client.get(topic["url"])).text


async def test_content_notes_folded_or_open(sam, topic, member_factory, client):
    """Posts with a content note start folded; a member who chose "show" gets them open."""
    bea = await member_factory("bea")
    await reply(bea, topic["id"], "Hard to read", content_note="loss")
    assert "<details" in (page := (await sam.client.get(topic["url"])).text) and " open>" not in page
    response = await sam.client.put("/api/me/controls", json={"content_notes": "show"})
    assert response.status_code == 200 and response.json()["content_notes"] == "show"
    assert " open>" in (await sam.client.get(topic["url"])).text
    assert " open>" not in (await client.get(topic["url"])).text
    assert (await sam.client.put("/api/me/controls", json={"content_notes": "hide"})).status_code == 422
    assert (await client.get("/api/me/controls")).status_code == 401


async def test_controls_pages(sam, member_factory, client):
    """/me/controls and /u/{name}/mute work without JavaScript; visitors are sent to log in."""
    bea = await member_factory("bea")
    assert (await client.get("/me/controls")).status_code == 303
    assert (await client.get("/u/bea/mute")).status_code == 303
    page = await sam.client.get("/u/bea/mute")
    assert page.status_code == 200 and page.text.count("<h1") == 1
    saved = await sam.client.post("/u/bea/mute", data={"level": "ignored", "csrf_token": sam.session.csrf})
    assert saved.status_code == 303 and saved.headers["location"] == "/me/controls?saved=1"
    listed = await sam.client.get("/me/controls?saved=1")
    assert "Your settings are saved" in listed.text and "Ignore: no notifications" in listed.text
    stop = await sam.client.post(
        "/me/controls", data={"member": str(bea.id), "level": "none", "csrf_token": sam.session.csrf}
    )
    assert stop.status_code == 303
    assert "You do not mute or ignore anyone" in (await sam.client.get("/me/controls")).text
    notes = await sam.client.post("/me/controls", data={"content_notes": "show", "csrf_token": sam.session.csrf})
    assert notes.status_code == 303
    assert (await sam.client.get("/api/me/controls")).json()["content_notes"] == "show"
    assert (await sam.client.post("/u/bea/mute", data={"level": "ignored"})).status_code == 403  # no CSRF token
    assert (await sam.client.get("/u/nobody-here/mute")).status_code == 404
    bad = await sam.client.post("/u/bea/mute", data={"level": "forever", "csrf_token": sam.session.csrf})
    assert bad.status_code == 422 and "There is a problem" in bad.text


# --- pseudonymous posting --------------------------------------------------------------------------


async def test_anonymous_posting_hides_the_author(admin, sam, member_factory, moderator, client, pool):
    """ "Anonymous member" to everyone (moderators too) in API, pages, revisions and events; reveals are audited."""
    stories = await new_category(admin, "Personal narratives", allow_anonymous=True)
    assert stories["allow_anonymous"] is True
    topic = await new_topic(sam, stories["id"], "What happened to me", "My story", anonymous=True, kind="narrative")
    assert topic["author"] == {"id": None, "username": "anonymous", "display_name": "Anonymous member"}
    assert topic["anonymous"] is True and topic["first_post"]["author"]["username"] == "anonymous"
    # The author's own replies stay anonymous unless they say otherwise.
    own_reply = await reply(sam, topic["id"], "Thank you all")
    assert own_reply["anonymous"] is True
    bea = await member_factory("bea")
    answer = await reply(bea, topic["id"], "Thank you for sharing", reply_to=topic["first_post"]["id"])
    await sam.client.patch(f"/api/posts/{own_reply['id']}", json={"body": "Thank you all, truly"})

    for who in (client, bea.client, moderator.client):
        data = (await who.get(f"/api/topics/{topic['id']}")).json()
        assert "sam" not in str(data["author"]) and all("sam" not in str(p["author"]) for p in data["posts"])
        html = (await who.get(topic["url"])).text
        assert "Anonymous member" in html and "/u/sam" not in html and "Sam" not in html
        assert "/u/sam" not in (await who.get("/")).text
        revisions = (await who.get(f"/api/posts/{own_reply['id']}/revisions")).json()["items"]
        assert all(r["editor"]["username"] == "anonymous" for r in revisions)
    quoted = await bea.client.get(f"{topic['url']}?quote={topic['first_post']['id']}")
    assert "Anonymous member, post:" in quoted.text and "sam," not in quoted.text
    assert "in reply to" in (await client.get(topic["url"])).text
    assert answer["author"]["username"] == "bea"

    created = await envelopes(pool, "topic.created")
    posts = await envelopes(pool, "post.created")
    edited = await envelopes(pool, "post.edited")
    for envelope in [*created, *posts[:2], *edited]:
        assert envelope.actor_id is None, envelope.type
        assert envelope.data["author_username"] == "anonymous" and envelope.data["anonymous"] is True
    assert posts[2].data["anonymous"] is False and posts[2].data["reply_to_user_id"] == sam.id  # notify tells Sam

    reveal = await moderator.client.post(f"/api/posts/{own_reply['id']}/reveal-author")
    assert reveal.status_code == 200 and reveal.json()["author"]["username"] == "sam"
    entry = await pool.fetchrow("SELECT * FROM forum.audit_log WHERE action = 'post.reveal_author'")
    assert (entry["actor_id"], entry["target_type"], entry["target_id"]) == (moderator.id, "post", own_reply["id"])
    assert (await bea.client.post(f"/api/posts/{own_reply['id']}/reveal-author")).status_code == 403
    assert (await moderator.client.post(f"/api/posts/{answer['id']}/reveal-author")).status_code == 409
    member_page = (await moderator.client.get(f"/api/users/{sam.id}/moderation")).json()
    assert member_page["counts"]["published"] == 0 and member_page["reviews"] == []


async def test_anonymous_posting_only_where_allowed(admin, sam, category, topic):
    refused = await sam.client.post(
        "/api/topics", json={"category_id": category["id"], "title": "Not here", "body": "x", "anonymous": True}
    )
    assert refused.status_code == 422 and "anonymous" in refused.json()["error"]["fields"]
    in_reply = await sam.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "x", "anonymous": True})
    assert in_reply.status_code == 422
    assert (
        await sam.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "x", "anonymous": "yes"})
    ).status_code == 422
    changed = await admin.client.patch(f"/api/categories/{category['id']}", json={"allow_anonymous": True})
    assert changed.status_code == 200 and changed.json()["allow_anonymous"] is True
    assert (await reply(sam, topic["id"], "Now I can", anonymous=True))["anonymous"] is True


async def test_the_reveal_button_on_the_page(admin, sam, moderator, pool):
    """Moderators see a "Reveal author" button (not the name); pressing it shows the author and is audited."""
    stories = await new_category(admin, "Stories", allow_anonymous=True)
    topic = await new_topic(sam, stories["id"], "My own story", "Told anonymously", anonymous=True)
    page = (await moderator.client.get(topic["url"])).text
    assert "Reveal author" in page and "/u/sam" not in page
    shown = await moderator.client.post(
        f"/posts/{topic['first_post']['id']}/reveal-author", data={"csrf_token": moderator.session.csrf}
    )
    assert shown.status_code == 200 and "@sam" in shown.text and "audit log" in shown.text
    assert await audit_actions(pool) == ["post.reveal_author"]
    assert "Reveal author" not in (await sam.client.get(topic["url"])).text
