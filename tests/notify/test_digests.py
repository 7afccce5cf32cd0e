"""The digest through a real SMTP server: who is due, what it holds, sent once, and unsubscribing in one click."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from urllib.parse import unquote

from notify_helpers import category, parts, post, topic

from services.notify import digests
from services.notify.worker import create_worker
from shared import events as ev
from shared.jobs import open_queue
from shared.web import Runtime

ROOT = Path(__file__).resolve().parents[2]
ALICE, BOB, CAROL = 1, 2, 3


async def _members_a_week_old(world) -> None:
    await world.join(ALICE, "alice")
    await world.join(BOB, "bob")
    await world.join(CAROL, "carol")
    await world.pool.execute("UPDATE notify.users SET registered_at = now() - interval '8 days'")


async def _activity(world) -> None:
    """Bob's busy topic, a reply to Alice's topic, a content-noted topic and a private one."""
    await world.emit(category(1), category(2, audience=["group:7"]))
    await world.emit(
        topic(10, author_id=BOB, title="Supervision that helps"),
        post(100, topic_id=10, number=1, author_id=BOB, text="How does your team run supervision?"),
        post(101, topic_id=10, number=2, author_id=CAROL, text="We meet every fortnight."),
        post(102, topic_id=10, number=3, author_id=CAROL, text="And we check in first."),
    )
    await world.emit(
        topic(20, author_id=ALICE, title="My first month"),
        post(200, topic_id=20, number=1, author_id=ALICE, text="It has been a lot."),
        post(201, topic_id=20, number=2, author_id=BOB, author_username="bob", text="Welcome, it does get easier."),
    )
    await world.emit(
        topic(30, author_id=CAROL, title="A hard night", content_note="suicide"),
        post(300, topic_id=30, number=1, author_id=CAROL, text="Secret painful words here", content_note="suicide"),
    )
    await world.emit(
        topic(40, author_id=CAROL, category_id=2, title="Group only", audience=["group:7"]),
        post(400, topic_id=40, number=1, author_id=CAROL, category_id=2, audience=["group:7"]),
    )


def _ctx(world, mail_settings) -> dict:
    rt = world.rt
    return {"runtime": Runtime(mail_settings, rt.pool, rt.redis, rt.sessions, rt.extras), "job_try": 1}


async def _due_ids(world) -> list[int]:
    async with world.pool.acquire() as conn:
        from datetime import UTC, datetime

        return [user_id for user_id, _ in await digests.find_due(conn, datetime.now(UTC))]


async def test_who_is_due(world):
    """Due: interval passed since both the last digest and the last visit; verified; not suspended; wanted."""
    await _members_a_week_old(world)
    await world.join(4, "dora", verified=False)
    await world.join(5, "eve")
    await world.join(6, "finn")
    await world.join(7, "gail")
    await world.pool.execute("UPDATE notify.users SET registered_at = now() - interval '8 days'")
    await world.pool.execute("UPDATE notify.users SET suspended_until = now() + interval '3 days' WHERE id = 5")
    await world.pool.execute("INSERT INTO notify.preferences (user_id, digest) VALUES (6, 'never'), (7, 'daily')")
    await world.seen(BOB)
    await world.pool.execute(
        "INSERT INTO notify.digests (user_id, last_sent_at) VALUES ($1, now() - interval '2 days')", CAROL
    )
    assert await _due_ids(world) == [ALICE, 7]
    await world.pool.execute("UPDATE notify.users SET registered_at = now() - interval '2 days' WHERE id = 7")
    await world.pool.execute("UPDATE notify.users SET last_seen_at = now() - interval '25 hours' WHERE id = 7")
    assert await _due_ids(world) == [ALICE, 7], "daily: a day since both"
    await world.pool.execute("UPDATE notify.users SET last_seen_at = now() - interval '2 hours' WHERE id = 7")
    assert await _due_ids(world) == [ALICE]


async def test_the_digest_holds_active_topics_and_replies_and_only_notes_of_noted_posts(world, smtp, mail_settings):
    await _members_a_week_old(world)
    await _activity(world)
    result = await digests.send_digest(_ctx(world, mail_settings), ALICE, "k1")
    assert result == "sent"
    [message] = smtp[0].to("alice@example.org")
    assert message["Subject"] == "Your weekly tica summary: 3 things to catch up on"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = parts(message)
    for body in (text, html):
        assert "Supervision that helps" in body and "How does your team run supervision?" in body
        assert "My first month" in body and "Welcome, it does get easier." in body
        assert "A hard night" in body and "Content note: suicide" in body
        assert "Secret painful words" not in body, "a content-noted post shows its note, never its text"
        assert "Group only" not in body, "a private category stays private"
    assert text.index("REPLIES TO YOUR TOPICS") < text.index("MOST ACTIVE CONVERSATIONS")
    assert text.index("Supervision that helps") < text.index("A hard night"), "most active first"
    sent = await world.pool.fetchrow("SELECT last_sent_at, sent_count FROM notify.digests WHERE user_id = $1", ALICE)
    assert sent["sent_count"] == 1 and sent["last_sent_at"] is not None


async def test_muted_and_ignored_are_left_out(world, smtp, mail_settings):
    await _members_a_week_old(world)
    await _activity(world)
    await world.watch(ALICE, "topic:10", "muted")
    await world.emit(ev.UserMuted(user_id=ALICE, muted_user_id=CAROL, level="ignored"))
    await digests.send_digest(_ctx(world, mail_settings), ALICE, "k1")
    text, _ = parts(smtp[0].messages[0])
    assert "Supervision that helps" not in text and "A hard night" not in text
    assert "My first month" in text


async def test_nothing_new_sends_nothing_and_waits_an_interval(world, smtp, mail_settings):
    await _members_a_week_old(world)
    assert await _due_ids(world) == [ALICE, BOB, CAROL]
    assert await digests.send_digest(_ctx(world, mail_settings), ALICE, "k1") == "nothing new"
    assert smtp[0].messages == []
    assert ALICE not in await _due_ids(world), "checked: not due again until the next interval"


async def test_the_cron_job_run_twice_sends_once(world, smtp, mail_settings):
    """Two cron runs queue one job per member (deterministic job id); the mail key keeps retries to one mail."""
    await _members_a_week_old(world)
    await _activity(world)
    queue = await open_queue(mail_settings)
    try:
        ctx = {"runtime": _ctx(world, mail_settings)["runtime"], "redis": queue}
        assert await digests.enqueue_due_digests(ctx) == 3
        assert await digests.enqueue_due_digests(ctx) == 0
    finally:
        await queue.aclose()
    worker = create_worker(mail_settings, burst=True)
    try:
        await worker.main()
    finally:
        await worker.close()
    assert sorted(str(m["To"]) for m in smtp[0].messages) == [
        "alice@example.org",
        "bob@example.org",
        "carol@example.org",
    ]
    queue = await open_queue(mail_settings)
    try:
        assert await digests.enqueue_due_digests({"runtime": ctx["runtime"], "redis": queue}) == 0
    finally:
        await queue.aclose()


async def test_digests_run_now_twice_sends_once(world, smtp, mail_settings):
    await _members_a_week_old(world)
    await _activity(world)
    first = await digests.send_due_now(_ctx(world, mail_settings)["runtime"])
    second = await digests.send_due_now(_ctx(world, mail_settings)["runtime"])
    assert first == {"sent": 3} and not second
    assert len(smtp[0].messages) == 3
    # The same job again (a retry after the send) sends nothing more.
    key = str(
        int((await world.pool.fetchval("SELECT registered_at FROM notify.users WHERE id = $1", ALICE)).timestamp())
    )
    assert await digests.send_digest(_ctx(world, mail_settings), ALICE, key) in ("already sent", "nothing new")
    assert len(smtp[0].messages) == 3


async def _tica(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_tica_digests_commands(world, smtp, mail_settings):
    """`tica digests send --user U` sends whatever the schedule; `tica digests run --now` sends what is due."""
    await _members_a_week_old(world)
    await _activity(world)
    await world.seen(ALICE)  # here a minute ago: not due, but support can still send it
    s = mail_settings
    env = {
        **os.environ,
        "DATABASE_URL": s.database_url,
        "REDIS_URL": s.redis_url,
        "TICA_REDIS_PREFIX": s.redis_prefix,
        "TICA_SECRET_KEY": s.secret_key,
        "SMTP_URL": s.smtp_url,
        "TICA_BASE_URL": s.base_url,
        "PYTHONPATH": str(ROOT),
        "TICA_LOG_LEVEL": "WARNING",
    }
    code, out, err = await _tica("digests", "send", "--user", "alice", env=env)
    assert (code, out.strip()) == (0, "alice: sent"), err
    assert [str(m["To"]) for m in smtp[0].messages] == ["alice@example.org"]
    code, out, err = await _tica("digests", "send", "--user", "nobody", env=env)
    assert code == 2 and "no member 'nobody'" in err
    code, out, err = await _tica("digests", "run", "--now", env=env)
    assert (code, out.strip()) == (0, "2 sent"), err
    code, out, err = await _tica("digests", "run", "--now", env=env)
    assert (code, out.strip()) == (0, "no digest is due"), err
    assert len(smtp[0].messages) == 3


async def test_the_unsubscribe_link_and_one_click_post_both_work(world, smtp, mail_settings, client):
    """From a real digest: the link asks first; the RFC 8058 POST unsubscribes without a login or CSRF token."""
    await _members_a_week_old(world)
    await _activity(world)
    ctx = _ctx(world, mail_settings)
    await digests.send_digest(ctx, ALICE, "k1")
    await digests.send_digest(ctx, BOB, "k1")
    alice_mail, bob_mail = smtp[0].to("alice@example.org")[0], smtp[0].to("bob@example.org")[0]

    # The link in the text: GET asks (a link scanner unsubscribes no one), the page's button POSTs.
    link = re.search(r"Stop the summary email \(no need to log in\): (\S+)", parts(alice_mail)[0]).group(1)
    path = link.removeprefix("http://testserver")
    page = await client.get(path)
    assert page.status_code == 200 and "Do you want to stop getting the summary email" in page.text
    assert await world.pool.fetchval("SELECT digest FROM notify.preferences WHERE user_id = $1", ALICE) is None
    action = unquote(re.search(r'<form method="post" action="([^"]+)"', page.text).group(1).replace("&amp;", "&"))
    done = await client.post(action)
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert await world.pool.fetchval("SELECT digest FROM notify.preferences WHERE user_id = $1", ALICE) == "never"

    # One click, as a mail provider does it: POST to the List-Unsubscribe URL, that body, no cookie.
    one_click = bob_mail["List-Unsubscribe"].strip("<>").removeprefix("http://testserver")
    response = await client.post(
        one_click, content=b"List-Unsubscribe=One-Click", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 200
    assert await world.pool.fetchval("SELECT digest FROM notify.preferences WHERE user_id = $1", BOB) == "never"
    await world.pool.execute(
        "UPDATE notify.digests SET last_checked_at = now() - interval '8 days', "
        "last_sent_at = now() - interval '8 days'"
    )
    assert set(await _due_ids(world)) == {CAROL}, "unsubscribed members are not due any more"


async def test_a_tampered_unsubscribe_token_is_refused(client, settings):
    from services.notify.unsubscribe import make_token

    token = make_token(settings, 5, "digest")
    for bad in (token[:-2] + "xx", token.replace("5.", "6.", 1), "5.digest", "", "x" * 300, "5.everything.abc"):
        for method in ("GET", "POST"):
            response = await client.request(method, "/unsubscribe", params={"token": bad})
            assert response.status_code == 400, (method, bad)
            assert "This link does not work" in response.text


async def test_the_activity_index_agrees_with_counting_post_by_post(world):
    """most_active() (binary search, early exit) gives what counting every post in the window gives."""
    import random
    from datetime import UTC, datetime, timedelta

    from services.notify.digests import ActivityIndex, member_filters

    rng = random.Random(7)
    now = datetime.now(UTC)
    for user_id in range(1, 21):
        await world.join(user_id, f"m{user_id}", group_ids=[3] if user_id % 4 == 0 else [])
    await world.emit(category(1), category(2, audience=["group:3"]))
    topics = {t: (rng.randint(1, 20), 1 if t % 5 else 2) for t in range(1, 41)}
    await world.emit(
        *[
            topic(t, author_id=a, category_id=c, audience=["public"] if c == 1 else ["group:3"])
            for t, (a, c) in topics.items()
        ]
    )
    posts = []
    for post_id in range(1, 601):
        t = rng.choice([t for t in topics for _ in range(t % 7 + 1)])  # some topics much busier
        author = rng.randint(1, 20)
        at = now - timedelta(hours=rng.uniform(0, 24 * 9))
        posts.append((post_id, t, author, at))
    await world.emit(
        *[
            post(
                pid,
                topic_id=t,
                number=pid + 1,
                author_id=a,
                category_id=topics[t][1],
                audience=["public"] if topics[t][1] == 1 else ["group:3"],
                created_at=at.isoformat(),
            )
            for pid, t, a, at in posts
        ]
    )
    for user_id in range(1, 21, 3):
        await world.emit(ev.UserMuted(user_id=user_id, muted_user_id=(user_id * 7) % 20 + 1, level="ignored"))
        await world.watch(user_id, f"topic:{user_id}", "muted")
    await world.watch(5, "category:1", "muted")
    async with world.pool.acquire() as conn:
        index = await ActivityIndex.load(conn, now)
        for user_id in range(1, 21):
            member = await projections_member(conn, user_id)
            muted_users, watches = await member_filters(conn, user_id)
            since = now - timedelta(days=rng.choice([1, 3, 7]))
            got = [(t.id, n) for t, n in index.most_active(member, since, muted_users=muted_users, watches=watches)]
            assert got == _by_hand(posts, topics, member, since, now, muted_users, watches), user_id


async def projections_member(conn, user_id):
    from services.notify import projections

    return await projections.fetch_member(conn, user_id)


def _by_hand(posts, topics, member, since, until, muted_users, watches):
    counts, last = {}, {}
    for _, t, author, at in posts:
        if not since < at <= until:
            continue
        last[t] = max(last.get(t, at), at)
        if author == member.id or author in muted_users:
            continue
        counts[t] = counts.get(t, 0) + 1
    ranked = []
    for t, n in counts.items():
        author, cat = topics[t]
        own = watches.get(f"topic:{t}")
        muted = own[0] == "muted" if own else watches.get(f"category:{cat}", ("",))[0] == "muted"
        visible = cat == 1 or 3 in member.group_ids
        if author == member.id or author in muted_users or muted or not visible:
            continue
        ranked.append((n, last[t], t))
    ranked.sort(reverse=True)
    return [(t, n) for n, _, t in ranked[:5]]
