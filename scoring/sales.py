"""Reads for the sales-side pages: my HOT leads, my overdue tasks, the sales manager's dashboard.

The manager's dashboard is the seed's 「営業マネージャーが毎朝チェックするダッシュボード」
(活用7ステップ, 営業アプローチ): the HOT leads nobody has followed up yet, and the
follow-up tasks (ToDo) whose due date has passed, per user.

**Followed up.** The seed's input rule is
「営業担当者は見込み客にアプローチしたらToDoを完了にする」, so a HOT lead counts
as *followed up* once a task about it has been marked done at or after the moment it became HOT
(``Task.completed_at >= Prospect.hot_since``). Tasks done before it became HOT (an earlier
campaign's call) do not count; who completed it does not matter (a manager who calls the lead
and closes the task has followed it up). A HOT lead without ``hot_since`` (data from before the
HOT rule) is never followed up by this test and sorts first as "unknown".

Every query starts from the role scope (prospects.selectors.prospects_visible_to,
prospects.task_selectors); nothing here loops over rows to query more rows.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db.models import (
    BooleanField,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    Min,
    OuterRef,
    Q,
    QuerySet,
)
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from mapp.access import sees_all_prospects
from mapp.models import Module, User
from prospects.models import HotStatus, Prospect, Task, TaskStatus
from prospects.selectors import prospects_visible_to
from prospects.task_selectors import tasks_overdue, tasks_overdue_visible_to


def local_today(now: datetime.datetime | None = None) -> datetime.date:
    """Today's date in the site's time zone (Asia/Tokyo by default), the day tasks fall due."""
    return timezone.localdate(now or timezone.now())


def followed_up_q() -> Q:
    """True for a prospect with a task about it marked done since it became HOT (see above)."""
    return Q(
        Exists(
            Task.objects.filter(
                prospect=OuterRef("pk"),
                status=TaskStatus.DONE,
                completed_at__gte=OuterRef("hot_since"),
            )
        )
    )


def _with_open_tasks(queryset: QuerySet[Prospect]) -> QuerySet[Prospect]:
    """Open task count and the soonest open due date, in the same query (no N+1)."""
    open_tasks = Q(tasks__status=TaskStatus.OPEN)
    return queryset.annotate(
        open_task_count=Count("tasks", filter=open_tasks),
        next_due_date=Min("tasks__due_date", filter=open_tasks),
    )


def hot_leads_for_user(*, user: User) -> QuerySet[Prospect]:
    """My HOT leads: HOT prospects assigned to ``user`` (within their scope), newest HOT first."""
    queryset = prospects_visible_to(user).filter(hot_status=HotStatus.HOT, assigned_user=user)
    return _with_open_tasks(queryset).order_by(F("hot_since").desc(nulls_last=True), "-id")


def overdue_tasks_for_user(*, user: User, today: datetime.date) -> QuerySet[Task]:
    """``user``'s open tasks due before ``today`` (local date), oldest due first."""
    return tasks_overdue(user=user, today=today)


def hot_leads_not_followed_up(*, user: User) -> QuerySet[Prospect]:
    """HOT leads not followed up, unassigned first, then the longest-waiting first."""
    queryset = (
        prospects_visible_to(user)
        .filter(hot_status=HotStatus.HOT)
        .exclude(followed_up_q())
        .annotate(
            is_unassigned=ExpressionWrapper(
                Q(assigned_user__isnull=True), output_field=BooleanField()
            )
        )
    )
    return _with_open_tasks(queryset).order_by(
        F("is_unassigned").desc(), F("hot_since").asc(nulls_first=True), "id"
    )


def hot_leads_not_followed_up_counts(*, user: User) -> dict[str, int]:
    """Totals for the dashboard header: all not followed up, and how many have nobody."""
    return (
        prospects_visible_to(user)
        .filter(hot_status=HotStatus.HOT)
        .exclude(followed_up_q())
        .aggregate(
            total=Count("id"),
            unassigned=Count("id", filter=Q(assigned_user__isnull=True)),
        )
    )


@dataclass(frozen=True)
class OverdueByUser:
    """One assignee's overdue tasks on the manager's dashboard."""

    assignee: User
    count: int
    oldest_due_date: datetime.date

    def days_overdue(self, today: datetime.date) -> int:
        return (today - self.oldest_due_date).days


def overdue_tasks_by_user(*, user: User, today: datetime.date) -> list[OverdueByUser]:
    """Overdue tasks per assignee (most first, then the oldest), in two queries."""
    rows = list(
        tasks_overdue_visible_to(user, today=today)
        .order_by()
        .values("assignee_id")
        .annotate(count=Count("id"), oldest=Min("due_date"))
    )
    assignees = User.objects.in_bulk([row["assignee_id"] for row in rows])
    groups = [
        OverdueByUser(
            assignee=assignees[row["assignee_id"]],
            count=row["count"],
            oldest_due_date=row["oldest"],
        )
        for row in rows
        if row["assignee_id"] in assignees
    ]
    return sorted(
        groups,
        key=lambda group: (-group.count, group.oldest_due_date, group.assignee.display_name),
    )


def register_sales_dashboard_cards() -> None:
    """Called from ScoringConfig.ready(): the HOT cards on the home dashboard."""
    from mapp.dashboard import DashboardCard, register_dashboard_card

    register_dashboard_card(
        DashboardCard(
            key="hot_leads_mine",
            label=_("My HOT leads"),
            module=Module.PROSPECTS,
            value=lambda user: hot_leads_for_user(user=user).order_by().count(),
            url_name="sales:hot_leads",
            order=20,
        )
    )
    register_dashboard_card(
        DashboardCard(
            key="hot_leads_not_followed_up",
            label=_("HOT leads not followed up"),
            module=Module.PROSPECTS,
            visible=sees_all_prospects,
            value=lambda user: hot_leads_not_followed_up_counts(user=user)["total"],
            url_name="sales:manager",
            order=21,
        )
    )
