"""Reads of tasks (ToDo), always through the user's role scope, and the dashboard cards.

Roles that see every prospect see every task; Sales-scoped roles see the tasks assigned to them
and the tasks about prospects assigned to them (prospects.selectors.prospects_visible_to).
"Overdue" means open with a due date before today's date in the site's time zone (Asia/Tokyo by
default), so a task due today is not overdue until the local day is over.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db.models import Count, F, Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from mapp.access import has_access, sees_all_prospects
from mapp.models import Level, Module, User
from prospects.models import Task, TaskStatus

# The team overdue page lists at most this many task rows (the per-assignee counts are always
# complete); beyond it the counts link to the filtered task list, which paginates.
OVERDUE_ROWS_LIMIT = 500


def _with_relations(queryset: QuerySet[Task]) -> QuerySet[Task]:
    # Every task page shows the assignee and the prospect; join them instead of N+1 queries.
    return queryset.select_related("assignee", "prospect", "created_by")


def tasks_ordered(queryset: QuerySet[Task]) -> QuerySet[Task]:
    """Soonest due first (undated last), then the highest priority, then the oldest."""
    return queryset.order_by(F("due_date").asc(nulls_last=True), "-priority", "id")


def task_is_overdue(task: Task, *, today: datetime.date | None = None) -> bool:
    """Open and due before today's local date (a task due today is not overdue yet)."""
    if task.status != TaskStatus.OPEN or task.due_date is None:
        return False
    return task.due_date < (today or timezone.localdate())


def tasks_visible_to(user: User) -> QuerySet[Task]:
    """Every task query a user triggers starts here: Sales sees only its own and its prospects'."""
    if not has_access(user, Module.PROSPECTS, Level.VIEW):
        return Task.objects.none()
    queryset = _with_relations(Task.objects.all())
    if sees_all_prospects(user):
        return queryset
    return queryset.filter(Q(assignee=user) | Q(prospect__assigned_user=user))


def task_get_for_user(*, user: User, task_id: int) -> Task:
    """One task the user may see; 404 (not 403) so ids of others' tasks reveal nothing."""
    try:
        return tasks_visible_to(user).get(pk=task_id)
    except Task.DoesNotExist as error:
        raise Http404 from error


def task_can_edit(*, user: User, task: Task) -> bool:
    """Whether ``user`` may change ``task``: all-prospect roles any task, Sales only its own."""
    if not has_access(user, Module.PROSPECTS, Level.EDIT):
        return False
    return sees_all_prospects(user) or task.assignee_id == user.pk


def tasks_for_user(user: User, *, status: str | None = None) -> QuerySet[Task]:
    """Tasks assigned to ``user`` ("my tasks"), soonest due first."""
    queryset = _with_relations(Task.objects.filter(assignee=user))
    if status:
        queryset = queryset.filter(status=status)
    return tasks_ordered(queryset)


def tasks_overdue(
    *, user: User | None = None, today: datetime.date | None = None
) -> QuerySet[Task]:
    """Open tasks due before ``today`` (local date), of ``user`` or of everybody when None."""
    today = today or timezone.localdate()
    queryset = _with_relations(Task.objects.filter(status=TaskStatus.OPEN, due_date__lt=today))
    if user is not None:
        queryset = queryset.filter(assignee=user)
    return queryset.order_by("due_date", "-priority", "id")


def tasks_overdue_visible_to(user: User, *, today: datetime.date | None = None) -> QuerySet[Task]:
    """The overdue page's scope: everybody's for all-prospect roles, else the user's own."""
    if not has_access(user, Module.PROSPECTS, Level.VIEW):
        return Task.objects.none()
    return tasks_overdue(user=None if sees_all_prospects(user) else user, today=today)


@dataclass
class OverdueGroup:
    """One assignee's overdue tasks on the team page."""

    assignee: User
    count: int
    tasks: list[Task] = field(default_factory=list)

    @property
    def shown_all(self) -> bool:
        return len(self.tasks) >= self.count


