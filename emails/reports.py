"""List email reports: delivery, opens, clicks, opt-outs and complaints, per email and per
A/B variant, per link and per hour.

Where the numbers come from:

* Delivery facts are the send's :class:`~emails.models.Recipient` rows (one per address, each
  feedback set once): **sent** = rows handed to and accepted by a mail server (status "sent"),
  plus rows that bounced whatever their status; **hard / soft bounces** = rows with
  ``bounced_at`` of that ``bounce_kind``; **complaints** = rows with ``complained_at``.
  **Delivered** = sent − hard bounces − soft bounces. Rows refused or skipped at send time
  without a bounce are "not sent", rows still held, queued or being sent are "waiting".
* Behaviour is the activity stream (``tracking``): opens are EMAIL_OPENED with object
  ("email", "le<pk>"); clicks are EMAIL_CLICKED with object ("link", link id) and
  ``payload["email_id"] == "le<pk>"``; unsubscribes are EMAIL_UNSUBSCRIBED with object
  ("list_email", "<pk>"). ``is_bot`` marks machine opens (Apple Mail Privacy Protection, image
  prefetch on delivery, crawlers; ``payload["machine"]`` / ``payload["bot"]`` says which) and
  scanner clicks. They are counted apart and never in a rate.
* A prospect's variant is the variant of their Recipient row in this send (at most one row per
  prospect). Activities of a prospect without a row in the send (a merged prospect's history
  moved to the survivor) count in the email's totals but in no variant's column.

Definitions (Account Engagement's, /work/shared/reference/account-engagement.md "Email stats &
definitions" and Salesforce's EmailContent object reference):

* delivery rate = delivered ÷ sent; every other rate is ÷ delivered, except the bounce rates
  (÷ sent: a bounce is part of what was sent) and click-to-open (÷ unique opens).
* **A click counts as an open.** Account Engagement records an open when a prospect clicks a
  tracked link even if the pixel never loaded ("If a recipient clicks a link within the email,
  Account Engagement counts the email as opened whether the tracking pixel loaded", Salesforce
  help, *Tracking Email Opens*). So unique opens = people with a human open **or** a human
  click; total opens = human pixel loads + one per human clicker who never loaded the pixel
  (as Account Engagement adds one open then); click-to-open = unique clickers ÷ unique opens,
  which therefore never exceeds 100 %. A person whose only open was a machine open (an Apple
  Mail user) and who clicked is a human opener through the click.
* Unique = distinct prospects. Unsubscribes are distinct prospects too.

Every number is one of a handful of aggregate SQL queries (``COUNT … FILTER``, grouped by
variant, link or hour), whatever the number of recipients: no Python loop over rows.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import TruncHour
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from emails.models import (
    BounceKind,
    ListEmail,
    ListEmailVariant,
    Recipient,
    RecipientStatus,
)
from tracking.links import is_safe_destination
from tracking.models import Activity, ActivityType

# Activities of a send cannot precede its start; the margin absorbs clocks of web and worker
# hosts that disagree, and the lower bound lets PostgreSQL skip older monthly partitions.
START_MARGIN = datetime.timedelta(hours=1)
# The hourly chart covers at most the first week: 168 bars still fit 720 px, and nearly every
# open and click of a list email happens in it (later ones are in the totals).
TIMELINE_HOURS = 168
DASH = "—"


# --- numbers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """numerator ÷ denominator, shown as a percentage, or "—" when the denominator is 0."""

    numerator: int
    denominator: int

    @property
    def percent(self) -> float | None:
        if not self.denominator:
            return None
        return 100 * self.numerator / self.denominator

    def __str__(self) -> str:
        percent = self.percent
        return DASH if percent is None else f"{percent:.1f}%"


@dataclass(frozen=True)
class Counts:
    """The numbers of one column: the whole email, or one variant's recipients.

    Unique counts are of distinct prospects, and each prospect belongs to one column only, so
    two columns add up (``+``) to the numbers of their union.
    """

    recipients: int = 0
    sent: int = 0
    hard_bounces: int = 0
    soft_bounces: int = 0
    complaints: int = 0
    not_sent: int = 0
    waiting: int = 0
    pixel_opens: int = 0  # human loads of the open pixel
    pixel_openers: int = 0
    click_only_openers: int = 0  # human clickers who never loaded the pixel as a person
    machine_opens: int = 0
    machine_openers: int = 0
    clicks: int = 0  # human clicks
    clickers: int = 0
    bot_clicks: int = 0
    bot_clickers: int = 0
    unsubscribes: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            **{name: getattr(self, name) + getattr(other, name) for name in _COUNT_FIELDS}
        )

    @property
    def bounces(self) -> int:
        return self.hard_bounces + self.soft_bounces

    @property
    def delivered(self) -> int:
        return self.sent - self.bounces

    @property
    def unique_opens(self) -> int:
        return self.pixel_openers + self.click_only_openers

    @property
    def total_opens(self) -> int:
        return self.pixel_opens + self.click_only_openers

    @property
    def delivery_rate(self) -> Rate:
        return Rate(self.delivered, self.sent)

    @property
    def hard_bounce_rate(self) -> Rate:
        return Rate(self.hard_bounces, self.sent)

    @property
    def soft_bounce_rate(self) -> Rate:
        return Rate(self.soft_bounces, self.sent)

    @property
    def open_rate(self) -> Rate:
        return Rate(self.unique_opens, self.delivered)

    @property
    def click_rate(self) -> Rate:
        return Rate(self.clickers, self.delivered)

    @property
    def click_to_open_rate(self) -> Rate:
        return Rate(self.clickers, self.unique_opens)

    @property
    def unsubscribe_rate(self) -> Rate:
        return Rate(self.unsubscribes, self.delivered)

    @property
    def complaint_rate(self) -> Rate:
        return Rate(self.complaints, self.delivered)


_COUNT_FIELDS = tuple(Counts.__dataclass_fields__)


@dataclass(frozen=True)
class Column:
    """One column of the A/B table: a variant, or the recipients outside the test."""

    label: str
    counts: Counts
    variant: ListEmailVariant | None = None
    is_winner: bool = False


@dataclass(frozen=True)
class LinkRow:
    link_id: str
    url: str
    clicks: int
    clickers: int
    bot_clicks: int
    variant_label: str = ""

    @property
    def is_followable(self) -> bool:
        """Shown as a link only when it is an absolute http(s) URL (it is user content)."""
        return is_safe_destination(self.url)


@dataclass(frozen=True)
class HourCount:
    start: datetime.datetime  # aware, in the current time zone
    opens: int
    clicks: int


@dataclass(frozen=True)
class Report:
    list_email: ListEmail
    totals: Counts
    columns: list[Column] = field(default_factory=list)  # empty unless A/B-tested
    links: list[LinkRow] = field(default_factory=list)
    timeline: list[HourCount] = field(default_factory=list)
    # Human opens and clicks the chart does not show (after its last hour, or just before the
    # send's first hour when clocks disagree); they are in the totals.
    outside_chart: int = 0

    @property
    def is_ab_test(self) -> bool:
        return bool(self.columns)


# --- queries -------------------------------------------------------------------------------------


def _email_activities(list_email: ListEmail, since: datetime.datetime) -> QuerySet[Activity]:
    """The send's opens, clicks and unsubscribes (bots included; callers split them)."""
    # ``payload ->> 'email_id'`` (text), the expression an index on clicks would be built on.
    return (
        Activity.objects.filter(occurred_at__gte=since)
        .alias(email_id=KT("payload__email_id"))
        .filter(
            Q(
                type=ActivityType.EMAIL_OPENED,
                object_type="email",
                object_id=list_email.tracking_id,
            )
            | Q(type=ActivityType.EMAIL_CLICKED, email_id=list_email.tracking_id)
            | Q(
                type=ActivityType.EMAIL_UNSUBSCRIBED,
                object_type="list_email",
                object_id=str(list_email.pk),
            )
        )
    )


