"""Revisions: an anonymous author stays anonymous in a post's history, and an earlier version can be
redacted by the post's author or staff: shown to admins alone from then on, audited, and reachable by
no other path (the API, the page, either diff touching it)."""

from __future__ import annotations

import re

import pytest
from moderation_helpers import new_category, new_topic, reply

from services.forum.topics import revisions

SECRET = "my uncle's name is Gerald Pike"


def form(member, **fields):
    return {"csrf_token": member.session.csrf, **fields}


def main_of(html: str) -> str:
    """The page's main content (the header names whoever is signed in)."""
    found = re.search(r"<main\b.*?</main>", html, re.S)
    assert found, html
    return found.group(0)


@pytest.fixture
async def open_category(admin):
    return await new_category(admin, "Lived experience", allow_anonymous=True)


async def edited_post(author, topic, *bodies, **extra):
    """A reply by `author` edited into each of `bodies` in turn."""
    post = await reply(author, topic["id"], bodies[0], **extra)
    for body in bodies[1:]:
        response = await author.client.patch(f"/api/posts/{post['id']}", json={"body": body})
        assert response.status_code == 200, response.text
    return post


async def redact(member, post_id, revision):
    return await member.client.post(f"/api/posts/{post_id}/revisions/{revision}/redact")


# --- anonymous authors -----------------------------------------------------------------------------


async def test_revisions_page_of_an_edited_anonymous_post(admin, moderator, sam, open_category, client):
    """Regression: the page answered 500 (avatar_index(None)); the author stays "Anonymous member"
    for everyone, staff too, who may reveal the author with the audited reveal."""
    topic = await new_topic(admin, open_category["id"])
    post = await edited_post(sam, topic, "What happened to me", "What happened", anonymous=True)
    for viewer in (client, sam.client, moderator.client, admin.client):
        page = await viewer.get(f"/posts/{post['id']}/revisions")
        assert page.status_code == 200, page.text
        main = main_of(page.text)
        assert "Anonymous member" in main and "@sam" not in main and "/u/sam" not in main
        assert ("reveal-author" in main) == (viewer in (moderator.client, admin.client))
    assert "Anonymous member (you)" in main_of((await sam.client.get(f"/posts/{post['id']}/revisions")).text)
    for viewer in (client, sam.client, admin.client):
        items = (await viewer.get(f"/api/posts/{post['id']}/revisions")).json()["items"]
        assert all(i["editor"]["id"] is None and i["editor"]["display_name"] == "Anonymous member" for i in items)


async def test_staff_edit_of_an_anonymous_post_names_the_staff_member_only(admin, sam, open_category, client):
    """A moderator's change is theirs to own; the author's versions keep the pseudonym."""
    topic = await new_topic(admin, open_category["id"])
    post = await reply(sam, topic["id"], "Words", anonymous=True)
    edited = await admin.client.patch(f"/api/posts/{post['id']}", json={"body": "Kinder words", "edit_reason": "tone"})
    assert edited.status_code == 200
    items = (await client.get(f"/api/posts/{post['id']}/revisions")).json()["items"]
    assert [i["editor"]["id"] for i in items] == [None, admin.id]
    main = main_of((await client.get(f"/posts/{post['id']}/revisions")).text)
    assert "/u/ada" in main and "/u/sam" not in main


# --- redacting through the API ---------------------------------------------------------------------


