"""Sign-up modes in Chromium at desktop and phone widths: asking to join while sign-up needs
approval, the kind refusal at login, the staff queue approving with a note; joining by invitation
(no form without one, the invitations page, the invitation's link, a used link). axe, overflow and
the console are checked on every page; mail goes through a real SMTP server.

Each test runs its own tica, started with the sign-up mode as admins would have set it."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import pytest
from browser_helpers import DESKTOP, PHONE, assert_page_sound, free_port, member_page, serving_tica, watch_console
from playwright.async_api import expect
from signup_helpers import PASSWORD, Mailbox, cheap_hashing, mailbox

from shared.settings import Settings

QUESTION = "What brings you to a trauma-informed care community?"
VIEWPORTS = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])


@contextlib.asynccontextmanager
async def running(migrated: Settings, registration_mode: str) -> AsyncIterator[tuple[str, Mailbox]]:
    """tica in a sign-up mode, and the mailbox its mail reaches (a real SMTP server)."""
    port = free_port()
    settings = migrated.replace(
        port=port, base_url=f"http://127.0.0.1:{port}", registration_mode=registration_mode, signup_question=QUESTION
    )
    with mailbox(settings) as box:
        async with serving_tica(settings, worker=False) as base:
            yield base, box


@pytest.fixture(autouse=True)
def quick_hashing(monkeypatch):
    cheap_hashing(monkeypatch)


async def fill_registration(page, username: str, email: str | None = None) -> None:
    await page.get_by_label("Username", exact=True).fill(username)
    if email is not None:
        await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)


@VIEWPORTS
async def test_asking_to_join_and_being_welcomed(migrated, pool, redis, browser, member_factory, viewport):
    """A visitor asks to join with an answer (after forgetting it), is told kindly at login that the
    request waits, a moderator reads the answer and welcomes them with a note, and they log in."""
    moderator = await member_factory("mo", roles=("member", "moderator"))
    async with running(migrated, "approval") as (base, mails):
        context, page = await member_page(browser, base, None, viewport)
        watch = watch_console(page, base)
        await page.goto(base + "/register")
        await expect(page.locator("h1")).to_have_text("Create an account")
        await expect(page.get_by_label(QUESTION)).to_be_visible()
        await assert_page_sound(page, watch, "register page, approval")
        await fill_registration(page, "rowan", "rowan@example.org")
        watch.expect_status("/register", 422)
        await page.get_by_role("button", name="Ask to join").click()
        await expect(page.locator(".nhsuk-error-summary")).to_contain_text("Answer the question")
        await assert_page_sound(page, watch, "register page with an error")
        await page.get_by_label("Password", exact=True).fill(PASSWORD)
        await page.get_by_label(QUESTION).fill("I am a ward nurse.\nI want our ward to feel safer.")
        await page.get_by_role("button", name="Ask to join").click()
        await expect(page.locator("h1")).to_have_text("Thank you for asking to join")
        await assert_page_sound(page, watch, "asked to join")
        [confirm] = await mails.to("rowan@example.org")
        verify = re.search(r"http://127\.0\.0\.1:\d+/verify\?token=\S+", confirm.get_body(("plain",)).get_content())
        assert verify
        await page.goto(verify.group(0))
        await expect(page.locator("h1")).to_have_text("Your email address is confirmed")
        await expect(page.locator("main")).to_contain_text("Your request to join is with the moderators")
        await assert_page_sound(page, watch, "address confirmed while waiting")

        await page.goto(base + "/login")
        await page.get_by_label("Username or email address").fill("rowan")
        await page.get_by_label("Password", exact=True).fill(PASSWORD)
        watch.expect_status("/login", 403)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.locator("h1")).to_have_text("Your account is waiting to be welcomed")
        await expect(page.locator("main")).to_contain_text("A moderator has not yet read your request")
        await assert_page_sound(page, watch, "waiting at login")

        staff_context, staff = await member_page(browser, base, moderator, viewport)
        staff_watch = watch_console(staff, base)
        await staff.goto(base + "/admin/signups")
        card = staff.locator("section.nhsuk-card").filter(has_text="I want our ward")
        await expect(card).to_contain_text("I want our ward to feel safer.")
        await expect(card).to_contain_text("confirmed")
        await expect(card).not_to_contain_text("not confirmed yet")
        await assert_page_sound(staff, staff_watch, "the sign-up queue")
        await card.get_by_label(re.compile("A note for rowan")).fill("Welcome aboard.")
        await card.get_by_role("button", name="Approve rowan").click()
        await expect(staff.locator("main")).to_contain_text("You welcomed rowan.")
        await expect(staff.locator("main")).to_contain_text("Nobody is waiting.")
        await assert_page_sound(staff, staff_watch, "the queue after approving")
        await staff_context.close()
        welcome = [m for m in await mails.to("rowan@example.org") if "Welcome" in str(m["Subject"])]
        assert len(welcome) == 1 and "Welcome aboard." in welcome[0].get_body(("plain",)).get_content()
        assert "You have not confirmed your email address yet" not in welcome[0].get_body(("plain",)).get_content()

        await page.goto(base + "/login")
        await page.get_by_label("Username or email address").fill("rowan")
        await page.get_by_label("Password", exact=True).fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await expect(page).to_have_url(base + "/")
        await expect(page.get_by_role("button", name="Log out")).to_be_visible()
        watch.assert_clean("logged in")
        await context.close()


@VIEWPORTS
async def test_joining_by_invitation(migrated, pool, redis, browser, member_factory, viewport):
    """Without an invitation the register page has no form; a moderator invites with a note; the
    link opens the form with the address; the account is ready at once; the link then says it was used."""
    moderator = await member_factory("mo", roles=("member", "moderator"))
    async with running(migrated, "invite") as (base, mails):
        context, page = await member_page(browser, base, None, viewport)
        watch = watch_console(page, base)
        await page.goto(base + "/register")
        await expect(page.locator("h1")).to_have_text("Joining is by invitation")
        await expect(page.locator("main form")).to_have_count(0)
        await assert_page_sound(page, watch, "register page, invitation only")

        staff_context, staff = await member_page(browser, base, moderator, viewport)
        staff_watch = watch_console(staff, base)
        await staff.goto(base + "/admin/invitations")
        await expect(staff.locator("main")).to_contain_text("No invitations.")
        await assert_page_sound(staff, staff_watch, "the invitations page")
        for email in ("rowan@example.org", "sky@example.org"):
            await staff.get_by_label("Their email address").fill(email)
            await staff.get_by_label("A personal note (optional)").fill("Good to meet you at the network day.")
            await staff.get_by_role("button", name="Send invitation").click()
            await expect(staff.locator("main")).to_contain_text("The invitation is on its way.")
        await staff.get_by_role("button", name="Withdraw the invitation to sky@example.org").click()
        await expect(staff.locator("main")).to_contain_text("The invitation was withdrawn")
        await expect(staff.get_by_role("row", name=re.compile("sky@example.org"))).to_contain_text("Withdrawn")
        await assert_page_sound(staff, staff_watch, "the invitations page after withdrawing")

        [invitation] = await mails.to("rowan@example.org")
        text = invitation.get_body(("plain",)).get_content()
        assert "Good to meet you at the network day." in text
        match = re.search(r"http://127\.0\.0\.1:\d+/register\?invitation=\S+", text)
        assert match
        await page.goto(match.group(0))
        await expect(page.get_by_label("Email address")).to_have_value("rowan@example.org")
        await expect(page.get_by_label(QUESTION)).to_have_count(0)
        await assert_page_sound(page, watch, "register page with an invitation")
        await fill_registration(page, "rowan")
        await page.get_by_role("button", name="Create account").click()
        await expect(page.locator("h1")).to_have_text("Your account is ready")
        await assert_page_sound(page, watch, "account ready")

        watch.expect_status("/register", 400)
        await page.goto(match.group(0))
        await expect(page.locator("h1")).to_have_text("This invitation has been used")
        await assert_page_sound(page, watch, "a used invitation")
        await staff.goto(base + "/admin/invitations?status=used")
        await expect(staff.get_by_role("row", name=re.compile("rowan@example.org"))).to_contain_text("Used")
        await staff_context.close()
        await context.close()
