"""Django forms of the marketer pages: the form builder, form handlers and landing pages.

The builder's field list travels as JSON (static/js/form-builder.js draws and edits it) and is
validated here again, field by field, so a hand-made POST gets the same clear messages as the
builder. :func:`form_builder_save` then decides which stored row each builder field becomes and
writes them through ``forms.services`` (allow-list, action validation, consent versions, audit).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.loader import render_to_string
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from forms import services
from forms.fields import PROSPECT_FIELD_CHOICES, PROSPECT_FIELD_NAMES
from forms.models import FieldType, Form, FormField, FormHandler, LandingPage
from forms.redirects import redirect_url_error
from mapp.templating import (
    MergeContext,
    TemplateError,
    render_marketer_template,
    template_validate,
)
from prospects.actions.editor import ActionListField
from prospects.models import CustomField, CustomFieldType

if TYPE_CHECKING:
    from mapp.models import User

MAX_FIELDS = 100
MAX_CHOICES = 200
MAX_CHOICE_LENGTH = 200
MAX_CONSENT_WORDING_LENGTH = 5000
MAX_KEY_LENGTH = 40  # a row's key is a saved id or "new-N"; anything longer is not the builder's
CUSTOM_PREFIX = "custom:"
FIELD_PREFIX = "field:"
PROSPECT_PREFIX = "prospect:"
CHOICE_TYPES = frozenset({FieldType.SELECT, FieldType.RADIO, FieldType.CHECKBOX})
NEEDS_CHOICES = frozenset({FieldType.SELECT, FieldType.RADIO})

# What a custom field's type suggests in the builder (the marketer may choose another).
CUSTOM_FIELD_INPUT: dict[str, str] = {
    CustomFieldType.TEXT: FieldType.TEXT,
    CustomFieldType.NUMBER: FieldType.TEXT,
    CustomFieldType.DATE: FieldType.DATE,
    CustomFieldType.CHOICE: FieldType.SELECT,
    CustomFieldType.MULTI_CHOICE: FieldType.CHECKBOX,
    CustomFieldType.BOOLEAN: FieldType.CHECKBOX,
}


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


# --- the field list ------------------------------------------------------------------------------


@dataclass
class CleanField:
    """One validated builder row, ready for forms.services to save."""

    key: str  # the saved FormField's pk, or "new-N"
    prospect_field: str
    custom_field: CustomField | None
    field_type: str
    label: str
    required: bool
    help_text: str
    error_message: str
    default_value: str
    choices: list[str]
    consent_wording: str
    show_if_known_key: str  # the key of another row of this list, or ""
    show_if_known_prospect_field: str
    skip_if_known: bool

    @property
    def target(self) -> str:
        if self.custom_field is not None:
            return f"{CUSTOM_PREFIX}{self.custom_field.key}"
        return self.prospect_field

    @property
    def saved_id(self) -> int | None:
        return int(self.key) if self.key.isdigit() else None


class FieldListError(ValidationError):
    """Messages for the whole list and, per row index, for each faulty row (shown next to it)."""

    def __init__(
        self,
        *,
        list_errors: list[str] | None = None,
        row_errors: dict[int, list[str]] | None = None,
    ) -> None:
        self.list_errors = list(list_errors or [])
        self.row_errors = dict(row_errors or {})
        messages = list(self.list_errors)
        if self.row_errors:
            messages.append(_("Some fields need attention: see the messages next to them."))
        super().__init__(messages)


def builder_catalogue(custom_fields: Sequence[CustomField]) -> dict[str, Any]:
    """What the builder offers: field types and the fields a form field may map to."""
    prospect_group = str(gettext_lazy("Prospect fields"))
    custom_group = str(gettext_lazy("Custom fields"))
    targets: list[dict[str, Any]] = [
        {
            "value": name,
            "label": str(label),
            "group_label": prospect_group,
            "field_type": FieldType.EMAIL if name == "email" else FieldType.TEXT,
        }
        for name, label in PROSPECT_FIELD_CHOICES
    ]
    targets.extend(
        {
            "value": f"{CUSTOM_PREFIX}{custom_field.key}",
            "label": custom_field.label,
            "group_label": custom_group,
            "field_type": CUSTOM_FIELD_INPUT.get(custom_field.field_type, FieldType.TEXT),
            "choices": [str(choice) for choice in custom_field.choices or []],
        }
        for custom_field in custom_fields
    )
    return {
        "types": [[value, str(label)] for value, label in FieldType.choices],
        "targets": targets,
    }


def rows_from_form(form: Form) -> list[dict[str, Any]]:
    """A saved form's active fields as builder rows (the JSON the builder edits)."""
    rows = []
    for form_field in form.fields.filter(is_active=True).select_related("custom_field"):
        target = form_field.prospect_field
        if form_field.custom_field is not None:
            target = f"{CUSTOM_PREFIX}{form_field.custom_field.key}"
        show_if_known = ""
        if form_field.progressive_show_if_known_id:
            show_if_known = f"{FIELD_PREFIX}{form_field.progressive_show_if_known_id}"
        elif form_field.progressive_show_if_known_prospect_field:
            show_if_known = (
                f"{PROSPECT_PREFIX}{form_field.progressive_show_if_known_prospect_field}"
            )
        rows.append(
            {
                "key": str(form_field.pk),
                "target": target,
                "field_type": form_field.field_type,
                "label": form_field.label,
                "required": form_field.required,
                "help_text": form_field.help_text,
                "error_message": form_field.error_message,
                "default_value": form_field.default_value,
                "choices": [str(choice) for choice in form_field.choices or []],
                "consent_wording": form_field.consent_wording,
                "show_if_known": show_if_known,
                "skip_if_known": form_field.skip_if_known,
            }
        )
    return rows


