"""Who may follow what on /live, as the stream tells it: viewers' rights and channels' audiences.

Who a viewer is follows the stream: a member removed from a group, demoted or suspended loses what
that allowed on every open socket at once (their session in Redis is refreshed by the forum after its
commit; the 60-second session check only catches what no event says). Who may read a topic or category
is notify's projection, cached briefly, and what the stream said of a channel created a moment ago,
before the projection caught up. A channel whose audience notify does not know yet (ids above any it
knows) is answered `pending`; it is refused only once it is known to be forbidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from redis.exceptions import RedisError

from services.notify import channels as ch
from services.notify import projections
from services.notify.live_client import Client
from services.notify.live_wire import CLOSE_SESSION_ENDED, CLOSE_TRY_LATER, dumps, error, forbidden
from shared import audience as aud
from shared import events as ev
from shared.sessions import Session

if TYPE_CHECKING:
    from services.notify.live import Hub

log = logging.getLogger("tica.live")

AUDIENCE_CACHE_S = 5.0
REVOKED_S = 120.0  # how long a right an event took away outweighs a session read from Redis
RECENT_CHANNELS = 10_000  # audiences learnt from the stream, kept until the projection has them
# Services that are down (Redis, PostgreSQL): the client is told to come back, not that it erred.
UNAVAILABLE = (RedisError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)

# Events that change who a member is: the access they carry reaches open sockets at once.
MEMBER_EVENTS = frozenset(
    cls.type for cls in (ev.GroupMemberAdded, ev.GroupMemberRemoved, ev.UserUpdated, ev.UserSuspended)
)
# Events that say who may read a topic or category, so a channel created a moment ago is known.
AUDIENCE_EVENTS = frozenset(
    cls.type
    for cls in (
        ev.TopicCreated,
        ev.TopicUpdated,
        ev.CategoryCreated,
        ev.CategoryUpdated,
        ev.ConversationCreated,
        ev.ConversationMembersChanged,
    )
)


def conversation_audience(member_ids: Iterable[int], with_moderators: bool) -> list[str]:
    """Who may follow a conversation's channel, as audiences checked strictly (Client.sees_on):
    each member by name, and staff only when the moderators' inbox is in it."""
    people = [aud.user(u) for u in sorted(set(member_ids))]
    return [*people, aud.STAFF] if with_moderators else people


def _suspended(until: str | None) -> bool:
    if until is None:
        return False
    try:
        moment = datetime.fromisoformat(until)
    except ValueError:
        return True  # unreadable: the safe reading
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) > datetime.now(UTC)


@dataclass
class Revoked:
    """Rights an event took from a member, until their session in Redis surely says so too."""

    until: float
    group_ids: set[int] = field(default_factory=set)
    roles: set[str] = field(default_factory=set)


