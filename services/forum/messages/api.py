"""The JSON API of private messages: conversations, messages, who may message a member, blocks."""

from __future__ import annotations

from shared.api import ApiRouter

api = ApiRouter(tag="messages")
