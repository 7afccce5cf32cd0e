"""The pages of private messages: inbox, conversation, new message, who may message me."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
