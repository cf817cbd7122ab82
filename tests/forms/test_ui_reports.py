"""Reports of forms, landing pages and form handlers: numbers from the activity stream (bots and
other objects left out), the 30-day chart, the submissions list (escaped) and the CSV export
(formula-safe, UTF-8 with BOM)."""

from __future__ import annotations

import csv
import datetime
import io
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from forms import reports
from forms.models import Form, LandingPage, Submission, SubmissionKind, SubmissionStatus
from mapp.models import User
from tests.conftest import client_for
from tests.factories import ProspectFactory
from tests.forms.conftest import make_form, make_handler
from tracking.models import Activity, ActivityType, Visitor
from tracking.services import activity_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketing_client(marketer: User) -> Client:
    return client_for(marketer)


def _record(
    activity_type: str, target: Any, *, object_type: str = "form", **kwargs: Any
) -> Activity:
    return activity_record(
        type=activity_type, object_type=object_type, object_id=target.pk, **kwargs
    )


def _days_ago(activity: Activity, days: int) -> None:
    # activity_record refuses times far from now (clock skew guard); history is moved after.
    Activity.objects.filter(pk=activity.pk).update(
        occurred_at=timezone.now() - datetime.timedelta(days=days)
    )


@pytest.fixture
def form_with_traffic(db: None) -> Form:
    """Views by two visitors (one twice) and one anonymous, two successes, one error, plus
    noise the report must ignore: a bot, another form, a landing page with the same id."""
    form = make_form(name="資料請求")
    other = make_form(name="お問い合わせ")
    first, second = Visitor.objects.create(), Visitor.objects.create()
    for visitor_id in (first.pk, first.pk, second.pk, None):
        _record(ActivityType.FORM_VIEW, form, visitor_id=visitor_id)
    _record(ActivityType.FORM_SUCCESS, form, visitor_id=first.pk)
    _record(ActivityType.FORM_SUCCESS, form, visitor_id=second.pk)
    _record(ActivityType.FORM_ERROR, form, visitor_id=second.pk)
    _record(ActivityType.FORM_VIEW, form, is_bot=True)
    _record(ActivityType.FORM_SUCCESS, form, is_bot=True)
    _record(ActivityType.FORM_VIEW, other, visitor_id=first.pk)
    Activity.objects.create(
        occurred_at=timezone.now(),
        type=ActivityType.LANDING_PAGE_VIEW,
        object_type="landing_page",
        object_id=str(form.pk),
    )
    return form


def test_totals_come_from_the_activities(form_with_traffic: Form) -> None:
    totals = reports.report_totals(kind=reports.FORM_REPORT, object_id=form_with_traffic.pk)

    assert totals == reports.ReportTotals(views=4, unique_views=2, submissions=2, errors=1)
    assert totals.conversion_rate == 100.0


def test_conversion_rate_without_views_is_unknown() -> None:
    assert reports.ReportTotals(submissions=3).conversion_rate is None
    assert reports.ReportTotals(views=8, unique_views=3, submissions=1).conversion_rate == 33.3


def test_by_day_covers_30_days_with_empty_days_as_zero(form_with_traffic: Form) -> None:
    # given one view five days ago and one forty days ago (outside the window)
    five_days = _record(ActivityType.FORM_VIEW, form_with_traffic)
    _days_ago(five_days, 5)
    old = _record(ActivityType.FORM_SUCCESS, form_with_traffic)
    _days_ago(old, 40)
    today = timezone.localdate()

    days = reports.report_by_day(kind=reports.FORM_REPORT, object_id=form_with_traffic.pk)

    assert len(days) == 30
    assert days[-1].day == today
    assert days[0].day == today - datetime.timedelta(days=29)
    by_day = {day.day: day for day in days}
    assert by_day[today] == reports.DayCount(day=today, views=4, submissions=2, errors=1)
    five = today - datetime.timedelta(days=5)
    assert by_day[five] == reports.DayCount(day=five, views=1, submissions=0, errors=0)
    assert sum(day.submissions for day in days) == 2


