"""The audit log and the review queue in words: what a moderator did, to what, linked where the viewer
may see it; never a hidden post's text, never an anonymous author's name (issue 13, point 9)."""

from __future__ import annotations

import html
import re
from pathlib import Path

from moderation_helpers import flag, new_category, new_topic, reply, review_of

from services.forum.moderation import audit, audit_words

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "A topic to talk about"


def form(member, **fields):
    return {**fields, "csrf_token": member.session.csrf}


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def cell_texts(page: str) -> list[str]:
    """The text of the audit table's "What happened" cells."""
    body = page.split('<tbody class="nhsuk-table__body">', 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr.*?</tr>", body, re.S)
    return [text_of(re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)[1]).strip() for row in rows]


def test_every_action_has_words():
    """Each action the log can hold has a sentence and a name for the filter."""
    assert set(audit.WORDS) == set(audit.ACTIONS) == set(audit.ACTION_NAMES)
    assert set(audit.TARGET_NAMES) == set(audit.TARGET_TYPES)
    for action, words in audit.WORDS.items():
        assert "{thing}" in words and action not in words, action
    for (action, _), words in audit.REVIEW_WORDS.items():
        assert f"review.{action}" in audit.ACTIONS and "{thing}" in words


def test_every_recorded_action_is_one_the_log_knows():
    """Every action name written next to an audit call in the services is in audit.ACTIONS (so it has words)."""
    nouns = "|".join(sorted({a.split(".")[0] for a in audit.ACTIONS}))
    literal = re.compile(rf'"((?:{nouns})\.[a-z_]+)"')
    prefix = re.compile(rf'f"((?:{nouns}))\.\{{')
    found: set[str] = set()
    for path in (ROOT / "services").rglob("*.py"):
        source = path.read_text()
        if not re.search(r"audit\.(record|record_by|changed)\(", source):
            continue
        found.update(literal.findall(source))
        for noun in prefix.findall(source):
            assert any(a.startswith(noun + ".") for a in audit.ACTIONS), (path, noun)
    assert found and found <= set(audit.ACTIONS), found - set(audit.ACTIONS)
    assert {"topic.close", "user.suspend", "watched_word.add", "post.reveal_author"} <= found


async def test_keep_visible_confirms_in_words(sam, topic, member_factory, moderator, admin, pool):
    """ "Keep visible" says what happened ("You kept a reply by Sam ... visible"), not "Done: Approve";
    the audit log says "Mo kept ..." with links to the reply and the topic, not "review.approve"."""
    post = await reply(sam, topic["id"], "Something some may find hard")
    await flag(await member_factory(), post["id"], "inappropriate")
    item = await review_of(pool, post["id"], "flagged_post")
    done = await moderator.client.post(f"/review/{item['id']}", data=form(moderator, action="approve"))
    assert done.status_code == 303
    page = (await moderator.client.get(done.headers["location"])).text
    assert "Done: Approve" not in page
    assert f"You kept a reply by Sam in \u2018{TOPIC}\u2019 visible." in text_of(page)
    assert f'<a href="/p/{post["id"]}">a reply by Sam</a>' in page

    log = (await admin.client.get("/admin/audit-log")).text
    assert cell_texts(log) == [
        f"Mo kept a reply by Sam in \u2018{TOPIC}\u2019 visible.",
        "Ada created the category \u2018General\u2019.",  # the topic's category, made by the fixture
    ]
    assert f'<a href="/p/{post["id"]}">a reply by Sam</a>' in log and f'/{topic["id"]}">{TOPIC}</a>' in log
    assert "review.approve</td>" not in log and "reviewable " not in log
    assert '<option value="review.approve">Review: approved or kept visible</option>' in log


async def test_member_page_lists_actions_in_words(sam, topic, moderator, pool):
    """A member's moderation page says what was done to them and their posts, with dates as elsewhere."""
    post = await reply(sam, topic["id"], "Words")
    hidden = await moderator.client.post(f"/api/posts/{post['id']}/hide", json={"reason": "Please rephrase"})
    assert hidden.status_code == 200, hidden.text
    page = (await moderator.client.get("/review/members/sam")).text
    text = text_of(page)
    assert f"Mo hid a reply by Sam in \u2018{TOPIC}\u2019. Reason: \u201cPlease rephrase\u201d." in text
    assert "post.hide" not in page and re.search(r"<time datetime=\"[^\"]+\" title=\"[^\"]+\">just now</time>", page)


