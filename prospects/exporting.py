"""CSV export of prospects: a list or any criteria, always within what the user may see.

:func:`export_job_create` records what to export and enqueues the ``prospects.export_run`` task,
which runs :func:`export_job_run`: it walks the prospects in primary-key order in chunks of
:data:`EXPORT_CHUNK_ROWS` (three queries per chunk: prospects, tags, custom values), writes a
CSV for Excel (UTF-8 with BOM, or CP932 on request) and moves the progress bar per chunk.

Cells that a spreadsheet would run as a formula (starting with = + - @ tab or CR) get a leading
single quote (OWASP "CSV injection"); the import removes that quote again, so a file exported
and imported back is unchanged.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import io
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any

from celery import shared_task
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import models, transaction
from django.db.models import F, QuerySet
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from mapp.models import User
from prospects.criteria import CriteriaError, compile_criteria, empty_criteria, validate_criteria
from prospects.models import (
    CustomField,
    CustomFieldValue,
    DepartmentCategory,
    ExportJob,
    HotStatus,
    JobLevel,
    JobStatus,
    ListMembership,
    Prospect,
    ProspectList,
)
from prospects.selectors import prospects_visible_to
from prospects.services import EDITABLE_FIELDS

# Prospects per chunk: three queries and ≈ 1–2 MB of Python objects; the progress bar moves
# once per chunk (≈ 0.2 s each).
EXPORT_CHUNK_ROWS = 2000

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# Same bounds as the import: well within the broker's one-hour visibility timeout.
EXPORT_SOFT_TIME_LIMIT = 50 * 60
EXPORT_TIME_LIMIT = 55 * 60


def neutralise(value: str) -> str:
    """A cell a spreadsheet shows as text, never runs: '=HYPERLINK(…) stays a string."""
    if value.startswith(FORMULA_START):
        return "'" + value
    return value


# --- creating a job ------------------------------------------------------------------------------


def export_job_create(
    *,
    actor: User,
    prospect_list: ProspectList | None = None,
    criteria: dict[str, Any] | None = None,
    encoding: str = ExportJob.Encoding.UTF8_BOM,
) -> ExportJob:
    """Record an export of a list, or of the prospects matching ``criteria`` (None: all)."""
    if encoding not in ExportJob.Encoding.values:
        raise ValidationError(_("Choose UTF-8 or Shift_JIS (CP932)."))
    if prospect_list is not None and criteria:
        raise ValidationError(_("Export a list or a filter, not both."))
    if prospect_list is None:
        try:
            # An explicit (possibly empty) group, so "everything I can see" is never confused
            # with a list deleted since (whose export must fail, not widen).
            clean_criteria = validate_criteria(criteria or empty_criteria())
        except CriteriaError as error:
            raise ValidationError(
                _("The filter is not valid: %(error)s") % {"error": error}
            ) from error
    else:
        clean_criteria = {}
    with transaction.atomic():
        job = ExportJob.objects.create(
            created_by=actor,
            prospect_list=prospect_list,
            criteria=clean_criteria,
            encoding=encoding,
        )
        transaction.on_commit(lambda: export_run.delay(job.pk))
    return job


def export_jobs_for(*, user: User, limit: int = 20) -> list[ExportJob]:
    """A user's own exports: their files hold what that user may see, so only they get them."""
    return list(
        ExportJob.objects.filter(created_by=user)
        .select_related("prospect_list")
        .order_by("-created_at")[:limit]
    )


def export_job_get_for_user(*, user: User, job_id: int) -> ExportJob | None:
    return ExportJob.objects.filter(pk=job_id, created_by=user).first()


# --- what is exported ----------------------------------------------------------------------------


class ExportError(Exception):
    """The export cannot run (list deleted, criteria no longer valid): the job fails."""


def export_queryset(job: ExportJob) -> QuerySet[Prospect]:
    """The job's prospects, within what its creator may see now."""
    if job.created_by is None or not job.created_by.is_active:
        raise ExportError(_("The user who asked for this export is no longer active."))
    visible = prospects_visible_to(job.created_by)
    if job.prospect_list_id is not None:
        return visible.filter(
            pk__in=ListMembership.objects.filter(prospect_list_id=job.prospect_list_id).values(
                "prospect_id"
            )
        )
    if not job.criteria:
        raise ExportError(_("The list to export was deleted."))
    try:
        return visible.filter(compile_criteria(job.criteria))
    except CriteriaError as error:
        raise ExportError(
            _("The filter is no longer valid: %(error)s") % {"error": error}
        ) from error


