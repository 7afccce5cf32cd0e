"""Groups: open, on request and private; owners; joining, leaving, requests, invitations
by email; live sessions learn their new groups; private groups are invisible (404)."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from library_helpers import deliver_mail, make_group, outbox

from services.forum import access
from services.forum.accounts import passwords
from services.forum.groups import groups
from shared.sessions import SessionStore


async def groups_of(member) -> list[int]:
    """The group ids in the member's live session, as every service sees them."""
    me = await member.client.get("/api/me")
    assert me.status_code == 200, me.text
    return [g["id"] for g in me.json()["groups"]]


async def session_groups(redis, settings, member) -> list[int]:
    session = await SessionStore(redis, settings.redis_prefix).get(member.session.id)
    assert session is not None
    return session.group_ids


# --- creating and seeing groups ------------------------------------------------------------------------------------


async def test_only_admins_create_groups(member_factory, client):
    admin = await member_factory("ada", roles=("admin",))
    member = await member_factory("bea")
    body = {"name": "Peer supporters", "access": "open", "description": "People who offer peer support"}
    assert (await client.post("/api/groups", json=body)).status_code == 401
    assert (await member.client.post("/api/groups", json=body)).status_code == 403
    created = await admin.client.post("/api/groups", json=body)
    assert created.status_code == 201
    group = created.json()
    assert group["slug"] == "peer-supporters" and group["access"] == "open" and group["members_count"] == 0
    again = await admin.client.post("/api/groups", json={**body, "name": "peer SUPPORTERS"})
    assert again.status_code == 409 and again.json()["error"]["fields"] == {"name": "is already used"}
    bad = await admin.client.post("/api/groups", json={"name": "X", "access": "secret"})
    assert bad.status_code == 422 and "access" in bad.json()["error"]["fields"]


async def test_private_groups_are_invisible_to_outsiders(member_factory, client):
    """Outsiders (and anonymous viewers) get 404 for a private group, and do not see it listed; staff do."""
    admin = await member_factory("ada", roles=("admin",))
    outsider = await member_factory("bea")
    moderator = await member_factory("cai", roles=("moderator",))
    secret = await make_group(admin, "Survivors circle", "private")
    await make_group(admin, "Open house", "open")
    for who in (client, outsider.client):
        assert (await who.get(f"/api/groups/{secret['id']}")).status_code == 404
        assert [g["name"] for g in (await who.get("/api/groups")).json()["items"]] == ["Open house"]
        page = await who.get("/groups/survivors-circle")
        assert page.status_code == 404 and "Survivors circle" not in page.text
        assert "Survivors circle" not in (await who.get("/groups")).text
    assert (await outsider.client.post(f"/api/groups/{secret['id']}/membership", json={})).status_code == 404
    assert (await moderator.client.get(f"/api/groups/{secret['id']}")).status_code == 200
    assert len((await moderator.client.get("/api/groups")).json()["items"]) == 2


async def test_group_visible_agrees_with_its_sql(member_factory, pool):
    """access.group_visible and GROUP_VISIBLE_SQL (behind the list) agree for every viewer and kind of group."""
    admin = await member_factory("ada", roles=("admin",))
    insider = await member_factory("bea")
    outsider = await member_factory("cai")
    moderator = await member_factory("dee", roles=("moderator",))
    made = [await make_group(admin, f"{kind.capitalize()} group", kind) for kind in groups.ACCESS]
    for group in made:
        added = await admin.client.post(f"/api/groups/{group['id']}/members", json={"username": "bea"})
        assert added.status_code == 201
    viewers = {"visitor": None, **{m.username: m.session for m in (admin, insider, outsider, moderator)}}
    seen: dict[str, set[str]] = {}
    async with pool.acquire() as conn:
        for name, who in viewers.items():
            listed = {row["id"] for row in await groups.list_visible(conn, who)}
            for group in made:
                member = who is not None and who.user_id == insider.id
                assert (group["id"] in listed) == access.group_visible(who, group["access"], member), (name, group)
            seen[name] = {g["access"] for g in made if g["id"] in listed}
    everything = set(groups.ACCESS)
    assert seen == {
        "visitor": {"open", "request"},
        "cai": {"open", "request"},
        "ada": everything,
        "bea": everything,
        "dee": everything,
    }


# --- joining and leaving ----------------------------------------------------------------------------------------------


