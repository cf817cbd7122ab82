"""The prospect fields a form, landing page or form handler may write.

A subset of ``prospects.services.EDITABLE_FIELDS``: ``source`` and ``notes`` are set by the
marketing team, never by the public, so a visitor cannot overwrite them from a form.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

# (prospect field name, label) — the order is the order the builder offers them.
PROSPECT_FIELD_CHOICES: tuple[tuple[str, object], ...] = (
    ("email", _("Email address")),
    ("last_name", _("Last name")),
    ("first_name", _("First name")),
    ("last_name_kana", _("Last name (kana)")),
    ("first_name_kana", _("First name (kana)")),
    ("company_name", pgettext_lazy("prospect field", "Company")),
    ("department", _("Department")),
    ("job_title", _("Job title")),
    ("industry", _("Industry")),
    ("employee_count", _("Employees")),
    ("phone", _("Phone")),
    ("website", _("Website")),
    ("postal_code", _("Postal code")),
    ("prefecture", _("Prefecture / state")),
    ("city", _("City")),
    ("address_line", _("Address")),
    ("country", _("Country")),
)

PROSPECT_FIELD_NAMES: frozenset[str] = frozenset(name for name, _label in PROSPECT_FIELD_CHOICES)

# The browser autocomplete token per prospect field, so visitors fill forms in one tap.
AUTOCOMPLETE: dict[str, str] = {
    "email": "email",
    "last_name": "family-name",
    "first_name": "given-name",
    "company_name": "organization",
    "job_title": "organization-title",
    "phone": "tel",
    "website": "url",
    "postal_code": "postal-code",
    "prefecture": "address-level1",
    "city": "address-level2",
    "address_line": "street-address",
    "country": "country-name",
}