class _RowCleaner:
    """Validates builder rows one by one, collecting every message (not just the first)."""

    def __init__(self, rows: list[Any], custom_fields: dict[str, CustomField]) -> None:
        self.rows = rows
        self.custom_fields = custom_fields
        self.row_errors: dict[int, list[str]] = {}
        self.list_errors: list[str] = []

    def error(self, index: int, message: str) -> None:
        self.row_errors.setdefault(index, []).append(message)

    def clean(self) -> list[CleanField]:
        if len(self.rows) > MAX_FIELDS:
            raise FieldListError(
                list_errors=[_("A form has at most %(count)d fields.") % {"count": MAX_FIELDS}]
            )
        cleaned = [self.clean_row(index, raw) for index, raw in enumerate(self.rows)]
        self.check_list(cleaned)
        if self.list_errors or self.row_errors:
            raise FieldListError(list_errors=self.list_errors, row_errors=self.row_errors)
        return cleaned

    def clean_row(self, index: int, raw: Any) -> CleanField:
        if not isinstance(raw, dict):
            raw = {}
        key = _text(raw.get("key"))
        if not key or len(key) > MAX_KEY_LENGTH:
            key = f"new-{index + 1}"
        field_type = _text(raw.get("field_type"))
        if field_type not in FieldType.values:
            self.error(index, _("Choose a field type."))
            field_type = FieldType.TEXT
        label = _text(raw.get("label"))
        if not label:
            self.error(index, _("Give every field a label."))
        elif len(label) > 200:
            self.error(index, _("The label is longer than 200 characters."))

        target = _text(raw.get("target"))
        prospect_field = ""
        custom_field = None
        if target.startswith(CUSTOM_PREFIX):
            custom_field = self.custom_fields.get(target[len(CUSTOM_PREFIX) :])
            if custom_field is None:
                self.error(
                    index, _("The custom field “%(field)s” does not exist.") % {"field": target}
                )
        elif target:
            if target in PROSPECT_FIELD_NAMES:
                prospect_field = target
            else:
                self.error(
                    index,
                    _("“%(field)s” is not a prospect field a form may fill.") % {"field": target},
                )

        required = bool(raw.get("required")) and field_type != FieldType.HIDDEN
        help_text = self.clipped(index, raw, "help_text", 500, _("help text"))
        error_message = self.clipped(index, raw, "error_message", 300, _("error message"))
        default_value = self.clipped(index, raw, "default_value", 500, _("default value"))
        consent_wording = self.clipped(
            index, raw, "consent_wording", MAX_CONSENT_WORDING_LENGTH, _("consent wording")
        )
        choices = self.clean_choices(index, raw.get("choices"), field_type)

        if field_type == FieldType.EMAIL and prospect_field != "email":
            self.error(
                index,
                _("An Email field must be mapped to the prospect's email address."),
            )
        if prospect_field == "email":
            if field_type != FieldType.EMAIL:
                self.error(index, _("The email address field must have the type Email."))
            if not required:
                self.error(index, _("The email address field must be required."))
        if field_type == FieldType.CONSENT:
            if not consent_wording:
                self.error(index, _("Enter the consent wording shown next to the checkbox."))
            if target:
                self.error(
                    index,
                    _("A consent checkbox is kept in the consent log: leave it not mapped."),
                )
            default_value = ""
        else:
            consent_wording = ""
        if field_type in NEEDS_CHOICES and not choices:
            self.error(
                index,
                _("Add at least one choice (one per line) for a drop-down or radio buttons."),
            )
        if field_type not in CHOICE_TYPES:
            choices = []
        if default_value and field_type in NEEDS_CHOICES and default_value not in choices:
            self.error(index, _("The default value must be one of the choices."))
        if default_value and field_type == FieldType.DATE:
            try:
                datetime.date.fromisoformat(default_value)
            except ValueError:
                self.error(index, _("Enter the default date as YYYY-MM-DD."))

        show_if_known = _text(raw.get("show_if_known"))
        show_if_known_key = ""
        show_if_known_prospect_field = ""
        if field_type in (FieldType.HIDDEN, FieldType.CONSENT):
            show_if_known = ""
        if show_if_known.startswith(FIELD_PREFIX):
            show_if_known_key = show_if_known[len(FIELD_PREFIX) :]
        elif show_if_known.startswith(PROSPECT_PREFIX):
            show_if_known_prospect_field = show_if_known[len(PROSPECT_PREFIX) :]
            if show_if_known_prospect_field not in PROSPECT_FIELD_NAMES:
                self.error(index, _("Choose which field must be known before this one is asked."))
        elif show_if_known:
            self.error(index, _("Choose which field must be known before this one is asked."))

        return CleanField(
            key=key,
            prospect_field=prospect_field,
            custom_field=custom_field,
            field_type=field_type,
            label=label,
            required=required,
            help_text=help_text,
            error_message=error_message,
            default_value=default_value,
            choices=choices,
            consent_wording=consent_wording,
            show_if_known_key=show_if_known_key,
            show_if_known_prospect_field=show_if_known_prospect_field,
            skip_if_known=bool(raw.get("skip_if_known")) and bool(target),
        )

    def clipped(self, index: int, raw: dict[str, Any], name: str, limit: int, label: str) -> str:
        value = _text(raw.get(name))
        if len(value) > limit:
            self.error(
                index,
                _("The %(what)s is longer than %(limit)d characters.")
                % {"what": label, "limit": limit},
            )
            return value[:limit]
        return value

    def clean_choices(self, index: int, raw: Any, field_type: str) -> list[str]:
        if isinstance(raw, str):
            raw = raw.splitlines()
        if not isinstance(raw, list):
            return []
        choices: list[str] = []
        for item in raw:
            choice = _text(item) if isinstance(item, str) else _text(str(item))
            if not choice:
                continue
            if len(choice) > MAX_CHOICE_LENGTH:
                self.error(
                    index,
                    _("A choice is longer than %(limit)d characters.")
                    % {"limit": MAX_CHOICE_LENGTH},
                )
                continue
            if choice in choices:
                if field_type in CHOICE_TYPES:
                    self.error(
                        index, _("The choice “%(choice)s” appears twice.") % {"choice": choice}
                    )
                continue
            choices.append(choice)
        if len(choices) > MAX_CHOICES:
            self.error(index, _("At most %(count)d choices.") % {"count": MAX_CHOICES})
            choices = choices[:MAX_CHOICES]
        return choices

    def check_list(self, cleaned: list[CleanField]) -> None:
        email_rows = [row for row in cleaned if row.prospect_field == "email"]
        if len(email_rows) != 1:
            self.list_errors.append(
                _("A form needs exactly one email field, mapped to the prospect's email address.")
            )
        seen_targets: dict[str, int] = {}
        seen_keys: dict[str, int] = {}
        for index, row in enumerate(cleaned):
            if row.key in seen_keys:
                row.key = f"new-dup-{index}"
            seen_keys[row.key] = index
            target = row.target
            if not target:
                continue
            if target in seen_targets and row.prospect_field != "email":
                self.error(
                    index,
                    _("“%(label)s” is mapped to the same field as field %(number)d.")
                    % {"label": row.label, "number": seen_targets[target] + 1},
                )
            seen_targets.setdefault(target, index)
        by_key = {row.key: row for row in cleaned}
        for index, row in enumerate(cleaned):
            if not row.show_if_known_key:
                continue
            other = by_key.get(row.show_if_known_key)
            if other is None or other is row:
                self.error(index, _("Choose which field must be known before this one is asked."))
                continue
            if not other.target:
                self.error(
                    index,
                    _(
                        "“%(other)s” is not saved on the prospect, so it is never known: "
                        "choose a mapped field."
                    )
                    % {"other": other.label},
                )
                continue
            if self.goes_round(row, by_key):
                self.error(
                    index,
                    _("These fields wait for each other and would never be asked: %(label)s.")
                    % {"label": row.label},
                )

    @staticmethod
    def goes_round(row: CleanField, by_key: dict[str, CleanField]) -> bool:
        seen = {row.key}
        current = row
        while current.show_if_known_key:
            following = by_key.get(current.show_if_known_key)
            if following is None:
                return False
            if following.key in seen:
                return True
            seen.add(following.key)
            current = following
        return False


