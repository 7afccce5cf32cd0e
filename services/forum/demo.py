"""Demo data: a small community to look around in on first start.

Everything is written through the same functions the API uses (accounts, categories,
topics, posts, the library's folders and documents), in one transaction, so the events
flow as for real activity. A marker row in forum.meta makes seeding happen once, even
with several replicas starting.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.forum.accounts import accounts, passwords
from services.forum.library import documents, folders
from services.forum.library.multipart import Upload
from services.forum.library.storage import storage_for
from services.forum.topics import categories, posts, revisions
from services.forum.writings import writings
from services.forum.writings.targets import POST
from shared import db
from shared.sessions import Session
from shared.settings import Settings

SEEDED_KEY = "demo_seeded"

# (username, password, role): printed by `tica run` so people can log in and look around.
DEMO_LOGINS: list[tuple[str, str, str]] = [
    ("ada", "demo-password-ada", "admin"),
    ("mo", "demo-password-mo", "moderator"),
    ("sam", "demo-password-sam", "member"),
    ("priya", "demo-password-priya", "member"),
    ("jordan", "demo-password-jordan", "member"),
]
_PEOPLE = {
    "ada": ("Ada Okafor", "Community organiser for tica. Here to help the community run smoothly."),
    "mo": ("Mo Hughes", "Moderator. Peer support worker; I look after the review queue."),
    "sam": ("Sam Taylor", "Expert by experience. I co-produce services and write about recovery."),
    "priya": ("Priya Shah", "Clinical psychologist in an NHS community mental health team."),
    "jordan": ("Jordan Ellis", "Service manager, interested in evaluation and staff wellbeing."),
}

CATEGORIES: list[dict[str, Any]] = [
    {"name": "Lived experience", "colour": "ae2573",
     "description":
         "Share and listen to experiences of trauma and recovery, at your own pace. You choose what you share."},
    {"name": "Practice and implementation", "colour": "005eb8",
     "description": "Putting trauma-informed principles into everyday practice: what works and what gets in the way."},
    {"name": "Leadership", "colour": "330072",
     "description": "Leading trauma-informed organisations: culture, policy, supervision and staff wellbeing."},
    {"name": "Research and evaluation", "colour": "00a499",
     "description": "Evidence, evaluation methods and measuring what matters to people who use services."},
    {"name": "Webinars", "colour": "007f3b",
     "description": "Announcements, recordings and follow-up discussion from community webinars."},
    {"name": "Older people", "colour": "7c2855",
     "description": "Trauma-informed care with and for older people, at home, in hospital and in care homes."},
    {"name": "Race and historic trauma", "colour": "003087",
     "description": "Racial trauma, historic and intergenerational harm, and anti-racist practice."},
    {"name": "Children and young people", "colour": "ffb81c",
     "description": "Working with children, young people and families, including adverse childhood experiences."},
]  # fmt: skip


@dataclass
class Reply:
    author: str
    body: str
    reply_to: int | None = None  # the post number replied to
    quote: int | None = None  # the post number quoted (also replied to)
    quote_text: str = ""  # the part of it quoted
    content_note: str | None = None
    reactions: dict[str, list[str]] = field(default_factory=dict)  # kind -> who


@dataclass
class DemoTopic:
    category: str
    author: str
    kind: str
    title: str
    body: str
    hours_ago: int
    content_note: str | None = None
    pinned: bool = False
    reactions: dict[str, list[str]] = field(default_factory=dict)
    replies: list[Reply] = field(default_factory=list)


TOPICS: list[DemoTopic] = [
    DemoTopic(
        "Practice and implementation",
        "ada",
        "discussion",
        "Welcome to tica: start here",
        hours_ago=24 * 20,
        pinned=True,
        body=(
            "Welcome, and thank you for being here.\n\n"
            "tica is a community of action for trauma-informed care: NHS practitioners, care organisations and "
            "people with lived experience of trauma, learning from each other as equals.\n\n"
            "A few things that help this place feel safe:\n\n"
            "- **You choose what to share.** Nobody has to tell their story to take part.\n"
            "- **Content notes.** If a post talks about something that may be hard to read, add a content note. "
            "The post starts folded, so readers can choose whether and when to open it.\n"
            "- **Supportive reactions only.** Like, thank you, sending strength, insightful and well said.\n"
            "- **Look after yourself.** It is fine to step away. The *Get support* page lists people to talk to.\n\n"
            "Say hello below if you would like to: who you are, and what brought you here."
        ),
        reactions={"heart": ["sam", "priya", "jordan"], "like": ["mo"]},
        replies=[
            Reply(
                "sam",
                "Hello everyone. I'm Sam, an expert by experience. I've been involved in co-producing "
                "services for a few years. Glad there's a space where our voices sit alongside "
                "practitioners' rather than after them.",
                reactions={"heart": ["ada", "priya"]},
            ),
            Reply(
                "priya",
                "Hi all, I'm Priya, a clinical psychologist in a community mental health team. We're "
                "about a year into making our service more trauma-informed and I'm keen to learn from "
                "@sam and others about what actually makes a difference.",
                reply_to=2,
                reactions={"like": ["sam", "jordan"]},
            ),
            Reply(
                "jordan",
                "Jordan here, I manage an adult social care service. Mostly here to listen at first.",
                reactions={"hug": ["ada"]},
            ),
        ],
    ),
    DemoTopic(
        "Lived experience",
        "sam",
        "narrative",
        "What helped me feel safe in A&E",
        hours_ago=24 * 9,
        content_note="self-harm",
        body=(
            "I want to write about a night in A&E a few years ago, because it was the first time a service felt "
            "safe rather than frightening.\n\n"
            "I had been there several times before, and I had learned to expect impatience. This time the triage "
            "nurse sat down so we were at the same eye level. She asked what would help me feel more comfortable "
            "while I waited, and whether I'd prefer a quieter area. She told me what would happen next, and roughly "
            "how long it might take, and she came back when it took longer.\n\n"
            "None of that is complicated. But being given **choices** and **honest information** meant I stayed, "
            "when before I would have left.\n\n"
            "I'm sharing this because small things matter. If you work in urgent care: thank you, and please know "
            "that the way you speak to people is part of the treatment."
        ),
        reactions={"hug": ["priya", "jordan", "mo"], "heart": ["ada"]},
        replies=[
            Reply(
                "priya",
                "Thank you for trusting us with this, Sam. I'm going to share the bit about being told "
                "what happens next with our duty team. It's such a concrete thing to change.",
                quote=1,
                quote_text=(
                    "None of that is complicated. But being given **choices** and **honest information** "
                    "meant I stayed, when before I would have left."
                ),
                reactions={"like": ["sam"]},
            ),
            Reply(
                "mo",
                "Sending strength. Sitting at eye level is something we teach in our peer support "
                "training, and it's good to hear how much it can mean.",
                reactions={"heart": ["sam"]},
            ),
        ],
    ),
    DemoTopic(
        "Practice and implementation",
        "priya",
        "case_study",
        "Introducing trauma-informed supervision in a community mental health team",
        hours_ago=24 * 7,
        body=(
            "**Context.** A community mental health team of 24 staff, high caseloads, two years of vacancies.\n\n"
            "**What we changed.** We moved from caseload-focused supervision to monthly reflective supervision "
            "with a trauma-informed frame: what is happening for the person, what is happening for me, and what "
            "does the system make hard?\n\n"
            "**What we noticed after six months.**\n\n"
            "1. Staff named vicarious trauma more openly.\n"
            "2. Fewer complaints about feeling *done to* from the people we support.\n"
            "3. Protecting the time was the hardest part.\n\n"
            "| Measure | Before | After |\n|:--|--:|--:|\n| Staff who felt supported | 41% | 68% |\n"
            "| Sickness days per month | 31 | 22 |\n\n"
            "Happy to share our supervision template if it's useful."
        ),
        reactions={"lightbulb": ["jordan", "ada"], "clap": ["mo", "sam"]},
        replies=[
            Reply(
                "jordan",
                "Really useful, thank you. How did you protect the time when the waiting list grew?",
                reactions={"like": ["priya"]},
            ),
            Reply(
                "priya",
                "Honestly, by making it a standing item the service manager defended in every rota "
                "meeting. @jordan, I think leadership backing was the single biggest factor.",
                reply_to=2,
                reactions={"lightbulb": ["jordan"]},
            ),
            Reply(
                "sam",
                "From the other side of the table: it shows. Staff who have had space to reflect are "
                "less rushed with us.",
                reactions={"heart": ["priya", "mo"]},
            ),
        ],
    ),
    DemoTopic(
        "Practice and implementation",
        "priya",
        "blog",
        "Five small changes to our appointment letters",
        hours_ago=24 * 5,
        body=(
            "Our letters used to start with a warning about missed appointments. We rewrote them with people who "
            "use the service. The five changes:\n\n"
            "1. Start with who we are and why we are writing.\n"
            "2. Say what will happen at the appointment, and who will be there.\n"
            "3. Offer choices: phone, video or in person; someone with you if you'd like.\n"
            "4. Say how to change the time, without blame.\n"
            "5. End with where to get support before then.\n\n"
            "Did-not-attend rates fell from 19% to 12% in the first quarter."
        ),
        reactions={"lightbulb": ["ada", "jordan", "mo"], "like": ["sam"]},
        replies=[Reply("ada", "This would make a great webinar topic. Would you be up for presenting it?")],
    ),
    DemoTopic(
        "Research and evaluation",
        "jordan",
        "discussion",
        "How do we measure whether services feel safer?",
        hours_ago=24 * 4,
        body=(
            "We're asked to show impact, but most of our measures are about activity: contacts, waiting times, "
            "discharges. How are others measuring whether people *feel* safer and more in control?\n\n"
            "I've seen the Trauma-Informed Organisational Assessment mentioned. Has anyone used it?"
        ),
        reactions={"like": ["priya"]},
        replies=[
            Reply(
                "priya",
                "We co-designed three questions with our lived experience panel and ask them after "
                "every first appointment. Short and repeated beats long and annual.",
            ),
            Reply(
                "sam",
                "Please ask people what *safe* means to them before deciding how to measure it. For me "
                "it's about being believed and not having to repeat my story.",
                reply_to=1,
                reactions={"clap": ["jordan", "priya", "ada"]},
            ),
        ],
    ),
    DemoTopic(
        "Webinars",
        "ada",
        "blog",
        "Recording: trauma-informed approaches in primary care",
        hours_ago=24 * 3,
        body=(
            "Thank you to everyone who joined last week's webinar, and to our speakers from two GP practices.\n\n"
            "The recording and slides are now available to members. Key points:\n\n"
            "- Reception teams are often the first contact, and the most overlooked in training.\n"
            "- Asking *what matters to you?* before *what is wrong?* changes the conversation.\n\n"
            "Questions we did not have time for are welcome below."
        ),
        reactions={"like": ["jordan", "priya"]},
    ),
    DemoTopic(
        "Older people",
        "jordan",
        "discussion",
        "Trauma that was never talked about: supporting older people",
        hours_ago=60,
        body=(
            "In our care homes we sometimes see distress that only makes sense once we learn about someone's "
            "earlier life: evacuation as a child, institutional care, loss that was never spoken about.\n\n"
            "How do others gently learn about people's histories without making them retell painful events?"
        ),
        reactions={"heart": ["mo"]},
        replies=[
            Reply(
                "mo",
                "Life story work led by the person, at their pace, and with family only if they want that. "
                "And we start from what brings comfort, rather than what went wrong.",
                reactions={"lightbulb": ["jordan"]},
            ),
        ],
    ),
    DemoTopic(
        "Race and historic trauma",
        "priya",
        "discussion",
        "Naming racial trauma in our team conversations",
        hours_ago=40,
        content_note="racism",
        body=(
            "Several people we support have described experiences of racism in services, including ours. Our team "
            "found it hard to talk about without becoming defensive.\n\n"
            "What has helped other teams create space to name racial trauma, and to act on what they hear?"
        ),
        reactions={"heart": ["sam", "ada"]},
        replies=[
            Reply(
                "ada",
                "We brought in an external facilitator for the first sessions, so that staff of colour "
                "were not expected to lead the learning. That made a real difference.",
                reactions={"like": ["priya"]},
            ),
        ],
    ),
    DemoTopic(
        "Children and young people",
        "mo",
        "discussion",
        "Moving from children's to adult services",
        hours_ago=30,
        body=(
            "Transitions at 18 are a point where many young people with trauma histories disengage. What have "
            "services done to make the move feel less like a cliff edge?"
        ),
        replies=[
            Reply(
                "jordan",
                "We now offer a joint meeting with both workers six months before the move, with the "
                "young person choosing where it happens.",
                reactions={"clap": ["mo"]},
            ),
        ],
    ),
    DemoTopic(
        "Leadership",
        "ada",
        "blog",
        "Leading through burnout: looking after the people who care",
        hours_ago=20,
        body=(
            "Trauma-informed care includes staff. Teams that are exhausted cannot offer safety to others.\n\n"
            "Three things I ask leaders to try this month: protect breaks as seriously as appointments, ask "
            "*how are you, really?* in one-to-ones, and make it normal to talk about vicarious trauma."
        ),
        reactions={"clap": ["priya", "jordan"], "heart": ["mo"]},
    ),
    DemoTopic(
        "Leadership",
        "sam",
        "case_study",
        "Co-producing a trauma-informed policy with experts by experience",
        hours_ago=12,
        body=(
            "Last year our trust rewrote its restrictive practice policy with a group of six experts by experience, "
            "including me. What made it real co-production rather than consultation:\n\n"
            "- We were involved from the first draft, not asked to comment on the last one.\n"
            "- We were paid for our time, on the same day as everyone else.\n"
            "- We could step back from sessions without having to explain why.\n\n"
            "The policy now opens with what people told us restraint felt like. That changed the conversation."
        ),
        reactions={"clap": ["ada", "priya", "jordan"], "lightbulb": ["mo"]},
        replies=[
            Reply(
                "jordan",
                "Being able to step back without explaining is such an important detail. Thank you @sam.",
                reactions={"heart": ["sam"]},
            ),
        ],
    ),
    DemoTopic(
        "Leadership",
        "jordan",
        "discussion",
        "Paying experts by experience fairly",
        hours_ago=5,
        body=(
            "We want to pay people for their time and expertise, but worry about the effect on benefits. How have "
            "other organisations handled this in a way that keeps people safe?"
        ),
        replies=[
            Reply(
                "sam",
                "Offer a choice of payment, vouchers or volunteering expenses, and fund independent "
                "benefits advice so people can decide what is right for them.",
            ),
        ],
    ),
]


def _session(user_id: int, username: str, role: str) -> Session:
    roles = ["member"] if role == "member" else ["member", role]
    return Session(id=f"demo-{username}", user_id=user_id, username=username, roles=roles, group_ids=[], csrf="")


async def _create_people(conn: asyncpg.Connection) -> dict[str, Session]:
    hashes = await asyncio.gather(*(passwords.hash_password(password) for _, password, _ in DEMO_LOGINS))
    people: dict[str, Session] = {}
    for (username, _, role), password_hash in zip(DEMO_LOGINS, hashes, strict=True):
        display_name, bio = _PEOPLE[username]
        user = await accounts.create_account(
            conn,
            username=username,
            email=f"{username}@demo.tica.invalid",
            password_hash=password_hash,
            display_name=display_name,
            roles=_session(0, username, role).roles,
            verified=True,
        )
        await conn.execute("UPDATE forum.users SET bio = $2 WHERE id = $1", user.id, bio)
        people[username] = _session(user.id, username, role)
    return people


async def _react(
    conn: asyncpg.Connection, people: dict[str, Session], post_id: int, reactions: dict[str, list[str]]
) -> None:
    for kind, names in reactions.items():
        for name in names:
            await writings.react(conn, people[name], POST, post_id, kind)


async def _write_topic(
    conn: asyncpg.Connection, people: dict[str, Session], category_ids: dict[str, int], demo: DemoTopic
) -> int:
    author = people[demo.author]
    topic, (first, _) = await posts.start_topic(
        conn,
        author,
        {
            "category_id": category_ids[demo.category],
            "title": demo.title,
            "body": demo.body,
            "kind": demo.kind,
            "content_note": demo.content_note,
        },
    )
    await _react(conn, people, first["id"], demo.reactions)
    by_number = {1: first}
    for reply in demo.replies:
        body = reply.body
        target = reply.quote or reply.reply_to
        if reply.quote is not None:
            quoted = by_number[reply.quote]
            opener = f'[quote="{quoted["username"]}, post:{quoted["id"]}, topic:{topic["id"]}"]'
            body = f"{opener}\n{reply.quote_text}\n[/quote]\n\n{body}"
        post, _ = await posts.reply(
            conn,
            people[reply.author],
            topic["id"],
            {
                "body": body,
                "reply_to": by_number[target]["id"] if target else None,
                "content_note": reply.content_note,
            },
        )
        by_number[post["post_number"]] = post
        await _react(conn, people, post["id"], reply.reactions)
    if demo.pinned:
        await conn.execute("UPDATE forum.topics SET pinned = true WHERE id = $1", topic["id"])
    return int(topic["id"])


# --- the library ---------------------------------------------------------------------------------------


def tiny_pdf(title: str, lines: Sequence[str]) -> bytes:
    """A small valid PDF (one page of Helvetica text), made without any library."""

    def esc(text: str) -> str:
        return (
            text.encode("latin-1", "replace")
            .decode("latin-1")
            .replace("\\", "\\\\")
            .replace("(", "\\(")
            .replace(")", "\\)")
        )

    text_ops = ["BT", "/F1 18 Tf", "72 740 Td", f"({esc(title)}) Tj", "/F1 11 Tf"]
    for line in lines:
        text_ops += ["0 -20 Td", f"({esc(line)}) Tj"]
    stream = "\n".join([*text_ops, "ET"]).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@dataclass(frozen=True)
class DemoDocument:
    folder: str
    title: str
    filename: str
    description: str
    content: bytes


DEMO_FOLDERS = (
    ("Frameworks and guidance", "Frameworks, principles and practice guidance for trauma-informed care.", None),
    ("Evaluation reports", "What we learned: evaluations of the community of action and its projects.", None),
    ("Tools and templates", "Practical tools: checklists, conversation guides and templates.", None),
    ("Reflective practice", "Prompts and exercises for reflective practice sessions.", "Tools and templates"),
)


def demo_documents() -> list[DemoDocument]:
    """The demo library's documents: small PDFs and text files made in code."""
    return [
        DemoDocument(
            "Frameworks and guidance",
            "The five principles of trauma-informed care",
            "five-principles.pdf",
            "A one-page summary: safety, trustworthiness, choice, collaboration and empowerment.",
            tiny_pdf(
                "The five principles of trauma-informed care",
                [
                    "Safety: physical and emotional safety for everyone.",
                    "Trustworthiness: clear expectations, consistent boundaries.",
                    "Choice: people have a say in what happens to them.",
                    "Collaboration: doing with, not doing to.",
                    "Empowerment: building on strengths.",
                ],
            ),
        ),
        DemoDocument(
            "Evaluation reports",
            "Year one evaluation: summary",
            "year-one-evaluation.pdf",
            "The headline findings of our first year, in plain language.",
            tiny_pdf(
                "Year one evaluation: summary",
                [
                    "Members from 42 organisations took part.",
                    "Most said the community helped them change one thing in their practice.",
                ],
            ),
        ),
        DemoDocument(
            "Tools and templates",
            "Checklist for a trauma-informed first appointment",
            "first-appointment.txt",
            "A short checklist to adapt for your service.",
            b"Checklist for a trauma-informed first appointment\n\n"
            b"- Explain who you are and what will happen.\n- Offer choices: where to sit, breaks, who is there.\n"
            b"- Ask what helps the person feel safe.\n- Agree how you will end and what happens next.\n",
        ),
        DemoDocument(
            "Reflective practice",
            "Reflective practice prompts",
            "reflective-prompts.txt",
            "Questions to start a reflective practice session.",
            b"Reflective practice prompts\n\n1. What went well this week, and why?\n"
            b"2. When did you notice your own stress response?\n3. What would you like to try next time?\n",
        ),
    ]


