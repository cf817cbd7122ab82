"""Writes of forms, form fields, form handlers and landing pages (the marketer's side).

The public side (storing and processing submissions) is in ``forms.submissions``; consent in
``forms.consent``. Every save here checks what the public side relies on: redirect targets on
the allow-list, completion actions valid for the actor's role, one consent wording version per
text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from forms.consent import form_field_consent_wording_save
from forms.models import (
    ConsentRecord,
    FieldType,
    Form,
    FormField,
    FormHandler,
    FormHandlerField,
    LandingPage,
    Submission,
)
from forms.redirects import redirect_url_error
from mapp.models import User
from mapp.services import audit_log_record
from prospects.actions import actions_validate


def prospect_forms_history_move(*, from_prospect_ids: Sequence[int], to_prospect_id: int) -> None:
    """Merge support: submissions and consent records of merged prospects go to the survivor."""
    ids = list(from_prospect_ids)
    Submission.objects.filter(prospect_id__in=ids).update(prospect_id=to_prospect_id)
    ConsentRecord.objects.filter(prospect_id__in=ids).update(prospect_id=to_prospect_id)


def _check_redirect(field_name: str, url: str) -> None:
    error = redirect_url_error(url)
    if error is not None:
        raise ValidationError({field_name: error})


def _actor_or_none(actor: User | None) -> User | None:
    return actor if actor is not None and actor.pk else None


def form_save(*, actor: User | None, form: Form) -> Form:
    """Create or update a form after checking its thank-you URL and completion actions.

    ``completion_actions`` is replaced by its cleaned copy (``actions_validate``: actions the
    actor's role may not set up are refused).
    """
    _check_redirect("thank_you_url", form.thank_you_url.strip())
    form.thank_you_url = form.thank_you_url.strip()
    try:
        form.completion_actions = actions_validate(form.completion_actions, actor=actor)
    except ValidationError as error:
        raise ValidationError({"completion_actions": error.messages}) from error
    is_new = form.pk is None
    if is_new:
        form.created_by = _actor_or_none(actor)
    form.save()
    audit_log_record(
        actor=_actor_or_none(actor),
        action="form.create" if is_new else "form.update",
        target=form,
    )
    return form


def form_field_save(*, form_field: FormField) -> FormField:
    """Save a field; a consent field's changed wording becomes a new ConsentWording version."""
    if form_field.prospect_field and form_field.custom_field_id:
        raise ValidationError(_("Map a field to a prospect field or a custom field, not both."))
    condition = form_field.progressive_show_if_known
    if condition is not None and (
        condition.form_id != form_field.form_id or condition.pk == form_field.pk
    ):
        raise ValidationError(
            {"progressive_show_if_known": _("Choose another field of the same form.")}
        )
    duplicates = FormField.objects.filter(
        form_id=form_field.form_id, prospect_field=form_field.prospect_field
    ).exclude(pk=form_field.pk)
    if form_field.prospect_field and duplicates.exists():
        raise ValidationError(
            {"prospect_field": _("Another field of this form is mapped to this prospect field.")}
        )
    if form_field.field_type == FieldType.CONSENT and not form_field.consent_wording.strip():
        raise ValidationError({"consent_wording": _("Enter the consent wording people agree to.")})
    with transaction.atomic():
        form_field.save()
        if form_field.field_type == FieldType.CONSENT:
            form_field_consent_wording_save(form_field=form_field, text=form_field.consent_wording)
    return form_field


def form_fields_reorder(*, form: Form, field_ids: Sequence[int]) -> None:
    """Positions follow ``field_ids``; fields of other forms in the list are ignored."""
    with transaction.atomic():
        for position, field_id in enumerate(field_ids):
            FormField.objects.filter(pk=field_id, form=form).update(position=position)
        Form.objects.filter(pk=form.pk).update(updated_at=timezone.now())


def form_handler_save(*, actor: User | None, handler: FormHandler) -> FormHandler:
    """Create or update a handler after checking its locations and completion actions."""
    handler.success_url = handler.success_url.strip()
    handler.error_url = handler.error_url.strip()
    _check_redirect("success_url", handler.success_url)
    _check_redirect("error_url", handler.error_url)
    try:
        handler.completion_actions = actions_validate(handler.completion_actions, actor=actor)
    except ValidationError as error:
        raise ValidationError({"completion_actions": error.messages}) from error
    is_new = handler.pk is None
    if is_new:
        handler.created_by = _actor_or_none(actor)
    handler.save()
    audit_log_record(
        actor=_actor_or_none(actor),
        action="form_handler.create" if is_new else "form_handler.update",
        target=handler,
    )
    return handler


def form_handler_fields_set(
    *, handler: FormHandler, fields: Sequence[dict[str, Any]]
) -> list[FormHandlerField]:
    """Replace the handler's field mapping; exactly one field must be the email field.

    Each item: ``external_name``, ``prospect_field`` or ``custom_field_id``, ``required``,
    ``is_email``.
    """
    names = [str(item.get("external_name", "")).strip() for item in fields]
    if any(not name for name in names):
        raise ValidationError(_("Every field needs the name it has on your form."))
    if len(set(names)) != len(names):
        raise ValidationError(_("Each field name may appear only once."))
    if sum(1 for item in fields if item.get("is_email")) != 1:
        raise ValidationError(_("Mark exactly one field as the email field."))
    rows = [
        FormHandlerField(
            handler=handler,
            external_name=name,
            prospect_field="email" if item.get("is_email") else str(item.get("prospect_field", "")),
            custom_field_id=item.get("custom_field_id") or None,
            required=bool(item.get("required")) or bool(item.get("is_email")),
            is_email=bool(item.get("is_email")),
            position=position,
        )
        for position, (name, item) in enumerate(zip(names, fields, strict=True))
    ]
    with transaction.atomic():
        handler.fields.all().delete()
        return FormHandlerField.objects.bulk_create(rows)


def landing_page_publish(*, actor: User | None, landing_page: LandingPage) -> LandingPage:
    LandingPage.objects.filter(pk=landing_page.pk).update(
        is_published=True, published_at=timezone.now(), updated_at=timezone.now()
    )
    landing_page.refresh_from_db()
    audit_log_record(
        actor=_actor_or_none(actor), action="landing_page.publish", target=landing_page
    )
    return landing_page


def landing_page_unpublish(*, actor: User | None, landing_page: LandingPage) -> LandingPage:
    LandingPage.objects.filter(pk=landing_page.pk).update(
        is_published=False, updated_at=timezone.now()
    )
    landing_page.refresh_from_db()
    audit_log_record(
        actor=_actor_or_none(actor), action="landing_page.unpublish", target=landing_page
    )
    return landing_page
