"""The retroactive rescore: what it rewrites (the rows the rules give activities), what it never
touches (every other cause), prospects deleted since, and chunks run in parallel sessions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import F, Sum

from mapp.models import User
from prospects.models import Prospect
from prospects.services import (
    prospect_create,
    prospects_delete,
    register_prospects_changed_listener,
    unregister_prospects_changed_listener,
)
from scoring.models import Rescore, RescoreStatus, ScoreCause, ScoreChange, ScoringRule
from scoring.services import rescore_run, score_change, score_set_manually
from tests.concurrency import in_parallel
from tracking.models import Activity, ActivityType
from tracking.services import activity_record, deliver_activities


def _prospect(email: str) -> Prospect:
    return prospect_create(actor=None, data={"email": email}, refresh_lists=False)


def _views(prospect: Prospect, count: int) -> list[Activity]:
    views = [
        activity_record(
            type=ActivityType.PAGE_VIEW, prospect_id=prospect.pk, object_label=f"/p/{n}"
        )
        for n in range(count)
    ]
    deliver_activities([view.pk for view in views])
    return views


def _score(prospect: Prospect) -> int:
    return Prospect.objects.values_list("score", flat=True).get(pk=prospect.pk)


def _ledger_sum(prospect: Prospect) -> int:
    total = ScoreChange.objects.filter(prospect=prospect).aggregate(total=Sum("points"))
    return int(total["total"] or 0)


def _keyed_row(prospect: Prospect, *, cause: str, points: int, key: str, **fields: Any) -> None:
    """A row without a scoring rule as page actions, decay and the initial score write them,
    with the score moved by the same points (the ledger's invariant)."""
    ScoreChange.objects.create(
        prospect=prospect,
        points=points,
        cause=cause,
        first_key=key,
        label=key,
        occurred_at=prospect.created_at,
        **fields,
    )
    Prospect.objects.filter(pk=prospect.pk).update(score=F("score") + points)


def _page_view_rule(points: int) -> None:
    ScoringRule.objects.filter(activity_type=ActivityType.PAGE_VIEW, is_default=True).update(
        points=points
    )


@pytest.mark.django_db
def test_a_rescore_rewrites_activity_rows_and_keeps_every_other_cause(
    administrator: User,
) -> None:
    # given a prospect scored by page views, by hand, by an action, a page action, decay and a
    # score from before the ledger
    prospect = _prospect("keep@a.jp")
    views = _views(prospect, 2)
    score_set_manually(prospect=prospect, score=12, actor=administrator)  # +10 by hand
    score_change(prospect=prospect, points=4, cause=ScoreCause.ACTION, label="adjust")
    page_key = f"page:3:{views[0].pk}"  # page action 3 on the first view
    _keyed_row(
        prospect,
        cause=ScoreCause.PAGE_ACTION,
        points=7,
        key=page_key,
        activity_id=views[0].pk,
        activity_type=ActivityType.PAGE_VIEW,
    )
    _keyed_row(prospect, cause=ScoreCause.DECAY, points=-3, key="decay:1:0:1")
    _keyed_row(prospect, cause=ScoreCause.INITIAL, points=20, key="initial")
    others = ScoreChange.objects.filter(prospect=prospect).exclude(cause=ScoreCause.ACTIVITY)
    before = sorted(others.values_list("id", "points", "cause", "first_key", "activity_id"))
    assert len(before) == 5 and _score(prospect) == 2 + 10 + 4 + 7 - 3 + 20

    # when page views are worth 5 and everyone is rescored
    _page_view_rule(5)
    rescore_run(Rescore.objects.create().pk)

    # then the two activity rows say 5 each, every other row is as it was
    activity_rows = ScoreChange.objects.filter(prospect=prospect, cause=ScoreCause.ACTIVITY)
    assert sorted(activity_rows.values_list("activity_id", "points")) == [
        (views[0].pk, 5),
        (views[1].pk, 5),
    ]
    after = sorted(others.values_list("id", "points", "cause", "first_key", "activity_id"))
    assert after == before
    assert _score(prospect) == 10 + 10 + 4 + 7 - 3 + 20 == _ledger_sum(prospect)


@pytest.mark.django_db
def test_a_rescore_drops_rows_of_deleted_rules_and_applies_first_time_only() -> None:
    # given page views scored by the default rule and a form submitted twice
    prospect = _prospect("rules@a.jp")
    _views(prospect, 3)
    forms = [
        activity_record(
            type=ActivityType.FORM_SUCCESS,
            prospect_id=prospect.pk,
            object_type="form",
            object_id="9",
        )
        for _ in range(2)
    ]
    deliver_activities([form.pk for form in forms])
    assert _score(prospect) == 3 + 50 + 50

    # when the page-view rule is deleted (its rows keep no rule) and forms score once only
    ScoringRule.objects.filter(activity_type=ActivityType.PAGE_VIEW).delete()
    ScoringRule.objects.filter(activity_type=ActivityType.FORM_SUCCESS, is_default=True).update(
        first_time_only=True
    )
    rescore_run(Rescore.objects.create().pk)

    # then only the first submission is left
    rows = ScoreChange.objects.filter(prospect=prospect)
    assert list(rows.values_list("activity_id", "points", "first_key")) == [
        (forms[0].pk, 50, "form:9")
    ]
    assert _score(prospect) == 50 == _ledger_sum(prospect)


@pytest.mark.django_db
def test_a_rescore_skips_the_activities_of_deleted_prospects(administrator: User) -> None:
    # given a prospect with scored activity that is then deleted (its activities stay), between
    # two that stay
    kept = _prospect("kept@a.jp")
    _views(kept, 1)
    gone = _prospect("gone@a.jp")
    _views(gone, 2)
    _prospect("last@a.jp")
    prospects_delete(actor=administrator, prospect_ids=[gone.pk])
    assert Activity.objects.filter(prospect_id=gone.pk).count() == 2

    # when everyone is rescored
    _page_view_rule(2)
    rescore = rescore_run(Rescore.objects.create().pk)

    # then the rescore succeeds and writes no row for the deleted prospect
    assert rescore.status == RescoreStatus.DONE
    assert not ScoreChange.objects.filter(prospect_id=gone.pk).exists()
    connection.check_constraints()  # the ledger's deferred foreign key holds
    assert _score(kept) == 2 == _ledger_sum(kept)


@pytest.mark.django_db
def test_a_rescore_announces_the_prospects_whose_score_changed(
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given two prospects with page views and one without
    viewers = [_prospect("v1@a.jp"), _prospect("v2@a.jp")]
    for viewer in viewers:
        _views(viewer, 1)
    _prospect("idle@a.jp")
    announced: list[int] = []
    register_prospects_changed_listener("test-rescore", announced.extend)
    try:
        # when page views change value and everyone is rescored in chunks of one prospect
        _page_view_rule(3)
        with django_capture_on_commit_callbacks(execute=True):
            rescore_run(Rescore.objects.create().pk, chunk=1)
    finally:
        unregister_prospects_changed_listener("test-rescore")

    # then the listeners hear of the two whose score changed, and of nobody else
    assert sorted(announced) == sorted(viewer.pk for viewer in viewers)


@pytest.mark.django_db(transaction=True)
def test_parallel_chunks_and_concurrent_deliveries_lose_and_double_nothing() -> None:
    # A transactional test starts from an empty database: the rule the seed migration made.
    rule, _created = ScoringRule.objects.get_or_create(
        activity_type=ActivityType.PAGE_VIEW, is_default=True, defaults={"points": 1}
    )
    prospects = [_prospect(f"par{number}@a.jp") for number in range(6)]
    scored = [_views(prospect, 2) for prospect in prospects]
    late = [
        activity_record(type=ActivityType.PAGE_VIEW, prospect_id=prospect.pk, object_label="/x")
        for prospect in prospects
    ]
    ScoringRule.objects.filter(pk=rule.pk).update(points=4)
    rescore = Rescore.objects.create()

    # when a rescore runs in two sessions, a prospect per chunk, while the last views are
    # delivered and actions adjust scores
    jobs: list[Callable[[], object]] = [partial(rescore_run, rescore.pk, chunk=1, parallelism=2)]
    jobs += [partial(deliver_activities, [view.pk]) for view in late]
    jobs += [
        partial(score_change, prospect=prospect, points=5, cause=ScoreCause.ACTION)
        for prospect in prospects[::2]
    ]
    in_parallel(jobs)

    # then every view counts 4 exactly once, every action once, and the scores are the sums
    rescore.refresh_from_db()
    assert rescore.status == RescoreStatus.DONE
    assert rescore.processed == rescore.total == len(prospects)
    for number, prospect in enumerate(prospects):
        rows = ScoreChange.objects.filter(prospect=prospect, cause=ScoreCause.ACTIVITY)
        assert set(rows.values_list("activity_id", flat=True)) == {
            *(view.pk for view in scored[number]),
            late[number].pk,
        }
        assert rows.count() == 3
        expected = 3 * 4 + (5 if number % 2 == 0 else 0)
        assert _score(prospect) == expected == _ledger_sum(prospect)


@pytest.mark.django_db(transaction=True)
def test_a_writer_holding_one_prospect_delays_only_that_prospects_chunk() -> None:
    rule, _created = ScoringRule.objects.get_or_create(
        activity_type=ActivityType.PAGE_VIEW, is_default=True, defaults={"points": 1}
    )
    first, held = _prospect("first@a.jp"), _prospect("held@a.jp")
    for prospect in (first, held):
        _views(prospect, 2)
    ScoringRule.objects.filter(pk=rule.pk).update(points=3)
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:  # an action on the second prospect, its transaction left open
        try:
            with transaction.atomic():
                score_change(prospect=held, points=1, cause=ScoreCause.ACTION)
                holding.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    def rescore() -> None:
        try:
            rescore_run(Rescore.objects.create().pk, chunk=1, parallelism=1)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer), threading.Thread(target=rescore)]
    threads[0].start()
    assert holding.wait(timeout=10)
    threads[1].start()
    try:
        # when the rescore reaches the held prospect, the first one's chunk has committed
        deadline = time.monotonic() + 15
        while _score(first) != 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _score(first) == 6
        assert _score(held) == 2  # still waiting for the writer
    finally:
        release.set()
        for thread in threads:
            thread.join(timeout=30)
    # then the held prospect is rescored after the writer, keeping its action
    assert _score(held) == 2 * 3 + 1 == _ledger_sum(held)


