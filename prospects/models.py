"""Prospects, companies, custom fields, tags, lists, assignment groups, tasks, import/export jobs.

Normalised columns (``*_normalized``, ``department_category``, ``job_level``) are derived from
what the user typed by ``prospects.normalization`` inside the prospect services; they exist so
that 名寄せ matching and criteria such as "役職 ≥ 課長クラス" are plain indexed SQL.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

# Account Engagement marks a prospect undeliverable after this many soft bounces.
SOFT_BOUNCE_LIMIT = 5


class JobLevel(models.IntegerChoices):
    """役職カテゴリー, ordered so that "課長クラス以上" is ``job_level >= MANAGER``."""

    UNKNOWN = 0, _("Unknown")
    STAFF = 1, _("Staff")
    SUPERVISOR = 2, _("Supervisor / chief")
    MANAGER = 3, _("Manager")
    DIRECTOR = 4, _("Director / general manager")
    EXECUTIVE = 5, _("Executive / officer")


class HotStatus(models.TextChoices):
    """Hot Profile's statuses: HOT (the account's HOT rule is met), 反応あり, 反応なし."""

    HOT = "hot", _("HOT")
    ENGAGED = "engaged", _("Engaged")
    NO_RESPONSE = "no_response", _("No response")


class DepartmentCategory(models.TextChoices):
    """部署カテゴリー."""

    UNKNOWN = "", _("Unknown")
    EXECUTIVE = "executive", _("Management")
    CORPORATE_PLANNING = "corporate_planning", _("Corporate planning")
    IT = "it", _("Information systems")
    SALES = "sales", pgettext_lazy("department", "Sales")
    MARKETING = "marketing", _("Marketing")
    ENGINEERING = "engineering", _("Engineering / R&D")
    MANUFACTURING = "manufacturing", _("Manufacturing")
    HR = "hr", _("Human resources")
    FINANCE = "finance", _("Finance / accounting")
    GENERAL_AFFAIRS = "general_affairs", _("General affairs / legal")
    CUSTOMER_SUPPORT = "customer_support", _("Customer support")
    OTHER = "other", _("Other")


class Company(models.Model):
    name = models.CharField(_("company name"), max_length=255)
    name_normalized = models.CharField(_("normalised name"), max_length=255, db_index=True)
    website = models.CharField(_("website"), max_length=255, blank=True)
    domain = models.CharField(_("domain"), max_length=255, blank=True, db_index=True)
    industry = models.CharField(_("industry"), max_length=100, blank=True, db_index=True)
    employee_count = models.PositiveIntegerField(_("employees"), null=True, blank=True)
    phone = models.CharField(_("phone"), max_length=50, blank=True)
    postal_code = models.CharField(_("postal code"), max_length=20, blank=True)
    prefecture = models.CharField(_("prefecture / state"), max_length=100, blank=True)
    city = models.CharField(_("city"), max_length=100, blank=True)
    address_line = models.CharField(_("address"), max_length=255, blank=True)
    country = models.CharField(_("country"), max_length=100, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["name", "id"]
        verbose_name = _("company")
        verbose_name_plural = _("companies")

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(_("name"), max_length=100)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["name"]
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(Lower("name"), name="tag_name_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class Prospect(models.Model):
    email = models.EmailField(_("email address"), max_length=254)
    last_name = models.CharField(_("last name"), max_length=100, blank=True)
    first_name = models.CharField(_("first name"), max_length=100, blank=True)
    last_name_kana = models.CharField(_("last name (kana)"), max_length=100, blank=True)
    first_name_kana = models.CharField(_("first name (kana)"), max_length=100, blank=True)
    full_name_normalized = models.CharField(
        _("normalised full name"), max_length=255, blank=True, db_index=True
    )

    company = models.ForeignKey(
        Company,
        verbose_name=_("company record"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="prospects",
    )
    company_name = models.CharField(_("company"), max_length=255, blank=True)
    company_name_normalized = models.CharField(
        _("normalised company"), max_length=255, blank=True, db_index=True
    )
    department = models.CharField(_("department"), max_length=255, blank=True)
    department_category = models.CharField(
        _("department category"),
        max_length=40,
        blank=True,
        choices=DepartmentCategory.choices,
        db_index=True,
    )
    job_title = models.CharField(_("job title"), max_length=255, blank=True)
    job_level = models.PositiveSmallIntegerField(
        _("job level"), choices=JobLevel.choices, default=JobLevel.UNKNOWN, db_index=True
    )
    industry = models.CharField(_("industry"), max_length=100, blank=True, db_index=True)
    employee_count = models.PositiveIntegerField(_("employees"), null=True, blank=True)
    phone = models.CharField(_("phone"), max_length=50, blank=True)
    website = models.CharField(_("website"), max_length=255, blank=True)
    postal_code = models.CharField(_("postal code"), max_length=20, blank=True)
    prefecture = models.CharField(_("prefecture / state"), max_length=100, blank=True)
    city = models.CharField(_("city"), max_length=100, blank=True)
    address_line = models.CharField(_("address"), max_length=255, blank=True)
    country = models.CharField(_("country"), max_length=100, blank=True)
    source = models.CharField(_("source"), max_length=100, blank=True)
    notes = models.TextField(_("notes"), blank=True)

    # Written only by scoring (the score ledger, grading profiles and the HOT rule).
    score = models.IntegerField(_("score"), default=0, db_index=True)
    grade = models.CharField(_("grade"), max_length=3, blank=True, default="D")
    hot_status = models.CharField(
        _("status"),
        max_length=20,
        choices=HotStatus.choices,
        default=HotStatus.NO_RESPONSE,
        db_index=True,
    )
    hot_since = models.DateTimeField(_("HOT since"), null=True, blank=True, db_index=True)

    assigned_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("assigned user"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_prospects",
    )
    tags = models.ManyToManyField(Tag, verbose_name=_("tags"), blank=True, related_name="prospects")

    # Mailability (Account Engagement): is_mailable is derived from these, never stored.
    opted_out = models.BooleanField(_("opted out"), default=False)
    do_not_email = models.BooleanField(_("do not email"), default=False)
    hard_bounced_at = models.DateTimeField(_("hard bounced at"), null=True, blank=True)
    soft_bounce_count = models.PositiveSmallIntegerField(_("soft bounces"), default=0)

    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True, db_index=True)
    last_activity_at = models.DateTimeField(_("last activity"), null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        verbose_name = _("prospect")
        verbose_name_plural = _("prospects")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(Lower("email"), name="prospect_email_ci_unique"),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["assigned_user", "-created_at"], name="prospect_assigned_idx"),
            models.Index(
                fields=["company_name_normalized", "full_name_normalized"],
                name="prospect_company_person_idx",
            ),
        ]

    def __str__(self) -> str:
        name = self.full_name
        return f"{name} <{self.email}>" if name else self.email

    @property
    def full_name(self) -> str:
        return f"{self.last_name} {self.first_name}".strip()

    @property
    def is_mailable(self) -> bool:
        return (
            not self.opted_out
            and not self.do_not_email
            and self.hard_bounced_at is None
            and self.soft_bounce_count < SOFT_BOUNCE_LIMIT
        )


# The same rule as Prospect.is_mailable, for querysets (lists, sends, criteria).
MAILABLE_Q = (
    Q(opted_out=False)
    & Q(do_not_email=False)
    & Q(hard_bounced_at__isnull=True)
    & Q(soft_bounce_count__lt=SOFT_BOUNCE_LIMIT)
)


class CustomFieldType(models.TextChoices):
    TEXT = "text", _("Text")
    NUMBER = "number", _("Number")
    DATE = "date", _("Date")
    CHOICE = "choice", _("Choice")
    MULTI_CHOICE = "multi_choice", _("Multiple choice")
    BOOLEAN = "boolean", _("Yes / no")


class CustomField(models.Model):
    """A typed prospect field defined by administrators. Values live in CustomFieldValue rows."""

    label = models.CharField(_("label"), max_length=100)
    key = models.SlugField(_("key"), max_length=60, unique=True)
    field_type = models.CharField(_("type"), max_length=20, choices=CustomFieldType.choices)
    choices = models.JSONField(_("choices"), default=list, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["label"]
        verbose_name = _("custom field")
        verbose_name_plural = _("custom fields")

    def __str__(self) -> str:
        return self.label


class CustomFieldValue(models.Model):
    """One value of a custom field (several rows for multiple choice), in a typed column.

    Typed columns with (field, value) indexes make custom-field criteria indexed SQL without
    an ALTER TABLE per field.
    """

    prospect = models.ForeignKey(Prospect, on_delete=models.CASCADE, related_name="custom_values")
    field = models.ForeignKey(CustomField, on_delete=models.CASCADE, related_name="values")
    value_text = models.CharField(max_length=1000, blank=True, default="")
    value_number = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    value_date = models.DateField(null=True, blank=True)
    value_bool = models.BooleanField(null=True, blank=True)

    class Meta:
        verbose_name = _("custom field value")
        verbose_name_plural = _("custom field values")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["prospect", "field", "value_text"], name="custom_value_unique"
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["field", "value_text"], name="custom_value_text_idx"),
            models.Index(fields=["field", "value_number"], name="custom_value_number_idx"),
            models.Index(fields=["field", "value_date"], name="custom_value_date_idx"),
            models.Index(fields=["field", "value_bool"], name="custom_value_bool_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.field.key}={self.value}"

    @property
    def value(self) -> object:
        field_type = self.field.field_type
        if field_type == CustomFieldType.NUMBER:
            return self.value_number
        if field_type == CustomFieldType.DATE:
            return self.value_date
        if field_type == CustomFieldType.BOOLEAN:
            return self.value_bool
        return self.value_text


class ClassificationKind(models.TextChoices):
    DEPARTMENT = "department", _("Department")
    JOB_LEVEL = "job_level", _("Job level")


class ClassificationRule(models.Model):
    """Editable dictionary: a word in a department or job title → its category.

    Patterns are matched against the NFKC-normalised, lower-cased text; the longest matching
    pattern wins (so 副部長 beats 部長), then the higher priority.
    """

    kind = models.CharField(_("kind"), max_length=20, choices=ClassificationKind.choices)
    pattern = models.CharField(_("pattern"), max_length=100)
    value = models.CharField(_("category"), max_length=40)
    priority = models.SmallIntegerField(_("priority"), default=0)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["kind", "-priority", "pattern"]
        verbose_name = _("classification rule")
        verbose_name_plural = _("classification rules")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["kind", "pattern"], name="classification_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.pattern} → {self.value}"


class ListMembershipSource(models.TextChoices):
    MANUAL = "manual", _("Added by hand")
    IMPORT = "import", _("Import")
    ACTION = "action", _("Automation")
    API = "api", _("API")
    CRITERIA = "criteria", _("Dynamic criteria")


class ProspectList(models.Model):
    name = models.CharField(_("name"), max_length=200)
    description = models.CharField(_("description"), max_length=500, blank=True)
    is_dynamic = models.BooleanField(_("dynamic"), default=False)
    criteria = models.JSONField(_("criteria"), default=dict, blank=True)
    is_public = models.BooleanField(
        _("shown in the preference centre"),
        default=False,
        help_text=_("Prospects can subscribe to and leave this list from their emails."),
    )
    public_name = models.CharField(
        _("name shown to prospects"),
        max_length=200,
        blank=True,
        help_text=_("Shown in the preference centre instead of the internal name."),
    )
    members: models.ManyToManyField[Prospect, ListMembership] = models.ManyToManyField(
        Prospect, through="ListMembership", related_name="lists", blank=True
    )
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
    last_refreshed_at = models.DateTimeField(_("last refreshed"), null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["name", "id"]
        verbose_name = _("list")
        verbose_name_plural = _("lists")

    def __str__(self) -> str:
        return self.name


class ListMembership(models.Model):
    prospect_list = models.ForeignKey(
        ProspectList, on_delete=models.CASCADE, related_name="memberships"
    )
    prospect = models.ForeignKey(Prospect, on_delete=models.CASCADE, related_name="memberships")
    source = models.CharField(
        _("source"),
        max_length=20,
        choices=ListMembershipSource.choices,
        default=ListMembershipSource.MANUAL,
    )
    created_at = models.DateTimeField(_("added at"), auto_now_add=True)

    class Meta:
        verbose_name = _("list membership")
        verbose_name_plural = _("list memberships")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["prospect_list", "prospect"], name="membership_unique"),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["prospect"], name="membership_prospect_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.prospect_id} ∈ {self.prospect_list_id}"


class ListRefresh(models.Model):
    """The record of one dynamic-list refresh: when, how, and what changed."""

    class Mode(models.TextChoices):
        FULL = "full", _("Full")
        INCREMENTAL = "incremental", _("Incremental")

    prospect_list = models.ForeignKey(
        ProspectList, on_delete=models.CASCADE, related_name="refreshes"
    )
    mode = models.CharField(_("mode"), max_length=20, choices=Mode.choices)
    started_at = models.DateTimeField(_("started at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    added_count = models.PositiveIntegerField(_("added"), default=0)
    removed_count = models.PositiveIntegerField(_("removed"), default=0)
    member_count = models.PositiveIntegerField(_("members"), default=0)

    class Meta:
        ordering: ClassVar[list[str]] = ["-started_at", "-id"]
        verbose_name = _("list refresh")
        verbose_name_plural = _("list refreshes")

    def __str__(self) -> str:
        return f"{self.prospect_list_id} {self.mode} {self.started_at:%Y-%m-%d %H:%M}"


class AssignmentGroup(models.Model):
    """Sales users who take new prospects in turn (round-robin)."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, verbose_name=_("members"), related_name="assignment_groups"
    )
    next_position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["name"]
        verbose_name = _("assignment group")
        verbose_name_plural = _("assignment groups")

    def __str__(self) -> str:
        return self.name


