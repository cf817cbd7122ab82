"""Visitor pages (Module.VISITORS), the prospect activity fragment, and Settings → Tracking.

Everything a visitor sent (URLs, titles, referrers, user agents) is shown through Django's
autoescaping, never marked safe; a URL is a link only when it is http(s).
"""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.http.request import validate_host
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from mapp.access import access_required, has_access, request_user
from mapp.models import Level, Module, User
from mapp.services import audit_log_record
from prospects.models import Prospect
from prospects.selectors import prospects_visible_to
from tracking.beacon import clean_http_url, forget_tracking_settings
from tracking.domains import forget_tracker_domains
from tracking.forms import TrackerDomainForm, TrackingSettingsForm
from tracking.models import TrackerDomain, TrackingSettings, Visit, Visitor
from tracking.timeline import visitor_timeline

PAGE_SIZE = 50
VISITS_SHOWN = 100
FILTERS: dict[str, Any] = {
    "all": gettext_lazy("All"),
    "identified": gettext_lazy("Identified"),
    "anonymous": gettext_lazy("Anonymous"),
    "bots": gettext_lazy("Bots"),
}


# --- tracker domains (writes) -------------------------------------------------------------------


@transaction.atomic
def tracker_domain_add(*, actor: User, domain: str, request: HttpRequest | None = None) -> bool:
    """Add a validated, normalised domain; the first one becomes primary. False if it exists."""
    is_first = not TrackerDomain.objects.exists()
    try:
        with transaction.atomic():
            tracker_domain = TrackerDomain.objects.create(domain=domain, is_primary=is_first)
    except IntegrityError:  # added by someone else a moment ago
        return False
    transaction.on_commit(forget_tracker_domains)  # this process admits it at once
    audit_log_record(
        actor=actor, action="tracking.domain_add", target=tracker_domain, request=request
    )
    return True


@transaction.atomic
def tracker_domain_make_primary(
    *, actor: User, tracker_domain: TrackerDomain, request: HttpRequest | None = None
) -> None:
    TrackerDomain.objects.exclude(pk=tracker_domain.pk).filter(is_primary=True).update(
        is_primary=False
    )
    TrackerDomain.objects.filter(pk=tracker_domain.pk).update(is_primary=True)
    audit_log_record(
        actor=actor, action="tracking.domain_primary", target=tracker_domain, request=request
    )


@transaction.atomic
def tracker_domain_remove(
    *, actor: User, tracker_domain: TrackerDomain, request: HttpRequest | None = None
) -> None:
    """Remove a domain; if it was primary, the next one (alphabetically) becomes primary."""
    audit_log_record(
        actor=actor, action="tracking.domain_remove", target=tracker_domain, request=request
    )
    was_primary = tracker_domain.is_primary
    tracker_domain.delete()
    transaction.on_commit(forget_tracker_domains)
    if was_primary:
        successor = TrackerDomain.objects.order_by("domain").first()
        if successor is not None:
            TrackerDomain.objects.filter(pk=successor.pk).update(is_primary=True)


# --- reads --------------------------------------------------------------------------------------


def tracker_base_url() -> str:
    """Where the snippet points: https://<primary tracker domain>, else the app's own URL."""
    primary = TrackerDomain.objects.filter(is_primary=True).first()
    if primary is not None:
        return f"https://{primary.domain}"
    parts = urlsplit(settings.SITE_URL)
    return f"{parts.scheme}://{parts.netloc}"


def tracking_snippet(base_url: str) -> str:
    return (
        "<script>window.mappq=window.mappq||[];function mapp(){mappq.push(arguments)}</script>\n"
        f'<script async src="{base_url}/t/mapp.js" data-mapp-tracker="{base_url}"></script>'
    )


def _visible_prospects(user: User, prospect_ids: set[int]) -> dict[int, Prospect]:
    """The prospects among ``prospect_ids`` the user may open (one query; Sales: their own)."""
    if not prospect_ids:
        return {}
    return {
        prospect.pk: prospect
        for prospect in prospects_visible_to(user)
        .filter(pk__in=prospect_ids)
        .select_related(None)
        .only("id", "email", "last_name", "first_name")
    }


def _encode_cursor(last_seen_at: datetime.datetime, pk: int) -> str:
    raw = json.dumps([last_seen_at.isoformat(), pk])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime.datetime, int] | None:
    try:
        value, pk = json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    if not isinstance(value, str) or not isinstance(pk, int):
        return None
    try:
        moment = parse_datetime(value)
    except ValueError:
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return moment, pk


def _filtered_visitors(show: str) -> QuerySet[Visitor]:
    visitors = Visitor.objects.all()
    if show == "identified":
        return visitors.filter(prospect__isnull=False)
    if show == "anonymous":
        return visitors.filter(prospect__isnull=True)
    if show == "bots":
        return visitors.filter(is_bot=True)
    return visitors


# --- pages --------------------------------------------------------------------------------------


