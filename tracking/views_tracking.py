"""Public tracking endpoints under /t/: the script, its settings, the page-view beacon, identify.

The site pastes (Settings → Tracking shows it with the account's tracker domain)::

    <script>window.mappq=window.mappq||[];function mapp(){mappq.push(arguments)}</script>
    <script async src="https://TRACKER/t/mapp.js" data-mapp-tracker="https://TRACKER"></script>

The script (``static/tracking/mapp.js``) first reads ``/t/config.json`` (consent mode and
Do-Not-Track; no cookies; cached a minute), then sends this page's view unless consent is
required and not given yet, or Do-Not-Track is honoured and set. If ``config.json`` cannot be
read it assumes the strictest settings. Queued commands then run in order: ``mapp('consent')``
(sends the held-back page view), ``mapp('identify', token)``, ``mapp('pageview')``.

Transport: beacons are image requests (``new Image().src = "/t/pv?…"``), not ``fetch``, sent
one after another. The tracker host is the customer's own sub-domain CNAME'd to mapp, i.e. the
same site as their pages, so the browser sends and stores the SameSite=Lax ``mapp_vid`` cookie
on these requests without any CORS handshake (no ``Access-Control-Allow-Credentials``, no origin
echo). Only the two documents the script reads — itself and ``config.json`` — carry
``Access-Control-Allow-Origin: *``; they never depend on cookies.

Beacon parameters: ``url``, ``title``, ``ref`` (referrer), ``pvid`` (random page-view id; a
replay is stored once), ``consent=1``, ``dnt=1``; UTM values come from ``url``. The server
checks consent and Do-Not-Track again (the ``dnt`` flag or the ``DNT: 1`` header).

Every answer is fast and quiet: a recorded page view gets a 1×1 GIF (200); anything refused
(malformed, not http(s), flood, no consent, Do-Not-Track) gets an empty 204 and stores nothing.
"""

from __future__ import annotations

import json

from django.contrib.staticfiles import finders
from django.core.handlers.wsgi import get_bytes_from_wsgi
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_safe

from mapp.access import public
from prospects.models import Prospect
from tracking import beacon, ingest
from tracking.fastpath import fast_path
from tracking.hotpath import client_address, new_visitor_uuid, set_visitor_cookie_quick
from tracking.identity import IdentifyTokenError, prospect_id_from_identify_token
from tracking.services import visitor_identify
from tracking.visitor_cookie import (
    COOKIE_NAME,
    request_ip,
    set_visitor_cookie,
    visitor_uuid_from_request,
)

SCRIPT_PATH = "tracking/mapp.js"
SCRIPT_MAX_AGE_SECONDS = 60 * 60
# The script re-reads the account's consent / Do-Not-Track options at most this late.
CONFIG_MAX_AGE_SECONDS = 60
TRANSPARENT_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def _quiet() -> HttpResponse:
    response = HttpResponse(status=204)
    response["Cache-Control"] = "no-store"
    return response


def _pixel() -> HttpResponse:
    response = HttpResponse(TRANSPARENT_GIF, content_type="image/gif")
    response["Cache-Control"] = "no-store"
    # Pages served with Cross-Origin-Embedder-Policy may still load the beacon image.
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


def _query_parameters(request: HttpRequest) -> dict[str, str] | None:
    return beacon.parse_query_string(get_bytes_from_wsgi(request.META, "QUERY_STRING", ""))


def _header_do_not_track(request: HttpRequest) -> bool:
    # META, not request.headers: building the headers mapping costs more than this whole check.
    return request.META.get("HTTP_DNT", "") == "1"


@public
@require_safe
def script(request: HttpRequest) -> HttpResponse:
    """The tracking script at a stable public URL (``/t/mapp.js``), cacheable for an hour."""
    path = finders.find(SCRIPT_PATH)
    if not path or not isinstance(path, str):
        raise Http404
    with open(path, "rb") as script_file:
        content = script_file.read()
    response = HttpResponse(content, content_type="application/javascript; charset=utf-8")
    response["Cache-Control"] = f"public, max-age={SCRIPT_MAX_AGE_SECONDS}"
    response["Access-Control-Allow-Origin"] = "*"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


