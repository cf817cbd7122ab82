"""Django admin for the HOT rule and the daily digests."""

from __future__ import annotations

from django.contrib import admin

from mapp.admin_site import GuardedModelAdmin, ReadOnlyGuardedModelAdmin
from mapp.models import Module
from scoring.models import HotDigest, HotRule


@admin.register(HotRule)
class HotRuleAdmin(GuardedModelAdmin):
    access_module = Module.AUTOMATION
    list_display = ("__str__", "digest_enabled", "digest_hour", "updated_at")
    list_filter = ("digest_enabled",)
    search_fields = ("error",)


@admin.register(HotDigest)
class HotDigestAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.AUTOMATION
    list_display = ("day", "user", "prospect_count", "sent_at")
    list_filter = ("day",)
    search_fields = ("user__email",)
