"""The public form as visitors see it: the fields to render, their values and errors, the
render token, the thank-you content — for the standalone page, the iframe and landing pages.

``templates/forms/public/_form.html`` is the one form partial: the form page includes it, and
landing pages put :func:`landing_page_form_html` where the marketer placed the form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import linebreaks
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from forms import bot_protection
from forms.consent import consent_version_current
from forms.fields import AUTOCOMPLETE
from forms.models import ConsentWording, FieldType, Form, FormField, LandingPage
from forms.selectors import fields_to_show, form_fields_active
from forms.validation import raw_list, raw_text
from prospects.models import Prospect
from tracking.visitor_cookie import read_visitor

INPUT_TYPES = {
    FieldType.TEXT: "text",
    FieldType.EMAIL: "email",
    FieldType.DATE: "date",
    FieldType.HIDDEN: "hidden",
}


@dataclass
class FieldView:
    """One field as the template draws it."""

    form_field: FormField
    name: str
    html_id: str
    widget: str
    label: str
    help_text: str
    required: bool
    value: str = ""
    values: list[str] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wording: ConsentWording | None = None
    autocomplete: str = ""
    maxlength: int | None = None


def _widget(form_field: FormField) -> str:
    if form_field.field_type in (FieldType.SELECT, FieldType.RADIO, FieldType.TEXTAREA):
        return str(form_field.field_type)
    if form_field.field_type == FieldType.CHECKBOX:
        return "checkboxes" if form_field.choices else "checkbox"
    if form_field.field_type == FieldType.CONSENT:
        return "consent"
    if form_field.prospect_field == "email":
        return "email"
    if form_field.prospect_field == "phone" and form_field.field_type == FieldType.TEXT:
        return "tel"
    return INPUT_TYPES.get(FieldType(form_field.field_type), "text")


def _maxlength(form_field: FormField) -> int | None:
    if not form_field.prospect_field:
        return None
    return getattr(Prospect._meta.get_field(form_field.prospect_field), "max_length", None)


def field_views(
    fields: Sequence[FormField],
    *,
    data: Mapping[str, Any] | None,
    errors: Mapping[str, list[str]] | None,
) -> list[FieldView]:
    """The fields with the posted values (re-render) or their defaults (first render)."""
    views = []
    for form_field in fields:
        name = form_field.input_name
        view = FieldView(
            form_field=form_field,
            name=name,
            html_id=f"mapp-field-{form_field.pk}",
            widget=_widget(form_field),
            label=form_field.label,
            help_text=form_field.help_text,
            required=form_field.required,
            choices=[str(choice) for choice in form_field.choices or []],
            errors=list((errors or {}).get(name, [])),
            wording=consent_version_current(form_field),
            autocomplete=AUTOCOMPLETE.get(form_field.prospect_field, ""),
            maxlength=_maxlength(form_field),
        )
        if data is None:
            view.value = form_field.default_value
            # Consent is never ticked in advance: only the person's own tick counts.
            if form_field.default_value and form_field.field_type != FieldType.CONSENT:
                view.values = [form_field.default_value]
        else:
            view.value = raw_text(data, name)
            view.values = raw_list(data, name)
        views.append(view)
    return views


def known_prospect(request: HttpRequest, form: Form) -> Prospect | None:
    """The prospect the visitor cookie is linked to (never in kiosk mode)."""
    if form.kiosk_mode:
        return None
    visitor = read_visitor(request)
    if visitor is None or visitor.prospect_id is None:
        return None
    return Prospect.objects.filter(pk=visitor.prospect_id).first()


def form_action_url(
    form: Form, *, landing_page: LandingPage | None = None, embedded: bool = False
) -> str:
    url = reverse("forms_public:form", kwargs={"form_uuid": form.uuid})
    parameters: list[tuple[str, str]] = []
    if landing_page is not None:
        parameters.append(("lp", str(landing_page.pk)))
    if embedded:
        parameters.append(("embed", "1"))
    return f"{url}?{urlencode(parameters)}" if parameters else url


def form_context(
    *,
    form: Form,
    shown: Sequence[FormField],
    data: Mapping[str, Any] | None = None,
    errors: Mapping[str, list[str]] | None = None,
    landing_page: LandingPage | None = None,
    embedded: bool = False,
) -> dict[str, Any]:
    """The context of ``forms/public/_form.html``, with a fresh render token."""
    views = field_views(shown, data=data, errors=errors)
    consent_wordings = {
        view.form_field.pk: view.wording.pk for view in views if view.wording is not None
    }
    token = bot_protection.render_token_issue(
        form_uuid=form.uuid,
        shown_field_ids=[item.pk for item in shown],
        consent_wordings=consent_wordings,
    )
    non_field_errors = [
        message
        for name, messages in (errors or {}).items()
        if name not in {view.name for view in views}
        for message in messages
    ]
    return {
        "form": form,
        "fields": views,
        "visible_fields": [view for view in views if view.widget != "hidden"],
        "hidden_fields": [view for view in views if view.widget == "hidden"],
        "non_field_errors": non_field_errors,
        "has_errors": bool(errors),
        "token": token,
        "token_field": bot_protection.TOKEN_FIELD,
        "honeypot_field": bot_protection.HONEYPOT_FIELD,
        "action_url": form_action_url(form, landing_page=landing_page, embedded=embedded),
    }


def shown_fields_for(request: HttpRequest, form: Form) -> list[FormField]:
    """The fields to ask this visitor now (progressive profiling by the cookie's prospect)."""
    return fields_to_show(form_fields_active(form), known_prospect(request, form))


def landing_page_form_html(*, request: HttpRequest, landing_page: LandingPage) -> SafeString:
    """The landing page's form, to place in its content (empty if it has no active form)."""
    form = landing_page.form
    if form is None or not form.is_active:
        return mark_safe("")
    context = form_context(
        form=form, shown=shown_fields_for(request, form), landing_page=landing_page
    )
    return mark_safe(  # noqa: S308 - rendered by a Django template with autoescape
        render_to_string("forms/public/_form.html", context, request=request)
    )


def thank_you_html(form: Form | None) -> SafeString:
    """The thank-you content: plain text with line breaks, or HTML through the sanitiser."""
    content = (form.thank_you_content if form is not None else "").strip()
    if not content:
        return mark_safe(  # noqa: S308 - escaped by linebreaks
            linebreaks(_("Thank you. We have received your submission."), autoescape=True)
        )
    if "<" not in content:
        return mark_safe(linebreaks(content, autoescape=True))  # noqa: S308 - escaped
    from mapp.templating import sanitize_html

    return mark_safe(sanitize_html(content))  # noqa: S308 - sanitised by nh3
