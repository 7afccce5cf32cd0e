"""The demo community's people and conversations: who they are, the categories, and the topics
with their replies and reactions (the words only; discussions.py writes them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# (username, password, role): printed by `tica run` so people can log in and look around.
DEMO_LOGINS: list[tuple[str, str, str]] = [
    ("ada", "demo-password-ada", "admin"),
    ("mo", "demo-password-mo", "moderator"),
    ("sam", "demo-password-sam", "member"),
    ("priya", "demo-password-priya", "member"),
    ("jordan", "demo-password-jordan", "member"),
]
# Who they are, and how many days ago they joined: months ago, so the demo's people are
# established members (screening.is_new_member) and not held to a newcomer's posting limits.
PEOPLE: dict[str, tuple[str, str, int]] = {
    "ada": ("Ada Okafor", "Community organiser for tica. Here to help the community run smoothly.", 420),
    "mo": ("Mo Hughes", "Moderator. Peer support worker; I look after the review queue.", 390),
    "sam": ("Sam Taylor", "Expert by experience. I co-produce services and write about recovery.", 330),
    "priya": ("Priya Shah", "Clinical psychologist in an NHS community mental health team.", 270),
    "jordan": ("Jordan Ellis", "Service manager, interested in evaluation and staff wellbeing.", 200),
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