@access_required(Module.VISITORS)
def visitor_list(request: HttpRequest) -> HttpResponse:
    user = request_user(request)
    show = request.GET.get("show", "all")
    if show not in FILTERS:
        show = "all"
    queryset = _filtered_visitors(show).order_by("-last_seen_at", "-id")
    cursor = _decode_cursor(request.GET.get("after", ""))
    if cursor is not None:
        last_seen_at, pk = cursor
        queryset = queryset.filter(
            Q(last_seen_at__lt=last_seen_at) | Q(last_seen_at=last_seen_at, id__lt=pk)
        )
    rows = list(queryset[: PAGE_SIZE + 1])
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    prospects = _visible_prospects(
        user, {row.prospect_id for row in rows if row.prospect_id is not None}
    )
    next_query = None
    if has_next:
        params = request.GET.copy()
        params["after"] = _encode_cursor(rows[-1].last_seen_at, rows[-1].pk)
        next_query = params.urlencode()
    first_params = request.GET.copy()
    first_params.pop("after", None)
    return render(
        request,
        "tracking/visitor_list.html",
        {
            "rows": [
                {"visitor": row, "prospect": prospects.get(row.prospect_id or 0)} for row in rows
            ],
            "show": show,
            "filters": list(FILTERS.items()),
            "next_query": next_query,
            "first_query": first_params.urlencode() if cursor else None,
        },
    )


@access_required(Module.VISITORS)
def visitor_detail(request: HttpRequest, visitor_id: int) -> HttpResponse:
    user = request_user(request)
    visitor = get_object_or_404(Visitor, pk=visitor_id)
    prospect = None
    if visitor.prospect_id is not None:
        prospect = _visible_prospects(user, {visitor.prospect_id}).get(visitor.prospect_id)
    visits: list[Visit] = list(visitor.visits.order_by("-started_at", "-id")[:VISITS_SHOWN])
    return render(
        request,
        "tracking/visitor_detail.html",
        {
            "visitor": visitor,
            "prospect": prospect,
            "visits": [
                {
                    "visit": visit,
                    "landing_link": clean_http_url(visit.landing_url),
                    "referrer_link": clean_http_url(visit.referrer),
                }
                for visit in visits
            ],
            "activities": visitor_timeline(visitor_id=visitor.pk),
        },
    )


def _settings_page(
    request: HttpRequest,
    *,
    settings_form: TrackingSettingsForm | None = None,
    domain_form: TrackerDomainForm | None = None,
    status: int = 200,
) -> HttpResponse:
    tracking_settings = TrackingSettings.load()
    domains = list(TrackerDomain.objects.order_by("-is_primary", "domain"))
    base_url = tracker_base_url()
    cname_target = urlsplit(settings.SITE_URL).hostname or ""
    return render(
        request,
        "tracking/settings.html",
        {
            "settings_form": settings_form or TrackingSettingsForm(instance=tracking_settings),
            "domain_form": domain_form or TrackerDomainForm(),
            "domains": [
                {
                    "domain": domain,
                    "cname": f"{domain.domain} CNAME {cname_target}",
                    "is_allowed_host": validate_host(domain.domain, settings.ALLOWED_HOSTS),
                }
                for domain in domains
            ],
            "snippet": tracking_snippet(base_url),
            "tracker_base_url": base_url,
            "cname_target": cname_target,
            "can_edit": has_access(request.user, Module.SETTINGS, Level.EDIT),
        },
        status=status,
    )


@access_required(Module.SETTINGS)
def tracking_settings(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _settings_page(request)
    form = TrackingSettingsForm(request.POST, instance=TrackingSettings.load())
    if not form.is_valid():
        return _settings_page(request, settings_form=form, status=400)
    saved = form.save()
    forget_tracking_settings()  # other processes follow within TRACKING_SETTINGS_CACHE_SECONDS
    audit_log_record(
        actor=request_user(request),
        action="tracking.settings_change",
        target=saved,
        changes={name: form.cleaned_data[name] for name in form.changed_data},
        request=request,
    )
    messages.success(request, _("The tracking settings were saved."))
    return redirect("visitors:settings")


@access_required(Module.SETTINGS)
@require_POST
def tracker_domain_create(request: HttpRequest) -> HttpResponse:
    form = TrackerDomainForm(request.POST)
    if not form.is_valid():
        return _settings_page(request, domain_form=form, status=400)
    if tracker_domain_add(
        actor=request_user(request), domain=form.cleaned_data["domain"], request=request
    ):
        messages.success(request, _("The tracker domain was added."))
    else:
        messages.error(request, _("This tracker domain is already listed."))
    return redirect("visitors:settings")


@access_required(Module.SETTINGS)
@require_POST
def tracker_domain_primary(request: HttpRequest, domain_id: int) -> HttpResponse:
    tracker_domain = get_object_or_404(TrackerDomain, pk=domain_id)
    tracker_domain_make_primary(
        actor=request_user(request), tracker_domain=tracker_domain, request=request
    )
    messages.success(request, _("The snippet now uses %(domain)s.") % {"domain": tracker_domain})
    return redirect("visitors:settings")


@access_required(Module.SETTINGS)
@require_POST
def tracker_domain_delete(request: HttpRequest, domain_id: int) -> HttpResponse:
    tracker_domain = get_object_or_404(TrackerDomain, pk=domain_id)
    tracker_domain_remove(
        actor=request_user(request), tracker_domain=tracker_domain, request=request
    )
    messages.success(request, _("The tracker domain was removed."))
    return redirect("visitors:settings")
