"""What a command needs to reach the servers: start or find them, apply migrations, fail on one line.

Sits below the services and the runner alike: `tica` (services/cli.py), `tica run`
(services/runner.py) and a service's own commands (services/forum/commands.py) all use it. It
imports no service, so a service can reach it without reaching the others; which migrations to
apply is handed in by the caller (services/cli.py gathers every service's).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from shared import db, embedded
from shared.settings import Settings

# Every schema's migration files in order, by schema (shared.db.migrate's plan).
MigrationPlan = dict[str, list[db.Migration]]
# How a command finds the plan when it needs one (services/cli.py's migration_plan).
PlanSource = Callable[[], MigrationPlan]


class CommandError(Exception):
    """A command cannot go on; its message is shown on one line."""


async def apply_migrations(settings: Settings, plan: MigrationPlan) -> list[str]:
    """Apply the plan's pending migrations (under the advisory lock); the names applied."""
    assert settings.database_url
    conn = await db.connect(settings.database_url)
    try:
        return await db.migrate(conn, plan)
    finally:
        await conn.close()


@contextlib.contextmanager
def servers(settings: Settings) -> Iterator[Settings]:
    """Settings with both URLs filled in, starting embedded servers as needed."""
    if settings.database_url and settings.redis_url:
        yield settings
        return
    try:
        running = embedded.resolve(settings.data_dir, settings.database_url, settings.redis_url)
    except embedded.EmbeddedError as exc:
        raise CommandError(str(exc)) from None
    try:
        yield settings.replace(
            database_url=running.database_url, redis_url=running.redis_url, embedded=True
        ).with_local_secret()
    finally:
        running.stop()