async def test_author_redacts_an_earlier_version(topic, sam, pool):
    """200 with the version as the author now sees it; a second call changes nothing (idempotent)."""
    post = await edited_post(sam, topic, SECRET, "Something I'm happier to share")
    response = await redact(sam, post["id"], 1)
    assert response.status_code == 200, response.text
    item = response.json()
    assert item["revision"] == 1 and item["raw"] == "" and item["content_note"] is None
    assert item["redacted"]["by"] == "author" and item["redacted"]["at"] and item["can_redact"] is False
    row = await pool.fetchrow(
        "SELECT raw, redacted_by, redacted_at FROM forum.post_revisions WHERE post_id = $1", post["id"]
    )
    assert row["raw"] == SECRET and row["redacted_by"] == sam.id  # kept, for admins
    again = await redact(sam, post["id"], 1)
    assert again.status_code == 200 and again.json() == item
    entries = await pool.fetch(
        "SELECT actor_id, before, after FROM forum.audit_log WHERE action = 'post.revision_redact'"
    )
    assert len(entries) == 1 and entries[0]["actor_id"] == sam.id
    assert SECRET not in str(entries[0]["before"]) + str(entries[0]["after"])


async def test_refusals_say_why(topic, sam, member_factory, client):
    """The current version 409, a version the post lacks 404, someone else's post 403, a visitor 401."""
    post = await edited_post(sam, topic, "one", "two")
    current = await redact(sam, post["id"], 2)
    assert current.status_code == 409 and "edit the post" in current.json()["error"]["message"]
    for missing in (3, 99, 0, "x"):
        assert (await sam.client.post(f"/api/posts/{post['id']}/revisions/{missing}/redact")).status_code == 404
    assert (await redact(sam, 10**9, 1)).status_code == 404
    other = await member_factory("pat")
    refused = await redact(other, post["id"], 1)
    assert refused.status_code == 403 and "your own posts" in refused.json()["error"]["message"]
    assert (await client.post(f"/api/posts/{post['id']}/revisions/1/redact")).status_code == 401
    unedited = await reply(sam, topic["id"], "never changed")
    assert (await redact(sam, unedited["id"], 1)).status_code == 409


async def test_outsiders_get_404(admin, sam, member_factory):
    """A post in a group's category is not there for someone outside the group."""
    created = await admin.client.post("/api/groups", json={"name": "Peer support", "access": "open"})
    assert created.status_code == 201, created.text
    group = created.json()
    private = await new_category(admin, "Private", group_ids=[group["id"]])
    topic = await new_topic(admin, private["id"])
    post = await edited_post(admin, topic, "one", "two")
    outsider = await member_factory("out")
    assert (await redact(outsider, post["id"], 1)).status_code == 404
    assert (await outsider.client.get(f"/posts/{post['id']}/revisions/1/redact")).status_code == 404


async def test_moderator_redacts_and_is_audited(topic, sam, moderator, admin, pool):
    """A moderator's redaction of a member's post says "by a moderator", and the log has it in words."""
    post = await edited_post(sam, topic, SECRET, "Later words")
    response = await redact(moderator, post["id"], 1)
    assert response.status_code == 200 and response.json()["redacted"]["by"] == "moderator"
    assert response.json()["raw"] == ""
    [entry] = await pool.fetch(
        "SELECT actor_id, target_id, after FROM forum.audit_log WHERE action = 'post.revision_redact'"
    )
    assert (entry["actor_id"], entry["target_id"]) == (moderator.id, post["id"])
    log = (await admin.client.get("/admin/audit-log?action=post.revision_redact")).text
    assert "removed an earlier version of" in log and "(version 1, so only admins can read it)" in log
    assert SECRET not in log


async def test_anonymous_authors_redaction_keeps_the_pseudonym(admin, sam, open_category, pool):
    """The audit log names who acted, so an anonymous post's author redacting is recorded on the
    version only (who and when), never in the log."""
    topic = await new_topic(admin, open_category["id"])
    post = await edited_post(sam, topic, SECRET, "Less", anonymous=True)
    assert (await redact(sam, post["id"], 1)).json()["redacted"]["by"] == "author"
    assert await pool.fetchval("SELECT count(*) FROM forum.audit_log WHERE action = 'post.revision_redact'") == 0
    assert await pool.fetchval("SELECT redacted_by FROM forum.post_revisions WHERE post_id = $1", post["id"]) == sam.id


# --- every role, for a redacted version ------------------------------------------------------------


