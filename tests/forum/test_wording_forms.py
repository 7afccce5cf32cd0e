"""Forms and lists that read right (issue 13, point 10): registration shows every problem at once in the
error summary; the upload form says the file must be chosen again; no words run together; notifications
say "just now" or a date like every other page."""

from __future__ import annotations

import html
import re

from moderation_helpers import new_category, new_topic
from test_webinars import schedule


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page)))


def summary_links(page: str) -> list[tuple[str, str]]:
    """The error summary's links: (href, text)."""
    summary = page.split('class="nhsuk-error-summary"', 1)[1].split("</ul>", 1)[0]
    found = re.findall(r'<a href="([^"]+)"[^>]*>(.*?)</a>', summary, re.S)
    return [(href, html.unescape(text).strip()) for href, text in found]


async def test_registration_shows_every_problem_at_once(client, sam):
    """A taken username, a bad email and a short password: three errors in one go, the summary linking each field."""
    form = await client.get("/register")
    token = client.cookies.get("tica_csrf") or re.search(r'name="csrf_token" value="([^"]+)"', form.text)[1]
    response = await client.post(
        "/register",
        data={"csrf_token": token, "username": "sam", "email": "not-an-email", "password": "short"},
    )
    assert response.status_code in (409, 422)
    links = summary_links(response.text)
    assert [href for href, _ in links] == ["#username", "#email", "#password"], links
    assert "already taken" in links[0][1] and "right format" in links[1][1] and "at least" in links[2][1]
    for name in ("username", "email", "password"):
        assert f'id="{name}-error"' in response.text, name


async def test_upload_form_says_to_choose_the_file_again(admin, member_factory, pool):
    """After a problem with another field, the file field and the summary say the file must be chosen again."""
    folder = await pool.fetchval("INSERT INTO forum.folders (name) VALUES ('Guides') RETURNING id")
    member = await member_factory("uma")
    response = await member.client.post(
        "/library/upload",
        data={"csrf_token": member.session.csrf, "folder_id": str(folder), "title": "x" * 500},
        files={"file": ("grounding.txt", b"Breathe in for four.", "text/plain")},
    )
    assert response.status_code == 422, response.text[:500]
    links = summary_links(response.text)
    assert [href for href, _ in links] == ["#file", "#title"], links
    assert links[0][1].startswith("Choose your file again") and "grounding.txt" in links[0][1]
    field = response.text.split('for="file"', 1)[1].split("</div>\n</div>", 1)[0]
    assert 'id="file-error"' in field and "Choose your file again" in html.unescape(field)
    assert await pool.fetchval("SELECT count(*) FROM forum.documents") == 0


async def test_webinar_pages_keep_their_spaces(admin, client):
    """ "Past webinars, with recordings · Subscribe" and "Mind Expert by experience": words never run together."""
    webinar = await schedule(admin)
    listing = text_of((await client.get("/webinars")).text)
    assert "Past webinars, with recordings \u00b7 Subscribe to the webinar calendar" in listing
    page = text_of((await client.get(f"/webinars/{webinar['id']}")).text)
    assert "Sam Lee, Peer lead, Mind Expert by experience" in page


async def test_notifications_say_when_like_other_pages(admin, member_factory, pool, app):
    """A notification's time is "just now" (the full time in its title), and the counts line keeps its space."""
    alice = await member_factory("alice")
    category = await new_category(admin)
    topic = await new_topic(alice, category["id"], "Grounding techniques")
    await pool.execute(
        "INSERT INTO notify.notifications (user_id, kind, dedupe_key, topic_id, post_id, post_number, actor_id, data) "
        "VALUES ($1, 'replied', 'k1', $2, NULL, 2, $3, '{\"username\": \"ada\"}')",
        alice.id,
        topic["id"],
        admin.id,
    )
    page = await alice.client.get("/notifications")
    assert page.status_code == 200
    times = re.findall(r'<time datetime="[^"]+" title="([^"]+)">([^<]+)</time>', page.text)
    assert times and times[0][1] == "just now" and times[0][0].endswith("UTC"), times
    assert " UTC</time>" not in page.text
    text = text_of(page.text)
    assert "unread notification. Show unread only" in text or "caught up. Show unread only" in text
