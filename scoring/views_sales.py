"""Sales-side pages: my HOT leads, my overdue tasks, and the sales manager's morning dashboard.

Reads go through scoring.sales (which starts from the role-scoped selectors); the manager's page
is only for roles that see every prospect (Sales Manager, Marketing, Administrator).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from mapp.access import access_required, request_user, sees_all_prospects
from mapp.models import Module
from prospects.models import Prospect, Task
from scoring.sales import (
    hot_leads_for_user,
    hot_leads_not_followed_up,
    hot_leads_not_followed_up_counts,
    local_today,
    overdue_tasks_by_user,
    overdue_tasks_for_user,
)

PAGE_SIZE = 50


@dataclass(frozen=True)
class OverdueTaskRow:
    task: Task
    days_overdue: int


@dataclass(frozen=True)
class WaitingLeadRow:
    """A HOT lead on the manager's dashboard, with how long it has waited."""

    prospect: Prospect
    hours_since_hot: int | None
    has_overdue_task: bool


def _hours_since(moment: datetime.datetime | None, now: datetime.datetime) -> int | None:
    if moment is None:
        return None
    return max(0, int((now - moment).total_seconds() // 3600))


@access_required(Module.PROSPECTS)
def hot_leads(request: HttpRequest) -> HttpResponse:
    """HOT prospects assigned to me, newest HOT first, with their open task counts."""
    user = request_user(request)
    page = Paginator(hot_leads_for_user(user=user), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "scoring/sales/hot_leads.html",
        {
            "page": page,
            "leads": page.object_list,
            "today": local_today(),
            "show_manager_tab": sees_all_prospects(user),
        },
    )


@access_required(Module.PROSPECTS)
def overdue_tasks(request: HttpRequest) -> HttpResponse:
    """My open tasks due before today (local date), oldest first, with days overdue."""
    user = request_user(request)
    today = local_today()
    page = Paginator(overdue_tasks_for_user(user=user, today=today), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    rows = [
        OverdueTaskRow(task=task, days_overdue=(today - task.due_date).days)
        for task in page.object_list
        if task.due_date is not None  # always set: the query keeps only tasks due before today
    ]
    return render(
        request,
        "scoring/sales/overdue_tasks.html",
        {
            "page": page,
            "rows": rows,
            "today": today,
            "show_manager_tab": sees_all_prospects(user),
        },
    )


@access_required(Module.PROSPECTS)
def manager(request: HttpRequest) -> HttpResponse:
    """The morning check: HOT leads not followed up, and overdue tasks per user."""
    user = request_user(request)
    if not sees_all_prospects(user):
        raise PermissionDenied
    now = timezone.now()
    today = local_today(now)
    page = Paginator(hot_leads_not_followed_up(user=user), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    leads = [
        WaitingLeadRow(
            prospect=prospect,
            hours_since_hot=_hours_since(prospect.hot_since, now),
            has_overdue_task=bool(prospect.next_due_date and prospect.next_due_date < today),
        )
        for prospect in page.object_list
    ]
    overdue_groups = overdue_tasks_by_user(user=user, today=today)
    return render(
        request,
        "scoring/sales/manager.html",
        {
            "page": page,
            "leads": leads,
            "lead_counts": hot_leads_not_followed_up_counts(user=user),
            "overdue_groups": [
                {"group": group, "days_overdue": group.days_overdue(today)}
                for group in overdue_groups
            ],
            "overdue_total": sum(group.count for group in overdue_groups),
            "today": today,
            "show_manager_tab": True,
        },
    )