async def test_every_role_sees_a_redacted_version_as_it_may(topic, sam, moderator, admin, member_factory, client):
    """Visitor, member, author, moderator: "removed by its author", no text, no content note, and
    neither diff touching it (version 2 is shown whole). Admins: the text, marked as removed."""
    post = await reply(sam, topic["id"], "Before " + SECRET)
    url = f"/api/posts/{post['id']}"
    assert (
        await sam.client.patch(url, json={"body": "Middle " + SECRET, "content_note": "family names"})
    ).status_code == 200
    assert (await sam.client.patch(url, json={"body": "Now only this", "content_note": ""})).status_code == 200
    assert (await redact(sam, post["id"], 2)).status_code == 200
    member = await member_factory("pat")
    for name, viewer in (
        ("visitor", client),
        ("member", member.client),
        ("author", sam.client),
        ("moderator", moderator.client),
    ):
        items = (await viewer.get(f"{url}/revisions")).json()["items"]
        assert [i["raw"] for i in items] == ["Before " + SECRET, "", "Now only this"], name
        assert items[1]["content_note"] is None and items[1]["redacted"]["by"] == "author", name
        assert [i["can_redact"] for i in items] == [name in ("author", "moderator"), False, False], name
        page = await viewer.get(f"/posts/{post['id']}/revisions")
        assert page.status_code == 200, name
        main = main_of(page.text)
        assert "Middle" not in main and "family names" not in main, name
        assert "This version was removed by its author" in main, name
        assert main.count(SECRET.replace("'", "&#39;")) == 1, name  # version 1, whole: no diff beside version 2
        assert main.count("<del>") == 1 and "Now only this" in main, name  # <del> in the key only
        assert ("Remove this version" in main) == (name in ("author", "moderator")), name
    items = (await admin.client.get(f"{url}/revisions")).json()["items"]
    assert items[1]["raw"] == "Middle " + SECRET and items[1]["content_note"] == "family names"
    assert items[1]["redacted"]["by"] == "author" and items[1]["can_redact"] is False
    main = main_of((await admin.client.get(f"/posts/{post['id']}/revisions")).text)
    assert "Only admins can read it." in main and "Middle" in main and "family names" in main


async def test_only_earlier_versions_reach_anyone_else(topic, sam, client, pool):
    """The post itself, the topic page and the forum's export show the current text only."""
    post = await edited_post(sam, topic, SECRET, "Current")
    await redact(sam, post["id"], 1)
    assert SECRET not in (await client.get(f"/api/posts/{post['id']}")).text
    assert SECRET.replace("'", "&#39;") not in (await client.get(topic["url"])).text
    edited = await pool.fetch("SELECT payload FROM forum.outbox WHERE type = 'post.edited'")
    assert edited and all(SECRET not in str(row["payload"]) for row in edited)


# --- pages: the confirmation, without JavaScript ---------------------------------------------------


async def test_confirm_and_remove_through_the_pages(topic, sam, member_factory, client, pool):
    post = await edited_post(sam, topic, SECRET, "Current words")
    url = f"/posts/{post['id']}/revisions/1/redact"
    listing = main_of((await sam.client.get(f"/posts/{post['id']}/revisions")).text)
    assert f'href="{url}"' in listing and "you can remove it" in listing
    confirm = await sam.client.get(url)
    assert confirm.status_code == 200 and 'name="csrf_token"' in confirm.text
    main = main_of(confirm.text)
    assert "Remove version 1 of post 2?" in main and "change your mind about what you share" in main
    assert (await sam.client.post(url, data={})).status_code == 403  # no CSRF token
    assert await pool.fetchval("SELECT redacted_at FROM forum.post_revisions WHERE post_id = $1", post["id"]) is None
    done = await sam.client.post(url, data=form(sam))
    assert done.status_code == 303 and done.headers["location"] == f"/posts/{post['id']}/revisions?removed=1#revision-1"
    after = main_of((await sam.client.get(done.headers["location"])).text)
    assert "Version 1 is removed." in after and "This version was removed by its author" in after
    assert "Gerald" not in after and f'href="{url}"' not in after
    again = await sam.client.get(url)
    assert again.status_code == 303 and again.headers["location"].endswith("?removed=1#revision-1")
    assert (await sam.client.post(url, data=form(sam))).status_code == 303  # idempotent
    current = await sam.client.get(f"/posts/{post['id']}/revisions/2/redact")
    assert current.status_code == 409 and "edit the post" in current.text
    other = await member_factory("pat")
    assert (await other.client.get(url)).status_code == 403
    visitor = await client.get(url)
    assert visitor.status_code == 303 and visitor.headers["location"].startswith("/login?next=")
    assert "Gerald" not in (await client.get(f"/posts/{post['id']}/revisions?removed=1")).text


