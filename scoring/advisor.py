"""HOT threshold advisor: conversion rate by score band, and the threshold the data suggests.

The method is the deck "自社への関心が高い見込み客へ個別フォローを実施しましょう ～1.基準を決める～"
(Salesforce Customer Success, seed 003), 「関心度が高いスコアとは何点か？」 **Aパターン**
(Pardot運用中でスコアが既に溜まっている場合): make a report of converted leads by score
(「スコア別の取引開始済みリード」) and read off the score from which the conversion rate
(「商談化率の高いPardotスコア」) is high. This module makes that reading a rule:

    The recommended threshold is the lowest band edge T such that
      1. the prospects scoring T or more convert at least ``TARGET_LIFT`` (2×) as often as the
         prospects in the report as a whole,
      2. the band that starts at T converts at least as often as the whole (a band converting
         worse than average is never made HOT only because the bands above it carry it), and
      3. at least ``MIN_HOT_PROSPECTS`` prospects score T or more (a rate over fewer is chance).
    The lowest such T hands sales the most leads that still convert at twice the average.

When no edge qualifies (nothing converted yet, everything converted, the score does not separate
them) there is no recommendation, and the deck's **Bパターン** applies: keep a provisional
threshold (the deck starts at 80) and adjust it with sales' feedback until the data speaks.

"Converted" is a criteria document of the criteria engine (``prospects.criteria``): today a list
or a field the marketer maintains, "opportunity won" once campaigns registers that subject — the
advisor needs no new code for it. All numbers come from ONE grouped SQL query (GROUP BY band,
COUNT … FILTER (WHERE converted)); Python only adds up the bands, never loops over prospects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.db.models import Count, Exists, FloatField, IntegerField, OuterRef, Q, Value
from django.db.models.functions import Cast, Floor

from mapp.models import User
from prospects.criteria import CriteriaError, compile_criteria, prospects_matching
from prospects.selectors import prospects_visible_to
from scoring.models import HotRule

logger = logging.getLogger(__name__)

DEFAULT_BAND_WIDTH = 10
MIN_BAND_WIDTH = 1
MAX_BAND_WIDTH = 1000
# Condition 1: the HOT group must convert at least this many times as often as everybody.
TARGET_LIFT = 2.0
# Condition 3: a conversion rate over fewer prospects than this is mostly chance.
MIN_HOT_PROSPECTS = 10
# Beyond this many bands the chart and the table stop being readable; the page says so and
# suggests wider bands (the query itself returns one row per band, cheap either way).
MAX_READABLE_BANDS = 120


class NoRecommendation(StrEnum):
    """Why the report recommends no threshold."""

    NO_PROSPECTS = "no_prospects"
    NO_CONVERTED = "no_converted"
    ALL_CONVERTED = "all_converted"
    NO_SEPARATION = "no_separation"


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _percent(rate: float | None) -> float | None:
    return None if rate is None else rate * 100


@dataclass(frozen=True)
class ScoreBand:
    """Prospects whose score is in [start, end) and how many of them converted."""

    start: int
    end: int
    total: int
    converted: int

    @property
    def rate(self) -> float | None:
        return _rate(self.converted, self.total)

    @property
    def rate_percent(self) -> float | None:
        return _percent(self.rate)


@dataclass(frozen=True)
class ThresholdCandidate:
    """What a HOT threshold at ``threshold`` would do: prospects scoring ``threshold`` or more."""

    threshold: int
    prospects: int
    converted: int
    total_converted: int
    base_rate: float | None
    band_rate: float | None  # the band starting at the threshold; None off a band edge
    # Prospects the HOT rule would mark: the score and the rule's further criteria; None when
    # the rule has no further criteria (then it equals ``prospects``).
    would_be_hot: int | None = None
    is_recommended: bool = False
    is_current: bool = False

    @property
    def rate(self) -> float | None:
        return _rate(self.converted, self.prospects)

    @property
    def rate_percent(self) -> float | None:
        return _percent(self.rate)

    @property
    def band_rate_percent(self) -> float | None:
        return _percent(self.band_rate)

    @property
    def captured(self) -> float | None:
        """Share of all converted prospects that score ``threshold`` or more."""
        return _rate(self.converted, self.total_converted)

    @property
    def captured_percent(self) -> float | None:
        return _percent(self.captured)

    @property
    def lift(self) -> float | None:
        """How many times the HOT group converts as often as everybody in the report."""
        rate = self.rate
        if rate is None or not self.base_rate:
            return None
        return rate / self.base_rate

    @property
    def hot_count(self) -> int:
        return self.prospects if self.would_be_hot is None else self.would_be_hot


@dataclass
class AdvisorReport:
    band_width: int
    bands: list[ScoreBand]
    candidates: list[ThresholdCandidate]
    total: int
    converted: int
    current_threshold: int
    current: ThresholdCandidate
    recommended: ThresholdCandidate | None
    no_recommendation: NoRecommendation | None
    hot_rule_has_criteria: bool
    hot_rule_criteria_error: str = ""

    @property
    def base_rate(self) -> float | None:
        return _rate(self.converted, self.total)

    @property
    def base_rate_percent(self) -> float | None:
        return _percent(self.base_rate)

    @property
    def too_many_bands(self) -> bool:
        return len(self.bands) > MAX_READABLE_BANDS


def hot_rule_current() -> HotRule:
    """The account's HOT rule (the first row), or an unsaved one with the defaults."""
    return HotRule.objects.order_by("pk").first() or HotRule()


