"""HOT threshold advisor: conversion by score band, the recommended threshold, the report page."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from mapp.models import Role, User
from prospects.models import ListMembership, Prospect, ProspectList
from scoring.advisor import (
    MIN_HOT_PROSPECTS,
    NoRecommendation,
    ScoreBand,
    advisor_report,
    recommend_threshold,
)
from scoring.models import HotRule
from scoring.views_advisor import report_chart
from tests.conftest import client_for
from tests.factories import make_user

_numbers = itertools.count()

# (score, converted?) counts per band, width 10. Base rate 20/100 = 20 %.
#   band   prospects converted  rate    prospects ≥ T  converted ≥ T  rate ≥ T  lift
#   0–9        40        2       5 %        100            20           20 %    1.0
#   10–19      30        3      10 %         60            18           30 %    1.5
#   20–29      20        6      30 %         30            15           50 %    2.5  ← lowest ≥ 2×
#   30–39       6        5      83 %         10             9           90 %    4.5
#   40–49       4        4     100 %          4             4          100 %    5.0  (< 10)
KNOWN_BANDS: list[tuple[int, int, int]] = [
    # (score, prospects, converted)
    (5, 40, 2),
    (15, 30, 3),
    (22, 10, 2),
    (27, 10, 4),
    (35, 6, 5),
    (45, 4, 4),
]


def _prospects(rows: list[tuple[int, int, int]], **fields: Any) -> list[Prospect]:
    """Prospects with the given scores; the first ``converted`` of each row are flagged."""
    made: list[tuple[Prospect, bool]] = []
    for score, count, converted in rows:
        for index in range(count):
            number = next(_numbers)
            made.append(
                (
                    Prospect(
                        email=f"yamada{number}@test.co.jp",
                        last_name="山田",
                        first_name=f"太郎{number}",
                        company_name="株式会社テスト",
                        score=score,
                        **fields,
                    ),
                    index < converted,
                )
            )
    Prospect.objects.bulk_create([prospect for prospect, _ in made])
    won, _ = ProspectList.objects.get_or_create(name="受注済み")
    ListMembership.objects.bulk_create(
        [
            ListMembership(prospect_list=won, prospect=prospect)
            for prospect, is_converted in made
            if is_converted
        ]
    )
    return [prospect for prospect, _ in made]


def _hot_rule(**fields: Any) -> HotRule:
    """The account's HOT rule (the migration seeds one row) with ``fields`` set."""
    rule = HotRule.objects.order_by("pk").first() or HotRule.objects.create()
    for name, value in fields.items():
        setattr(rule, name, value)
    rule.save()
    return rule


def _won_criteria() -> dict[str, Any]:
    won, _ = ProspectList.objects.get_or_create(name="受注済み")
    return {
        "match": "all",
        "conditions": [{"subject": "list", "operator": "member_of", "value": won.pk}],
    }


# --- the rule, on bands alone ----------------------------------------------------------------


def test_the_lowest_edge_converting_twice_the_average_is_recommended() -> None:
    bands = [
        ScoreBand(start=0, end=10, total=40, converted=2),
        ScoreBand(start=10, end=20, total=30, converted=3),
        ScoreBand(start=20, end=30, total=20, converted=6),
        ScoreBand(start=30, end=40, total=6, converted=5),
        ScoreBand(start=40, end=50, total=4, converted=4),
    ]
    assert recommend_threshold(bands) == (20, None)


def test_a_band_converting_below_average_is_not_made_hot_by_the_bands_above_it() -> None:
    # ≥10 converts at 10/30 = 33 % (2.7× the 12.5 % average) only thanks to the 20s: the
    # 10s themselves never convert, so the recommendation stays at 20.
    bands = [
        ScoreBand(start=0, end=10, total=50, converted=0),
        ScoreBand(start=10, end=20, total=10, converted=0),
        ScoreBand(start=20, end=30, total=20, converted=10),
    ]
    assert recommend_threshold(bands) == (20, None)


def test_too_few_prospects_above_an_edge_is_chance_not_a_rate() -> None:
    # The top band converts 100 % but has fewer than MIN_HOT_PROSPECTS prospects.
    bands = [
        ScoreBand(start=0, end=10, total=100, converted=10),
        ScoreBand(start=50, end=60, total=MIN_HOT_PROSPECTS - 1, converted=MIN_HOT_PROSPECTS - 1),
    ]
    assert recommend_threshold(bands) == (None, NoRecommendation.NO_SEPARATION)