def _recipient_counts(list_email: ListEmail) -> dict[int | None, Counts]:
    """Delivery numbers per variant id (None: no variant), one grouped query."""
    bounced = Q(bounced_at__isnull=False)
    soft = Q(bounce_kind=BounceKind.SOFT)
    rows = (
        Recipient.objects.filter(list_email=list_email)
        .values("variant_id")
        .order_by()
        .annotate(
            recipients=Count("id"),
            sent=Count("id", filter=Q(status=RecipientStatus.SENT) | bounced),
            # A bounce of no known kind is hard, as a failure without a status code is.
            hard_bounces=Count("id", filter=bounced & ~soft),
            soft_bounces=Count("id", filter=bounced & soft),
            complaints=Count("id", filter=Q(complained_at__isnull=False)),
            not_sent=Count(
                "id",
                filter=Q(status__in=[RecipientStatus.FAILED, RecipientStatus.SKIPPED]) & ~bounced,
            ),
            waiting=Count(
                "id",
                filter=Q(
                    status__in=[
                        RecipientStatus.HELD,
                        RecipientStatus.QUEUED,
                        RecipientStatus.CLAIMED,
                    ]
                ),
            ),
        )
    )
    result: dict[int | None, Counts] = {}
    for row in rows:
        variant_id = row.pop("variant_id")
        result[variant_id] = Counts(**row)
    return result