async def seed_library(conn: asyncpg.Connection, settings: Settings, *, uploader: Session) -> None:
    """Demo folders and a few small documents, uploaded by `uploader` (an admin's session), in the caller's
    transaction, through the library's own checks. Files go to the configured storage.
    """
    folder_ids: dict[str, int] = {}
    for position, (name, description, parent) in enumerate(DEMO_FOLDERS):
        data = {
            "name": name,
            "description": description,
            "position": position,
            "parent_id": folder_ids.get(parent or ""),
        }
        folder_ids[name] = (await folders.create_folder(conn, uploader, data))["id"]
    scratch = documents.tmp_dir(settings)
    scratch.mkdir(parents=True, exist_ok=True)
    for demo in demo_documents():
        fields = {"folder_id": str(folder_ids[demo.folder]), "title": demo.title, "description": demo.description}
        path = scratch / f"demo-{secrets.token_hex(8)}"
        path.write_bytes(demo.content)
        try:
            sha256 = hashlib.sha256(demo.content).hexdigest()
            upload = Upload(fields, path, demo.filename, len(demo.content), sha256)
            folder_id, checked = await documents.check_new_document(conn, uploader, upload)
            key = await documents.store(storage_for(settings), upload, checked.filetype)
            await documents.insert_document(conn, uploader, folder_id, documents.Stored(checked, upload, key))
        finally:
            path.unlink(missing_ok=True)