async def test_joining_an_open_group_updates_live_sessions_and_records_events(member_factory, pool, redis, settings):
    """Joining is immediate; the member's sessions learn the group at once; user.updated carries the groups."""
    admin = await member_factory("ada", roles=("admin",))
    member = await member_factory("bea")
    group = await make_group(admin)
    joined = await member.client.post(f"/api/groups/{group['id']}/membership", json={})
    assert joined.status_code == 201 and joined.json() == {"status": "member"}
    assert await session_groups(redis, settings, member) == [group["id"]]
    assert await groups_of(member) == [group["id"]]
    again = await member.client.post(f"/api/groups/{group['id']}/membership", json={})
    assert again.status_code == 200
    added = await outbox(pool, "group.member_added")
    assert [(e["user_id"], e["how"]) for e in added] == [(member.id, "joined")]
    updated = [e for e in await outbox(pool, "user.updated") if e["user_id"] == member.id]
    assert updated[-1]["group_ids"] == [group["id"]]
    detail = (await member.client.get(f"/api/groups/{group['id']}")).json()
    assert detail["viewer"] == {"member": True, "owner": False, "requested": False, "can_manage": False}
    assert detail["members_count"] == 1

    left = await member.client.delete(f"/api/groups/{group['id']}/membership")
    assert left.status_code == 204
    assert await session_groups(redis, settings, member) == []
    assert (await member.client.delete(f"/api/groups/{group['id']}/membership")).status_code == 404
    assert [e["how"] for e in await outbox(pool, "group.member_removed")] == ["left"]


async def test_on_request_groups_need_an_owner_to_approve(member_factory, redis, settings):
    admin = await member_factory("ada", roles=("admin",))
    owner = await member_factory("olu")
    asker = await member_factory("bea")
    other = await member_factory("cai")
    group = await make_group(admin, "Core Action Group", "request")
    made = await admin.client.post(f"/api/groups/{group['id']}/members", json={"username": "olu", "owner": True})
    assert made.status_code == 201 and made.json()["owner"] is True
    asked = await asker.client.post(f"/api/groups/{group['id']}/membership", json={"message": "I lead a team"})
    assert asked.status_code == 202 and asked.json() == {"status": "requested"}
    await other.client.post(f"/api/groups/{group['id']}/membership", json={})
    assert await session_groups(redis, settings, asker) == []
    assert (await asker.client.get(f"/api/groups/{group['id']}/requests")).status_code == 403
    requests = (await owner.client.get(f"/api/groups/{group['id']}/requests")).json()["items"]
    assert [(r["user"]["username"], r["message"]) for r in requests] == [("bea", "I lead a team"), ("cai", "")]
    forbidden = await asker.client.post(f"/api/groups/{group['id']}/requests/{asker.id}", json={"action": "approve"})
    assert forbidden.status_code == 403
    approved = await owner.client.post(f"/api/groups/{group['id']}/requests/{asker.id}", json={"action": "approve"})
    assert approved.json() == {"status": "member"}
    assert await session_groups(redis, settings, asker) == [group["id"]]
    denied = await owner.client.post(f"/api/groups/{group['id']}/requests/{other.id}", json={"action": "deny"})
    assert denied.json() == {"status": "denied"}
    assert await session_groups(redis, settings, other) == []
    gone = await owner.client.post(f"/api/groups/{group['id']}/requests/{other.id}", json={"action": "approve"})
    assert gone.status_code == 404


async def test_a_request_can_be_taken_back(member_factory):
    admin = await member_factory("ada", roles=("admin",))
    member = await member_factory("bea")
    group = await make_group(admin, "Core Action Group", "request")
    await member.client.post(f"/api/groups/{group['id']}/membership", json={})
    assert (await member.client.get(f"/api/groups/{group['id']}")).json()["viewer"]["requested"] is True
    assert (await member.client.delete(f"/api/groups/{group['id']}/membership")).status_code == 204
    assert (await member.client.get(f"/api/groups/{group['id']}")).json()["viewer"]["requested"] is False


async def test_private_groups_cannot_be_joined_even_by_members_asking(member_factory):
    admin = await member_factory("ada", roles=("admin",))
    member = await member_factory("bea")
    group = await make_group(admin, "Hidden", "private")
    await admin.client.post(f"/api/groups/{group['id']}/members", json={"username": "bea"})
    again = await member.client.post(f"/api/groups/{group['id']}/membership", json={})
    assert again.status_code == 200  # already a member: nothing changes


