"""Helpers shared by the moderation and safety tests (their fixtures are in tests/forum/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.events import Envelope, Event


def forum_runtime(app: Any) -> Any:
    """The forum service's runtime inside the all-in-one test app."""
    return app.apps["forum"].state.runtime


@contextmanager
def settings_changed(app: Any, **changes: Any) -> Iterator[None]:
    """Run with some forum settings changed (thresholds, limits), restored afterwards."""
    rt = forum_runtime(app)
    before = rt.settings
    rt.settings = before.replace(**changes)
    try:
        yield
    finally:
        rt.settings = before


async def new_category(admin: Any, name: str = "General", **extra: Any) -> dict[str, Any]:
    response = await admin.client.post("/api/categories", json={"name": name, **extra})
    assert response.status_code == 201, response.text
    return response.json()


async def new_topic(
    member: Any,
    category_id: int,
    title: str = "A topic to talk about",
    body: str = "Hello everyone",
    *,
    status: int = 201,
    **extra: Any,
) -> dict[str, Any]:
    response = await member.client.post(
        "/api/topics", json={"category_id": category_id, "title": title, "body": body, **extra}
    )
    assert response.status_code == status, response.text
    return response.json()


async def reply(
    member: Any, topic_id: int, body: str = "A reply", *, status: int = 201, **extra: Any
) -> dict[str, Any]:
    response = await member.client.post(f"/api/topics/{topic_id}/posts", json={"body": body, **extra})
    assert response.status_code == status, response.text
    return response.json()


async def flag(member: Any, post_id: int, reason: str = "inappropriate", note: str | None = None) -> Any:
    body: dict[str, Any] = {"reason": reason}
    if note is not None:
        body["note"] = note
    return await member.client.post(f"/api/posts/{post_id}/flags", json=body)


async def events(pool: Any, type_: str | None = None) -> list[Event]:
    """Every event in the outbox (checked against its definition), oldest first."""
    rows = await pool.fetch("SELECT payload FROM forum.outbox ORDER BY id")
    found = [Envelope(**row["payload"]).event() for row in rows]
    return [e for e in found if type_ is None or e.type == type_]


async def envelopes(pool: Any, type_: str) -> list[Envelope]:
    rows = await pool.fetch("SELECT payload FROM forum.outbox WHERE type = $1 ORDER BY id", type_)
    return [Envelope(**row["payload"]) for row in rows]


async def review_of(pool: Any, post_id: int, kind: str) -> Any:
    return await pool.fetchrow("SELECT * FROM forum.reviewables WHERE post_id = $1 AND kind = $2", post_id, kind)


async def audit_actions(pool: Any) -> list[str]:
    """The moderation actions in the audit log, oldest first (not the categories fixtures made)."""
    rows = await pool.fetch("SELECT action FROM forum.audit_log WHERE action NOT LIKE 'category.%' ORDER BY id")
    return [row["action"] for row in rows]
