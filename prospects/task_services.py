"""Writes of tasks (ToDo): create, update, complete, reopen, cancel, hand over.

A task given to someone else notifies them (in-app and by email, in their language). Automations
pass a ``dedup_key`` so a retried job does not create the same task twice; see
:func:`task_create` for how that is kept without a column of its own.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from mapp.access import has_access, sees_all_prospects
from mapp.models import AuditLogEntry, Level, Module, User
from mapp.notifications import notify_user
from mapp.services import audit_log_record
from prospects.models import Prospect, Task, TaskPriority, TaskStatus
from prospects.selectors import prospects_visible_to
from prospects.task_selectors import task_can_edit

SUBJECT_MAX_LENGTH = 200
UPDATABLE_FIELDS: tuple[str, ...] = ("subject", "assignee", "due_date", "priority", "notes")
AUDIT_OBJECT_TYPE = Task._meta.label_lower


def _clean_subject(subject: str, errors: dict[str, str]) -> str:
    subject = (subject or "").strip()
    if not subject:
        errors["subject"] = _("A task needs a subject.")
    elif len(subject) > SUBJECT_MAX_LENGTH:
        errors["subject"] = _("The subject may have at most %(limit)d characters.") % {
            "limit": SUBJECT_MAX_LENGTH
        }
    return subject


def _clean_priority(priority: Any, errors: dict[str, str]) -> int:
    try:
        value = int(priority)
    except (TypeError, ValueError):
        value = 0
    if value not in TaskPriority.values:
        errors["priority"] = _("Choose a valid priority.")
    return value


def _check_assignee(
    *, actor: User | None, assignee: User, prospect: Prospect | None, errors: dict[str, str]
) -> None:
    if not assignee.is_active:
        errors["assignee"] = _("Tasks can only be given to active users.")
        return
    if not has_access(assignee, Module.PROSPECTS, Level.VIEW):
        errors["assignee"] = _("%(user)s's role cannot open tasks.") % {
            "user": assignee.display_name
        }
        return
    if actor is not None and not sees_all_prospects(actor) and assignee.pk != actor.pk:
        errors["assignee"] = _("You can only create tasks for yourself.")
        return
    # The task page shows its prospect: the assignee must be allowed to see it.
    if prospect is not None and not prospects_visible_to(assignee).filter(pk=prospect.pk).exists():
        errors["assignee"] = _(
            "%(user)s cannot see this prospect; assign the prospect to them first."
        ) % {"user": assignee.display_name}


def _raise_if(errors: dict[str, str]) -> None:
    if errors:
        raise ValidationError(errors)


def _require_can_edit(actor: User | None, task: Task) -> None:
    if actor is not None and not task_can_edit(user=actor, task=task):
        raise PermissionDenied


def _existing_deduplicated_task(
    *, assignee: User, prospect: Prospect | None, subject: str, dedup_key: str
) -> Task | None:
    """The open task an earlier call with ``dedup_key`` created, if it is still open.

    The key is kept in the task's "task.create" audit-log entry (``changes.dedup_key``): the
    candidates are found through the task index (assignee, status), then confirmed through the
    audit log's (object_type, object_id) index, so neither table is scanned.
    """
    candidate_ids = [
        str(task_id)
        for task_id in Task.objects.filter(
            assignee=assignee, status=TaskStatus.OPEN, prospect=prospect, subject=subject
        ).values_list("pk", flat=True)
    ]
    if not candidate_ids:
        return None
    matched = (
        AuditLogEntry.objects.filter(
            object_type=AUDIT_OBJECT_TYPE,
            object_id__in=candidate_ids,
            action="task.create",
            changes__dedup_key=dedup_key,
        )
        .order_by("id")
        .values_list("object_id", flat=True)
        .first()
    )
    if matched is None:
        return None
    return Task.objects.select_related("assignee", "prospect").get(pk=int(matched))


def _lock_dedup_key(*, assignee: User, dedup_key: str) -> None:
    # Serialises concurrent retries of one automation step until the transaction ends; the
    # second one then sees the first one's committed task.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            [f"prospects.task:{assignee.pk}:{dedup_key}"],
        )


def _notify_assignee(*, task: Task, actor: User | None, reassigned: bool = False) -> None:
    """Tell the assignee about the task, in the assignee's language (not the actor's)."""
    assignee = task.assignee
    if actor is not None and actor.pk == assignee.pk:
        return
    with translation.override(assignee.language or settings.LANGUAGE_CODE):
        if reassigned:
            title = _("Task handed to you: %(subject)s") % {"subject": task.subject}
        else:
            title = _("New task: %(subject)s") % {"subject": task.subject}
        lines = []
        if actor is not None:
            lines.append(_("%(user)s gave you a task.") % {"user": actor.display_name})
        else:
            lines.append(_("An automation gave you a task."))
        if task.prospect is not None:
            lines.append(_("Prospect: %(prospect)s") % {"prospect": str(task.prospect)})
        if task.due_date is not None:
            lines.append(_("Due: %(date)s") % {"date": date_format(task.due_date, "DATE_FORMAT")})
        lines.append(_("Priority: %(priority)s") % {"priority": TaskPriority(task.priority).label})
        if task.notes:
            lines.extend(["", task.notes])
        notify_user(
            user=assignee,
            title=title,
            body="\n".join(lines),
            url=reverse("tasks:detail", args=[task.pk]),
            dedup_key="" if reassigned else f"prospects.task:{task.pk}:created",
        )


def task_create(
    *,
    actor: User | None,
    assignee: User,
    subject: str,
    prospect: Prospect | None = None,
    due_date: datetime.date | None = None,
    priority: int = TaskPriority.NORMAL,
    notes: str = "",
    dedup_key: str = "",
) -> Task:
    """Create a task for ``assignee`` and notify them (unless they made it themselves).

    ``actor`` None means the system (an automation). A Sales-scoped actor may only create tasks
    for themselves, on prospects they can see. With ``dedup_key``, a second call that matches
    the first (same assignee, prospect and subject, still open) returns the first task and
    notifies nobody: retried automation jobs change nothing twice.
    """
    errors: dict[str, str] = {}
    subject = _clean_subject(subject, errors)
    priority = _clean_priority(priority, errors)
    if actor is not None:
        if not has_access(actor, Module.PROSPECTS, Level.EDIT):
            raise PermissionDenied
        if prospect is not None and not prospects_visible_to(actor).filter(pk=prospect.pk).exists():
            errors["prospect"] = _("This prospect does not exist or is not yours.")
    _check_assignee(actor=actor, assignee=assignee, prospect=prospect, errors=errors)
    _raise_if(errors)
    dedup_key = dedup_key.strip()[:150]
    with transaction.atomic():
        if dedup_key:
            _lock_dedup_key(assignee=assignee, dedup_key=dedup_key)
            existing = _existing_deduplicated_task(
                assignee=assignee, prospect=prospect, subject=subject, dedup_key=dedup_key
            )
            if existing is not None:
                return existing
        task = Task.objects.create(
            subject=subject,
            prospect=prospect,
            assignee=assignee,
            created_by=actor,
            due_date=due_date,
            priority=priority,
            notes=notes or "",
        )
        audit_log_record(
            actor=actor,
            action="task.create",
            target=task,
            actor_email="" if actor is not None else "automation",
            changes={
                "assignee": assignee.email,
                "prospect_id": prospect.pk if prospect is not None else None,
                "due_date": due_date.isoformat() if due_date else None,
                "priority": priority,
                "dedup_key": dedup_key,
            },
        )
        _notify_assignee(task=task, actor=actor)
    return task


def task_update(*, actor: User | None, task: Task, data: dict[str, Any]) -> Task:
    """Change the fields in ``data`` (subject, assignee, due date, priority, notes).

    Handing the task to someone else notifies the new assignee.
    """
    _require_can_edit(actor, task)
    errors: dict[str, str] = {}
    changed: list[str] = []
    previous_assignee_id = task.assignee_id
    if "subject" in data:
        subject = _clean_subject(data["subject"], errors)
        if subject != task.subject:
            task.subject = subject
            changed.append("subject")
    if "priority" in data:
        priority = _clean_priority(data["priority"], errors)
        if priority != task.priority:
            task.priority = priority
            changed.append("priority")
    if "due_date" in data and data["due_date"] != task.due_date:
        task.due_date = data["due_date"]
        changed.append("due_date")
    if "notes" in data and (data["notes"] or "") != task.notes:
        task.notes = data["notes"] or ""
        changed.append("notes")
    assignee = data.get("assignee")
    if assignee is not None and assignee.pk != previous_assignee_id:
        _check_assignee(actor=actor, assignee=assignee, prospect=task.prospect, errors=errors)
        task.assignee = assignee
        changed.append("assignee")
    _raise_if(errors)
    if not changed:
        return task
    with transaction.atomic():
        task.save(update_fields=[*changed, "updated_at"])
        if "assignee" in changed:
            audit_log_record(
                actor=actor,
                action="task.reassign",
                target=task,
                actor_email="" if actor is not None else "automation",
                changes={"assignee": task.assignee.email},
            )
            _notify_assignee(task=task, actor=actor, reassigned=True)
    return task


def _set_status(
    *, actor: User | None, task: Task, to_status: str, from_statuses: tuple[str, ...]
) -> bool:
    """Move ``task`` to ``to_status`` if it is in ``from_statuses``; False when it was not.

    One conditional UPDATE, so a double click or two people at once change it once.
    """
    _require_can_edit(actor, task)
    now = timezone.now()
    completed_at = now if to_status == TaskStatus.DONE else None
    updated = Task.objects.filter(pk=task.pk, status__in=from_statuses).update(
        status=to_status, completed_at=completed_at, updated_at=now
    )
    task.refresh_from_db(fields=["status", "completed_at", "updated_at"])
    return bool(updated)


def task_complete(*, actor: User | None, task: Task) -> Task:
    """Mark done (sets ``completed_at``); completing a finished task changes nothing."""
    with transaction.atomic():
        if _set_status(
            actor=actor,
            task=task,
            to_status=TaskStatus.DONE,
            from_statuses=(TaskStatus.OPEN, TaskStatus.CANCELLED),
        ):
            audit_log_record(actor=actor, action="task.complete", target=task)
    return task


def task_reopen(*, actor: User | None, task: Task) -> Task:
    with transaction.atomic():
        if _set_status(
            actor=actor,
            task=task,
            to_status=TaskStatus.OPEN,
            from_statuses=(TaskStatus.DONE, TaskStatus.CANCELLED),
        ):
            audit_log_record(actor=actor, action="task.reopen", target=task)
    return task


def task_cancel(*, actor: User | None, task: Task) -> Task:
    with transaction.atomic():
        if _set_status(
            actor=actor, task=task, to_status=TaskStatus.CANCELLED, from_statuses=(TaskStatus.OPEN,)
        ):
            audit_log_record(actor=actor, action="task.cancel", target=task)
    return task


def tasks_reassign(from_user: User, to_user: User | None) -> int:
    """Hand ``from_user``'s open tasks to ``to_user`` (mapp.assignments, on deactivation).

    A task always has an assignee, so with nobody to hand them to they stay where they are.
    """
    if to_user is None:
        return 0
    return Task.objects.filter(assignee=from_user, status=TaskStatus.OPEN).update(
        assignee=to_user, updated_at=timezone.now()
    )
