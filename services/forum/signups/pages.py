"""Pages (being built for issue 14)."""

from shared.pages import Pages

pages = Pages()

routes = pages.routes
