"""In-app notifications: the list, mark all read, open one, and the top bar's unread badge.

Every query is filtered by ``user=request.user``: a notification belongs to exactly one user.
"""

from __future__ import annotations

import unicodedata

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from mapp.access import login_required_only, public, request_user
from mapp.models import Notification, User

PAGE_SIZE = 50
# The badge shows "99+" beyond this; counting further costs an index scan for nothing.
BADGE_COUNT_LIMIT = 99


def is_safe_local_path(url: str) -> bool:
    """Whether ``url`` is a path on this site, so following it can never leave the site.

    Notification links are stored text (automations, imports, other apps write them); only a
    path that starts with exactly one "/" is followed. "//host", "/\\host" and control or
    white-space characters (which browsers drop, turning "/\\t/host" into "//host") are refused.
    """
    if not url.startswith("/") or url.startswith(("//", "/\\")):
        return False
    if any(unicodedata.category(character)[0] in {"C", "Z"} for character in url):
        return False
    return url_has_allowed_host_and_scheme(url, allowed_hosts=None)


def unread_notifications_count(user: User, *, limit: int = BADGE_COUNT_LIMIT) -> int:
    """Unread notifications of ``user``, counted up to ``limit`` + 1 (enough for "99+")."""
    return (
        Notification.objects.filter(user=user, read_at__isnull=True)
        .values_list("pk", flat=True)[: limit + 1]
        .count()
    )


@login_required_only
@require_GET
def notification_list(request: HttpRequest) -> HttpResponse:
    user = request_user(request)
    notifications = Notification.objects.filter(user=user).order_by("-created_at", "-id")
    page = Paginator(notifications, PAGE_SIZE).get_page(request.GET.get("page"))
    has_unread = Notification.objects.filter(user=user, read_at__isnull=True).exists()
    return render(
        request, "notifications/notification_list.html", {"page": page, "has_unread": has_unread}
    )


@login_required_only
@require_POST
def notification_mark_all_read(request: HttpRequest) -> HttpResponse:
    Notification.objects.filter(user=request_user(request), read_at__isnull=True).update(
        read_at=timezone.now()
    )
    return redirect("notifications:list")


@login_required_only
@require_GET
def notification_open(request: HttpRequest, notification_id: int) -> HttpResponse:
    """Mark one notification read and follow its link, if that link stays on this site."""
    notification = get_object_or_404(Notification, pk=notification_id, user=request_user(request))
    if notification.read_at is None:
        # Conditional, so opening it twice (two tabs) keeps the first reading time.
        Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(
            read_at=timezone.now()
        )
    if notification.url and is_safe_local_path(notification.url):
        return HttpResponseRedirect(notification.url)
    return redirect("notifications:list")


# Public on purpose: the top bar polls this every minute, and when the session has expired the
# middleware's redirect to the sign-in page would be swapped into the top bar. Anonymous and
# inactive users get an empty 204 (htmx swaps nothing); nobody else's data is reachable.
@public
@never_cache
@require_GET
def notification_unread_badge(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not isinstance(user, User) or not user.is_active:
        return HttpResponse(status=204)
    count = unread_notifications_count(user)
    return render(
        request,
        "notifications/_unread_badge.html",
        {
            "unread_count": count,
            "is_capped": count > BADGE_COUNT_LIMIT,
            "badge_limit": BADGE_COUNT_LIMIT,
            "list_url": reverse("notifications:list"),
        },
    )
