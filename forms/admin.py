"""Django admin for forms: every model, role-checked by GuardedModelAdmin.

Submissions and consent records are evidence: read-only here. Posted values are shown through
the admin's own escaping (never marked safe).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from forms.models import (
    ConsentRecord,
    ConsentWording,
    Form,
    FormField,
    FormHandler,
    FormHandlerField,
    LandingPage,
    Submission,
)
from mapp.access import sees_all_prospects
from mapp.admin_site import GuardedModelAdmin, ReadOnlyGuardedModelAdmin
from mapp.models import Module


class FormFieldInline(admin.TabularInline):
    model = FormField
    fk_name = "form"
    extra = 0
    fields = (
        "position",
        "label",
        "field_type",
        "prospect_field",
        "custom_field",
        "required",
        "is_active",
    )
    raw_id_fields = ("custom_field",)


@admin.register(Form)
class FormAdmin(GuardedModelAdmin):
    access_module = Module.MARKETING
    list_display = (
        "name",
        "is_active",
        "kiosk_mode",
        "double_opt_in",
        "campaign_name",
        "updated_at",
    )
    list_filter = ("is_active", "kiosk_mode", "double_opt_in", "created_at")
    search_fields = ("name", "description", "campaign_name", "uuid")
    readonly_fields = ("uuid", "created_at", "updated_at")
    raw_id_fields = ("created_by",)
    inlines = (FormFieldInline,)


@admin.register(FormField)
class FormFieldAdmin(GuardedModelAdmin):
    access_module = Module.MARKETING
    list_display = (
        "label",
        "form",
        "position",
        "field_type",
        "prospect_field",
        "required",
        "is_active",
    )
    list_filter = ("field_type", "required", "is_active", "skip_if_known")
    search_fields = ("label", "form__name", "prospect_field")
    raw_id_fields = ("form", "custom_field", "consent_version", "progressive_show_if_known")


@admin.register(ConsentWording)
class ConsentWordingAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.MARKETING
    list_display = ("lineage", "version", "created_at")
    list_filter = ("created_at",)
    search_fields = ("text", "lineage")


class FormHandlerFieldInline(admin.TabularInline):
    model = FormHandlerField
    extra = 0
    fields = ("position", "external_name", "prospect_field", "custom_field", "required", "is_email")
    raw_id_fields = ("custom_field",)


@admin.register(FormHandler)
class FormHandlerAdmin(GuardedModelAdmin):
    access_module = Module.MARKETING
    list_display = (
        "name",
        "is_active",
        "kiosk_mode",
        "forward_data",
        "campaign_name",
        "created_at",
    )
    list_filter = ("is_active", "kiosk_mode", "forward_data", "created_at")
    search_fields = ("name", "success_url", "error_url", "campaign_name", "uuid")
    readonly_fields = ("uuid", "created_at", "updated_at")
    raw_id_fields = ("created_by",)
    inlines = (FormHandlerFieldInline,)


@admin.register(FormHandlerField)
class FormHandlerFieldAdmin(GuardedModelAdmin):
    access_module = Module.MARKETING
    list_display = ("external_name", "handler", "prospect_field", "required", "is_email")
    list_filter = ("required", "is_email")
    search_fields = ("external_name", "handler__name", "prospect_field")
    raw_id_fields = ("handler", "custom_field")


@admin.register(LandingPage)
class LandingPageAdmin(GuardedModelAdmin):
    access_module = Module.MARKETING
    list_display = ("name", "slug", "is_published", "view_count", "submission_count", "updated_at")
    list_filter = ("is_published", "layout", "created_at")
    search_fields = ("name", "slug", "title")
    readonly_fields = ("view_count", "submission_count", "created_at", "updated_at")
    raw_id_fields = ("form", "created_by")


def _scope_by_prospect(request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
    if sees_all_prospects(request.user):  # type: ignore[arg-type]
        return queryset
    return queryset.filter(prospect__assigned_user=request.user)


@admin.register(Submission)
class SubmissionAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.MARKETING
    list_display = ("received_at", "kind", "status", "form", "handler", "prospect", "attempts")
    list_filter = ("status", "kind", "is_kiosk", "received_at")
    search_fields = ("prospect__email", "ip_address", "error", "dedup_key")
    raw_id_fields = ("form", "landing_page", "handler", "prospect")
    list_select_related = ("form", "handler", "prospect")

    def scope_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return _scope_by_prospect(request, queryset)


@admin.register(ConsentRecord)
class ConsentRecordAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.PROSPECTS
    list_display = ("recorded_at", "prospect", "granted", "source", "wording", "confirmed_by_email")
    list_filter = ("granted", "source", "confirmed_by_email", "recorded_at")
    search_fields = ("prospect__email", "ip_address", "wording__text")
    raw_id_fields = ("prospect", "wording", "submission", "form")
    list_select_related = ("prospect", "wording")

    def scope_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return _scope_by_prospect(request, queryset)
