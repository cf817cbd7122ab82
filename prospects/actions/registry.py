"""The action registry: what an action is, and the catalogue every app contributes to.

An action is one thing done to one prospect (add to a list, assign, notify, adjust score…),
named by a ``key``. Its settings are a Django form (``config_form``) whose cleaned data is kept
as JSON (ids, never objects), so completion actions, page actions, automation rules and
Engagement steps can store "which action, with which settings" and run it later by name.

Apps register the actions they own from their ``AppConfig.ready()`` with
:func:`register_action`, the same way criteria subjects are registered: prospects cannot
import scoring or emails, but it can run their actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from django import forms
from django.db.models import Model

from mapp.models import Module
from prospects.models import ActionRunStatus

if TYPE_CHECKING:
    from django.utils.functional import Promise

    from mapp.models import User
    from prospects.models import Prospect


class ActionConfigForm(forms.Form):
    """Base of every action's settings form: its cleaned data becomes JSON-ready settings.

    A setting missing from the data takes its field's ``initial`` (the default the editor
    shows), so code that builds settings need not spell out every default.
    """

    def __init__(self, data: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if data is not None:
            data = dict(data)
            for name, form_field in self.base_fields.items():
                initial = form_field.initial
                if name not in data and initial is not None:
                    data[name] = initial() if callable(initial) else initial
        super().__init__(data, **kwargs)

    def to_config(self) -> dict[str, Any]:
        """The cleaned data as JSON: model instances become their ids."""
        config: dict[str, Any] = {}
        for name, value in self.cleaned_data.items():
            config[name] = value.pk if isinstance(value, Model) else value
        return config


class EmptyConfigForm(ActionConfigForm):
    """For actions without settings (opt out)."""


@dataclass(frozen=True)
class ActionOutcome:
    """What one run did: ``status`` (ok / skipped / failed) and a message for the history."""

    status: str
    message: str = ""

    @classmethod
    def ok(cls, message: str = "") -> ActionOutcome:
        return cls(ActionRunStatus.OK, message)

    @classmethod
    def skipped(cls, message: str) -> ActionOutcome:
        return cls(ActionRunStatus.SKIPPED, message)

    @classmethod
    def failed(cls, message: str) -> ActionOutcome:
        return cls(ActionRunStatus.FAILED, message)


@dataclass(frozen=True)
class ActionContext:
    """Why actions run: the cause (a form submission, a page view, a rule…) and who started it.

    ``idempotency_key`` makes a run happen once: running again with the same key (a retried
    Celery batch) returns the first run and does nothing. Empty means "not deduplicated"
    (a person clicking a button). :func:`actions_run` derives one key per step from it.
    """

    cause_type: str
    cause_id: str | int = ""
    cause_label: str = ""
    actor: User | None = None
    idempotency_key: str = ""
    # Set by action_run for the action it runs: what the action writes can point at its run.
    action_run_id: int | None = None

    def for_step(self, index: int) -> ActionContext:
        """The context of the ``index``-th action of a list: its own idempotency key."""
        if not self.idempotency_key:
            return self
        return replace(self, idempotency_key=f"{self.idempotency_key}:{index}")


class ActionRunner(Protocol):
    def __call__(
        self, *, prospect: Prospect, config: dict[str, Any], context: ActionContext
    ) -> ActionOutcome: ...


@dataclass(frozen=True)
class Action:
    """One kind of action.

    ``run(prospect=…, config=…, context=…)`` gets settings already cleaned by ``config_form``
    and returns an :class:`ActionOutcome`; it may raise ``ValidationError`` (recorded as a
    failure with its message). ``unavailable_reason`` set means the action is in the catalogue
    (shown disabled, with the reason) but cannot be chosen or run yet: such an action has no
    ``run``. ``module`` is the part of the product whose edit right a person needs to set the
    action up.
    """

    key: str
    label: str | Promise
    run: ActionRunner | None = None
    description: str | Promise = ""
    config_form: type[ActionConfigForm] = EmptyConfigForm
    unavailable_reason: str | Promise | None = None
    module: Module = Module.PROSPECTS
    order: int = 100

    @property
    def is_available(self) -> bool:
        return self.unavailable_reason is None and self.run is not None


_actions: dict[str, Action] = {}


def register_action(action: Action) -> None:
    """Add (or replace, by key) an action in the catalogue."""
    _actions[action.key] = action


def get_action(key: str) -> Action | None:
    return _actions.get(key)


def action_catalogue() -> list[Action]:
    """Every registered action in the order the UI offers them."""
    return sorted(_actions.values(), key=lambda action: (action.order, action.key))


def action_label(key: str) -> str:
    """The action's label, or its key when the app that registered it is gone."""
    action = _actions.get(key)
    return str(action.label) if action is not None else key
