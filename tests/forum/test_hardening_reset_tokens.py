"""Issue 12, defect 9: a password reset ends the account's personal API tokens, not only its sessions."""

from __future__ import annotations

from services.forum.accounts import accounts, tokens

NEW_PASSWORD = "violet lantern orchard"


async def _reset_link_token(pool, user_id: int) -> str:
    """A reset token as the mailed link carries it (the mail itself is tested in test_accounts)."""
    async with pool.acquire() as conn:
        user = await accounts.user_by_id(conn, user_id)
        assert user is not None
        return await tokens.create_email_token(conn, user=user, purpose="reset", ttl=tokens.RESET_TOKEN_TTL)


async def test_password_reset_revokes_api_tokens(member_factory, client, pool, redis, settings):
    """After a reset, a token made before it answers 401 everywhere, and the tokens page lists none."""
    member = await member_factory("rowan")
    made = [(await member.client.post("/api/me/tokens", json={"name": name})).json() for name in ("script", "bot")]
    for token in made:
        assert (await client.get("/api/me", headers={"authorization": f"Bearer {token['token']}"})).status_code == 200

    reset = await _reset_link_token(pool, member.id)
    response = await client.post("/api/password-reset/confirm", json={"token": reset, "password": NEW_PASSWORD})
    assert response.status_code == 200, response.text

    for token in made:
        answer = await client.get("/api/me", headers={"authorization": f"Bearer {token['token']}"})
        assert answer.status_code == 401, answer.text
    revoked = await pool.fetchval(
        "SELECT count(*) FROM forum.api_tokens WHERE user_id = $1 AND revoked_at IS NOT NULL", member.id
    )
    assert revoked == 2
    assert await redis.smembers(f"{settings.redis_prefix}user-sessions:{member.id}:tokens") == set()


async def test_password_reset_leaves_other_members_tokens(member_factory, client, pool):
    """Only the account that was reset loses its tokens."""
    rowan = await member_factory("rowan")
    other = await member_factory("sasha")
    await rowan.client.post("/api/me/tokens", json={"name": "script"})
    kept = (await other.client.post("/api/me/tokens", json={"name": "script"})).json()["token"]

    reset = await _reset_link_token(pool, rowan.id)
    assert (
        await client.post("/api/password-reset/confirm", json={"token": reset, "password": NEW_PASSWORD})
    ).status_code == 200
    assert (await client.get("/api/me", headers={"authorization": f"Bearer {kept}"})).status_code == 200


async def test_reset_pages_say_tokens_end(member_factory, client, pool):
    """The reset page says, before and after, that API tokens stop working too."""
    member = await member_factory("rowan")
    reset = await _reset_link_token(pool, member.id)
    before = await client.get(f"/reset/confirm?token={reset}")
    assert before.status_code == 200 and "personal API tokens will stop working" in before.text
