"""The newcomer's first hour in Chromium, end to end, at 1280 and 390 px (issue 13): home, a topic
with a content note, register, the verification mail at /dev/mail, log in, reply, react, another
member sees the reply live, flag, the moderator acts, the library, groups and webinars. Every page
on the way: axe-core finds no serious or critical violation, no console error or failed request,
nothing wider than the screen (newcomer_helpers.Walk.check)."""

from __future__ import annotations

import re
import secrets

import pytest
from e2e.newcomer_helpers import DESKTOP, PHONE, Person, Walk, open_from_menu
from playwright.async_api import expect

from services.forum import demo

TOPIC = "What helped me feel safe in A&E"  # the demo's topic with a content note (self-harm)
NOTE = "Content note: self-harm"
WEBINAR = "Co-producing care plans with experts by experience"  # the demo's upcoming webinar
LIVE_TIMEOUT_MS = 20_000  # a reply reaches another open page through the outbox, the stream and /live
MAIL_WAIT_S = 30  # the verification mail goes out through the job worker


@pytest.fixture
async def demo_community(migrated, pool) -> None:
    """The demo community: its people (mo moderates), topics, library, groups and webinars."""
    assert await demo.seed(migrated)


async def log_in(walk: Walk, person: Person, login: str, password: str) -> None:
    """From wherever they are: the header's "Log in", then the form."""
    page = person.page
    await page.get_by_role("navigation", name="Account").get_by_role("link", name="Log in").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    await walk.check(person, "log in page")
    await page.get_by_label("Username or email address").fill(login)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Log in", exact=True).click()
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()


async def read_the_verification_mail(walk: Walk, person: Person, email: str) -> None:
    """/dev/mail, reloaded as a person would until the mail is there; open it, follow its link."""
    page = person.page
    mail = page.get_by_role("row").filter(has_text=email).get_by_role("link", name="Confirm your email address")
    for _ in range(MAIL_WAIT_S * 4):
        await page.goto(walk.base + "/dev/mail")
        if await mail.count():
            break
        await page.wait_for_timeout(250)  # polling for the worker, bounded; not a fixed wait for the test
    await walk.check(person, "caught mail")
    await mail.click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Confirm your email address")
    await walk.check(person, "the verification mail")
    await page.get_by_role("link", name=re.compile(r"verify\?token=")).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Your email address is confirmed")
    await walk.check(person, "email confirmed")


async def register(walk: Walk, person: Person, username: str, email: str, password: str, name: str) -> None:
    page = person.page
    await page.get_by_role("navigation", name="Account").get_by_role("link", name="Create an account").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Create an account")
    await walk.check(person, "register")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Display name (optional)").fill(name)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    await walk.check(person, "check your email")


async def open_topic(walk: Walk, person: Person, what: str) -> None:
    """From the home page's latest discussions, the topic with the content note."""
    page = person.page
    await page.get_by_role("link", name="tica home").click()
    await page.get_by_role("link", name=TOPIC).first.click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(TOPIC)
    await walk.check(person, what)


def post(page, number: int):
    """Post `number` of the topic page, as a screen reader names it ("Post 2 by ...")."""
    return page.get_by_role("article", name=re.compile(rf"^Post {number} by "))


