"""Forum fixtures live in tests/conftest.py (app, client, member_factory), shared by every service.

Below: the people and places of the moderation and safety tests (a module's own fixture of the
same name wins over these).
"""

from __future__ import annotations

import pytest
from moderation_helpers import new_category, new_topic, settings_changed


@pytest.fixture
async def admin(member_factory):
    return await member_factory("ada", roles=("member", "admin"))


@pytest.fixture
async def moderator(member_factory):
    return await member_factory("mo", roles=("member", "moderator"))


@pytest.fixture
async def category(admin):
    return await new_category(admin)


@pytest.fixture
async def sam(member_factory):
    return await member_factory("sam")


@pytest.fixture
async def topic(admin, category):
    return await new_topic(admin, category["id"])


@pytest.fixture
def roomy(app):
    """Rate limits out of the way, for tests that post a lot as one member."""
    with settings_changed(
        app,
        posts_per_minute=10_000,
        new_member_posts_per_minute=10_000,
        flags_per_day=10_000,
        new_member_flags_per_day=10_000,
    ):
        yield
