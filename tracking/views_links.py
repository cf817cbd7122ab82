"""Public link endpoints: email open pixel, email click redirect, custom redirects, tracked files.

All four are hostile-input safe: a tampered or unknown token or slug is refused before anything
is written (404 without a body for the pixel, a plain 400 page for a click, 404 for redirects
and files); a redirect goes only to the URL the signature or the stored row vouches for (query
parameters such as ``?next=`` are ignored); a flood from one address is answered 429 (the pixel
still answers its GIF) and stores nothing. ``HEAD`` requests — link checkers — are answered but
not recorded.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from mapp.access import public
from tracking import bots, ingest, links
from tracking.fastpath import fast_path
from tracking.hotpath import client_address, new_visitor_uuid, set_visitor_cookie_quick
from tracking.models import CustomRedirect, TrackedFile, Visitor
from tracking.visitor_cookie import (
    get_or_create_visitor,
    request_ip,
    set_visitor_cookie,
    visitor_uuid_from_request,
)

logger = logging.getLogger(__name__)
TRANSPARENT_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
NO_CACHE = "no-store, no-cache, must-revalidate, max-age=0, private"
RETRY_AFTER_SECONDS = 10


def _user_agent(request: HttpRequest) -> str:
    return str(request.META.get("HTTP_USER_AGENT", ""))[:500]


def _no_cache(response: HttpResponseBase) -> HttpResponseBase:
    response["Cache-Control"] = NO_CACHE
    response["Pragma"] = "no-cache"
    response["Expires"] = "0"
    return response


def _pixel() -> HttpResponseBase:
    response = HttpResponse(TRANSPARENT_GIF, content_type="image/gif")
    # Mail clients and webmail show the image from other origins.
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return _no_cache(response)


def _message_page(request: HttpRequest, message: str, *, status: int) -> HttpResponse:
    response = render(
        request, "tracking/redirects_message.html", {"message": message}, status=status
    )
    _no_cache(response)
    return response


def _too_many(request: HttpRequest) -> HttpResponse:
    response = _message_page(
        request, _("Too many requests. Please try again in a moment."), status=429
    )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _redirect(url: str) -> HttpResponseBase:
    # Checked again at the last step: whatever produced ``url``, only http(s) leaves here.
    if not links.is_safe_destination(url):
        raise ValueError("refusing to redirect to an unsafe URL")
    response = HttpResponseRedirect(url)
    # Each click must reach us again to be counted; the token never leaks in a Referer header.
    response["Referrer-Policy"] = "no-referrer"
    return _no_cache(response)


@fast_path(200, 404)
@public
@csrf_exempt
@require_safe
def open_pixel(request: HttpRequest, token: str) -> HttpResponseBase:
    """``/t/o/<token>.gif``: queue the open, answer a transparent 1×1 GIF that is never cached.

    The GIF is answered even when the open cannot be recorded: a mail client shows no error.
    """
    parsed = links.open_token_load(token)
    if parsed is None:
        return _no_cache(HttpResponse(status=404))
    if request.method == "GET":
        address = client_address(request)
        hit = ingest.open_hit(
            prospect_id=parsed.prospect_id,
            email_id=parsed.email_id,
            sent_at=parsed.sent_at,
            user_agent=_user_agent(request),
            ip=address,
        )
        try:
            ingest.hit_accept(hit, client_address=address, scope="email_open")
        except DatabaseError:
            logger.exception("an email open could not be queued nor stored")
    return _pixel()


@fast_path(302)
@public
@csrf_exempt
@require_safe
def click(request: HttpRequest, token: str) -> HttpResponseBase:
    """``/t/c/<token>``: queue the click, go to the signed URL.

    A person's click identifies their browser as the recipient (tracking.ingest); the cookie
    is set here, with a fresh uuid for a browser that has none.
    """
    parsed = links.click_token_load(token)
    if parsed is None:
        return _message_page(request, _("This link is invalid or has been altered."), status=400)
    if request.method != "GET":
        return _redirect(parsed.url)
    address = client_address(request)
    cookie_uuid = visitor_uuid_from_request(request)
    visitor_uuid = cookie_uuid or new_visitor_uuid()
    hit = ingest.click_hit(
        prospect_id=parsed.prospect_id,
        email_id=parsed.email_id,
        url=parsed.url,
        link_id=parsed.link_id,
        sent_at=parsed.sent_at,
        visitor_uuid=visitor_uuid,
        user_agent=_user_agent(request),
        ip=address,
    )
    try:
        accepted = ingest.hit_accept(
            hit,
            client_address=address,
            scope="email_click",
            burst_key=ingest.key(f"clicks:{parsed.prospect_id}:{parsed.email_id}"),
            burst_seconds=bots.CLICK_BURST_WINDOW_SECONDS,
        )
    except DatabaseError:
        # Neither queued nor stored: the reader still gets where the link goes.
        logger.exception("an email click could not be queued nor stored")
        return _redirect(parsed.url)
    if accepted.admission is ingest.Admission.LIMITED:
        return _too_many(request)
    response = _redirect(parsed.url)
    if cookie_uuid is None:
        set_visitor_cookie_quick(response, visitor_uuid, secure=request.is_secure())
    return response


def _human_visitor(request: HttpRequest, bot_kind: str | None) -> Visitor | None:
    """A bot's hit is attributed to nobody; a person's to their (possibly new) visitor."""
    if bot_kind is not None:
        return None
    visitor, _created = get_or_create_visitor(request)
    return visitor


@public
@csrf_exempt
@require_safe
def custom_redirect(request: HttpRequest, slug: str) -> HttpResponseBase:
    """``/r/<slug>``: count the click (people and bots apart) and go to the stored destination."""
    redirect_row = (
        CustomRedirect.objects.filter(slug=slug, is_active=True)
        .only("pk", "slug", "name", "destination_url", "campaign_name")
        .first()
    )
    if redirect_row is None or not links.is_safe_destination(redirect_row.destination_url):
        return _message_page(request, _("This link does not exist."), status=404)
    if request.method != "GET":
        return _redirect(redirect_row.destination_url)
    if links.is_rate_limited(client_address=request_ip(request), scope="redirect"):
        return _too_many(request)
    bot_kind = bots.classify_user_agent(_user_agent(request))
    visitor = _human_visitor(request, bot_kind)
    links.custom_redirect_hit(custom_redirect=redirect_row, visitor=visitor, bot_kind=bot_kind)
    response = _redirect(redirect_row.destination_url)
    if visitor is not None:
        set_visitor_cookie(response, visitor, secure=request.is_secure())
    return response


@public
@csrf_exempt
@require_safe
def file_download(request: HttpRequest, slug: str, filename: str) -> HttpResponseBase:
    """``/f/<slug>/<name>``: the stored file, in a way that cannot run script on our origin.

    Raster images are shown inline with their own type; everything else (HTML, SVG, PDF…) is an
    ``application/octet-stream`` attachment. Every answer says ``nosniff`` and a sandboxing CSP.
    The name in the URL is cosmetic: the slug alone chooses the file.
    """
    tracked = TrackedFile.objects.filter(slug=slug).first()
    if tracked is None:
        return _message_page(request, _("This file does not exist."), status=404)
    try:
        handle = tracked.file.storage.open(tracked.file.name, "rb")
    except FileNotFoundError:
        return _message_page(request, _("This file does not exist."), status=404)
    inline = links.is_inline_image(tracked.content_type)
    visitor: Visitor | None = None
    if request.method == "GET" and not inline:
        if links.is_rate_limited(client_address=request_ip(request), scope="file"):
            handle.close()
            return _too_many(request)
        bot_kind = bots.classify_user_agent(_user_agent(request))
        visitor = _human_visitor(request, bot_kind)
        links.tracked_file_hit(tracked_file=tracked, visitor=visitor, bot_kind=bot_kind)
    response = FileResponse(
        handle,
        as_attachment=not inline,
        filename=links.tracked_file_download_name(tracked),
        content_type=tracked.content_type if inline else links.DOWNLOAD_CONTENT_TYPE,
    )
    for header, value in links.FILE_SECURITY_HEADERS.items():
        response[header] = value
    response["Cache-Control"] = "private, no-cache"
    if visitor is not None:
        set_visitor_cookie(response, visitor, secure=request.is_secure())
    return response