def fields_validate(raw: Any, *, custom_fields: dict[str, CustomField]) -> list[CleanField]:
    """Validate the builder's rows; raise FieldListError with every message found."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else []
        except ValueError as error:
            raise FieldListError(
                list_errors=[_("The fields could not be read; reload the page and try again.")]
            ) from error
    if not isinstance(raw, list):
        raise FieldListError(
            list_errors=[_("The fields could not be read; reload the page and try again.")]
        )
    return _RowCleaner(raw, custom_fields).clean()


class FieldListWidget(forms.Widget):
    """Renders the builder (templates/forms/_field_builder.html) with the rows and their errors."""

    template_name = "forms/_field_builder.html"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.row_errors: dict[int, list[str]] = {}
        self.catalogue: dict[str, Any] = {"types": [], "targets": []}

    def format_value(self, value: Any) -> str:
        if isinstance(value, str):
            return value or "[]"
        return json.dumps(value or [], ensure_ascii=False)

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["builder"] = {
            "name": name,
            "id": f"form-builder-{name}",
            "value_text": self.format_value(value),
            "catalogue": self.catalogue,
            "errors": {str(index): messages for index, messages in self.row_errors.items()},
            "max_fields": MAX_FIELDS,
        }
        return context

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        return render_to_string(self.template_name, self.get_context(name, value, attrs))

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        return data.get(name)


class FieldListField(forms.Field):
    """The builder's JSON in, a list of :class:`CleanField` out."""

    widget = FieldListWidget

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.custom_fields: dict[str, CustomField] = {}

    def load_custom_fields(self) -> None:
        """Read the custom fields (one query), per form instance: they change at run time."""
        custom_fields = list(CustomField.objects.order_by("label", "id"))
        self.custom_fields = {custom_field.key: custom_field for custom_field in custom_fields}
        if isinstance(self.widget, FieldListWidget):
            self.widget.catalogue = builder_catalogue(custom_fields)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return json.dumps(value, ensure_ascii=False)
        return value

    def clean(self, value: Any) -> list[CleanField]:
        try:
            return fields_validate(value, custom_fields=self.custom_fields)
        except FieldListError as error:
            if isinstance(self.widget, FieldListWidget):
                self.widget.row_errors = error.row_errors
            raise