@pytest.mark.django_db
def test_deleting_two_first_time_rules_on_one_object_keeps_their_rows_apart(
    administrator: User,
) -> None:
    """Their rows keep the object's key with no rule; only page-action and decay rows are
    unique by key alone."""
    from scoring.services import scoring_rule_delete

    prospect = _prospect("first@a.jp")
    rules = [
        ScoringRule.objects.create(
            activity_type=ActivityType.FORM_SUCCESS,
            object_type="form",
            object_id="12",
            points=points,
            first_time_only=True,
        )
        for points in (100, 80)
    ]
    for rule in rules:
        _keyed_row(
            prospect, cause=ScoreCause.ACTIVITY, points=rule.points, key="form:12", rule=rule
        )

    for rule in rules:
        scoring_rule_delete(rule=rule, actor=administrator)

    assert ScoreChange.objects.filter(prospect=prospect, rule__isnull=True).count() == 2


@pytest.mark.django_db
def test_a_rescore_queued_long_ago_is_queued_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task lost by the broker must not leave the rescore queued for ever."""
    import datetime

    from django.utils import timezone

    from scoring import services

    queued: list[int] = []
    monkeypatch.setattr(services, "_enqueue_rescore", queued.append)
    stale = Rescore.objects.create()
    Rescore.objects.filter(pk=stale.pk).update(
        created_at=timezone.now() - datetime.timedelta(minutes=30)
    )

    assert services.rescore_request().pk == stale.pk
    assert queued == [stale.pk]
    Rescore.objects.filter(pk=stale.pk).update(created_at=timezone.now())
    assert services.rescore_request().pk == stale.pk
    assert queued == [stale.pk]  # a fresh one is left to its own task