async def test_owners_add_remove_and_promote_members(member_factory, redis, settings):
    admin = await member_factory("ada", roles=("admin",))
    owner = await member_factory("olu")
    member = await member_factory("bea")
    group = await make_group(admin, "Peer supporters", "private")
    await admin.client.post(f"/api/groups/{group['id']}/members", json={"username": "olu", "owner": True})
    assert (
        await member.client.post(f"/api/groups/{group['id']}/members", json={"username": "bea"})
    ).status_code == 404  # bea cannot even see the private group
    added = await owner.client.post(f"/api/groups/{group['id']}/members", json={"username": "@bea"})
    assert added.status_code == 201 and await session_groups(redis, settings, member) == [group["id"]]
    unknown = await owner.client.post(f"/api/groups/{group['id']}/members", json={"username": "nobody"})
    assert unknown.status_code == 422 and "username" in unknown.json()["error"]["fields"]
    assert (await member.client.delete(f"/api/groups/{group['id']}/members/{owner.id}")).status_code == 403
    promoted = await owner.client.patch(f"/api/groups/{group['id']}/members/{member.id}", json={"owner": True})
    assert promoted.json()["owner"] is True
    members = (await owner.client.get(f"/api/groups/{group['id']}/members")).json()["items"]
    assert {m["username"]: m["owner"] for m in members} == {"olu": True, "bea": True}
    assert (await owner.client.delete(f"/api/groups/{group['id']}/members/{member.id}")).status_code == 204
    assert await session_groups(redis, settings, member) == []
    assert (await member.client.get(f"/api/groups/{group['id']}")).status_code == 404


async def test_owners_edit_their_group(member_factory):
    admin = await member_factory("ada", roles=("admin",))
    owner = await member_factory("olu")
    member = await member_factory("bea")
    group = await make_group(admin, "Peer supporters", "request")
    await admin.client.post(f"/api/groups/{group['id']}/members", json={"username": "olu", "owner": True})
    await admin.client.post(f"/api/groups/{group['id']}/members", json={"username": "bea"})
    assert (await member.client.patch(f"/api/groups/{group['id']}", json={"name": "Mine"})).status_code == 403
    changed = await owner.client.patch(
        f"/api/groups/{group['id']}", json={"description": "Hello\u202e", "access": "open"}
    )
    assert changed.status_code == 422  # text-direction marks are refused
    changed = await owner.client.patch(
        f"/api/groups/{group['id']}", json={"description": "For peer supporters", "access": "open"}
    )
    assert changed.status_code == 200 and changed.json()["access"] == "open"


async def test_api_tokens_learn_new_groups_too(member_factory, redis, settings):
    """A personal API token's record is refreshed like a session."""
    admin = await member_factory("ada", roles=("admin",))
    member = await member_factory("bea")
    token = (await member.client.post("/api/me/tokens", json={"name": "script"})).json()["token"]
    group = await make_group(admin)
    await member.client.post(f"/api/groups/{group['id']}/membership", json={})
    session = await SessionStore(redis, settings.redis_prefix).for_token(token)
    assert session is not None and session.group_ids == [group["id"]]


