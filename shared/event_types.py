"""Domain event types: one definition per type (`noun.verb`), each a frozen dataclass whose fields
producers fill and consumers read the same way; unknown or missing fields are refused, and an
audience outside shared/audience.py's vocabulary too. The envelope, outbox, relay and consumers
that carry them are in shared/events.py (which also offers every name here).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from shared import audience as audiences


class EventError(ValueError):
    """An event or envelope that does not match its definition."""


_REGISTRY: dict[str, type[Event]] = {}


@dataclass(frozen=True)
class Event:
    """Base of every event type; subclasses set `type` and declare their fields."""

    type: ClassVar[str] = ""
    version: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.type:
            if cls.type in _REGISTRY:
                raise TypeError(f"event type {cls.type} is defined twice")
            _REGISTRY[cls.type] = cls

    def __post_init__(self) -> None:
        # An audience outside the vocabulary would be read by nobody, or by the wrong people.
        audience = getattr(self, "audience", None)
        if audience is not None and (
            isinstance(audience, str) or not all(isinstance(a, str) and audiences.is_valid(a) for a in audience)
        ):
            raise EventError(f"{self.type}: audience {audience!r} is not in shared/audience.py's vocabulary")

    def to_data(self) -> dict[str, Any]:
        # Shallow: event fields are plain values, lists and dicts (dataclasses.asdict's deep copy
        # was a noticeable share of writing a post).
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Event:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise EventError(f"{cls.type}: unknown fields {sorted(unknown)}")
        missing = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        } - set(data)
        if missing:
            raise EventError(f"{cls.type}: missing fields {sorted(missing)}")
        return cls(**data)


def type_named(name: str) -> type[Event] | None:
    """The event type of this name, or None (read for every event: no copy of the registry)."""
    return _REGISTRY.get(name)


def event_types() -> dict[str, type[Event]]:
    """Every defined event type by name."""
    return dict(_REGISTRY)


# Audience: who may see a thing (shared/audience.py's vocabulary), decided by the forum and
# carried on events so search and notify apply the same rule; an event refuses any other string.
#
# Types that share fields share a base (no `type`, so not an event itself): a field is declared
# once, and what one consumer reads on post.hidden it reads the same way on post.restored.


@dataclass(frozen=True)
class UserRegistered(Event):
    type: ClassVar[str] = "user.registered"
    user_id: int
    username: str
    display_name: str
    # Private fields: notify needs them for mail; live fan-out never forwards user.* events.
    email: str | None = None
    email_verified: bool = False


@dataclass(frozen=True)
class UserUpdated(Event):
    type: ClassVar[str] = "user.updated"
    user_id: int
    username: str
    display_name: str
    roles: list[str]
    email_verified: bool = False
    suspended_until: str | None = None
    email: str | None = None
    # The member's groups (for notify's "may they see it"); None: unchanged.
    group_ids: list[int] | None = None


@dataclass(frozen=True)
class UserSeen(Event):
    """A member was active (at most one a member an hour): for digests' "since your last visit"."""

    type: ClassVar[str] = "user.seen"
    user_id: int
    seen_at: str


@dataclass(frozen=True)
class UserRoleChanged(Event):
    """An admin made a member a moderator or an admin, or took the role back, with a reason; the
    member is told (a notification). `roles` are the member's roles now."""

    type: ClassVar[str] = "user.role_changed"
    user_id: int
    roles: list[str]
    previous_roles: list[str]
    reason: str
    duty: str | None = None  # a duty given or taken back (roles unchanged): "safeguarding_lead"
    duty_held: bool = False  # whether they hold `duty` now


@dataclass(frozen=True)
class SignupRequested(Event):
    """Someone registered while sign-up needs approval: their account waits in the staff queue."""

    type: ClassVar[str] = "signup.requested"
    user_id: int
    username: str


@dataclass(frozen=True)
class SignupDecided(Event):
    """A moderator approved a waiting account (it may now sign in) or turned it down."""

    type: ClassVar[str] = "signup.decided"
    user_id: int
    approved: bool


@dataclass(frozen=True)
class InvitationSent(Event):
    """Staff invited someone to join by email (the address stays in the forum)."""

    type: ClassVar[str] = "invitation.sent"
    invitation_id: int