async def walk_the_first_hour(walk: Walk, browser) -> None:
    token = secrets.token_hex(3)
    username, email = f"newcomer_{token}", f"newcomer-{token}@example.org"
    display_name, password = f"River {token}", f"calm river walk {token}"
    reply_text = f"Thank you for writing this. Being told what happens next matters to me too ({token})."

    # A visitor: the home page, then the topic with a content note, its posts folded.
    river = await walk.person(browser, "newcomer")
    page = river.page
    await page.goto(walk.base + "/")
    await expect(page.get_by_role("heading", level=1)).to_be_visible()
    await walk.check(river, "home")
    await open_topic(walk, river, "topic with a content note")
    await expect(page.get_by_role("heading", name="Content note")).to_be_visible()
    first = post(page, 1)
    fold = first.locator("details").filter(has=page.get_by_text(NOTE))
    await expect(fold).not_to_have_attribute("open", re.compile(".*"))
    await expect(first.get_by_text("the triage nurse sat down")).to_be_hidden()
    await first.get_by_text(NOTE).click()
    await expect(first.get_by_text(re.compile("the triage nurse sat down"))).to_be_visible()
    await walk.check(river, "content note opened")

    # Joining: register, the mail at /dev/mail, its link, log in.
    await register(walk, river, username, email, password, display_name)
    await read_the_verification_mail(walk, river, email)
    await log_in(walk, river, username, password)
    await walk.check(river, "home, logged in")

    # Sam, who wrote the topic, has it open in a browser of their own.
    sam = await walk.person(browser, "sam")
    await sam.page.goto(walk.base + "/")
    await log_in(walk, sam, "sam", "demo-password-sam")
    await open_topic(walk, sam, "topic, before the reply")
    await sam.page.evaluate("() => { window.tica_journey_not_reloaded = true; }")

    # The newcomer replies and reacts.
    await open_topic(walk, river, "topic, logged in")
    await page.get_by_label("Your reply").fill(reply_text)
    await page.get_by_role("button", name="Post reply").click()
    mine = page.get_by_role("article", name=re.compile(rf"by {re.escape(display_name)}"))
    await expect(mine).to_contain_text(reply_text)
    await walk.check(river, "topic, after replying")
    strength = post(page, 1).get_by_role("button", name=re.compile(r"^Sending strength"))
    await expect(strength).to_have_attribute("aria-pressed", "false")
    await strength.click()
    await expect(strength).to_have_attribute("aria-pressed", "true")
    walk.problems_after(river, "reacted")

    # Sam sees the reply arrive without reloading.
    await expect(sam.page.get_by_text(reply_text)).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    assert await sam.page.evaluate("() => window.tica_journey_not_reloaded === true"), "Sam's page was reloaded"
    await walk.check(sam, "topic, the reply arrived live")

    # The newcomer flags a post for a moderator.
    await post(page, 2).get_by_role("link", name="Flag post 2 for a moderator").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Flag post 2 for a moderator")
    await walk.check(river, "flag a post")
    await page.get_by_label("Off topic").check()
    await page.get_by_label("Anything a moderator should know").fill(f"Checking how flags work ({token}).")
    await page.get_by_role("button", name="Send to a moderator").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Thank you for flagging")
    await walk.check(river, "flag sent")

    # Mo, a moderator, finds it in the review queue and keeps the post visible.
    mo = await walk.person(browser, "moderator")
    await mo.page.goto(walk.base + "/")
    await log_in(walk, mo, "mo", "demo-password-mo")
    await open_from_menu(mo.page, "Review")
    await expect(mo.page.get_by_role("heading", level=1)).to_be_visible()
    await walk.check(mo, "review queue")
    item = mo.page.get_by_role("article").filter(has_text=f"Checking how flags work ({token})")
    await expect(item).to_contain_text(f"post 2 in “{TOPIC}”")
    await item.get_by_role("button", name=re.compile(r"^Keep visible")).click()
    await expect(mo.page.get_by_role("main")).to_contain_text(re.compile(r"You kept .+ visible\."))
    await expect(item).to_have_count(0)
    await walk.check(mo, "review queue, after keeping the post visible")

    # The library: a folder, a document.
    await open_from_menu(page, "Library")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Document library")
    await walk.check(river, "library")
    await page.get_by_role("link", name="Policies and guidance", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Policies and guidance")
    await walk.check(river, "library folder")
    await page.get_by_role("link", name="The five principles of trauma-informed care").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("The five principles of trauma-informed care")
    await walk.check(river, "document")

    # Groups: join the open one.
    await open_from_menu(page, "Groups")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Groups")
    await walk.check(river, "groups")
    await page.get_by_role("link", name="Reflective practice circle").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Reflective practice circle")
    await walk.check(river, "open group")
    await page.get_by_role("button", name="Join this group").click()
    await expect(page.get_by_role("button", name="Leave this group")).to_be_visible()
    await walk.check(river, "group joined")

    # Webinars: the upcoming one; register.
    await open_from_menu(page, "Webinars")
    await expect(page.get_by_role("heading", level=1)).to_be_visible()
    await walk.check(river, "webinars")
    await page.get_by_role("link", name=WEBINAR).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(WEBINAR)
    await walk.check(river, "upcoming webinar")
    await page.get_by_role("button", name="Register", exact=True).click()
    await expect(page.get_by_text(re.compile("you have a seat", re.I)).first).to_be_visible()
    await walk.check(river, "registered for the webinar")

    for person in walk.people:
        walk.problems_after(person, "at the end")


@pytest.mark.parametrize("width", ["desktop", "phone"])
async def test_the_newcomers_first_hour(live_server, browser, demo_community, width):
    """A newcomer's first hour, as a person does it, on a desktop and on a phone: every page is
    accessible (axe), quiet (no console error or failed request) and fits the screen."""
    walk = Walk(live_server, width, DESKTOP if width == "desktop" else PHONE)
    try:
        await walk_the_first_hour(walk, browser)
    finally:
        await walk.close()
    if walk.problems:
        pytest.fail(walk.report(), pytrace=False)
