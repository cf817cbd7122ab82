"""Models of emails: sending domains, templates, list emails and their recipient rows.

The send pipeline (emails/sending.py) rests on :class:`Recipient`: one row per (send,
normalised address), unique in the database, moved through its statuses by single guarded
UPDATEs so that a killed worker, a retried task or two racing workers never send a row twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from prospects.models import Prospect, ProspectList


class DomainStatus(models.TextChoices):
    PENDING = "pending", _("Not verified yet")
    VERIFIED = "verified", _("Verified")
    FAILED = "failed", _("Verification failed")


class DkimAlgorithm(models.TextChoices):
    RSA = "rsa-sha256", _("RSA 2048 (rsa-sha256)")
    ED25519 = "ed25519-sha256", _("Ed25519 (ed25519-sha256)")


def dkim_key_directory() -> Path:
    """Where private keys live: outside the database, so a dump of it cannot sign mail."""
    configured = getattr(settings, "DKIM_KEY_DIR", None)
    return Path(configured) if configured else Path(settings.BASE_DIR) / "var" / "dkim"


class SendingDomain(models.Model):
    """A domain list emails are sent from, with its DKIM key pair and DNS verification state.

    The private key is a file in :func:`dkim_key_directory` (mode 0600), named by
    ``dkim_key_file``; the public half is here because it is published in DNS anyway.
    """

    domain = models.CharField(_("domain"), max_length=253, unique=True)
    dkim_selector = models.CharField(_("DKIM selector"), max_length=63, default="mapp")
    dkim_algorithm = models.CharField(
        _("DKIM algorithm"),
        max_length=20,
        choices=DkimAlgorithm.choices,
        default=DkimAlgorithm.RSA,
    )
    dkim_public_key = models.TextField(_("DKIM public key"), editable=False)
    dkim_key_file = models.CharField(_("private key file"), max_length=255, editable=False)
    # Optional second signature (RFC 8463): receivers that verify Ed25519 check it, the others
    # the RSA one; an empty selector means the domain signs with RSA only.
    ed25519_selector = models.CharField(_("Ed25519 selector"), max_length=63, blank=True)
    ed25519_public_key = models.TextField(_("Ed25519 public key"), blank=True, editable=False)
    ed25519_key_file = models.CharField(
        _("Ed25519 private key file"), max_length=255, blank=True, editable=False
    )
    status = models.CharField(
        _("status"), max_length=20, choices=DomainStatus.choices, default=DomainStatus.PENDING
    )
    dkim_ok = models.BooleanField(_("DKIM record found"), default=False)
    spf_ok = models.BooleanField(_("SPF record found"), default=False)
    dmarc_ok = models.BooleanField(_("DMARC record found"), default=False)
    check_messages = models.JSONField(_("verification details"), default=list, blank=True)
    last_checked_at = models.DateTimeField(_("last checked"), null=True, blank=True)
    verified_at = models.DateTimeField(_("verified at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["domain"]
        verbose_name = _("sending domain")
        verbose_name_plural = _("sending domains")

    def __str__(self) -> str:
        return self.domain

    @property
    def is_verified(self) -> bool:
        return self.status == DomainStatus.VERIFIED

    @property
    def private_key_path(self) -> Path:
        return dkim_key_directory() / self.dkim_key_file

    @property
    def has_ed25519(self) -> bool:
        return bool(self.ed25519_selector and self.ed25519_key_file)

    @property
    def ed25519_key_path(self) -> Path:
        return dkim_key_directory() / self.ed25519_key_file


class SenderType(models.TextChoices):
    USER = "user", _("A user")
    CUSTOM = "custom", _("A custom name and address")
    ASSIGNED_USER = "assigned_user", _("The prospect's assigned user")


class EmailContent(models.Model):
    """What templates and list emails have in common: the message and who it is from.

    ``subject``, ``preheader``, ``html`` and ``text`` are sandboxed Jinja2 (mapp.templating).
    An empty ``text`` is generated from the HTML at send time. With
    ``SenderType.ASSIGNED_USER`` the sender is each prospect's assigned user, and the
    ``sender_user`` (else the custom name and address) for prospects without one.
    """

    subject = models.CharField(_("subject"), max_length=255)
    preheader = models.CharField(_("preheader"), max_length=255, blank=True)
    html = models.TextField(_("HTML"))
    text = models.TextField(
        _("plain text"), blank=True, help_text=_("Generated from the HTML when left empty.")
    )
    sender_type = models.CharField(
        _("sender"), max_length=20, choices=SenderType.choices, default=SenderType.CUSTOM
    )
    sender_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("sender user"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    sender_name = models.CharField(_("sender name"), max_length=100, blank=True)
    sender_address = models.EmailField(_("sender address"), blank=True)
    reply_to = models.EmailField(_("reply-to address"), blank=True)

    class Meta:
        abstract = True


class EmailTemplate(EmailContent):
    name = models.CharField(_("name"), max_length=200)
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
        verbose_name = _("email template")
        verbose_name_plural = _("email templates")

    def __str__(self) -> str:
        return self.name


class ListEmailStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SCHEDULED = "scheduled", _("Scheduled")
    SENDING = "sending", _("Sending")
    PAUSED = "paused", _("Paused")
    SENT = "sent", _("Sent")
    CANCELLED = "cancelled", _("Cancelled")


class AbWinnerMetric(models.TextChoices):
    OPEN_RATE = "open_rate", _("Unique open rate")
    CLICK_RATE = "click_rate", _("Unique click rate")


class ListEmail(EmailContent):
    """One send to lists. Content is copied from ``template`` when made from one, so editing
    the template later never changes what a past send was."""

    name = models.CharField(_("name"), max_length=200)
    template = models.ForeignKey(
        EmailTemplate,
        verbose_name=_("template"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="list_emails",
    )
    recipient_lists = models.ManyToManyField(
        ProspectList, verbose_name=_("recipient lists"), related_name="+", blank=True
    )
    suppression_lists = models.ManyToManyField(
        ProspectList, verbose_name=_("suppression lists"), related_name="+", blank=True
    )
    sending_domain = models.ForeignKey(
        SendingDomain,
        verbose_name=_("sending domain"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="list_emails",
    )
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=ListEmailStatus.choices,
        default=ListEmailStatus.DRAFT,
        db_index=True,
    )
    scheduled_at = models.DateTimeField(_("send at"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    paused_reason = models.CharField(_("paused because"), max_length=500, blank=True)
    recipient_count = models.PositiveIntegerField(_("recipients"), default=0)
    sent_count = models.PositiveIntegerField(_("sent"), default=0)
    failed_count = models.PositiveIntegerField(_("failed"), default=0)
    skipped_count = models.PositiveIntegerField(_("skipped"), default=0)
    # Feedback counted once per recipient row (emails.feedback); the guard rails read them.
    hard_bounce_count = models.PositiveIntegerField(_("hard bounces"), default=0)
    soft_bounce_count = models.PositiveIntegerField(_("soft bounces"), default=0)
    complaint_count = models.PositiveIntegerField(_("spam complaints"), default=0)
    # A/B test: with a share set, that share of the recipients is split evenly over the
    # variants; the rest waits ("held") until the winner is chosen after ``ab_test_hours``.
    ab_test_percent = models.PositiveSmallIntegerField(
        _("A/B test share (%)"),
        null=True,
        blank=True,
        help_text=_("Share of the recipients who get a variant; the rest get the winner."),
    )
    ab_test_hours = models.PositiveSmallIntegerField(_("A/B test duration (hours)"), default=4)
    ab_winner_metric = models.CharField(
        _("winner chosen by"),
        max_length=20,
        choices=AbWinnerMetric.choices,
        default=AbWinnerMetric.OPEN_RATE,
    )
    ab_winner = models.ForeignKey(
        "ListEmailVariant",
        verbose_name=_("winning variant"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    ab_decided_at = models.DateTimeField(_("winner chosen at"), null=True, blank=True)
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
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        verbose_name = _("list email")
        verbose_name_plural = _("list emails")

    def __str__(self) -> str:
        return self.name

    @property
    def tracking_id(self) -> str:
        """The email id carried in open and click tokens (tracking.links)."""
        return f"le{self.pk}"


class ListEmailVariant(models.Model):
    """One variant of an A/B-tested list email. An empty field means "as in the email"."""

    list_email = models.ForeignKey(
        ListEmail, verbose_name=_("list email"), on_delete=models.CASCADE, related_name="variants"
    )
    letter = models.CharField(_("variant"), max_length=2)
    subject = models.CharField(_("subject"), max_length=255, blank=True)
    preheader = models.CharField(_("preheader"), max_length=255, blank=True)
    html = models.TextField(_("HTML"), blank=True)
    text = models.TextField(_("plain text"), blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["list_email", "letter"]
        verbose_name = _("A/B variant")
        verbose_name_plural = _("A/B variants")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["list_email", "letter"], name="variant_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.list_email} — {self.letter}"


class BounceKind(models.TextChoices):
    HARD = "hard", _("Hard bounce")
    SOFT = "soft", _("Soft bounce")


class RecipientStatus(models.TextChoices):
    HELD = "held", _("Waiting for the A/B test winner")
    QUEUED = "queued", _("Queued")
    CLAIMED = "claimed", _("Being sent")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped")


class Recipient(models.Model):
    """One address of one send. ``email`` is the lower-cased address; the pair is unique."""

    list_email = models.ForeignKey(ListEmail, on_delete=models.CASCADE, related_name="recipients")
    prospect = models.ForeignKey(
        Prospect, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    email = models.CharField(_("email address"), max_length=254)
    variant = models.ForeignKey(
        ListEmailVariant,
        verbose_name=_("variant"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="recipients",
    )
    status = models.CharField(
        _("status"), max_length=10, choices=RecipientStatus.choices, default=RecipientStatus.QUEUED
    )
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    message_id = models.CharField(_("Message-ID"), max_length=255, blank=True)
    error = models.TextField(_("error"), blank=True)
    # Feedback after delivery; each is set once (guarded UPDATE), so a bounce or complaint
    # reported twice (a DSN and an ESP webhook) is counted once.
    bounced_at = models.DateTimeField(_("bounced at"), null=True, blank=True)
    bounce_kind = models.CharField(
        _("bounce"), max_length=4, choices=BounceKind.choices, blank=True
    )
    bounce_reason = models.CharField(_("bounce reason"), max_length=500, blank=True)
    complained_at = models.DateTimeField(_("complained at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["id"]
        verbose_name = _("recipient")
        verbose_name_plural = _("recipients")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["list_email", "email"], name="recipient_unique"),
        ]
        indexes: ClassVar[list[models.Index]] = [
            # Workers claim due queued rows of one send; partial, so it stays small.
            models.Index(
                fields=["list_email", "next_attempt_at", "id"],
                condition=Q(status="queued"),
                name="recipient_due_idx",
            ),
            # The reclaimer looks for old claims only.
            models.Index(
                fields=["claimed_at"], condition=Q(status="claimed"), name="recipient_claimed_idx"
            ),
            # Hourly and daily caps count what was sent recently.
            models.Index(fields=["sent_at"], name="recipient_sent_at_idx"),
            models.Index(fields=["prospect"], name="recipient_prospect_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.status})"


class TriggeredEmailStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped")


class TriggeredEmail(models.Model):
    """One email template sent to one prospect by an action (an autoresponder).

    ``dedup_key`` names what caused it (the action run), so a retried job sends nothing new.
    """

    template = models.ForeignKey(
        EmailTemplate,
        verbose_name=_("template"),
        on_delete=models.SET_NULL,
        null=True,
        related_name="triggered_emails",
    )
    prospect = models.ForeignKey(
        Prospect, verbose_name=_("prospect"), on_delete=models.CASCADE, related_name="+"
    )
    sending_domain = models.ForeignKey(
        SendingDomain,
        verbose_name=_("sending domain"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    email = models.CharField(_("email address"), max_length=254)
    dedup_key = models.CharField(_("cause"), max_length=200, unique=True)
    status = models.CharField(
        _("status"),
        max_length=10,
        choices=TriggeredEmailStatus.choices,
        default=TriggeredEmailStatus.QUEUED,
        db_index=True,
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    message_id = models.CharField(_("Message-ID"), max_length=255, blank=True)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        verbose_name = _("triggered email")
        verbose_name_plural = _("triggered emails")

    def __str__(self) -> str:
        return f"{self.template} → {self.email} ({self.status})"
