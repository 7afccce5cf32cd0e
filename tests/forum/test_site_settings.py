"""Site settings in the database (issue 14, point 4): admins change them from /admin/settings and
PATCH /api/admin/settings, each change checked (all or nothing), audited and written with its
`setting.changed` event in one transaction; every process (two forum apps with their own runtimes,
notify, a process started later, the job worker) applies it within seconds, and taking a value
back restores the environment's."""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from moderation_helpers import forum_runtime

from services.forum import app as forum_app
from services.forum.site import settings as site
from services.notify import app as notify_app
from services.notify import mail
from services.notify.worker import create_worker
from shared import site_settings
from shared.events import Envelope
from shared.sessions import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from shared.settings import Settings

SETTINGS_URL = "/api/admin/settings"


def form(member: Any, **fields: str) -> dict[str, str]:
    return {**fields, "csrf_token": member.session.csrf}


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page))


async def wait_for(check: Callable[[], Awaitable[Any]], *, timeout_s: float = 15.0, what: str = "it") -> Any:
    """Ask until `check` answers something true, or fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


async def stored(pool: Any) -> dict[str, str]:
    return {row["key"]: row["value"] for row in await pool.fetch("SELECT key, value FROM forum.site_settings")}


async def setting_events(pool: Any) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT payload::text AS payload FROM forum.outbox WHERE type = 'setting.changed' ORDER BY id"
    )
    return [json.loads(row["payload"]) for row in rows]


async def setting_entries(pool: Any) -> list[Any]:
    return await pool.fetch(
        "SELECT action, target_type, target_id, reason, before, after FROM forum.audit_log "
        "WHERE action = 'setting.change' ORDER BY id"
    )


# --- who may --------------------------------------------------------------------------------------------


async def test_only_admins_read_and_change_settings(client, member_factory, admin, moderator, pool):
    """Visitors 401, members and moderators 403 on the API; nothing is stored by a refused change."""
    member = await member_factory()
    assert (await client.get(SETTINGS_URL)).status_code == 401
    assert (await client.patch(SETTINGS_URL, json={"values": {"site_name": "X"}})).status_code == 401
    for who in (member, moderator):
        assert (await who.client.get(SETTINGS_URL)).status_code == 403
        refused = await who.client.patch(SETTINGS_URL, json={"values": {"site_name": "X"}})
        assert refused.status_code == 403
        assert refused.json()["error"]["message"] == "Only admins can change the site's settings."
    assert await stored(pool) == {} and await setting_events(pool) == []
    listed = await admin.client.get(SETTINGS_URL)
    assert listed.status_code == 200
    items = {item["key"]: item for item in listed.json()["items"]}
    assert set(items) == {item.key for item in site_settings.EDITABLE}
    assert items["posts_per_minute"] | {"help": ""} == {
        "key": "posts_per_minute",
        "label": "Posts per minute",
        "help": "",
        "section": "Posting limits",
        "kind": "number",
        "choices": [],
        "maximum": 100_000,
        "value": 10,
        "default": 10,
        "set_by_admin": False,
        "updated_at": None,
        "updated_by": None,
    }
    assert items["registration_mode"]["choices"][0] == {"value": "open", "label": "Open: anyone can create an account"}
    assert items["safeguarding_hold"]["value"] is False and items["safeguarding_hold"]["kind"] == "yes_no"


async def test_the_settings_page_is_for_admins(client, member_factory, admin, moderator):
    """The page sends visitors to log in and refuses members and moderators (403), a form post too."""
    visitor = await client.get("/admin/settings")
    assert visitor.status_code == 303 and visitor.headers["location"] == "/login?next=/admin/settings"
    member = await member_factory()
    for who in (member, moderator):
        assert (await who.client.get("/admin/settings")).status_code == 403
        posted = await who.client.post("/admin/settings", data=form(who, site_name="X"))
        assert posted.status_code == 403
    page = await admin.client.get("/admin/settings")
    assert page.status_code == 200
    text = text_of(page.text)
    for heading in site_settings.SECTIONS:
        assert f"<h2>{heading}</h2>" in page.text
    assert "Posts per minute" in text and "The default is 10: leave it empty to use it." in text


# --- checking: all or nothing ---------------------------------------------------------------------------------


async def test_bad_values_are_refused_each_by_name_and_nothing_is_saved(admin, pool):
    """422 naming every bad field with its parser's words, and every unknown key; the good ones are not saved."""
    response = await admin.client.patch(
        SETTINGS_URL,
        json={
            "values": {
                "site_name": "Our place",  # fine, but not saved: the change is all or nothing
                "posts_per_minute": 0,
                "flags_per_day": "many",
                "new_member_days": 99_999,
                "registration_mode": "everyone",
                "safeguarding_hold": "perhaps",
                "signup_question": ["a", "list"],
                "colour": "blue",
            }
        },
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["fields"] == {
        "posts_per_minute": "must be a positive whole number",
        "flags_per_day": "must be a whole number",
        "new_member_days": "must be at most 3,650",
        "registration_mode": "must be one of open, approval, invite",
        "safeguarding_hold": "must be true or false",
        "signup_question": "must be text, a whole number, true or false, or null for the default",
        "colour": "is not a setting admins can change",
    }
    unknown = await admin.client.patch(SETTINGS_URL, json={"values": {"colour": "blue", "font": "Arial"}})
    assert unknown.status_code == 422
    assert unknown.json()["error"]["message"] == "These are not settings admins can change: colour, font."
    assert set(unknown.json()["error"]["fields"]) == {"colour", "font"}
    for body in ({}, {"values": "site_name=x"}, {"values": {}, "extra": 1}):
        assert (await admin.client.patch(SETTINGS_URL, json=body)).status_code == 422, body
    assert await stored(pool) == {}
    assert await setting_entries(pool) == [] and await setting_events(pool) == []


async def test_a_change_is_stored_audited_and_written_as_one_event(app, admin, pool):
    """One row per value set, one audit entry per changed setting (words in the log), one event carrying
    every value admins have set; values are kept as their parser reads them; the same value again changes nothing."""
    response = await admin.client.patch(
        SETTINGS_URL,
        json={
            "values": {"site_name": "  Our   place ", "posts_per_minute": "7", "safeguarding_hold": True},
            "reason": "Agreed at the Core Action Group",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["changed"] == ["site_name", "posts_per_minute", "safeguarding_hold"]
    items = {item["key"]: item for item in body["items"]}
    assert items["site_name"]["value"] == "Our place" and items["site_name"]["set_by_admin"]
    assert items["site_name"]["updated_by"] == "ada" and items["site_name"]["default"] == "tica"
    assert items["posts_per_minute"]["value"] == 7 and items["safeguarding_hold"]["value"] is True
    assert await stored(pool) == {"site_name": "Our place", "posts_per_minute": "7", "safeguarding_hold": "true"}

    entries = await setting_entries(pool)
    assert [(e["target_type"], e["target_id"], e["reason"]) for e in entries] == [
        ("setting", None, "Agreed at the Core Action Group")
    ] * 3
    assert [as_dict(e["before"]) for e in entries] == [
        {"key": "site_name", "value": "tica"},
        {"key": "posts_per_minute", "value": "10"},
        {"key": "safeguarding_hold", "value": "false"},
    ]
    assert as_dict(entries[0]["after"]) == {"key": "site_name", "label": "Site name", "value": "Our place"}
    [event] = await setting_events(pool)
    assert event["type"] == "setting.changed" and event["actor_id"] == admin.id
    assert event["data"] == {
        "keys": ["site_name", "posts_per_minute", "safeguarding_hold"],
        "values": {"site_name": "Our place", "posts_per_minute": "7", "safeguarding_hold": "true"},
    }
    Envelope.from_json(json.dumps(event)).event()  # as its definition says

    log = text_of((await admin.client.get("/admin/audit-log")).text)
    assert "Ada changed the setting \u2018Site name\u2019 to 'Our place'." in log
    assert "Ada changed the setting \u2018Posts per minute\u2019 to '7'." in log

    again = await admin.client.patch(SETTINGS_URL, json={"values": {"site_name": "Our place", "posts_per_minute": 7}})
    assert again.status_code == 200 and again.json()["changed"] == []
    assert len(await setting_entries(pool)) == 3 and len(await setting_events(pool)) == 1

    rt = forum_runtime(app)  # this process (no follower in the test app) applied the change itself
    assert rt.settings.site_name == "Our place" and rt.settings.posts_per_minute == 7
    assert rt.base_settings.site_name == "tica"


async def test_the_rows_audit_and_event_share_the_callers_transaction(pool, admin, app):
    """Rolled back, a change leaves no row, no audit entry and no event; committed, all three."""
    rt = forum_runtime(app)
    clean = await site.check_change(admin.session, {"flag_hide_score": "5"}, budget_ms=2000)

    class Undo(Exception):
        pass

    with pytest.raises(Undo):
        async with pool.acquire() as conn, conn.transaction():
            change = await site.change_settings(conn, admin.session, clean, base=rt.base_settings)
            assert change.keys == ["flag_hide_score"] and change.envelope is not None
            raise Undo
    assert await stored(pool) == {} and await setting_entries(pool) == [] and await setting_events(pool) == []
    async with pool.acquire() as conn, conn.transaction():
        await site.change_settings(conn, admin.session, clean, base=rt.base_settings)
    assert await stored(pool) == {"flag_hide_score": "5"}
    assert len(await setting_entries(pool)) == 1 and len(await setting_events(pool)) == 1


async def test_null_or_empty_takes_a_value_back_to_the_default(app, admin, pool):
    """Setting null (or empty text) removes the row: the environment's value applies again, and it is audited."""
    rt = forum_runtime(app)
    await admin.client.patch(SETTINGS_URL, json={"values": {"site_name": "Our place", "flags_per_day": 4}})
    assert rt.settings.flags_per_day == 4
    response = await admin.client.patch(SETTINGS_URL, json={"values": {"site_name": None, "flags_per_day": ""}})
    assert response.status_code == 200 and response.json()["changed"] == ["site_name", "flags_per_day"]
    assert await stored(pool) == {}
    assert rt.settings.site_name == "tica" and rt.settings.flags_per_day == 30
    assert [as_dict(e["after"])["value"] for e in await setting_entries(pool)][-2:] == ["tica", "30"]
    assert (await setting_events(pool))[-1]["data"]["values"] == {}


async def test_a_stored_value_that_no_longer_parses_is_ignored(caplog):
    """apply() leaves out (and logs) a stored value its parser refuses and a key no longer editable."""
    base = Settings()
    applied = site_settings.apply(base, {"posts_per_minute": "-3", "port": "1", "site_name": "Ours", "x": "1"})
    assert applied.posts_per_minute == base.posts_per_minute and applied.port == base.port
    assert applied.site_name == "Ours"
    assert "posts_per_minute='-3' is ignored" in caplog.text


# --- what people see -------------------------------------------------------------------------------------


async def test_the_site_name_is_shown_in_the_header_and_title(admin, client):
    """The header's wordmark, the page title and the footer say the name admins chose."""
    await admin.client.patch(SETTINGS_URL, json={"values": {"site_name": "Safe Harbour <b>"}})
    page = (await client.get("/guidelines")).text
    assert "<title>Community guidelines - Safe Harbour &lt;b&gt;</title>" in page
    assert 'aria-label="Safe Harbour &lt;b&gt; home"' in page
    assert '<span class="nhsuk-header__service-name tica-wordmark">Safe Harbour &lt;b&gt;</span>' in page
    assert (await client.get("/api/site")).json()["site_name"] == "Safe Harbour <b>"


async def test_the_welcome_text_is_sanitised_and_shown_to_visitors(admin, client, member_factory):
    """The welcome text is markdown made safe like a post: no script reaches the page; members do not see it."""
    home = (await client.get("/")).text
    assert "tica-cooked" not in home.split("<h1>", 1)[0]
    welcome = "Welcome, **friends**.\n\n<script>alert('x')</script>\n\n[Read more](javascript:alert(1))"
    response = await admin.client.patch(SETTINGS_URL, json={"values": {"welcome_text": welcome}})
    assert response.status_code == 200, response.text
    home = (await client.get("/")).text
    top = home.split("<h1>", 1)[0]
    assert "<strong>friends</strong>" in top
    assert "<script>alert" not in home and 'href="javascript' not in home
    site = (await client.get("/api/site")).json()
    assert "<strong>friends</strong>" in site["welcome_html"] and "<script" not in site["welcome_html"]
    member = await member_factory()
    assert "<strong>friends</strong>" not in (await member.client.get("/")).text


async def test_the_page_lists_every_problem_at_once_and_saves_nothing(admin, pool):
    """A form with several bad values comes back with each in the error summary, as typed; nothing is saved."""
    fields = {
        "site_name": "A better name",
        "posts_per_minute": "lots",
        "flag_hide_score": "0",
        "registration_mode": "everyone",
    }
    page = await admin.client.post("/admin/settings", data=form(admin, **fields))
    assert page.status_code == 422
    summary = re.sub(r"\n\s*", "", page.text.split('class="nhsuk-error-summary', 1)[1].split("</ul>", 1)[0])
    assert '<a href="#posts_per_minute">Posts per minute must be a whole number</a>' in summary
    assert '<a href="#flag_hide_score">Flag score that hides a post must be a positive whole number</a>' in summary
    assert '<a href="#registration_mode">Who can create an account must be one of open, approval, invite</a>' in summary
    assert 'value="A better name"' in page.text and 'value="lots"' in page.text
    assert await stored(pool) == {} and await setting_events(pool) == []


async def test_saving_the_page_says_what_changed(admin, pool):
    """Saved from the page as it stands, only what differs changes; the banner names it, the page says it
    was changed here; an emptied field, or "Use the default instead", takes a value back to the default."""
    fields = form_fields((await admin.client.get("/admin/settings")).text)
    assert fields["site_name"] == "" and fields["posts_per_minute"] == "" and fields["registration_mode"] == "default"
    assert "site_name-default" not in fields  # nothing to take back yet
    fields.update(site_name="Our place", registration_mode="approval", new_member_days="7", reason="New name")
    saved = await admin.client.post("/admin/settings", data=form(admin, **fields))
    assert saved.status_code == 303
    assert saved.headers["location"] == "/admin/settings?saved=site_name,registration_mode,new_member_days"
    assert await stored(pool) == {"site_name": "Our place", "registration_mode": "approval", "new_member_days": "7"}
    page = (await admin.client.get(saved.headers["location"])).text
    shown = text_of(page)
    assert "Saved. You changed: Site name, Who can create an account and Days a member counts as new." in shown
    assert shown.count("Changed by an admin (ada, just now)") == 3

    fields = form_fields(page)
    assert (fields["site_name"], fields["registration_mode"], fields["new_member_days"]) == (
        "Our place",
        "approval",
        "7",
    )
    unchanged = await admin.client.post("/admin/settings", data=form(admin, **fields))
    assert unchanged.headers["location"] == "/admin/settings?saved="
    assert "Nothing changed" in (await admin.client.get(unchanged.headers["location"])).text

    fields.update({"site_name-default": "yes", "new_member_days": " ", "reason": "Back"})
    back = await admin.client.post("/admin/settings", data=form(admin, **fields))
    assert back.headers["location"] == "/admin/settings?saved=site_name,new_member_days"
    assert await stored(pool) == {"registration_mode": "approval"}
    assert [e["reason"] for e in await setting_entries(pool)] == ["New name"] * 3 + ["Back"] * 2


# --- every process, within seconds --------------------------------------------------------------------------


@asynccontextmanager
async def running(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An app with its lifespan (its own runtime and background loops) and a client for it."""
    async with app.router.lifespan_context(app), client_of(app) as http:
        yield http


def client_of(app: Any, member: Any = None) -> httpx.AsyncClient:
    """A client of one app, anonymous or with the member's session."""
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    if member is not None:
        http.cookies.set(SESSION_COOKIE, member.session.id)
        http.cookies.set(CSRF_COOKIE, member.session.csrf)
        http.headers[CSRF_HEADER] = member.session.csrf
    return http


class _Form(HTMLParser):
    """The fields a browser would send from a page's forms: text fields and text areas, checked choices."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "textarea":
            self._textarea = a["name"]
            self.fields[a["name"]] = ""
        elif tag == "input" and a.get("type") in ("text", None) and "name" in a:
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "input" and a.get("type") in ("radio", "checkbox") and "checked" in a:
            self.fields[a["name"]] = a["value"]

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.fields[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None


def form_fields(page: str) -> dict[str, str]:
    main = page.split('<form method="post" action="/admin/settings"', 1)[1].split("</form>", 1)[0]
    parser = _Form()
    parser.feed("<form " + main)
    return parser.fields


def as_dict(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def test_a_change_reaches_every_process_within_seconds(migrated, member_factory, pool):
    """Two forum apps and a notify app, each with its own runtime: a change made through one forum is
    applied by the other and by notify (its pages show the new name); the lowered limit refuses the next
    post on the other forum; a process started afterwards starts with it; taken back, the environment's
    value (not the built-in one) applies everywhere again."""
    environment = migrated.replace(new_member_posts_per_minute=5, site_name="Env name")
    admin = await member_factory("ada", roles=("member", "admin"))
    sam = await member_factory("sam")
    apps = [forum_app.create_app(environment, background=True) for _ in range(2)]
    notify = notify_app.create_app(environment, background=True)
    async with AsyncExitStack() as stack:
        one, two, _ = [await stack.enter_async_context(running(app)) for app in (*apps, notify)]
        admin_one = await stack.enter_async_context(client_of(apps[0], admin))
        sam_two = await stack.enter_async_context(client_of(apps[1], sam))
        sam_notify = await stack.enter_async_context(client_of(notify, sam))
        category = (await admin_one.post("/api/categories", json={"name": "General"})).json()
        topic = (
            await admin_one.post("/api/topics", json={"category_id": category["id"], "title": "Hello", "body": "Hi"})
        ).json()
        assert (await two.get("/api/site")).json()["site_name"] == "Env name"

        changed = await admin_one.patch(
            SETTINGS_URL, json={"values": {"site_name": "Harbour", "new_member_posts_per_minute": 1}}
        )
        assert changed.status_code == 200, changed.text
        assert (await one.get("/api/site")).json()["site_name"] == "Harbour"  # at once where it was made

        async def site_name(http: httpx.AsyncClient) -> str:
            return str((await http.get("/api/site")).json()["site_name"])

        async def notify_page_name() -> bool:
            page = await sam_notify.get("/notifications")
            return page.status_code == 200 and "<title>Notifications - Harbour</title>" in page.text

        await wait_for(lambda: _equals(site_name(two), "Harbour"), what="the other forum app")
        await wait_for(notify_page_name, what="notify's page with the new name")
        first = await sam_two.post(f"/api/topics/{topic['id']}/posts", json={"body": "First reply"})
        assert first.status_code == 201, first.text
        second = await sam_two.post(f"/api/topics/{topic['id']}/posts", json={"body": "Second reply"})
        assert second.status_code == 429, second.text

        async with running(forum_app.create_app(environment, background=True)) as later:
            assert await site_name(later) == "Harbour"  # as it starts, before its loop has read anything
        later_notify = notify_app.create_app(environment, background=True)
        async with running(later_notify):
            assert later_notify.state.runtime.settings.site_name == "Harbour"

        taken_back = await admin_one.patch(SETTINGS_URL, json={"values": {"site_name": None}})
        assert taken_back.json()["changed"] == ["site_name"]
        await wait_for(lambda: _equals(site_name(two), "Env name"), what="the environment's name on the other forum")
        notify_rt = notify.state.runtime
        await wait_for(lambda: _true(notify_rt.settings.site_name == "Env name"), what="notify back on the default")
        assert notify_rt.settings.new_member_posts_per_minute == 1


async def test_the_job_worker_follows_the_site_name_in_its_mail(migrated, admin, pool):
    """`tica worker`'s runtime follows a change too: the mail it sends is from the new name."""
    worker = create_worker(migrated)
    ctx: dict[str, Any] = {}
    assert worker.on_startup is not None and worker.on_shutdown is not None
    await worker.on_startup(ctx)
    try:
        forum = forum_app.create_app(migrated, background=True)
        async with running(forum), client_of(forum, admin) as http:
            response = await http.patch(SETTINGS_URL, json={"values": {"site_name": "Harbour"}})
            assert response.status_code == 200
            rt = ctx["runtime"]
            await wait_for(lambda: _true(rt.settings.site_name == "Harbour"), what="the worker's settings")
        message = mail.build_message(rt.settings, to="sam@example.org", subject="Hello", text="Hi", html=None)
        assert message["From"].startswith("Harbour <no-reply@")
    finally:
        await worker.on_shutdown(ctx)


async def test_a_follower_survives_a_redis_restart(migrated, private_redis, admin, pool):
    """With its Redis restarted (and emptied) under it, notify's follower says it is failing, then
    picks up a change made after Redis is back; the forum has published its snapshot again."""
    settings = migrated.replace(redis_url=private_redis.url)
    forum, notify = (service.create_app(settings, background=True) for service in (forum_app, notify_app))
    async with running(forum), running(notify) as http:

        async def follower_is(state: str) -> bool:
            problems = (await http.get("/readyz")).json().get("problems", [])
            failing = any(p.startswith("site_settings failing for ") for p in problems)
            return failing if state == "failing" else not failing and not any("redis" in p for p in problems)

        await wait_for(lambda: follower_is("working"), what="notify ready")
        private_redis.kill()
        await wait_for(lambda: follower_is("failing"), what="/readyz naming the follower")
        private_redis.start()
        await wait_for(lambda: follower_is("working"), timeout_s=20, what="the follower working again")
        rt = forum.state.runtime
        clean = await site.check_change(admin.session, {"site_name": "After the restart"}, budget_ms=2000)
        async with pool.acquire() as conn, conn.transaction():
            await site.change_settings(conn, admin.session, clean, base=rt.base_settings)
        notify_rt = notify.state.runtime
        await wait_for(lambda: _true(notify_rt.settings.site_name == "After the restart"), timeout_s=20, what="notify")
        published = await site_settings.read_snapshot(rt.redis, settings.redis_prefix)
        assert published is not None and published[0] == {"site_name": "After the restart"}


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return await value == expected


async def _true(value: bool) -> bool:
    return value
