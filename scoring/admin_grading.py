"""Django admin for grading profiles, their criteria, marks and regrades.

Editing here regrades as editing on the grading pages does: a profile or criterion change
queues a background regrade of the profile's prospects; a profile assignment or a mark
regrades that prospect at once. The Default profile can be edited but not renamed or deleted.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from mapp.admin_site import GuardedModelAdmin, ReadOnlyGuardedModelAdmin
from mapp.models import Module
from scoring.grading import default_profile, regrade, regrade_request
from scoring.models import CriterionMark, GradingCriterion, GradingProfile, ProspectProfile, Regrade


class GradingCriterionInline(admin.TabularInline):
    model = GradingCriterion
    extra = 0


@admin.register(GradingProfile)
class GradingProfileAdmin(GuardedModelAdmin):
    access_module = Module.AUTOMATION
    list_display = ("name", "is_default", "updated_at")
    list_filter = ("is_default",)
    search_fields = ("name", "description")
    inlines = (GradingCriterionInline,)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and obj.is_default:
            return ("name",)
        return ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_default:
            return False
        return super().has_delete_permission(request, obj)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # After the inline criteria are saved, so the regrade sees them.
        super().save_related(request, form, formsets, change)
        regrade_request(profile=form.instance, actor=request.user)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)
        regrade_request(profile=default_profile(), actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        super().delete_queryset(request, queryset.exclude(is_default=True))
        regrade_request(profile=default_profile(), actor=request.user)


@admin.register(GradingCriterion)
class GradingCriterionAdmin(GuardedModelAdmin):
    access_module = Module.AUTOMATION
    list_display = ("name", "profile", "weight", "position")
    list_filter = ("profile", "weight")
    search_fields = ("name",)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        previous = (
            GradingCriterion.objects.filter(pk=obj.pk).values_list("profile_id", flat=True).first()
        )
        super().save_model(request, obj, form, change)
        regrade_request(profile=obj.profile, actor=request.user)
        if previous is not None and previous != obj.profile_id:
            regrade_request(profile=GradingProfile.objects.get(pk=previous), actor=request.user)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        profile = obj.profile
        super().delete_model(request, obj)
        regrade_request(profile=profile, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        profiles = list(GradingProfile.objects.filter(criteria__in=queryset).distinct())
        super().delete_queryset(request, queryset)
        for profile in profiles:
            regrade_request(profile=profile, actor=request.user)


class _RegradesItsProspect(GuardedModelAdmin):
    """Rows about one prospect: saving or deleting them regrades that prospect at once."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        regrade(prospect_ids=[obj.prospect_id])

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        prospect_id = obj.prospect_id
        super().delete_model(request, obj)
        regrade(prospect_ids=[prospect_id])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        prospect_ids = list(queryset.values_list("prospect_id", flat=True))
        super().delete_queryset(request, queryset)
        regrade(prospect_ids=prospect_ids)


@admin.register(ProspectProfile)
class ProspectProfileAdmin(_RegradesItsProspect):
    access_module = Module.AUTOMATION
    list_display = ("prospect", "profile", "assigned_at")
    list_filter = ("profile",)
    raw_id_fields = ("prospect",)
    search_fields = ("prospect__email", "profile__name")


@admin.register(CriterionMark)
class CriterionMarkAdmin(_RegradesItsProspect):
    access_module = Module.AUTOMATION
    list_display = ("prospect", "criterion", "state", "marked_by", "marked_at")
    list_filter = ("state", "criterion__profile")
    raw_id_fields = ("prospect", "marked_by")
    search_fields = ("prospect__email", "criterion__name")


@admin.register(Regrade)
class RegradeAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.AUTOMATION
    list_display = ("created_at", "profile", "status", "processed", "total", "finished_at")
    list_filter = ("status",)
    search_fields = ("error",)
