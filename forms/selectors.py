"""Reads of forms for the public pages: fields to show (progressive profiling), embed snippets,
submission counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.urls import reverse
from django.utils.html import escape

from forms.models import Form, FormField, FormHandler, Submission, SubmissionStatus
from prospects.models import CustomFieldValue, Prospect


def form_fields_active(form: Form) -> list[FormField]:
    """The form's active fields in order, with what rendering and validation need joined."""
    return list(
        FormField.objects.filter(form=form, is_active=True)
        .select_related("custom_field", "consent_version", "progressive_show_if_known")
        .order_by("position", "id")
    )


def handler_fields(handler: FormHandler) -> list[Any]:
    return list(handler.fields.select_related("custom_field").order_by("position", "id"))


def _has_value(
    prospect: Prospect, *, prospect_field: str, custom_field_id: int | None, custom_known: set[int]
) -> bool:
    if prospect_field:
        value = getattr(prospect, prospect_field, None)
        return value not in (None, "")
    if custom_field_id is not None:
        return custom_field_id in custom_known
    return False


def fields_to_show(fields: Sequence[FormField], prospect: Prospect | None) -> list[FormField]:
    """Progressive profiling: which fields to ask this visitor.

    A field with ``progressive_show_if_known`` (another field, or a prospect field name) is
    asked only once that is known for the visitor's prospect; a ``skip_if_known`` field is not
    asked again when the prospect already has a value. An anonymous visitor (or kiosk mode)
    sees every field without a condition.
    """
    custom_known: set[int] = set()
    if prospect is not None:
        custom_ids = [item.custom_field_id for item in fields if item.custom_field_id]
        condition_ids = [
            item.progressive_show_if_known.custom_field_id
            for item in fields
            if item.progressive_show_if_known is not None
            and item.progressive_show_if_known.custom_field_id
        ]
        if custom_ids or condition_ids:
            custom_known = set(
                CustomFieldValue.objects.filter(
                    prospect=prospect, field_id__in=[*custom_ids, *condition_ids]
                ).values_list("field_id", flat=True)
            )

    def known(prospect_field: str, custom_field_id: int | None) -> bool:
        if prospect is None:
            return False
        return _has_value(
            prospect,
            prospect_field=prospect_field,
            custom_field_id=custom_field_id,
            custom_known=custom_known,
        )

    shown = []
    for item in fields:
        condition = item.progressive_show_if_known
        if condition is not None and not known(condition.prospect_field, condition.custom_field_id):
            continue
        if item.progressive_show_if_known_prospect_field and not known(
            item.progressive_show_if_known_prospect_field, None
        ):
            continue
        if item.skip_if_known and known(item.prospect_field, item.custom_field_id):
            continue
        shown.append(item)
    return shown


def form_public_url(form: Form, base_url: str) -> str:
    return f"{base_url.rstrip('/')}{reverse('forms_public:form', kwargs={'form_uuid': form.uuid})}"


def embed_snippets(form: Form, base_url: str) -> dict[str, str]:
    """The HTML a marketer pastes into a website: a plain iframe, or a script that inserts one
    and keeps its height fitted to the form (``url``: the form page itself)."""
    url = form_public_url(form, base_url)
    script_url = (
        f"{base_url.rstrip('/')}{reverse('forms_public:embed_js', kwargs={'form_uuid': form.uuid})}"
    )
    title = escape(form.name)
    return {
        "url": url,
        "iframe": (
            f'<iframe src="{escape(url)}?embed=1" title="{title}" width="100%" height="640" '
            f'style="border:0;width:100%;max-width:100%" loading="lazy"></iframe>'
        ),
        "script": (
            f'<div data-mapp-form="{form.uuid}"></div>\n'
            f'<script src="{escape(script_url)}" async></script>'
        ),
    }


def submissions_for(
    *, form: Form | None = None, handler: FormHandler | None = None
) -> QuerySet[Submission]:
    queryset = Submission.objects.all()
    if form is not None:
        queryset = queryset.filter(form=form)
    if handler is not None:
        queryset = queryset.filter(handler=handler)
    return queryset


def submission_status_counts(
    *, form: Form | None = None, handler: FormHandler | None = None
) -> dict[str, int]:
    """Submissions by status (rejected bots included: they are counted, never processed)."""
    counts = submissions_for(form=form, handler=handler).aggregate(
        **{status: Count("pk", filter=Q(status=status)) for status in SubmissionStatus.values}
    )
    return {status: int(count or 0) for status, count in counts.items()}
