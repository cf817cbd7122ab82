"""The first-party visitor cookie, shared by every tracking endpoint.

The cookie ``mapp_vid`` holds a visitor's uuid signed with ``django.core.signing`` (salt
``mapp.visitor``), so a browser cannot claim another visitor's history by editing it. A missing,
garbled, forged or unknown cookie reads as "no visitor": the endpoints then create a fresh one;
they never fail because of a cookie.
"""

from __future__ import annotations

import functools
import ipaddress
import uuid

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponseBase

from mapp.services import client_ip
from tracking.ingest import visitor_for_cookie
from tracking.models import Visitor

COOKIE_NAME = "mapp_vid"
COOKIE_SALT = "mapp.visitor"
COOKIE_MAX_AGE = 2 * 365 * 24 * 60 * 60  # two years, in seconds
# A real cookie value is ≈ 90 characters; anything far longer is garbage and is not unsigned.
MAX_COOKIE_LENGTH = 200


def visitor_cookie_value(visitor: Visitor) -> str:
    return signing.dumps(str(visitor.uuid), salt=COOKIE_SALT)


def set_visitor_cookie_uuid(
    response: HttpResponseBase,
    visitor_uuid: uuid.UUID,
    *,
    secure: bool,
    signed_value: str | None = None,
) -> None:
    """Attach (or refresh) the cookie for a uuid whose visitor row may not exist yet.

    ``signed_value``: the request's own cookie, already verified to hold ``visitor_uuid``.
    """
    response.set_cookie(
        COOKIE_NAME,
        signed_value or signing.dumps(str(visitor_uuid), salt=COOKIE_SALT),
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=secure,
    )


def visitor_uuid_from_cookie(value: str | None) -> uuid.UUID | None:
    """The uuid a cookie value vouches for, or None for anything unsigned, forged or malformed."""
    if not value or len(value) > MAX_COOKIE_LENGTH:
        return None
    return _verified_cookie(value, settings.SECRET_KEY)


# A browser sends the same cookie with every hit: its verdict is kept (per process, per secret
# key) instead of checking the signature again on every page view of the tracking hot path.
@functools.lru_cache(maxsize=16384)
def _verified_cookie(value: str, _secret_key: str) -> uuid.UUID | None:
    try:
        loaded = signing.loads(value, salt=COOKIE_SALT)
    except signing.BadSignature:
        return None
    # json decoding of a validly signed value can only fail if the secret leaked; still no 500.
    if not isinstance(loaded, str):
        return None
    try:
        return uuid.UUID(loaded)
    except ValueError:
        return None


def visitor_uuid_from_request(request: HttpRequest) -> uuid.UUID | None:
    """The signed visitor uuid of the request's cookie, without touching the database."""
    return visitor_uuid_from_cookie(request.COOKIES.get(COOKIE_NAME))


def read_visitor(request: HttpRequest) -> Visitor | None:
    """The visitor the request's cookie vouches for, if it still exists (one query at most)."""
    visitor_uuid = visitor_uuid_from_request(request)
    if visitor_uuid is None:
        return None
    return Visitor.objects.filter(uuid=visitor_uuid).first()


def set_visitor_cookie(response: HttpResponseBase, visitor: Visitor, *, secure: bool) -> None:
    """Attach (or refresh) the visitor cookie: HttpOnly, SameSite=Lax, two years."""
    set_visitor_cookie_uuid(response, visitor.uuid, secure=secure)


def request_ip(request: HttpRequest) -> str | None:
    """The client address if it parses as one (a forwarded header may carry anything)."""
    address = client_ip(request)
    if not address:
        return None
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def get_or_create_visitor(request: HttpRequest) -> tuple[Visitor, bool]:
    """The request's visitor (made with the cookie's uuid if its hits wait in the queue), or a
    new one (``created`` True: the caller sets the cookie)."""
    return visitor_for_cookie(
        visitor_uuid=visitor_uuid_from_request(request),
        user_agent=request.headers.get("User-Agent", ""),
        ip=request_ip(request),
    )
