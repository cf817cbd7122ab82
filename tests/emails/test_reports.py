"""List email reports (emails.reports, the report page): exact numbers and rates per email and
per A/B variant, per link and per hour, with data made by the real pipeline: a real send through
the SMTP sink, opens and clicks stored by the tracking ingest (human, Apple MPP machine opens,
scanner clicks), an unsubscribe through the unsubscribe service. Also: division by zero, access,
and escaping of hostile URLs."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import include, path
from django.utils import timezone

from emails import sending
from emails.models import (
    BounceKind,
    ListEmail,
    ListEmailStatus,
    ListEmailVariant,
    Recipient,
    RecipientStatus,
    SendingDomain,
)
from emails.reports import (
    Counts,
    HourCount,
    LinkRow,
    Rate,
    hour_chart_svg,
    list_email_report,
    report_rows,
)
from emails.services import list_email_create, list_email_schedule
from emails.smtp_sink import SmtpSink
from emails.unsubscribe import UnsubscribeToken, prospect_unsubscribe
from mapp.models import AccountSettings, User
from prospects.models import ListMembership, Prospect, ProspectList
from tests.conftest import client_for
from tests.factories import ProspectFactory
from tracking import ingest
from tracking.models import ActivityType
from tracking.services import activity_record

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

# The report's URLs are not in mapp.urls yet: the tests mount them beside the app's.
urlpatterns = [
    path("", include("emails.urls_reports")),
    path("", include("mapp.urls")),
]

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
APPLE_MPP = "Mozilla/5.0"  # Apple's privacy proxy: a machine open
SCANNER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) BingPreview/1.0b"
SEMINAR_URL = "https://example.co.jp/seminar?a=1&b=2"
SEMINAR_B_URL = "https://example.co.jp/seminar-b"
PRICE_URL = "https://example.co.jp/price"

HTML = """<html><body><p>{{ prospect.last_name }} 様</p>
<a href="https://example.co.jp/seminar?a=1&amp;b=2">セミナー</a>
<a href="https://example.co.jp/price">価格</a>
<p>{{ account.name }} {{ account.postal_address }}</p>
<a href="{{ unsubscribe_url }}">配信停止</a></body></html>"""


@pytest.fixture(autouse=True)
def report_urls(settings: Any) -> None:
    settings.ROOT_URLCONF = __name__


def report_url(list_email: ListEmail) -> str:
    return f"/marketing/emails/{list_email.pk}/report/"


def sent_list_email(
    domain: SendingDomain, prospects: list[Prospect], *, skip: list[Prospect] | None = None
) -> ListEmail:
    """A list email sent to ``prospects`` by the real pipeline; ``skip`` become unmailable
    between the snapshot and the send (their rows end "skipped")."""
    prospect_list = ProspectList.objects.create(name="展示会 2025 来場者")
    ListMembership.objects.bulk_create(
        ListMembership(prospect_list=prospect_list, prospect=prospect) for prospect in prospects
    )
    list_email = list_email_create(
        actor=None,
        name="11月セミナー",
        recipient_lists=[prospect_list],
        sending_domain=domain,
        subject="セミナーのご案内",
        html=HTML,
        sender_type="custom",
        sender_name="マップ ニュース",
        sender_address="news@mail.example.jp",
    )
    list_email_schedule(list_email=list_email)
    assert sending.list_email_start(list_email_id=list_email.pk)
    if skip:
        Prospect.objects.filter(pk__in=[prospect.pk for prospect in skip]).update(do_not_email=True)
    while sending.list_email_send_batch(list_email_id=list_email.pk).claimed:
        pass
    sending.list_email_finish_if_done(list_email_id=list_email.pk)
    list_email.refresh_from_db()
    assert list_email.status == ListEmailStatus.SENT
    return list_email


def micros(moment: datetime.datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def store_open(
    list_email: ListEmail,
    prospect: Prospect,
    at: datetime.datetime,
    *,
    sent_at: datetime.datetime,
    user_agent: str = CHROME,
) -> None:
    """An open pixel hit, stored by the tracking ingest as the drain would."""
    hit = ingest.open_hit(
        prospect_id=prospect.pk,
        email_id=list_email.tracking_id,
        sent_at=sent_at,
        user_agent=user_agent,
        ip="203.0.113.7",
    )
    hit["t"] = micros(at)
    assert ingest.hits_store([hit]) == 1


def store_click(
    list_email: ListEmail,
    prospect: Prospect,
    at: datetime.datetime,
    *,
    url: str,
    link_id: str,
    sent_at: datetime.datetime,
    user_agent: str = CHROME,
) -> None:
    """A click on a tracked link, stored by the tracking ingest as the drain would."""
    import uuid

    hit = ingest.click_hit(
        prospect_id=prospect.pk,
        email_id=list_email.tracking_id,
        url=url,
        link_id=link_id,
        sent_at=sent_at,
        visitor_uuid=uuid.uuid4(),
        user_agent=user_agent,
        ip="203.0.113.7",
    )
    hit["t"] = micros(at)
    assert ingest.hits_store([hit]) == 1


@dataclass
class Scenario:
    list_email: ListEmail
    prospects: list[Prospect]
    variant_a: ListEmailVariant
    variant_b: ListEmailVariant
    first_hour: datetime.datetime  # the local hour sending started in
    report_now: datetime.datetime


def build_scenario(domain: SendingDomain) -> Scenario:
    """Ten prospects: p0–p3 get variant A, p4–p7 variant B (the winner), p8–p9 none; p9 is
    skipped at send time. p3 hard-bounces, p7 soft-bounces, p6 complains, p2 unsubscribes.

    Opens and clicks (T = the hour sending started, in Tokyo):
      p0 (A): opens T+0:30, T+1:10; clicks link 1 at T+1:15 and T+2:05
      p1 (A): machine open T+0:20 (Apple MPP); clicks link 2 at T+3:10 (an opener by its click)
      p2 (A): open T+0:40
      p4 (B): open T+0:50; clicks B's link 1 at T+1:05; a scanner clicks link 2 at T+0:15
      p5 (B): machine opens T+0:25, T+0:35
      p6 (B): open T+2:20
      p8 (rest): open T+5:30
    """
    prospects = ProspectFactory.create_batch(10)
    list_email = sent_list_email(domain, prospects, skip=[prospects[9]])
    first_hour = timezone.localtime().replace(minute=0, second=0, microsecond=0)
    first_hour -= datetime.timedelta(hours=6)
    sent_at = first_hour + datetime.timedelta(minutes=10)
    ListEmail.objects.filter(pk=list_email.pk).update(started_at=sent_at)
    Recipient.objects.filter(list_email=list_email).update(sent_at=sent_at)

    # A/B assignment and bounce feedback as their writers record them on the recipient rows.
    variant_a = ListEmailVariant.objects.create(list_email=list_email, letter="A")
    variant_b = ListEmailVariant.objects.create(
        list_email=list_email, letter="B", subject="【B案】セミナーのご案内"
    )
    ListEmail.objects.filter(pk=list_email.pk).update(
        ab_test_percent=80, ab_winner=variant_b, ab_decided_at=sent_at
    )

    def rows(*indexes: int) -> Any:
        return Recipient.objects.filter(
            list_email=list_email, prospect_id__in=[prospects[index].pk for index in indexes]
        )

    rows(0, 1, 2, 3).update(variant=variant_a)
    rows(4, 5, 6, 7).update(variant=variant_b)
    rows(3).update(bounced_at=sent_at, bounce_kind=BounceKind.HARD, bounce_reason="5.1.1")
    rows(7).update(bounced_at=sent_at, bounce_kind=BounceKind.SOFT, bounce_reason="4.2.2")
    rows(6).update(complained_at=sent_at + datetime.timedelta(hours=3))

    def at(hours: int, minutes: int) -> datetime.datetime:
        return first_hour + datetime.timedelta(hours=hours, minutes=minutes)

    p = prospects
    store_open(list_email, p[0], at(0, 30), sent_at=sent_at)
    store_open(list_email, p[0], at(1, 10), sent_at=sent_at)
    store_click(list_email, p[0], at(1, 15), url=SEMINAR_URL, link_id="1", sent_at=sent_at)
    store_click(list_email, p[0], at(2, 5), url=SEMINAR_URL, link_id="1", sent_at=sent_at)
    store_open(list_email, p[1], at(0, 20), sent_at=sent_at, user_agent=APPLE_MPP)
    store_click(list_email, p[1], at(3, 10), url=PRICE_URL, link_id="2", sent_at=sent_at)
    store_open(list_email, p[2], at(0, 40), sent_at=sent_at)
    store_open(list_email, p[4], at(0, 50), sent_at=sent_at)
    store_click(list_email, p[4], at(1, 5), url=SEMINAR_B_URL, link_id="1", sent_at=sent_at)
    store_click(
        list_email,
        p[4],
        at(0, 15),
        url=PRICE_URL,
        link_id="2",
        sent_at=sent_at,
        user_agent=SCANNER,
    )
    store_open(list_email, p[5], at(0, 25), sent_at=sent_at, user_agent=APPLE_MPP)
    store_open(list_email, p[5], at(0, 35), sent_at=sent_at, user_agent=APPLE_MPP)
    store_open(list_email, p[6], at(2, 20), sent_at=sent_at)
    store_open(list_email, p[8], at(5, 30), sent_at=sent_at)
    assert prospect_unsubscribe(
        token=UnsubscribeToken(prospect_id=p[2].pk, list_email_id=list_email.pk),
        one_click=False,
    )
    list_email.refresh_from_db()
    return Scenario(
        list_email=list_email,
        prospects=prospects,
        variant_a=variant_a,
        variant_b=variant_b,
        first_hour=first_hour,
        report_now=first_hour + datetime.timedelta(hours=6, minutes=1),
    )


@pytest.fixture
def scenario(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> Scenario:
    return build_scenario(verified_domain)


def numbers(counts: Counts) -> dict[str, Any]:
    return {
        "recipients": counts.recipients,
        "sent": counts.sent,
        "delivered": counts.delivered,
        "hard": counts.hard_bounces,
        "soft": counts.soft_bounces,
        "complaints": counts.complaints,
        "not_sent": counts.not_sent,
        "waiting": counts.waiting,
        "unique_opens": counts.unique_opens,
        "total_opens": counts.total_opens,
        "machine_openers": counts.machine_openers,
        "machine_opens": counts.machine_opens,
        "clickers": counts.clickers,
        "clicks": counts.clicks,
        "bot_clicks": counts.bot_clicks,
        "unsubscribes": counts.unsubscribes,
    }


def rates(counts: Counts) -> dict[str, str]:
    return {
        "delivery": str(counts.delivery_rate),
        "hard": str(counts.hard_bounce_rate),
        "soft": str(counts.soft_bounce_rate),
        "open": str(counts.open_rate),
        "click": str(counts.click_rate),
        "click_to_open": str(counts.click_to_open_rate),
        "unsubscribe": str(counts.unsubscribe_rate),
        "complaint": str(counts.complaint_rate),
    }


def test_the_email_totals_count_people_opens_and_clicks_as_account_engagement_does(
    scenario: Scenario,
) -> None:
    report = list_email_report(scenario.list_email, now=scenario.report_now)

    assert numbers(report.totals) == {
        "recipients": 10,
        "sent": 9,  # p9 was skipped at send time
        "delivered": 7,  # minus p3's hard and p7's soft bounce
        "hard": 1,
        "soft": 1,
        "complaints": 1,
        "not_sent": 1,
        "waiting": 0,
        # p0, p2, p4, p6, p8 loaded the pixel; p1 only clicked (its pixel load was Apple's)
        "unique_opens": 6,
        "total_opens": 7,  # six human pixel loads + one open inferred from p1's click
        "machine_openers": 2,
        "machine_opens": 3,
        "clickers": 3,
        "clicks": 4,
        "bot_clicks": 1,
        "unsubscribes": 1,
    }
    assert rates(report.totals) == {
        "delivery": "77.8%",  # 7 / 9
        "hard": "11.1%",
        "soft": "11.1%",
        "open": "85.7%",  # 6 / 7
        "click": "42.9%",  # 3 / 7
        "click_to_open": "50.0%",  # 3 / 6
        "unsubscribe": "14.3%",
        "complaint": "14.3%",
    }


def test_each_variant_counts_its_own_recipients_and_the_winner_is_marked(
    scenario: Scenario,
) -> None:
    report = list_email_report(scenario.list_email, now=scenario.report_now)

    assert report.is_ab_test
    assert [(column.label, column.is_winner) for column in report.columns] == [
        ("Variant A", False),
        ("Variant B", True),
        ("Rest of the list", False),
    ]
    variant_a, variant_b, rest = (column.counts for column in report.columns)
    assert numbers(variant_a) == {
        "recipients": 4,
        "sent": 4,
        "delivered": 3,
        "hard": 1,
        "soft": 0,
        "complaints": 0,
        "not_sent": 0,
        "waiting": 0,
        "unique_opens": 3,
        "total_opens": 4,
        "machine_openers": 1,
        "machine_opens": 1,
        "clickers": 2,
        "clicks": 3,
        "bot_clicks": 0,
        "unsubscribes": 1,
    }
    assert rates(variant_a) == {
        "delivery": "75.0%",
        "hard": "25.0%",
        "soft": "0.0%",
        "open": "100.0%",
        "click": "66.7%",
        "click_to_open": "66.7%",
        "unsubscribe": "33.3%",
        "complaint": "0.0%",
    }
    assert numbers(variant_b) == {
        "recipients": 4,
        "sent": 4,
        "delivered": 3,
        "hard": 0,
        "soft": 1,
        "complaints": 1,
        "not_sent": 0,
        "waiting": 0,
        "unique_opens": 2,
        "total_opens": 2,
        "machine_openers": 1,
        "machine_opens": 2,
        "clickers": 1,
        "clicks": 1,
        "bot_clicks": 1,
        "unsubscribes": 0,
    }
    assert rates(variant_b)["open"] == "66.7%"
    assert rates(variant_b)["click_to_open"] == "50.0%"
    assert rates(variant_b)["complaint"] == "33.3%"
    assert (rest.recipients, rest.sent, rest.not_sent, rest.delivered, rest.unique_opens) == (
        2,
        1,
        1,
        1,
        1,
    )
    # The columns add up to the email's totals.
    assert numbers(variant_a + variant_b + rest) == numbers(report.totals)


def test_links_are_counted_per_variant_with_bot_clicks_apart(scenario: Scenario) -> None:
    report = list_email_report(scenario.list_email, now=scenario.report_now)

    assert report.links == [
        LinkRow("1", SEMINAR_URL, clicks=2, clickers=1, bot_clicks=0, variant_label="Variant A"),
        LinkRow("2", PRICE_URL, clicks=1, clickers=1, bot_clicks=0, variant_label="Variant A"),
        LinkRow("1", SEMINAR_B_URL, clicks=1, clickers=1, bot_clicks=0, variant_label="Variant B"),
        LinkRow("2", PRICE_URL, clicks=0, clickers=0, bot_clicks=1, variant_label="Variant B"),
    ]


def test_the_timeline_has_one_bucket_per_hour_since_sending_started(scenario: Scenario) -> None:
    report = list_email_report(scenario.list_email, now=scenario.report_now)

    assert [(hour.opens, hour.clicks) for hour in report.timeline] == [
        (3, 0),  # p0, p2, p4 (Apple's loads and the scanner's click left out)
        (1, 2),
        (1, 1),
        (0, 1),
        (0, 0),
        (1, 0),
        (0, 0),
    ]
    assert [hour.start for hour in report.timeline] == [
        scenario.first_hour + datetime.timedelta(hours=offset) for offset in range(7)
    ]
    assert all(hour.start.tzinfo is not None for hour in report.timeline)
    assert report.outside_chart == 0


def test_the_timeline_stops_after_a_week_and_says_what_it_leaves_out(
    scenario: Scenario,
) -> None:
    # given a send that started eight days ago (its activities are where the scenario put them)
    list_email = scenario.list_email
    list_email.started_at = scenario.first_hour - datetime.timedelta(days=8)
    # when
    report = list_email_report(list_email, now=scenario.report_now)
    # then the chart covers the first 168 hours, and the opens and clicks after them are counted
    assert len(report.timeline) == 168
    assert sum(hour.opens + hour.clicks for hour in report.timeline) == 0
    assert report.outside_chart == 10  # 6 opens + 4 clicks
    assert report.totals.unique_opens == 6


def test_the_report_takes_the_same_few_queries_however_many_recipients(
    scenario: Scenario, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(5):
        list_email_report(scenario.list_email, now=scenario.report_now)


def test_another_emails_activity_is_not_counted(
    scenario: Scenario, verified_domain: SendingDomain
) -> None:
    # given another send to one of the same prospects, opened and clicked
    other = sent_list_email(verified_domain, [ProspectFactory.create()])
    prospect = scenario.prospects[0]
    sent_at = scenario.first_hour + datetime.timedelta(minutes=10)
    store_open(other, prospect, scenario.first_hour + datetime.timedelta(hours=1), sent_at=sent_at)
    store_click(
        other,
        prospect,
        scenario.first_hour + datetime.timedelta(hours=1, minutes=5),
        url=SEMINAR_URL,
        link_id="1",
        sent_at=sent_at,
    )
    # when
    report = list_email_report(scenario.list_email, now=scenario.report_now)
    # then the first email's numbers are unchanged
    assert (report.totals.total_opens, report.totals.clicks) == (7, 4)
    assert report.links[0].clicks == 2


def test_nothing_to_divide_by_shows_a_dash_not_an_error(
    verified_domain: SendingDomain, english: None, marketer: User
) -> None:
    # given a draft with no recipients
    draft = list_email_create(
        actor=None, name="下書き", sending_domain=verified_domain, subject="件名", html="<p>x</p>"
    )
    report = list_email_report(draft)
    assert rates(report.totals) == dict.fromkeys(rates(report.totals), "—")
    assert report.timeline == [] and report.links == []
    # and its page says so
    response = client_for(marketer).get(report_url(draft))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="not-sent-yet"' in html
    assert re.search(r'data-testid="open-rate-value">—<', html)
    assert 'data-testid="hour-chart"' not in html


def test_a_send_that_all_bounced_has_no_open_rate(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    list_email = sent_list_email(verified_domain, ProspectFactory.create_batch(2))
    Recipient.objects.filter(list_email=list_email).update(
        bounced_at=timezone.now(), bounce_kind=BounceKind.HARD
    )
    report = list_email_report(list_email)
    assert (report.totals.sent, report.totals.delivered) == (2, 0)
    assert str(report.totals.delivery_rate) == "0.0%"
    assert str(report.totals.hard_bounce_rate) == "100.0%"
    assert str(report.totals.open_rate) == "—"
    assert str(report.totals.click_to_open_rate) == "—"


def test_a_row_refused_at_send_time_and_recorded_as_a_bounce_counts_as_sent_and_bounced(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    # given three rows: one sent, one refused with a 5xx that feedback recorded as a hard
    # bounce, one refused with nothing recorded (4xx retries exhausted)
    list_email = sent_list_email(verified_domain, ProspectFactory.create_batch(3))
    rows = list(Recipient.objects.filter(list_email=list_email).order_by("id"))
    Recipient.objects.filter(pk=rows[1].pk).update(
        status=RecipientStatus.FAILED,
        error="550 5.1.1 no such user",
        bounced_at=timezone.now(),
        bounce_kind=BounceKind.HARD,
    )
    Recipient.objects.filter(pk=rows[2].pk).update(
        status=RecipientStatus.FAILED, error="451 try again later"
    )
    # when
    totals = list_email_report(list_email).totals
    # then
    assert (totals.sent, totals.hard_bounces, totals.delivered, totals.not_sent) == (2, 1, 1, 1)


def test_recipients_waiting_for_the_winner_are_reported_as_waiting(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    list_email = sent_list_email(verified_domain, ProspectFactory.create_batch(3))
    variant = ListEmailVariant.objects.create(list_email=list_email, letter="A")
    recipients = list(Recipient.objects.filter(list_email=list_email).order_by("id"))
    Recipient.objects.filter(pk=recipients[0].pk).update(variant=variant)
    Recipient.objects.filter(pk__in=[row.pk for row in recipients[1:]]).update(
        status=RecipientStatus.HELD, sent_at=None
    )
    report = list_email_report(list_email)
    assert [
        (column.label, column.counts.sent, column.counts.waiting) for column in report.columns
    ] == [
        ("Variant A", 1, 0),
        ("Rest of the list", 0, 2),
    ]
    keys = [row.metric.key for section in report_rows(report) for row in section.rows]
    assert "waiting" in keys and "not_sent" not in keys


def test_rate_and_the_chart_with_nothing_to_show() -> None:
    assert str(Rate(0, 0)) == "—"
    assert Rate(1, 3).percent == pytest.approx(33.333, rel=1e-3)
    svg = str(hour_chart_svg([]))
    assert svg.startswith("<svg") and "<title" in svg and "<desc" in svg


def test_the_chart_is_accessible_svg_with_one_bar_group_per_hour(english: None) -> None:
    start = timezone.localtime().replace(minute=0, second=0, microsecond=0)
    timeline = [
        HourCount(start=start + datetime.timedelta(hours=offset), opens=opens, clicks=clicks)
        for offset, (opens, clicks) in enumerate([(4, 1), (0, 0), (2, 2)])
    ]
    svg = str(hour_chart_svg(timeline))
    assert 'role="img"' in svg
    assert 'aria-labelledby="hour-chart-title hour-chart-description"' in svg
    assert "3 hours from" in svg and "6 opens and 3 clicks by people" in svg
    assert svg.count("<g>") == 3
    assert svg.count('class="chart-opens"') == 2
    assert svg.count('class="chart-clicks"') == 2
    assert f"{start:%Y-%m-%d %H}:00: 4 opens, 1 clicks" in svg


# --- the page ----------------------------------------------------------------------------------


def test_the_report_page_shows_each_number_with_its_definition(
    scenario: Scenario, marketer: User, english: None
) -> None:
    response = client_for(marketer).get(report_url(scenario.list_email))
    assert response.status_code == 200
    html = response.content.decode()
    # headline rates
    assert re.search(r'data-testid="open-rate-value">85.7%<', html)
    assert re.search(r'data-testid="click-to-open-rate-value">50.0%<', html)
    # the A/B table: one column per variant, the winner marked, a definition on every row
    table = html[
        html.index('data-testid="ab-table"') : html.index("</table>", html.index("ab-table"))
    ]
    assert table.count('data-testid="ab-column"') == 3
    assert table.count('data-testid="winner"') == 1
    assert table.index("Variant B") < table.index('data-testid="winner"')
    assert "【B案】セミナーのご案内" in table
    assert "Someone who clicked a link counts as having opened it" in table
    unique_opens_row = re.search(r'data-testid="ab-row-unique_opens">(.*?)</tr>', table, re.S)
    assert unique_opens_row is not None
    cells = re.findall(r'data-testid="cell-count">([^<]*)<', unique_opens_row.group(1))
    cell_rates = re.findall(r'data-testid="cell-rate">([^<]*)<', unique_opens_row.group(1))
    assert cells == ["3", "2", "1", "6"]
    assert cell_rates == ["100.0%", "66.7%", "100.0%", "85.7%"]
    # the chart and the links
    assert 'data-testid="hour-chart"' in html
    assert html.count('data-testid="link-row"') == 4
    assert "https://example.co.jp/seminar?a=1&amp;b=2" in html


def test_an_email_without_variants_gets_the_plain_table(
    smtp_sink: SmtpSink,
    verified_domain: SendingDomain,
    account_identity: AccountSettings,
    marketer: User,
    english: None,
) -> None:
    list_email = sent_list_email(verified_domain, ProspectFactory.create_batch(2))
    response = client_for(marketer).get(report_url(list_email))
    html = response.content.decode()
    assert 'data-testid="metrics"' in html and 'data-testid="ab-table"' not in html
    sent_row = re.search(r'data-testid="row-sent">(.*?)</tr>', html, re.S)
    assert sent_row is not None and 'data-testid="number">2<' in sent_row.group(1)
    assert "Messages accepted by the receiving mail server" in sent_row.group(1)


def test_hostile_urls_are_escaped_and_never_made_links(scenario: Scenario, marketer: User) -> None:
    # given a click on a link whose URL carries markup, and an activity (from any writer) with a
    # script URL
    hostile = 'https://example.co.jp/?q="><script>alert(1)</script>'
    store_click(
        scenario.list_email,
        scenario.prospects[8],
        scenario.first_hour + datetime.timedelta(hours=5, minutes=40),
        url=hostile,
        link_id="3",
        sent_at=scenario.first_hour,
    )
    activity_record(
        type=ActivityType.EMAIL_CLICKED,
        prospect_id=scenario.prospects[8].pk,
        object_type="link",
        object_id="4",
        object_label="javascript:alert(document.cookie)",
        payload={"email_id": scenario.list_email.tracking_id},
        occurred_at=scenario.first_hour + datetime.timedelta(hours=5, minutes=45),
    )
    # when
    html = client_for(marketer).get(report_url(scenario.list_email)).content.decode()
    # then
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="https://example.co.jp/?q=&quot;&gt;&lt;script&gt;' in html
    assert "javascript:alert(document.cookie)" in html
    assert 'href="javascript:' not in html


def test_the_report_needs_marketing_access(
    scenario: Scenario, sales_user: User, marketer: User, client: Client
) -> None:
    url = report_url(scenario.list_email)
    assert client_for(sales_user).get(url).status_code == 403
    assert client.get(url).status_code == 302  # signed out: to the login page
    assert client_for(marketer).get(url).status_code == 200
    assert client_for(marketer).post(url).status_code in {403, 405}
    assert client_for(marketer).get("/marketing/emails/999999/report/").status_code == 404
