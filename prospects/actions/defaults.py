"""The actions prospects owns: lists, fields, tags, assignment, notifications, tasks, mailability.

Each one calls the existing prospect services (so normalisation, dynamic-list refresh and
task notifications happen as they do everywhere else) and reads the prospect's row afresh
where an earlier action of the same list may have changed it (assignment).
"""

from __future__ import annotations

import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from mapp.models import User
from mapp.notifications import notify_user
from prospects import services
from prospects.actions.registry import (
    Action,
    ActionConfigForm,
    ActionContext,
    ActionOutcome,
    EmptyConfigForm,
    register_action,
)
from prospects.forms import FIELD_LABELS
from prospects.models import (
    AssignmentGroup,
    CustomField,
    ListMembershipSource,
    Prospect,
    ProspectList,
    TaskPriority,
)
from prospects.normalization import nfkc
from prospects.task_services import task_create

CUSTOM_FIELD_PREFIX = "custom:"
# Changing the email address is a merge question (名寄せ), not an automation.
CHANGEABLE_FIELDS: tuple[str, ...] = tuple(
    name for name in services.EDITABLE_FIELDS if name != "email"
)
MAX_DUE_DAYS = 365
VALUE_MAX_LENGTH = 1000
NOTE_MAX_LENGTH = 1000


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: User) -> str:
        return f"{obj.display_name} <{obj.email}>" if obj.display_name != obj.email else obj.email


def _user_field(label: Any) -> UserChoiceField:
    return UserChoiceField(
        label=label,
        queryset=User.objects.filter(is_active=True).order_by("last_name", "first_name", "email"),
        error_messages={"invalid_choice": gettext_lazy("No such active user.")},
    )


def _static_list_field() -> forms.ModelChoiceField[ProspectList]:
    return forms.ModelChoiceField(
        label=gettext_lazy("List"),
        queryset=ProspectList.objects.filter(is_dynamic=False).order_by("name"),
        error_messages={"invalid_choice": gettext_lazy("No such static list.")},
    )


def _prospect_link(prospect: Prospect) -> str:
    return reverse("prospects:detail", args=[prospect.pk])


def _current_assignee(prospect: Prospect, *, lock: bool = False) -> User | None:
    """The prospect's assigned user as stored now (an earlier action may have changed it)."""
    rows = Prospect.objects.filter(pk=prospect.pk)
    if lock:
        rows = rows.select_for_update()
    assigned_id = rows.values_list("assigned_user_id", flat=True).first()
    user = User.objects.filter(pk=assigned_id).first() if assigned_id else None
    prospect.assigned_user = user
    return user


# --- lists --------------------------------------------------------------------------------------


class ListForm(ActionConfigForm):
    list = _static_list_field()


