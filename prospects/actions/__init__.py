"""The action catalogue: one registry of things done to a prospect, run by name.

Completion actions, page actions, automation rules and Engagement steps store action lists
(``[{"action": key, "config": {...}}]``) cleaned by :func:`actions_validate`, and run them with
:func:`actions_run`; every run is an :class:`~prospects.models.ActionRun`. Apps register the
actions they own from their ``AppConfig.ready()`` with :func:`register_action` (registry.py);
prospects' own are in defaults.py. The browser editor, its catalogue JSON and the
``ActionListField`` form field are in ``prospects.actions.editor``.
"""

from prospects.actions.registry import (
    Action,
    ActionConfigForm,
    ActionContext,
    ActionOutcome,
    EmptyConfigForm,
    action_catalogue,
    action_label,
    get_action,
    register_action,
)
from prospects.actions.services import (
    MAX_ACTIONS,
    ActionListError,
    action_config_clean,
    action_refusal,
    action_run,
    actions_run,
    actions_validate,
)

__all__ = [
    "MAX_ACTIONS",
    "Action",
    "ActionConfigForm",
    "ActionContext",
    "ActionListError",
    "ActionOutcome",
    "EmptyConfigForm",
    "action_catalogue",
    "action_config_clean",
    "action_label",
    "action_refusal",
    "action_run",
    "actions_run",
    "actions_validate",
    "get_action",
    "register_action",
]
