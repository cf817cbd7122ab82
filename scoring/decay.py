"""Score decay: points taken from prospects after days without activity (a scheduled rule).

Every hour (beat entry "score decay", task ``scoring.apply_score_decay``) each active
:class:`~scoring.models.ScoreDecayRule` is applied set-based: a prospect whose last activity
(``Prospect.last_activity_at``, kept by the tracking consumer ``tracking.last_activity``;
``created_at`` for a prospect never active) is at least ``inactive_days`` old and whose score is
above the rule's floor gets the rule's points, clamped so the score never goes below the floor.

Once per period: the ledger row's key is ``decay:<rule>:<last activity>:<period>``, the period
being the number of whole ``inactive_days`` since the last activity. So a prospect inactive for
65 days under a "−10 after 30 days" rule lost 10 at day 30 and 10 at day 60; running again in
the same period changes nothing (the ledger's unique key), and new activity starts the count
over (a new last-activity time, new keys). Not retroactive: a new rule takes at most one step
from a long-inactive prospect now (its current period), then one each ``inactive_days``.
"""

from __future__ import annotations

import datetime
import logging

from celery import shared_task
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Max, Min
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from mapp.models import User
from prospects.models import Prospect
from scoring.models import ScoreCause, ScoreDecayRule
from scoring.services import LEDGER, PROSPECTS, _after_score_change, _lock_ledger

logger = logging.getLogger(__name__)

# Prospect ids per transaction. A chunk locks the prospects that decay until it commits (their
# activity deliveries wait). Measured on the development machine: 100k prospects with nothing to
# decay ≈ 0.05 s; 100k all decaying (a new rule on an old account) ≈ 9 s, nearly all of it the
# score update touching every index of the prospects table. 20k keeps a worst-case chunk ≈ 2 s.
DECAY_CHUNK = 20_000
SECONDS_PER_DAY = 86_400
# A chunk that deadlocks with a writer locking prospects in another order is tried again.
DECAY_RETRIES = 3

_DECAY = f"""
WITH candidates AS (
    SELECT p.id, p.score, COALESCE(p.last_activity_at, p.created_at) AS anchor
      FROM {PROSPECTS} p
     WHERE p.id >= %(low)s AND p.id < %(high)s
       AND COALESCE(p.last_activity_at, p.created_at) <= %(cutoff)s
       AND p.score > %(floor)s
     ORDER BY p.id
       FOR NO KEY UPDATE),
inserted AS (
    INSERT INTO {LEDGER} (prospect_id, points, cause, activity_type, first_key, label,
                          occurred_at, created_at)
    SELECT c.id, GREATEST(c.score + %(points)s, %(floor)s) - c.score, %(cause)s, '',
           'decay:' || %(rule)s::text || ':' || floor(extract(epoch FROM c.anchor))::bigint
               || ':' || floor(extract(epoch FROM %(now)s - c.anchor) / %(period)s)::bigint,
           %(label)s, %(now)s, now()
      FROM candidates c
     ORDER BY c.id
    ON CONFLICT DO NOTHING
    RETURNING prospect_id, points)
UPDATE {PROSPECTS} p SET score = p.score + i.points
  FROM inserted i WHERE p.id = i.prospect_id
RETURNING p.id
"""  # noqa: S608


def _decay_label(rule: ScoreDecayRule) -> str:
    with translation.override(settings.LANGUAGE_CODE):
        return (
            _("%(name)s: no activity for %(days)d days")
            % {"name": rule.name, "days": rule.inactive_days}
        )[:255]


def _decay_chunk(
    rules: list[ScoreDecayRule], *, low: int, high: int, now: datetime.datetime
) -> list[int]:
    """Apply the rules, one after another, to prospects with ids in [low, high)."""
    changed: list[int] = []
    with transaction.atomic(), connection.cursor() as cursor:
        _lock_ledger(cursor)
        for rule in rules:
            cursor.execute(
                _DECAY,
                {
                    "low": low,
                    "high": high,
                    "cutoff": now - datetime.timedelta(days=rule.inactive_days),
                    "floor": rule.floor,
                    "points": rule.points,
                    "cause": ScoreCause.DECAY.value,
                    "rule": rule.pk,
                    "now": now,
                    "period": rule.inactive_days * SECONDS_PER_DAY,
                    "label": _decay_label(rule),
                },
            )
            changed.extend(int(row[0]) for row in cursor.fetchall())
        if changed:
            _after_score_change(changed)
    return changed


def score_decay_run(*, now: datetime.datetime | None = None, chunk: int = DECAY_CHUNK) -> int:
    """Apply every active decay rule to every prospect; returns how many scores went down.

    Safe to run at any time and as often as wanted: each prospect decays once per rule and
    period whatever the number of runs.
    """
    now = now or timezone.now()
    rules = list(
        ScoreDecayRule.objects.filter(is_active=True, points__lt=0, inactive_days__gt=0).order_by(
            "inactive_days", "id"
        )
    )
    if not rules:
        return 0
    bounds = Prospect.objects.aggregate(low=Min("id"), high=Max("id"))
    low_id, high_id = bounds["low"], bounds["high"]
    if low_id is None or high_id is None:
        return 0
    decayed = 0
    for low in range(low_id, high_id + 1, chunk):
        for attempt in range(DECAY_RETRIES):
            try:
                decayed += len(_decay_chunk(rules, low=low, high=low + chunk, now=now))
                break
            except OperationalError:
                if attempt == DECAY_RETRIES - 1:
                    raise
                logger.warning("score decay chunk %d-%d retried", low, low + chunk)
    if decayed:
        logger.info("score decay: %d score changes", decayed)
    return decayed


@shared_task(name="scoring.apply_score_decay", acks_late=True)
def apply_score_decay() -> int:
    """Beat, hourly: apply the score decay rules (idempotent per rule and period)."""
    return score_decay_run()


# --- writes ---------------------------------------------------------------------------------------


def decay_rule_save(*, rule: ScoreDecayRule, actor: User | None) -> ScoreDecayRule:
    """Create or change a decay rule (validated by its form); it applies from the next run."""
    from mapp.services import audit_log_record

    with transaction.atomic():
        created = rule.pk is None
        rule.save()
        audit_log_record(
            actor=actor,
            action="scoring.decay_rule_create" if created else "scoring.decay_rule_change",
            target=rule,
            changes={
                "inactive_days": rule.inactive_days,
                "points": rule.points,
                "floor": rule.floor,
                "is_active": rule.is_active,
            },
        )
    return rule


def decay_rule_delete(*, rule: ScoreDecayRule, actor: User | None) -> None:
    """Delete a decay rule; the points it took stay in the ledger (history)."""
    from mapp.services import audit_log_record

    with transaction.atomic():
        audit_log_record(actor=actor, action="scoring.decay_rule_delete", target=rule)
        rule.delete()


def register() -> None:
    """Called from ScoringConfig.ready(): importing this module registers the Celery task."""
    return None
