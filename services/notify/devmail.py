"""/dev/mail: the mail `tica run` caught because no SMTP_URL is set, so a newcomer
can read the verification mail. Off unless the run enabled it (settings.dev_mail).
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response

from services.notify.mail import dev_mailbox_key
from shared.api import path_int
from shared.pages import Pages, render
from shared.web import ApiError, runtime

pages = Pages()

_URL = re.compile(r"https?://[^\s<>\"']+")


def _enabled(request: Request) -> None:
    if not runtime(request).settings.dev_mail:
        raise ApiError(404, "not_found", "Not found.")


async def _mails(request: Request) -> list[dict[str, Any]]:
    rt = runtime(request)
    raw: list[bytes] = await rt.redis.lrange(dev_mailbox_key(rt.settings), 0, -1)  # type: ignore[misc]
    mails = [json.loads(item) for item in raw]
    for index, mail in enumerate(mails):
        mail["index"] = index
        mail["when"] = datetime.fromtimestamp(mail["at"], UTC)
    return mails


def linked_text(text: str) -> Markup:
    """Plain mail text, escaped, with its links made clickable."""
    escaped = html.escape(text or "")
    return Markup(_URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped))  # noqa: S704


@pages.get("/dev/mail")
async def mailbox(request: Request) -> Response:
    """The caught mail, newest first."""
    _enabled(request)
    return await render(request, "devmail/list.html", {"mails": await _mails(request)})


@pages.get("/dev/mail/{index}")
async def mail(request: Request) -> Response:
    """One caught mail: headers and its text part, links clickable."""
    _enabled(request)
    index = path_int(request, "index") - 1
    mails = await _mails(request)
    if not 0 <= index < len(mails):
        raise ApiError(404, "not_found", "That mail is not in the mailbox any more.")
    return await render(request, "devmail/mail.html", {"mail": mails[index], "body": linked_text(mails[index]["text"])})


routes = pages.routes
