"""The action list editor: the catalogue as JSON for the browser, and a form field to embed it.

Forms (completion actions), page actions and automation rules put an :class:`ActionListField`
in their Django form; it renders ``templates/prospects/actions/_editor.html`` (driven by
``static/js/action-editor.js``), reads back the JSON the editor posts and cleans it with
:func:`~prospects.actions.services.actions_validate`. Every action's settings are drawn from
its own config form, described as JSON by :func:`action_catalogue_json`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from prospects.actions.registry import action_catalogue
from prospects.actions.services import (
    MAX_ACTIONS,
    ActionListError,
    action_refusal,
    actions_validate,
)

if TYPE_CHECKING:
    from mapp.models import User

EDITOR_TEMPLATE = "prospects/actions/_editor.html"


def _json_ready(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _describe_field(name: str, field: forms.Field) -> dict[str, Any]:
    """What the editor needs to draw one setting: widget type, label, choices, bounds."""
    description: dict[str, Any] = {
        "name": name,
        "label": str(field.label or name),
        "required": field.required,
        "help": str(field.help_text or ""),
    }
    initial = field.initial() if callable(field.initial) else field.initial
    if isinstance(field, forms.BooleanField):
        description["type"] = "checkbox"
        description["initial"] = bool(initial)
        return description
    description["initial"] = _json_ready(initial)
    if isinstance(field, forms.ChoiceField | forms.ModelChoiceField):
        description["type"] = "select"
        # Flat choices (no option groups): what every action's settings use.
        choices = cast("Iterable[tuple[Any, Any]]", field.choices)
        description["choices"] = [
            [str(value), str(label)] for value, label in choices if str(value) != ""
        ]
    elif isinstance(field, forms.IntegerField):
        description["type"] = "number"
        description["min"] = field.min_value
        description["max"] = field.max_value
    elif isinstance(field.widget, forms.Textarea):
        description["type"] = "textarea"
        description["max_length"] = getattr(field, "max_length", None)
    else:
        description["type"] = "text"
        description["max_length"] = getattr(field, "max_length", None)
    return description


def action_catalogue_json(user: User | None = None) -> list[dict[str, Any]]:
    """Every action with its settings' fields (choices of lists, users, groups, custom fields
    included), and whether ``user`` may choose it: unavailable ones carry the reason."""
    catalogue = []
    for action in action_catalogue():
        refusal = action_refusal(action, actor=user)
        form = action.config_form()
        catalogue.append(
            {
                "key": action.key,
                "label": str(action.label),
                "description": str(action.description),
                "available": refusal is None,
                "unavailable_reason": refusal,
                "fields": [_describe_field(name, field) for name, field in form.fields.items()],
            }
        )
    return catalogue


def _as_text(value: Any) -> str:
    if value in (None, ""):
        return "[]"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def action_editor_context(
    *,
    name: str,
    value: Any,
    user: User | None,
    item_errors: dict[int, list[str]] | None = None,
) -> dict[str, Any]:
    """What ``prospects/actions/_editor.html`` needs, for ``{% include … with editor=… %}``.

    ``value`` is the stored list or the posted JSON text (shown back as posted).
    """
    return {
        "name": name,
        "id": f"action-editor-{name}",
        "value_text": _as_text(value),
        "catalogue": action_catalogue_json(user),
        "errors": {str(index): messages for index, messages in (item_errors or {}).items()},
        "max_actions": MAX_ACTIONS,
    }


class ActionListWidget(forms.Widget):
    """Renders the editor; the field hands it the editing user and the per-item errors."""

    template_name = EDITOR_TEMPLATE

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.user: User | None = None
        self.item_errors: dict[int, list[str]] = {}

    def format_value(self, value: Any) -> str:
        return _as_text(value)

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["editor"] = action_editor_context(
            name=name, value=value, user=self.user, item_errors=self.item_errors
        )
        return context

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        # The project's template engine (templates/ is not on the form renderer's path).
        return render_to_string(self.template_name, self.get_context(name, value, attrs))

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        return data.get(name)


class ActionListField(forms.Field):
    """JSON from the editor in, a cleaned action list (ready to store as JSON) out.

    Set ``actor`` (the signed-in user) so actions their role may not set up are refused and
    shown greyed out; without it only availability is checked. Not required by default: an
    empty list is a valid "no actions".
    """

    widget = ActionListWidget
    default_error_messages = {
        "invalid": _("The actions could not be read; reload the page and try again."),
    }

    def __init__(self, *, actor: User | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.actor = actor

    @property
    def actor(self) -> User | None:
        return self._actor

    @actor.setter
    def actor(self, user: User | None) -> None:
        self._actor = user
        if isinstance(self.widget, ActionListWidget):
            self.widget.user = user

    def to_python(self, value: Any) -> list[Any]:
        if value in self.empty_values:
            return []
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as error:
                raise ValidationError(self.error_messages["invalid"], code="invalid") from error
        if value is None:
            return []
        if not isinstance(value, list):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return value

    def clean(self, value: Any) -> list[dict[str, Any]]:
        raw = self.to_python(value)
        self.validate(raw)
        self.run_validators(raw)
        try:
            cleaned = actions_validate(raw, actor=self.actor)
        except ActionListError as error:
            if isinstance(self.widget, ActionListWidget):
                self.widget.item_errors = error.item_errors
            raise
        return cleaned

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return json.dumps(value, ensure_ascii=False)
        return value

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(initial) != self.to_python(data)
        except ValidationError:
            return True