# --- redirect locations --------------------------------------------------------------------------


def _clean_redirect_url(value: str) -> str:
    value = value.strip()
    refusal = redirect_url_error(value)
    if refusal:
        raise ValidationError(refusal, code="not_allowed")
    return value


class RedirectUrlField(forms.CharField):
    """A redirect location on the allow-list (the app's hosts, tracker domains, listed sites)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 2000)
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.URLInput(attrs={"placeholder": "https://"}))
        super().__init__(**kwargs)

    def clean(self, value: Any) -> str:
        return _clean_redirect_url(super().clean(value))


# --- the form builder ----------------------------------------------------------------------------


class FormBuilderForm(forms.Form):
    """A form's settings, its fields (the builder) and its completion actions."""

    name = forms.CharField(label=gettext_lazy("Name"), max_length=200)
    description = forms.CharField(
        label=gettext_lazy("Description"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy("For your team; visitors do not see it."),
    )
    form_fields = FieldListField(label=gettext_lazy("Fields"))
    submit_label = forms.CharField(
        label=gettext_lazy("Submit button label"), max_length=100, initial="送信"
    )
    thank_you_content = forms.CharField(
        label=gettext_lazy("Thank-you content"),
        required=False,
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=gettext_lazy("Shown after a successful submission. Text or simple HTML."),
    )
    thank_you_url = RedirectUrlField(
        label=gettext_lazy("Thank-you redirect URL"),
        help_text=gettext_lazy(
            "Optional: send the visitor here instead of showing the thank-you content "
            "(only hosts on the allow-list)."
        ),
    )
    kiosk_mode = forms.BooleanField(
        label=gettext_lazy("Kiosk / data-entry mode"),
        required=False,
        help_text=gettext_lazy("No visitor cookie is read or set: for events and trade shows."),
    )
    double_opt_in = forms.BooleanField(
        label=gettext_lazy("Double opt-in"),
        required=False,
        help_text=gettext_lazy("Opt-in counts only after the person confirms by email."),
    )
    campaign_name = forms.CharField(label=gettext_lazy("Campaign"), max_length=200, required=False)
    is_active = forms.BooleanField(label=gettext_lazy("Active"), required=False, initial=True)
    completion_actions = ActionListField(
        label=gettext_lazy("Completion actions"),
        help_text=gettext_lazy("Run on every successful submission, in this order."),
    )

    def __init__(self, *args: Any, actor: User | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        actions = self.fields["completion_actions"]
        if isinstance(actions, ActionListField):
            actions.actor = actor
        field_list = self.fields["form_fields"]
        if isinstance(field_list, FieldListField):
            field_list.load_custom_fields()


# --- form handlers -------------------------------------------------------------------------------


def target_choices() -> list[tuple[Any, Any]]:
    """Prospect fields and custom fields a handler field may fill, for a <select>."""
    custom = [
        (f"{CUSTOM_PREFIX}{custom_field.key}", custom_field.label)
        for custom_field in CustomField.objects.order_by("label", "id")
    ]
    choices: list[tuple[Any, Any]] = [("", gettext_lazy("(not mapped)"))]
    choices.append((gettext_lazy("Prospect fields"), list(PROSPECT_FIELD_CHOICES)))
    if custom:
        choices.append((gettext_lazy("Custom fields"), custom))
    return choices


class FormHandlerForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=200)
    success_url = RedirectUrlField(
        label=gettext_lazy("Success location"),
        help_text=gettext_lazy("Where the visitor goes after a successful post."),
    )
    error_url = RedirectUrlField(
        label=gettext_lazy("Error location"),
        help_text=gettext_lazy("Where the visitor goes when the post is refused (e.g. no email)."),
    )
    forward_data = forms.BooleanField(
        label=gettext_lazy("Forward data to the success location"),
        required=False,
        help_text=gettext_lazy("Append the submitted fields to the success URL."),
    )
    kiosk_mode = forms.BooleanField(
        label=gettext_lazy("Kiosk / data-entry mode"),
        required=False,
        help_text=gettext_lazy("No visitor cookie is read or set."),
    )
    honeypot_name = forms.CharField(
        label=gettext_lazy("Honeypot field name"),
        max_length=100,
        required=False,
        help_text=FormHandler._meta.get_field("honeypot_name").help_text,
    )
    campaign_name = forms.CharField(label=gettext_lazy("Campaign"), max_length=200, required=False)
    is_active = forms.BooleanField(label=gettext_lazy("Active"), required=False, initial=True)
    completion_actions = ActionListField(label=gettext_lazy("Completion actions"))

    def __init__(self, *args: Any, actor: User | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        actions = self.fields["completion_actions"]
        if isinstance(actions, ActionListField):
            actions.actor = actor


class HandlerFieldForm(forms.Form):
    """One mapping row: the name attribute on the customer's form → a prospect field."""

    external_name = forms.CharField(
        label=gettext_lazy("Field name on your form"), max_length=200, required=False
    )
    target = forms.ChoiceField(label=gettext_lazy("Prospect field"), required=False, choices=())
    required = forms.BooleanField(label=gettext_lazy("Required"), required=False)
    is_email = forms.BooleanField(label=gettext_lazy("Email field"), required=False)

    def __init__(
        self, *args: Any, choices: list[tuple[Any, Any]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        target = self.fields["target"]
        if isinstance(target, forms.ChoiceField):
            target.choices = choices if choices is not None else target_choices()
        # The table's column headers are the visible labels; each input still names itself.
        for field in self.fields.values():
            field.widget.attrs.setdefault("aria-label", str(field.label))

    def clean_external_name(self) -> str:
        name = str(self.cleaned_data.get("external_name") or "").strip()
        if any(character.isspace() for character in name):
            raise ValidationError(_("A field name has no spaces (it is the input's name=)."))
        return name


if TYPE_CHECKING:
    _HandlerFormSetBase = forms.BaseFormSet[HandlerFieldForm]
else:  # django-stubs' generic is not subscriptable at run time
    _HandlerFormSetBase = forms.BaseFormSet


class BaseHandlerFieldFormSet(_HandlerFormSetBase):
    """Rows with a name are the mapping; the list needs exactly one email field."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._target_choices: list[tuple[Any, Any]] | None = None

    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        """Every row shares one read of the custom fields (not one query per row)."""
        if self._target_choices is None:
            self._target_choices = target_choices()
        return {**super().get_form_kwargs(index), "choices": self._target_choices}

    def _is_deleted(self, form: HandlerFieldForm) -> bool:
        return self.can_delete and bool(getattr(form, "cleaned_data", {}).get("DELETE"))

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        names: set[str] = set()
        targets: set[str] = set()
        email_rows = 0
        for form in self.forms:
            if self._is_deleted(form):
                continue
            data = form.cleaned_data
            name = data.get("external_name") or ""
            if not name:
                if data.get("target") or data.get("is_email"):
                    form.add_error("external_name", _("Enter the field's name on your form."))
                continue
            if name in names:
                form.add_error("external_name", _("“%(name)s” is listed twice.") % {"name": name})
            names.add(name)
            target = data.get("target") or ""
            if data.get("is_email"):
                email_rows += 1
                if target not in ("", "email"):
                    form.add_error(
                        "target", _("The email field is saved as the prospect's email address.")
                    )
            elif target == "email":
                form.add_error("is_email", _("Tick “Email field” for the email address."))
            if target and target in targets:
                form.add_error("target", _("Two fields fill the same prospect field."))
            if target:
                targets.add(target)
        if email_rows != 1:
            raise ValidationError(
                _("Mark exactly one field as the email field: prospects are found by email.")
            )

    def mapping_rows(self, custom_fields: dict[str, CustomField]) -> list[dict[str, Any]]:
        """The named rows in order, as forms.services expects them."""
        rows = []
        for form in self.forms:
            if self._is_deleted(form):
                continue
            data = getattr(form, "cleaned_data", {})
            name = data.get("external_name") or ""
            if not name:
                continue
            target = "email" if data.get("is_email") else data.get("target") or ""
            custom_field_id = None
            prospect_field = target
            if target.startswith(CUSTOM_PREFIX):
                custom_field = custom_fields.get(target[len(CUSTOM_PREFIX) :])
                custom_field_id = custom_field.pk if custom_field is not None else None
                prospect_field = ""
            rows.append(
                {
                    "external_name": name,
                    "prospect_field": prospect_field,
                    "custom_field_id": custom_field_id,
                    "required": bool(data.get("required")) or bool(data.get("is_email")),
                    "is_email": bool(data.get("is_email")),
                }
            )
        return rows


HandlerFieldFormSet = forms.formset_factory(
    HandlerFieldForm,
    formset=BaseHandlerFieldFormSet,
    extra=3,
    can_delete=True,
    max_num=MAX_FIELDS,
    validate_max=True,
)


def handler_field_initial(handler: FormHandler) -> list[dict[str, Any]]:
    rows = []
    for handler_field in handler.fields.select_related("custom_field"):
        target = handler_field.prospect_field
        if handler_field.custom_field is not None:
            target = f"{CUSTOM_PREFIX}{handler_field.custom_field.key}"
        rows.append(
            {
                "external_name": handler_field.external_name,
                "target": target,
                "required": handler_field.required,
                "is_email": handler_field.is_email,
            }
        )
    return rows


# --- landing pages -------------------------------------------------------------------------------


class LandingPageForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=200)
    slug = forms.SlugField(
        label=gettext_lazy("Page URL"),
        max_length=100,
        help_text=gettext_lazy("The page is published at /lp/<address>: letters, digits, - and _."),
    )
    title = forms.CharField(label=gettext_lazy("Page title"), max_length=200)
    meta_description = forms.CharField(
        label=gettext_lazy("Meta description"),
        max_length=300,
        required=False,
        help_text=gettext_lazy("Shown by search engines under the title."),
    )
    layout = forms.ChoiceField(label=gettext_lazy("Layout"), choices=LandingPage.Layout.choices)
    form = forms.ModelChoiceField(
        label=gettext_lazy("Form"),
        queryset=Form.objects.none(),
        required=False,
        empty_label=gettext_lazy("(no form)"),
    )
    content = forms.CharField(
        label=gettext_lazy("Content"),
        required=False,
        max_length=200_000,
        widget=forms.Textarea(attrs={"rows": 16, "class": "code", "spellcheck": "false"}),
        help_text=gettext_lazy(
            "HTML with merge fields such as {{ prospect.first_name }}; scripts are removed."
        ),
    )

    def __init__(self, *args: Any, landing_page: LandingPage | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.landing_page = landing_page
        form_field = self.fields["form"]
        if isinstance(form_field, forms.ModelChoiceField):
            form_field.queryset = Form.objects.order_by("name", "id")

    def clean_slug(self) -> str:
        slug = str(self.cleaned_data["slug"]).lower()
        taken = LandingPage.objects.filter(slug=slug)
        if self.landing_page is not None:
            taken = taken.exclude(pk=self.landing_page.pk)
        if taken.exists():
            raise ValidationError(_("Another landing page already uses this address."))
        return slug

    def clean_content(self) -> str:
        """Refused with the sandbox's messages: what it finds by reading the template, then what
        a render with the example values runs into (a loop over a billion items)."""
        content = str(self.cleaned_data.get("content") or "")
        problems = template_validate(content)
        if problems:
            raise ValidationError([str(problem) for problem in problems])
        try:
            render_marketer_template(content, MergeContext(preview=True))
        except TemplateError as error:
            raise ValidationError(error.messages) from error
        return content


# --- saving what the builder cleaned -------------------------------------------------------------
# The rows themselves are written by forms.services (redirect allow-list, action validation,
# consent wording versions, audit log); this part decides which row each builder field becomes.


def _form_settings(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": data["name"],
        "description": data.get("description") or "",
        "submit_label": data["submit_label"],
        "thank_you_content": data.get("thank_you_content") or "",
        "thank_you_url": data.get("thank_you_url") or "",
        "kiosk_mode": bool(data.get("kiosk_mode")),
        "double_opt_in": bool(data.get("double_opt_in")),
        "campaign_name": data.get("campaign_name") or "",
        "is_active": bool(data.get("is_active")),
        "completion_actions": data.get("completion_actions") or [],
    }


def _claim_rows(
    existing: dict[int, FormField], fields: list[CleanField], form: Form
) -> list[tuple[CleanField, FormField]]:
    """Pair each builder field with the row it updates (or a new one).

    A field posted with its id keeps its row; a prospect field removed earlier and added again
    gets its old row back, so its submissions keep one column.
    """
    claimed: set[int] = set()
    assigned: list[tuple[CleanField, FormField]] = []
    for clean in fields:
        row = existing.get(clean.saved_id or 0)
        if row is None or row.pk in claimed:
            row = next(
                (
                    candidate
                    for candidate in existing.values()
                    if clean.prospect_field
                    and candidate.prospect_field == clean.prospect_field
                    and candidate.pk not in claimed
                ),
                None,
            )
        if row is not None:
            claimed.add(row.pk)
        assigned.append((clean, row or FormField(form=form)))
    return assigned


def form_builder_save(
    *, actor: User, form: Form | None, data: dict[str, Any], fields: list[CleanField]
) -> Form:
    """Create or update a form with its settings and its ordered fields, in one transaction.

    Fields keep their rows (and so their ``field_<id>`` input names and the columns of old
    submissions); a removed field is only deactivated. The form row is locked so two marketers
    saving at once cannot interleave their field lists. Raises ValidationError from
    forms.services (e.g. a redirect host removed from the allow-list meanwhile).
    """
    settings_values = _form_settings(data)
    with transaction.atomic():
        if form is None:
            form = Form(**settings_values)
        else:
            form = Form.objects.select_for_update().get(pk=form.pk)
            for name, value in settings_values.items():
                setattr(form, name, value)
        form = services.form_save(actor=actor, form=form)
        existing = {row.pk: row for row in FormField.objects.filter(form=form)}
        assigned = _claim_rows(existing, fields, form)
        kept = {row.pk for _clean, row in assigned if row.pk}
        # The (form, prospect_field) constraint holds at every statement: free each prospect
        # field that moves to another row before any row takes it.
        final = {row.pk: clean.prospect_field for clean, row in assigned if row.pk}
        taken = {clean.prospect_field for clean, _row in assigned if clean.prospect_field}
        to_free = [
            row.pk
            for row in existing.values()
            if row.prospect_field
            and (
                final.get(row.pk, row.prospect_field) != row.prospect_field
                or (row.pk not in final and row.prospect_field in taken)
            )
        ]
        FormField.objects.filter(pk__in=to_free).update(prospect_field="")
        FormField.objects.filter(form=form).exclude(pk__in=kept).update(
            is_active=False, progressive_show_if_known=None
        )
        saved_by_key: dict[str, FormField] = {}
        for position, (clean, row) in enumerate(assigned):
            row.position = position
            row.prospect_field = clean.prospect_field
            row.custom_field = clean.custom_field
            row.field_type = clean.field_type
            row.label = clean.label
            row.required = clean.required
            row.help_text = clean.help_text
            row.error_message = clean.error_message
            row.default_value = clean.default_value
            row.choices = clean.choices
            row.consent_wording = clean.consent_wording
            row.progressive_show_if_known = None
            row.progressive_show_if_known_prospect_field = clean.show_if_known_prospect_field
            row.skip_if_known = clean.skip_if_known
            row.is_active = True
            services.form_field_save(form_field=row)
            saved_by_key[clean.key] = row
        # Conditions may point at fields saved after them: set them once every row exists.
        for clean, row in assigned:
            condition = saved_by_key.get(clean.show_if_known_key)
            if condition is not None:
                row.progressive_show_if_known = condition
                services.form_field_save(form_field=row)
    return form


def form_handler_builder_save(
    *,
    actor: User,
    handler: FormHandler | None,
    data: dict[str, Any],
    mapping: list[dict[str, Any]],
) -> FormHandler:
    """Create or update a form handler and replace its field mapping, in one transaction."""
    values = {
        "name": data["name"],
        "success_url": data.get("success_url") or "",
        "error_url": data.get("error_url") or "",
        "forward_data": bool(data.get("forward_data")),
        "kiosk_mode": bool(data.get("kiosk_mode")),
        "honeypot_name": data.get("honeypot_name") or "",
        "campaign_name": data.get("campaign_name") or "",
        "is_active": bool(data.get("is_active")),
        "completion_actions": data.get("completion_actions") or [],
    }
    with transaction.atomic():
        if handler is None:
            handler = FormHandler(**values)
        else:
            handler = FormHandler.objects.select_for_update().get(pk=handler.pk)
            for name, value in values.items():
                setattr(handler, name, value)
        handler = services.form_handler_save(actor=actor, handler=handler)
        services.form_handler_fields_set(handler=handler, fields=mapping)
    return handler
