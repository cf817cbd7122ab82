"""Task (ToDo) pages: my tasks, overdue (the sales manager's view), all tasks, create, detail.

Reads go through prospects.task_selectors (role scope), writes through prospects.task_services.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from mapp.access import access_required, request_user
from mapp.forms import UserChoiceField
from mapp.models import Level, Module, User
from prospects.models import Prospect, Task, TaskPriority, TaskStatus
from prospects.selectors import prospect_get_for_user
from prospects.task_selectors import (
    assignable_users,
    task_can_edit,
    task_filter_users,
    task_get_for_user,
    task_is_overdue,
    tasks_for_user,
    tasks_ordered,
    tasks_overdue_by_assignee,
    tasks_visible_to,
)
from prospects.task_services import (
    task_cancel,
    task_complete,
    task_create,
    task_reopen,
    task_update,
)

PAGE_SIZE = 50


# --- forms -------------------------------------------------------------------------------------


class TaskForm(forms.Form):
    subject = forms.CharField(label=gettext_lazy("Subject"), max_length=200)
    assignee = UserChoiceField(label=gettext_lazy("Assignee"), queryset=User.objects.none())
    due_date = forms.DateField(
        label=gettext_lazy("Due date"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    priority = forms.TypedChoiceField(
        label=gettext_lazy("Priority"),
        choices=TaskPriority.choices,
        coerce=int,
        initial=TaskPriority.NORMAL,
    )
    notes = forms.CharField(
        label=gettext_lazy("Notes"), required=False, widget=forms.Textarea(attrs={"rows": 4})
    )

    def __init__(self, *args: Any, assignees: QuerySet[User], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["assignee"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = assignees


class TaskFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=gettext_lazy("Status"),
        required=False,
        choices=[("", gettext_lazy("Any status")), *TaskStatus.choices],
    )
    assignee = UserChoiceField(
        label=gettext_lazy("Assignee"),
        queryset=User.objects.none(),
        required=False,
        empty_label=gettext_lazy("Anybody"),
    )
    due_before = forms.DateField(
        label=gettext_lazy("Due before"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def __init__(self, *args: Any, users: QuerySet[User], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["assignee"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = users


def _errors_to_form(form: forms.Form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for name, field_errors in error.error_dict.items():
            target = name if name in form.fields else None
            for field_error in field_errors:
                form.add_error(target, field_error)
    else:
        for message in error.messages:
            form.add_error(None, message)


# --- rows --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRow:
    """A task as a list shows it: with what the viewer may do and whether it is overdue."""

    task: Task
    is_overdue: bool
    can_edit: bool


def _rows(user: User, tasks: Iterable[Task], today: datetime.date) -> list[TaskRow]:
    return [
        TaskRow(
            task=task,
            is_overdue=task_is_overdue(task, today=today),
            can_edit=task_can_edit(user=user, task=task),
        )
        for task in tasks
    ]


def _safe_next(request: HttpRequest, fallback: str) -> str:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if next_url and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return next_url
    return fallback


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


# --- pages -------------------------------------------------------------------------------------


@access_required(Module.PROSPECTS)
def task_mine(request: HttpRequest) -> HttpResponse:
    """The current user's open tasks, soonest due first, overdue ones highlighted."""
    user = request_user(request)
    today = timezone.localdate()
    page = Paginator(tasks_for_user(user, status=TaskStatus.OPEN), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    rows = _rows(user, page.object_list, today)
    return render(
        request,
        "tasks/task_mine.html",
        {
            "page": page,
            "rows": rows,
            "overdue_count": sum(1 for row in rows if row.is_overdue),
            "show_assignee": False,
            "next_url": request.get_full_path(),
        },
    )


@access_required(Module.PROSPECTS)
def task_overdue(request: HttpRequest) -> HttpResponse:
    """Overdue open tasks grouped by assignee: everybody's for all-prospect roles, else own."""
    user = request_user(request)
    today = timezone.localdate()
    groups = tasks_overdue_by_assignee(user=user, today=today)
    return render(
        request,
        "tasks/task_overdue.html",
        {
            "groups": [
                {"group": group, "rows": _rows(user, group.tasks, today)} for group in groups
            ],
            "total": sum(group.count for group in groups),
            "today": today,
            "show_assignee": False,
            "next_url": request.get_full_path(),
        },
    )


@access_required(Module.PROSPECTS)
def task_list(request: HttpRequest) -> HttpResponse:
    """All tasks the user may see, filtered by status (open by default), assignee, due date."""
    user = request_user(request)
    data = request.GET.copy()
    if "status" not in data:
        data["status"] = TaskStatus.OPEN
    form = TaskFilterForm(data, users=task_filter_users(user=user))
    form.is_valid()  # invalid filters are shown with their error and ignored
    filters = {name: value for name, value in form.cleaned_data.items() if value}
    tasks = tasks_visible_to(user)
    if "status" in filters:
        tasks = tasks.filter(status=filters["status"])
    if "assignee" in filters:
        tasks = tasks.filter(assignee=filters["assignee"])
    if "due_before" in filters:
        tasks = tasks.filter(due_date__lt=filters["due_before"])
    page = Paginator(tasks_ordered(tasks), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "tasks/task_list.html",
        {
            "form": form,
            "page": page,
            "rows": _rows(user, page.object_list, timezone.localdate()),
            "show_assignee": True,
            "next_url": request.get_full_path(),
        },
    )


@access_required(Module.PROSPECTS, read_level=Level.EDIT)
def task_create_view(request: HttpRequest) -> HttpResponse:
    """New task, optionally about the prospect given as ``?prospect=<id>``."""
    user = request_user(request)
    prospect: Prospect | None = None
    prospect_param = request.GET.get("prospect", "").strip()
    if prospect_param:
        if not prospect_param.isdigit():
            raise Http404
        prospect = prospect_get_for_user(user=user, prospect_id=int(prospect_param))
    assignees = assignable_users(actor=user)
    default_assignee = user
    if prospect is not None and prospect.assigned_user_id is not None:
        default_assignee = assignees.filter(pk=prospect.assigned_user_id).first() or user
    form = TaskForm(
        request.POST or None,
        assignees=assignees,
        initial={"assignee": default_assignee.pk, "priority": TaskPriority.NORMAL},
    )
    if request.method == "POST" and form.is_valid():
        try:
            task = task_create(actor=user, prospect=prospect, **form.cleaned_data)
        except ValidationError as error:
            _errors_to_form(form, error)
        else:
            messages.success(request, _("Task created."))
            return redirect("tasks:detail", task_id=task.pk)
    return render(request, "tasks/task_form.html", {"form": form, "prospect": prospect})


@access_required(Module.PROSPECTS)
def task_detail(request: HttpRequest, task_id: int) -> HttpResponse:
    """A task, and its edit form for those who may change it (POST saves)."""
    user = request_user(request)
    task = task_get_for_user(user=user, task_id=task_id)
    can_edit = task_can_edit(user=user, task=task)
    if request.method == "POST" and not can_edit:
        raise PermissionDenied  # visible (about the user's prospect) but not theirs to change
    form = None
    if can_edit:
        # The current assignee stays selectable even if they could no longer be chosen anew.
        assignees = assignable_users(actor=user) | User.objects.filter(pk=task.assignee_id)
        form = TaskForm(
            request.POST or None,
            assignees=assignees.distinct(),
            initial={
                "subject": task.subject,
                "assignee": task.assignee_id,
                "due_date": task.due_date,
                "priority": task.priority,
                "notes": task.notes,
            },
        )
        if request.method == "POST" and form.is_valid():
            try:
                task_update(actor=user, task=task, data=form.cleaned_data)
            except ValidationError as error:
                _errors_to_form(form, error)
            else:
                messages.success(request, _("Changes saved."))
                return redirect("tasks:detail", task_id=task.pk)
    return render(
        request,
        "tasks/task_detail.html",
        {
            "task": task,
            "form": form,
            "can_edit": can_edit,
            "is_overdue": task_is_overdue(task),
        },
    )


def _status_change(request: HttpRequest, task_id: int, change: Callable[..., Task]) -> HttpResponse:
    user = request_user(request)
    task = task_get_for_user(user=user, task_id=task_id)
    if not task_can_edit(user=user, task=task):
        raise PermissionDenied
    change(actor=user, task=task)
    if _is_htmx(request):
        # The row swaps itself (hx-target="closest tr"); same columns as the page it sits on.
        return render(
            request,
            "tasks/_task_row.html",
            {
                "row": _rows(user, [task], timezone.localdate())[0],
                "show_assignee": request.POST.get("show_assignee") == "1",
                "next_url": _safe_next(request, reverse("tasks:mine")),
            },
        )
    return HttpResponseRedirect(_safe_next(request, reverse("tasks:detail", args=[task.pk])))


@access_required(Module.PROSPECTS)
@require_POST
def task_complete_view(request: HttpRequest, task_id: int) -> HttpResponse:
    return _status_change(request, task_id, task_complete)


@access_required(Module.PROSPECTS)
@require_POST
def task_reopen_view(request: HttpRequest, task_id: int) -> HttpResponse:
    return _status_change(request, task_id, task_reopen)


@access_required(Module.PROSPECTS)
@require_POST
def task_cancel_view(request: HttpRequest, task_id: int) -> HttpResponse:
    return _status_change(request, task_id, task_cancel)
