"""The member directory: members who are logged in find each other by name, organisation
and interests; members can leave it; admins give badges."""

from __future__ import annotations

from xss_corpus import PAYLOADS, assert_inert


async def profile(member, **fields) -> None:
    response = await member.client.patch("/api/me", json=fields)
    assert response.status_code == 200, response.text


async def names(member, **params) -> list[str]:
    response = await member.client.get("/api/directory", params=params)
    assert response.status_code == 200, response.text
    return [m["username"] for m in response.json()["items"]]


async def test_the_directory_is_for_members_who_are_logged_in(client):
    assert (await client.get("/api/directory")).status_code == 401
    page = await client.get("/members")
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/members"


async def test_members_are_found_by_name_organisation_and_interests(member_factory):
    """Every word must match one of the fields; filters narrow to the organisation or interests."""
    ada = await member_factory("ada")
    bea = await member_factory("bea")
    cai = await member_factory("cai")
    await profile(ada, display_name="Ada Lovelace", organisation="NHS Lothian", interests="peer support, supervision")
    await profile(bea, organisation="Lothian Carers", interests="creative writing")
    await profile(cai, organisation="Hope Trust", interests="peer support in prisons")
    assert await names(ada) == ["ada", "bea", "cai"]
    assert await names(ada, q="lovelace") == ["ada"]
    assert await names(ada, q="lothian") == ["ada", "bea"]
    assert await names(ada, q="peer lothian") == ["ada"]
    assert await names(ada, organisation="trust") == ["cai"]
    assert await names(ada, interest="peer support") == ["ada", "cai"]
    assert await names(ada, q="%") == []  # wildcards are taken literally
    assert await names(ada, q="_") == []
    card = (await ada.client.get("/api/directory", params={"q": "ada"})).json()["items"][0]
    assert card["organisation"] == "NHS Lothian" and card["url"] == "/u/ada" and card["badges"] == []


async def test_members_can_leave_the_directory(member_factory, pool):
    """Leaving takes a member out of every search; unverified and suspended members are never listed."""
    ada = await member_factory("ada")
    bea = await member_factory("bea")
    await member_factory("cai")
    await member_factory("dee")
    await pool.execute("UPDATE forum.users SET email_verified_at = NULL WHERE username = 'cai'")
    await pool.execute("UPDATE forum.users SET suspended_until = now() + interval '1 day' WHERE username = 'dee'")
    assert await names(ada) == ["ada", "bea"]
    await profile(bea, in_directory=False)
    assert (await bea.client.get("/api/me")).json()["in_directory"] is False
    assert await names(ada) == ["ada"]
    page = await bea.client.get("/members")
    assert "You are not listed in the directory" in page.text
    edit = await bea.client.post(
        "/me/edit",
        data={"csrf_token": bea.session.csrf, "display_name": "Bea", "in_directory": "1", "organisation": "Hope Trust"},
    )
    assert edit.status_code == 303
    assert await names(ada, organisation="hope") == ["bea"]


async def test_profile_fields_are_checked(member_factory):
    ada = await member_factory("ada")
    too_long = await ada.client.patch("/api/me", json={"organisation": "x" * 101})
    assert too_long.status_code == 422 and set(too_long.json()["error"]["fields"]) == {"organisation"}
    reordering = await ada.client.patch("/api/me", json={"organisation": "NHS\u202e", "interests": "ok\u202etext"})
    assert reordering.status_code == 422
    assert set(reordering.json()["error"]["fields"]) == {"organisation", "interests"}


async def test_admins_give_and_take_back_badges(member_factory, client):
    admin = await member_factory("ada", roles=("admin",))
    member = await member_factory("bea")
    assert (await member.client.post("/api/badges", json={"name": "Expert by experience"})).status_code == 403
    badge = (
        await admin.client.post(
            "/api/badges", json={"name": "Expert by experience", "description": "Lived experience of trauma"}
        )
    ).json()
    core = (await admin.client.post("/api/badges", json={"name": "Core Action Group"})).json()
    assert (await admin.client.post("/api/badges", json={"name": "expert BY experience"})).status_code == 409
    assert (await member.client.post("/api/users/bea/badges", json={"badge_id": badge["id"]})).status_code == 403
    given = await admin.client.post("/api/users/bea/badges", json={"badge_id": badge["id"]})
    assert given.status_code == 201 and [b["name"] for b in given.json()["badges"]] == ["Expert by experience"]
    assert (await admin.client.post("/api/users/nobody/badges", json={"badge_id": badge["id"]})).status_code == 404
    assert (await admin.client.post("/api/users/bea/badges", json={"badge_id": 999999})).status_code == 404
    public = (await client.get("/api/users/bea")).json()
    assert public["badges"] == [
        {"id": badge["id"], "name": "Expert by experience", "description": "Lived experience of trauma"}
    ]
    assert "Expert by experience" in (await client.get("/u/bea")).text
    assert await names(admin, badge=str(badge["id"])) == ["bea"]
    assert await names(admin, badge=str(core["id"])) == []
    listed = (await client.get("/api/badges")).json()["items"]
    assert {b["name"]: b["members_count"] for b in listed} == {"Core Action Group": 0, "Expert by experience": 1}
    assert (await admin.client.delete(f"/api/users/bea/badges/{badge['id']}")).status_code == 204
    assert (await admin.client.delete(f"/api/users/bea/badges/{badge['id']}")).status_code == 404
    assert await names(admin, badge=str(badge["id"])) == []


async def test_the_badges_page_lets_admins_manage_badges(member_factory):
    admin = await member_factory("ada", roles=("admin",))
    member = await member_factory("bea")
    assert (await member.client.get("/members/badges")).status_code == 403
    csrf = admin.session.csrf
    created = await admin.client.post(
        "/members/badges", data={"csrf_token": csrf, "action": "create", "name": "Core Action Group"}
    )
    assert created.status_code == 200 and "was created" in created.text
    badge_id = (await admin.client.get("/api/badges")).json()["items"][0]["id"]
    given = await admin.client.post(
        "/members/badges", data={"csrf_token": csrf, "action": "grant", "username": "bea", "badge_id": str(badge_id)}
    )
    assert "has the badge now" in given.text
    missing = await admin.client.post(
        "/members/badges", data={"csrf_token": csrf, "action": "grant", "username": "nobody", "badge_id": str(badge_id)}
    )
    assert missing.status_code == 422 and "There is no member with that username" in missing.text


async def test_directory_page_lists_and_escapes_what_members_wrote(member_factory):
    ada = await member_factory("ada")
    bea = await member_factory("bea")
    for payload in [p for p in PAYLOADS if "<" in p and "\x00" not in p][:20]:
        await profile(bea, organisation=" ".join(payload[:100].split()), interests=payload[:500].strip())
        page = await ada.client.get("/members", params={"q": "bea"})
        assert page.status_code == 200 and page.text.count("<h1") == 1
        assert_inert(page.text, page=True, allow_script_src=True)
    empty = await ada.client.get("/members", params={"q": "zzzz"})
    assert "Nobody matches that search" in empty.text