async def test_every_action_reads_as_a_sentence(admin, moderator, sam, topic, category, pool):
    """An entry of every action becomes a plain sentence on the audit page: no internal names, no ids."""
    post = await reply(sam, topic["id"], "The words of a hidden post stay out of the log")
    review_id = await pool.fetchval(
        "INSERT INTO forum.reviewables (kind, post_id, topic_id, author_id) VALUES ('flagged_post', $1, $2, $3) "
        "RETURNING id",
        post["id"],
        topic["id"],
        sam.id,
    )
    other = await new_category(admin, "Support")
    made_by_fixtures = {
        "Ada created the category \u2018General\u2019.",
        "Ada created the category \u2018Support\u2019.",
    }
    targets = {
        "review": ("reviewable", review_id, {"post_status": "visible"}, {"post_status": "hidden"}),
        "post": ("post", post["id"], {"status": "visible"}, {"status": "hidden"}),
        "topic": ("topic", topic["id"], {"category_id": category["id"]}, {"category_id": other["id"]}),
        "user": ("user", sam.id, None, {"until": "2030-03-05T10:00:00+00:00", "reason": "r", "role": "moderator"}),
        "watched_word": ("watched_word", 1, None, {"word": "cheap", "action": "require_approval"}),
        "safeguarding_phrase": ("safeguarding_phrase", 2, {"phrase": "end it all"}, {"phrase": "end it all"}),
        "signup": ("user", sam.id, None, {"approved": True}),
        "invitation": ("invitation", 3, None, {"expires_at": "2030-03-05T10:00:00+00:00"}),
        "category": ("category", other["id"], {"name": "Peer support"}, {"name": "Peer support"}),
        "setting": (
            "setting",
            None,
            {"key": "site_name", "value": "tica"},
            {"key": "site_name", "label": "Site name", "value": "Our place"},
        ),
    }
    async with pool.acquire() as conn:
        for action in audit.ACTIONS:
            target_type, target_id, before, after = targets[action.split(".")[0]]
            await audit.record(
                conn,
                actor_id=admin.id,
                action=action,
                target_type=target_type,
                target_id=target_id,
                before=before,
                after=after,
            )
    await pool.execute("UPDATE forum.posts SET status = 'hidden' WHERE id = $1", post["id"])
    page = await admin.client.get("/admin/audit-log")
    assert page.status_code == 200
    sentences = [s for s in cell_texts(page.text) if s not in made_by_fixtures]
    assert len(sentences) == len(audit.ACTIONS)
    for sentence in sentences:
        assert sentence.startswith("Ada ") and sentence.endswith("."), sentence
        assert not re.search(r"\b[a-z_]+\.[a-z_]+\b|\d", re.sub(r" until .*", "", sentence)), sentence
    joined = "\n".join(sentences)
    assert "hidden post stay out" not in page.text
    for expected in [
        f"Ada moved the topic \u2018{TOPIC}\u2019 from General to Support.",
        f"Ada closed the topic \u2018{TOPIC}\u2019 to new replies.",
        "Ada suspended Sam until 05 March 2030, 10:00 UTC.",
        "Ada added \u2018cheap\u2019 to the watched words (hold the post for approval).",
        "Ada took \u2018end it all\u2019 off the safeguarding phrases.",
        f"Ada looked up who wrote a reply by Sam in \u2018{TOPIC}\u2019.",
        f"Ada hid a reply by Sam in \u2018{TOPIC}\u2019.",
        "Ada changed the role of Sam to moderator.",
        "Ada approved the sign-up of Sam.",
        "Ada sent an invitation to join.",
        "Ada archived the category \u2018Peer support\u2019.",
        "Ada put the categories in a new order.",
        "Ada changed the setting \u2018Site name\u2019 to 'Our place'.",
    ]:
        assert expected in joined, expected
    assert 'href="/review/members/sam"' in page.text


async def test_words_follow_who_may_see(admin, sam, moderator, member_factory, pool):
    """An anonymous author is never named; a reader who may not see a post gets "a post", no title or link."""
    stories = await new_category(admin, "Personal narratives", allow_anonymous=True)
    story = await new_topic(sam, stories["id"], "What happened to me", "My story", anonymous=True, kind="narrative")
    first = await pool.fetchval("SELECT id FROM forum.posts WHERE topic_id = $1 AND post_number = 1", story["id"])
    entry = {
        "id": 1,
        "at": "2026-01-02T03:04:05+00:00",
        "actor": {"id": moderator.id, "username": "mo", "display_name": "Mo"},
        "action": "post.hide",
        "target_type": "post",
        "target_id": first,
        "reason": None,
        "before": None,
        "after": None,
    }
    async with pool.acquire() as conn:
        [seen] = await audit_words.described(conn, moderator.session, [entry])
        await conn.execute("UPDATE forum.posts SET status = 'pending' WHERE id = $1", first)
        [unseen] = await audit_words.described(conn, (await member_factory()).session, [entry])
    assert (
        audit_words.plain(seen["words"])
        == "Mo hid the opening post by an anonymous member in \u2018What happened to me\u2019."
    )
    assert "Sam" not in str(seen["words"])
    assert unseen["words"] == [("Mo", None), (" hid ", None), ("a post", None), (".", None)]
