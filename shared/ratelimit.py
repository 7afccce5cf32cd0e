"""Rate limits: fixed-window counters in Redis, shared by every replica.

A window starts at a key's first hit and lasts `window_s`; up to `limit` hits are
allowed in it. Keys live under the settings' Redis prefix (`rate_key`), and the
subject (an address, a login, an email) is hashed so no personal data sits in key names.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import redis.asyncio as aioredis

from shared.web import ApiError, Runtime

# INCR and start the window on the first hit, atomically; returns (count, ms left in the window).
_HIT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""

# Take back one hit (for example a login that turned out to succeed), never below zero.
_UNDO = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then redis.call('DECR', KEYS[1]) end
return count
"""


@dataclass(frozen=True)
class RateResult:
    """Whether a hit is within the limit, and how long until the window resets."""

    allowed: bool
    retry_after_s: int
    count: int = 0


@dataclass(frozen=True)
class Limit:
    """One limit: its key scope (e.g. "reset-address"), the hits a window allows, and the 429 message
    (None: the default "Too many attempts" one)."""

    scope: str
    limit: int
    window_s: int
    message: str | None = None


def rate_key(prefix: str, scope: str, subject: str) -> str:
    """The Redis key of one limit (`scope`, e.g. "login-account") for one subject."""
    digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
    return f"{prefix}rate:{scope}:{digest}"


async def hit(redis: aioredis.Redis, key: str, *, limit: int, window_s: int) -> RateResult:
    """Count one hit; allowed while the window holds at most `limit` hits."""
    count, ttl_ms = await redis.eval(_HIT, 1, key, str(window_s * 1000))  # type: ignore[misc]
    return RateResult(int(count) <= limit, _seconds(int(ttl_ms)), int(count))


async def peek(redis: aioredis.Redis, key: str, *, limit: int, window_s: int) -> RateResult:
    """Whether one more hit would be allowed, without counting it."""
    pipe = redis.pipeline(transaction=True)
    pipe.get(key)
    pipe.pttl(key)
    raw, ttl_ms = await pipe.execute()
    count = int(raw or 0)
    retry_after = _seconds(ttl_ms) if ttl_ms and ttl_ms > 0 else window_s
    return RateResult(count < limit, retry_after, count)


async def undo(redis: aioredis.Redis, key: str) -> None:
    """Take back one hit."""
    await redis.eval(_UNDO, 1, key)  # type: ignore[misc]


async def clear(redis: aioredis.Redis, key: str) -> None:
    """Forget every hit (for example after a successful password reset)."""
    await redis.delete(key)


def too_many(result: RateResult, message: str | None = None) -> ApiError:
    """The 429 answer for a refused hit, with Retry-After."""
    wait = _in_words(result.retry_after_s)
    return ApiError(
        429,
        "rate_limited",
        message or f"Too many attempts. Please wait {wait} and try again.",
        headers={"Retry-After": str(result.retry_after_s)},
    )


async def enforce(redis: aioredis.Redis, key: str, *, limit: int, window_s: int, message: str | None = None) -> None:
    """Count one hit; raise the 429 ApiError when it goes over the limit."""
    result = await hit(redis, key, limit=limit, window_s=window_s)
    if not result.allowed:
        raise too_many(result, message)


async def enforce_limit(rt: Runtime, rule: Limit, subject: str) -> None:
    """Count one hit of `subject` against `rule`, keyed under the settings' prefix; the 429 ApiError over it."""
    key = rate_key(rt.settings.redis_prefix, rule.scope, subject)
    await enforce(rt.redis, key, limit=rule.limit, window_s=rule.window_s, message=rule.message)


def _seconds(ms: int) -> int:
    return max(1, math.ceil(ms / 1000))


def _in_words(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
