"""The notifications and preferences pages: work without JavaScript, forms carry CSRF, content is escaped."""

from __future__ import annotations

import re

from notify_helpers import category, post, topic
from xss_corpus import PAYLOADS, assert_inert


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the form carries a CSRF token"
    return found.group(1)


async def _alice_with_replies(world, member_factory, *, title: str = "Grounding techniques", count: int = 2):
    alice = await member_factory("alice")
    await world.join(alice.id, "alice")
    await world.emit(
        category(1), topic(10, author_id=alice.id, title=title), post(100, topic_id=10, number=1, author_id=alice.id)
    )
    for i in range(count):
        await world.emit(
            post(
                101 + i,
                topic_id=10,
                number=2 + i,
                author_id=77,
                author_username="bob",
                reply_to_user_id=alice.id,
                topic_title=title,
            )
        )
    return alice


async def test_pages_send_visitors_to_log_in(client):
    for path in ("/notifications", "/preferences", "/notifications/1"):
        response = await client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == f"/login?next={path.replace('/', '%2F')}"


async def test_notifications_page_lists_and_marks_read(world, member_factory):
    alice = await _alice_with_replies(world, member_factory)
    page = await alice.client.get("/notifications")
    assert page.status_code == 200
    html = page.text
    assert html.count("<h1") == 1
    assert "You have 2 unread notifications." in html
    assert "bob replied to your post in “Grounding techniques”" in html
    # Progressive enhancement: the live script and the header's count hook (hidden until live.js fills it).
    assert '<script src="/static/tica/js/live.js" defer></script>' in html
    assert (
        f'id="tica-notification-count" class="nhsuk-tag nhsuk-tag--blue" data-live-channel="user:{alice.id}" hidden'
        in html
    )
    assert_inert(html, page=True, allow_script_src=True)
    token = _csrf(html)
    # One of them, by its own form.
    first_id = re.search(r'name="id" value="(\d+)"', html).group(1)
    done = await alice.client.post("/notifications/read", data={"csrf_token": token, "id": first_id})
    assert done.status_code == 303 and done.headers["location"] == "/notifications?marked=1"
    assert "You have 1 unread notification." in (await alice.client.get("/notifications")).text
    # All of them.
    done = await alice.client.post("/notifications/read", data={"csrf_token": token, "all": "1"})
    assert done.status_code == 303
    after = await alice.client.get(done.headers["location"])
    assert "You are all caught up." in after.text and "Marked as read." in after.text


async def test_mark_read_form_without_csrf_is_refused(world, member_factory):
    alice = await _alice_with_replies(world, member_factory)
    response = await alice.client.post("/notifications/read", data={"all": "1"})
    assert response.status_code == 403
    assert "This form has expired" in response.text
    response = await alice.client.post("/notifications/read", data={"csrf_token": alice.session.csrf, "id": "x"})
    assert response.status_code == 400


async def test_following_a_notification_marks_it_read_and_goes_to_the_post(world, member_factory):
    alice = await _alice_with_replies(world, member_factory, count=1)
    bob = await member_factory("bob2")
    [note] = await world.notifications(alice.id)
    assert (await bob.client.get(f"/notifications/{note['id']}")).status_code == 404
    assert (await alice.client.get("/notifications/notanumber")).status_code == 404
    response = await alice.client.get(f"/notifications/{note['id']}")
    assert response.status_code == 303 and response.headers["location"] == "/p/101"
    [note] = await world.notifications(alice.id)
    assert note["read_at"] is not None


async def test_notification_text_is_escaped(world, member_factory, monkeypatch):
    """Titles and usernames from events never become markup on the page (the whole XSS corpus)."""
    from services.notify import notifications

    monkeypatch.setattr(notifications, "PAGE_SIZE", len(PAYLOADS))
    alice = await member_factory("alice")
    await world.join(alice.id, "alice")
    events = [category(1)]
    for i, raw in enumerate(PAYLOADS):
        payload = raw.replace("\x00", "")  # the forum refuses NUL in every field
        events += [
            topic(1000 + i, author_id=alice.id, title=payload[:300]),
            post(
                5000 + i,
                topic_id=1000 + i,
                number=2,
                author_id=77,
                author_username=payload[:40],
                reply_to_user_id=alice.id,
                topic_title=payload[:300],
            ),
        ]
    await world.emit(*events)
    html = (await alice.client.get("/notifications")).text
    assert html.count('class="tica-notification') == len(PAYLOADS)
    assert_inert(html, page=True, allow_script_src=True)
    api = (await alice.client.get("/api/notifications")).json()
    assert len(api["items"]) == len(PAYLOADS)


async def test_preferences_page_saves_and_shows_errors(world, member_factory):
    alice = await member_factory("alice")
    page = await alice.client.get("/preferences")
    assert page.status_code == 200
    html = page.text
    assert html.count("<h1") == 1
    assert 'value="weekly" checked' in html
    for name in ("digest", "email_on_reply", "email_on_mention", "email_on_watched"):
        assert f'id="{name}"' in html, f"the first radio of {name} has the id the error summary links to"
    token = _csrf(html)
    saved = await alice.client.post(
        "/preferences",
        data={
            "csrf_token": token,
            "digest": "daily",
            "email_on_reply": "always",
            "email_on_mention": "never",
            "email_on_watched": "away",
        },
    )
    assert saved.status_code == 303 and saved.headers["location"] == "/preferences?saved=1"
    shown = (await alice.client.get("/preferences?saved=1")).text
    assert "Your preferences are saved." in shown and 'value="daily" checked' in shown
    wrong = await alice.client.post("/preferences", data={"csrf_token": token, "digest": "hourly"})
    assert wrong.status_code == 400
    assert "There is a problem" in wrong.text and 'href="#digest"' in wrong.text
    assert wrong.text.startswith("<!DOCTYPE html>") and "<title>Error: " in wrong.text
    assert (await alice.client.post("/preferences", data={"digest": "daily"})).status_code == 403


async def test_watch_form_sets_the_level_and_goes_back(world, member_factory):
    alice = await member_factory("alice")
    await world.emit(category(1), topic(10, author_id=99))
    token = alice.session.csrf
    response = await alice.client.post(
        "/notifications/watch",
        data={"csrf_token": token, "target": "topic:10", "level": "watching", "return_to": "/t/topic-10/10"},
    )
    assert response.status_code == 303 and response.headers["location"] == "/t/topic-10/10"
    page = (await alice.client.get("/preferences")).text
    assert "Topic 10" in page and '<option value="watching" selected>' in page
    elsewhere = await alice.client.post(
        "/notifications/watch",
        data={"csrf_token": token, "target": "topic:10", "level": "muted", "return_to": "//evil.example/"},
    )
    assert elsewhere.headers["location"] == "/preferences#watching"
    bad = await alice.client.post(
        "/notifications/watch", data={"csrf_token": token, "target": "topic:10", "level": "loud"}
    )
    assert bad.status_code == 400
    missing = await alice.client.post(
        "/notifications/watch", data={"csrf_token": token, "target": "topic:999", "level": "muted"}
    )
    assert missing.status_code == 404
