"""Automation rules: criteria (prospects.criteria) + catalogue actions (prospects.actions).

A running rule matches each prospect that meets its criteria once — or again once
``repeat_after_days`` have passed since its last match — and runs its actions on every new
match. It never "unmatches". Evaluation is set-based: one statement selects the prospects that
match now and have no (recent enough) match, inserts their ``AutomationRuleMatch`` rows with
``ON CONFLICT DO NOTHING`` (two workers never match a prospect twice) and returns the new ones;
the rule's actions then run on those, in the same transaction, each keyed
``automation:{rule}:{prospect}:{ordinal}`` so a retried job acts once.

Triggers: creating a rule as running, resuming it or editing a running rule evaluates every
prospect in the background (retroactive); new activities and changed prospects evaluate every
running rule on those prospects; an hourly sweep catches criteria that move with time ("no
activity for 365 days"). A rule whose criteria became invalid (a deleted custom field, list or
user) is paused with its error shown and administrators are told, once; the other rules run on.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from engagement.models import AutomationRule, AutomationRuleMatch, RuleStatus
from prospects.actions import ActionContext, actions_run, actions_validate, get_action
from prospects.criteria import CriteriaError, compile_criteria, validate_criteria
from prospects.models import Prospect

if TYPE_CHECKING:
    from mapp.models import User
    from tracking.models import Activity

logger = logging.getLogger(__name__)

CONSUMER_KEY = "engagement.automation_rules"
CAUSE_TYPE = "automation_rule"
MAX_REPEAT_DAYS = 3650
# A retroactive pass or sweep reads prospects in id ranges of this size: one range scan of the
# primary key plus the criteria per chunk (≈ 10,000 rows ≈ tens of ms for typical criteria).
EVALUATION_RANGE = 10_000
# New matches per transaction: each runs the rule's actions (≈ 10 queries, ≈ 10 ms per action
# measured with "add tag"), so 200 matches hold their prospects' row locks ≈ 2 s per action
# before committing; a match without actions costs ≈ 0.2 ms.
MATCHES_PER_TRANSACTION = 200

_MATCH_TABLE = AutomationRuleMatch._meta.db_table
# Per thread: the prospects changed by the actions of the batch committing now (see
# _coalesced_prospect_changes).
_changes = threading.local()


# --- evaluation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewMatch:
    prospect_id: int
    ordinal: int


@dataclass
class ChunkResult:
    """One evaluated chunk: new matches, and where the next chunk starts (None: done)."""

    matches: list[NewMatch] = field(default_factory=list)
    next_after_id: int | None = None
    paused: bool = False


def _running_rule(rule_id: int) -> AutomationRule | None:
    return AutomationRule.objects.filter(pk=rule_id, status=RuleStatus.RUNNING).first()


def _rule_condition(rule: AutomationRule) -> Q | None:
    """The rule's criteria as a Q, validated afresh (a custom field, list or user it names may
    have been deleted since it was saved). None: the rule was paused with the error."""
    try:
        return compile_criteria(validate_criteria(rule.criteria), validated=True)
    except CriteriaError as error:
        automation_rule_pause_for_error(rule=rule, message=str(error))
        return None


def _select_and_insert(
    *, rule: AutomationRule, condition: Q, scope: Q, now: datetime.datetime, limit: int
) -> tuple[list[NewMatch], int, int | None]:
    """One statement: up to ``limit`` prospects in ``scope`` that meet ``condition`` and are due
    (never matched, or last matched before the repeat cutoff), in id order, get a match row.

    Returns (new matches, prospects selected, last selected prospect id). A prospect selected
    but not inserted was matched by a concurrent worker in the meantime.
    """
    matching = Prospect.objects.filter(scope).filter(condition).order_by().values("id")
    matching_sql, matching_params = matching.query.sql_with_params()
    repeat_days = rule.repeat_after_days if rule.repeat and rule.repeat_after_days else None
    cutoff = now - datetime.timedelta(days=repeat_days) if repeat_days else None
    sql = f"""
        WITH candidate AS (
            SELECT matching.id AS prospect_id, previous.ordinal AS ordinal
              FROM ({matching_sql}) AS matching
              LEFT JOIN LATERAL (
                    SELECT m.ordinal, m.matched_at FROM {_MATCH_TABLE} m
                     WHERE m.rule_id = %s AND m.prospect_id = matching.id
                     ORDER BY m.ordinal DESC LIMIT 1) AS previous ON TRUE
             WHERE previous.ordinal IS NULL OR previous.matched_at <= %s::timestamptz
             ORDER BY matching.id
             LIMIT %s),
        inserted AS (
            INSERT INTO {_MATCH_TABLE} (rule_id, prospect_id, ordinal, matched_at)
            SELECT %s, prospect_id, COALESCE(ordinal, 0) + 1, %s FROM candidate
            ON CONFLICT (rule_id, prospect_id, ordinal) DO NOTHING
            RETURNING prospect_id, ordinal)
        SELECT candidate.prospect_id, inserted.ordinal
          FROM candidate LEFT JOIN inserted USING (prospect_id)
         ORDER BY candidate.prospect_id
    """  # noqa: S608 - table names from Django, values as parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, [*matching_params, rule.pk, cutoff, limit, rule.pk, now])
        rows = cursor.fetchall()
    new = [NewMatch(prospect_id=row[0], ordinal=row[1]) for row in rows if row[1] is not None]
    return new, len(rows), (rows[-1][0] if rows else None)


def _run_actions(rule: AutomationRule, matches: Sequence[NewMatch]) -> None:
    if not matches or not rule.actions:
        return
    prospects = Prospect.objects.in_bulk([match.prospect_id for match in matches])
    for match in matches:
        prospect = prospects.get(match.prospect_id)
        if prospect is None:
            continue  # deleted meanwhile: its match row goes with it (CASCADE)
        actions_run(
            actions=rule.actions,
            prospect=prospect,
            context=ActionContext(
                cause_type=CAUSE_TYPE,
                cause_id=rule.pk,
                cause_label=rule.name,
                idempotency_key=f"automation:{rule.pk}:{match.prospect_id}:{match.ordinal}",
            ),
        )


@contextmanager
def _coalesced_prospect_changes() -> Iterator[None]:
    """While a batch runs and commits, the prospects its actions change are collected instead
    of each queuing its own evaluation (the prospects-changed listener runs once per changed
    prospect); one task evaluates them all afterwards, so rules that build on another rule's
    actions still see the change. Inside a caller's transaction the listener runs later, at
    the caller's commit, and queues as usual."""
    pending: set[int] = set()
    previous = getattr(_changes, "pending", None)
    _changes.pending = pending
    try:
        yield
    finally:
        _changes.pending = previous
    if pending:
        schedule_prospects_evaluation(sorted(pending))


