"""Django admin for page actions and score decay rules.

The admin uses the editors' forms, so a URL pattern, the points and an action list are checked
here as they are on the page action pages.
"""

from __future__ import annotations

from django.contrib import admin

from mapp.admin_site import GuardedModelAdmin
from mapp.models import Module
from scoring.forms_page_actions import PageActionAdminForm, ScoreDecayRuleForm
from scoring.models import PageAction, ScoreDecayRule


@admin.register(PageAction)
class PageActionAdmin(GuardedModelAdmin):
    access_module = Module.AUTOMATION
    form = PageActionAdminForm
    list_display = ("name", "match_type", "url_pattern", "points", "is_priority", "is_active")
    list_filter = ("match_type", "is_priority", "is_active")
    search_fields = ("name", "url_pattern")


@admin.register(ScoreDecayRule)
class ScoreDecayRuleAdmin(GuardedModelAdmin):
    access_module = Module.AUTOMATION
    form = ScoreDecayRuleForm
    list_display = ("name", "inactive_days", "points", "floor", "is_active")
    list_filter = ("is_active",)
    search_fields = ("name",)