@dataclass(frozen=True)
class InvitationWithdrawn(Event):
    """Staff withdrew an invitation that was not used: its link stops working."""

    type: ClassVar[str] = "invitation.withdrawn"
    invitation_id: int


@dataclass(frozen=True)
class SettingChanged(Event):
    """An admin changed site settings. `keys` are the settings changed (shared/settings.py's
    attribute names); `values` is every setting admins have set, as stored (text, parsed by the
    variable's own parser), so a process applying it needs nothing else: shared/site_settings.py."""

    type: ClassVar[str] = "setting.changed"
    keys: list[str]
    values: dict[str, str]


@dataclass(frozen=True)
class CategoryEvent(Event):
    """A category as search and notify keep it: its slug, name and audience."""

    category_id: int
    slug: str
    name: str
    audience: list[str]


@dataclass(frozen=True)
class CategoryCreated(CategoryEvent):
    type: ClassVar[str] = "category.created"


@dataclass(frozen=True)
class CategoryUpdated(CategoryEvent):
    type: ClassVar[str] = "category.updated"


@dataclass(frozen=True)
class CategoryArchived(CategoryEvent):
    """An admin archived a category: it keeps its topics for reading and takes no new ones."""

    type: ClassVar[str] = "category.archived"


@dataclass(frozen=True)
class CategoryUnarchived(CategoryEvent):
    type: ClassVar[str] = "category.unarchived"


@dataclass(frozen=True)
class CategoryDeleted(Event):
    """An admin deleted a category that never held a topic."""

    type: ClassVar[str] = "category.deleted"
    category_id: int
    slug: str


@dataclass(frozen=True)
class CategoryReordered(Event):
    """An admin put the categories in a new order (their ids, first to last)."""

    type: ClassVar[str] = "category.reordered"
    category_ids: list[int]


@dataclass(frozen=True)
class TopicEvent(Event):
    """What every topic event says about the topic."""

    topic_id: int
    category_id: int
    title: str
    slug: str
    kind: str
    author_id: int


@dataclass(frozen=True)
class TopicCreated(TopicEvent):
    type: ClassVar[str] = "topic.created"
    author_username: str
    audience: list[str]
    content_note: str | None
    created_at: str
    # Posted pseudonymously: author_username is "anonymous"; author_id is for notify's private
    # use only (telling the author), and must never be shown or indexed as the author.
    anonymous: bool = False


@dataclass(frozen=True)
class TopicUpdated(TopicEvent):
    type: ClassVar[str] = "topic.updated"
    audience: list[str]
    content_note: str | None
    pinned: bool
    closed: bool
    anonymous: bool = False
    # visible, or why it is not listed: pending (first post waits for review), rejected,
    # hidden (first post hidden by moderators), deleted (removed by a moderator).
    status: str = "visible"


@dataclass(frozen=True)
class TopicRead(Event):
    """A member read a topic further than before, up to a post number (written only when their read
    state advances): notify reads their count of its new replies. No text; private, the member's own."""

    type: ClassVar[str] = "topic.read"
    user_id: int
    topic_id: int
    post_number: int
    audience: list[str]


@dataclass(frozen=True)
class PostTextEvent(Event):
    """A post's words as written (created or edited), with where it stands and who may read it."""

    post_id: int
    topic_id: int
    post_number: int
    category_id: int
    author_id: int
    author_username: str
    text: str
    content_note: str | None
    audience: list[str]


@dataclass(frozen=True)
class PostCreated(PostTextEvent):
    type: ClassVar[str] = "post.created"
    topic_title: str
    reply_to_post_id: int | None
    reply_to_user_id: int | None
    mentioned_user_ids: list[int]
    quoted_user_ids: list[int]
    created_at: str
    anonymous: bool = False  # as on TopicCreated: author_username is "anonymous", author_id stays private
    sensitive: bool = False  # matched a safeguarding phrase: mail and digests never quote its text


@dataclass(frozen=True)
class PostEdited(PostTextEvent):
    type: ClassVar[str] = "post.edited"
    revision: int
    anonymous: bool = False
    sensitive: bool = False


