"""The HOT threshold advisor page (Reports): conversion by score band and a recommended threshold.

The numbers come from scoring.advisor (one grouped query); this view only validates the form and
lays out the SVG bar chart (no JavaScript library).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _

from mapp.access import access_required, has_access, request_user
from mapp.models import Level, Module
from prospects.criteria import CriteriaError, criteria_catalogue, empty_criteria
from scoring.advisor import (
    MIN_HOT_PROSPECTS,
    TARGET_LIFT,
    AdvisorReport,
    advisor_report,
    hot_rule_current,
)
from scoring.forms_advisor import AdvisorForm

CHART_WIDTH = 720
CHART_HEIGHT = 260
CHART_LEFT = 44  # room for the percent axis labels
CHART_RIGHT = 8
CHART_TOP = 14
CHART_BOTTOM = 28  # room for the band labels
MAX_AXIS_LABELS = 12


@dataclass(frozen=True)
class ChartBar:
    x: float
    y: float
    width: float
    height: float
    label_x: float
    label: str
    show_label: bool
    title: str
    is_hot: bool  # at or above the recommended threshold


@dataclass(frozen=True)
class ChartMarker:
    x: float
    label: str

    @property
    def anchor(self) -> str:
        """Labels near the right edge read leftwards so they stay inside the chart."""
        return "end" if self.x > CHART_WIDTH * 0.75 else "start"

    @property
    def label_dx(self) -> int:
        return -3 if self.anchor == "end" else 3


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    top: int
    bottom: float  # y of the x axis
    right: float  # x of the plot's right edge
    bars: list[ChartBar]
    ticks: list[tuple[float, str]]  # (y, label) for the percent axis
    base_y: float | None
    base_label: str
    recommended: ChartMarker | None
    current: ChartMarker | None


def _x_for_score(score: int, first_start: int, band_width: int, slot: float) -> float:
    position = CHART_LEFT + (score - first_start) / band_width * slot
    return max(CHART_LEFT, min(CHART_WIDTH - CHART_RIGHT, position))


def report_chart(report: AdvisorReport) -> Chart | None:
    """Coordinates of the bar chart: conversion rate per band, base rate, the two thresholds."""
    if not report.bands:
        return None
    first_start = report.bands[0].start
    # Empty bands between the first and the last still take a slot, so the axis is linear.
    slots = (report.bands[-1].end - first_start) // report.band_width
    plot_width = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    slot = plot_width / slots
    bottom = CHART_TOP + plot_height
    top_percent = max((band.rate_percent or 0.0) for band in report.bands)
    # Round the axis up to a multiple of 10 % (at least 10 %) so the ticks are even numbers.
    axis_max = max(10.0, math.ceil(top_percent / 10) * 10)
    label_every = max(1, math.ceil(slots / MAX_AXIS_LABELS))
    recommended_start = report.recommended.threshold if report.recommended else None
    bars = []
    for band in report.bands:
        index = (band.start - first_start) // report.band_width
        height = (band.rate_percent or 0.0) / axis_max * plot_height
        x = CHART_LEFT + index * slot
        bars.append(
            ChartBar(
                x=round(x + slot * 0.1, 2),
                y=round(bottom - height, 2),
                width=round(max(slot * 0.8, 1.0), 2),
                height=round(height, 2),
                label_x=round(x + slot / 2, 2),
                label=str(band.start),
                show_label=index % label_every == 0,
                title=_(
                    "%(start)s–%(end)s points: %(total)s prospects, %(converted)s converted "
                    "(%(rate)s%%)"
                )
                % {
                    "start": band.start,
                    "end": band.end - 1,
                    "total": band.total,
                    "converted": band.converted,
                    "rate": f"{band.rate_percent or 0:.1f}",
                },
                is_hot=recommended_start is not None and band.start >= recommended_start,
            )
        )
    ticks = [
        (round(bottom - fraction * plot_height, 2), f"{axis_max * fraction:.0f}%")
        for fraction in (0.0, 0.25, 0.5, 0.75, 1.0)
    ]
    base_percent = report.base_rate_percent
    base_y = round(bottom - base_percent / axis_max * plot_height, 2) if base_percent else None
    return Chart(
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        left=CHART_LEFT,
        top=CHART_TOP,
        bottom=bottom,
        right=CHART_WIDTH - CHART_RIGHT,
        bars=bars,
        ticks=ticks,
        base_y=base_y,
        base_label=_("Average %(rate)s%%") % {"rate": f"{base_percent or 0:.1f}"},
        recommended=(
            ChartMarker(
                x=round(_x_for_score(recommended_start, first_start, report.band_width, slot), 2),
                label=_("Recommended %(threshold)s") % {"threshold": recommended_start},
            )
            if recommended_start is not None
            else None
        ),
        current=ChartMarker(
            x=round(
                _x_for_score(report.current_threshold, first_start, report.band_width, slot), 2
            ),
            label=_("Current %(threshold)s") % {"threshold": report.current_threshold},
        ),
    )


def _builder_initial(form: AdvisorForm, name: str) -> Any:
    """What the criteria builder starts from: the cleaned document, else the posted text if it
    is at least JSON (the builder shows what it can), else an empty group."""
    if form.is_bound:
        cleaned = getattr(form, "cleaned_data", {}).get(name)
        if cleaned is not None:
            return cleaned
        raw = form.data.get(name, "")
        try:
            document = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            document = None
        if isinstance(document, dict):
            return document
    return empty_criteria()


@access_required(Module.REPORTS)
def advisor_report_view(request: HttpRequest) -> HttpResponse:
    """GET: the form; with a target, the report by score band and the recommended threshold."""
    user = request_user(request)
    form = AdvisorForm(request.GET if "target" in request.GET else None)
    report: AdvisorReport | None = None
    if form.is_bound and form.is_valid():
        try:
            report = advisor_report(
                user=user,
                target=form.cleaned_data["target"],
                population=form.cleaned_data["population"],
                band_width=form.cleaned_data["band_width"],
            )
        except CriteriaError as error:  # validated by the form; kept for a subject gone since
            form.add_error(None, str(error))
    current_threshold = report.current_threshold if report else hot_rule_current().threshold
    return render(
        request,
        "scoring/advisor/report.html",
        {
            "form": form,
            "report": report,
            "chart": report_chart(report) if report else None,
            "current_threshold": current_threshold,
            # The HOT rule page is an Automation page; others see the number without the link.
            "can_see_hot_rule": has_access(user, Module.AUTOMATION, Level.VIEW),
            "target_lift": f"{TARGET_LIFT:g}",
            "min_hot_prospects": MIN_HOT_PROSPECTS,
            "target_criteria": _builder_initial(form, "target"),
            "population_criteria": _builder_initial(form, "population"),
            "criteria_catalogue": criteria_catalogue(),
            # The live count asks the lists' preview, which needs the prospects module.
            "preview_url": (
                reverse("lists:criteria_preview")
                if has_access(user, Module.PROSPECTS, Level.VIEW)
                else ""
            ),
        },
    )
