"""The forum's `tica` subcommands (accounts); added to the parser by services/cli.py.

What they need from the runner (servers, migrations, command errors) comes from services/ops.py,
never from services/cli.py: the forum must not reach the other services through the runner.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from typing import Any

from services.ops import CommandError, PlanSource, apply_migrations, servers
from shared.settings import Settings

ROLES = ("member", "moderator", "admin")


def add_commands(sub: Any, migrations: PlanSource) -> None:
    """Register the forum's subcommands on the `tica` parser; `migrations` gives every service's
    migrations, applied before a command touches the database (as `tica migrate` would)."""
    user = sub.add_parser("user", help="manage accounts")
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="an account, email already verified; prints its id")
    create.add_argument("--username", required=True)
    create.add_argument("--email", required=True)
    create.add_argument("--role", choices=ROLES, default="member")
    create.add_argument("--display-name", default=None, help="default: the username")
    create.add_argument(
        "--password-stdin",
        action="store_true",
        required=True,
        help="read the password from the first line of standard input",
    )
    create.set_defaults(func=functools.partial(cmd_user_create, migrations=migrations))


def cmd_user_create(settings: Settings, args: argparse.Namespace, *, migrations: PlanSource) -> None:
    """`tica user create`: an account with its email already verified; prints the new user id."""
    lines = sys.stdin.read().splitlines()
    password = lines[0] if lines else ""
    with servers(settings) as ready:
        asyncio.run(apply_migrations(ready, migrations()))
        try:
            user_id = asyncio.run(
                create_user(
                    ready,
                    username=args.username.strip(),
                    email=args.email.strip(),
                    password=password,
                    role=args.role,
                    display_name=args.display_name,
                )
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    print(user_id)


async def create_user(
    settings: Settings, *, username: str, email: str, password: str, role: str, display_name: str | None
) -> int:
    """Create a verified account; ValueError (one line) for anything the rules refuse."""
    from services.forum.accounts import accounts, passwords
    from shared import db
    from shared.web import ApiError

    problems = accounts.registration_problems(
        username=username, email=email, password=password, display_name=display_name
    )
    if problems:
        raise ValueError("; ".join(f"{name}: {text}" for name, text in problems.items()))
    roles = ["member"] if role == "member" else ["member", role]
    password_hash = await passwords.hash_password(password)
    assert settings.database_url
    conn = await db.connect(settings.database_url)
    try:
        async with conn.transaction():
            user = await accounts.create_account(
                conn,
                username=username,
                email=email,
                password_hash=password_hash,
                display_name=display_name,
                roles=roles,
                verified=True,
            )
    except ApiError as exc:
        raise ValueError(exc.message) from None
    finally:
        await conn.close()
    return user.id