@dataclass(frozen=True)
class PostEvent(Event):
    """Which post a moderation or removal event is about, and whose it is."""

    post_id: int
    topic_id: int
    category_id: int
    author_id: int


@dataclass(frozen=True)
class PostDeleted(PostEvent):
    type: ClassVar[str] = "post.deleted"
    post_number: int


@dataclass(frozen=True)
class PostHidden(PostEvent):
    type: ClassVar[str] = "post.hidden"
    reason: str


@dataclass(frozen=True)
class PostFlagged(PostEvent):
    """A post reached the review queue through a flag: a member's (flag_id), or an automatic
    one (flag_id None: a watched word or a safeguarding phrase). Staff only; never shown to the author."""

    type: ClassVar[str] = "post.flagged"
    reason: str  # off_topic, inappropriate, spam, safeguarding, other
    review_id: int
    review_kind: str  # flagged_post or safeguarding
    score: int
    priority: int
    flag_id: int | None = None


@dataclass(frozen=True)
class PostRestored(PostEvent):
    type: ClassVar[str] = "post.restored"


@dataclass(frozen=True)
class ReactionEvent(Event):
    """A member's reaction to a post, added or taken back."""

    post_id: int
    topic_id: int
    post_author_id: int
    user_id: int
    kind: str
    audience: list[str]


@dataclass(frozen=True)
class ReactionAdded(ReactionEvent):
    type: ClassVar[str] = "reaction.added"


@dataclass(frozen=True)
class ReactionRemoved(ReactionEvent):
    type: ClassVar[str] = "reaction.removed"


@dataclass(frozen=True)
class UserMuted(Event):
    """A member muted another (no notifications from them), ignored them (also collapsed), or undid it."""

    type: ClassVar[str] = "user.muted"
    user_id: int
    muted_user_id: int
    level: str  # "muted", "ignored" or "none"


@dataclass(frozen=True)
class SanctionEvent(Event):
    """A moderator's sanction on a member, until a time (None: until lifted), with the reason."""

    user_id: int
    until: str | None
    reason: str


@dataclass(frozen=True)
class UserSilenced(SanctionEvent):
    """A moderator silenced a member (can read, cannot post) until a time (None: until lifted)."""

    type: ClassVar[str] = "user.silenced"


@dataclass(frozen=True)
class UserSuspended(SanctionEvent):
    """A moderator suspended a member (cannot log in) until a time (None: until lifted)."""

    type: ClassVar[str] = "user.suspended"


@dataclass(frozen=True)
class ReviewResolved(Event):
    """A moderator acted on a reviewable; its author is told the outcome and the reason."""

    type: ClassVar[str] = "review.resolved"
    review_id: int
    kind: str  # queued_post, flagged_post, safeguarding, appeal
    action: str  # approve, reject, hide, restore, delete, ignore
    moderator_id: int
    post_id: int | None = None
    topic_id: int | None = None
    topic_title: str | None = None
    author_id: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class GroupMemberEvent(Event):
    """A change to who is in a group."""

    group_id: int
    group_name: str
    user_id: int


@dataclass(frozen=True)
class GroupMemberAdded(GroupMemberEvent):
    """A member joined a group, or was approved, invited in or added by an owner or admin."""

    type: ClassVar[str] = "group.member_added"
    how: str  # joined, approved, invited, added
    added_by: int | None = None


@dataclass(frozen=True)
class GroupMemberRemoved(GroupMemberEvent):
    """A member left a group or was removed from it."""

    type: ClassVar[str] = "group.member_removed"
    how: str  # left, removed
    removed_by: int | None = None


@dataclass(frozen=True)
class FolderUpdated(Event):
    """A library folder was created or changed; its audience covers every document (and comment) in it."""

    type: ClassVar[str] = "folder.updated"
    folder_id: int
    parent_id: int | None
    name: str
    audience: list[str]


@dataclass(frozen=True)
class DocumentEvent(Event):
    """Which library document an event is about, and the folder it is in."""

    document_id: int
    folder_id: int


@dataclass(frozen=True)
class DocumentUploaded(DocumentEvent):
    """A document was shared in the library (version 1) or a new version of it was uploaded."""

    type: ClassVar[str] = "document.uploaded"
    document_version: int  # 1 for a new document ("version" is the event format's)
    title: str
    description: str
    filename: str
    kind: str
    size_bytes: int
    uploader_id: int
    uploader_username: str
    audience: list[str]
    created_at: str