@public
@require_safe
def config(request: HttpRequest) -> HttpResponse:
    """What the script must know before sending anything: consent mode and Do-Not-Track."""
    tracking_settings = beacon.current_tracking_settings()
    body = {
        "require_consent": tracking_settings.require_consent,
        "honour_do_not_track": tracking_settings.honour_do_not_track,
    }
    response = HttpResponse(json.dumps(body), content_type="application/json")
    response["Cache-Control"] = f"public, max-age={CONFIG_MAX_AGE_SECONDS}"
    response["Access-Control-Allow-Origin"] = "*"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


def _service_unavailable() -> HttpResponse:
    response = HttpResponse(
        _("Tracking is unavailable for a moment. Please try again."),
        status=503,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = "10"
    return response


@fast_path(200, 204, 503)
@public
@csrf_exempt
@require_GET
def page_view(request: HttpRequest) -> HttpResponse:
    """The page-view beacon: a GIF when queued (or already queued), a quiet 204 otherwise.

    The visitor's uuid is the cookie's, or a fresh one set on this answer: the drain creates
    the visitor with it (tracking.ingest).
    """
    parameters = _query_parameters(request)
    parsed = beacon.parse_page_view(parameters) if parameters is not None else None
    if parsed is None:
        return _quiet()
    tracking_settings = beacon.current_tracking_settings()
    if beacon.is_refused_by_privacy(
        tracking_settings=tracking_settings,
        has_consent=parsed.has_consent,
        do_not_track=parsed.do_not_track or _header_do_not_track(request),
    ):
        return _quiet()
    address = client_address(request)
    cookie_uuid = visitor_uuid_from_request(request)
    visitor_uuid = cookie_uuid or new_visitor_uuid()
    hit = ingest.page_view_hit(
        visitor_uuid=visitor_uuid,
        url=parsed.url,
        title=parsed.title,
        referrer=parsed.referrer,
        utm=parsed.utm,
        user_agent=beacon.clean_text(
            request.META.get("HTTP_USER_AGENT", ""), ingest.MAX_USER_AGENT_LENGTH
        ),
        ip=address,
    )
    try:
        accepted = ingest.hit_accept(
            hit, client_address=address, scope="hit", page_view_id=parsed.page_view_id
        )
    except DatabaseError:
        return _service_unavailable()
    if accepted.admission is ingest.Admission.LIMITED:
        return _quiet()
    response = _pixel()
    # Refreshed on every hit: the two years count from the last visit. A valid cookie is sent
    # back as it came (the signature of a uuid never changes), a new one is signed.
    set_visitor_cookie_quick(
        response,
        visitor_uuid,
        secure=request.is_secure(),
        signed_value=request.COOKIES.get(COOKIE_NAME) if cookie_uuid else None,
    )
    return response


@public
@csrf_exempt
@require_http_methods(["GET", "POST"])
def identify(request: HttpRequest) -> HttpResponse:
    """``mapp('identify', token)``: this browser is the prospect the signed token names.

    A tampered, expired or unknown token is a 400 with a message and identifies nobody.
    """
    address = request_ip(request)
    if beacon.admit_hit(client_address=address, scope="identify") is beacon.Admission.LIMITED:
        return _quiet()
    if request.method == "POST":
        parameters: dict[str, str] | None = {
            key: request.POST.get(key, "") for key in ("token", "consent", "dnt")
        }
    else:
        parameters = _query_parameters(request)
    if parameters is None:
        return HttpResponse(status=400)
    try:
        prospect_id = prospect_id_from_identify_token(parameters.get("token", ""))
    except IdentifyTokenError as error:
        return HttpResponse(str(error), status=400, content_type="text/plain; charset=utf-8")
    if not Prospect.objects.filter(pk=prospect_id).exists():
        return HttpResponse(
            _("The identification token names no prospect."),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    if beacon.is_refused_by_privacy(
        tracking_settings=beacon.current_tracking_settings(),
        has_consent=parameters.get("consent") == "1",
        do_not_track=parameters.get("dnt") == "1" or _header_do_not_track(request),
    ):
        return _quiet()
    visitor, _created = ingest.visitor_for_cookie(
        visitor_uuid=visitor_uuid_from_request(request),
        user_agent=beacon.clean_text(
            request.headers.get("User-Agent", ""), ingest.MAX_USER_AGENT_LENGTH
        ),
        ip=address,
    )
    visitor_identify(visitor=visitor, prospect_id=prospect_id, source="site")
    response = _pixel()
    set_visitor_cookie(response, visitor, secure=request.is_secure())
    return response