def _match_batch(
    *, rule: AutomationRule, condition: Q, scope: Q, now: datetime.datetime, limit: int
) -> tuple[list[NewMatch], int, int | None]:
    """Insert one batch of matches, run their actions and count them, in one transaction: a
    worker killed half-way leaves neither the matches nor their actions."""
    with _coalesced_prospect_changes(), transaction.atomic():
        new, selected, last_id = _select_and_insert(
            rule=rule, condition=condition, scope=scope, now=now, limit=limit
        )
        _run_actions(rule, new)
        if new:
            # Last, so the rule's row is locked only for the moment before the commit.
            AutomationRule.objects.filter(pk=rule.pk).update(
                matched_count=F("matched_count") + len(new), last_evaluated_at=now
            )
    return new, selected, last_id


def _range_end(after_id: int, size: int) -> int | None:
    """The id of the ``size``-th prospect after ``after_id`` (None: fewer are left)."""
    return (
        Prospect.objects.filter(pk__gt=after_id)
        .order_by("pk")
        .values_list("pk", flat=True)[size - 1 : size]
        .first()
    )


def automation_rule_evaluate_chunk(
    *,
    rule_id: int,
    after_id: int = 0,
    now: datetime.datetime | None = None,
    range_size: int | None = None,
    limit: int | None = None,
) -> ChunkResult:
    """Evaluate a running rule on the prospects with ids after ``after_id`` (one id range, or
    ``limit`` new matches, whichever ends first); committed when it returns."""
    rule = _running_rule(rule_id)
    if rule is None:
        return ChunkResult()  # paused or deleted since: the pass stops
    condition = _rule_condition(rule)
    if condition is None:
        return ChunkResult(paused=True)
    now = now or timezone.now()
    limit = limit or MATCHES_PER_TRANSACTION
    end = _range_end(after_id, range_size or EVALUATION_RANGE)
    scope = Q(pk__gt=after_id) if end is None else Q(pk__gt=after_id, pk__lte=end)
    new, selected, last_id = _match_batch(
        rule=rule, condition=condition, scope=scope, now=now, limit=limit
    )
    if selected >= limit and last_id is not None:
        return ChunkResult(matches=new, next_after_id=last_id)
    if end is None:
        AutomationRule.objects.filter(pk=rule.pk).update(last_evaluated_at=now)
        return ChunkResult(matches=new)
    return ChunkResult(matches=new, next_after_id=end)


