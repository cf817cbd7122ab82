from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from mapp.access import sees_all_prospects
from mapp.admin_site import GuardedModelAdmin, ReadOnlyGuardedModelAdmin
from mapp.models import Module
from tracking.models import (
    Activity,
    ActivityDelivery,
    CustomRedirect,
    HitQueueCursor,
    TrackedFile,
    TrackerDomain,
    TrackingSettings,
    Visit,
    Visitor,
)


@admin.register(Activity)
class ActivityAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.VISITORS
    list_display = ("occurred_at", "type", "prospect", "visitor", "object_label", "is_bot")
    list_filter = ("type", "is_bot", "occurred_at")
    search_fields = ("object_label", "object_id", "prospect__email")
    raw_id_fields = ("prospect", "visitor")
    list_select_related = ("prospect",)

    def scope_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if sees_all_prospects(request.user):  # type: ignore[arg-type]
            return queryset
        return queryset.filter(prospect__assigned_user=request.user)


@admin.register(ActivityDelivery)
class ActivityDeliveryAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.SETTINGS
    list_display = ("consumer", "activity_id", "prospect_id", "delivered_at")
    list_filter = ("consumer", "delivered_at")
    search_fields = ("consumer", "activity_id")


@admin.register(Visitor)
class VisitorAdmin(GuardedModelAdmin):
    access_module = Module.VISITORS
    list_display = ("pk", "prospect", "first_seen_at", "last_seen_at", "page_view_count", "is_bot")
    list_filter = ("is_bot", "last_seen_at")
    search_fields = ("uuid", "prospect__email", "ip_address", "user_agent")
    raw_id_fields = ("prospect",)


@admin.register(Visit)
class VisitAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.VISITORS
    list_display = ("pk", "visitor", "prospect", "started_at", "page_view_count", "utm_source")
    list_filter = ("started_at", "utm_source", "utm_medium")
    search_fields = ("landing_url", "referrer", "utm_campaign", "prospect__email")
    raw_id_fields = ("visitor", "prospect")


@admin.register(TrackingSettings)
class TrackingSettingsAdmin(GuardedModelAdmin):
    access_module = Module.SETTINGS
    list_display = ("__str__", "session_gap_minutes", "require_consent", "honour_do_not_track")
    list_filter = ("require_consent", "honour_do_not_track")
    search_fields = ("session_gap_minutes",)


@admin.register(TrackerDomain)
class TrackerDomainAdmin(GuardedModelAdmin):
    access_module = Module.SETTINGS
    list_display = ("domain", "is_primary", "created_at")
    list_filter = ("is_primary",)
    search_fields = ("domain",)


@admin.register(CustomRedirect)
class CustomRedirectAdmin(GuardedModelAdmin):
    access_module = Module.MARKETING
    list_display = (
        "name",
        "slug",
        "destination_url",
        "click_count",
        "bot_click_count",
        "is_active",
    )
    list_filter = ("is_active", "campaign_name")
    search_fields = ("name", "slug", "destination_url", "campaign_name")
    readonly_fields = ("click_count", "bot_click_count")


@admin.register(TrackedFile)
class TrackedFileAdmin(GuardedModelAdmin):
    access_module = Module.MARKETING
    list_display = ("name", "slug", "original_filename", "download_count", "bot_download_count")
    list_filter = ("content_type", "created_at")
    search_fields = ("name", "slug", "original_filename")
    readonly_fields = ("download_count", "bot_download_count", "size", "content_type")


@admin.register(HitQueueCursor)
class HitQueueCursorAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.SETTINGS
    list_display = ("queue", "stored_count", "updated_at")
    list_filter = ("updated_at",)
    search_fields = ("queue",)