# Group keys of the engagement query: a prospect with a row in the send is in its variant's
# group (0: no variant); one without a row is in OUTSIDE.
NO_VARIANT = 0
OUTSIDE = -1


def _engagement_counts(list_email: ListEmail, since: datetime.datetime) -> dict[int, Counts]:
    """Opens, clicks and unsubscribes per group key, one query: per prospect, then per group."""
    activities_sql, activities_params = (
        _email_activities(list_email, since)
        .order_by()
        .values("prospect_id", "type", "is_bot")
        .query.sql_with_params()
    )
    recipient_table = Recipient._meta.db_table
    opened, clicked = ActivityType.EMAIL_OPENED.value, ActivityType.EMAIL_CLICKED.value
    unsubscribed = ActivityType.EMAIL_UNSUBSCRIBED.value
    sql = f"""
        WITH events AS ({activities_sql}),
        per_prospect AS (
            SELECT prospect_id,
                count(*) FILTER (WHERE type = %s AND NOT is_bot) AS pixel_opens,
                count(*) FILTER (WHERE type = %s AND is_bot) AS machine_opens,
                count(*) FILTER (WHERE type = %s AND NOT is_bot) AS clicks,
                count(*) FILTER (WHERE type = %s AND is_bot) AS bot_clicks,
                count(*) FILTER (WHERE type = %s) AS unsubscribes
            FROM events WHERE prospect_id IS NOT NULL GROUP BY prospect_id
        )
        SELECT
            CASE WHEN r.id IS NULL THEN %s ELSE coalesce(r.variant_id, %s) END AS group_key,
            coalesce(sum(p.pixel_opens), 0),
            count(*) FILTER (WHERE p.pixel_opens > 0),
            count(*) FILTER (WHERE p.pixel_opens = 0 AND p.clicks > 0),
            coalesce(sum(p.machine_opens), 0),
            count(*) FILTER (WHERE p.machine_opens > 0),
            coalesce(sum(p.clicks), 0),
            count(*) FILTER (WHERE p.clicks > 0),
            coalesce(sum(p.bot_clicks), 0),
            count(*) FILTER (WHERE p.bot_clicks > 0),
            count(*) FILTER (WHERE p.unsubscribes > 0)
        FROM per_prospect AS p
        LEFT JOIN {recipient_table} AS r
            ON r.list_email_id = %s AND r.prospect_id = p.prospect_id
        GROUP BY 1
    """  # noqa: S608 - table names from the models, values as parameters
    params = [
        *activities_params,
        opened,
        opened,
        clicked,
        clicked,
        unsubscribed,
        OUTSIDE,
        NO_VARIANT,
        list_email.pk,
    ]
    result: dict[int, Counts] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for row in cursor.fetchall():
            (
                group_key,
                pixel_opens,
                pixel_openers,
                click_only_openers,
                machine_opens,
                machine_openers,
                clicks,
                clickers,
                bot_clicks,
                bot_clickers,
                unsubscribes,
            ) = (int(value) for value in row)
            result[group_key] = Counts(
                pixel_opens=pixel_opens,
                pixel_openers=pixel_openers,
                click_only_openers=click_only_openers,
                machine_opens=machine_opens,
                machine_openers=machine_openers,
                clicks=clicks,
                clickers=clickers,
                bot_clicks=bot_clicks,
                bot_clickers=bot_clickers,
                unsubscribes=unsubscribes,
            )
    return result


