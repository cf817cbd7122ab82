"""Django admin for automation rules and their matches: for looking, not for editing.

Criteria, actions and status change only through the rule pages (engagement.rules validates
them and starts the retroactive evaluation), so here they are read-only and rules are not
added; the match history is read-only altogether.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from engagement.models import AutomationRule, AutomationRuleMatch
from mapp.admin_site import GuardedModelAdmin, ReadOnlyGuardedModelAdmin
from mapp.models import Module


@admin.register(AutomationRule)
class AutomationRuleAdmin(GuardedModelAdmin):
    access_module = Module.AUTOMATION
    list_display = ("name", "status", "repeat", "matched_count", "last_evaluated_at")
    list_filter = ("status", "repeat")
    search_fields = ("name", "description", "error")
    readonly_fields = (
        "criteria",
        "actions",
        "status",
        "repeat",
        "repeat_after_days",
        "error",
        "matched_count",
        "last_evaluated_at",
        "resumed_at",
        "created_by",
        "created_at",
        "updated_at",
    )

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False


@admin.register(AutomationRuleMatch)
class AutomationRuleMatchAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.AUTOMATION
    list_display = ("matched_at", "rule", "prospect", "ordinal")
    list_filter = ("rule",)
    raw_id_fields = ("prospect",)
    search_fields = ("prospect__email", "rule__name")
    list_select_related = ("rule", "prospect")
