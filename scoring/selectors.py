"""Scoring reads: why a prospect has its score."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Case, CharField, Count, F, Func, Max, Sum, Value, When

from prospects.models import Prospect
from scoring.models import PageAction, ScoreCause, ScoreChange, ScoreDecayRule, ScoringRule
from tracking.models import ActivityType

RECENT_CHANGES = 20


@dataclass
class ScoreGroup:
    """Ledger rows with one cause (and, for activities, one rule), added up."""

    label: str
    cause: str
    count: int
    points: int
    last_at: Any


@dataclass
class ScoreExplanation:
    score: int
    ledger_total: int
    groups: list[ScoreGroup] = field(default_factory=list)
    recent: list[ScoreChange] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return self.score == self.ledger_total


def prospect_score_explanation(prospect: Prospect) -> ScoreExplanation:
    """The ledger of ``prospect`` grouped by cause and rule (largest first), and its latest rows."""
    rows = list(
        ScoreChange.objects.filter(prospect_id=prospect.pk)
        # Page-action and decay rows name their page action or decay rule in their key
        # ("page:3:981", "decay:2:…"): one group per page action or decay rule.
        .annotate(
            source=Case(
                When(
                    cause__in=[ScoreCause.PAGE_ACTION, ScoreCause.DECAY],
                    then=Func(F("first_key"), Value(":"), Value(2), function="split_part"),
                ),
                default=Value(""),
                output_field=CharField(),
            )
        )
        .values("cause", "activity_type", "rule_id", "source")
        .annotate(count=Count("id"), points=Sum("points"), last_at=Max("occurred_at"))
        .order_by()
    )
    rules = ScoringRule.objects.in_bulk([row["rule_id"] for row in rows if row["rule_id"]])
    sources = {
        cause: model.objects.in_bulk(
            [
                int(row["source"])
                for row in rows
                if row["cause"] == cause and row["source"].isdigit()
            ]
        )
        for cause, model in (
            (ScoreCause.PAGE_ACTION, PageAction),
            (ScoreCause.DECAY, ScoreDecayRule),
        )
    }
    causes = dict(ScoreCause.choices)
    types = dict(ActivityType.choices)
    groups = []
    for row in rows:
        rule = rules.get(row["rule_id"]) if row["rule_id"] else None
        source = (
            sources[row["cause"]].get(int(row["source"]))
            if row["cause"] in sources and row["source"].isdigit()
            else None
        )
        if row["cause"] == ScoreCause.ACTIVITY:
            if rule is not None and rule.is_override:
                label = str(rule)
            else:
                label = str(types.get(row["activity_type"], row["activity_type"]))
        elif source is not None:
            label = f"{causes[row['cause']]}: {source}"
        else:
            label = str(causes.get(row["cause"], row["cause"]))
        groups.append(
            ScoreGroup(
                label=label,
                cause=row["cause"],
                count=row["count"],
                points=int(row["points"] or 0),
                last_at=row["last_at"],
            )
        )
    groups.sort(key=lambda group: (-abs(group.points), group.label))
    recent = list(
        ScoreChange.objects.filter(prospect_id=prospect.pk)
        .select_related("actor")
        .order_by("-occurred_at", "-id")[:RECENT_CHANGES]
    )
    score = Prospect.objects.filter(pk=prospect.pk).values_list("score", flat=True).first() or 0
    return ScoreExplanation(
        score=score,
        ledger_total=sum(group.points for group in groups),
        groups=groups,
        recent=recent,
    )
