"""Public email endpoints (no sign-in): the unsubscribe page and its one-click POST.

GET shows a confirmation page with a button, because link scanners and mail security
gateways follow every GET in an email; only a POST unsubscribes. The POST is what RFC 8058
one-click clients send (``List-Unsubscribe=One-Click``) as well as what the page's button sends:
no CSRF token (mail clients have none), no login, 200 and no redirect, idempotent.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from emails.unsubscribe import prospect_unsubscribe, unsubscribe_token_load
from mapp.access import public

NO_STORE = "no-store, private"


def _page(request: HttpRequest, *, status: int = 200, **context: object) -> HttpResponse:
    response = render(request, "emails/public/unsubscribe.html", context, status=status)
    response["Cache-Control"] = NO_STORE
    response["X-Robots-Tag"] = "noindex"
    response["Referrer-Policy"] = "no-referrer"  # the token must not leak to other sites
    return response


@public
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    parsed = unsubscribe_token_load(token)
    if parsed is None:
        return _page(
            request,
            status=400,
            message=_(
                "This unsubscribe link is not valid. Please use the link in the email you "
                "received, or contact the sender."
            ),
        )
    if request.method == "POST":
        one_click = request.POST.get("List-Unsubscribe") == "One-Click"
        prospect_unsubscribe(token=parsed, one_click=one_click)
        return _page(request, done=True, message=_("You have been unsubscribed."))
    return _page(request, confirm=True)