async def test_logging_in_loads_the_members_groups(member_factory, client, pool, monkeypatch):
    """A new session starts with the member's groups."""
    monkeypatch.setattr(passwords, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    passwords._dummy_hash.cache_clear()
    admin = await member_factory("ada", roles=("admin",))
    group = await make_group(admin)
    await pool.execute(
        "INSERT INTO forum.users (username, email, password_hash, display_name, email_verified_at) "
        "VALUES ('rowan', 'rowan@example.org', $1, 'Rowan', now())",
        await passwords.hash_password("long password 1"),
    )
    await admin.client.post(f"/api/groups/{group['id']}/members", json={"username": "rowan"})
    response = await client.post("/api/session", json={"login": "rowan", "password": "long password 1"})
    assert response.status_code == 200
    assert [g["id"] for g in response.json()["groups"]] == [group["id"]]
    assert (await client.get("/api/me")).json()["groups"] == [
        {"id": group["id"], "name": "Peer supporters", "slug": "peer-supporters", "owner": False}
    ]
    passwords._dummy_hash.cache_clear()


# --- invitations ------------------------------------------------------------------------------------------------------


async def test_invitations_by_email_carry_a_signed_link_for_that_address(member_factory, pool, redis, settings):
    admin = await member_factory("ada", roles=("admin",))
    invitee = await member_factory("bea")
    stranger = await member_factory("cai")
    group = await make_group(admin, "Survivors circle", "private")
    assert (
        await stranger.client.post(f"/api/groups/{group['id']}/invites", json={"email": "bea@example.org"})
    ).status_code == 404
    bad = await admin.client.post(f"/api/groups/{group['id']}/invites", json={"email": "not an address"})
    assert bad.status_code == 422
    sent = await admin.client.post(f"/api/groups/{group['id']}/invites", json={"email": "Bea@Example.org"})
    assert sent.status_code == 202
    mails = await deliver_mail(settings, redis)
    assert [m["to"] for m in mails] == ["Bea@Example.org"]
    assert "Survivors circle" in mails[0]["subject"]
    token = re.search(r"http://testserver/groups/invitations/([0-9]+\.[A-Za-z0-9_-]+)", mails[0]["text"]).group(1)
    pending = (await admin.client.get(f"/api/groups/{group['id']}/invites")).json()["items"]
    assert [i["email"] for i in pending] == ["Bea@Example.org"]

    invite_id, signature = token.split(".")
    tampered = f"{invite_id}.{signature[:-2]}xx"
    assert (await invitee.client.post("/api/group-invites/accept", json={"token": tampered})).status_code == 400
    wrong = await stranger.client.post("/api/group-invites/accept", json={"token": token})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "wrong_account"
    page = await invitee.client.get(f"/groups/invitations/{token}")
    assert page.status_code == 200 and "Survivors circle" in page.text
    accepted = await invitee.client.post("/api/group-invites/accept", json={"token": token})
    assert accepted.status_code == 200 and accepted.json()["viewer"]["member"] is True
    assert await groups_of(invitee) == [group["id"]]
    assert (await invitee.client.post("/api/group-invites/accept", json={"token": token})).status_code == 400
    assert [e["how"] for e in await outbox(pool, "group.member_added")] == ["invited"]


async def test_a_withdrawn_invitation_no_longer_works(member_factory, redis, settings):
    admin = await member_factory("ada", roles=("admin",))
    invitee = await member_factory("bea")
    group = await make_group(admin, "Survivors circle", "private")
    invite_id = (
        await admin.client.post(f"/api/groups/{group['id']}/invites", json={"email": "bea@example.org"})
    ).json()["id"]
    token = groups.invite_token(settings.key, invite_id, group["id"], "bea@example.org")
    assert (await admin.client.delete(f"/api/groups/{group['id']}/invites/{invite_id}")).status_code == 204
    assert (await invitee.client.post("/api/group-invites/accept", json={"token": token})).status_code == 400
    expired = await invitee.client.get(f"/groups/invitations/{token}")
    assert expired.status_code == 400 and "cannot be used" in expired.text


# --- pages ------------------------------------------------------------------------------------------------------------


async def test_group_pages_join_leave_and_manage_without_javascript(member_factory, client, redis, settings):
    """The forms of the group page do what the API does, and show what happened."""
    admin = await member_factory("ada", roles=("admin",))
    member = await member_factory("bea")
    csrf = {"csrf_token": member.session.csrf}
    form = await admin.client.get("/groups/new")
    assert all(f'value="{access}"' in form.text for access in ("open", "request", "private"))
    assert (await member.client.get("/groups/new")).status_code == 403
    created = await admin.client.post(
        "/groups/new",
        data={"csrf_token": admin.session.csrf, "name": "Carers", "description": "For carers", "access": "open"},
    )
    assert created.status_code == 303 and created.headers["location"] == "/groups/carers?done=created"
    listing = await client.get("/groups")
    assert listing.status_code == 200 and "Carers" in listing.text
    anonymous = await client.get("/groups/carers")
    assert "Log in</a> to join" in anonymous.text and 'id="members-heading"' not in anonymous.text
    assert (await member.client.post("/groups/carers/join", data={})).status_code == 403  # no CSRF token
    joined = await member.client.post("/groups/carers/join", data=csrf)
    assert joined.status_code == 303 and joined.headers["location"] == "/groups/carers?done=joined"
    assert len(await session_groups(redis, settings, member)) == 1
    page = await member.client.get("/groups/carers?done=joined")
    assert "You have joined this group." in page.text and "Leave this group" in page.text
    assert "Looking after this group" not in page.text
    managed = await admin.client.get("/groups/carers")
    assert "Looking after this group" in managed.text and "Invite someone by email" in managed.text
    unknown = await admin.client.post(
        "/groups/carers/members", data={"csrf_token": admin.session.csrf, "username": "nobody"}
    )
    assert unknown.status_code == 422 and "There is no member with that username" in unknown.text
    left = await member.client.post("/groups/carers/leave", data=csrf)
    assert left.headers["location"] == "/groups/carers?done=left"
    assert await session_groups(redis, settings, member) == []
