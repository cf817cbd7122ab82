"""Public email endpoints (no sign-in): the preference centre behind every unsubscribe link.

GET shows the preference centre (unsubscribe from everything, choose public lists, opt back in)
and changes nothing, because link scanners and mail security gateways follow every GET in an
email. Two kinds of POST reach the same URL:

* the RFC 8058 one-click POST a mail client sends (body ``List-Unsubscribe=One-Click``): no CSRF
  token (mail clients have none), no login, 200 and no redirect, idempotent;
* the page's own forms (``action`` = ``unsubscribe_all`` / ``save`` / ``resubscribe``): CSRF
  checked here, since the view as a whole must stay exempt for the first kind.

A forged, truncated or foreign token is a 400 page; a token whose prospect has been deleted is a
410 page with nothing to manage (the one-click POST still answers 200: nobody is left to mail).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from emails.preferences import (
    MAX_LIST_CHOICES,
    preferences_for,
    preferences_save,
    prospect_resubscribe,
)
from emails.unsubscribe import UnsubscribeToken, prospect_unsubscribe, unsubscribe_token_load
from mapp.access import public
from mapp.models import AccountSettings
from mapp.services import client_ip

NO_STORE = "no-store, private"
# No scripts at all; the page's own inline styles; forms post back to this site only.
PUBLIC_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
# A list id is a positive bigint: 19 digits at most.
MAX_ID_DIGITS = 19

ACTION_UNSUBSCRIBE_ALL = "unsubscribe_all"
ACTION_SAVE = "save"
ACTION_RESUBSCRIBE = "resubscribe"


class _BadRequest(Exception):
    """Input no honest page sends; the message says so."""


def _page(
    request: HttpRequest, template: str, *, status: int = 200, **context: Any
) -> HttpResponse:
    account = AccountSettings.load()
    response = render(request, template, {"account": account, **context}, status=status)
    response["Cache-Control"] = NO_STORE
    response["X-Robots-Tag"] = "noindex"
    response["Content-Security-Policy"] = PUBLIC_CSP
    # The token must not leak to other sites; same-origin (not no-referrer) so the browser
    # still sends a real Origin with the page's own POSTs, which Django's CSRF check requires.
    response["Referrer-Policy"] = "same-origin"
    return response


def _message(request: HttpRequest, message: str, *, status: int) -> HttpResponse:
    return _page(request, "emails/public/message.html", status=status, message=message)


def _invalid_link(request: HttpRequest) -> HttpResponse:
    return _message(
        request,
        _(
            "This unsubscribe link is not valid. Please use the link in the email you "
            "received, or contact the sender."
        ),
        status=400,
    )


def _preferences_page(
    request: HttpRequest, token: UnsubscribeToken, *, notice: str = "", status: int = 200
) -> HttpResponse:
    preferences = preferences_for(prospect_id=token.prospect_id)
    if preferences is None:
        return _message(
            request,
            _(
                "There is nothing to manage for this link: we no longer keep the address it "
                "was sent to. If you still receive emails from us, please use the link in the "
                "latest one, or contact us."
            ),
            status=410,
        )
    return _page(
        request,
        "emails/public/preferences.html",
        status=status,
        preferences=preferences,
        notice=notice,
        actions={
            "unsubscribe_all": ACTION_UNSUBSCRIBE_ALL,
            "save": ACTION_SAVE,
            "resubscribe": ACTION_RESUBSCRIBE,
        },
    )


def _csrf_refused(request: HttpRequest) -> bool:
    """Django's own CSRF check, run for the page's forms only (the view is exempt as a whole)."""

    def not_exempt(request: HttpRequest) -> HttpResponse:
        raise AssertionError("only named as the view: it carries no csrf_exempt mark")

    middleware = CsrfViewMiddleware(not_exempt)
    return middleware.process_view(request, not_exempt, (), {}) is not None


def _ids(values: list[str]) -> set[int]:
    if len(values) > MAX_LIST_CHOICES:
        raise _BadRequest
    ids = set()
    for value in values:
        if not (value.isascii() and value.isdigit() and len(value) <= MAX_ID_DIGITS):
            raise _BadRequest
        ids.add(int(value))
    return ids


def _page_post(request: HttpRequest, token: UnsubscribeToken) -> HttpResponse:
    action = request.POST.get("action", "")
    if action == ACTION_UNSUBSCRIBE_ALL:
        prospect_unsubscribe(token=token, one_click=False)
        return _preferences_page(request, token, notice=_("You have been unsubscribed."))
    if action == ACTION_SAVE:
        changes = preferences_save(
            token=token,
            shown_list_ids=_ids(request.POST.getlist("shown")),
            chosen_list_ids=_ids(request.POST.getlist("list")),
        )
        notice = _("Your email preferences have been saved.") if changes is not None else ""
        return _preferences_page(request, token, notice=notice)
    if action == ACTION_RESUBSCRIBE:
        prospect_resubscribe(token=token, ip_address=client_ip(request))
        return _preferences_page(
            request, token, notice=_("Thank you. You will receive our emails again.")
        )
    raise _BadRequest


@public
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    parsed = unsubscribe_token_load(token)
    if parsed is None:
        return _invalid_link(request)
    if request.method != "POST":
        return _preferences_page(request, parsed)
    try:
        if request.POST.get("List-Unsubscribe") == "One-Click":
            prospect_unsubscribe(token=parsed, one_click=True)
            return _message(request, _("You have been unsubscribed."), status=200)
        if _csrf_refused(request):
            return _message(
                request,
                _(
                    "Your request could not be verified. Please reload the page and try again "
                    "(your browser must accept cookies from this site)."
                ),
                status=403,
            )
        return _page_post(request, parsed)
    except (_BadRequest, RequestDataTooBig, TooManyFieldsSent):
        return _message(
            request,
            _("This request could not be understood. Please reload the page and try again."),
            status=400,
        )
