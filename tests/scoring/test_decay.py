"""Score decay: amounts, the floor, once per period of inactivity, new activity starting the
count over, idempotent runs, the ledger sum, the beat task and the pages."""

from __future__ import annotations

import datetime
import itertools
from typing import Any

import pytest
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from mapp.models import AuditLogEntry, User
from prospects.models import Prospect
from prospects.services import prospect_create
from scoring.decay import apply_score_decay, score_decay_run
from scoring.models import ScoreCause, ScoreChange, ScoreDecayRule
from scoring.services import score_set_manually
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
DAY = datetime.timedelta(days=1)


_numbers = itertools.count()  # unique addresses (an id() of a temporary object is reused)


def _prospect(
    score: int, *, last_activity_days_ago: int | None, created_days_ago: int = 400, email: str = ""
) -> Prospect:
    prospect = prospect_create(
        actor=None, data={"email": email or f"p{score}-{next(_numbers)}@a.jp"}, refresh_lists=False
    )
    if score:
        score_set_manually(prospect=prospect, score=score, actor=None)
    last_activity = (
        NOW - last_activity_days_ago * DAY if last_activity_days_ago is not None else None
    )
    Prospect.objects.filter(pk=prospect.pk).update(
        last_activity_at=last_activity, created_at=NOW - created_days_ago * DAY
    )
    return prospect


def _rule(points: int = -10, days: int = 30, floor: int = 0, **fields: Any) -> ScoreDecayRule:
    return ScoreDecayRule.objects.create(
        name=fields.pop("name", "30日無活動"),
        inactive_days=days,
        points=points,
        floor=floor,
        **fields,
    )


def _score(prospect: Prospect) -> int:
    return Prospect.objects.values_list("score", flat=True).get(pk=prospect.pk)


def _ledger_sum(prospect: Prospect) -> int:
    return (
        ScoreChange.objects.filter(prospect=prospect).aggregate(total=Sum("points"))["total"] or 0
    )


def _decay_rows(prospect: Prospect) -> Any:
    return ScoreChange.objects.filter(prospect=prospect, cause=ScoreCause.DECAY)


def test_an_inactive_prospect_loses_the_points_once_with_a_ledger_row() -> None:
    rule = _rule(points=-10, days=30, name="30日無活動")
    idle = _prospect(50, last_activity_days_ago=31)
    recent = _prospect(50, last_activity_days_ago=29)
    assert score_decay_run(now=NOW) == 1
    assert _score(idle) == 40 == _ledger_sum(idle)
    row = _decay_rows(idle).get()
    assert row.points == -10 and row.rule_id is None and row.activity_id is None
    anchor = int((NOW - 31 * DAY).timestamp())
    assert row.first_key == f"decay:{rule.pk}:{anchor}:1"
    # In the account's language (ja): the rule's name and its days.
    assert row.label.startswith("30日無活動") and "30" in row.label[len("30日無活動") :]
    assert _score(recent) == 50 and not _decay_rows(recent).exists()


def test_running_twice_is_running_once() -> None:
    _rule()
    idle = _prospect(50, last_activity_days_ago=40)
    score_decay_run(now=NOW)
    assert score_decay_run(now=NOW + datetime.timedelta(hours=1)) == 0
    assert score_decay_run(now=NOW + 5 * DAY) == 0
    assert _score(idle) == 40 == _ledger_sum(idle)


def test_the_floor_is_never_crossed() -> None:
    _rule(points=-10, floor=0)
    _rule(points=-25, days=60, floor=-20, name="60日無活動")
    near_floor = _prospect(4, last_activity_days_ago=31)
    at_floor = _prospect(0, last_activity_days_ago=31)
    below_floor = _prospect(-5, last_activity_days_ago=31)
    long_idle = _prospect(30, last_activity_days_ago=61)
    score_decay_run(now=NOW)
    assert _score(near_floor) == 0 and _decay_rows(near_floor).get().points == -4
    assert _score(at_floor) == 0 and not _decay_rows(at_floor).exists()
    assert _score(below_floor) == -5 and not _decay_rows(below_floor).exists()
    # -10 (30 days, floor 0) then -25 (60 days) clamped at that rule's floor of -20.
    assert sorted(_decay_rows(long_idle).values_list("points", flat=True)) == [-25, -10]
    assert _score(long_idle) == -5 == _ledger_sum(long_idle)
    score_decay_run(now=NOW)
    assert _score(long_idle) == -5


def test_decay_repeats_every_period_and_new_activity_starts_over() -> None:
    _rule(points=-10, days=30)
    prospect = _prospect(100, last_activity_days_ago=31)
    score_decay_run(now=NOW)  # day 31: period 1
    score_decay_run(now=NOW + 20 * DAY)  # day 51: still period 1
    assert _score(prospect) == 90
    score_decay_run(now=NOW + 30 * DAY)  # day 61: period 2
    assert _score(prospect) == 80
    # The prospect comes back (an activity at day 62)...
    Prospect.objects.filter(pk=prospect.pk).update(last_activity_at=NOW + 31 * DAY)
    score_decay_run(now=NOW + 50 * DAY)  # 19 days later: nothing
    assert _score(prospect) == 80
    score_decay_run(now=NOW + 62 * DAY)  # 31 days after the new activity: period 1 again
    assert _score(prospect) == 70 == _ledger_sum(prospect)
    assert _decay_rows(prospect).count() == 3


