"""Automation rules' background jobs: they take ids and are safe to run twice (a match is a
unique row and every action run is keyed by it)."""

from __future__ import annotations

from celery import shared_task
from django.db import transaction


@shared_task(name="engagement.evaluate_rule", acks_late=True)
def evaluate_rule(rule_id: int, after_id: int = 0) -> int:
    """One chunk of a rule's pass over every prospect; queues the next chunk. Returns the
    number of new matches in this chunk."""
    from engagement.rules import automation_rule_evaluate_chunk

    result = automation_rule_evaluate_chunk(rule_id=rule_id, after_id=after_id)
    next_after_id = result.next_after_id
    if next_after_id is not None:
        transaction.on_commit(lambda: evaluate_rule.delay(rule_id, next_after_id))
    return len(result.matches)


@shared_task(name="engagement.evaluate_rules_for_prospects", acks_late=True)
def evaluate_rules_for_prospects(prospect_ids: list[int]) -> int:
    """Every running rule on these prospects (they changed or did something)."""
    from engagement.rules import automation_rules_evaluate_for_prospects

    return sum(automation_rules_evaluate_for_prospects(prospect_ids=prospect_ids).values())


@shared_task(name="engagement.sweep_automation_rules")
def sweep_automation_rules() -> int:
    """Hourly: a full pass of every running rule (criteria that move with time)."""
    from engagement.rules import automation_rules_sweep

    return automation_rules_sweep()