@dataclass(frozen=True)
class Column:
    key: str
    label: str


def _label(name: str) -> str:
    model_field = Prospect._meta.get_field(name)
    assert isinstance(model_field, models.Field)
    return str(model_field.verbose_name).capitalize()


def export_columns(custom_fields: Sequence[CustomField]) -> list[Column]:
    """The header: prospect fields, derived categories, assignment, tags, custom fields."""
    columns = [Column("id", "ID")]
    columns += [Column(name, _label(name)) for name in EDITABLE_FIELDS]
    columns += [
        Column("department_category", _label("department_category")),
        Column("job_level", _label("job_level")),
        Column("score", _label("score")),
        Column("grade", _label("grade")),
        Column("hot_status", _label("hot_status")),
        Column("hot_since", _("HOT since")),
        Column("assigned_user", _label("assigned_user")),
        Column("tags", _("Tags")),
    ]
    columns += [Column(f"custom:{field.key}", field.label) for field in custom_fields]
    columns += [
        Column("opted_out", _label("opted_out")),
        Column("do_not_email", _label("do_not_email")),
        Column("is_mailable", _("Mailable")),
        Column("created_at", _label("created_at")),
        Column("updated_at", _label("updated_at")),
        Column("last_activity_at", _label("last_activity_at")),
    ]
    return columns


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime.datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def _custom_text(value: CustomFieldValue, field_type: str) -> str:
    from prospects.models import CustomFieldType

    if field_type == CustomFieldType.NUMBER:
        return _text(value.value_number)
    if field_type == CustomFieldType.DATE:
        return _text(value.value_date)
    if field_type == CustomFieldType.BOOLEAN:
        return _text(value.value_bool)
    return value.value_text


def _rows(
    prospects: Sequence[Prospect], columns: Sequence[Column], custom_fields: Sequence[CustomField]
) -> Iterable[list[str]]:
    """CSV rows of one chunk; tags and custom values come in one query each."""
    ids = [prospect.pk for prospect in prospects]
    tags: dict[int, list[str]] = {}
    for prospect_id, name in (
        Prospect.tags.through.objects.filter(prospect_id__in=ids)
        .order_by("tag__name")
        .values_list("prospect_id", "tag__name")
    ):
        tags.setdefault(prospect_id, []).append(name)
    custom: dict[tuple[int, int], list[str]] = {}
    types = {field.pk: field.field_type for field in custom_fields}
    for custom_value in CustomFieldValue.objects.filter(prospect_id__in=ids).order_by("pk"):
        if custom_value.field_id in types:
            custom.setdefault((custom_value.prospect_id, custom_value.field_id), []).append(
                _custom_text(custom_value, types[custom_value.field_id])
            )
    field_ids = {f"custom:{field.key}": field.pk for field in custom_fields}
    departments = dict(DepartmentCategory.choices)
    levels = dict(JobLevel.choices)
    statuses = dict(HotStatus.choices)
    for prospect in prospects:
        row = []
        for column in columns:
            key = column.key
            if key == "tags":
                value: Any = ";".join(tags.get(prospect.pk, []))
            elif key in field_ids:
                value = ";".join(custom.get((prospect.pk, field_ids[key]), []))
            elif key == "department_category":
                category = prospect.department_category
                value = departments.get(category, "") if category else ""
            elif key == "job_level":
                value = levels.get(prospect.job_level, "") if prospect.job_level else ""
            elif key == "hot_status":
                value = statuses.get(prospect.hot_status, prospect.hot_status)
            elif key == "assigned_user":
                value = prospect.assigned_user.email if prospect.assigned_user else ""
            else:
                value = getattr(prospect, key)
            row.append(neutralise(_text(value)))
        yield row


# --- the run -------------------------------------------------------------------------------------


