"""Chromium reaches the running product."""

from browser_helpers import axe_violations


async def test_home_page_loads_in_chromium(live_server, page):
    """The home page answers in a real browser with tica's header and skip link."""
    response = await page.goto(live_server + "/")
    assert response is not None and response.status < 500
    assert await page.locator("a.nhsuk-skip-link").count() == 1


async def test_axe_runs_and_reports(live_server, page):
    """axe-core runs in the page and reports a violation planted on purpose (so the check can fail)."""
    await page.goto(live_server + "/")
    await page.evaluate("() => { const i = document.createElement('img'); i.src = '/x.png'; document.body.append(i); }")
    violations = await axe_violations(page, impacts=("serious", "critical"))
    assert any(v["id"] == "image-alt" for v in violations)
