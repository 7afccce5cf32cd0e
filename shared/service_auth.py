"""Service-to-service authentication: how one tica service proves to another that it is
part of the same installation (for example search pulling the forum's export API).

The caller sends `Authorization: Service <token>`, where the token is an HMAC-SHA256 of
a fixed purpose string keyed with the installation's TICA_SECRET_KEY. Every process of
one installation can make it, nobody without the secret key can, and it is never shown
to people: it is not a personal API token and no page or endpoint hands it out.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from shared.settings import Settings
from shared.web import ApiError

SCHEME = "Service"
PURPOSE = b"tica service-to-service v1"


def service_token(settings: Settings) -> str:
    """The token this installation's services present to each other."""
    return hmac.new(settings.key, PURPOSE, hashlib.sha256).hexdigest()


def service_headers(settings: Settings) -> dict[str, str]:
    """Headers for an HTTP request from one service to another."""
    return {"Authorization": f"{SCHEME} {service_token(settings)}"}


def is_service_request(request: Request, settings: Settings) -> bool:
    """Whether the request carries this installation's service token (compared in constant time)."""
    scheme, _, sent = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != SCHEME.lower() or not settings.secret_key:
        return False
    return hmac.compare_digest(sent.strip().encode(), service_token(settings).encode())


def require_service(request: Request, settings: Settings) -> None:
    """401 unless the request comes from another tica service of this installation."""
    if not is_service_request(request, settings):
        raise ApiError(
            401,
            "service_auth_required",
            "This endpoint is only for tica's own services.",
            headers={"WWW-Authenticate": SCHEME},
        )