def test_a_new_rule_takes_one_step_from_long_inactive_prospects() -> None:
    _rule(points=-10, days=30)
    prospect = _prospect(100, last_activity_days_ago=365)
    score_decay_run(now=NOW)
    assert _score(prospect) == 90  # not 12 periods at once
    key = _decay_rows(prospect).get().first_key
    assert key is not None and key.endswith(":12")


def test_a_prospect_never_active_decays_from_its_creation() -> None:
    _rule(points=-10, days=30)
    new = _prospect(20, last_activity_days_ago=None, created_days_ago=10)
    old = _prospect(20, last_activity_days_ago=None, created_days_ago=45)
    score_decay_run(now=NOW)
    assert _score(new) == 20 and _score(old) == 10


def test_inactive_rules_do_nothing_and_chunks_cover_every_prospect() -> None:
    _rule(is_active=False)
    idle = [_prospect(50, last_activity_days_ago=100) for _ in range(3)]
    assert score_decay_run(now=NOW) == 0
    _rule(points=-5)
    assert score_decay_run(now=NOW, chunk=1) == 3
    assert [_score(prospect) for prospect in idle] == [45, 45, 45]


def test_the_beat_task_runs_the_decay(eager_celery: None) -> None:
    _rule(points=-10, days=30)
    prospect = _prospect(50, last_activity_days_ago=45)
    assert apply_score_decay.delay().get() == 1
    assert apply_score_decay.delay().get() == 0
    assert _score(prospect) == 40 == _ledger_sum(prospect)


def test_decay_refreshes_dynamic_lists_with_score_criteria(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prospects import services as prospect_services

    _rule()
    prospect = _prospect(50, last_activity_days_ago=45)
    refreshed: list[list[int]] = []
    monkeypatch.setattr(
        prospect_services,
        "schedule_dynamic_list_refresh",
        lambda ids: refreshed.append(sorted(ids)),
    )
    score_decay_run(now=NOW)
    assert refreshed == [[prospect.pk]]


# --- pages ----------------------------------------------------------------------------------------


def test_sales_users_cannot_see_decay_rules(sales_user: User) -> None:
    client = client_for(sales_user)
    assert client.get(reverse("decay:list")).status_code == 403
    response = client.post(
        reverse("decay:create"), {"name": "x", "inactive_days": 30, "points": -10, "floor": 0}
    )
    assert response.status_code == 403
    assert not ScoreDecayRule.objects.exists()


def test_sales_managers_read_but_do_not_edit(sales_manager: User) -> None:
    rule = _rule()
    client = client_for(sales_manager)
    assert client.get(reverse("decay:list")).status_code == 200
    assert client.get(reverse("decay:edit", args=[rule.pk])).status_code == 403
    assert client.post(reverse("decay:delete", args=[rule.pk])).status_code == 403
    assert ScoreDecayRule.objects.count() == 1


def test_a_marketer_creates_edits_and_deletes_a_rule(marketer: User, english: None) -> None:
    client = client_for(marketer)
    assert client.get(reverse("decay:create")).status_code == 200
    response = client.post(
        reverse("decay:create"),
        {"name": "<b>90日</b>", "inactive_days": 90, "points": -20, "floor": 10, "is_active": "on"},
    )
    assert response.status_code == 302
    rule = ScoreDecayRule.objects.get()
    assert (rule.inactive_days, rule.points, rule.floor, rule.is_active) == (90, -20, 10, True)
    listing = client.get(reverse("decay:list")).content.decode()
    assert "&lt;b&gt;90日&lt;/b&gt;" in listing
    response = client.post(
        reverse("decay:edit", args=[rule.pk]),
        {"name": "90日", "inactive_days": 60, "points": -5, "floor": 0},
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.inactive_days, rule.points, rule.is_active) == (60, -5, False)
    assert client.post(reverse("decay:delete", args=[rule.pk])).status_code == 302
    assert not ScoreDecayRule.objects.exists()
    actions = set(AuditLogEntry.objects.values_list("action", flat=True))
    assert {
        "scoring.decay_rule_create",
        "scoring.decay_rule_change",
        "scoring.decay_rule_delete",
    } <= actions


@pytest.mark.parametrize(
    ("fields", "field_with_error"),
    [
        ({"points": 10}, "points"),  # decay takes points away
        ({"points": 0}, "points"),
        ({"points": "x"}, "points"),
        ({"inactive_days": 0}, "inactive_days"),
        ({"inactive_days": 100_000}, "inactive_days"),
        ({"floor": 10**12}, "floor"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_rules_are_refused(
    marketer: User, fields: dict[str, Any], field_with_error: str
) -> None:
    data = {"name": "30日", "inactive_days": 30, "points": -10, "floor": 0, **fields}
    response = client_for(marketer).post(reverse("decay:create"), data)
    assert response.status_code == 200
    assert field_with_error in response.context["form"].errors
    assert not ScoreDecayRule.objects.exists()


def test_unknown_rules_are_404(marketer: User) -> None:
    client = client_for(marketer)
    assert client.get(reverse("decay:edit", args=[999_999])).status_code == 404
    assert client.post(reverse("decay:delete", args=[999_999])).status_code == 404