def automation_rule_evaluate_all(
    *,
    rule_id: int,
    now: datetime.datetime | None = None,
    range_size: int | None = None,
    limit: int | None = None,
) -> int:
    """Evaluate a rule over every prospect, chunk after chunk in this process (the task runs
    one chunk per task instead). Returns the number of new matches."""
    total = 0
    after_id: int | None = 0
    while after_id is not None:
        result = automation_rule_evaluate_chunk(
            rule_id=rule_id, after_id=after_id, now=now, range_size=range_size, limit=limit
        )
        total += len(result.matches)
        after_id = result.next_after_id
    return total


def automation_rules_evaluate_for_prospects(
    *,
    prospect_ids: Sequence[int],
    now: datetime.datetime | None = None,
    limit: int | None = None,
) -> dict[int, int]:
    """Evaluate every running rule on these prospects (they changed, or did something).

    Returns new matches per rule id. A rule with invalid criteria is paused; the others run.
    """
    ids = sorted({int(prospect_id) for prospect_id in prospect_ids})
    if not ids:
        return {}
    now = now or timezone.now()
    limit = limit or MATCHES_PER_TRANSACTION
    matched: dict[int, int] = {}
    for rule in AutomationRule.objects.filter(status=RuleStatus.RUNNING).order_by("pk"):
        condition = _rule_condition(rule)
        if condition is None:
            continue
        remaining = ids
        count = 0
        while remaining:
            new, selected, last_id = _match_batch(
                rule=rule, condition=condition, scope=Q(pk__in=remaining), now=now, limit=limit
            )
            count += len(new)
            if selected < limit or last_id is None:
                break
            remaining = [prospect_id for prospect_id in remaining if prospect_id > last_id]
        matched[rule.pk] = count
    return matched


# --- errors -------------------------------------------------------------------------------------


def automation_rule_pause_for_error(*, rule: AutomationRule, message: str) -> bool:
    """Pause a running rule that cannot be evaluated and tell the administrators, once.

    Only the worker whose update moves the rule from running to paused notifies (several may
    find the error at once), with a key per run of the rule, so a retried job is silent too.
    Returns whether this call paused the rule.
    """
    from mapp.notifications import notify_administrators

    error = message[:2000]
    with transaction.atomic():
        paused = AutomationRule.objects.filter(pk=rule.pk, status=RuleStatus.RUNNING).update(
            status=RuleStatus.PAUSED, error=error, updated_at=timezone.now()
        )
        if not paused:
            return False
        since = rule.resumed_at or rule.created_at
        logger.warning("automation rule %s paused: %s", rule.pk, error)
        notify_administrators(
            title=_("Automation rule paused: %(name)s") % {"name": rule.name},
            body=_(
                "The automation rule “%(name)s” could not be evaluated and was paused: "
                "%(error)s Fix its criteria, then resume it."
            )
            % {"name": rule.name, "error": error},
            url=reverse("automation:detail", args=[rule.pk]),
            dedup_key=f"automation-rule-error:{rule.pk}:{since.isoformat() if since else ''}",
        )
    rule.status = RuleStatus.PAUSED
    rule.error = error
    return True


