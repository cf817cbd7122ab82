"""Django admin for grading profiles, their criteria, marks and regrades."""

from __future__ import annotations

from django.contrib import admin

from mapp.admin_site import GuardedModelAdmin, ReadOnlyGuardedModelAdmin
from mapp.models import Module
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


@admin.register(GradingCriterion)
class GradingCriterionAdmin(GuardedModelAdmin):
    access_module = Module.AUTOMATION
    list_display = ("name", "profile", "weight", "position")
    list_filter = ("profile", "weight")
    search_fields = ("name",)


@admin.register(ProspectProfile)
class ProspectProfileAdmin(GuardedModelAdmin):
    access_module = Module.AUTOMATION
    list_display = ("prospect", "profile", "assigned_at")
    list_filter = ("profile",)
    raw_id_fields = ("prospect",)
    search_fields = ("prospect__email", "profile__name")


@admin.register(CriterionMark)
class CriterionMarkAdmin(GuardedModelAdmin):
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
