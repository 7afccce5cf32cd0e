"""The demo community's people are established members, and its groups, webinars and library
are there to look around in: nothing a newcomer opens from the menu is empty."""

from __future__ import annotations

import httpx

from services.forum import demo
from services.forum.moderation import screening
from shared.sessions import CSRF_COOKIE, CSRF_HEADER


async def _log_in(app, username: str) -> httpx.AsyncClient:
    """A browser window logged in as a demo member with the password `tica run` prints."""
    password = next(p for name, p, _ in demo.DEMO_LOGINS if name == username)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    response = await http.post("/api/session", json={"login": username, "password": password})
    assert response.status_code == 200, response.text
    http.headers[CSRF_HEADER] = http.cookies[CSRF_COOKIE]
    return http


async def test_demo_people_are_established_members(migrated, pool):
    """Every demo login joined months ago, so none is held to a new member's limits."""
    await demo.seed(migrated)
    for username, _, _ in demo.DEMO_LOGINS:
        joined = await pool.fetchval("SELECT created_at FROM forum.users WHERE username = $1", username)
        assert not screening.is_new_member(migrated, joined), username
        assert not screening.is_new_member(migrated.replace(new_member_days=90), joined), username


async def test_a_demo_member_in_two_windows_is_not_rate_limited_as_new(migrated, pool, app):
    """Sam replies four times within a minute from two windows: above a new member's 3 a minute, all accepted."""
    assert migrated.new_member_posts_per_minute < 4 <= migrated.posts_per_minute
    await demo.seed(migrated)
    topic_id = await pool.fetchval("SELECT id FROM forum.topics WHERE title = 'Paying experts by experience fairly'")
    windows = [await _log_in(app, "sam"), await _log_in(app, "sam")]
    try:
        for n in range(4):
            body = f"A further thought, number {n + 1}: ask people what payment would suit them."
            response = await windows[n % 2].post(f"/api/topics/{topic_id}/posts", json={"body": body})
            assert response.status_code == 201, response.text
    finally:
        for http in windows:
            await http.aclose()


async def test_demo_groups_open_and_on_request(migrated, pool, client, app):
    """An open group with members, and an on-request group whose owner has a request waiting."""
    await demo.seed(migrated)
    listed = (await client.get("/api/groups")).json()["items"]
    by_access = {g["access"]: g for g in listed}
    assert {"open", "request"} <= set(by_access)
    assert all(g["members_count"] >= 2 for g in listed)
    owner = await _log_in(app, "sam")
    try:
        requests = (await owner.get(f"/api/groups/{by_access['request']['id']}/requests")).json()["items"]
    finally:
        await owner.aclose()
    assert [r["user"]["username"] for r in requests] == ["jordan"] and requests[0]["message"]
    page = await client.get("/groups")
    assert page.status_code == 200
    assert all(g["name"] in page.text for g in listed)


async def test_demo_webinars_upcoming_and_past(migrated, pool, client):
    """An upcoming webinar with an expert by experience speaking and seats taken; a past one with
    its attendance, recording and slides from the library."""
    await demo.seed(migrated)
    upcoming = (await client.get("/api/webinars")).json()["items"]
    past = (await client.get("/api/webinars", params={"when": "past"})).json()["items"]
    assert len(upcoming) == 1 and len(past) == 1
    coming = (await client.get(f"/api/webinars/{upcoming[0]['id']}")).json()
    assert any(s["expert_by_experience"] for s in coming["speakers"])
    assert coming["registered_count"] == 3 and coming["status"] == "scheduled"
    held = (await client.get(f"/api/webinars/{past[0]['id']}")).json()
    assert held["status"] == "finished" and held["attendance"] > 0
    assert held["recording_url"].startswith("https://")
    slides = await pool.fetchrow(
        "SELECT d.title, f.name FROM forum.documents d JOIN forum.folders f ON f.id = d.folder_id WHERE d.id = $1",
        held["slides_document_id"],
    )
    assert slides["name"] == "Webinar slides"
    for path, title in (("/webinars", coming["title"]), ("/webinars/past", held["title"])):
        page = await client.get(path)
        assert page.status_code == 200 and title in page.text
    page = await client.get(f"/webinars/{held['id']}")
    assert page.status_code == 200 and held["recording_url"] in page.text


async def test_demo_library_folders_are_the_communitys_subjects(migrated, pool, client):
    """The library opens on the subjects this community works in, and every demo document is in it."""
    await demo.seed(migrated)
    tree = (await client.get("/api/folders")).json()["items"]
    assert [f["name"] for f in tree] == [
        "Policies and guidance",
        "Training materials",
        "Research and evaluation",
        "Lived experience resources",
        "Webinar slides",
    ]
    titles = {row[0] for row in await pool.fetch("SELECT title FROM forum.documents")}
    assert titles == {d.title for d in demo.demo_documents()}
    assert {"The five principles of trauma-informed care", "Reflective practice prompts"} <= titles
