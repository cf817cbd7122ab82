"""The page actions pages: tracked URLs with a score, actions and the priority-page flag."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from mapp.access import access_required, has_access, request_user
from mapp.models import Level, Module
from prospects.actions import action_label
from scoring.forms_page_actions import PageActionForm
from scoring.models import PageAction
from scoring.page_actions import (
    VIEW_COUNT_DAYS,
    display_url,
    page_action_delete,
    page_action_save,
    page_action_set_active,
    page_action_view_counts,
)


@access_required(Module.AUTOMATION)
def page_action_list(request: HttpRequest) -> HttpResponse:
    page_actions = list(PageAction.objects.order_by("name", "id"))
    counts = page_action_view_counts(page_actions=page_actions)
    return render(
        request,
        "scoring/page_actions/list.html",
        {
            "rows": [
                {
                    "page_action": page_action,
                    "url": display_url(page_action.url_pattern),
                    "actions": [
                        action_label(str(item.get("action", "")))
                        for item in page_action.actions
                        if isinstance(item, dict)
                    ],
                    "views": None if counts is None else counts.get(page_action.pk, 0),
                }
                for page_action in page_actions
            ],
            "counts_available": counts is not None,
            "count_days": VIEW_COUNT_DAYS,
            "can_edit": has_access(request.user, Module.AUTOMATION, Level.EDIT),
        },
    )


@access_required(Module.AUTOMATION, read_level=Level.EDIT)
def page_action_edit(request: HttpRequest, page_action_id: int | None = None) -> HttpResponse:
    page_action = get_object_or_404(PageAction, pk=page_action_id) if page_action_id else None
    actor = request_user(request)
    form = PageActionForm(request.POST or None, instance=page_action, actor=actor)
    if request.method == "POST" and form.is_valid():
        page_action_save(page_action=form.save(commit=False), actor=actor)
        messages.success(request, _("Page action saved. It applies to page views from now on."))
        return redirect("page_actions:list")
    return render(
        request, "scoring/page_actions/form.html", {"form": form, "page_action": page_action}
    )


@access_required(Module.AUTOMATION, read_level=Level.EDIT)
@require_POST
def page_action_toggle(request: HttpRequest, page_action_id: int) -> HttpResponse:
    page_action = get_object_or_404(PageAction, pk=page_action_id)
    page_action_set_active(
        page_action=page_action,
        is_active=not page_action.is_active,
        actor=request_user(request),
    )
    if page_action.is_active:
        messages.success(request, _("Page action activated."))
    else:
        messages.success(request, _("Page action paused."))
    return redirect("page_actions:list")


@access_required(Module.AUTOMATION, read_level=Level.EDIT)
@require_POST
def page_action_remove(request: HttpRequest, page_action_id: int) -> HttpResponse:
    page_action = get_object_or_404(PageAction, pk=page_action_id)
    page_action_delete(page_action=page_action, actor=request_user(request))
    messages.success(request, _("Page action deleted. The points it gave stay in the history."))
    return redirect("page_actions:list")
