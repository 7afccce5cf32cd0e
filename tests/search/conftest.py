"""Search fixtures: a stand-in forum writing rows and events, the event path into the index
driven by hand, and a way to ask the search API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from search_helpers import Forum, Pipeline, pipeline


@pytest.fixture
def forum(pool) -> Forum:
    return Forum(pool)


@pytest_asyncio.fixture(loop_scope="session")
async def index(pool, redis, settings) -> Pipeline:
    """outbox -> relay -> stream -> search-indexer group, one step at a time (`await index.sync()`)."""
    path = pipeline(pool, redis, settings)
    await path.consumer.ensure_group()
    return path


Search = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def search(client: httpx.AsyncClient) -> Search:
    """GET /api/search as `who` (a client; anonymous by default); asserts a 200 and returns the body."""

    async def run(q: str, *, who: httpx.AsyncClient | None = None, page: int | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"q": q}
        if page is not None:
            params["page"] = page
        response = await (who or client).get("/api/search", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert set(body) == {"items", "next", "took_ms"}
        return body

    return run
