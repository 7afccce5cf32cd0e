"""Passwords: argon2id hashing (argon2-cffi's defaults) and the rules a new password meets.

Hashing is deliberately slow (tens of milliseconds), so it runs in a worker thread
and never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
MAX_LENGTH = 200
COMMON_PASSWORDS_FILE = Path(__file__).parent / "common_passwords.txt"

# argon2-cffi's defaults are argon2id with RFC 9106's low-memory parameters.
_HASHER = PasswordHasher()


def hash_password_sync(password: str) -> str:
    """The argon2id hash of a password (blocking; the CLI may call it directly)."""
    return _HASHER.hash(password)


async def hash_password(password: str) -> str:
    """The argon2id hash of a password, computed off the event loop."""
    return await asyncio.to_thread(_HASHER.hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        # A mismatch, or a placeholder that is not a hash (an account that cannot log in).
        return False


async def verify_password(password_hash: str, password: str) -> bool:
    """Whether the password matches the hash; False for anything that is not a valid hash."""
    return await asyncio.to_thread(_verify, password_hash, password)


async def verify_dummy(password: str) -> None:
    """Do the work of a verification for a login that matches no account, so timing tells nothing."""
    await asyncio.to_thread(_verify, _dummy_hash(), password)


def needs_rehash(password_hash: str) -> bool:
    """Whether a stored hash uses older parameters than today's (rehash it at the next login)."""
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except InvalidHashError:
        return False


@functools.cache
def _dummy_hash() -> str:
    return _HASHER.hash("not a password anyone has: tica dummy")


@functools.cache
def common_passwords() -> frozenset[str]:
    """The list of well-known passwords, lower-cased (read once)."""
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def is_common(password: str) -> bool:
    """Whether a password is on the common list or is one character repeated, like "aaaaaaaaaa"."""
    lowered = password.lower()
    return lowered in common_passwords() or len(set(lowered)) <= 2


def password_problem(password: str, *, username: str = "", email: str = "") -> str | None:
    """What is wrong with a new password, in words for the person choosing it (None when it is fine)."""
    if not password:
        return "Enter a password"
    if len(password) < MIN_LENGTH:
        return f"Your password must be at least {MIN_LENGTH} characters long"
    if len(password) > MAX_LENGTH:
        return f"Your password must be {MAX_LENGTH} characters or fewer"
    lowered = password.lower()
    if lowered in {username.strip().lower(), email.strip().lower()}:
        return "Your password must not be the same as your username or email address"
    if is_common(password):
        return "That password is too common and easy to guess. Try a phrase of three or four unrelated words"
    return None