@dataclass(frozen=True)
class DocumentUpdated(DocumentEvent):
    """A document's title, description or folder (and so perhaps its audience) changed."""

    type: ClassVar[str] = "document.updated"
    title: str
    description: str
    audience: list[str]


@dataclass(frozen=True)
class DocumentDeleted(DocumentEvent):
    """A document (with its comments) was removed from the library."""

    type: ClassVar[str] = "document.deleted"


@dataclass(frozen=True)
class CommentEvent(Event):
    """Which comment on a library document an event is about, and whose it is."""

    comment_id: int
    document_id: int
    folder_id: int
    author_id: int


@dataclass(frozen=True)
class CommentTextEvent(CommentEvent):
    """A comment's words as written (created or edited), with who may read them."""

    document_title: str
    author_username: str
    text: str
    audience: list[str]


@dataclass(frozen=True)
class DocumentCommentCreated(CommentTextEvent):
    type: ClassVar[str] = "document.comment_created"
    document_uploader_id: int
    mentioned_user_ids: list[int]
    created_at: str


@dataclass(frozen=True)
class DocumentCommentEdited(CommentTextEvent):
    type: ClassVar[str] = "document.comment_edited"
    revision: int
    status: str = "visible"  # visible, or hidden by a moderator: search keeps a hidden comment out of results


@dataclass(frozen=True)
class DocumentCommentDeleted(CommentEvent):
    type: ClassVar[str] = "document.comment_deleted"


@dataclass(frozen=True)
class WebinarEvent(Event):
    """Which webinar an event is about; times are ISO 8601 in UTC. The join link is never carried."""

    webinar_id: int
    title: str
    starts_at: str


@dataclass(frozen=True)
class WebinarScheduled(WebinarEvent):
    """A webinar was scheduled."""

    type: ClassVar[str] = "webinar.scheduled"
    ends_at: str
    topic_id: int | None
    audience: list[str]


@dataclass(frozen=True)
class WebinarUpdated(WebinarEvent):
    type: ClassVar[str] = "webinar.updated"
    ends_at: str
    status: str
    sequence: int
    audience: list[str]


@dataclass(frozen=True)
class WebinarCancelled(WebinarEvent):
    type: ClassVar[str] = "webinar.cancelled"
    audience: list[str]


@dataclass(frozen=True)
class WebinarRegistered(Event):
    """A member took a seat (registered), a place on the waiting list (waiting), or gave theirs up (cancelled)."""

    type: ClassVar[str] = "webinar.registered"
    webinar_id: int
    user_id: int
    status: str
    audience: list[str]


# --- private messages ---------------------------------------------------------------------------------
# A conversation's audience is `conversation:<id>` (its members), plus `staff` when the moderators'
# inbox is a party to it. Search and notify keep who is in each conversation from these events
# (`member_ids` is always the whole list now, so handling an event twice changes nothing).


@dataclass(frozen=True)
class ConversationEvent(Event):
    """Who is in a private conversation now."""

    conversation_id: int
    member_ids: list[int]  # the members in it now (not those invited who have not accepted, nor who left)
    with_moderators: bool  # the moderators' shared inbox is a party: any moderator may read and answer
    audience: list[str]


@dataclass(frozen=True)
class ConversationCreated(ConversationEvent):
    type: ClassVar[str] = "conversation.created"
    started_by: int
    title: str
    review_id: int | None = None  # outreach: started by a moderator from this safeguarding item


@dataclass(frozen=True)
class ConversationMembersChanged(ConversationEvent):
    """Someone joined (accepted an invitation), left, or was invited (`invited_ids`: told, not yet in)."""

    type: ClassVar[str] = "conversation.members_changed"
    added_ids: list[int]
    removed_ids: list[int]
    invited_ids: list[int]


