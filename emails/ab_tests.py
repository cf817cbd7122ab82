"""A/B tests of list emails: measure the variants, choose the winner, release the rest.

The split itself happens when the send starts (emails.sending.ab_test_split): a share of the
recipients is spread evenly over the variants and the others are "held". When the test's
duration has passed, :func:`ab_test_decide` compares the variants by the chosen metric and gives
every held row the winning variant, in one transaction with the send locked, so a retried or
doubled dispatcher decides once.

The metrics are the report's own numbers (emails.reports.variant_counts): unique *human*
openers (a clicker counts as an opener) or clickers — machine opens and bot clicks never count —
over delivered messages (sent minus bounced). A tie goes to the earlier letter, so the outcome
does not depend on row order.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from emails.models import (
    AbWinnerMetric,
    ListEmail,
    ListEmailStatus,
    ListEmailVariant,
    Recipient,
    RecipientStatus,
)
from emails.reports import Counts, variant_counts

logger = logging.getLogger(__name__)

#: A paused send's test is decided too (its held rows wait for the resume); a sent one is when
#: everyone got a variant (a 100 % split): the winner is then what the report names.
DECIDABLE = (ListEmailStatus.SENDING, ListEmailStatus.PAUSED, ListEmailStatus.SENT)


@dataclass(frozen=True)
class VariantScore:
    variant_id: int
    letter: str
    delivered: int
    unique_openers: int
    unique_clickers: int

    def rate(self, metric: str) -> float:
        if self.delivered == 0:
            return 0.0
        chosen = (
            self.unique_clickers if metric == AbWinnerMetric.CLICK_RATE else self.unique_openers
        )
        return chosen / self.delivered


def variant_scores(list_email: ListEmail) -> list[VariantScore]:
    """Delivered, unique human openers and clickers per variant, in letter order."""
    counts = variant_counts(list_email)
    scores = []
    for variant in ListEmailVariant.objects.filter(list_email=list_email).order_by("letter"):
        found = counts.get(variant.pk, Counts())
        scores.append(
            VariantScore(
                variant_id=variant.pk,
                letter=variant.letter,
                delivered=found.delivered,
                unique_openers=found.unique_opens,
                unique_clickers=found.clickers,
            )
        )
    return scores


def winner_choose(scores: list[VariantScore], metric: str) -> VariantScore | None:
    """The best rate; ties go to the earlier letter (scores come in letter order)."""
    best: VariantScore | None = None
    for score in scores:
        if best is None or score.rate(metric) > best.rate(metric):
            best = score
    return best


def ab_test_is_due(list_email: ListEmail, now: datetime.datetime) -> bool:
    return (
        list_email.ab_test_percent is not None
        and list_email.ab_decided_at is None
        and list_email.started_at is not None
        and list_email.started_at + datetime.timedelta(hours=list_email.ab_test_hours) <= now
    )


def ab_test_decide(*, list_email_id: int, now: datetime.datetime | None = None) -> bool:
    """Choose the winner of a due test and queue the held rows with it; True if decided now."""
    now = now or timezone.now()
    due_at = timezone.now()  # released rows are due at once, whatever ``now`` was asked about
    with transaction.atomic():
        list_email = ListEmail.objects.select_for_update().filter(pk=list_email_id).first()
        if list_email is None or list_email.status not in DECIDABLE:
            return False
        if not ab_test_is_due(list_email, now):
            return False
        winner = winner_choose(variant_scores(list_email), list_email.ab_winner_metric)
        if winner is None:
            # the variants were deleted: the held rows get the email's own content
            released = Recipient.objects.filter(
                list_email=list_email, status=RecipientStatus.HELD
            ).update(status=RecipientStatus.QUEUED, next_attempt_at=due_at)
        else:
            released = Recipient.objects.filter(
                list_email=list_email, status=RecipientStatus.HELD
            ).update(
                status=RecipientStatus.QUEUED, variant_id=winner.variant_id, next_attempt_at=due_at
            )
        list_email.ab_winner_id = winner.variant_id if winner else None
        list_email.ab_decided_at = now
        list_email.save(update_fields=["ab_winner", "ab_decided_at", "updated_at"])
    logger.info(
        "A/B test of list email %s decided: variant %s, %s held recipients released",
        list_email_id,
        winner.letter if winner else "-",
        released,
    )
    return True


def ab_tests_due(now: datetime.datetime | None = None) -> list[int]:
    """Sends whose test duration has passed and whose winner is not chosen yet."""
    now = now or timezone.now()
    candidates = ListEmail.objects.filter(
        status__in=DECIDABLE,
        ab_test_percent__isnull=False,
        ab_decided_at__isnull=True,
        started_at__isnull=False,
    )
    return [email.pk for email in candidates if ab_test_is_due(email, now)]
