"""Rate limits: fixed-window counters in Redis."""

from __future__ import annotations

import asyncio

import pytest

from shared import ratelimit
from shared.web import ApiError


@pytest.fixture
def key(settings, redis) -> str:
    return ratelimit.rate_key(settings.redis_prefix, "test", "someone@example.org")


def test_keys_are_prefixed_and_hide_the_subject(settings):
    """Keys live under the prefix, per scope, and never contain the subject itself."""
    key = ratelimit.rate_key(settings.redis_prefix, "login-account", "someone@example.org")
    assert key.startswith(f"{settings.redis_prefix}rate:login-account:")
    assert "someone" not in key
    assert key != ratelimit.rate_key(settings.redis_prefix, "login-address", "someone@example.org")


async def test_hits_within_the_limit_are_allowed(redis, key):
    """Up to `limit` hits pass; the next is refused with how long to wait."""
    results = [await ratelimit.hit(redis, key, limit=3, window_s=60) for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.count for r in results] == [1, 2, 3, 4]
    assert 0 < results[-1].retry_after_s <= 60
    assert 0 < await redis.ttl(key) <= 60


async def test_refused_hits_do_not_extend_the_window(redis, key):
    """The window starts at the first hit; hitting on does not push it back."""
    await ratelimit.hit(redis, key, limit=1, window_s=60)
    await redis.pexpire(key, 5000)
    result = await ratelimit.hit(redis, key, limit=1, window_s=60)
    assert not result.allowed and result.retry_after_s <= 5


async def test_window_expires(redis, key):
    """After the window, hits are allowed again."""
    await ratelimit.hit(redis, key, limit=1, window_s=1)
    assert not (await ratelimit.hit(redis, key, limit=1, window_s=1)).allowed
    await asyncio.sleep(1.1)
    assert (await ratelimit.hit(redis, key, limit=1, window_s=1)).allowed


async def test_peek_undo_and_clear(redis, key):
    """peek does not count; undo takes back one hit (never below zero); clear forgets all."""
    assert (await ratelimit.peek(redis, key, limit=2, window_s=60)).allowed
    await ratelimit.hit(redis, key, limit=2, window_s=60)
    await ratelimit.hit(redis, key, limit=2, window_s=60)
    peeked = await ratelimit.peek(redis, key, limit=2, window_s=60)
    assert not peeked.allowed and peeked.count == 2 and peeked.retry_after_s > 0
    await ratelimit.undo(redis, key)
    assert (await ratelimit.peek(redis, key, limit=2, window_s=60)).allowed
    await ratelimit.clear(redis, key)
    await ratelimit.undo(redis, key)
    assert await redis.get(key) is None


async def test_enforce_raises_429_with_retry_after(redis, key):
    """enforce raises the API's 429 with Retry-After once over the limit."""
    await ratelimit.enforce(redis, key, limit=1, window_s=30)
    with pytest.raises(ApiError) as raised:
        await ratelimit.enforce(redis, key, limit=1, window_s=30)
    error = raised.value
    assert error.status == 429 and error.code == "rate_limited"
    assert error.headers is not None and 0 < int(error.headers["Retry-After"]) <= 30
    assert "seconds" in error.message


def test_messages_say_how_long():
    """The default message gives the wait in seconds or minutes."""
    assert "1 second " in ratelimit.too_many(ratelimit.RateResult(False, 1)).message
    assert "2 minutes" in ratelimit.too_many(ratelimit.RateResult(False, 61)).message
    assert ratelimit.too_many(ratelimit.RateResult(False, 5), "Slow down.").message == "Slow down."


async def test_concurrent_hits_never_pass_the_limit(redis, key):
    """Parallel hits are counted atomically: exactly `limit` are allowed."""
    results = await asyncio.gather(*(ratelimit.hit(redis, key, limit=5, window_s=60) for _ in range(30)))
    assert sum(r.allowed for r in results) == 5
