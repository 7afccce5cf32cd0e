"""What the newcomer's walk (test_newcomer_journey.py) checks on every page it reaches, and the
people of the walk: one browser context each, at the width being tried.

A page is checked once it has settled (loaded, its fonts and its own requests done): axe-core
finds no serious or critical violation, nothing logged a console error or a script error, no
request failed, was refused (4xx/5xx) or went to another origin, and nothing runs off the side
of the screen. Problems are collected, each with the pages it was found on, and the walk fails
at its end with all of them, so one run says everything that is wrong."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from browser_helpers import AXE, ConsoleWatch, overflow_px, watch_console

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SETTLE_TIMEOUT_MS = 15_000
AXE_SOURCE = AXE.read_text(encoding="utf-8") + "\n;true"


@dataclass
class Person:
    """One person of the walk: their browser context, page, and what went wrong in it."""

    name: str
    context: object
    page: object
    watch: ConsoleWatch


@dataclass
class Walk:
    """The walk at one width: its people, and every problem found on the pages they saw (each
    problem once, with the pages it was found on)."""

    base: str
    width: str
    viewport: dict[str, int]
    problems: dict[str, list[str]] = field(default_factory=dict)
    checked: list[str] = field(default_factory=list)
    people: list[Person] = field(default_factory=list)

    async def person(self, browser, name: str) -> Person:
        """A new browser context (a person of their own) at this walk's width, watched. The site's
        Content-Security-Policy stays on, as in anyone's browser (axe_violations needs no bypass)."""
        phone = self.viewport["width"] < 600
        context = await browser.new_context(viewport=self.viewport, is_mobile=phone, has_touch=phone)
        page = await context.new_page()
        person = Person(name, context, page, watch_console(page, self.base))
        self.people.append(person)
        return person

    def _found(self, where: str, problem: str) -> None:
        self.problems.setdefault(problem.replace(self.base, ""), []).append(where)

    async def check(self, person: Person, what: str) -> None:
        """The page `person` is on, once settled: axe, console and requests, width."""
        page = person.page
        await page.wait_for_load_state("networkidle", timeout=SETTLE_TIMEOUT_MS)
        await page.evaluate("() => document.fonts.ready.then(() => true)")
        where = f"{person.name}: {what} ({urlsplit(page.url).path})"
        self.checked.append(where)
        for problem in person.watch.take():
            self._found(where, problem)
        for violation in await axe_violations(page):
            targets = ", ".join(" ".join(node["target"]) for node in violation["nodes"][:4])
            self._found(where, f"axe {violation['id']} ({violation['impact']}): {targets}")
        wider = await overflow_px(page)
        if wider > 0:
            self._found(where, f"the page is wider than the {self.viewport['width']} px screen (by {wider} px)")

    def problems_after(self, person: Person, what: str) -> None:
        """Problems in a page since its last check (a live update, a script's fetch)."""
        for problem in person.watch.take():
            self._found(f"{person.name}: {what} ({urlsplit(person.page.url).path})", problem)

    def report(self) -> str:
        lines = [f"{self.width}: {len(self.problems)} problems on the {len(self.checked)} pages checked"]
        for problem, pages in self.problems.items():
            lines += [f"- {problem}", f"    on {len(pages)} pages: " + "; ".join(dict.fromkeys(pages))]
        return "\n".join(lines)

    async def close(self) -> None:
        for person in self.people:
            await person.context.close()


async def axe_violations(page) -> list[dict]:
    """axe-core's serious and critical violations on the page. Run through the debugging protocol
    rather than added as a script tag, so the site's Content-Security-Policy stays on (a newcomer's
    browser does not bypass it, and what it blocks is reported as console errors)."""
    await page.evaluate(AXE_SOURCE)
    result = await page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v.get("impact") in ("serious", "critical")]


async def open_from_menu(page, name: str) -> None:
    """Follow a link of the header's menu as a person would: straight there when it shows, or
    through the menu's "More" button when the screen is too narrow for it."""
    menu = page.get_by_role("navigation", name="Menu")
    # a link's name may go on after its word: staff's "Review" says how many items wait
    link = menu.get_by_role("link", name=re.compile(rf"^{re.escape(name)}\b"))
    if not await link.is_visible():
        await menu.get_by_role("button", name=re.compile(r"More$")).click()
    await link.click()