def _add_to_list(
    *, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    prospect_list = ProspectList.objects.get(pk=config["list"])
    added = services.list_add_prospects(
        prospect_list=prospect_list,
        prospect_ids=[prospect.pk],
        source=ListMembershipSource.ACTION,
    )
    if not added:
        return ActionOutcome.ok(_("Already on the list “%(list)s”.") % {"list": prospect_list})
    return ActionOutcome.ok(_("Added to the list “%(list)s”.") % {"list": prospect_list})


def _remove_from_list(
    *, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    prospect_list = ProspectList.objects.get(pk=config["list"])
    removed = services.list_remove_prospects(
        prospect_list=prospect_list, prospect_ids=[prospect.pk]
    )
    if not removed:
        return ActionOutcome.ok(_("Was not on the list “%(list)s”.") % {"list": prospect_list})
    return ActionOutcome.ok(_("Removed from the list “%(list)s”.") % {"list": prospect_list})


# --- fields and tags ----------------------------------------------------------------------------


def _field_choices() -> list[tuple[str, str]]:
    choices = [(name, str(FIELD_LABELS[name])) for name in CHANGEABLE_FIELDS]
    choices.extend(
        (
            f"{CUSTOM_FIELD_PREFIX}{custom_field.key}",
            _("%(label)s (custom field)") % {"label": custom_field.label},
        )
        for custom_field in CustomField.objects.order_by("label")
    )
    return choices


def _field_label(field: str) -> str:
    if field.startswith(CUSTOM_FIELD_PREFIX):
        custom_field = CustomField.objects.filter(key=field[len(CUSTOM_FIELD_PREFIX) :]).first()
        return custom_field.label if custom_field is not None else field
    return str(capfirst(FIELD_LABELS.get(field, field)))


class ChangeFieldForm(ActionConfigForm):
    field = forms.ChoiceField(
        label=gettext_lazy("Field"),
        choices=_field_choices,
        error_messages={"invalid_choice": gettext_lazy("No such field.")},
    )
    value = forms.CharField(
        label=gettext_lazy("New value"),
        required=False,
        max_length=VALUE_MAX_LENGTH,
        help_text=gettext_lazy("Leave empty to clear the field."),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        field = cleaned.get("field")
        value = cleaned.get("value", "")
        if not field:
            return cleaned
        # The same checks the prospect services apply when the action runs, so a value that
        # would be refused then is refused now, while the marketer is still editing.
        try:
            if field.startswith(CUSTOM_FIELD_PREFIX):
                custom_field = CustomField.objects.get(key=field[len(CUSTOM_FIELD_PREFIX) :])
                services._custom_rows(custom_field, value)
            else:
                services._apply_data(Prospect(), {field: value})
        except ValidationError as error:
            self.add_error("value", " ".join(error.messages))
        return cleaned


def _change_field(
    *, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    field, value = config["field"], config["value"]
    label = _field_label(field)
    if field.startswith(CUSTOM_FIELD_PREFIX):
        changed = services.prospect_update(
            actor=context.actor,
            prospect=prospect,
            data={},
            custom_values={field[len(CUSTOM_FIELD_PREFIX) :]: value},
        )
    else:
        changed = services.prospect_update(
            actor=context.actor, prospect=prospect, data={field: value}
        )
    if not changed:
        return ActionOutcome.ok(_("%(field)s already had this value.") % {"field": label})
    if value in ("", None):
        return ActionOutcome.ok(_("%(field)s cleared.") % {"field": label})
    return ActionOutcome.ok(_("%(field)s set to “%(value)s”.") % {"field": label, "value": value})


class TagForm(ActionConfigForm):
    tag = forms.CharField(label=gettext_lazy("Tag"), max_length=100)

    def clean_tag(self) -> str:
        tag = nfkc(self.cleaned_data["tag"])
        if not tag:
            raise ValidationError(self.fields["tag"].error_messages["required"], code="required")
        return tag


def _add_tag(
    *, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    added = services.prospect_tags_add(prospect_ids=[prospect.pk], names=[config["tag"]])
    if not added:
        return ActionOutcome.ok(_("Already tagged “%(tag)s”.") % {"tag": config["tag"]})
    return ActionOutcome.ok(_("Tagged “%(tag)s”.") % {"tag": config["tag"]})


def _remove_tag(
    *, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    removed = services.prospect_tags_remove(prospect_ids=[prospect.pk], names=[config["tag"]])
    if not removed:
        return ActionOutcome.ok(_("Was not tagged “%(tag)s”.") % {"tag": config["tag"]})
    return ActionOutcome.ok(_("Tag “%(tag)s” removed.") % {"tag": config["tag"]})


# --- assignment ---------------------------------------------------------------------------------

REASSIGN_LABEL = gettext_lazy("Also reassign prospects that already have an assigned user")


class AssignUserForm(ActionConfigForm):
    user = _user_field(gettext_lazy("User"))
    reassign = forms.BooleanField(label=REASSIGN_LABEL, required=False)


class AssignGroupForm(ActionConfigForm):
    group = forms.ModelChoiceField(
        label=gettext_lazy("Assignment group"),
        queryset=AssignmentGroup.objects.order_by("name"),
        error_messages={"invalid_choice": gettext_lazy("No such assignment group.")},
    )
    reassign = forms.BooleanField(label=REASSIGN_LABEL, required=False)

    def clean_group(self) -> AssignmentGroup:
        group: AssignmentGroup = self.cleaned_data["group"]
        if not group.members.filter(is_active=True).exists():
            raise ValidationError(_("The assignment group has no active members."))
        return group


def _not_reassigned(current: User) -> ActionOutcome:
    return ActionOutcome.skipped(
        _("Already assigned to %(user)s; not reassigned.") % {"user": current.display_name}
    )


def _assign_user(
    *, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    user = User.objects.get(pk=config["user"])
    # Locked until the run commits, so two automations at once cannot both assign.
    current = _current_assignee(prospect, lock=True)
    if current is not None and current.pk == user.pk:
        return ActionOutcome.ok(_("Already assigned to %(user)s.") % {"user": user.display_name})
    if current is not None and not config["reassign"]:
        return _not_reassigned(current)
    services.prospects_assign(actor=context.actor, prospect_ids=[prospect.pk], user=user)
    prospect.assigned_user = user
    return ActionOutcome.ok(_("Assigned to %(user)s.") % {"user": user.display_name})


def _assign_round_robin(
    *, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    group = AssignmentGroup.objects.get(pk=config["group"])
    current = _current_assignee(prospect, lock=True)
    if current is not None and not config["reassign"]:
        return _not_reassigned(current)
    services.prospects_assign_round_robin(
        actor=context.actor, prospect_ids=[prospect.pk], group=group, reassign=config["reassign"]
    )
    assignee = _current_assignee(prospect)
    return ActionOutcome.ok(
        _("Assigned to %(user)s (round-robin in %(group)s).")
        % {"user": assignee.display_name if assignee else "—", "group": group.name}
    )


# --- notifications and tasks --------------------------------------------------------------------


def _note_field() -> forms.CharField:
    return forms.CharField(
        label=gettext_lazy("Message"),
        required=False,
        max_length=NOTE_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class NotifyUserForm(ActionConfigForm):
    user = _user_field(gettext_lazy("User to notify"))
    note = _note_field()


class NotifyAssignedForm(ActionConfigForm):
    note = _note_field()


def _notify(*, user: User, prospect: Prospect, note: str, context: ActionContext) -> ActionOutcome:
    """In-app notice and email (mapp.notifications), in the recipient's language."""
    if not user.is_active:
        return ActionOutcome.skipped(
            _("%(user)s is inactive; nobody was notified.") % {"user": user.display_name}
        )
    with translation.override(user.language or settings.LANGUAGE_CODE):
        title = _("Prospect to follow up: %(prospect)s") % {"prospect": prospect}
        lines = [_("Prospect: %(prospect)s") % {"prospect": prospect}]
        if prospect.company_name:
            lines.append(_("Company: %(company)s") % {"company": prospect.company_name})
        lines.append(_("Why: %(cause)s") % {"cause": context.cause_label or context.cause_type})
        if note:
            lines.extend(["", note])
        notification = notify_user(
            user=user,
            title=title,
            body="\n".join(lines),
            url=_prospect_link(prospect),
            # A retried batch reaches this only if its run was not committed; the key makes
            # the notice (and its email) once-only even then.
            dedup_key=f"action:{context.idempotency_key}" if context.idempotency_key else "",
        )
    if notification is None:
        return ActionOutcome.ok(
            _("%(user)s had been notified already.") % {"user": user.display_name}
        )
    return ActionOutcome.ok(_("Notified %(user)s.") % {"user": user.display_name})


def _notify_user(
    *, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    user = User.objects.get(pk=config["user"])
    return _notify(user=user, prospect=prospect, note=config["note"], context=context)


def _no_assignee() -> ActionOutcome:
    return ActionOutcome.skipped(_("The prospect has no assigned user."))


def _notify_assigned(
    *, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    user = _current_assignee(prospect)
    if user is None:
        return _no_assignee()
    return _notify(user=user, prospect=prospect, note=config["note"], context=context)


class TaskForm(ActionConfigForm):
    subject = forms.CharField(label=gettext_lazy("Task subject"), max_length=200)
    due_in_days = forms.IntegerField(
        label=gettext_lazy("Due in (days)"),
        min_value=0,
        max_value=MAX_DUE_DAYS,
        initial=3,
        help_text=gettext_lazy("0 means the same day."),
    )
    priority = forms.TypedChoiceField(
        label=gettext_lazy("Priority"),
        choices=TaskPriority.choices,
        coerce=int,
        initial=TaskPriority.NORMAL,
    )
    notes = forms.CharField(
        label=gettext_lazy("Notes"),
        required=False,
        max_length=NOTE_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class TaskForUserForm(TaskForm):
    assignee = _user_field(gettext_lazy("Assignee"))

    field_order = ("assignee", "subject", "due_in_days", "priority", "notes")


def _create_task(
    *, assignee: User, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    due_date = timezone.localdate() + datetime.timedelta(days=config["due_in_days"])
    task = task_create(
        actor=context.actor,
        assignee=assignee,
        subject=config["subject"],
        prospect=prospect,
        due_date=due_date,
        priority=config["priority"],
        notes=config["notes"],
        dedup_key=context.idempotency_key,
    )
    return ActionOutcome.ok(
        _("Task “%(subject)s” for %(user)s, due %(date)s.")
        % {
            "subject": task.subject,
            "user": assignee.display_name,
            "date": date_format(due_date, "SHORT_DATE_FORMAT"),
        }
    )


def _task_for_user(
    *, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    assignee = User.objects.get(pk=config["assignee"])
    return _create_task(assignee=assignee, prospect=prospect, config=config, context=context)


def _task_for_assigned(
    *, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    assignee = _current_assignee(prospect)
    if assignee is None:
        return _no_assignee()
    return _create_task(assignee=assignee, prospect=prospect, config=config, context=context)


# --- mailability --------------------------------------------------------------------------------

DO_NOT_EMAIL_SET = "set"
DO_NOT_EMAIL_CLEAR = "clear"


class DoNotEmailForm(ActionConfigForm):
    mark = forms.ChoiceField(
        label=gettext_lazy("Do not email"),
        choices=[
            (DO_NOT_EMAIL_SET, gettext_lazy("Mark as do not email")),
            (DO_NOT_EMAIL_CLEAR, gettext_lazy("Remove the do-not-email mark")),
        ],
        initial=DO_NOT_EMAIL_SET,
    )


def _set_do_not_email(
    *, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    value = config["mark"] == DO_NOT_EMAIL_SET
    current = Prospect.objects.filter(pk=prospect.pk).values_list("do_not_email", flat=True)[0]
    prospect.do_not_email = value
    if current == value:
        return ActionOutcome.ok(
            _("Already marked do not email.") if value else _("Was not marked do not email.")
        )
    services.prospects_set_do_not_email(
        actor=context.actor, prospect_ids=[prospect.pk], value=value
    )
    return ActionOutcome.ok(_("Marked do not email.") if value else _("Do-not-email mark removed."))


def _opt_out(
    *, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    # One way only: opting a prospect back in needs their own consent (特定電子メール法), never
    # an automation.
    updated = services.prospect_opt_out(prospect_id=prospect.pk)
    prospect.opted_out = True
    if not updated:
        return ActionOutcome.ok(_("Had opted out already."))
    return ActionOutcome.ok(_("Opted out."))


# --- registration -------------------------------------------------------------------------------


def register_default_actions() -> None:
    """Register prospects' actions and the "Automation history" panel that shows their runs
    (called from ProspectsConfig.ready)."""
    from prospects.actions.selectors import register_action_history_panel

    for action in (
        Action(
            key="add_to_list",
            label=gettext_lazy("Add to list"),
            description=gettext_lazy("Add the prospect to a static list."),
            config_form=ListForm,
            run=_add_to_list,
            order=20,
        ),
        Action(
            key="remove_from_list",
            label=gettext_lazy("Remove from list"),
            description=gettext_lazy("Remove the prospect from a static list."),
            config_form=ListForm,
            run=_remove_from_list,
            order=30,
        ),
        Action(
            key="change_field",
            label=gettext_lazy("Change field value"),
            description=gettext_lazy("Set a prospect field or custom field to a value."),
            config_form=ChangeFieldForm,
            run=_change_field,
            order=50,
        ),
        Action(
            key="add_tag",
            label=gettext_lazy("Add tag"),
            config_form=TagForm,
            run=_add_tag,
            order=60,
        ),
        Action(
            key="remove_tag",
            label=gettext_lazy("Remove tag"),
            config_form=TagForm,
            run=_remove_tag,
            order=70,
        ),
        Action(
            key="assign_user",
            label=gettext_lazy("Assign to user"),
            description=gettext_lazy(
                "Prospects that already have an assigned user keep them unless you allow "
                "reassigning."
            ),
            config_form=AssignUserForm,
            run=_assign_user,
            order=80,
        ),
        Action(
            key="assign_round_robin",
            label=gettext_lazy("Assign to user in group (round-robin)"),
            description=gettext_lazy(
                "The group's active members take prospects in turn. Prospects that already "
                "have an assigned user keep them unless you allow reassigning."
            ),
            config_form=AssignGroupForm,
            run=_assign_round_robin,
            order=90,
        ),
        Action(
            key="notify_user",
            label=gettext_lazy("Notify user"),
            description=gettext_lazy("An in-app notice and an email about the prospect."),
            config_form=NotifyUserForm,
            run=_notify_user,
            order=100,
        ),
        Action(
            key="notify_assigned_user",
            label=gettext_lazy("Notify assigned user"),
            description=gettext_lazy(
                "An in-app notice and an email to the prospect's assigned user (skipped when "
                "nobody is assigned)."
            ),
            config_form=NotifyAssignedForm,
            run=_notify_assigned,
            order=110,
        ),
        Action(
            key="create_task",
            label=gettext_lazy("Create task for user"),
            config_form=TaskForUserForm,
            run=_task_for_user,
            order=120,
        ),
        Action(
            key="create_task_for_assigned_user",
            label=gettext_lazy("Create task for assigned user"),
            description=gettext_lazy("Skipped when nobody is assigned."),
            config_form=TaskForm,
            run=_task_for_assigned,
            order=130,
        ),
        Action(
            key="set_do_not_email",
            label=gettext_lazy("Set do not email"),
            config_form=DoNotEmailForm,
            run=_set_do_not_email,
            order=140,
        ),
        Action(
            key="opt_out",
            label=gettext_lazy("Opt out"),
            description=gettext_lazy(
                "The prospect receives no more marketing email. Only the prospect can opt back in."
            ),
            config_form=EmptyConfigForm,
            run=_opt_out,
            order=150,
        ),
    ):
        register_action(action)
    register_action_history_panel()
