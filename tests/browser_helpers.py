"""Helpers for browser tests (tests/ is on sys.path)."""

from __future__ import annotations

from pathlib import Path

from shared.pages import assets_dir

AXE = Path(assets_dir()) / "axe-core" / "axe.min.js"


async def axe_violations(page, *, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict]:
    """Run axe-core on the current page; the violations of the given impacts."""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v.get("impact") in impacts]