def _link_rows(
    list_email: ListEmail, since: datetime.datetime, variant_labels: dict[int, str]
) -> list[LinkRow]:
    """Clicks per (variant, link id), one query, most clicked first.

    Link ids are positions in the message ("1", "2", …), so the same id may be another URL in
    another variant: with variants, links are counted per variant. The URL shown is the one
    most clicks went to (a link with merge fields in its URL differs per recipient).
    """
    clicks_sql, clicks_params = (
        _email_activities(list_email, since)
        .filter(type=ActivityType.EMAIL_CLICKED)
        .order_by()
        .values("prospect_id", "object_id", "object_label", "is_bot")
        .query.sql_with_params()
    )
    recipient_table = Recipient._meta.db_table
    group = "coalesce(r.variant_id, 0)" if variant_labels else "0"
    sql = f"""
        SELECT {group} AS variant_key, c.object_id,
            mode() WITHIN GROUP (ORDER BY c.object_label),
            count(*) FILTER (WHERE NOT c.is_bot),
            count(DISTINCT c.prospect_id) FILTER (WHERE NOT c.is_bot),
            count(*) FILTER (WHERE c.is_bot)
        FROM ({clicks_sql}) AS c
        LEFT JOIN {recipient_table} AS r
            ON r.list_email_id = %s AND r.prospect_id = c.prospect_id
        GROUP BY 1, 2
        ORDER BY 4 DESC, 6 DESC, 1, length(c.object_id), c.object_id
    """  # noqa: S608 - table names from the models, values as parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, [*clicks_params, list_email.pk])
        rows = cursor.fetchall()
    return [
        LinkRow(
            link_id=str(link_id),
            url=str(url or ""),
            clicks=int(clicks),
            clickers=int(clickers),
            bot_clicks=int(bot_clicks),
            variant_label=variant_labels.get(int(variant_key), "") if variant_labels else "",
        )
        for variant_key, link_id, url, clicks, clickers, bot_clicks in rows
    ]