@dataclass
class Access:
    """One hub's knowledge of who its viewers are and who may read each channel."""

    hub: Hub = field(repr=False, compare=False)
    _audience_cache: dict[str, tuple[float, list[str] | None]] = field(default_factory=dict)
    # channel -> (audience, category id of a topic), from the stream, ahead of the projection
    _recent: OrderedDict[str, tuple[list[str], int | None]] = field(default_factory=OrderedDict)
    _newest: dict[str, int] = field(default_factory=dict)
    _arrived: dict[str, asyncio.Event] = field(default_factory=dict)  # set when a channel's audience arrives
    _revoked: dict[int, Revoked] = field(default_factory=dict)
    # conversation channel -> (id of the event that said it, audience), from the stream
    _conversations: OrderedDict[str, tuple[str, list[str]]] = field(default_factory=OrderedDict)

    def learn(self, entry_id: str, envelope: ev.Envelope) -> None:
        """What an event says about members and audiences, applied to the hub's clients."""
        if envelope.type not in MEMBER_EVENTS and envelope.type not in AUDIENCE_EVENTS:
            return
        try:
            event = envelope.event()
            if isinstance(event, ev.TopicCreated | ev.TopicUpdated):
                self._remember(ch.topic_channel(event.topic_id), list(event.audience), event.category_id)
            elif isinstance(event, ev.CategoryCreated | ev.CategoryUpdated):
                self._remember(ch.category_channel(event.category_id), list(event.audience), None)
            elif isinstance(event, ev.ConversationCreated | ev.ConversationMembersChanged):
                self._follow_conversation(envelope.id, event)
            else:
                self._follow_member(event)
        except ev.EventError:
            pass  # read_entry logs what does not match its definition
        except Exception:  # a bug here must not stop the fan-out for everyone else
            log.exception("live: stream entry %s (type %s) could not be applied", entry_id, envelope.type)

    # -- who a member is: group membership, roles, suspension

    def _clients_of(self, user_id: int) -> list[Client]:
        return [c for c in self.hub.clients if c.session is not None and c.session.user_id == user_id]

    def _follow_member(self, event: ev.Event) -> None:
        """Apply a change to who a member is to their open sockets now: rights taken away are
        remembered for a while, so a session read from Redis before the forum refreshed it cannot
        give them back; a group joined is added at once."""
        if isinstance(event, ev.UserSuspended) or (
            isinstance(event, ev.UserUpdated) and _suspended(event.suspended_until)
        ):
            for client in self._clients_of(event.user_id):
                self.hub.kick(client, CLOSE_SESSION_ENDED)
        elif isinstance(event, ev.GroupMemberRemoved):
            self._revoke(event.user_id, group_ids={event.group_id})
        elif isinstance(event, ev.GroupMemberAdded):
            revoked = self._revoked.get(event.user_id)
            if revoked is not None:
                revoked.group_ids.discard(event.group_id)
            for client in self._clients_of(event.user_id):
                assert client.session is not None
                groups = sorted({*client.session.group_ids, event.group_id})
                self.restate(client, dataclasses.replace(client.session, group_ids=groups))
        elif isinstance(event, ev.UserUpdated):
            revoked = self._revoked.get(event.user_id)
            if revoked is not None:
                revoked.roles.difference_update(event.roles)
            for client in self._clients_of(event.user_id):
                assert client.session is not None
                now_in = client.session.group_ids if event.group_ids is None else event.group_ids
                lost_groups = set(client.session.group_ids) - set(now_in)
                lost_roles = set(client.session.roles) - set(event.roles)
                self._revoke(event.user_id, group_ids=lost_groups, roles=lost_roles)

    def _revoke(self, user_id: int, *, group_ids: Iterable[int] = (), roles: Iterable[str] = ()) -> None:
        group_ids, roles = set(group_ids), set(roles)
        if not group_ids and not roles:
            return
        revoked = self._revoked.setdefault(user_id, Revoked(0.0))
        revoked.until = time.monotonic() + REVOKED_S
        revoked.group_ids.update(group_ids)
        revoked.roles.update(roles)
        for client in self._clients_of(user_id):
            assert client.session is not None
            self.restate(client, client.session)

    def forget_expired(self) -> None:
        """Drop rights taken away long enough ago that every session in Redis says so too."""
        now = time.monotonic()
        for user_id in [u for u, revoked in self._revoked.items() if revoked.until <= now]:
            del self._revoked[user_id]

    def _without_revoked(self, session: Session) -> Session:
        revoked = self._revoked.get(session.user_id)
        if revoked is None or revoked.until <= time.monotonic():
            return session
        return dataclasses.replace(
            session,
            group_ids=[g for g in session.group_ids if g not in revoked.group_ids],
            roles=[r for r in session.roles if r not in revoked.roles],
        )

    def restate(self, client: Client, session: Session) -> None:
        """Give a client its viewer as now known; channels it may have lost are asked again."""
        session = self._without_revoked(session)
        before = client.audiences
        client.session = session
        client.set_audiences(aud.for_viewer(session))
        if not client.audiences >= before:
            self._recheck(client)

    def _recheck(self, client: Client) -> None:
        """Hold the client's topic and category channels until each is asked again: messages with
        an audience are already filtered, but a hidden or deleted post's ids rely on the channel."""
        if ch.REVIEW in client.channels and (client.session is None or not client.session.is_staff):
            self.hub._leave(client, [ch.REVIEW])
            client.push(dumps(forbidden(ch.REVIEW)))
        for channel in client.channels:
            parsed = ch.parse(channel)
            if parsed is not None and parsed[0] != "user":
                client.held.setdefault(channel, [])
        if client.held and (client.recheck is None or client.recheck.done()):
            client.recheck = client.spawn(self._recheck_held(client))

    async def _recheck_held(self, client: Client) -> None:
        try:
            while client.held:
                channel = next(iter(client.held))
                audience = await self.audience(channel)
                held = client.held.pop(channel, None)  # decided now, with the viewer as it is now
                if held is None or channel not in client.channels:
                    continue
                if audience is None or not client.sees_on(channel, audience):
                    self.hub._leave(client, [channel])
                    client.push(dumps(forbidden(channel)))
                    continue
                for key, text, message_audience in held:
                    client.deliver(channel, key, text, message_audience)
        except UNAVAILABLE as exc:
            log.warning("live: could not ask a channel again, the client reconnects: %r", exc)
            self.hub.kick(client, CLOSE_TRY_LATER)

    # -- private conversations: who is in each, from the stream and the projection

    def _follow_conversation(
        self, event_id: str, event: ev.ConversationCreated | ev.ConversationMembersChanged
    ) -> None:
        """Remember who is in a conversation now; whoever may no longer follow it stops at once
        (a member who left or was removed gets `forbidden` for the channel and nothing more)."""
        channel = ch.conversation_channel(event.conversation_id)
        known = self._conversations.get(channel)
        if known is not None and known[0] >= event_id:
            return  # an older word than one already applied
        audience = conversation_audience(event.member_ids, event.with_moderators)
        self._conversations[channel] = (event_id, audience)
        self._conversations.move_to_end(channel)
        while len(self._conversations) > RECENT_CHANNELS:
            self._conversations.popitem(last=False)
        self._audience_cache.pop(channel, None)
        self._newest["conversation"] = max(self._newest.get("conversation", 0), event.conversation_id)
        arrived = self._arrived.pop(channel, None)
        if arrived is not None:
            arrived.set()
        for client in tuple(self.hub.channels.get(channel, ())):
            if not client.sees_on(channel, audience):
                self.hub._leave(client, [channel])
                client.push(dumps(forbidden(channel)))

    async def _conversation_audience(self, channel: str, number: int) -> list[str] | None:
        """Who may follow a conversation: the newer of the projection's word and the stream's."""
        async with self.hub.rt.pool.acquire() as conn:
            projected = await projections.fetch_conversation(conn, number)
        streamed = self._conversations.get(channel)
        if projected is None:
            return streamed[1] if streamed is not None else None
        if streamed is not None and streamed[0] > projected.event_id:
            return streamed[1]
        return conversation_audience(projected.member_ids, projected.with_moderators)

    # -- audiences: the projection, and what the stream said before the projection caught up

    def _remember(self, channel: str, audience: list[str], category_id: int | None) -> None:
        self._recent[channel] = (audience, category_id)
        self._recent.move_to_end(channel)
        while len(self._recent) > RECENT_CHANNELS:
            self._recent.popitem(last=False)
        self._audience_cache.pop(channel, None)
        kind, number = ch.parse(channel) or ("", 0)
        self._newest[kind] = max(self._newest.get(kind, 0), number)
        arrived = self._arrived.pop(channel, None)
        if arrived is not None:
            arrived.set()

    def _recent_audience(self, channel: str) -> list[str] | None:
        """A channel's audience as the stream gave it; a topic follows its category, as in the projection."""
        known = self._recent.get(channel)
        if known is None:
            return None
        audience, category_id = known
        category = self._recent.get(ch.category_channel(category_id)) if category_id is not None else None
        return category[0] if category is not None else audience

    async def audience(self, channel: str) -> list[str] | None:
        """Who may read a topic, category or conversation channel; None when notify does not know it."""
        cached = self._audience_cache.get(channel)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        kind, number = ch.parse(channel) or ("", 0)
        if kind == "conversation":
            audience = await self._conversation_audience(channel, number)
            if audience is not None:
                self._audience_cache[channel] = (now + AUDIENCE_CACHE_S, audience)
            return audience
        async with self.hub.rt.pool.acquire() as conn:
            if kind == "topic":
                audience = await projections.topic_audience(conn, number)
            else:
                audience = await projections.category_audience(conn, number)
        if audience is None:  # not cached: the projection is catching up
            return self._recent_audience(channel)
        if len(self._audience_cache) > 10_000:
            self._audience_cache.clear()
        self._audience_cache[channel] = (now + AUDIENCE_CACHE_S, audience)
        return audience

    async def _may_be_new(self, kind: str, number: int) -> bool:
        """Whether an unknown topic or category id is above every one notify knows (being created)."""
        if number <= self._newest.get(kind, 0):
            return False
        async with self.hub.rt.pool.acquire() as conn:
            newest = await projections.newest_id(conn, kind)
        return number > (newest or 0)

    async def arrival(self, channel: str, deadline: float) -> list[str] | None:
        """A pending channel's audience once notify knows it, or None at the deadline (monotonic)."""
        audience = None
        while (audience := await self.audience(channel)) is None and time.monotonic() < deadline:
            arrived = self._arrived.setdefault(channel, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), min(1.0, max(0.0, deadline - time.monotonic())))
        return audience

    def forget_arrival(self, channel: str) -> None:
        """No client waits for this channel any more."""
        self._arrived.pop(channel, None)

    # -- subscribing

    async def check_channel(self, client: Client, channel: Any) -> dict[str, Any] | None:
        """An error for a channel the viewer may not follow, `pending` for one notify does not know
        yet, None when they may follow it."""
        if not isinstance(channel, str) or not ch.CHANNEL.fullmatch(channel):
            return error(
                "bad_channel",
                'Channels look like "topic:42", "category:3", "user:7", "conversation:5", "review" or "latest".',
                channel if isinstance(channel, str) else None,
            )
        if channel == ch.REVIEW:
            if client.session is None:
                return error("unauthorized", "Log in to follow the review queue.", channel)
            return None if client.session.is_staff else forbidden(channel)
        parsed = ch.parse(channel)
        if parsed is None:  # latest: lists of every category, each message checked on its own
            return None
        kind, number = parsed
        if kind == "conversation" and client.session is None:
            return forbidden(channel)  # as for a member who is not in it: a visitor learns nothing
        if kind == "user":
            if client.session is None:
                return error("unauthorized", "Log in to get your notifications.", channel)
            if client.session.user_id != number:
                return error("forbidden", "You can only follow your own notifications.", channel)
            return None
        audience = await self.audience(channel)
        if audience is None and await self._may_be_new(kind, number):
            return {"type": "pending", "channel": channel}
        if audience is None or not client.sees_on(channel, audience):
            return forbidden(channel)
        return None