def tasks_overdue_by_assignee(
    *, user: User, today: datetime.date | None = None, limit: int = OVERDUE_ROWS_LIMIT
) -> list[OverdueGroup]:
    """Overdue tasks grouped by assignee (most overdue tasks first), in two queries.

    The counts come from one GROUP BY and are complete; the rows are capped at ``limit``.
    """
    today = today or timezone.localdate()
    scoped = tasks_overdue_visible_to(user, today=today)
    counts = dict(
        scoped.order_by()
        .values_list("assignee_id")
        .annotate(total=Count("id"))
        .values_list("assignee_id", "total")
    )
    if not counts:
        return []
    groups: dict[int, OverdueGroup] = {}
    rows = scoped.order_by("assignee__last_name", "assignee__email", "due_date", "-priority", "id")
    for task in rows[:limit]:
        group = groups.get(task.assignee_id)
        if group is None:
            group = groups[task.assignee_id] = OverdueGroup(
                assignee=task.assignee, count=counts.get(task.assignee_id, 0)
            )
        group.tasks.append(task)
    missing = set(counts) - set(groups)
    if missing:
        # Assignees whose rows fell beyond the cap still get their count.
        for assignee in User.objects.filter(pk__in=missing):
            groups[assignee.pk] = OverdueGroup(assignee=assignee, count=counts[assignee.pk])
    return sorted(groups.values(), key=lambda group: (-group.count, group.assignee.display_name))


# --- counts for dashboards ---------------------------------------------------------------------


def task_count_open(user: User) -> int:
    return Task.objects.filter(assignee=user, status=TaskStatus.OPEN).count()


def task_count_overdue(user: User) -> int:
    return tasks_overdue(user=user).count()


def task_count_overdue_team(user: User) -> int:
    return tasks_overdue_visible_to(user).count()


def task_count_assigned(user: User) -> int:
    """Open tasks a deactivated user would leave behind (mapp.assignments registry)."""
    return task_count_open(user)


def assignable_users(*, actor: User) -> QuerySet[User]:
    """Whom ``actor`` may give a task to: active users whose role opens the task pages.

    A Sales-scoped actor may only give tasks to themselves.
    """
    queryset = User.objects.filter(
        is_active=True, role__permissions__prospects__gte=int(Level.VIEW)
    ).order_by("last_name", "first_name", "email")
    if not sees_all_prospects(actor):
        queryset = queryset.filter(pk=actor.pk)
    return queryset


def task_filter_users(*, user: User) -> QuerySet[User]:
    """Users offered in the task list's assignee filter."""
    if sees_all_prospects(user):
        return (
            User.objects.filter(Q(is_active=True) | Q(tasks__status=TaskStatus.OPEN))
            .distinct()
            .order_by("last_name", "first_name", "email")
        )
    return User.objects.filter(pk=user.pk)


def register_task_dashboard_cards() -> None:
    """Called from ProspectsConfig.ready(): the task cards on the home dashboard."""
    from mapp.dashboard import DashboardCard, register_dashboard_card

    register_dashboard_card(
        DashboardCard(
            key="tasks_mine_open",
            label=_("My open tasks"),
            module=Module.PROSPECTS,
            value=task_count_open,
            url_name="tasks:mine",
            order=30,
        )
    )
    register_dashboard_card(
        DashboardCard(
            key="tasks_mine_overdue",
            label=_("My overdue tasks"),
            module=Module.PROSPECTS,
            value=task_count_overdue,
            url_name="tasks:mine",
            order=31,
        )
    )
    # The team card is for the roles that see every prospect (Sales Manager, Admin, Marketing).
    register_dashboard_card(
        DashboardCard(
            key="tasks_team_overdue",
            label=_("Overdue tasks (team)"),
            module=Module.PROSPECTS,
            visible=sees_all_prospects,
            value=task_count_overdue_team,
            url_name="tasks:overdue",
            order=32,
        )
    )