@dataclass(frozen=True)
class MessageCreated(Event):
    """A message in a private conversation. `recipient_ids` are whom notify tells (the members but the
    author, less any who blocked the author); the moderators' inbox is told through `with_moderators`."""

    type: ClassVar[str] = "message.created"
    message_id: int
    conversation_id: int
    author_id: int
    author_username: str  # "the moderators" when sent from their inbox
    title: str  # the conversation's
    text: str
    created_at: str
    recipient_ids: list[int]
    with_moderators: bool
    audience: list[str]
    from_moderators: bool = False
    sensitive: bool = False  # matched a safeguarding phrase: never quoted in mail


@dataclass(frozen=True)
class ConversationRead(Event):
    """A member read a conversation further than before, up to a message (staff reading the moderators'
    inbox too, though they keep no read mark): notify reads their notification of it. Private, their own."""

    type: ClassVar[str] = "conversation.read"
    user_id: int
    conversation_id: int
    message_id: int
    audience: list[str]


@dataclass(frozen=True)
class MessageHidden(Event):
    """A moderator hid a reported message: it leaves search and is no longer shown but to staff."""

    type: ClassVar[str] = "message.hidden"
    message_id: int
    conversation_id: int
    author_id: int
    reason: str


# --- safeguarding ----------------------------------------------------------------------------------------
# The forum decides who is alerted (moderators, members with the safeguarding lead duty, and on a
# re-alert admins too); notify writes their notifications, mails the leads and updates the header's count.


@dataclass(frozen=True)
class SafeguardingAlerted(Event):
    """A safeguarding item needs someone: `round` 1 when it opens, 2 and on when nobody picked it up in time."""

    type: ClassVar[str] = "safeguarding.alerted"
    review_id: int
    round: int
    recipient_ids: list[int]  # whom to notify
    email_ids: list[int]  # of those, whom to mail too (the safeguarding leads)
    post_id: int | None = None
    topic_id: int | None = None
    topic_title: str | None = None
    message_id: int | None = None
    conversation_id: int | None = None


@dataclass(frozen=True)
class SafeguardingPickedUp(Event):
    """A moderator said "I'm looking at this" (or put it down again: moderator_id None)."""

    type: ClassVar[str] = "safeguarding.picked_up"
    review_id: int
    moderator_id: int | None
    moderator_username: str | None


@dataclass(frozen=True)
class SafeguardingResolved(Event):
    """What was done about a safeguarding item: reached_out, signposted, escalated, no_action."""

    type: ClassVar[str] = "safeguarding.resolved"
    review_id: int
    outcome: str
    moderator_id: int


__all__ = [
    "CategoryArchived",
    "CategoryCreated",
    "CategoryDeleted",
    "CategoryEvent",
    "CategoryReordered",
    "CategoryUnarchived",
    "CategoryUpdated",
    "CommentEvent",
    "CommentTextEvent",
    "ConversationCreated",
    "ConversationEvent",
    "ConversationMembersChanged",
    "ConversationRead",
    "DocumentCommentCreated",
    "DocumentCommentDeleted",
    "DocumentCommentEdited",
    "DocumentDeleted",
    "DocumentEvent",
    "DocumentUpdated",
    "DocumentUploaded",
    "EventError",
    "FolderUpdated",
    "GroupMemberAdded",
    "GroupMemberEvent",
    "GroupMemberRemoved",
    "InvitationSent",
    "InvitationWithdrawn",
    "MessageCreated",
    "MessageHidden",
    "PostCreated",
    "PostDeleted",
    "PostEdited",
    "PostEvent",
    "PostFlagged",
    "PostHidden",
    "PostRestored",
    "PostTextEvent",
    "ReactionAdded",
    "ReactionEvent",
    "ReactionRemoved",
    "ReviewResolved",
    "SafeguardingAlerted",
    "SafeguardingPickedUp",
    "SafeguardingResolved",
    "SanctionEvent",
    "SettingChanged",
    "SignupDecided",
    "SignupRequested",
    "TopicCreated",
    "TopicEvent",
    "TopicRead",
    "TopicUpdated",
    "UserMuted",
    "UserRegistered",
    "UserRoleChanged",
    "UserSeen",
    "UserSilenced",
    "UserSuspended",
    "UserUpdated",
    "WebinarCancelled",
    "WebinarEvent",
    "WebinarRegistered",
    "WebinarScheduled",
    "WebinarUpdated",
    "event_types",
    "type_named",
]