def _timeline(
    list_email: ListEmail, started_at: datetime.datetime, now: datetime.datetime
) -> list[HourCount]:
    """Human opens (pixel loads) and clicks per hour of the current time zone, from the hour the
    send started to now, at most TIMELINE_HOURS; one query."""
    current_timezone = timezone.get_current_timezone()
    first_hour = timezone.localtime(started_at, current_timezone).replace(
        minute=0, second=0, microsecond=0
    )
    hours = int((now - first_hour).total_seconds() // 3600) + 1
    hours = max(1, min(hours, TIMELINE_HOURS))
    end = first_hour + datetime.timedelta(hours=hours)
    rows = (
        _email_activities(list_email, first_hour)
        .filter(
            type__in=[ActivityType.EMAIL_OPENED, ActivityType.EMAIL_CLICKED],
            is_bot=False,
            occurred_at__lt=end,
        )
        .annotate(hour=TruncHour("occurred_at", tzinfo=current_timezone))
        .values("hour")
        .order_by()
        .annotate(
            opens=Count("id", filter=Q(type=ActivityType.EMAIL_OPENED)),
            clicks=Count("id", filter=Q(type=ActivityType.EMAIL_CLICKED)),
        )
    )
    by_hour = {row["hour"]: (row["opens"], row["clicks"]) for row in rows}
    timeline = []
    for offset in range(hours):
        # Stepping in absolute time keeps every bucket one real hour long across DST changes.
        start = timezone.localtime(first_hour + datetime.timedelta(hours=offset), current_timezone)
        opens, clicks = by_hour.get(start, (0, 0))
        timeline.append(HourCount(start=start, opens=opens, clicks=clicks))
    return timeline


def variant_label(variant: ListEmailVariant) -> str:
    return _("Variant %(letter)s") % {"letter": variant.letter}


def variant_counts(list_email: ListEmail) -> dict[int, Counts]:
    """Each variant's numbers (by variant id), as its report column shows them: what the A/B
    winner is chosen by (emails.ab_tests), so the winner is the report's best by definition."""
    delivery = _recipient_counts(list_email)
    since = list_email.started_at - START_MARGIN if list_email.started_at else None
    engagement = _engagement_counts(list_email, since) if since else {}
    return {
        variant_id: counts + engagement.get(variant_id, Counts())
        for variant_id, counts in delivery.items()
        if variant_id is not None
    }


def list_email_report(list_email: ListEmail, *, now: datetime.datetime | None = None) -> Report:
    """The report of one list email: five queries however many recipients (two before the send
    started). See the module docstring for every definition."""
    now = now or timezone.now()
    variants = list(ListEmailVariant.objects.filter(list_email=list_email).order_by("letter"))
    delivery = _recipient_counts(list_email)
    started_at = list_email.started_at
    since = started_at - START_MARGIN if started_at else None
    engagement = _engagement_counts(list_email, since) if since else {}

    def column_counts(variant_id: int | None) -> Counts:
        return delivery.get(variant_id, Counts()) + engagement.get(
            variant_id if variant_id is not None else NO_VARIANT, Counts()
        )

    totals = sum(delivery.values(), Counts()) + sum(engagement.values(), Counts())
    columns: list[Column] = []
    labels: dict[int, str] = {}
    for variant in variants:
        labels[variant.pk] = variant_label(variant)
        columns.append(
            Column(
                label=labels[variant.pk],
                counts=column_counts(variant.pk),
                variant=variant,
                is_winner=variant.pk == list_email.ab_winner_id,
            )
        )
    if variants and (None in delivery or NO_VARIANT in engagement):
        labels[NO_VARIANT] = _("Rest of the list")
        columns.append(Column(label=labels[NO_VARIANT], counts=column_counts(None)))
    if started_at is None or since is None:
        return Report(list_email=list_email, totals=totals, columns=columns)
    timeline = _timeline(list_email, started_at, now)
    in_chart = sum(hour.opens + hour.clicks for hour in timeline)
    return Report(
        list_email=list_email,
        totals=totals,
        columns=columns,
        links=_link_rows(list_email, since, labels),
        timeline=timeline,
        outside_chart=totals.pixel_opens + totals.clicks - in_chart,
    )


# --- what each number means ----------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One row of the report: its name, its definition, and how to read it from Counts."""

    key: str
    label: Any  # lazy translation
    definition: Any  # lazy translation
    count: str = ""  # a Counts attribute, or "" for a rate-only row
    rate: str = ""  # a Counts attribute giving a Rate, or ""


@dataclass(frozen=True)
class MetricSection:
    title: Any
    metrics: tuple[Metric, ...]


METRIC_SECTIONS: tuple[MetricSection, ...] = (
    MetricSection(
        gettext_lazy("Delivery"),
        (
            Metric(
                "recipients",
                gettext_lazy("Recipients"),
                gettext_lazy(
                    "Addresses in the send: its lists minus suppressions, one per address."
                ),
                count="recipients",
            ),
            Metric(
                "sent",
                gettext_lazy("Sent"),
                gettext_lazy(
                    "Messages accepted by the receiving mail server, including those that "
                    "bounced later."
                ),
                count="sent",
            ),
            Metric(
                "delivered",
                gettext_lazy("Delivered"),
                gettext_lazy("Sent minus hard and soft bounces. Rate: delivered ÷ sent."),
                count="delivered",
                rate="delivery_rate",
            ),
            Metric(
                "hard_bounces",
                gettext_lazy("Hard bounces"),
                gettext_lazy(
                    "Permanent failures (the address or domain does not exist); the prospect "
                    "is no longer mailed. Rate: ÷ sent."
                ),
                count="hard_bounces",
                rate="hard_bounce_rate",
            ),
            Metric(
                "soft_bounces",
                gettext_lazy("Soft bounces"),
                gettext_lazy(
                    "Temporary failures (mailbox full, server unavailable). Rate: ÷ sent."
                ),
                count="soft_bounces",
                rate="soft_bounce_rate",
            ),
            Metric(
                "not_sent",
                gettext_lazy("Not sent"),
                gettext_lazy(
                    "Refused by our mail server at send time, or skipped because the prospect "
                    "was no longer mailable."
                ),
                count="not_sent",
            ),
            Metric(
                "waiting",
                gettext_lazy("Waiting"),
                gettext_lazy("Not sent yet: queued, being sent, or held for the A/B test winner."),
                count="waiting",
            ),
        ),
    ),
    MetricSection(
        gettext_lazy("Opens"),
        (
            Metric(
                "unique_opens",
                gettext_lazy("Unique opens"),
                gettext_lazy(
                    "People who opened the email. Someone who clicked a link counts as having "
                    "opened it even if images were not loaded. Machine opens are left out. "
                    "Rate: ÷ delivered."
                ),
                count="unique_opens",
                rate="open_rate",
            ),
            Metric(
                "total_opens",
                gettext_lazy("Total opens"),
                gettext_lazy(
                    "Every time a person loaded the email's images, plus one open for each "
                    "clicker who never loaded them."
                ),
                count="total_opens",
            ),
            Metric(
                "machine_openers",
                gettext_lazy("Machine opens (unique)"),
                gettext_lazy(
                    "Recipients whose email was opened by a machine: a privacy proxy such as "
                    "Apple Mail Privacy Protection, or a scanner loading images on delivery. "
                    "It says nothing about reading, so it is in no rate."
                ),
                count="machine_openers",
            ),
            Metric(
                "machine_opens",
                gettext_lazy("Machine opens (total)"),
                gettext_lazy("Every image load by such machines."),
                count="machine_opens",
            ),
        ),
    ),
    MetricSection(
        gettext_lazy("Clicks"),
        (
            Metric(
                "unique_clicks",
                gettext_lazy("Unique clicks"),
                gettext_lazy(
                    "People who clicked at least one tracked link. Rate (click rate): ÷ delivered."
                ),
                count="clickers",
                rate="click_rate",
            ),
            Metric(
                "total_clicks",
                gettext_lazy("Total clicks"),
                gettext_lazy("Every click on a tracked link by a person."),
                count="clicks",
            ),
            Metric(
                "click_to_open",
                gettext_lazy("Click-to-open rate"),
                gettext_lazy("Unique clicks ÷ unique opens: how many who opened went on to click."),
                rate="click_to_open_rate",
            ),
            Metric(
                "bot_clicks",
                gettext_lazy("Bot clicks"),
                gettext_lazy(
                    "Clicks by link scanners and security gateways (known agents, clicks "
                    "seconds after delivery, all links at once). Left out of every other number."
                ),
                count="bot_clicks",
            ),
        ),
    ),
    MetricSection(
        gettext_lazy("Opt-outs and complaints"),
        (
            Metric(
                "unsubscribes",
                gettext_lazy("Unsubscribes"),
                gettext_lazy(
                    "People who unsubscribed through this email's link. Rate: ÷ delivered."
                ),
                count="unsubscribes",
                rate="unsubscribe_rate",
            ),
            Metric(
                "complaints",
                gettext_lazy("Spam complaints"),
                gettext_lazy(
                    "Recipients who reported the email as spam to their mailbox provider. "
                    "Rate: ÷ delivered."
                ),
                count="complaints",
                rate="complaint_rate",
            ),
        ),
    ),
)


@dataclass(frozen=True)
class Cell:
    count: int | None
    rate: Rate | None


@dataclass(frozen=True)
class MetricRow:
    metric: Metric
    total: Cell
    columns: list[Cell]


@dataclass(frozen=True)
class SectionRows:
    title: Any
    rows: list[MetricRow]


def _cell(counts: Counts, metric: Metric) -> Cell:
    return Cell(
        count=getattr(counts, metric.count) if metric.count else None,
        rate=getattr(counts, metric.rate) if metric.rate else None,
    )


def report_rows(report: Report) -> list[SectionRows]:
    """The report as table rows: each metric with its definition, the email's numbers and, for
    an A/B test, each column's. "Waiting" and "Not sent" appear only when not zero."""
    sections = []
    for section in METRIC_SECTIONS:
        rows = []
        for metric in section.metrics:
            if metric.key in {"waiting", "not_sent"} and not getattr(report.totals, metric.key):
                continue
            rows.append(
                MetricRow(
                    metric=metric,
                    total=_cell(report.totals, metric),
                    columns=[_cell(column.counts, metric) for column in report.columns],
                )
            )
        sections.append(SectionRows(title=section.title, rows=rows))
    return sections


# --- the hourly chart ----------------------------------------------------------------------------

CHART_WIDTH = 720
CHART_HEIGHT = 220
CHART_TOP = 28  # room for the legend
CHART_BOTTOM = 28  # room for the hour labels
CHART_LEFT = 40  # room for the scale
CHART_RIGHT = 8
CHART_MAX_BAR = 28  # a few hours' bars stay bars, not blocks
OPEN_COLOUR = "#b9d3ef"
CLICK_COLOUR = "#0b6bcb"
GRID_COLOUR = "#dde3ea"
LABEL_COLOUR = "#6b7785"
# Hours between two labels, the smallest that leaves at most ~12 labels on the axis.
LABEL_STEPS = (1, 2, 3, 6, 12, 24)


def _nice_maximum(value: int) -> int:
    """A round top of the scale (1, 2, 5, 10, 20, 50, …) at least ``value``."""
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def _label_step(hours: int) -> int:
    for step in LABEL_STEPS:
        if hours / step <= 12:
            return step
    return LABEL_STEPS[-1]


def _hour_label(start: datetime.datetime, *, first: bool) -> str:
    if first or start.hour == 0:
        return start.strftime("%m/%d %H:00")
    return start.strftime("%H:00")


def hour_chart_svg(timeline: Sequence[HourCount]) -> SafeString:
    """Opens (light, behind) and clicks (dark, in front) per hour as an accessible inline SVG.

    Every number is an int and every text goes through format_html, so nothing a recipient sent
    reaches the markup. Colours are presentation attributes: the chart needs no stylesheet.
    Screen readers get a title, a description and one <title> per hour.
    """
    count = max(len(timeline), 1)
    plot_width = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    slot = plot_width / count
    bar = min(max(slot * 0.8, 1.5), CHART_MAX_BAR)
    top = _nice_maximum(max([max(hour.opens, hour.clicks) for hour in timeline] or [0]))
    baseline = CHART_TOP + plot_height
    step = _label_step(len(timeline))

    def height(value: int) -> float:
        return round(plot_height * value / top, 2)

    bars: list[SafeString] = []
    labels: list[SafeString] = []
    for index, hour in enumerate(timeline):
        x = CHART_LEFT + index * slot
        title = _("%(hour)s: %(opens)d opens, %(clicks)d clicks") % {
            "hour": hour.start.strftime("%Y-%m-%d %H:00"),
            "opens": hour.opens,
            "clicks": hour.clicks,
        }
        parts = [format_html("<title>{}</title>", title)]
        # A full-height transparent target: hovering anywhere over the hour shows its numbers.
        parts.append(
            format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="transparent"></rect>',
                round(x, 2),
                CHART_TOP,
                round(slot, 2),
                plot_height,
            )
        )
        if hour.opens:
            parts.append(
                format_html(
                    '<rect class="chart-opens" x="{}" y="{}" width="{}" height="{}" fill="{}">'
                    "</rect>",
                    round(x + (slot - bar) / 2, 2),
                    round(baseline - height(hour.opens), 2),
                    round(bar, 2),
                    height(hour.opens),
                    OPEN_COLOUR,
                )
            )
        if hour.clicks:
            inner = max(bar * 0.55, 1)
            parts.append(
                format_html(
                    '<rect class="chart-clicks" x="{}" y="{}" width="{}" height="{}" fill="{}">'
                    "</rect>",
                    round(x + (slot - inner) / 2, 2),
                    round(baseline - height(hour.clicks), 2),
                    round(inner, 2),
                    height(hour.clicks),
                    CLICK_COLOUR,
                )
            )
        bars.append(format_html("<g>{}</g>", SafeString("".join(parts))))
        if index % step == 0:
            labels.append(
                format_html(
                    '<line x1="{x}" x2="{x}" y1="{}" y2="{}" stroke="{}"></line>'
                    '<text x="{x}" y="{}" text-anchor="start" font-size="11" fill="{}">{}</text>',
                    baseline,
                    baseline + 4,
                    GRID_COLOUR,
                    CHART_HEIGHT - 8,
                    LABEL_COLOUR,
                    _hour_label(hour.start, first=index == 0),
                    x=round(x, 2),
                )
            )
    scale = format_html_join(
        "",
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}"></line>'
        '<text x="{}" y="{}" text-anchor="end" font-size="11" fill="{}">{}</text>',
        (
            (
                CHART_LEFT,
                CHART_WIDTH - CHART_RIGHT,
                round(baseline - plot_height * fraction, 2),
                round(baseline - plot_height * fraction, 2),
                GRID_COLOUR,
                CHART_LEFT - 6,
                round(baseline - plot_height * fraction + 4, 2),
                LABEL_COLOUR,
                value,
            )
            for fraction, value in ((0, 0), (0.5, top // 2 if top % 2 == 0 else ""), (1, top))
        ),
    )
    legend = format_html(
        '<rect x="{}" y="8" width="10" height="10" rx="2" fill="{}"></rect>'
        '<text x="{}" y="17" font-size="12" fill="{}">{}</text>'
        '<rect x="{}" y="8" width="10" height="10" rx="2" fill="{}"></rect>'
        '<text x="{}" y="17" font-size="12" fill="{}">{}</text>',
        CHART_LEFT,
        OPEN_COLOUR,
        CHART_LEFT + 15,
        LABEL_COLOUR,
        _("Opens"),
        CHART_LEFT + 110,
        CLICK_COLOUR,
        CHART_LEFT + 125,
        LABEL_COLOUR,
        _("Clicks"),
    )
    description = _(
        "%(hours)d hours from %(start)s: %(opens)d opens and %(clicks)d clicks by people."
    ) % {
        "hours": len(timeline),
        "start": timeline[0].start.strftime("%Y-%m-%d %H:00") if timeline else "",
        "opens": sum(hour.opens for hour in timeline),
        "clicks": sum(hour.clicks for hour in timeline),
    }
    return format_html(
        '<svg class="hour-chart" viewBox="0 0 {} {}" width="100%" role="img" '
        'aria-labelledby="hour-chart-title hour-chart-description" data-testid="hour-chart" '
        'font-family="inherit">'
        '<title id="hour-chart-title">{}</title><desc id="hour-chart-description">{}</desc>'
        "{}{}{}{}</svg>",
        CHART_WIDTH,
        CHART_HEIGHT,
        _("Opens and clicks per hour"),
        description,
        legend,
        scale,
        SafeString("".join(bars)),
        SafeString("".join(labels)),
    )