# --- scheduling ---------------------------------------------------------------------------------


def _after_commit(callback: Callable[[], object]) -> None:
    """Queue work once the caller's transaction commits, never letting a broker failure reach
    the caller (an activity delivery, a prospect save): the hourly sweep catches up."""
    from kombu.exceptions import OperationalError

    def send() -> None:
        try:
            callback()
        except (OperationalError, OSError):
            logger.warning("could not queue automation rule work; the hourly sweep will catch up")

    transaction.on_commit(send)


def schedule_rule_evaluation(rule_id: int) -> None:
    """After commit: evaluate the rule over every prospect in the background (retroactive)."""
    from engagement.tasks import evaluate_rule

    _after_commit(lambda: evaluate_rule.delay(rule_id, 0))


def schedule_prospects_evaluation(prospect_ids: Sequence[int]) -> None:
    """After commit: evaluate the running rules on these prospects in the background."""
    from engagement.tasks import evaluate_rules_for_prospects

    ids = sorted({int(prospect_id) for prospect_id in prospect_ids})
    if not ids:
        return

    def send() -> None:
        if AutomationRule.objects.filter(status=RuleStatus.RUNNING).exists():
            evaluate_rules_for_prospects.delay(ids)

    _after_commit(send)


def automation_rules_sweep() -> int:
    """Start a full evaluation of every running rule (criteria that move with time)."""
    rule_ids = list(
        AutomationRule.objects.filter(status=RuleStatus.RUNNING)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for rule_id in rule_ids:
        schedule_rule_evaluation(rule_id)
    return len(rule_ids)


# --- writes from the UI -------------------------------------------------------------------------


def _clean_rule(
    *,
    name: str,
    criteria: Any,
    actions: Any,
    repeat: bool,
    repeat_after_days: int | None,
    actor: User | None,
) -> tuple[str, dict[str, Any], list[dict[str, Any]], int | None]:
    """The rule's cleaned name, criteria, actions and repeat days, or ValidationError."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": _("A rule needs a name.")})
    errors: dict[str, list[str]] = {}
    try:
        clean_criteria = validate_criteria(criteria)
    except CriteriaError as error:
        errors["criteria"] = [str(error)]
        clean_criteria = {}
    else:
        if not clean_criteria["conditions"]:
            errors["criteria"] = [
                _("Add at least one condition: a rule without one would match every prospect.")
            ]
    try:
        clean_actions = actions_validate(actions, actor=actor)
    except ValidationError as error:
        errors["actions"] = error.messages
        clean_actions = []
    else:
        if not clean_actions:
            errors["actions"] = [_("Add at least one action.")]
    days: int | None = None
    if repeat:
        if repeat_after_days is None or not 1 <= repeat_after_days <= MAX_REPEAT_DAYS:
            errors["repeat_after_days"] = [
                _("A repeating rule needs a number of days from 1 to %(max)d.")
                % {"max": MAX_REPEAT_DAYS}
            ]
        days = repeat_after_days
    if errors:
        raise ValidationError(errors)
    return name, clean_criteria, clean_actions, days


def automation_rule_create(
    *,
    actor: User | None,
    name: str,
    description: str = "",
    criteria: Any,
    actions: Any,
    repeat: bool = False,
    repeat_after_days: int | None = None,
    run: bool = False,
) -> AutomationRule:
    """Create a rule, paused unless ``run`` (then every prospect is evaluated right away)."""
    from mapp.services import audit_log_record

    name, clean_criteria, clean_actions, days = _clean_rule(
        name=name,
        criteria=criteria,
        actions=actions,
        repeat=repeat,
        repeat_after_days=repeat_after_days,
        actor=actor,
    )
    with transaction.atomic():
        rule = AutomationRule.objects.create(
            name=name[:200],
            description=description,
            criteria=clean_criteria,
            actions=clean_actions,
            repeat=repeat,
            repeat_after_days=days,
            status=RuleStatus.RUNNING if run else RuleStatus.PAUSED,
            resumed_at=timezone.now() if run else None,
            created_by=actor,
        )
        audit_log_record(
            actor=actor,
            action="automation.rule_create",
            target=rule,
            changes={"status": rule.status, "actions": [item["action"] for item in clean_actions]},
        )
        if run:
            schedule_rule_evaluation(rule.pk)
    return rule


def automation_rule_update(
    *,
    actor: User | None,
    rule: AutomationRule,
    name: str,
    description: str = "",
    criteria: Any,
    actions: Any,
    repeat: bool = False,
    repeat_after_days: int | None = None,
    run: bool = False,
) -> AutomationRule:
    """Change a rule. A running rule (or one started with ``run``) evaluates every prospect
    again; prospects it matched before keep their match and are not acted on again."""
    from mapp.services import audit_log_record

    name, clean_criteria, clean_actions, days = _clean_rule(
        name=name,
        criteria=criteria,
        actions=actions,
        repeat=repeat,
        repeat_after_days=repeat_after_days,
        actor=actor,
    )
    with transaction.atomic():
        locked = AutomationRule.objects.select_for_update().get(pk=rule.pk)
        starting = run and locked.status != RuleStatus.RUNNING
        rule.name = name[:200]
        rule.description = description
        rule.criteria = clean_criteria
        rule.actions = clean_actions
        rule.repeat = repeat
        rule.repeat_after_days = days
        rule.error = ""  # the criteria were just validated
        rule.status = RuleStatus.RUNNING if run else locked.status
        rule.resumed_at = timezone.now() if starting else locked.resumed_at
        rule.save(
            update_fields=[
                "name",
                "description",
                "criteria",
                "actions",
                "repeat",
                "repeat_after_days",
                "error",
                "status",
                "resumed_at",
                "updated_at",
            ]
        )
        audit_log_record(
            actor=actor,
            action="automation.rule_change",
            target=rule,
            changes={"status": rule.status, "actions": [item["action"] for item in clean_actions]},
        )
        if rule.status == RuleStatus.RUNNING:
            schedule_rule_evaluation(rule.pk)
    return rule


def automation_rule_resume(*, actor: User | None, rule: AutomationRule) -> AutomationRule:
    """Start a paused rule: every prospect that matches now and has not matched yet is matched
    (retroactive), then changes and activities keep it current. Raises CriteriaError when its
    criteria are not valid any more (the rule stays paused)."""
    from mapp.services import audit_log_record

    validate_criteria(rule.criteria)
    with transaction.atomic():
        now = timezone.now()
        started = AutomationRule.objects.filter(pk=rule.pk, status=RuleStatus.PAUSED).update(
            status=RuleStatus.RUNNING, error="", resumed_at=now, updated_at=now
        )
        if started:
            audit_log_record(actor=actor, action="automation.rule_resume", target=rule)
            schedule_rule_evaluation(rule.pk)
    rule.refresh_from_db()
    return rule


def automation_rule_pause(*, actor: User | None, rule: AutomationRule) -> AutomationRule:
    from mapp.services import audit_log_record

    with transaction.atomic():
        paused = AutomationRule.objects.filter(pk=rule.pk, status=RuleStatus.RUNNING).update(
            status=RuleStatus.PAUSED, updated_at=timezone.now()
        )
        if paused:
            audit_log_record(actor=actor, action="automation.rule_pause", target=rule)
    rule.refresh_from_db()
    return rule


def automation_rule_delete(*, actor: User | None, rule: AutomationRule) -> None:
    """Delete the rule and its match history; what its actions did stays done."""
    from mapp.services import audit_log_record

    with transaction.atomic():
        audit_log_record(
            actor=actor,
            action="automation.rule_delete",
            target=rule,
            changes={"name": rule.name, "matched_count": rule.matched_count},
        )
        rule.delete()


# --- reads --------------------------------------------------------------------------------------


def automation_rules_for_list() -> QuerySet[AutomationRule]:
    return AutomationRule.objects.order_by("name", "id")


@dataclass(frozen=True)
class RulePreview:
    """Prospects meeting the criteria now, and how many of them the rule would act on if it
    ran now (not matched yet, or due again); ``error`` when the criteria are not valid."""

    matching: int | None = None
    due: int | None = None
    error: str = ""


def automation_rule_preview(
    *, rule: AutomationRule, now: datetime.datetime | None = None
) -> RulePreview:
    """Both counts in one COUNT query over all prospects (rules act on every prospect)."""
    try:
        condition = compile_criteria(validate_criteria(rule.criteria), validated=True)
    except CriteriaError as error:
        return RulePreview(error=str(error))
    previous = AutomationRuleMatch.objects.filter(rule_id=rule.pk, prospect_id=OuterRef("pk"))
    if rule.repeat and rule.repeat_after_days:
        now = now or timezone.now()
        cutoff = now - datetime.timedelta(days=rule.repeat_after_days)
        previous = previous.filter(matched_at__gt=cutoff)
    counts = Prospect.objects.filter(condition).aggregate(
        matching=Count("pk"), due=Count("pk", filter=~Q(Exists(previous)))
    )
    return RulePreview(matching=counts["matching"], due=counts["due"])


def automation_rule_history(*, rule: AutomationRule, user: User) -> QuerySet[AutomationRuleMatch]:
    """The rule's matches, newest first, limited to the prospects ``user`` may see."""
    from mapp.access import has_access, sees_all_prospects
    from mapp.models import Level, Module
    from prospects.selectors import prospects_visible_to

    matches = (
        AutomationRuleMatch.objects.filter(rule=rule)
        .select_related("prospect")
        .order_by("-matched_at", "-id")
    )
    if sees_all_prospects(user) and has_access(user, Module.PROSPECTS, Level.VIEW):
        return matches
    return matches.filter(prospect__in=prospects_visible_to(user).values("pk"))


# --- describing criteria and actions for people --------------------------------------------------


@dataclass
class CriteriaGroupSummary:
    match: str
    items: list[CriteriaGroupSummary | str] = field(default_factory=list)
    is_group: bool = True  # what the template tells groups from sentences by


def _value_text(value: Any, labels: dict[str, str]) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_value_text(item, labels) for item in value)
    return labels.get(str(value), str(value))


