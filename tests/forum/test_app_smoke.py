"""The forum app answers in process."""


async def test_readyz_in_process(client):
    """All three services report ready through the all-in-one app."""
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text


async def test_member_factory_signs_in(member_factory):
    """A made member's client carries a working session."""
    member = await member_factory()
    assert member.session.user_id == member.id
