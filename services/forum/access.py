"""Who may see or do what in the forum: every rule once.

Each rule is a Python predicate over the viewer (a Session, or None for a visitor) and the facts
of a thing. Where lists are filtered in SQL, the fragment that says the same stands beside the
predicate; tests/forum/test_access.py checks the two agree on the same rows. Endpoints and pages
ask here and never re-derive a rule. Outsiders get 404, never 403, for what they may not see:
`not_found` is the one answer for that.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared import audience
from shared.sessions import Session, roles_are_staff
from shared.web import ApiError

MAX_ID = 2**62  # larger numbers cannot be ids (bigint): refused as input rather than overflowing

# Writings (posts, document comments) never published: waiting for review, or rejected.
UNPUBLISHED = ("pending", "rejected")


def not_found(what: str = "that") -> ApiError:
    """The answer for what does not exist or the viewer may not see (the two look the same)."""
    return ApiError(404, "not_found", f"We could not find {what}. It may have been removed.")


# --- roles ------------------------------------------------------------------------------------


def is_staff(who: Session | None) -> bool:
    """Moderators and admins."""
    return who is not None and who.is_staff


def is_admin(who: Session | None) -> bool:
    return who is not None and who.is_admin


def require_staff(who: Session, refusal: str = "Only moderators can do that.") -> None:
    """Moderators and admins only (403, with the refusal's words, for everyone else)."""
    if not who.is_staff:
        raise ApiError(403, "forbidden", refusal)


def require_admin(who: Session, refusal: str = "Only admins can do that.") -> None:
    """Admins only (403, with the refusal's words, for everyone else)."""
    if not who.is_admin:
        raise ApiError(403, "forbidden", refusal)


def is_self(who: Session | None, user_id: int) -> bool:
    """The viewer is this member."""
    return who is not None and who.user_id == user_id


def member_is_staff(roles: Sequence[str]) -> bool:
    """A stored member's roles make them staff (whom nobody mutes, silences or suspends)."""
    return roles_are_staff(roles)


def own_or_staff(who: Session | None, author_id: int | None) -> bool:
    """The viewer wrote (or uploaded) the thing, or is staff."""
    return who is not None and (who.is_staff or who.user_id == author_id)


# --- categories and folders: readable by groups ---------------------------------------------------
# A category (or folder) with no groups is public; otherwise only members of one of its groups,
# and staff, may read it and everything in it. The same rule travels on events as an audience.


def groups_audience(group_ids: Sequence[int]) -> list[str]:
    """The audience of what a category or folder with these groups holds."""
    return audience.of_groups(group_ids)


def groups_readable(who: Session | None, group_ids: Sequence[int]) -> bool:
    """Whether the viewer may read a category or folder with these groups."""
    if not group_ids:
        return True
    if who is None:
        return False
    return who.is_staff or bool(set(group_ids) & set(who.group_ids))


def sql_params(who: Session | None) -> tuple[list[int], bool]:
    """Parameters for READABLE_SQL: the viewer's group ids and whether they are staff."""
    if who is None:
        return [], False
    return list(who.group_ids), who.is_staff


# With the category aliased `c` and the two parameters from sql_params, e.g.
# READABLE_SQL.format(groups="$2", staff="$3").
READABLE_SQL = "(c.group_ids = '{{}}' OR c.group_ids && {groups}::bigint[] OR {staff}::boolean)"


def folder_readable(who: Session | None, group_ids: Sequence[int], parent_group_ids: Sequence[int]) -> bool:
    """A folder is readable when it and its parent are (a subfolder's groups narrow its parent's)."""
    return groups_readable(who, group_ids) and groups_readable(who, parent_group_ids)


def folder_audience(group_ids: Sequence[int], parent_group_ids: Sequence[int]) -> list[str]:
    """A subfolder's groups are a subset of its parent's (checked on every change), so its own
    groups, when it has any, are exactly who may read it."""
    return audience.of_groups(list(group_ids) or list(parent_group_ids))


# --- topics -------------------------------------------------------------------------------------


def topic_shown(who: Session | None, status: str, author_id: int) -> bool:
    """A topic that is not visible (its first post waits, was rejected or hidden) is for its
    author and staff."""
    return status == "visible" or own_or_staff(who, author_id)


# With the topic aliased `t`, e.g. TOPIC_SHOWN_SQL.format(staff="$2", user="$3").
TOPIC_SHOWN_SQL = "(t.status = 'visible' OR {staff}::boolean OR t.author_id = {user}::bigint)"


def shown_params(who: Session | None) -> tuple[int | None, bool]:
    """Parameters for TOPIC_SHOWN_SQL and POST_SHOWN_SQL: the viewer's id and whether they are staff."""
    return (who.user_id if who else None), is_staff(who)


def category_takes_posts(archived_at: object) -> bool:
    """Whether a category takes new topics and replies: not once archived, from anyone, staff
    included (its topics stay readable)."""
    return archived_at is None


def may_reply(who: Session | None, *, closed: bool, status: str, archived: bool = False) -> str:
    """Why the viewer may not reply to a topic they can read ("" when they may): "archived" (its
    category takes no posts: said to visitors too, whom "log in to reply" would mislead), "login",
    "closed" or "not_open". Whether their account may write at all is asked apart."""
    if archived:
        return "archived"
    if who is None:
        return "login"
    if closed and not who.is_staff:
        return "closed"
    if status != "visible" and not who.is_staff:
        return "not_open"
    return ""


# --- writings: posts and document comments --------------------------------------------------------


def writing_shown(who: Session | None, status: str, author_id: int) -> bool:
    """Writings never published (waiting for review, or rejected) are shown only to their author
    and staff; every other state is listed (deleted and hidden ones with their text withheld)."""
    return status not in UNPUBLISHED or own_or_staff(who, author_id)


# With the writing aliased `p`, e.g. POST_SHOWN_SQL.format(staff="$3", user="$2").
POST_SHOWN_SQL = "(p.status NOT IN ('pending', 'rejected') OR {staff}::boolean OR p.author_id = {user}::bigint)"


def text_withheld(who: Session | None, status: str, author_id: int) -> bool:
    """Whether a writing's text is withheld from the viewer: deleted (from everyone), or hidden or
    unpublished (from all but its author and staff)."""
    if status == "deleted":
        return True
    if status in ("hidden", *UNPUBLISHED):
        return not own_or_staff(who, author_id)
    return False


def may_edit(who: Session | None, status: str, author_id: int) -> bool:
    """The author and staff may edit a writing that is not deleted."""
    return status != "deleted" and own_or_staff(who, author_id)


def may_react(who: Session | None, status: str) -> bool:
    """Signed-in members react to visible writings."""
    return who is not None and status == "visible"


def may_flag(who: Session | None, status: str, author_id: int) -> bool:
    """Signed-in members flag someone else's visible writing."""
    return who is not None and status == "visible" and who.user_id != author_id


def may_hide(who: Session | None, status: str) -> bool:
    """Staff hide a visible writing."""
    return is_staff(who) and status == "visible"


def may_appeal(who: Session | None, status: str, author_id: int) -> bool:
    """The author appeals a writing that moderators hid or rejected."""
    return who is not None and who.user_id == author_id and status in ("hidden", "rejected")


def may_reveal_author(who: Session | None) -> bool:
    """Staff alone may learn who wrote a pseudonymous writing (each reveal is audited)."""
    return is_staff(who)


def may_redact_revision(who: Session | None, author_id: int) -> bool:
    """A post's author and staff may redact an earlier version of it (take back what it said)."""
    return own_or_staff(who, author_id)


def redacted_text_shown(who: Session | None) -> bool:
    """A redacted version's text, and every diff touching it, is shown to admins alone."""
    return is_admin(who)


# --- the library --------------------------------------------------------------------------------


def document_changeable(who: Session | None, uploader_id: int | None) -> bool:
    """The uploader and staff may change a document (new version, move, rename, delete)."""
    return own_or_staff(who, uploader_id)


# folder_readable in SQL: with the folder aliased `f`, its parent `p` (LEFT JOIN) and the two
# parameters from sql_params, e.g. FOLDER_READABLE_SQL.format(groups="$1", staff="$2").
FOLDER_READABLE_SQL = """(f.group_ids = '{{}}' OR f.group_ids && {groups}::bigint[] OR {staff}::boolean)
    AND (p.id IS NULL OR p.group_ids = '{{}}' OR p.group_ids && {groups}::bigint[] OR {staff}::boolean)"""


# --- webinars -----------------------------------------------------------------------------------


def may_organise(who: Session | None, organiser_ids: Sequence[int]) -> bool:
    """Admins and a webinar's organisers may change it."""
    return who is not None and (who.is_admin or who.user_id in organiser_ids)


def webinar_audience() -> list[str]:
    """Webinars are announced to everyone: they and their calendar files are public."""
    return audience.public()


def registration_audience() -> list[str]:
    """Who registered for a webinar is personal: only staff may see that event."""
    return audience.staff_only()


# --- groups -------------------------------------------------------------------------------------
# Open and on-request groups are seen by everyone; a private group only by its members and staff.
# To everyone else it does not exist (not_found).


def group_visible(who: Session | None, group_access: str, member: bool) -> bool:
    """Whether the viewer may see a group with this access, being a member of it or not."""
    return group_access != "private" or member or is_staff(who)


# With the group aliased `g` and the parameters from shown_params, e.g.
# GROUP_VISIBLE_SQL.format(user="$1", staff="$2").
GROUP_VISIBLE_SQL = (
    "(g.access <> 'private' OR {staff}::boolean OR EXISTS "
    "(SELECT 1 FROM forum.group_members m WHERE m.group_id = g.id AND m.user_id = {user}::bigint))"
)


def may_manage_group(who: Session | None, owner: bool) -> bool:
    """A group's owners and admins approve requests, add, remove and invite members, and edit it."""
    return owner or is_admin(who)


# --- accounts -----------------------------------------------------------------------------------


def may_see_email(who: Session | None, user_id: int) -> bool:
    """A member's email address, groups and directory choice are for them and admins."""
    return who is not None and (who.user_id == user_id or who.is_admin)


def may_change_roles(who: Session | None) -> bool:
    """Admins make a member a moderator or an admin, and take the role back."""
    return is_admin(who)


# --- the audit log ------------------------------------------------------------------------------
# Moderators see what moderation did (the review queue, posts, topics, silences and suspensions,
# sign-ups and invitations); admins see everything, also role changes, categories, settings,
# watched words and safeguarding phrases. An action this does not name is for admins alone.

MODERATION_AUDIT_NOUNS = ("review", "post", "topic", "signup", "invitation")
MODERATION_AUDIT_ACTIONS = ("user.silence", "user.unsilence", "user.suspend", "user.unsuspend")


def audit_action_visible(who: Session | None, action: str) -> bool:
    """Whether the viewer may see audit entries of this action."""
    if is_admin(who):
        return True
    if not is_staff(who):
        return False
    return action.split(".", 1)[0] in MODERATION_AUDIT_NOUNS or action in MODERATION_AUDIT_ACTIONS


def audit_sql_params(who: Session | None) -> tuple[bool, bool]:
    """Parameters for AUDIT_VISIBLE_SQL: whether the viewer is an admin, and whether staff."""
    return is_admin(who), is_staff(who)


# audit_action_visible in SQL: with the entry aliased `a` and the two parameters from
# audit_sql_params, e.g. AUDIT_VISIBLE_SQL.format(admin="$1", staff="$2").
AUDIT_VISIBLE_SQL = (
    "({admin}::boolean OR ({staff}::boolean AND (split_part(a.action, '.', 1) = ANY(ARRAY["
    + ", ".join(f"'{noun}'" for noun in MODERATION_AUDIT_NOUNS)
    + "]) OR a.action = ANY(ARRAY["
    + ", ".join(f"'{action}'" for action in MODERATION_AUDIT_ACTIONS)
    + "]))))"
)


# --- members, as staff see them -------------------------------------------------------------------


def may_search_email(who: Session | None) -> bool:
    """Admins alone find members by email address (moderators neither search nor see addresses)."""
    return is_admin(who)


# --- safeguarding -------------------------------------------------------------------------------------


def may_hold_safeguarding_duty(roles: Sequence[str]) -> bool:
    """Only moderators and admins are safeguarding leads: safeguarding items stay among staff (taking away
    a member's staff role takes the duty with it)."""
    return member_is_staff(roles)


def may_pick_up(who: Session | None) -> bool:
    """Moderators and admins say "I'm looking at this" on a safeguarding item (and take it over)."""
    return is_staff(who)


def may_see_review_counts(who: Session | None) -> bool:
    """The header's count of items waiting in the review queue: staff only."""
    return is_staff(who)


# Whom a safeguarding alert goes to: every moderator and safeguarding lead, and from the second round
# (nobody picked the item up in time) every admin too; $1 whether admins are included. `lead`: mailed too.
SAFEGUARDING_RECIPIENTS_SQL = """
SELECT id, safeguarding_lead AS lead FROM forum.users
WHERE 'moderator' = ANY(roles) OR safeguarding_lead OR ($1::boolean AND 'admin' = ANY(roles))
ORDER BY id
"""


# --- private messages ---------------------------------------------------------------------------------
# A conversation's audience is its members; with the moderators' shared inbox a party, staff too. A member
# reads what was said while they were in it (from joining, up to leaving); a member they blocked has no new
# messages in it for them. Staff read a conversation only when the moderators are a party, admins included;
# otherwise a moderator sees a reported message and the few before it (on the review item), nothing else.

WHO_MAY_MESSAGE = ("anyone", "talked", "nobody")
REPORTED_CONTEXT_BEFORE = 3  # messages before a reported one that moderators see with it


def conversation_audience(conversation_id: int, with_moderators: bool) -> list[str]:
    """Who may read a conversation: its members, and staff when the moderators' inbox is a party."""
    found = [audience.conversation(conversation_id)]
    return [*found, audience.STAFF] if with_moderators else found


def may_read_conversation(who: Session | None, state: str | None, with_moderators: bool) -> bool:
    """Active and former members (`state` is the viewer's membership, None when none), and staff when the
    moderators are a party; an invited member sees only the invitation."""
    if who is None:
        return False
    return state in ("active", "left") or (with_moderators and who.is_staff)


def may_see_invitation(who: Session | None, state: str | None) -> bool:
    """A member invited to a conversation sees its title and who asked, to accept or decline."""
    return who is not None and state == "invited"


def may_write_in_conversation(who: Session | None, state: str | None, with_moderators: bool) -> bool:
    """Active members write in a conversation; staff answer one with the moderators (as "the moderators")."""
    if who is None:
        return False
    return state == "active" or (with_moderators and who.is_staff and state is None)


def writes_as_moderators(who: Session, state: str | None, with_moderators: bool) -> bool:
    """Staff answering from the shared inbox sign as "the moderators" (not a member of it themselves)."""
    return with_moderators and who.is_staff and state != "active"


def may_invite_to_conversation(state: str | None, with_moderators: bool) -> bool:
    """Active members bring someone in (not into a conversation with the moderators: that stays private)."""
    return state == "active" and not with_moderators


def message_visible(
    *,
    message_id: int,
    seen_after_message_id: int,
    left_message_id: int | None,
    blocked_since: object | None,
    created_at: object,
    staff_party: bool,
) -> bool:
    """Whether a member (or staff reading the moderators' inbox: `staff_party`) sees one message: said
    while they were in the conversation, and not from a member they blocked after they blocked them."""
    if staff_party:
        return True
    if message_id <= seen_after_message_id or (left_message_id is not None and message_id > left_message_id):
        return False
    return blocked_since is None or created_at < blocked_since  # type: ignore[operator]


# message_visible in SQL: with the message aliased `x`, the viewer's membership `m` (LEFT JOIN, none for
# staff reading the inbox), the viewer's id and whether staff read it as a party, e.g.
# MESSAGE_VISIBLE_SQL.format(user="$2", staff_party="$3").
MESSAGE_VISIBLE_SQL = """({staff_party}::boolean OR (m.state IN ('active', 'left')
    AND x.id > m.seen_after_message_id AND (m.left_message_id IS NULL OR x.id <= m.left_message_id)
    AND NOT EXISTS (SELECT 1 FROM forum.member_blocks b
        WHERE b.blocker_id = {user}::bigint AND b.blocked_id = x.author_id AND x.created_at >= b.created_at)))"""


def message_text_withheld(who: Session | None, status: str, author_id: int, staff_party: bool) -> bool:
    """A hidden message's text is for its author and staff who may read the conversation."""
    return status == "hidden" and not (is_self(who, author_id) or staff_party)


def reported_context_visible(who: Session | None, reported: bool) -> bool:
    """Staff see a message that was reported (or matched a safeguarding phrase) and the
    REPORTED_CONTEXT_BEFORE messages before it, on its review item: nothing else of the conversation.
    `reported`: the message has a review item of a message kind."""
    return is_staff(who) and reported


# The reported context: the reported message ($1) and the REPORTED_CONTEXT_BEFORE messages before it in its
# conversation, when a review item names it; empty otherwise.
REPORTED_CONTEXT_SQL = f"""
SELECT x.id, x.conversation_id, x.author_id, x.from_moderators, x.raw, x.cooked, x.plain, x.status,
       x.created_at, u.username, u.display_name
FROM forum.messages r
JOIN forum.messages x ON x.conversation_id = r.conversation_id AND x.id <= r.id
JOIN forum.users u ON u.id = x.author_id
WHERE r.id = $1
  AND EXISTS (SELECT 1 FROM forum.reviewables v
      WHERE v.message_id = r.id AND v.kind IN ('flagged_message', 'safeguarding_message'))
ORDER BY x.id DESC
LIMIT {REPORTED_CONTEXT_BEFORE + 1}
"""


def may_message(*, policy: str, blocked: bool, talked: bool, outreach: bool) -> bool:
    """Whether someone may start a conversation with a member whose choice is `policy`: never when that
    member blocked them (`blocked`); `talked` when they have talked in public or share a conversation.
    The moderators' outreach always reaches a member (`outreach`)."""
    if outreach:
        return True
    if blocked or policy == "nobody":
        return False
    return policy == "anyone" or talked


# Whether two members ($1, $2) have talked in public (one replied to the other's post, or in the other's
# topic, neither post anonymous nor unpublished) or already share a conversation. Each way is its own
# EXISTS so that each walks one member's posts by index.
_TALKED_POSTS = """
    SELECT 1 FROM (VALUES ($1::bigint, $2::bigint), ($2::bigint, $1::bigint)) AS pair(a, b)
    JOIN forum.posts p ON p.author_id = pair.a AND p.status = 'visible' AND NOT p.anonymous
    JOIN forum.posts q ON {join}
    WHERE q.author_id = pair.b AND q.status = 'visible' AND NOT q.anonymous
"""
_IN_THEIR_TOPIC = "p.reply_to_post_id IS NULL AND q.topic_id = p.topic_id AND q.post_number = 1"
TALKED_SQL = f"""
SELECT EXISTS ({_TALKED_POSTS.format(join="q.id = p.reply_to_post_id")})
    OR EXISTS ({_TALKED_POSTS.format(join=_IN_THEIR_TOPIC)})
    OR EXISTS (
        SELECT 1 FROM forum.conversation_members a JOIN forum.conversation_members b USING (conversation_id)
        WHERE a.user_id = $1 AND b.user_id = $2 AND a.state IN ('active', 'left') AND b.state IN ('active', 'left')
    )
"""