@pytest.mark.parametrize(
    ("bands", "reason"),
    [
        ([], NoRecommendation.NO_PROSPECTS),
        ([ScoreBand(start=0, end=10, total=30, converted=0)], NoRecommendation.NO_CONVERTED),
        ([ScoreBand(start=0, end=10, total=30, converted=30)], NoRecommendation.ALL_CONVERTED),
        # Flat: every band converts at the average, nothing doubles it.
        (
            [
                ScoreBand(start=0, end=10, total=50, converted=10),
                ScoreBand(start=10, end=20, total=50, converted=10),
            ],
            NoRecommendation.NO_SEPARATION,
        ),
    ],
)
def test_no_recommendation_says_why(bands: list[ScoreBand], reason: NoRecommendation) -> None:
    assert recommend_threshold(bands) == (None, reason)


# --- the report, from the database -----------------------------------------------------------


def test_report_numbers_per_band_and_per_candidate_threshold(marketer: User) -> None:
    # given the known data set and a HOT rule at 25 (not a band edge)
    _prospects(KNOWN_BANDS)
    _hot_rule(threshold=25)
    won = _won_criteria()

    # when the advisor runs with "member of 受注済み" as the conversion
    with CaptureQueriesContext(connection) as queries:
        report = advisor_report(user=marketer, target=won, band_width=10)

    # then the bands, the totals and each candidate are exact
    assert [(band.start, band.total, band.converted) for band in report.bands] == [
        (0, 40, 2),
        (10, 30, 3),
        (20, 20, 6),
        (30, 6, 5),
        (40, 4, 4),
    ]
    assert (report.total, report.converted, report.base_rate) == (100, 20, 0.2)
    by_threshold = {candidate.threshold: candidate for candidate in report.candidates}
    assert [candidate.threshold for candidate in report.candidates] == [0, 10, 20, 25, 30, 40]
    twenty = by_threshold[20]
    assert (twenty.prospects, twenty.converted) == (30, 15)
    assert twenty.rate == pytest.approx(0.5)
    assert twenty.captured == pytest.approx(0.75)
    assert twenty.lift == pytest.approx(2.5)
    assert twenty.band_rate == pytest.approx(0.3)
    assert by_threshold[10].lift == pytest.approx(1.5)
    # and the recommendation is 20, the current rule (25) counted exactly, not by band
    assert report.recommended is not None and report.recommended.threshold == 20
    assert [c.threshold for c in report.candidates if c.is_recommended] == [20]
    assert (report.current.prospects, report.current.converted) == (20, 13)
    assert by_threshold[25].is_current and by_threshold[25].band_rate is None
    # from one grouped query over the prospects (the others read the HOT rule and check that
    # the list in the criteria exists), whatever the number of prospects
    on_prospects = [
        query["sql"]
        for query in queries.captured_queries
        if 'FROM "prospects_prospect"' in query["sql"]
    ]
    assert len(on_prospects) == 1 and "GROUP BY" in on_prospects[0]
    assert len(queries.captured_queries) == 3


def test_negative_scores_fall_in_their_own_bands_below_zero(marketer: User) -> None:
    _prospects([(-11, 1, 0), (-10, 2, 1), (-1, 3, 0), (0, 4, 1), (9, 5, 0)])

    report = advisor_report(user=marketer, target=_won_criteria(), band_width=10)

    assert [(band.start, band.end, band.total, band.converted) for band in report.bands] == [
        (-20, -10, 1, 0),
        (-10, 0, 5, 1),
        (0, 10, 9, 1),
    ]


def test_population_narrows_the_prospects_analysed(marketer: User) -> None:
    _prospects([(5, 10, 1)], industry="製造業")
    _prospects([(5, 10, 9)], industry="情報通信業")
    population = {
        "match": "all",
        "conditions": [
            {"subject": "field", "field": "industry", "operator": "equals", "value": "製造業"}
        ],
    }

    report = advisor_report(user=marketer, target=_won_criteria(), population=population)

    assert (report.total, report.converted) == (10, 1)


def test_hot_rule_further_criteria_show_how_many_would_really_be_hot(marketer: User) -> None:
    _prospects([(50, 10, 5)], industry="製造業")
    _prospects([(50, 10, 5)], industry="小売業")
    rule = _hot_rule(
        threshold=50,
        criteria={
            "match": "all",
            "conditions": [
                {"subject": "field", "field": "industry", "operator": "equals", "value": "製造業"}
            ],
        },
    )

    report = advisor_report(user=marketer, target=_won_criteria(), hot_rule=rule)

    assert report.hot_rule_has_criteria
    (candidate,) = report.candidates
    assert (candidate.threshold, candidate.prospects, candidate.would_be_hot) == (50, 20, 10)
    assert report.current.would_be_hot == 10


# --- the page --------------------------------------------------------------------------------


def _get(user: User, **params: Any) -> Any:
    query = {
        key: json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value
        for key, value in params.items()
    }
    return client_for(user).get(reverse("advisor:report"), query)