def _hot_rule_q(rule: HotRule) -> tuple[Q | None, str]:
    """The HOT rule's further criteria as a Q (None without conditions), or why it is unusable."""
    criteria: Any = rule.criteria or {}
    if not isinstance(criteria, dict) or not criteria.get("conditions"):
        return None, ""
    try:
        return compile_criteria(criteria), ""
    except CriteriaError as error:
        # A rule saved before a subject disappeared: the report still works on the score alone.
        logger.warning("HOT rule %s has invalid criteria: %s", rule.pk, error)
        return None, str(error)


def recommend_threshold(
    bands: list[ScoreBand],
) -> tuple[int | None, NoRecommendation | None]:
    """The deck's Aパターン as a rule (see the module docstring): the threshold, or why none.

    ``bands`` are the non-empty bands in ascending order of score.
    """
    total = sum(band.total for band in bands)
    converted = sum(band.converted for band in bands)
    if total == 0:
        return None, NoRecommendation.NO_PROSPECTS
    if converted == 0:
        return None, NoRecommendation.NO_CONVERTED
    if converted == total:
        return None, NoRecommendation.ALL_CONVERTED
    base_rate = converted / total
    at_or_above = 0
    converted_at_or_above = 0
    recommended: int | None = None
    # From the top down, so each edge's "T or more" totals are running sums; the last edge that
    # qualifies on the way down is the lowest one.
    for band in reversed(bands):
        at_or_above += band.total
        converted_at_or_above += band.converted
        band_rate = band.converted / band.total
        if (
            at_or_above >= MIN_HOT_PROSPECTS
            and converted_at_or_above / at_or_above >= TARGET_LIFT * base_rate
            and band_rate >= base_rate
        ):
            recommended = band.start
    if recommended is None:
        return None, NoRecommendation.NO_SEPARATION
    return recommended, None


