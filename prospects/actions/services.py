"""Validating lists of actions, and running them with a record of every run.

A stored action list is ``[{"action": key, "config": {...}}, …]``; :func:`actions_validate`
cleans one (when a marketer saves a form's completion actions, a rule…), :func:`actions_run`
runs one on a prospect (when the form is submitted, the rule matches…).

Running is idempotent per idempotency key: the :class:`~prospects.models.ActionRun` row is
claimed on its unique key in the same transaction as the action's effect, so a retried or
duplicated job finds the committed run and does nothing, and a job killed half-way left
neither the run nor its effect. Each action runs in its own savepoint: a failure is recorded
(and its partial writes undone) without stopping the actions after it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from mapp.access import has_access
from mapp.models import Level
from prospects.actions.registry import Action, ActionContext, ActionOutcome, get_action
from prospects.models import ActionRun, ActionRunStatus

if TYPE_CHECKING:
    from mapp.models import User
    from prospects.models import Prospect

logger = logging.getLogger(__name__)

# One list runs in one request or task, each action a few queries: twenty keeps a form
# submission's completion actions well under a second.
MAX_ACTIONS = 20
MESSAGE_MAX_LENGTH = 500
KEY_DISPLAY_LENGTH = 60


class ActionListError(ValidationError):
    """An action list with faulty items.

    The messages name each item ("Action 2 (Add to list): …"); ``item_errors`` holds the same
    messages by item index without that prefix, for the editor to show next to the item.
    """

    def __init__(self, messages: list[str], item_errors: dict[int, list[str]]) -> None:
        super().__init__(messages)
        self.item_errors = item_errors


# --- validating ---------------------------------------------------------------------------------


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def action_config_clean(action: Action, config: Any) -> dict[str, Any]:
    """The action's settings cleaned by its form, as JSON (ids, not objects).

    Raises ValidationError whose messages name the faulty setting ("List: No such list.").
    """
    if not isinstance(config, dict):
        raise ValidationError(_("The settings must be an object."))
    form = action.config_form(data=config)
    messages = [
        _("%(setting)s: expected a single value.") % {"setting": form.fields[name].label or name}
        for name, value in config.items()
        if name in form.fields and not _is_scalar(value)
    ]
    if messages:
        raise ValidationError(messages)
    if not form.is_valid():
        for name, errors in form.errors.items():
            field = form.fields.get(name)
            label = str(field.label) if field is not None and field.label else ""
            for error in errors:
                if name == NON_FIELD_ERRORS or not label:
                    messages.append(str(error))
                else:
                    messages.append(
                        _("%(setting)s: %(error)s") % {"setting": label, "error": error}
                    )
        raise ValidationError(messages)
    return form.to_config()


def action_refusal(action: Action, *, actor: User | None = None) -> str | None:
    """Why ``actor`` may not set up ``action`` now (None: they may). No actor: the system."""
    if not action.is_available:
        return str(action.unavailable_reason or _("This action is not available."))
    if actor is not None and not has_access(actor, action.module, Level.EDIT):
        return _("Your role cannot set up this action.")
    return None


def _validate_item(item: Any, *, actor: User | None) -> dict[str, Any]:
    """The cleaned item, or ValidationError saying what is wrong with it."""
    if not isinstance(item, dict):
        raise ValidationError(_("An action must be an object."))
    key = item.get("action")
    action = get_action(key) if isinstance(key, str) else None
    if action is None:
        shown = str(key)[:KEY_DISPLAY_LENGTH] if key not in (None, "") else ""
        if not shown:
            raise ValidationError(_("Choose an action."))
        raise ValidationError(_("Unknown action “%(key)s”.") % {"key": shown})
    refusal = action_refusal(action, actor=actor)
    if refusal is not None:
        raise ValidationError(refusal)
    config = item.get("config")
    cleaned = action_config_clean(action, {} if config is None else config)
    return {"action": action.key, "config": cleaned}


def actions_validate(raw: Any, *, actor: User | None = None) -> list[dict[str, Any]]:
    """A cleaned copy of an action list, ready to store as JSON; raises ValidationError.

    With ``actor``, actions their role may not set up are refused too (the editor greys them
    out for the same reason). Per-item problems raise :class:`ActionListError`.
    """
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        raise ValidationError(_("The actions must be a list."))
    if len(raw) > MAX_ACTIONS:
        raise ValidationError(_("At most %(count)d actions.") % {"count": MAX_ACTIONS})
    cleaned: list[dict[str, Any]] = []
    messages: list[str] = []
    item_errors: dict[int, list[str]] = {}
    for index, item in enumerate(raw):
        try:
            clean_item = _validate_item(item, actor=actor)
        except ValidationError as error:
            item_errors[index] = error.messages
            key = item.get("action") if isinstance(item, dict) else None
            action = get_action(key) if isinstance(key, str) else None
            for message in error.messages:
                if action is not None:
                    messages.append(
                        _("Action %(number)d (%(action)s): %(error)s")
                        % {"number": index + 1, "action": action.label, "error": message}
                    )
                else:
                    messages.append(
                        _("Action %(number)d: %(error)s") % {"number": index + 1, "error": message}
                    )
            continue
        cleaned.append(clean_item)
    if messages:
        raise ActionListError(messages, item_errors)
    return cleaned


# --- running ------------------------------------------------------------------------------------


class _Failed(Exception):
    """Raised inside an action's savepoint so that a failed outcome also undoes its writes."""

    def __init__(self, outcome: ActionOutcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


def _messages_of(error: ValidationError) -> str:
    return " ".join(str(message) for message in error.messages)


def _execute(
    *, key: str, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    action = get_action(key)
    if action is None:
        return ActionOutcome.failed(
            _("Unknown action “%(key)s”.") % {"key": key[:KEY_DISPLAY_LENGTH]}
        )
    if not action.is_available or action.run is None:
        return ActionOutcome.skipped(
            str(action.unavailable_reason or _("This action is not available."))
        )
    try:
        # Stored settings may have gone stale (a list or user deleted since): checked again.
        clean_config = action_config_clean(action, config)
    except ValidationError as error:
        return ActionOutcome.failed(
            _("The settings are no longer valid: %(errors)s") % {"errors": _messages_of(error)}
        )
    try:
        with transaction.atomic():
            outcome = action.run(prospect=prospect, config=clean_config, context=context)
            if outcome.status == ActionRunStatus.FAILED:
                raise _Failed(outcome)
    except _Failed as failure:
        return failure.outcome
    except ValidationError as error:
        return ActionOutcome.failed(_messages_of(error))
    # One broken action must not stop the others nor lose the record of its run; the
    # traceback goes to the log, the history says where to look.
    except Exception:
        logger.exception("Action %s failed on prospect %s", key, prospect.pk)
        return ActionOutcome.failed(
            _("An unexpected error stopped this action; the details are in the server log.")
        )
    return outcome


def action_run(
    *, key: str, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionRun:
    """Run one action on ``prospect`` and record it; returns the run.

    With ``context.idempotency_key``, a second call with the same key returns the first run
    and does nothing (whatever its outcome: a failure is not retried by a retried job).
    """
    idempotency_key = context.idempotency_key[:200]
    fields = {
        "action": key[:60],
        "config": config,
        "prospect": prospect,
        "cause_type": context.cause_type[:40],
        "cause_id": str(context.cause_id)[:64],
        "cause_label": context.cause_label[:255],
        "actor": context.actor,
        "status": ActionRunStatus.FAILED,
    }
    with transaction.atomic():
        if idempotency_key:
            # A concurrent twin blocks on the unique index until this transaction ends, then
            # finds this run: the effect happens once.
            run, created = ActionRun.objects.get_or_create(
                idempotency_key=idempotency_key, defaults=fields
            )
            if not created:
                return run
        else:
            run = ActionRun.objects.create(**fields)
        outcome = _execute(
            key=key,
            prospect=prospect,
            config=config,
            context=replace(context, action_run_id=run.pk),
        )
        run.status = outcome.status
        run.message = outcome.message[:MESSAGE_MAX_LENGTH]
        run.save(update_fields=["status", "message"])
    return run


def actions_run(
    *, actions: list[dict[str, Any]], prospect: Prospect, context: ActionContext
) -> list[ActionRun]:
    """Run a stored action list in order; each step is idempotent on ``key:index``."""
    runs = []
    for index, item in enumerate(actions):
        config = item.get("config")
        runs.append(
            action_run(
                key=str(item.get("action", "")),
                prospect=prospect,
                config=config if isinstance(config, dict) else {},
                context=context.for_step(index),
            )
        )
    return runs
