from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from mapp.access import sees_all_prospects
from mapp.admin_site import GuardedModelAdmin, ReadOnlyGuardedModelAdmin
from mapp.models import Module
from prospects.actions import action_label
from prospects.models import (
    ActionRun,
    AssignmentGroup,
    ClassificationRule,
    Company,
    CustomField,
    CustomFieldValue,
    ExportJob,
    ImportJob,
    ImportPreset,
    ListMembership,
    ListRefresh,
    Prospect,
    ProspectList,
    Tag,
    Task,
)


def _scoped(request: HttpRequest, queryset: QuerySet[Any], path: str) -> QuerySet[Any]:
    """Sales roles see rows of their own prospects only, in admin as everywhere."""
    if sees_all_prospects(request.user):  # type: ignore[arg-type]
        return queryset
    return queryset.filter(**{path: request.user})


@admin.register(Prospect)
class ProspectAdmin(GuardedModelAdmin):
    access_module = Module.PROSPECTS
    list_display = (
        "email",
        "last_name",
        "first_name",
        "company_name",
        "job_level",
        "assigned_user",
        "created_at",
    )
    list_filter = (
        "job_level",
        "department_category",
        "do_not_email",
        "opted_out",
        "assigned_user",
        "created_at",
    )
    search_fields = (
        "email",
        "last_name",
        "first_name",
        "last_name_kana",
        "first_name_kana",
        "company_name",
        "job_title",
    )
    autocomplete_fields = ("assigned_user", "company", "tags")
    readonly_fields = (
        "full_name_normalized",
        "company_name_normalized",
        "department_category",
        "job_level",
        "score",
        "grade",
        "hot_status",
        "hot_since",
        "hard_bounced_at",
        "soft_bounce_count",
    )
    list_select_related = ("assigned_user",)

    def scope_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return _scoped(request, queryset, "assigned_user")


@admin.register(Company)
class CompanyAdmin(GuardedModelAdmin):
    access_module = Module.PROSPECTS
    list_display = ("name", "industry", "employee_count", "prefecture", "country")
    list_filter = ("industry", "prefecture", "country")
    search_fields = ("name", "name_normalized", "domain")
    readonly_fields = ("name_normalized",)


@admin.register(Tag)
class TagAdmin(GuardedModelAdmin):
    access_module = Module.PROSPECTS
    list_display = ("name", "created_at")
    list_filter = ("created_at",)
    search_fields = ("name",)


@admin.register(CustomField)
class CustomFieldAdmin(GuardedModelAdmin):
    access_module = Module.SETTINGS
    list_display = ("label", "key", "field_type")
    list_filter = ("field_type",)
    search_fields = ("label", "key")


@admin.register(CustomFieldValue)
class CustomFieldValueAdmin(GuardedModelAdmin):
    access_module = Module.PROSPECTS
    list_display = ("prospect", "field", "value_text", "value_number", "value_date", "value_bool")
    list_filter = ("field",)
    search_fields = ("prospect__email", "value_text")
    raw_id_fields = ("prospect",)

    def scope_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return _scoped(request, queryset, "prospect__assigned_user")


@admin.register(ClassificationRule)
class ClassificationRuleAdmin(GuardedModelAdmin):
    """The 名寄せ dictionary. After editing it, re-classify so existing prospects follow."""

    access_module = Module.SETTINGS
    actions = ("reclassify_all_prospects",)

    @admin.action(description=_("Re-classify every prospect with the current dictionary"))
    def reclassify_all_prospects(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        from prospects.tasks import reclassify

        transaction.on_commit(lambda: reclassify.delay(0))
        self.message_user(request, _("Re-classification started; it runs in the background."))

    list_display = ("pattern", "kind", "value", "priority", "is_active")
    list_filter = ("kind", "value", "is_active")
    search_fields = ("pattern", "value")


@admin.register(ProspectList)
class ProspectListAdmin(GuardedModelAdmin):
    access_module = Module.MARKETING
    list_display = ("name", "is_dynamic", "is_public", "last_refreshed_at", "created_at")
    list_filter = ("is_dynamic", "is_public", "created_at")
    search_fields = ("name", "public_name", "description")


@admin.register(ListMembership)
class ListMembershipAdmin(GuardedModelAdmin):
    access_module = Module.MARKETING
    list_display = ("prospect_list", "prospect", "source", "created_at")
    list_filter = ("source", "prospect_list")
    search_fields = ("prospect__email", "prospect_list__name")
    raw_id_fields = ("prospect",)


@admin.register(ListRefresh)
class ListRefreshAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.MARKETING
    list_display = (
        "prospect_list",
        "mode",
        "started_at",
        "added_count",
        "removed_count",
        "member_count",
    )
    list_filter = ("mode", "started_at")
    search_fields = ("prospect_list__name",)


@admin.register(AssignmentGroup)
class AssignmentGroupAdmin(GuardedModelAdmin):
    access_module = Module.SETTINGS
    list_display = ("name", "next_position", "created_at")
    list_filter = ("created_at",)
    search_fields = ("name",)
    filter_horizontal = ("members",)


@admin.register(Task)
class TaskAdmin(GuardedModelAdmin):
    access_module = Module.PROSPECTS
    list_display = ("subject", "assignee", "prospect", "due_date", "status", "priority")
    list_filter = ("status", "priority", "due_date", "assignee")
    search_fields = ("subject", "notes", "prospect__email")
    raw_id_fields = ("prospect",)

    def scope_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return _scoped(request, queryset, "assignee")


@admin.register(ImportPreset)
class ImportPresetAdmin(GuardedModelAdmin):
    access_module = Module.PROSPECTS
    list_display = ("name", "created_by", "created_at")
    list_filter = ("created_at",)
    search_fields = ("name",)


@admin.register(ImportJob)
class ImportJobAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.PROSPECTS
    list_display = (
        "original_filename",
        "status",
        "total_rows",
        "created_count",
        "updated_count",
        "error_count",
        "created_at",
    )
    list_filter = ("status", "policy", "created_at")
    search_fields = ("original_filename",)


@admin.register(ExportJob)
class ExportJobAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.PROSPECTS
    list_display = ("pk", "status", "encoding", "total_rows", "created_at")
    list_filter = ("status", "encoding", "created_at")
    search_fields = ("created_by__email",)


@admin.register(ActionRun)
class ActionRunAdmin(ReadOnlyGuardedModelAdmin):
    """The record of what automations did to prospects: written by prospects.actions only."""

    access_module = Module.PROSPECTS
    list_display = ("created_at", "action_name", "prospect", "cause_type", "cause_label", "status")
    list_filter = ("status", "action", "cause_type", "created_at")
    search_fields = ("prospect__email", "cause_label", "cause_id", "message", "idempotency_key")
    raw_id_fields = ("prospect",)
    list_select_related = ("prospect",)

    @admin.display(description=_("action"), ordering="action")
    def action_name(self, run: ActionRun) -> str:
        return action_label(run.action)

    def scope_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return _scoped(request, queryset, "prospect__assigned_user")
