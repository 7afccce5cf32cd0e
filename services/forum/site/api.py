"""JSON API (being built for issue 14)."""

from shared.api import ApiRouter

api = ApiRouter(tag="site")
