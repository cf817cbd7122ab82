"""Checking a stored post against the form (or handler) it was made to.

Works on ``Submission.raw_data`` (input name → text, or a list of texts for multiple
choices), so the same checks run in the request and in a retry task. Messages are translated
in the active language (the processing code activates the submitter's); a field's own
``error_message`` replaces the default messages of that field.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils.translation import gettext as _

from forms.models import FieldType, FormField, FormHandlerField
from prospects.models import CustomFieldType, Prospect
from prospects.normalization import nfkc, normalize_email

# Unmapped text stays in the raw store; this bounds what is compared and shown again.
UNMAPPED_MAX_LENGTH = 10_000
CHECKED_VALUES = frozenset({"1", "on", "true", "yes", "y", "はい"})


@dataclass
class CleanedData:
    """What a valid post says about the prospect, or the errors by input name."""

    email: str = ""
    prospect_data: dict[str, Any] = field(default_factory=dict)
    custom_values: dict[str, Any] = field(default_factory=dict)
    consent_wording_ids: list[int] = field(default_factory=list)
    has_consent_field: bool = False
    errors: dict[str, list[str]] = field(default_factory=dict)
    # Input name of each prospect field / custom field key, to place service errors.
    input_for_target: dict[str, str] = field(default_factory=dict)

    def add_error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)


def raw_text(data: Mapping[str, Any], name: str) -> str:
    """The single value posted under ``name`` ("" if missing); the first of several."""
    value = data.get(name)
    if isinstance(value, list):
        value = value[0] if value else ""
    return "" if value is None else str(value)


def raw_list(data: Mapping[str, Any], name: str) -> list[str]:
    value = data.get(name)
    if value is None:
        return []
    if isinstance(value, list):
        return [str(item) for item in value]
    return [str(value)]


def email_clean(value: str) -> str | None:
    """The normalised address (full-width folded, lower case), or None if it is not one."""
    from email_validator import EmailNotValidError, validate_email

    address = normalize_email(value)
    if not address:
        return None
    try:
        result = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return None
    return normalize_email(result.normalized)


def _max_length(prospect_field: str) -> int | None:
    model_field = Prospect._meta.get_field(prospect_field)
    return getattr(model_field, "max_length", None)


def _date_clean(value: str) -> str | None:
    text = nfkc(value).replace("/", "-").replace(".", "-")
    try:
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        return None


def _is_checked(values: list[str]) -> bool:
    return any(nfkc(value).lower() in CHECKED_VALUES for value in values)


def _target_key(form_field: FormField | FormHandlerField) -> str:
    if form_field.prospect_field:
        return form_field.prospect_field
    if form_field.custom_field_id is not None and form_field.custom_field is not None:
        return f"custom:{form_field.custom_field.key}"
    return ""


def _store_value(
    cleaned: CleanedData, form_field: FormField | FormHandlerField, value: Any
) -> None:
    if form_field.prospect_field:
        if form_field.prospect_field == "email":
            return  # kept in cleaned.email
        cleaned.prospect_data[form_field.prospect_field] = value
    elif form_field.custom_field_id is not None and form_field.custom_field is not None:
        custom_field = form_field.custom_field
        if isinstance(value, list) and custom_field.field_type != CustomFieldType.MULTI_CHOICE:
            value = "; ".join(value)
        cleaned.custom_values[custom_field.key] = value


def _field_value(form_field: FormField, data: Mapping[str, Any]) -> tuple[Any, list[str]]:
    """(clean value or "" when empty, messages) for one shown form field."""
    name = form_field.input_name
    field_type = form_field.field_type
    messages: list[str] = []
    if field_type == FieldType.CONSENT:
        checked = _is_checked(raw_list(data, name))
        if form_field.required and not checked:
            messages.append(_("Please agree to continue."))
        return ("1" if checked else ""), messages
    if field_type == FieldType.CHECKBOX and form_field.choices:
        allowed = {str(choice) for choice in form_field.choices}
        values = [value.strip() for value in raw_list(data, name) if value.strip()]
        if any(value not in allowed for value in values):
            messages.append(_("Choose from the offered options."))
        if form_field.required and not values:
            messages.append(_("This field is required."))
        return values, messages
    if field_type == FieldType.CHECKBOX:
        checked = _is_checked(raw_list(data, name))
        if form_field.required and not checked:
            messages.append(_("This field is required."))
        return ("1" if checked else ""), messages
    text = raw_text(data, name).strip()
    if not text:
        if form_field.required:
            messages.append(_("This field is required."))
        return "", messages
    if field_type == FieldType.EMAIL or form_field.prospect_field == "email":
        address = email_clean(text)
        if address is None:
            messages.append(_("Enter a valid email address."))
            return "", messages
        return address, messages
    if field_type in (FieldType.SELECT, FieldType.RADIO) and form_field.choices:
        if text not in {str(choice) for choice in form_field.choices}:
            messages.append(_("Choose from the offered options."))
        return text, messages
    if field_type == FieldType.DATE:
        day = _date_clean(text)
        if day is None:
            messages.append(_("Enter a date as YYYY-MM-DD."))
            return "", messages
        return day, messages
    limit = _max_length(form_field.prospect_field) if form_field.prospect_field else None
    limit = limit or UNMAPPED_MAX_LENGTH
    if len(text) > limit:
        messages.append(_("At most %(count)d characters.") % {"count": limit})
    return text, messages


def clean_form_data(
    *,
    fields: Sequence[FormField],
    data: Mapping[str, Any],
    consent_wordings: Mapping[int, int],
) -> CleanedData:
    """Check ``data`` against the fields that were shown; collect prospect values and consent.

    ``consent_wordings`` maps a consent field's id to the wording version shown (from the
    render token), so the record names the text the person actually saw.
    """
    cleaned = CleanedData()
    for form_field in fields:
        value, messages = _field_value(form_field, data)
        if messages:
            for message in messages:
                cleaned.add_error(form_field.input_name, form_field.error_message or message)
            # One custom message, not the same text once per problem.
            if form_field.error_message:
                cleaned.errors[form_field.input_name] = [form_field.error_message]
            continue
        target = _target_key(form_field)
        if target:
            cleaned.input_for_target[target.removeprefix("custom:")] = form_field.input_name
        if form_field.field_type == FieldType.CONSENT:
            cleaned.has_consent_field = True
            wording_id = consent_wordings.get(form_field.pk) or form_field.consent_version_id
            if value and wording_id:
                cleaned.consent_wording_ids.append(int(wording_id))
            continue
        if form_field.prospect_field == "email":
            cleaned.email = str(value)
            cleaned.input_for_target["email"] = form_field.input_name
            continue
        _store_value(cleaned, form_field, value)
    return cleaned


def clean_handler_data(
    *, fields: Sequence[FormHandlerField], data: Mapping[str, Any]
) -> CleanedData:
    """Check a form handler post: the email field (required and valid) and required fields."""
    cleaned = CleanedData()
    email_field = next((item for item in fields if item.is_email), None) or next(
        (item for item in fields if item.prospect_field == "email"), None
    )
    if email_field is None:
        cleaned.add_error(NON_FIELD_ERRORS, _("This form handler has no email field."))
        return cleaned
    for handler_field in fields:
        name = handler_field.external_name
        values = [value.strip() for value in raw_list(data, name) if value.strip()]
        if handler_field is email_field:
            if not values:
                cleaned.add_error(name, _("Email address is required."))
                continue
            address = email_clean(values[0])
            if address is None:
                cleaned.add_error(name, _("Enter a valid email address."))
                continue
            cleaned.email = address
            cleaned.input_for_target["email"] = name
            continue
        if handler_field.required and not values:
            cleaned.add_error(name, _("This field is required."))
            continue
        if not values:
            continue
        target = _target_key(handler_field)
        if not target:
            continue
        cleaned.input_for_target[target.removeprefix("custom:")] = name
        value: Any = values if len(values) > 1 else values[0]
        if handler_field.prospect_field:
            text = "; ".join(values)
            limit = _max_length(handler_field.prospect_field)
            if limit and len(text) > limit:
                cleaned.add_error(name, _("At most %(count)d characters.") % {"count": limit})
                continue
            value = text
        _store_value(cleaned, handler_field, value)
    return cleaned


def service_errors(error: ValidationError, cleaned: CleanedData) -> dict[str, list[str]]:
    """A prospect service's ValidationError (keyed by prospect field / custom key) placed on
    the inputs that carried those values."""
    placed: dict[str, list[str]] = {}
    if hasattr(error, "error_dict"):
        for key, errors in error.message_dict.items():
            name = cleaned.input_for_target.get(key, NON_FIELD_ERRORS)
            placed.setdefault(name, []).extend(errors)
    else:
        placed[NON_FIELD_ERRORS] = list(error.messages)
    return placed
