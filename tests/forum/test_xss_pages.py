"""The XSS corpus through post bodies, titles and content notes: every page that shows them,
and the cooked HTML of the API, stay inert."""

from __future__ import annotations

import pytest
from xss_corpus import PAYLOADS, assert_inert

from shared.ratelimit import rate_key


@pytest.fixture
async def admin(member_factory):
    return await member_factory("ada", roles=("member", "admin"))


@pytest.fixture
async def category(admin):
    return (await admin.client.post("/api/categories", json={"name": "Lived experience"})).json()


def inert_page(response):
    assert response.status_code < 500, response.text[:500]
    assert_inert(response.text, page=True, allow_script_src=True)


async def test_payload_bodies_stay_inert(admin, category, member_factory, redis, settings):
    """Each payload as a topic body and a reply (with a content note): topic, quote, edit and revision pages."""
    sam = await member_factory("sam")
    for n, payload in enumerate(PAYLOADS):
        # 132 replies and edits in a minute: past the posting and editing limits, which are not under test here
        await redis.delete(rate_key(settings.redis_prefix, "posts-minute", str(sam.id)))
        await redis.delete(rate_key(settings.redis_prefix, "edits-minute", str(sam.id)))
        created = await admin.client.post(
            "/api/topics", json={"category_id": category["id"], "title": f"Payload {n}", "body": payload}
        )
        if "\x00" in payload:
            assert created.status_code == 422
            continue
        assert created.status_code == 201, (payload, created.text)
        topic = created.json()
        assert_inert(topic["first_post"]["cooked"])
        reply = await sam.client.post(
            f"/api/topics/{topic['id']}/posts",
            json={
                "body": payload,
                "content_note": payload[:100].replace("\x00", ""),
                "reply_to": topic["first_post"]["id"],
            },
        )
        assert reply.status_code == 201, (payload, reply.text)
        assert_inert(reply.json()["cooked"])
        edited = await sam.client.patch(
            f"/api/posts/{reply.json()['id']}", json={"body": payload + "\n\nedited <b>", "edit_reason": payload[:200]}
        )
        assert edited.status_code == 200, (payload, edited.text)
        assert_inert(edited.json()["cooked"])
        post_id = reply.json()["id"]
        inert_page(await sam.client.get(topic["url"]))
        inert_page(await sam.client.get(f"{topic['url']}?quote={topic['first_post']['id']}"))
        inert_page(await sam.client.get(f"/posts/{post_id}/edit"))
        inert_page(await sam.client.get(f"/posts/{post_id}/revisions"))


async def test_payload_titles_and_notes_stay_inert(admin, category, client):
    """Each payload in a title and a content note: the lists, the category and the topic pages."""
    urls = []
    for n, payload in enumerate(PAYLOADS):
        title = f"T{n} {payload}"[:200]
        created = await admin.client.post(
            "/api/topics",
            json={"category_id": category["id"], "title": title, "body": "Plain body", "content_note": payload[:100]},
        )
        if "\x00" in payload:
            assert created.status_code == 422
            continue
        assert created.status_code == 201, (payload, created.text)
        topic = created.json()
        assert topic["title"] == " ".join(title.split())  # returned as given (stripped), escaped only by pages
        urls.append(topic["url"])
    for base in ("/", f"/c/{category['slug']}"):
        page = 1
        while True:
            response = await client.get(f"{base}?page={page}")
            if response.status_code == 404:
                break
            inert_page(response)
            page += 1
        assert page > 4
    for url in urls:
        inert_page(await client.get(url))
        inert_page(await admin.client.get(url))


async def test_payloads_echoed_in_form_errors_stay_inert(admin, category, member_factory):
    """A refused form shows the payload again in its fields, still inert."""
    sam = await member_factory("sam")
    topic = (
        await admin.client.post(
            "/api/topics", json={"category_id": category["id"], "title": "Target topic", "body": "x"}
        )
    ).json()
    for payload in PAYLOADS:
        refused = await sam.client.post(
            "/new-topic",
            data={
                "csrf_token": sam.session.csrf,
                "category_id": str(category["id"]),
                "title": payload[:4] or "x",
                "body": payload,
                "content_note": payload,
            },
        )
        assert refused.status_code == 422
        inert_page(refused)
        reply = await sam.client.post(
            f"/t/{topic['id']}/posts",
            data={"csrf_token": sam.session.csrf, "body": payload, "content_note": "n" * 101 + payload},
        )
        assert reply.status_code == 422
        inert_page(reply)
