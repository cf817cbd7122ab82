"""Lists: index, create, the list page (members, refresh history), criteria, live preview."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from mapp.access import access_required, request_user
from mapp.models import Level, Module
from prospects import services
from prospects.criteria import CriteriaError, criteria_catalogue, validate_criteria
from prospects.forms import ListForm
from prospects.models import ProspectList
from prospects.selectors import prospects_visible_to

MEMBER_PAGE_SIZE = 50
# A preview request body larger than this is not criteria anyone built by hand.
MAX_PREVIEW_BODY_BYTES = 200_000


def _builder_context(criteria: dict[str, Any]) -> dict[str, Any]:
    return {
        "criteria": criteria,
        "criteria_catalogue": criteria_catalogue(),
        "preview_url": reverse("lists:criteria_preview"),
    }


@access_required(Module.PROSPECTS)
def list_index(request: HttpRequest) -> HttpResponse:
    lists = ProspectList.objects.annotate(member_count=Count("memberships")).order_by("name", "id")
    return render(request, "lists/list_index.html", {"lists": lists})


@access_required(Module.MARKETING, read_level=Level.EDIT)
def list_create(request: HttpRequest) -> HttpResponse:
    form = ListForm(request.POST or None, initial={"is_dynamic": request.GET.get("dynamic") == "1"})
    if request.method == "POST" and form.is_valid():
        try:
            prospect_list = services.list_create(
                actor=request_user(request),
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                is_dynamic=form.cleaned_data["is_dynamic"],
                criteria=form.cleaned_data["criteria"],
                is_public=form.cleaned_data["is_public"],
                public_name=form.cleaned_data["public_name"],
            )
        except (ValidationError, CriteriaError) as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("List %(name)s created.") % {"name": prospect_list.name})
            return redirect("lists:detail", list_id=prospect_list.pk)
    criteria = (
        form.cleaned_data.get("criteria")
        if form.is_bound and hasattr(form, "cleaned_data")
        else None
    )
    return render(
        request,
        "lists/list_form.html",
        {
            "form": form,
            "prospect_list": None,
            **_builder_context(criteria or {"match": "all", "conditions": []}),
        },
    )


@access_required(Module.PROSPECTS)
def list_detail(request: HttpRequest, list_id: int) -> HttpResponse:
    prospect_list = get_object_or_404(ProspectList, pk=list_id)
    members = prospects_visible_to(request_user(request)).filter(
        memberships__prospect_list=prospect_list
    )
    page = Paginator(
        members.order_by("-memberships__created_at", "-id"), MEMBER_PAGE_SIZE
    ).get_page(request.GET.get("page"))
    return render(
        request,
        "lists/list_detail.html",
        {
            "prospect_list": prospect_list,
            "page": page,
            "member_total": page.paginator.count,
            "refreshes": prospect_list.refreshes.all()[:10],
            "criteria_json": json.dumps(prospect_list.criteria, ensure_ascii=False),
        },
    )


@access_required(Module.MARKETING, read_level=Level.EDIT)
def list_edit(request: HttpRequest, list_id: int) -> HttpResponse:
    prospect_list = get_object_or_404(ProspectList, pk=list_id)
    form = ListForm(
        request.POST or None,
        initial={
            "name": prospect_list.name,
            "description": prospect_list.description,
            "is_dynamic": prospect_list.is_dynamic,
            "is_public": prospect_list.is_public,
            "public_name": prospect_list.public_name,
            "criteria": json.dumps(prospect_list.criteria, ensure_ascii=False),
        },
        prospect_list=prospect_list,
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.list_update(
                actor=request_user(request),
                prospect_list=prospect_list,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                is_public=form.cleaned_data["is_public"],
                public_name=form.cleaned_data["public_name"],
            )
        except ValidationError as error:
            form.add_error(None, error.messages[0])
        if prospect_list.is_dynamic and not form.errors:
            try:
                services.list_update_criteria(
                    actor=request_user(request),
                    prospect_list=prospect_list,
                    criteria=form.cleaned_data["criteria"],
                )
            except (ValidationError, CriteriaError) as error:
                form.add_error(None, str(error))
        if not form.errors:
            messages.success(request, _("Changes saved; the members are being refreshed."))
            return redirect("lists:detail", list_id=prospect_list.pk)
    return render(
        request,
        "lists/list_form.html",
        {"form": form, "prospect_list": prospect_list, **_builder_context(prospect_list.criteria)},
    )


@access_required(Module.MARKETING, read_level=Level.EDIT)
@require_POST
def list_refresh(request: HttpRequest, list_id: int) -> HttpResponse:
    prospect_list = get_object_or_404(ProspectList, pk=list_id, is_dynamic=True)
    refresh = services.dynamic_list_refresh(prospect_list=prospect_list)
    messages.success(
        request,
        _("Refreshed: %(added)d added, %(removed)d removed, %(members)d members.")
        % {
            "added": refresh.added_count,
            "removed": refresh.removed_count,
            "members": refresh.member_count,
        },
    )
    return redirect("lists:detail", list_id=prospect_list.pk)


@access_required(Module.MARKETING, read_level=Level.EDIT)
@require_POST
def list_delete(request: HttpRequest, list_id: int) -> HttpResponse:
    prospect_list = get_object_or_404(ProspectList, pk=list_id)
    name = prospect_list.name
    services.list_delete(actor=request_user(request), prospect_list=prospect_list)
    messages.success(request, _("List %(name)s deleted.") % {"name": name})
    return redirect("lists:index")


@access_required(Module.PROSPECTS, write_level=Level.VIEW)
@require_POST
def criteria_preview(request: HttpRequest) -> JsonResponse:
    """Live count for the criteria builder: how many of *your* prospects match, or why not."""
    if len(request.body) > MAX_PREVIEW_BODY_BYTES:
        return JsonResponse({"error": _("The criteria are too large."), "path": ""}, status=400)
    try:
        body = json.loads(request.body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return JsonResponse({"error": _("The request is not valid JSON."), "path": ""}, status=400)
    if not isinstance(body, dict):
        return JsonResponse({"error": _("The request is not valid JSON."), "path": ""}, status=400)
    try:
        criteria = validate_criteria(body.get("criteria", {}))
    except CriteriaError as error:
        return JsonResponse({"error": error.message, "path": error.path}, status=400)
    matching = prospects_visible_to(request_user(request)).filter(
        services.compile_criteria(criteria, validated=True)
    )
    return JsonResponse({"count": matching.count()})