class _EncodedWriter:
    """Writes CSV text to a binary file; counts characters CP932 cannot hold (written as '?')."""

    def __init__(self, file: IO[bytes], encoding: str) -> None:
        self.file = file
        self.encoding = "utf-8" if encoding == ExportJob.Encoding.UTF8_BOM else encoding
        self.replaced = 0
        if encoding == ExportJob.Encoding.UTF8_BOM:
            file.write(codecs.BOM_UTF8)

    def write_rows(self, rows: Iterable[list[str]]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)  # CRLF line ends, as Excel writes them
        text = buffer.getvalue()
        try:
            data = text.encode(self.encoding)
        except UnicodeEncodeError:
            data = text.encode(self.encoding, errors="replace")
            # "replace" writes one '?' per character it could not encode.
            self.replaced += data.count(b"?") - text.count("?")
        self.file.write(data)


def export_job_run(*, job_id: int) -> ExportJob | None:
    """Write the job's file. Read-only on prospects, so a retry simply writes it again."""
    job = (
        ExportJob.objects.filter(pk=job_id).select_related("created_by", "created_by__role").first()
    )
    if job is None or job.status in (JobStatus.DONE, JobStatus.FAILED):
        return job
    ExportJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, processed_rows=0)
    language = (job.created_by.language if job.created_by else "") or settings.LANGUAGE_CODE
    try:
        with translation.override(language):
            replaced = _write(job)
    except ExportError as error:
        ExportJob.objects.filter(pk=job.pk).update(
            status=JobStatus.FAILED, failure_reason=str(error), finished_at=timezone.now()
        )
        job.refresh_from_db()
        _notify(job)
        return job
    notice = ""
    if replaced:
        with translation.override(language):
            notice = _(
                "%(count)d characters that Shift_JIS (CP932) cannot represent (such as emoji "
                "or 𠮷) were written as “?”. Export as UTF-8 to keep them."
            ) % {"count": replaced}
    ExportJob.objects.filter(pk=job.pk).update(
        status=JobStatus.DONE,
        file=job.file.name,
        notice=notice,
        finished_at=timezone.now(),
    )
    job.refresh_from_db()
    _notify(job)
    return job


def _write(job: ExportJob) -> int:
    queryset = export_queryset(job).order_by("pk")
    ExportJob.objects.filter(pk=job.pk).update(total_rows=queryset.count())
    custom_fields = list(CustomField.objects.order_by("label", "pk"))
    columns = export_columns(custom_fields)
    with tempfile.TemporaryFile() as file:
        writer = _EncodedWriter(file, job.encoding)
        writer.write_rows([[neutralise(column.label) for column in columns]])
        last_pk = 0
        while True:
            chunk = list(queryset.filter(pk__gt=last_pk)[:EXPORT_CHUNK_ROWS])
            if not chunk:
                break
            writer.write_rows(_rows(chunk, columns, custom_fields))
            last_pk = chunk[-1].pk
            ExportJob.objects.filter(pk=job.pk).update(
                processed_rows=F("processed_rows") + len(chunk)
            )
        file.seek(0)
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        job.file.save(f"prospects-{job.pk}-{stamp}.csv", File(file), save=False)
    return writer.replaced


def _notify(job: ExportJob) -> None:
    from mapp.notifications import notify_user

    if job.created_by is None:
        return
    with translation.override(job.created_by.language or settings.LANGUAGE_CODE):
        title = (
            _("Export ready: %(count)d prospects") % {"count": job.total_rows}
            if job.status == JobStatus.DONE
            else _("Export failed")
        )
        notify_user(
            user=job.created_by,
            title=title,
            body=job.failure_reason or job.notice,
            url=reverse("prospects_import:export_detail", args=[job.pk]),
            dedup_key=f"export-{job.pk}-{job.status}",
            send_email=False,
        )


@shared_task(
    name="prospects.export_run",
    acks_late=True,
    soft_time_limit=EXPORT_SOFT_TIME_LIMIT,
    time_limit=EXPORT_TIME_LIMIT,
)
def export_run(job_id: int) -> dict[str, Any] | None:
    job = export_job_run(job_id=job_id)
    if job is None:
        return None
    return {"status": job.status, "rows": job.processed_rows}