# Spread the activity over the past weeks, as a community's would be (everything above
# happened in one transaction, at one instant). Replies follow at a few hours' interval.
BACKDATE_SQL = """
WITH spread AS (
    SELECT p.id, now() - make_interval(hours => $2) + (p.post_number - 1) * interval '3 hours 17 minutes' AS at
    FROM forum.posts p WHERE p.topic_id = $1
)
UPDATE forum.posts p SET created_at = s.at, updated_at = s.at FROM spread s WHERE p.id = s.id
"""
BACKDATE_REVISIONS_SQL = """
UPDATE forum.post_revisions r SET created_at = p.created_at + interval '2 hours'
FROM forum.posts p WHERE r.post_id = p.id AND p.topic_id = $1
"""
BACKDATE_TOPIC_SQL = """
UPDATE forum.topics t
SET created_at = (SELECT min(created_at) FROM forum.posts WHERE topic_id = t.id),
    last_posted_at = (SELECT max(created_at) FROM forum.posts WHERE topic_id = t.id)
WHERE t.id = $1
"""


async def _edit_example(conn: asyncpg.Connection, people: dict[str, Session], topic_id: int) -> None:
    """One edited post, so the revisions page has something to show."""
    post_id = await conn.fetchval("SELECT id FROM forum.posts WHERE topic_id = $1 AND post_number = 1", topic_id)
    raw = await conn.fetchval("SELECT raw FROM forum.posts WHERE id = $1", post_id)
    await revisions.edit_post(
        conn,
        people["sam"],
        post_id,
        {
            "body": raw
            + "\n\nIf reading this brought things up for you, the *Get support* page lists people to talk to.",
            "edit_reason": "added a pointer to support",
        },
    )


