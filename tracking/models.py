"""Visitors, visits and the activity stream.

``Activity`` is one behaviour (a page view, an open, a click, a form submission…) of a prospect
or an anonymous visitor. Its table is partitioned by month in PostgreSQL (see migration 0002 and
``tracking.partitions``): the primary key in the database is (id, occurred_at), while Django
addresses rows by ``id`` alone, which stays unique.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models
from django.utils.translation import gettext_lazy as _


class ActivityType(models.TextChoices):
    PAGE_VIEW = "page_view", _("Page view")
    VISIT = "visit", _("Visit")
    IDENTIFIED = "identified", _("Visitor identified")
    EMAIL_SENT = "email_sent", _("Email sent")
    EMAIL_DELIVERED = "email_delivered", _("Email delivered")
    EMAIL_OPENED = "email_opened", _("Email opened")
    EMAIL_CLICKED = "email_clicked", _("Email link clicked")
    EMAIL_BOUNCED = "email_bounced", _("Email bounced")
    EMAIL_COMPLAINT = "email_complaint", _("Spam complaint")
    EMAIL_UNSUBSCRIBED = "email_unsubscribed", _("Unsubscribed")
    FORM_VIEW = "form_view", _("Form view")
    FORM_SUCCESS = "form_success", _("Form submission")
    FORM_ERROR = "form_error", _("Form error")
    LANDING_PAGE_VIEW = "landing_page_view", _("Landing page view")
    LANDING_PAGE_SUCCESS = "landing_page_success", _("Landing page submission")
    LANDING_PAGE_ERROR = "landing_page_error", _("Landing page error")
    FORM_HANDLER_SUCCESS = "form_handler_success", _("Form handler submission")
    FORM_HANDLER_ERROR = "form_handler_error", _("Form handler error")
    CUSTOM_REDIRECT_CLICK = "custom_redirect_click", _("Custom redirect click")
    FILE_DOWNLOAD = "file_download", _("File download")
    OPT_IN = "opt_in", _("Opt-in")
    OPT_OUT = "opt_out", _("Opt-out")
    OPPORTUNITY_CREATED = "opportunity_created", _("Opportunity created")
    OPPORTUNITY_WON = "opportunity_won", _("Opportunity won")
    OPPORTUNITY_LOST = "opportunity_lost", _("Opportunity lost")
    STATUS_CHANGED = "status_changed", _("Status changed (HOT / engaged / no response)")


class Visitor(models.Model):
    """A browser known by its first-party cookie; becomes a prospect's when identified."""

    uuid = models.UUIDField(_("cookie id"), default=uuid.uuid4, unique=True, editable=False)
    prospect = models.ForeignKey(
        "prospects.Prospect",
        verbose_name=_("prospect"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="visitors",
    )
    first_seen_at = models.DateTimeField(_("first seen"), auto_now_add=True)
    last_seen_at = models.DateTimeField(_("last seen"), auto_now_add=True, db_index=True)
    identified_at = models.DateTimeField(_("identified at"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=500, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    is_bot = models.BooleanField(_("bot"), default=False)
    page_view_count = models.PositiveIntegerField(_("page views"), default=0)

    class Meta:
        ordering: ClassVar[list[str]] = ["-last_seen_at", "-id"]
        verbose_name = _("visitor")
        verbose_name_plural = _("visitors")

    def __str__(self) -> str:
        return f"visitor {self.pk}"


class Visit(models.Model):
    """A session: page views of one visitor with no gap longer than the inactivity limit."""

    visitor = models.ForeignKey(Visitor, on_delete=models.CASCADE, related_name="visits")
    prospect = models.ForeignKey(
        "prospects.Prospect",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="visits",
    )
    started_at = models.DateTimeField(_("started at"), db_index=True)
    last_activity_at = models.DateTimeField(_("last activity"))
    landing_url = models.CharField(_("landing page"), max_length=2000, blank=True)
    referrer = models.CharField(_("referrer"), max_length=2000, blank=True)
    utm_source = models.CharField(max_length=200, blank=True)
    utm_medium = models.CharField(max_length=200, blank=True)
    utm_campaign = models.CharField(max_length=200, blank=True)
    utm_term = models.CharField(max_length=200, blank=True)
    utm_content = models.CharField(max_length=200, blank=True)
    page_view_count = models.PositiveIntegerField(_("page views"), default=0)

    class Meta:
        ordering: ClassVar[list[str]] = ["-started_at", "-id"]
        verbose_name = _("visit")
        verbose_name_plural = _("visits")
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["visitor", "-last_activity_at"], name="visit_visitor_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"visit {self.pk}"


class Activity(models.Model):
    """One behaviour. Written only through ``tracking.services.activity_record``."""

    id = models.BigAutoField(primary_key=True)
    occurred_at = models.DateTimeField(_("when"))
    type = models.CharField(_("type"), max_length=40, choices=ActivityType.choices)
    # No database foreign keys: a partitioned table keeps them simple and cheap to write, and
    # history outlives the rows it mentions (a deleted prospect's activities are removed by
    # the prospect services, anonymous ones by the retention job).
    prospect = models.ForeignKey(
        "prospects.Prospect",
        verbose_name=_("prospect"),
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="activities",
    )
    visitor = models.ForeignKey(
        Visitor,
        verbose_name=_("visitor"),
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="activities",
    )
    # What the behaviour concerns: a URL, an email, a link, a form, a redirect, a file…
    object_type = models.CharField(_("object type"), max_length=40, blank=True)
    object_id = models.CharField(_("object id"), max_length=64, blank=True)
    object_label = models.CharField(_("object"), max_length=2000, blank=True)
    payload = models.JSONField(_("details"), default=dict, blank=True)
    is_bot = models.BooleanField(_("bot or machine"), default=False)
    created_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    class Meta:
        managed = True
        ordering: ClassVar[list[str]] = ["-occurred_at", "-id"]
        verbose_name = _("activity")
        verbose_name_plural = _("activities")

    def __str__(self) -> str:
        return f"{self.type} {self.object_label[:60]}"


class ActivityDelivery(models.Model):
    """That ``consumer`` has applied ``activity_id`` for its current owner.

    Unique per (consumer, activity, prospect): a retried batch finds its rows and skips them;
    an anonymous activity that later moves to an identified prospect is delivered again, once,
    for that prospect.
    """

    consumer = models.CharField(max_length=100)
    activity_id = models.BigIntegerField()
    prospect_id = models.BigIntegerField(default=0)  # 0: delivered while anonymous
    delivered_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("activity delivery")
        verbose_name_plural = _("activity deliveries")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["consumer", "activity_id", "prospect_id"], name="activity_delivery_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.consumer}:{self.activity_id}"


class TrackingSettings(models.Model):
    """Account-wide tracking options; one row (pk=1), see ``TrackingSettings.load()``."""

    session_gap_minutes = models.PositiveSmallIntegerField(
        _("new visit after minutes of inactivity"), default=30
    )
    require_consent = models.BooleanField(
        _("track only after consent"),
        default=False,
        help_text=_("Nothing is recorded until the site calls mapp('consent')."),
    )
    honour_do_not_track = models.BooleanField(_("honour Do Not Track"), default=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("tracking settings")
        verbose_name_plural = _("tracking settings")

    def __str__(self) -> str:
        return str(_("Tracking settings"))

    @classmethod
    def load(cls) -> TrackingSettings:
        row, _created = cls.objects.get_or_create(pk=1)
        return row


class TrackerDomain(models.Model):
    """A host name of the customer's (e.g. go.example.co.jp) that is a CNAME to mapp."""

    domain = models.CharField(_("domain"), max_length=253, unique=True)
    is_primary = models.BooleanField(_("primary"), default=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-is_primary", "domain"]
        verbose_name = _("tracker domain")
        verbose_name_plural = _("tracker domains")

    def __str__(self) -> str:
        return self.domain


class CustomRedirect(models.Model):
    """A short tracked link (/r/<slug>) to a fixed destination."""

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("short code"), max_length=60, unique=True)
    destination_url = models.URLField(_("destination"), max_length=2000)
    campaign_name = models.CharField(_("campaign"), max_length=200, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    click_count = models.PositiveIntegerField(_("clicks"), default=0)
    bot_click_count = models.PositiveIntegerField(_("bot clicks"), default=0)
    created_by = models.ForeignKey(
        "mapp.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        verbose_name = _("custom redirect")
        verbose_name_plural = _("custom redirects")

    def __str__(self) -> str:
        return self.name


class TrackedFile(models.Model):
    """A file served from a tracked URL; downloads are counted and recorded as activities."""

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("short code"), max_length=60, unique=True)
    file = models.FileField(_("file"), upload_to="files/%Y/%m/")
    original_filename = models.CharField(_("file name"), max_length=255)
    content_type = models.CharField(_("content type"), max_length=100)
    size = models.PositiveBigIntegerField(_("size"), default=0)
    download_count = models.PositiveIntegerField(_("downloads"), default=0)
    bot_download_count = models.PositiveIntegerField(_("bot downloads"), default=0)
    created_by = models.ForeignKey(
        "mapp.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        verbose_name = _("tracked file")
        verbose_name_plural = _("tracked files")

    def __str__(self) -> str:
        return self.name


class HitQueueCursor(models.Model):
    """The last tracking hit stored from a Redis hit queue, written in the storing transaction.

    The drain task stores a batch from the head of the queue, then trims it. If the worker dies
    between the commit and the trim, the next drain finds this hit near the head and skips
    everything up to it: a batch is never stored twice (see ``tracking.ingest``).
    """

    queue = models.CharField(_("queue"), max_length=100, primary_key=True)
    last_hit = models.TextField(_("last stored hit"))
    stored_count = models.PositiveBigIntegerField(_("hits stored"), default=0)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("tracking hit queue")
        verbose_name_plural = _("tracking hit queues")

    def __str__(self) -> str:
        return self.queue
