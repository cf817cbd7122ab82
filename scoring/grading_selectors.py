"""Grading reads: the profiles page and why a prospect has its grade."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db.models import Count

from mapp.access import has_access
from mapp.models import Level, Module
from prospects.models import Prospect
from scoring.grading import default_profile, prospect_grading_profile
from scoring.grading_compile import criterion_state_annotations, grade_of, profile_plan
from scoring.models import (
    GRADE_SCALE,
    GRADE_START,
    CriterionMark,
    CriterionState,
    GradingProfile,
    ProspectProfile,
    Regrade,
)

if TYPE_CHECKING:
    from mapp.models import User


# --- the profiles page ---------------------------------------------------------------------------


@dataclass
class ProfileRow:
    profile: GradingProfile
    criteria_count: int
    prospect_count: int
    regrade: Regrade | None


def grading_profiles_overview() -> list[ProfileRow]:
    """Every profile with its criteria, how many prospects it grades and its latest regrade.

    Four queries whatever the number of profiles and prospects.
    """
    default = default_profile()
    profiles = list(
        GradingProfile.objects.annotate(criteria_count=Count("criteria")).order_by(
            "-is_default", "name"
        )
    )
    assigned = dict(
        ProspectProfile.objects.exclude(profile_id=default.pk)
        .values("profile_id")
        .annotate(count=Count("prospect_id"))
        .order_by()
        .values_list("profile_id", "count")
    )
    total = Prospect.objects.count()
    latest = {
        job.profile_id: job
        for job in Regrade.objects.order_by("profile_id", "-created_at", "-id").distinct(
            "profile_id"
        )
    }
    return [
        ProfileRow(
            profile=profile,
            criteria_count=profile.criteria_count,
            prospect_count=(
                total - sum(assigned.values())
                if profile.is_default
                else assigned.get(profile.pk, 0)
            ),
            regrade=latest.get(profile.pk),
        )
        for profile in profiles
    ]


def regrade_latest() -> Regrade | None:
    return Regrade.objects.select_related("profile").order_by("-created_at", "-id").first()


# --- why this grade ----------------------------------------------------------------------------


@dataclass
class CriterionLine:
    criterion_id: int
    name: str
    weight: int
    state: str
    state_label: str
    points: int  # +weight matched, −weight not matched, 0 unknown
    is_configured: bool
    mark: CriterionMark | None = None
    data_state: str = CriterionState.UNKNOWN
    data_state_label: str = ""

    @property
    def is_marked(self) -> bool:
        return self.mark is not None

    @property
    def points_label(self) -> str:
        return thirds_label(self.points)


@dataclass
class GradeStep:
    name: str
    points: int
    grade: str  # where the running total stands, clamped to the scale

    @property
    def points_label(self) -> str:
        return thirds_label(self.points)


@dataclass
class GradeExplanation:
    profile: GradingProfile
    stored_grade: str
    lines: list[CriterionLine] = field(default_factory=list)
    steps: list[GradeStep] = field(default_factory=list)
    start: str = GRADE_SCALE[GRADE_START]

    @property
    def total_points(self) -> int:
        return sum(line.points for line in self.lines)

    @property
    def total_label(self) -> str:
        return thirds_label(self.total_points)

    @property
    def grade(self) -> str:
        return grade_of(self.total_points)

    @property
    def is_clamped(self) -> bool:
        return not 0 <= GRADE_START + self.total_points <= len(GRADE_SCALE) - 1

    @property
    def is_current(self) -> bool:
        """False while a regrade of this prospect is still on its way."""
        return self.stored_grade == self.grade


def thirds_label(points: int) -> str:
    """+2/3, −1/3, +1 1/3 (thirds of a letter); 0 for nothing."""
    if points == 0:
        return "0"
    sign = "+" if points > 0 else "−"
    whole, thirds = divmod(abs(points), 3)
    if not thirds:
        return f"{sign}{whole}"
    return f"{sign}{whole} {thirds}/3" if whole else f"{sign}{thirds}/3"


def _points(state: str, weight: int) -> int:
    if state == CriterionState.MATCHED:
        return weight
    if state == CriterionState.NOT_MATCHED:
        return -weight
    return 0


def prospect_grade_explanation(prospect: Prospect) -> GradeExplanation:
    """Each criterion of the prospect's profile: its state (from data, or marked and by whom),
    its weight, and the arithmetic from D to the grade. A fixed number of queries: the data
    states of every criterion come from one SELECT with one boolean per criterion."""
    profile = prospect_grading_profile(prospect)
    profile = GradingProfile.objects.prefetch_related("criteria").get(pk=profile.pk)
    plan = profile_plan(profile, frozenset())
    annotations = criterion_state_annotations(plan)
    row: dict[str, Any] = {}
    stored_grade = prospect.grade
    if annotations:
        row = (
            Prospect.objects.filter(pk=prospect.pk)
            .annotate(**annotations)
            .values("grade", *annotations.keys())
            .first()
        ) or {}
        stored_grade = row.get("grade", stored_grade)
    else:
        stored_grade = (
            Prospect.objects.filter(pk=prospect.pk).values_list("grade", flat=True).first()
            or stored_grade
        )
    marks = {
        mark.criterion_id: mark
        for mark in CriterionMark.objects.filter(
            prospect_id=prospect.pk, criterion__profile=profile
        ).select_related("marked_by")
    }
    labels = dict(CriterionState.choices)
    explanation = GradeExplanation(profile=profile, stored_grade=stored_grade)
    running = 0
    for criterion in plan.criteria:
        if not criterion.is_configured:
            data_state = CriterionState.UNKNOWN
        elif row.get(f"matched_{criterion.id}"):
            data_state = CriterionState.MATCHED
        elif criterion.known_q is None or row.get(f"known_{criterion.id}"):
            data_state = CriterionState.NOT_MATCHED
        else:
            data_state = CriterionState.UNKNOWN
        mark = marks.get(criterion.id)
        state = mark.state if mark is not None else data_state
        points = _points(state, criterion.weight)
        explanation.lines.append(
            CriterionLine(
                criterion_id=criterion.id,
                name=criterion.name,
                weight=criterion.weight,
                state=state,
                state_label=str(labels.get(state, state)),
                points=points,
                is_configured=criterion.is_configured,
                mark=mark,
                data_state=data_state,
                data_state_label=str(labels.get(data_state, data_state)),
            )
        )
        if points:
            running += points
            explanation.steps.append(
                GradeStep(name=criterion.name, points=points, grade=grade_of(running))
            )
    return explanation


def grade_panel_context(prospect: Prospect, user: User) -> dict[str, Any]:
    """The prospect page's "Why this grade" panel. The page already scoped the prospect to
    the user; changing anything needs edit rights on prospects."""
    return {
        "grade_explanation": prospect_grade_explanation(prospect),
        "can_change_grading": has_access(user, Module.PROSPECTS, Level.EDIT),
        "grading_profiles": list(
            GradingProfile.objects.order_by("-is_default", "name").only("pk", "name")
        ),
        "criterion_states": CriterionState,
    }
