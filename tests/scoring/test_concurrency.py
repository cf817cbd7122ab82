"""Deliveries for one prospect really in parallel: no lost and no double-counted points."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest
from django.db.models import Sum

from prospects.models import Prospect
from prospects.services import prospect_create
from scoring.models import Rescore, ScoreCause, ScoreChange, ScoringRule
from scoring.services import rescore_run, score_change
from tests.concurrency import in_parallel
from tracking.models import ActivityType
from tracking.services import activity_record, deliver_activities

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_deliveries_for_one_prospect_lose_no_points() -> None:
    # A transactional test starts from an empty database: the rule the seed migration made.
    ScoringRule.objects.get_or_create(
        activity_type=ActivityType.PAGE_VIEW, is_default=True, defaults={"points": 1}
    )
    prospect = prospect_create(actor=None, data={"email": "race@a.jp"}, refresh_lists=False)
    views = [
        activity_record(type=ActivityType.PAGE_VIEW, prospect_id=prospect.pk, object_label=f"/{n}")
        for n in range(40)
    ]
    batches = [[view.pk for view in views[n::4]] for n in range(4)]
    jobs: list[Callable[[], object]] = [partial(deliver_activities, batch) for batch in batches]
    # The same activities delivered twice at once, and actions adjusting the score meanwhile.
    jobs += [partial(deliver_activities, batch) for batch in batches]
    jobs += [
        partial(score_change, prospect=prospect, points=5, cause=ScoreCause.ACTION)
        for _ in range(4)
    ]
    rescore = Rescore.objects.create()
    jobs.append(partial(rescore_run, rescore.pk))
    in_parallel(jobs)

    score = Prospect.objects.values_list("score", flat=True).get(pk=prospect.pk)
    ledger = ScoreChange.objects.filter(prospect=prospect).aggregate(total=Sum("points"))
    assert score == 40 + 20 == ledger["total"]