async def seed_demo(conn: asyncpg.Connection, settings: Settings) -> None:
    """Write the demo community (discussions and the document library) in the caller's transaction."""
    people = await _create_people(conn)
    category_ids: dict[str, int] = {}
    for position, spec in enumerate(CATEGORIES):
        row = await categories.create_category(conn, people["ada"], {**spec, "position": position})
        category_ids[spec["name"]] = row["id"]
    for demo in TOPICS:
        topic_id = await _write_topic(conn, people, category_ids, demo)
        if demo.title == "What helped me feel safe in A&E":
            await _edit_example(conn, people, topic_id)
        await conn.execute(BACKDATE_SQL, topic_id, demo.hours_ago)
        await conn.execute(BACKDATE_REVISIONS_SQL, topic_id)
        await conn.execute(BACKDATE_TOPIC_SQL, topic_id)
    await seed_library(conn, settings, uploader=people["ada"])


async def seed(settings: Settings, *, force: bool = False) -> bool:
    """Seed the demo community once; returns False when it was already seeded.

    The marker is always respected, `force` (from `tica seed-demo`) included: seeding twice
    never duplicates anything.
    """
    assert settings.database_url
    conn = await db.connect(settings.database_url)
    try:
        async with conn.transaction():
            # A second replica waits here for the first one's transaction, then finds the marker.
            marked = await conn.fetchval(
                "INSERT INTO forum.meta (key, value) VALUES ($1, 'true'::jsonb) ON CONFLICT (key) DO NOTHING "
                "RETURNING key",
                SEEDED_KEY,
            )
            if marked is None:
                return False
            await seed_demo(conn, settings)
        return True
    finally:
        await conn.close()
