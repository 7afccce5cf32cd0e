"""The small community of a fault run, made through the front door: accounts as `tica user create`
makes them, API tokens as a member asks for them, a category, a topic and a mail preference
through the JSON APIs of forum and notify.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from faults.cluster import Cluster, Process
from services.forum.commands import create_user
from shared.sessions import CSRF_COOKIE, CSRF_HEADER
from shared.settings import Settings

PASSWORD = "steady-under-faults-1"


@dataclass
class Community:
    """The members and the topic of a fault run."""

    topic_id: int
    watcher_id: int
    watcher_email: str
    watcher_token: str
    writer_token: str


async def seed(cluster: Cluster, database_url: str) -> Community:
    """An admin's category; a watcher who starts a topic and wants mail about every post in it; a writer."""
    settings = Settings.from_env({}).replace(database_url=database_url)
    ids = {}
    for username, role in (("faultadmin", "admin"), ("watcher", "member"), ("writer", "member")):
        ids[username] = await create_user(
            settings,
            username=username,
            email=f"{username}@example.org",
            password=PASSWORD,
            role=role,
            display_name=None,
        )
    admin, watcher, writer = [await api_token(cluster.forum.url, name) for name in ("faultadmin", "watcher", "writer")]
    async with httpx.AsyncClient(base_url=cluster.forum.url, timeout=10) as http:
        category = await http.post("/api/categories", json={"name": "Fault run"}, headers=_bearer(admin))
        category.raise_for_status()
        topic = await http.post(
            "/api/topics",
            json={
                "category_id": category.json()["id"],
                "title": "Staying steady while things fail",
                "body": "Replies arrive here while the services are killed and Redis restarts.",
            },
            headers=_bearer(watcher),
        )
        topic.raise_for_status()
    topic_id = int(topic.json()["id"])
    await until_notify_knows(cluster.notify, watcher, topic_id)
    async with httpx.AsyncClient(base_url=cluster.notify.url, timeout=10) as http:
        wanted = await http.put("/api/me/preferences", json={"email_on_watched": "always"}, headers=_bearer(watcher))
        wanted.raise_for_status()
    return Community(topic_id, ids["watcher"], "watcher@example.org", watcher, writer)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def api_token(forum_url: str, username: str) -> str:
    """A personal API token, made as a member makes one: log in, then ask for it."""
    async with httpx.AsyncClient(base_url=forum_url, timeout=10) as http:
        login = await http.post("/api/session", json={"login": username, "password": PASSWORD})
        login.raise_for_status()
        made = await http.post(
            "/api/me/tokens", json={"name": "fault run"}, headers={CSRF_HEADER: http.cookies[CSRF_COOKIE]}
        )
        made.raise_for_status()
        return str(made.json()["token"])


async def until_notify_knows(notify: Process, token: str, topic_id: int, timeout_s: float = 20) -> None:
    """Until notify has the topic from the event stream (and so its author, who watches it)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=notify.url, headers=_bearer(token), timeout=5) as http:
        while time.monotonic() < deadline:
            answer = await http.get("/api/watch", params={"target": f"topic:{topic_id}"})
            if answer.status_code == 200 and answer.json().get("level") == "watching":
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"notify never learned of topic {topic_id}: {notify.tail()}")
