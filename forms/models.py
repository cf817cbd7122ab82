"""Forms, landing pages, form handlers, the raw submission store and the consent log.

``Submission`` is written before anything else happens to a post (its own transaction), so a
failure later in processing leaves a visible, retryable row instead of a lost lead.
``ConsentWording`` rows are never edited: changing the wording of a consent checkbox creates a
new version, so every ``ConsentRecord`` keeps pointing at the exact text the person saw.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from forms.fields import PROSPECT_FIELD_CHOICES

# What a public post may keep: enough for any real form, bounded so garbage cannot fill the
# database (200 fields × 10,000 characters ≈ 2 MB per row at worst).
RAW_MAX_FIELDS = 200
RAW_MAX_VALUE_LENGTH = 10_000


def _prospect_field_choices() -> list[tuple[str, object]]:
    return [("", _("(not mapped)")), *PROSPECT_FIELD_CHOICES]


class FieldType(models.TextChoices):
    TEXT = "text", _("Text")
    EMAIL = "email", _("Email")
    TEXTAREA = "textarea", _("Multi-line text")
    SELECT = "select", _("Drop-down")
    RADIO = "radio", _("Radio buttons")
    CHECKBOX = "checkbox", _("Checkboxes")
    DATE = "date", _("Date")
    HIDDEN = "hidden", _("Hidden")
    CONSENT = "consent", _("Consent checkbox")


class Form(models.Model):
    uuid = models.UUIDField(_("public id"), default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    submit_label = models.CharField(_("submit button label"), max_length=100, default="送信")
    thank_you_content = models.TextField(
        _("thank-you content"),
        blank=True,
        help_text=_("Shown after a successful submission (plain text or HTML, sanitised)."),
    )
    thank_you_url = models.CharField(
        _("thank-you redirect URL"),
        max_length=2000,
        blank=True,
        help_text=_("Redirect here instead of showing the thank-you content (allowed hosts only)."),
    )
    kiosk_mode = models.BooleanField(
        _("kiosk / data-entry mode"),
        default=False,
        help_text=_("No visitor cookie is read or set: for events and trade-show tablets."),
    )
    double_opt_in = models.BooleanField(
        _("double opt-in"),
        default=False,
        help_text=_("Opt-in is recorded only after the person confirms by email."),
    )
    completion_actions = models.JSONField(_("completion actions"), default=list, blank=True)
    campaign_name = models.CharField(_("campaign"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["name", "id"]
        verbose_name = _("form")
        verbose_name_plural = _("forms")

    def __str__(self) -> str:
        return self.name


class ConsentWording(models.Model):
    """One immutable version of a consent text; versions of one wording share ``lineage``."""

    lineage = models.UUIDField(_("wording id"), default=uuid.uuid4, db_index=True)
    version = models.PositiveIntegerField(_("version"), default=1)
    text = models.TextField(_("wording"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["lineage", "-version"]
        verbose_name = _("consent wording")
        verbose_name_plural = _("consent wordings")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["lineage", "version"], name="consent_wording_version_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.version}: {self.text[:60]}"


class FormField(models.Model):
    form = models.ForeignKey(Form, on_delete=models.CASCADE, related_name="fields")
    position = models.PositiveIntegerField(_("position"), default=0)
    prospect_field = models.CharField(
        _("prospect field"), max_length=40, blank=True, choices=_prospect_field_choices()
    )
    custom_field = models.ForeignKey(
        "prospects.CustomField",
        verbose_name=_("custom field"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    label = models.CharField(_("label"), max_length=200)
    field_type = models.CharField(
        _("type"), max_length=20, choices=FieldType.choices, default=FieldType.TEXT
    )
    required = models.BooleanField(_("required"), default=False)
    help_text = models.CharField(_("help text"), max_length=500, blank=True)
    error_message = models.CharField(
        _("error message"),
        max_length=300,
        blank=True,
        help_text=_("Shown instead of the default message when the value is missing or invalid."),
    )
    default_value = models.CharField(_("default value"), max_length=500, blank=True)
    choices = models.JSONField(_("choices"), default=list, blank=True)
    consent_wording = models.TextField(
        _("consent wording"),
        blank=True,
        help_text=_("The exact text shown next to the consent checkbox; changes are versioned."),
    )
    # The version of ``consent_wording`` currently shown; kept in step by
    # forms.services.form_field_save_consent_wording.
    consent_version = models.ForeignKey(
        ConsentWording,
        verbose_name=_("consent wording version"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    # Progressive profiling: ask this field only once another field of the same form (or a
    # prospect field) is already known for the visitor's prospect.
    progressive_show_if_known = models.ForeignKey(
        "self",
        verbose_name=_("show only when this field is known"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    progressive_show_if_known_prospect_field = models.CharField(
        _("show only when this prospect field is known"),
        max_length=40,
        blank=True,
        choices=_prospect_field_choices(),
    )
    skip_if_known = models.BooleanField(
        _("skip when already known"),
        default=False,
        help_text=_("Do not ask again when the known prospect already has a value."),
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["form", "position", "id"]
        verbose_name = _("form field")
        verbose_name_plural = _("form fields")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["form", "prospect_field"],
                condition=~Q(prospect_field=""),
                name="form_field_prospect_field_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def input_name(self) -> str:
        """The ``name`` attribute in the public HTML and the key in ``Submission.raw_data``."""
        return self.prospect_field or f"field_{self.pk}"


class FormHandler(models.Model):
    uuid = models.UUIDField(_("public id"), default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(_("name"), max_length=200)
    is_active = models.BooleanField(_("active"), default=True)
    success_url = models.CharField(_("success location"), max_length=2000, blank=True)
    error_url = models.CharField(_("error location"), max_length=2000, blank=True)
    forward_data = models.BooleanField(
        _("forward data to the success location"),
        default=False,
        help_text=_("Append the submitted fields to the success URL as query parameters."),
    )
    kiosk_mode = models.BooleanField(_("kiosk / data-entry mode"), default=False)
    honeypot_name = models.CharField(
        _("honeypot field name"),
        max_length=100,
        blank=True,
        help_text=_(
            "A hidden field on your form that people leave empty; posts filling it are bots."
        ),
    )
    completion_actions = models.JSONField(_("completion actions"), default=list, blank=True)
    campaign_name = models.CharField(_("campaign"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["name", "id"]
        verbose_name = _("form handler")
        verbose_name_plural = _("form handlers")

    def __str__(self) -> str:
        return self.name


class FormHandlerField(models.Model):
    handler = models.ForeignKey(FormHandler, on_delete=models.CASCADE, related_name="fields")
    external_name = models.CharField(_("field name on your form"), max_length=200)
    prospect_field = models.CharField(
        _("prospect field"), max_length=40, blank=True, choices=_prospect_field_choices()
    )
    custom_field = models.ForeignKey(
        "prospects.CustomField",
        verbose_name=_("custom field"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    required = models.BooleanField(_("required"), default=False)
    is_email = models.BooleanField(_("email field"), default=False)
    position = models.PositiveIntegerField(_("position"), default=0)

    class Meta:
        ordering: ClassVar[list[str]] = ["handler", "position", "id"]
        verbose_name = _("form handler field")
        verbose_name_plural = _("form handler fields")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["handler", "external_name"], name="handler_field_name_unique"
            ),
            models.UniqueConstraint(
                fields=["handler"],
                condition=Q(is_email=True),
                name="handler_one_email_field",
            ),
        ]

    def __str__(self) -> str:
        return self.external_name


class LandingPage(models.Model):
    class Layout(models.TextChoices):
        SINGLE = "single", _("Single column")
        TWO_COLUMN = "two_column", _("Two columns")

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("page URL"), max_length=100, unique=True, allow_unicode=False)
    title = models.CharField(_("page title"), max_length=200)
    layout = models.CharField(
        _("layout"), max_length=20, choices=Layout.choices, default=Layout.SINGLE
    )
    content = models.TextField(_("content"), blank=True)
    form = models.ForeignKey(
        Form,
        verbose_name=_("form"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="landing_pages",
    )
    is_published = models.BooleanField(_("published"), default=False)
    published_at = models.DateTimeField(_("published at"), null=True, blank=True)
    view_count = models.PositiveIntegerField(_("views"), default=0)
    submission_count = models.PositiveIntegerField(_("submissions"), default=0)
    meta_description = models.CharField(_("meta description"), max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["name", "id"]
        verbose_name = _("landing page")
        verbose_name_plural = _("landing pages")

    def __str__(self) -> str:
        return self.name


class SubmissionKind(models.TextChoices):
    FORM = "form", _("Form")
    LANDING_PAGE = "landing_page", _("Landing page")
    FORM_HANDLER = "form_handler", _("Form handler")


class SubmissionStatus(models.TextChoices):
    RECEIVED = "received", pgettext_lazy("submission status", "Received")
    PROCESSED = "processed", _("Processed")
    REJECTED_BOT = "rejected_bot", _("Rejected (bot)")
    INVALID = "invalid", _("Invalid")
    FAILED = "failed", _("Failed")


class Submission(models.Model):
    """One public post, stored raw before it is processed (nothing lost)."""

    kind = models.CharField(_("kind"), max_length=20, choices=SubmissionKind.choices)
    form = models.ForeignKey(
        Form,
        verbose_name=_("form"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="submissions",
    )
    landing_page = models.ForeignKey(
        LandingPage,
        verbose_name=_("landing page"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="submissions",
    )
    handler = models.ForeignKey(
        FormHandler,
        verbose_name=_("form handler"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="submissions",
    )
    received_at = models.DateTimeField(_("received at"), default=timezone.now, db_index=True)
    raw_data = models.JSONField(_("submitted data"), default=dict, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=500, blank=True)
    referrer = models.CharField(_("referrer"), max_length=2000, blank=True)
    visitor_uuid = models.UUIDField(_("visitor cookie"), null=True, blank=True)
    is_kiosk = models.BooleanField(_("kiosk mode"), default=False)
    language = models.CharField(_("language"), max_length=10, blank=True)
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=SubmissionStatus.choices,
        default=SubmissionStatus.RECEIVED,
        db_index=True,
    )
    error = models.TextField(_("error"), blank=True)
    # Field errors of an invalid submission ({input name: [messages]}), to re-render the form
    # identically for a duplicate click.
    field_errors = models.JSONField(_("field errors"), default=dict, blank=True)
    prospect = models.ForeignKey(
        "prospects.Prospect",
        verbose_name=_("prospect"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="form_submissions",
    )
    # Hash of kind + target + normalised data: the same post again within the double-click
    # window finds this row instead of storing a second one (see forms.submissions).
    dedup_key = models.CharField(_("duplicate key"), max_length=64, blank=True, db_index=True)
    attempts = models.PositiveSmallIntegerField(_("processing attempts"), default=0)
    last_attempt_at = models.DateTimeField(_("last attempt"), null=True, blank=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    # The consent wordings the person ticked, as shown (ids of ConsentWording): recorded at once,
    # or when the double opt-in email is confirmed.
    granted_consent_wording_ids = models.JSONField(_("consent given to"), default=list, blank=True)
    opt_in_confirmed_at = models.DateTimeField(_("opt-in confirmed at"), null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-received_at", "-id"]
        verbose_name = _("submission")
        verbose_name_plural = _("submissions")
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["form", "-received_at"], name="submission_form_idx"),
            models.Index(fields=["handler", "-received_at"], name="submission_handler_idx"),
            models.Index(
                fields=["landing_page", "-received_at"], name="submission_landing_page_idx"
            ),
            models.Index(
                fields=["last_attempt_at"],
                condition=Q(status="failed"),
                name="submission_failed_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.pk} ({self.status})"


class ConsentSource(models.TextChoices):
    FORM = "form", _("Form")
    LANDING_PAGE = "landing_page", _("Landing page")
    FORM_HANDLER = "form_handler", _("Form handler")
    UNSUBSCRIBE = "unsubscribe", _("Unsubscribe")
    STAFF = "staff", _("Changed by staff")


class ConsentRecord(models.Model):
    """One grant or withdrawal of consent to receive email, with the evidence."""

    prospect = models.ForeignKey(
        "prospects.Prospect",
        verbose_name=_("prospect"),
        on_delete=models.CASCADE,
        related_name="consent_records",
    )
    # Null for an opt-out or a double opt-in confirmed without a consent checkbox on the form.
    wording = models.ForeignKey(
        ConsentWording,
        verbose_name=_("wording"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="records",
    )
    granted = models.BooleanField(_("granted"))
    recorded_at = models.DateTimeField(_("recorded at"), default=timezone.now, db_index=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    source = models.CharField(_("source"), max_length=20, choices=ConsentSource.choices)
    confirmed_by_email = models.BooleanField(_("confirmed by email (double opt-in)"), default=False)
    submission = models.ForeignKey(
        Submission,
        verbose_name=_("submission"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="consent_records",
    )
    form = models.ForeignKey(
        Form,
        verbose_name=_("form"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering: ClassVar[list[str]] = ["-recorded_at", "-id"]
        verbose_name = _("consent record")
        verbose_name_plural = _("consent records")
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["prospect", "-recorded_at"], name="consent_prospect_idx"),
        ]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            # A retried submission records its consent once.
            models.UniqueConstraint(
                fields=["submission", "wording", "granted"],
                condition=Q(submission__isnull=False),
                name="consent_once_per_submission",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prospect_id} {'+' if self.granted else '-'} {self.recorded_at:%Y-%m-%d}"
