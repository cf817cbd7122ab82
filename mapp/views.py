"""Core pages: home dashboard, health, system status, sign-in and language."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import check_for_language
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from mapp.access import access_required, login_required_only, public
from mapp.dashboard import dashboard_cards_for
from mapp.health import health_report
from mapp.models import Level, Module


@login_required_only
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "mapp/home.html", {"cards": dashboard_cards_for(request.user)})


@public
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Machine-readable health of database, Redis, worker and beat; 503 when any is down."""
    report = health_report()
    return JsonResponse(report, status=200 if report["ok"] else 503)


@access_required(Module.SETTINGS, read_level=Level.VIEW)
def system_status(request: HttpRequest) -> HttpResponse:
    return render(request, "mapp/system_status.html", {"report": health_report()})


def _language_response(response: HttpResponse, language: str) -> HttpResponse:
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        samesite="Lax",
        secure=getattr(settings, "LANGUAGE_COOKIE_SECURE", False),
        httponly=False,
    )
    return response


@public
@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Switch 日本語 / English; remembered in a cookie and, when signed in, on the user."""
    language = request.POST.get("language", "")
    next_url = request.POST.get("next") or reverse("home")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = reverse("home")
    response: HttpResponse = HttpResponseRedirect(next_url)
    if language not in dict(settings.LANGUAGES) or not check_for_language(language):
        return response
    user: Any = request.user
    if user.is_authenticated and user.language != language:
        user.language = language
        user.save(update_fields=["language"])
    return _language_response(response, language)


@public
class LoginView(auth_views.LoginView):
    """Sign in; the user's saved language, if any, becomes the interface language."""

    redirect_authenticated_user = True

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        language = form.get_user().language
        if language:
            _language_response(response, language)
        return response
