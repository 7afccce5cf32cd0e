"""Issue 12, defect 11: display names cannot pass for another member or a role, nor be invisible; the
username shows beside the display name where it matters."""

from __future__ import annotations

import pytest
from moderation_helpers import new_topic

from services.forum.accounts.accounts import name_skeleton

PASSWORD = "correct horse battery"


@pytest.fixture
async def members(moderator, admin, sam, pool):
    """mo (a moderator), ada (an admin, shown as "Ada Lovelace") and sam."""
    await pool.execute("UPDATE forum.users SET display_name = 'Ada Lovelace' WHERE id = $1", admin.id)
    return moderator, admin, sam


@pytest.mark.parametrize(
    "name",
    [
        "Mo",  # another member's username (and display name)
        "\u041c\u043e",  # "Mo" in Cyrillic letters: looks like a staff member's name
        "\uff2d\uff2f",  # "MO" in fullwidth letters
        "M_o",
        "Ada Lovelace",  # another member's display name
        "\u0410da L\u043evelace",  # the same with a Cyrillic A and o
        "ada.lovelace",
    ],
)
async def test_names_too_like_another_members_are_refused(members, name, pool):
    """A name that looks like another member's username or display name is a 422 on the field."""
    _, _, sam = members
    response = await sam.client.patch("/api/me", json={"display_name": name})
    assert response.status_code == 422, response.text
    assert "too like another member" in response.json()["error"]["fields"]["display_name"]
    assert await pool.fetchval("SELECT display_name FROM forum.users WHERE id = $1", sam.id) == "Sam"


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("mod1 (Moderator)", "role"),
        ("Sam the Admin", "role"),
        ("Staff Sam", "role"),
        ("SAM ADM1N", "role"),  # "1" passes for "i"
        ("Moderat0r Sam", "role"),
        ("Staffordshire Sam", None),  # a word that only starts like a role is no role
        ("\u200b\u200b", "invisible"),
        ("\u200b", "invisible"),
        ("Sam\u200bJones", "invisible"),
        ("Sam\u2060", "invisible"),
        ("\u3164", "invisible"),  # Hangul filler: a "letter" that shows as nothing
        ("Sam\ufe0f", "invisible"),
        ("Sam\u00a0Jones", "invisible"),
        ("...", "letter or number"),
    ],
)
async def test_role_words_and_invisible_characters_are_refused(members, name, says):
    """Role words ("mod1 (Moderator)") and invisible or blank characters are refused with a reason."""
    _, _, sam = members
    response = await sam.client.patch("/api/me", json={"display_name": name})
    if says is None:
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 422, response.text
    assert says in response.json()["error"]["fields"]["display_name"]


@pytest.mark.parametrize(
    "name", ["Sam Jones", "Sam", "SAM", "Samira \u00c5berg", "\u0421\u044d\u043c", "Mo Farah-Jones"]
)
async def test_ordinary_names_are_accepted(members, name, pool):
    """Names of one's own (one's own username too, and other scripts) are accepted as written."""
    _, _, sam = members
    response = await sam.client.patch("/api/me", json={"display_name": name})
    assert response.status_code == 200, response.text
    assert await pool.fetchval("SELECT display_name FROM forum.users WHERE id = $1", sam.id) == name


async def test_a_stored_name_from_before_the_rules_stays(members, pool):
    """A member whose stored name breaks the new rules keeps it, and can still change the rest."""
    _, _, sam = members
    await pool.execute("UPDATE forum.users SET display_name = 'Mo (Moderator)' WHERE id = $1", sam.id)
    response = await sam.client.patch("/api/me", json={"display_name": "Mo (Moderator)", "bio": "Hello"})
    assert response.status_code == 200, response.text
    row = await pool.fetchrow("SELECT display_name, bio FROM forum.users WHERE id = $1", sam.id)
    assert (row["display_name"], row["bio"]) == ("Mo (Moderator)", "Hello")


async def test_registration_refuses_a_look_alike_name(members, client, pool):
    """Registering with a display name that passes for a staff member is a 422; nothing is created."""
    body = {"username": "newcomer", "email": "new@example.org", "password": PASSWORD, "display_name": "\u041c\u043e"}
    response = await client.post("/api/users", json=body)
    assert response.status_code == 422, response.text
    assert "display_name" in response.json()["error"]["fields"]
    assert await pool.fetchval("SELECT count(*) FROM forum.users WHERE username = 'newcomer'") == 0


async def test_profile_form_shows_the_problem(members):
    """The profile form answers a refused name with the error on the field, not a 500."""
    _, _, sam = members
    response = await sam.client.post(
        "/me/edit", data={"display_name": "mod1 (Moderator)", "csrf_token": sam.session.csrf}
    )
    assert response.status_code == 422, response.text
    assert "role" in response.text


async def test_post_headers_show_the_username(members, category):
    """On the topic page each post's header shows the author's @username beside the display name."""
    _, _, sam = members
    topic = await new_topic(sam, category["id"])
    page = await sam.client.get(f"/t/{topic['id']}", follow_redirects=True)
    assert page.status_code == 200
    assert '<a href="/u/sam">Sam</a> <span class="nhsuk-body-s tica-post__username">@sam</span>' in page.text


def test_skeletons_fold_look_alikes():
    """The skeleton folds case, width, punctuation and look-alike letters, and keeps real differences."""
    assert name_skeleton("\u041c\u043e") == name_skeleton("mo") == name_skeleton("\uff2d\uff2f") == "mo"
    assert name_skeleton("\u0440\u0430\u0443\u0440\u0430l") == name_skeleton("paypal")  # Cyrillic er, a and u
    assert name_skeleton("Ada Lovelace") == name_skeleton("ada_lovelace") == name_skeleton("AdaL0ve1ace")
    assert name_skeleton("Sam") != name_skeleton("Som")
