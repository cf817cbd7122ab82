"""Reports of forms, landing pages and form handlers: read from the activity stream.

Views, submissions and errors are ``tracking`` activities (``object_type`` "form",
"landing_page" or "form_handler", ``object_id`` the row's pk); the submissions list and the CSV
come from the raw ``Submission`` store. Every number is one aggregate SQL query (``COUNT …
FILTER``), never a Python loop over activities, and bot traffic is left out, as everywhere in
reports. The day chart is an inline SVG drawn here, so the page needs no chart library and
works under a strict Content-Security-Policy.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from forms.models import Form, FormHandler, LandingPage, Submission, SubmissionStatus
from prospects.exporting import neutralise
from tracking.models import Activity, ActivityType

REPORT_DAYS = 30
# The CSV is written in chunks of this many submissions (≈ 2 MB of raw data at worst per chunk,
# see forms.models.RAW_MAX_FIELDS), so an export of 100,000 rows never holds them all at once.
CSV_CHUNK_ROWS = 500
CSV_BOM = "\ufeff"


@dataclass(frozen=True)
class ReportKind:
    """Which activities count as a view, a success and an error for one kind of object."""

    object_type: str
    view_type: str | None  # a form handler has no page of its own, so no views
    success_type: str
    error_type: str
    submission_filter: str  # the Submission foreign key pointing at the object


FORM_REPORT = ReportKind(
    object_type="form",
    view_type=ActivityType.FORM_VIEW,
    success_type=ActivityType.FORM_SUCCESS,
    error_type=ActivityType.FORM_ERROR,
    submission_filter="form",
)
LANDING_PAGE_REPORT = ReportKind(
    object_type="landing_page",
    view_type=ActivityType.LANDING_PAGE_VIEW,
    success_type=ActivityType.LANDING_PAGE_SUCCESS,
    error_type=ActivityType.LANDING_PAGE_ERROR,
    submission_filter="landing_page",
)
HANDLER_REPORT = ReportKind(
    object_type="form_handler",
    view_type=None,
    success_type=ActivityType.FORM_HANDLER_SUCCESS,
    error_type=ActivityType.FORM_HANDLER_ERROR,
    submission_filter="handler",
)


@dataclass(frozen=True)
class ReportTotals:
    views: int = 0
    unique_views: int = 0
    submissions: int = 0
    errors: int = 0

    @property
    def conversion_rate(self) -> float | None:
        """Submissions per unique view, in percent; None when nobody viewed (no division)."""
        if not self.unique_views:
            return None
        return round(100 * self.submissions / self.unique_views, 1)


@dataclass(frozen=True)
class DayCount:
    day: datetime.date
    views: int
    submissions: int
    errors: int


def _human_activities(kind: ReportKind, object_ids: Iterable[int]) -> QuerySet[Activity]:
    types = [t for t in (kind.view_type, kind.success_type, kind.error_type) if t]
    return Activity.objects.filter(
        object_type=kind.object_type,
        object_id__in=[str(object_id) for object_id in object_ids],
        type__in=types,
        is_bot=False,
    )


def _count_expressions(kind: ReportKind) -> dict[str, Any]:
    expressions: dict[str, Any] = {
        "submissions": Count("id", filter=Q(type=kind.success_type)),
        "errors": Count("id", filter=Q(type=kind.error_type)),
    }
    if kind.view_type:
        expressions["views"] = Count("id", filter=Q(type=kind.view_type))
        expressions["unique_views"] = Count(
            "visitor_id", filter=Q(type=kind.view_type), distinct=True
        )
    return expressions


def report_totals(*, kind: ReportKind, object_id: int) -> ReportTotals:
    """All-time totals of one object (one query)."""
    row = _human_activities(kind, [object_id]).aggregate(**_count_expressions(kind))
    return ReportTotals(
        views=row.get("views") or 0,
        unique_views=row.get("unique_views") or 0,
        submissions=row["submissions"] or 0,
        errors=row["errors"] or 0,
    )


def report_totals_many(*, kind: ReportKind, object_ids: Sequence[int]) -> dict[int, ReportTotals]:
    """Totals of a page of objects (one grouped query), for the list pages."""
    if not object_ids:
        return {}
    rows = (
        _human_activities(kind, object_ids)
        .values("object_id")
        .order_by()
        .annotate(**_count_expressions(kind))
    )
    totals = {object_id: ReportTotals() for object_id in object_ids}
    for row in rows:
        totals[int(row["object_id"])] = ReportTotals(
            views=row.get("views") or 0,
            unique_views=row.get("unique_views") or 0,
            submissions=row["submissions"] or 0,
            errors=row["errors"] or 0,
        )
    return totals


def report_by_day(
    *, kind: ReportKind, object_id: int, days: int = REPORT_DAYS, today: datetime.date | None = None
) -> list[DayCount]:
    """The last ``days`` days (today included, in the site's time zone), empty days as zeros."""
    today = today or timezone.localdate()
    first_day = today - datetime.timedelta(days=days - 1)
    start = timezone.make_aware(datetime.datetime.combine(first_day, datetime.time.min))
    expressions = _count_expressions(kind)
    expressions.pop("unique_views", None)
    rows = (
        _human_activities(kind, [object_id])
        .filter(occurred_at__gte=start)
        .annotate(day=TruncDate("occurred_at", tzinfo=timezone.get_current_timezone()))
        .values("day")
        .order_by("day")
        .annotate(**expressions)
    )
    by_day = {row["day"]: row for row in rows}
    result = []
    for offset in range(days):
        day = first_day + datetime.timedelta(days=offset)
        row = by_day.get(day, {})
        result.append(
            DayCount(
                day=day,
                views=row.get("views") or 0,
                submissions=row.get("submissions") or 0,
                errors=row.get("errors") or 0,
            )
        )
    return result


def submission_status_counts(*, kind: ReportKind, object_id: int) -> dict[str, int]:
    """How many stored submissions are in each status (bots rejected, failed, …); one query."""
    rows = (
        Submission.objects.filter(**{f"{kind.submission_filter}_id": object_id})
        .values("status")
        .order_by()
        .annotate(count=Count("id"))
    )
    return {row["status"]: row["count"] for row in rows}


def submissions_for(*, kind: ReportKind, object_id: int) -> QuerySet[Submission]:
    """The object's stored submissions, newest first, with their prospect in the same query.

    Posts rejected as bots are left out (like bot activities): they are only counted, in
    :func:`submission_status_counts`, so a flood of spam does not bury the real leads.
    """
    return (
        Submission.objects.filter(**{f"{kind.submission_filter}_id": object_id})
        .exclude(status=SubmissionStatus.REJECTED_BOT)
        .select_related("prospect")
        .order_by("-received_at", "-id")
    )


# --- the day chart -------------------------------------------------------------------------------

CHART_WIDTH = 720
CHART_HEIGHT = 200
CHART_TOP = 12
CHART_BOTTOM = 28  # room for the day labels
CHART_LEFT = 36  # room for the scale
CHART_LABEL_EVERY = 5  # a day label every five bars keeps 30 days readable


def _nice_maximum(value: int) -> int:
    """A round top of the scale (1, 2, 5, 10, 20, 50, …) at least ``value``."""
    if value <= 1:
        return 1
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def day_chart_svg(days: Sequence[DayCount], *, show_views: bool) -> SafeString:
    """Bars per day (views behind, submissions in front) as an accessible inline SVG.

    Every number is an int and every label comes from format_html, so nothing a visitor sent
    reaches the markup. Screen readers get a title, a description and one <title> per bar.
    """
    count = max(len(days), 1)
    plot_width = CHART_WIDTH - CHART_LEFT - 4
    plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    slot = plot_width / count
    bar = max(slot * 0.7, 2)
    highest = max(
        [max(day.views if show_views else 0, day.submissions, day.errors) for day in days] or [0]
    )
    top = _nice_maximum(highest)
    baseline = CHART_TOP + plot_height

    def height(value: int) -> float:
        return round(plot_height * value / top, 2)

    bars: list[SafeString] = []
    for index, day in enumerate(days):
        x = round(CHART_LEFT + index * slot + (slot - bar) / 2, 2)
        label = _("%(day)s: %(views)d views, %(submissions)d submissions, %(errors)d errors") % {
            "day": day.day.isoformat(),
            "views": day.views,
            "submissions": day.submissions,
            "errors": day.errors,
        }
        if not show_views:
            label = _("%(day)s: %(submissions)d submissions, %(errors)d errors") % {
                "day": day.day.isoformat(),
                "submissions": day.submissions,
                "errors": day.errors,
            }
        parts = [format_html("<title>{}</title>", label)]
        if show_views and day.views:
            parts.append(
                format_html(
                    '<rect class="chart-views" x="{}" y="{}" width="{}" height="{}"></rect>',
                    x,
                    round(baseline - height(day.views), 2),
                    round(bar, 2),
                    height(day.views),
                )
            )
        if day.submissions:
            inner = round(bar * 0.6, 2)
            parts.append(
                format_html(
                    '<rect class="chart-submissions" x="{}" y="{}" width="{}" height="{}"></rect>',
                    round(x + (bar - inner) / 2, 2),
                    round(baseline - height(day.submissions), 2),
                    inner,
                    height(day.submissions),
                )
            )
        if day.errors:
            parts.append(
                format_html(
                    '<rect class="chart-errors" x="{}" y="{}" width="{}" height="{}"></rect>',
                    x,
                    round(baseline - height(day.errors) - 1, 2),
                    round(bar, 2),
                    min(height(day.errors), 3) or 1,
                )
            )
        # An invisible full-height target so hovering anywhere on the day shows its numbers.
        parts.append(
            format_html(
                '<rect class="chart-hit" x="{}" y="{}" width="{}" height="{}"></rect>',
                round(CHART_LEFT + index * slot, 2),
                CHART_TOP,
                round(slot, 2),
                plot_height,
            )
        )
        bars.append(format_html("<g>{}</g>", SafeString("".join(parts))))
        if index % CHART_LABEL_EVERY == 0 or index == count - 1:
            bars.append(
                format_html(
                    '<text class="chart-label" x="{}" y="{}" text-anchor="middle">{}</text>',
                    round(CHART_LEFT + index * slot + slot / 2, 2),
                    CHART_HEIGHT - 8,
                    day.day.strftime("%m/%d"),
                )
            )
    scale = format_html_join(
        "",
        '<line class="chart-grid" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
        '<text class="chart-label" x="{}" y="{}" text-anchor="end">{}</text>',
        (
            (
                CHART_LEFT,
                CHART_WIDTH - 4,
                round(baseline - plot_height * fraction, 2),
                round(baseline - plot_height * fraction, 2),
                CHART_LEFT - 6,
                round(baseline - plot_height * fraction + 4, 2),
                round(top * fraction) if top * fraction == int(top * fraction) else "",
            )
            for fraction in (0, 0.5, 1)
        ),
    )
    total_views = sum(day.views for day in days)
    total_submissions = sum(day.submissions for day in days)
    total_errors = sum(day.errors for day in days)
    if show_views:
        description = _(
            "Last %(days)d days: %(views)d views, %(submissions)d submissions, %(errors)d errors."
        ) % {
            "days": len(days),
            "views": total_views,
            "submissions": total_submissions,
            "errors": total_errors,
        }
    else:
        description = _("Last %(days)d days: %(submissions)d submissions, %(errors)d errors.") % {
            "days": len(days),
            "submissions": total_submissions,
            "errors": total_errors,
        }
    return format_html(
        '<svg class="day-chart" viewBox="0 0 {} {}" role="img" aria-labelledby="day-chart-title '
        'day-chart-description" data-testid="day-chart">'
        '<title id="day-chart-title">{}</title><desc id="day-chart-description">{}</desc>'
        "{}{}</svg>",
        CHART_WIDTH,
        CHART_HEIGHT,
        _("Views and submissions by day"),
        description,
        scale,
        SafeString("".join(bars)),
    )


# --- CSV -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvColumn:
    key: str  # the raw_data key (a form field's input name, a handler's external name)
    label: str


SUBMISSION_FIXED_HEADERS = (
    gettext_lazy("Received at"),
    gettext_lazy("Status"),
    gettext_lazy("Prospect email"),
    gettext_lazy("Error"),
)


def csv_columns_for_form(form: Form) -> list[CsvColumn]:
    """One column per field the form has had (removed ones too: old rows still carry them)."""
    return [
        CsvColumn(key=field.input_name, label=field.label)
        for field in form.fields.order_by("-is_active", "position", "id")
    ]


def csv_columns_for_handler(handler: FormHandler) -> list[CsvColumn]:
    return [
        CsvColumn(key=field.external_name, label=field.external_name)
        for field in handler.fields.order_by("position", "id")
    ]


def csv_columns_for_landing_page(landing_page: LandingPage) -> list[CsvColumn]:
    return csv_columns_for_form(landing_page.form) if landing_page.form else []


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = ", ".join(str(item) for item in value)
    return neutralise(str(value))


def _csv_line(values: Sequence[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([_cell(value) for value in values])
    return buffer.getvalue()


def submissions_csv_lines(
    submissions: QuerySet[Submission], columns: Sequence[CsvColumn]
) -> Iterator[str]:
    """The CSV as lines for a streaming response: BOM, header, one line per submission.

    Excel in Japan opens UTF-8 only with a BOM. Cells a spreadsheet would run as a formula are
    prefixed with a quote (prospects.exporting.neutralise). Posted keys the form does not (or no
    longer) define go, as ``key=value`` pairs, into a last "Other fields" column so nothing
    submitted is missing from the export.
    """
    known = {column.key for column in columns}
    statuses = dict(Submission._meta.get_field("status").flatchoices)
    header = [
        *(str(label) for label in SUBMISSION_FIXED_HEADERS),
        *(column.label for column in columns),
        _("Other fields"),
    ]
    yield CSV_BOM + _csv_line(header)
    current_timezone = timezone.get_current_timezone()
    for submission in submissions.iterator(chunk_size=CSV_CHUNK_ROWS):
        data = submission.raw_data if isinstance(submission.raw_data, dict) else {}
        others = "; ".join(
            f"{key}={_flatten(value)}" for key, value in data.items() if key not in known
        )
        yield _csv_line(
            [
                submission.received_at.astimezone(current_timezone).strftime("%Y-%m-%d %H:%M:%S"),
                str(statuses.get(submission.status, submission.status)),
                submission.prospect.email if submission.prospect else "",
                submission.error,
                *(data.get(column.key, "") for column in columns),
                others,
            ]
        )


def _flatten(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)
