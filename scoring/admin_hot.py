"""Django admin for the HOT rule and the daily digests.

The rule is one row, edited on the HOT rule page (which validates its criteria and actions);
here it can be changed too, but not added twice or deleted, and a change re-evaluates everyone
like a save on the page does (invalid criteria are caught by the evaluation: see HotRule.error).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from mapp.access import request_user
from mapp.admin_site import GuardedModelAdmin, ReadOnlyGuardedModelAdmin
from mapp.models import Module
from scoring.hot import hot_evaluate_all_request
from scoring.models import HotDigest, HotRule


@admin.register(HotRule)
class HotRuleAdmin(GuardedModelAdmin):
    access_module = Module.AUTOMATION
    list_display = ("__str__", "digest_enabled", "digest_hour", "updated_at")
    list_filter = ("digest_enabled",)
    search_fields = ("error",)
    readonly_fields = ("error", "updated_by", "updated_at")

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return not HotRule.objects.exists() and super().has_add_permission(request, *args)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: HotRule, form: Any, change: bool) -> None:
        obj.updated_by = request_user(request)
        super().save_model(request, obj, form, change)
        hot_evaluate_all_request()


@admin.register(HotDigest)
class HotDigestAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.AUTOMATION
    list_display = ("day", "user", "prospect_count", "sent_at")
    list_filter = ("day",)
    search_fields = ("user__email",)
