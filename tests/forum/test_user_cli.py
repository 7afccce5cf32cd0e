"""`tica user create`: an account from the command line, password on standard input."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from test_accounts import PASSWORD

TICA = str(Path(sys.executable).parent / "tica")


async def tica(settings, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """Run `tica` against the test servers; (exit code, stdout, stderr)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TICA_", "SMTP_"))}
    env.update(
        {
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "TICA_SECRET_KEY": settings.secret_key,
            "TICA_REDIS_PREFIX": settings.redis_prefix,
            "TICA_LOG_LEVEL": "WARNING",
        }
    )
    process = await asyncio.create_subprocess_exec(
        TICA,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def create_args(username: str = "ada", role: str = "admin", email: str | None = None) -> list[str]:
    return [
        "user",
        "create",
        "--username",
        username,
        "--email",
        email or f"{username}@example.org",
        "--role",
        role,
        "--password-stdin",
    ]


async def test_user_create_prints_the_id_of_a_verified_account(settings, pool, client):
    """The account exists, verified, with its role, records user.registered, and can log in."""
    code, out, err = await tica(settings, *create_args(), stdin=PASSWORD + "\n")
    assert code == 0, err
    user_id = int(out.strip())
    row = await pool.fetchrow(
        "SELECT username, roles, email_verified_at, password_hash FROM forum.users WHERE id = $1", user_id
    )
    assert row["username"] == "ada" and row["roles"] == ["member", "admin"]
    assert row["email_verified_at"] is not None and row["password_hash"].startswith("$argon2id$")
    assert await pool.fetchval("SELECT type FROM forum.outbox") == "user.registered"
    response = await client.post("/api/session", json={"login": "ada@example.org", "password": PASSWORD})
    assert response.status_code == 200 and response.json()["roles"] == ["member", "admin"]
    assert response.json()["email_verified"] is True


async def test_user_create_member_and_moderator(settings, pool):
    """--role member gives ["member"], moderator ["member", "moderator"]."""
    for username, role, roles in (("mel", "member", ["member"]), ("moe", "moderator", ["member", "moderator"])):
        code, out, err = await tica(settings, *create_args(username, role), stdin=PASSWORD)
        assert code == 0, err
        assert await pool.fetchval("SELECT roles FROM forum.users WHERE id = $1", int(out)) == roles


async def test_user_create_errors_are_one_line(settings, pool):
    """A taken name or address, a weak password or a bad username: exit 2 and one line on stderr."""
    assert (await tica(settings, *create_args(), stdin=PASSWORD))[0] == 0
    cases = [
        (create_args("ADA", email="other@example.org"), PASSWORD, "already taken"),
        (create_args("ada2", email="ADA@example.org"), PASSWORD, "already uses that email"),
        (create_args("bea"), "password123", "too common"),
        (create_args("bea"), "", "Enter a password"),
        (create_args("b!"), PASSWORD, "username"),
        (create_args("bea", email="nope"), PASSWORD, "email"),
    ]
    for args, stdin, message in cases:
        code, out, err = await tica(settings, *args, stdin=stdin)
        assert code == 2 and out == "", (args, err)
        assert err.startswith("tica: ") and message in err and err.count("\n") == 1, err
    assert await pool.fetchval("SELECT count(*) FROM forum.users") == 1


async def test_user_create_needs_password_stdin(settings):
    """Without --password-stdin the command refuses (the password never goes on the command line)."""
    code, _, err = await tica(settings, "user", "create", "--username", "ada", "--email", "ada@example.org")
    assert code == 2 and "--password-stdin" in err