def test_page_shows_recommendation_current_rule_and_chart(marketer: User, english: None) -> None:
    _prospects(KNOWN_BANDS)
    _hot_rule(threshold=25)

    response = _get(marketer, target=_won_criteria(), band_width="10")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Recommended HOT threshold: 20 points." in html
    assert 'data-threshold="20" data-recommended="true"' in html
    assert 'data-threshold="25" data-current="true"' in html
    assert "Current HOT threshold: 25 points." in html
    assert f'href="{reverse("hot:settings")}"' in html
    assert 'data-testid="advisor-chart"' in html and html.count("<rect ") == 5
    # the rule is explained in plain words
    assert "convert at least 2 times as often as the average" in html


def test_page_in_japanese_by_default(marketer: User) -> None:
    _prospects(KNOWN_BANDS)

    response = _get(marketer, target=_won_criteria())

    assert response.status_code == 200
    assert 'data-testid="advisor-report"' in response.content.decode()
    assert response.context["report"].recommended.threshold == 20


def test_first_visit_shows_only_the_form(marketer: User) -> None:
    response = _get(marketer)

    assert response.status_code == 200
    assert response.context["report"] is None
    assert not response.context["form"].errors


@pytest.mark.parametrize(
    "target",
    ["{not json", json.dumps({"match": "all", "conditions": [{"subject": "nope"}]}), "[]"],
)
def test_invalid_criteria_give_a_message_not_an_error_page(
    marketer: User, english: None, target: str
) -> None:
    response = client_for(marketer).get(reverse("advisor:report"), {"target": target})

    assert response.status_code == 200
    assert response.context["report"] is None
    assert "These criteria are not valid" in response.content.decode()


def test_empty_target_asks_for_a_condition(marketer: User, english: None) -> None:
    response = _get(marketer, target={"match": "all", "conditions": []})

    assert response.status_code == 200
    assert "Add at least one condition" in response.content.decode()


@pytest.mark.parametrize("band_width", ["0", "1001", "abc"])
def test_band_width_out_of_bounds_is_a_form_error(marketer: User, band_width: str) -> None:
    response = _get(marketer, target=_won_criteria(), band_width=band_width)

    assert response.status_code == 200
    assert response.context["report"] is None
    assert "band_width" in response.context["form"].errors


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "No prospects match the report's filters."),
        ([(10, 5, 0)], "None of these prospects has converted yet"),
        ([(10, 5, 5)], "Every one of these prospects has converted"),
    ],
)
def test_page_explains_when_there_is_nothing_to_recommend(
    marketer: User, english: None, rows: list[tuple[int, int, int]], message: str
) -> None:
    _prospects(rows)
    # the list must exist for the criteria to validate
    response = _get(marketer, target=_won_criteria())

    html = response.content.decode()
    assert response.status_code == 200
    assert message in html
    assert "No threshold to recommend yet." in html


def test_sales_users_have_no_reports(sales_user: User) -> None:
    assert _get(sales_user).status_code == 403


def test_sales_manager_sees_the_report_without_the_hot_rule_edit_link_hidden(
    sales_manager: User,
) -> None:
    # Sales managers may view Automation, so the HOT rule link is offered to them too.
    response = _get(sales_manager)
    assert response.status_code == 200
    assert response.context["can_see_hot_rule"] is True


def test_a_reports_only_role_sees_the_threshold_without_the_hot_rule_link(db: None) -> None:
    role = Role.objects.create(
        name="レポート閲覧",
        slug="reports-only",
        permissions={"reports": 1},
    )
    user = make_user(Role.MARKETING, email="report@example.jp")
    user.role = role
    user.save(update_fields=["role"])

    response = _get(user)

    assert response.status_code == 200
    assert 'data-testid="hot-rule-link"' not in response.content.decode()
    assert response.context["preview_url"] == ""


def test_chart_keeps_empty_bands_as_gaps_and_clips_a_far_threshold(marketer: User) -> None:
    # given prospects only in the 0s and the 30s, and a HOT threshold far above them
    _prospects([(5, 10, 1), (35, 10, 5)])
    _hot_rule(threshold=500)

    chart = report_chart(advisor_report(user=marketer, target=_won_criteria()))

    # then four slots (0, 10, 20, 30) but two bars, the 30s in the fourth slot and five times
    # as high (50 % against 10 %); the threshold marker sits on the right edge
    assert chart is not None
    assert [bar.label for bar in chart.bars] == ["0", "30"]
    slot = (chart.right - chart.left) / 4
    assert chart.bars[1].x == pytest.approx(chart.left + 3 * slot + slot * 0.1, abs=0.01)
    assert chart.bars[1].height == pytest.approx(chart.bars[0].height * 5, abs=0.05)
    assert chart.current is not None
    assert chart.current.x == chart.right and chart.current.anchor == "end"
    # the 30s convert at 50 %, 1.67× the 30 % average: not enough for a recommendation
    assert chart.recommended is None
    assert [bar.is_hot for bar in chart.bars] == [False, False]