class TaskStatus(models.TextChoices):
    OPEN = "open", _("Open")
    DONE = "done", _("Done")
    CANCELLED = "cancelled", _("Cancelled")


class TaskPriority(models.IntegerChoices):
    LOW = 1, _("Low")
    NORMAL = 2, _("Normal")
    HIGH = 3, _("High")


class Task(models.Model):
    """A ToDo for a user, usually about a prospect (follow up a HOT lead, call back…)."""

    subject = models.CharField(_("subject"), max_length=200)
    prospect = models.ForeignKey(
        Prospect,
        verbose_name=_("prospect"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="tasks",
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("assignee"),
        on_delete=models.PROTECT,
        related_name="tasks",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    due_date = models.DateField(_("due date"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=20, choices=TaskStatus.choices, default=TaskStatus.OPEN
    )
    priority = models.PositiveSmallIntegerField(
        _("priority"), choices=TaskPriority.choices, default=TaskPriority.NORMAL
    )
    notes = models.TextField(_("notes"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["status", "due_date", "-priority", "id"]
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["assignee", "status", "due_date"], name="task_assignee_due_idx"),
        ]

    def __str__(self) -> str:
        return self.subject


class JobStatus(models.TextChoices):
    PENDING = "pending", _("Waiting")
    RUNNING = "running", _("Running")
    DONE = "done", _("Finished")
    FAILED = "failed", _("Failed")


class ImportPolicy(models.TextChoices):
    CREATE_AND_UPDATE = "create_update", _("Create new and update existing prospects")
    CREATE_ONLY = "create_only", _("Create new prospects only (skip existing)")
    UPDATE_ONLY = "update_only", _("Update existing prospects only (skip new)")


class ImportPreset(models.Model):
    """A remembered column mapping (CSV header → prospect field)."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    mapping = models.JSONField(_("column mapping"), default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["name"]
        verbose_name = _("import preset")
        verbose_name_plural = _("import presets")

    def __str__(self) -> str:
        return self.name


class ImportJob(models.Model):
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    original_filename = models.CharField(_("file name"), max_length=255)
    file = models.FileField(_("file"), upload_to="imports/%Y/%m/")
    encoding = models.CharField(_("encoding"), max_length=20, blank=True)
    mapping = models.JSONField(_("column mapping"), default=dict, blank=True)
    policy = models.CharField(
        _("existing prospects"),
        max_length=20,
        choices=ImportPolicy.choices,
        default=ImportPolicy.CREATE_AND_UPDATE,
    )
    add_to_list = models.ForeignKey(
        ProspectList,
        verbose_name=_("add to list"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    assign_to_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("assign to user"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    assign_to_group = models.ForeignKey(
        AssignmentGroup,
        verbose_name=_("assign round-robin in group"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    status = models.CharField(
        _("status"), max_length=20, choices=JobStatus.choices, default=JobStatus.PENDING
    )
    total_rows = models.PositiveIntegerField(_("rows"), default=0)
    processed_rows = models.PositiveIntegerField(_("processed"), default=0)
    created_count = models.PositiveIntegerField(_("created"), default=0)
    updated_count = models.PositiveIntegerField(_("updated"), default=0)
    skipped_count = models.PositiveIntegerField(_("skipped"), default=0)
    error_count = models.PositiveIntegerField(_("rejected"), default=0)
    errors_file = models.FileField(_("rejected rows"), upload_to="imports/%Y/%m/", blank=True)
    failure_reason = models.TextField(_("failure"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        verbose_name = _("import")
        verbose_name_plural = _("imports")

    def __str__(self) -> str:
        return self.original_filename


class ExportJob(models.Model):
    class Encoding(models.TextChoices):
        UTF8_BOM = "utf-8-sig", _("UTF-8 (Excel)")
        CP932 = "cp932", _("Shift_JIS (CP932)")

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    prospect_list = models.ForeignKey(
        ProspectList, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    criteria = models.JSONField(_("criteria"), default=dict, blank=True)
    encoding = models.CharField(
        _("encoding"), max_length=20, choices=Encoding.choices, default=Encoding.UTF8_BOM
    )
    status = models.CharField(
        _("status"), max_length=20, choices=JobStatus.choices, default=JobStatus.PENDING
    )
    total_rows = models.PositiveIntegerField(_("rows"), default=0)
    processed_rows = models.PositiveIntegerField(_("processed"), default=0)
    file = models.FileField(_("file"), upload_to="exports/%Y/%m/", blank=True)
    failure_reason = models.TextField(_("failure"), blank=True)
    notice = models.TextField(_("notice"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        verbose_name = _("export")
        verbose_name_plural = _("exports")

    def __str__(self) -> str:
        return f"export {self.pk}"


class ActionRunStatus(models.TextChoices):
    OK = "ok", _("Done")
    SKIPPED = "skipped", _("Skipped")
    FAILED = "failed", _("Failed")


class ActionRun(models.Model):
    """One run of a catalogue action on a prospect (prospects.actions), and why it happened.

    ``idempotency_key`` (unique when not empty) is how a retried job finds the run it already
    made instead of acting twice; ``message`` is stored rendered, in the language of the run.
    """

    action = models.CharField(_("action"), max_length=60, db_index=True)
    config = models.JSONField(_("settings"), default=dict, blank=True)
    prospect = models.ForeignKey(
        Prospect,
        verbose_name=_("prospect"),
        on_delete=models.CASCADE,
        related_name="action_runs",
    )
    cause_type = models.CharField(_("cause"), max_length=40)
    cause_id = models.CharField(_("cause id"), max_length=64, blank=True)
    cause_label = models.CharField(_("cause description"), max_length=255, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("started by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    status = models.CharField(_("status"), max_length=10, choices=ActionRunStatus.choices)
    message = models.CharField(_("message"), max_length=500, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("run at"), auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        verbose_name = _("action run")
        verbose_name_plural = _("action runs")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="action_run_idempotency_unique",
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["prospect", "-created_at"], name="action_run_prospect_idx"),
            models.Index(fields=["cause_type", "cause_id"], name="action_run_cause_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} → {self.prospect_id} ({self.status})"