def _operator_labels(entry: dict[str, Any], operators: dict[str, Any], value_type: str) -> Any:
    specs = entry.get("operators") or operators.get(value_type, [])
    return {spec["key"]: (spec["label"], spec["arity"]) for spec in specs}


def _condition_text(
    condition: dict[str, Any], subjects: dict[str, Any], operators: dict[str, Any]
) -> str:
    entry = subjects.get(condition.get("subject", ""))
    if entry is None:
        return _("Unknown condition (%(subject)s)") % {"subject": condition.get("subject")}
    subject_label = entry["label"]
    if condition["subject"] == "activity":
        types = {str(key): str(label) for key, label in entry.get("activity_types", [])}
        ops = _operator_labels(entry, operators, "")
        text = _("%(operator)s %(activity)s") % {
            "operator": ops.get(condition.get("operator"), (condition.get("operator"), ""))[0],
            "activity": types.get(
                condition.get("activity_type", ""), condition.get("activity_type")
            ),
        }
        if condition.get("object"):
            text += " " + _("on “%(object)s”") % {"object": condition["object"]}
        if int(condition.get("count") or 1) > 1:
            text += " " + _("at least %(count)d times") % {"count": int(condition["count"])}
        if condition.get("days"):
            text += " " + _("in the last %(days)d days") % {"days": int(condition["days"])}
        return f"{subject_label}: {text}"
    labels: dict[str, str] = {str(key): str(label) for key, label in entry.get("values") or []}
    value_type = ""
    if "fields" in entry:
        fields = {item["key"]: item for item in entry["fields"]}
        field_entry = fields.get(condition.get("field"))
        if field_entry is None:
            subject_label = f"{subject_label}: {condition.get('field')}"
        else:
            subject_label = f"{subject_label}: {field_entry['label']}"
            value_type = field_entry.get("type") or ""
            labels.update({str(key): str(label) for key, label in field_entry.get("choices") or []})
    ops = _operator_labels(entry, operators, value_type)
    operator_label, arity = ops.get(condition.get("operator"), (condition.get("operator"), ""))
    value = condition.get("value")
    if arity == "two" and isinstance(value, list) and len(value) == 2:
        value_text = _("%(low)s and %(high)s") % {
            "low": _value_text(value[0], labels),
            "high": _value_text(value[1], labels),
        }
    elif arity == "days":
        value_text = _("%(days)s days") % {"days": value}
    else:
        value_text = _value_text(value, labels)
    return " ".join(part for part in (subject_label, str(operator_label), value_text) if part)


