"""Django admin for scoring: every model, role-checked by GuardedModelAdmin.

The ledger and rescores are history: read-only here. Editing a rule rescores every prospect in
the background, as editing it anywhere else does.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from mapp.access import sees_all_prospects
from mapp.admin_site import GuardedModelAdmin, ReadOnlyGuardedModelAdmin
from mapp.models import Module
from scoring.models import Rescore, ScoreChange, ScoringRule
from scoring.services import rescore_request


@admin.register(ScoringRule)
class ScoringRuleAdmin(GuardedModelAdmin):
    access_module = Module.AUTOMATION
    list_display = (
        "__str__",
        "activity_type",
        "points",
        "object_type",
        "object_id",
        "url_pattern",
        "first_time_only",
        "is_active",
    )
    list_filter = ("activity_type", "is_active", "is_default")
    search_fields = ("name", "object_id", "url_pattern")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        rescore_request(actor=request.user)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)
        rescore_request(actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        super().delete_queryset(request, queryset)
        rescore_request(actor=request.user)


@admin.register(ScoreChange)
class ScoreChangeAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.PROSPECTS
    list_display = ("occurred_at", "prospect", "points", "cause", "activity_type", "label")
    list_filter = ("cause", "activity_type")
    raw_id_fields = ("prospect", "rule", "actor")
    search_fields = ("prospect__email", "label")

    def scope_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if sees_all_prospects(request.user):  # type: ignore[arg-type]
            return queryset
        return queryset.filter(prospect__assigned_user=request.user)


@admin.register(Rescore)
class RescoreAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.AUTOMATION
    list_display = ("created_at", "status", "processed", "total", "finished_at")
    list_filter = ("status",)
    search_fields = ("error",)


# The grading, HOT and page-action models are registered by their own modules.
from scoring import admin_grading, admin_hot, admin_page_actions  # noqa: E402, F401