def advisor_report(
    *,
    user: User,
    target: dict[str, Any],
    population: dict[str, Any] | None = None,
    band_width: int = DEFAULT_BAND_WIDTH,
    hot_rule: HotRule | None = None,
) -> AdvisorReport:
    """Conversion to ``target`` by score band among the prospects ``user`` may see.

    ``target`` and ``population`` are criteria documents (validated or not; invalid ones raise
    CriteriaError). ``population`` narrows the prospects analysed (None or empty: all of them).
    One SQL query: GROUP BY the score band, with filtered COUNTs for the converted prospects,
    the prospects at or above the current HOT threshold, and those the HOT rule's further
    criteria accept.
    """
    if not MIN_BAND_WIDTH <= band_width <= MAX_BAND_WIDTH:
        raise ValueError(f"band width {band_width} outside {MIN_BAND_WIDTH}..{MAX_BAND_WIDTH}")
    rule = hot_rule or hot_rule_current()
    current_threshold = rule.threshold
    hot_q, hot_rule_error = _hot_rule_q(rule)

    base = prospects_visible_to(user)
    if population and population.get("conditions"):
        base = prospects_matching(population, base=base)
    # EXISTS over the engine's own queryset: "converted" means exactly what the criteria mean
    # everywhere else (lists, rules), whatever joins a subject needs.
    converted_q = Q(Exists(prospects_matching(target).filter(pk=OuterRef("pk"))))
    # FLOOR of a float division: PostgreSQL's integer division truncates towards zero, which
    # would put -5 and 5 in the same band. Exact here: |score| < 2³¹ and width ≤ 1000.
    band_index = Cast(Floor(Cast("score", FloatField()) / Value(float(band_width))), IntegerField())
    at_current_q = Q(score__gte=current_threshold)
    aggregates: dict[str, Count] = {
        "total": Count("id"),
        "converted": Count("id", filter=converted_q),
        "at_current": Count("id", filter=at_current_q),
        "at_current_converted": Count("id", filter=at_current_q & converted_q),
    }
    if hot_q is not None:
        aggregates["hot_matches"] = Count("id", filter=hot_q)
        aggregates["at_current_hot"] = Count("id", filter=at_current_q & hot_q)
    rows = list(
        base.order_by()
        .annotate(band_index=band_index)
        .values("band_index")
        .annotate(**aggregates)
        .order_by("band_index")
    )

    bands = [
        ScoreBand(
            start=row["band_index"] * band_width,
            end=(row["band_index"] + 1) * band_width,
            total=row["total"],
            converted=row["converted"],
        )
        for row in rows
    ]
    total = sum(band.total for band in bands)
    converted = sum(band.converted for band in bands)
    base_rate = _rate(converted, total)
    recommended_threshold, reason = recommend_threshold(bands)

    candidates: list[ThresholdCandidate] = []
    at_or_above = converted_at_or_above = hot_at_or_above = 0
    for band, row in zip(reversed(bands), reversed(rows), strict=True):
        at_or_above += band.total
        converted_at_or_above += band.converted
        hot_at_or_above += row.get("hot_matches", 0)
        candidates.append(
            ThresholdCandidate(
                threshold=band.start,
                prospects=at_or_above,
                converted=converted_at_or_above,
                total_converted=converted,
                base_rate=base_rate,
                band_rate=band.rate,
                would_be_hot=hot_at_or_above if hot_q is not None else None,
                is_recommended=band.start == recommended_threshold,
                is_current=band.start == current_threshold,
            )
        )
    candidates.reverse()

    current_band = next((band for band in bands if band.start == current_threshold), None)
    current = ThresholdCandidate(
        threshold=current_threshold,
        prospects=sum(row["at_current"] for row in rows),
        converted=sum(row["at_current_converted"] for row in rows),
        total_converted=converted,
        base_rate=base_rate,
        band_rate=current_band.rate if current_band else None,
        would_be_hot=(sum(row["at_current_hot"] for row in rows) if hot_q is not None else None),
        is_recommended=current_threshold == recommended_threshold,
        is_current=True,
    )
    if not any(candidate.is_current for candidate in candidates) and bands:
        # The current threshold is not a band edge: show it as its own row, in score order.
        candidates.append(current)
        candidates.sort(key=lambda candidate: (candidate.threshold, not candidate.is_current))

    recommended = next((candidate for candidate in candidates if candidate.is_recommended), None)
    return AdvisorReport(
        band_width=band_width,
        bands=bands,
        candidates=candidates,
        total=total,
        converted=converted,
        current_threshold=current_threshold,
        current=current,
        recommended=recommended,
        no_recommendation=reason,
        hot_rule_has_criteria=hot_q is not None,
        hot_rule_criteria_error=hot_rule_error,
    )