def test_report_page_shows_the_numbers_the_chart_and_the_submissions(
    marketing_client: Client,
    form_with_traffic: Form,
    django_assert_max_num_queries: Any,
    english: None,
) -> None:
    prospect = ProspectFactory.create(email="hanako@example.co.jp")
    for index in range(60):
        Submission.objects.create(
            kind=SubmissionKind.FORM,
            form=form_with_traffic,
            raw_data={"email": f"user{index}@example.jp", "last_name": "佐藤"},
            status=SubmissionStatus.PROCESSED,
            prospect=prospect,
        )
    Submission.objects.create(
        kind=SubmissionKind.FORM,
        form=form_with_traffic,
        raw_data={"email": "bot@example.jp"},
        status=SubmissionStatus.REJECTED_BOT,
    )

    with django_assert_max_num_queries(15):
        response = marketing_client.get(f"/marketing/forms/{form_with_traffic.pk}/report/")

    assert response.status_code == 200
    page = response.content.decode()
    assert '<div class="card-value" data-testid="total-views">4</div>' in page
    assert '<div class="card-value" data-testid="total-unique-views">2</div>' in page
    assert '<div class="card-value" data-testid="total-submissions">2</div>' in page
    assert '<div class="card-value" data-testid="total-errors">1</div>' in page
    assert '<div class="card-value" data-testid="conversion-rate">100.0%</div>' in page
    assert 'role="img"' in page and "<desc" in page
    assert page.count('data-testid="submission-row"') == 50  # paginated
    assert "bot@example.jp" not in page  # rejected bots are only counted
    assert "Rejected (bot): 1" in page
    assert "hanako@example.co.jp" in page
    assert f"/marketing/forms/{form_with_traffic.pk}/submissions.csv" in page


def test_submissions_are_shown_escaped(marketing_client: Client) -> None:
    form = make_form()
    Submission.objects.create(
        kind=SubmissionKind.FORM,
        form=form,
        raw_data={
            "email": "<script>alert(1)</script>",
            "last_name": "<img src=x onerror=alert(2)>",
        },
        status=SubmissionStatus.INVALID,
        error="<b>bad</b>",
    )

    response = marketing_client.get(f"/marketing/forms/{form.pk}/report/")

    page = response.content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page
    assert "&lt;b&gt;bad&lt;/b&gt;" in page