async def test_moderator_confirmation_says_the_author_will_know(topic, sam, moderator):
    post = await edited_post(sam, topic, "one", "two")
    main = main_of((await moderator.client.get(f"/posts/{post['id']}/revisions/1/redact")).text)
    assert "a moderator removed it" in main and "audit log" in main


# --- the action, called directly ---------------------------------------------------------------------


async def test_redact_revision_action(topic, sam, pool):
    """redact_revision says whether it changed anything."""
    post = await edited_post(sam, topic, "one", "two", "three")
    async with pool.acquire() as conn, conn.transaction():
        item, done = await revisions.redact_revision(conn, sam.session, post["id"], 2)
        assert done and item["redacted"]["by"] == revisions.REDACTED_BY_AUTHOR
        item, done = await revisions.redact_revision(conn, sam.session, post["id"], 2)
        assert not done and item["revision"] == 2
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM forum.post_revisions WHERE post_id = $1 AND redacted_at IS NOT NULL", post["id"]
        )
        == 1
    )


async def test_audit_log_keeps_redacted_text_for_admins(topic, sam, moderator, admin):
    """A moderator's edit keeps the text before and after in the log; once that version is redacted,
    moderators reading the log (and a member's record) no longer get it; admins still do."""
    post = await reply(sam, topic["id"], SECRET)
    changed = await moderator.client.patch(
        f"/api/posts/{post['id']}", json={"body": "Kept private", "edit_reason": "A name was shared"}
    )
    assert changed.status_code == 200
    log = "/api/admin/audit-log?action=post.edit"
    assert SECRET in (await moderator.client.get(log)).text  # before it is redacted
    assert (await redact(sam, post["id"], 1)).status_code == 200
    entries = (await moderator.client.get(log)).json()["items"]
    assert entries and SECRET not in str(entries)
    assert entries[0]["before"]["revision"] == 1 and entries[0]["after"]["raw"] == "Kept private"
    record = await moderator.client.get(f"/api/users/{sam.id}/moderation")
    assert record.status_code == 200 and SECRET not in record.text
    assert SECRET in (await admin.client.get(log)).text


async def test_audit_log_hides_the_text_after_an_edit_once_that_version_is_redacted(topic, sam, moderator, admin):
    """A moderator's edit made version 2; its author later edits again and redacts version 2: the
    log's `after` loses the text for moderators too."""
    post = await reply(sam, topic["id"], "First words")
    url = f"/api/posts/{post['id']}"
    changed = await moderator.client.patch(url, json={"body": "Moderated " + SECRET, "edit_reason": "Tone"})
    assert changed.status_code == 200
    assert (await sam.client.patch(url, json={"body": "Third words"})).status_code == 200
    assert (await redact(sam, post["id"], 2)).status_code == 200
    log = "/api/admin/audit-log?action=post.edit"
    [entry] = (await moderator.client.get(log)).json()["items"]
    assert entry["before"]["raw"] == "First words" and "raw" not in entry["after"] and entry["after"]["revision"] == 2
    assert SECRET in (await admin.client.get(log)).text