def criteria_summary(criteria: dict[str, Any]) -> CriteriaGroupSummary:
    """The criteria as nested groups of sentences, for the rule page (not for evaluation)."""
    from prospects.criteria import criteria_catalogue

    catalogue = criteria_catalogue()
    subjects = {entry["key"]: entry for entry in catalogue["subjects"]}
    operators = catalogue["operators"]

    def group(document: dict[str, Any]) -> CriteriaGroupSummary:
        summary = CriteriaGroupSummary(match=str(document.get("match", "all")))
        for item in document.get("conditions", []):
            if not isinstance(item, dict):
                continue
            if "conditions" in item and "subject" not in item:
                summary.items.append(group(item))
            else:
                summary.items.append(_condition_text(item, subjects, operators))
        return summary

    return group(criteria if isinstance(criteria, dict) else {})


@dataclass(frozen=True)
class ActionSummary:
    label: str
    settings: list[tuple[str, str]]


def actions_summary(actions: list[dict[str, Any]]) -> list[ActionSummary]:
    """Each stored action with its settings in words ("List: 休眠リスト")."""
    from django import forms

    summaries = []
    for item in actions:
        key = str(item.get("action", ""))
        action = get_action(key)
        if action is None:
            summaries.append(ActionSummary(label=key, settings=[]))
            continue
        config_form = action.config_form()
        config = item.get("config") or {}
        settings = []
        for name, form_field in config_form.fields.items():
            if name not in config:
                continue
            value = config[name]
            shown = str(value)
            if isinstance(form_field, forms.ModelChoiceField):
                queryset = form_field.queryset
                instance = queryset.filter(pk=value).first() if queryset is not None else None
                shown = (
                    form_field.label_from_instance(instance)
                    if instance is not None
                    else _("(deleted: %(id)s)") % {"id": value}
                )
            elif isinstance(form_field, forms.BooleanField):
                shown = _("Yes") if value else _("No")
            elif isinstance(form_field, forms.ChoiceField):
                choices = cast("Iterable[tuple[Any, Any]]", form_field.choices)
                for choice_value, choice_label in choices:
                    if str(choice_value) == str(value):
                        shown = str(choice_label)
                        break
            if shown == "":
                shown = "—"
            settings.append((str(form_field.label or name), shown))
        summaries.append(ActionSummary(label=str(action.label), settings=settings))
    return summaries


# --- registration -------------------------------------------------------------------------------


def _on_activities(activities: list[Activity]) -> None:
    """Activity consumer: runs inside the delivery transaction, so it only queues work for
    after the commit (and never fails the delivery)."""
    schedule_prospects_evaluation(
        [activity.prospect_id for activity in activities if activity.prospect_id]
    )


def _on_prospects_changed(prospect_ids: list[int]) -> None:
    """Prospects-changed listener (called after commit): evaluate the running rules on them."""
    pending = getattr(_changes, "pending", None)
    if pending is not None:
        pending.update(prospect_ids)  # a batch of ours is committing: it queues them at once
        return
    schedule_prospects_evaluation(prospect_ids)


def register() -> None:
    """Called from EngagementConfig.ready(): the activity consumer, the prospects-changed
    listener and the tasks."""
    from engagement import tasks  # noqa: F401 - registers the Celery tasks
    from prospects.services import register_prospects_changed_listener
    from tracking.consumers import ActivityConsumer, register_activity_consumer

    register_activity_consumer(
        ActivityConsumer(key=CONSUMER_KEY, handle=_on_activities, needs_prospect=True)
    )
    register_prospects_changed_listener(CONSUMER_KEY, _on_prospects_changed)