def test_csv_export_is_formula_safe_and_opens_in_excel(
    marketing_client: Client, english: None
) -> None:
    form = make_form()
    Submission.objects.create(
        kind=SubmissionKind.FORM,
        form=form,
        raw_data={
            "email": "taro@example.jp",
            "last_name": '=HYPERLINK("http://evil.example","x")',
            "company_name": "+81 株式会社",
            "phone": "-1",
            "utm_source": "@SUM(A1)",
            "memo": "\tcmd",
        },
        status=SubmissionStatus.PROCESSED,
    )

    response = marketing_client.get(f"/marketing/forms/{form.pk}/submissions.csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith(f'attachment; filename="form-{form.pk}-')
    body = b"".join(response.streaming_content).decode("utf-8")  # type: ignore[attr-defined]
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    header, row = rows[0], rows[1]
    assert header[:4] == ["Received at", "Status", "Prospect email", "Error"]
    assert header[-1] == "Other fields"
    values = dict(zip(header, row, strict=True))
    assert values["姓"] == '\'=HYPERLINK("http://evil.example","x")'
    assert values["会社名"] == "'+81 株式会社"
    assert values["電話番号"] == "'-1"
    assert values["メールアドレス"] == "taro@example.jp"
    # Keys the form does not define are kept, neutralised as a whole cell.
    other = row[-1]
    assert "utm_source=@SUM(A1)" in other
    assert not other.startswith(("=", "+", "-", "@"))


def test_csv_neutralises_a_leading_formula_in_the_other_fields_column() -> None:
    form = make_form()
    Submission.objects.create(
        kind=SubmissionKind.FORM,
        form=form,
        raw_data={"=cmd": "x"},
        status=SubmissionStatus.PROCESSED,
    )

    lines = list(
        reports.submissions_csv_lines(
            reports.submissions_for(kind=reports.FORM_REPORT, object_id=form.pk),
            reports.csv_columns_for_form(form),
        )
    )

    row = next(csv.reader(io.StringIO(lines[1])))
    assert row[-1] == "'=cmd=x"


def test_handler_report_has_no_views(marketing_client: Client) -> None:
    handler = make_handler()
    _record(ActivityType.FORM_HANDLER_SUCCESS, handler, object_type="form_handler")
    _record(ActivityType.FORM_HANDLER_ERROR, handler, object_type="form_handler")
    _record(ActivityType.FORM_HANDLER_ERROR, handler, object_type="form_handler")
    Submission.objects.create(
        kind=SubmissionKind.FORM_HANDLER,
        handler=handler,
        raw_data={"mail": "a@example.jp", "company": "=1+1"},
        status=SubmissionStatus.PROCESSED,
    )

    response = marketing_client.get(f"/marketing/form-handlers/{handler.pk}/report/")

    page = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="total-views"' not in page
    assert '<div class="card-value" data-testid="total-submissions">1</div>' in page
    assert '<div class="card-value" data-testid="total-errors">2</div>' in page
    csv_response = marketing_client.get(f"/marketing/form-handlers/{handler.pk}/submissions.csv")
    body = b"".join(csv_response.streaming_content).decode("utf-8")  # type: ignore[attr-defined]
    assert "'=1+1" in body


def test_landing_page_report(marketing_client: Client) -> None:
    form = make_form()
    landing_page = LandingPage.objects.create(
        name="LP", slug="lp", title="LP", form=form, is_published=True
    )
    visitor = Visitor.objects.create()
    lp_kwargs = {"object_type": "landing_page"}
    _record(ActivityType.LANDING_PAGE_VIEW, landing_page, visitor_id=visitor.pk, **lp_kwargs)
    _record(ActivityType.LANDING_PAGE_VIEW, landing_page, visitor_id=visitor.pk, **lp_kwargs)
    _record(ActivityType.LANDING_PAGE_SUCCESS, landing_page, visitor_id=visitor.pk, **lp_kwargs)
    Submission.objects.create(
        kind=SubmissionKind.LANDING_PAGE,
        form=form,
        landing_page=landing_page,
        raw_data={"email": "lp@example.jp"},
        status=SubmissionStatus.PROCESSED,
    )

    response = marketing_client.get(f"/marketing/landing-pages/{landing_page.pk}/report/")

    page = response.content.decode()
    assert '<div class="card-value" data-testid="total-views">2</div>' in page
    assert '<div class="card-value" data-testid="total-unique-views">1</div>' in page
    assert '<div class="card-value" data-testid="conversion-rate">100.0%</div>' in page
    assert "lp@example.jp" in page
    assert f"/marketing/landing-pages/{landing_page.pk}/preview/" in page
    listing = marketing_client.get("/marketing/landing-pages/").content.decode()
    assert '<td data-testid="views">2</td>' in listing


def test_day_chart_is_an_accessible_svg_with_a_title_per_day(english: None) -> None:
    today = datetime.date(2025, 4, 30)
    days = [
        reports.DayCount(
            day=today - datetime.timedelta(days=offset), views=offset, submissions=1, errors=0
        )
        for offset in reversed(range(30))
    ]

    svg = str(reports.day_chart_svg(days, show_views=True))

    assert svg.startswith('<svg class="day-chart"')
    assert 'role="img"' in svg
    assert "<title>2025-04-30: 0 views, 1 submissions, 0 errors</title>" in svg
    assert svg.count("<g>") == 30
    assert "Last 30 days: 435 views, 30 submissions, 0 errors." in svg


def test_sales_users_cannot_export(sales_user: User) -> None:
    form = make_form()
    handler = make_handler()
    client = client_for(sales_user)

    assert client.get(f"/marketing/forms/{form.pk}/submissions.csv").status_code == 403
    assert client.get(f"/marketing/form-handlers/{handler.pk}/submissions.csv").status_code == 403
