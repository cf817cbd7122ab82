"""Django admin for automation rules and their matches."""

from __future__ import annotations

from django.contrib import admin

from engagement.models import AutomationRule, AutomationRuleMatch
from mapp.admin_site import GuardedModelAdmin, ReadOnlyGuardedModelAdmin
from mapp.models import Module


@admin.register(AutomationRule)
class AutomationRuleAdmin(GuardedModelAdmin):
    access_module = Module.AUTOMATION
    list_display = ("name", "status", "repeat", "matched_count", "last_evaluated_at")
    list_filter = ("status", "repeat")
    search_fields = ("name", "description", "error")


@admin.register(AutomationRuleMatch)
class AutomationRuleMatchAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.AUTOMATION
    list_display = ("matched_at", "rule", "prospect", "ordinal")
    list_filter = ("rule",)
    raw_id_fields = ("prospect",)
    search_fields = ("prospect__email", "rule__name")
