"""API tokens: each user makes and revokes their own (django-rest-knox stores only a digest)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from knox.models import AuthToken

from mapp.access import access_required, request_user
from mapp.models import Level, Module
from mapp.services import audit_log_record


@access_required(Module.PROSPECTS, write_level=Level.VIEW)
def api_tokens(request: HttpRequest) -> HttpResponse:
    """The API sees what the user sees, so anyone who may read prospects may have tokens."""
    user = request_user(request)
    new_token = None
    if request.method == "POST":
        now = timezone.now()
        live = AuthToken.objects.filter(user=user).filter(
            Q(expiry__isnull=True) | Q(expiry__gt=now)
        )
        if live.count() >= settings.REST_KNOX["TOKEN_LIMIT_PER_USER"]:
            messages.error(request, _("You have the most tokens allowed; revoke one first."))
        else:
            instance, new_token = AuthToken.objects.create(user=user)  # expires after TOKEN_TTL
            audit_log_record(
                actor=user,
                action="api_token.create",
                changes={"token_key": instance.token_key},
                request=request,
            )
    tokens = AuthToken.objects.filter(user=user).order_by("-created")
    return render(request, "mapp/api_tokens.html", {"tokens": tokens, "new_token": new_token})


@access_required(Module.PROSPECTS, write_level=Level.VIEW)
def api_token_revoke(request: HttpRequest, token_key: str) -> HttpResponse:
    user = request_user(request)
    if request.method == "POST":
        token = get_object_or_404(AuthToken, user=user, token_key=token_key)
        token.delete()
        audit_log_record(
            actor=user, action="api_token.revoke", changes={"token_key": token_key}, request=request
        )
        messages.success(request, _("The token was revoked."))
    return redirect("api_tokens")
