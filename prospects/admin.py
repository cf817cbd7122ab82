from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from mapp.access import sees_all_prospects
from mapp.admin_site import GuardedModelAdmin
from mapp.models import Module
from prospects.models import Prospect


@admin.register(Prospect)
class ProspectAdmin(GuardedModelAdmin):
    access_module = Module.PROSPECTS
    list_display = (
        "email",
        "last_name",
        "first_name",
        "company_name",
        "assigned_user",
        "created_at",
    )
    list_filter = ("assigned_user", "created_at")
    search_fields = ("email", "last_name", "first_name", "company_name", "job_title")
    autocomplete_fields = ("assigned_user",)

    def scope_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if sees_all_prospects(request.user):  # type: ignore[arg-type]
            return queryset
        return queryset.filter(assigned_user=request.user)
