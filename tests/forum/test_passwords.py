"""Passwords: argon2id hashing and the rules for a new password."""

from __future__ import annotations

import pytest

from services.forum.accounts import passwords


async def test_hash_is_argon2id_and_verifies():
    """Hashes are argon2id with the library's defaults, salted, and verify only the right password."""
    first = await passwords.hash_password("correct horse battery")
    second = await passwords.hash_password("correct horse battery")
    assert first.startswith("$argon2id$") and first != second
    assert await passwords.verify_password(first, "correct horse battery")
    assert not await passwords.verify_password(first, "correct horse batterY")
    assert not passwords.needs_rehash(first)
    assert passwords.hash_password_sync("x" * 10).startswith("$argon2id$")


async def test_verify_tolerates_placeholders():
    """Something that is not a hash never matches and never raises."""
    for stored in ("", "no-login", "$argon2id$broken", "*"):
        assert not await passwords.verify_password(stored, "anything at all")
        assert not passwords.needs_rehash(stored)


async def test_old_parameters_need_rehash():
    """A hash made with weaker parameters is flagged for rehashing at the next login."""
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("correct horse battery")
    assert passwords.needs_rehash(weak)
    assert await passwords.verify_password(weak, "correct horse battery")


async def test_dummy_verification_runs():
    """The dummy check for unknown logins does real work and returns nothing."""
    assert await passwords.verify_dummy("whatever it is") is None


def test_common_list():
    """The list is large, lower-case, and only holds passwords long enough to pass the length rule."""
    common = passwords.common_passwords()
    assert len(common) >= 1000
    assert all(len(p) >= passwords.MIN_LENGTH and p == p.lower() for p in common)
    for known in ("password123", "qwertyuiop", "iloveyou12", "1234567890", "liverpool1", "passw0rd123"):
        assert known in common


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("", "Enter a password"),
        ("short", "at least 10 characters"),
        ("x" * 201, "200 characters or fewer"),
        ("Password123", "too common"),
        ("QWERTYUIOP", "too common"),
        ("zzzzzzzzzzzz", "too common"),
        ("abababababab", "too common"),
        ("rowan_the_1", "same as your username"),
        ("ROWAN@example.org", "same as your username or email"),
    ],
)
def test_password_problems(password, problem):
    """Each rule explains itself in words a person can act on."""
    found = passwords.password_problem(password, username="Rowan_the_1", email="rowan@example.org")
    assert found is not None and problem in found


@pytest.mark.parametrize(
    "password",
    ["correct horse battery", ("correct horse battery staple " * 7)[:200], "ñandú ⚕ tranquilo", "  spaces at ends  "],
)
def test_good_passwords(password):
    """Long, uncommon passwords (any characters, up to 200) pass."""
    assert passwords.password_problem(password, username="rowan", email="rowan@example.org") is None
