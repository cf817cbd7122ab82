"""The submission pipeline: store raw first, then process — idempotent, retryable, never lost.

1. :func:`submission_store` writes the post as it came (clipped) in its own, short
   transaction. A double click (same target, same normalised data within
   :data:`DEDUP_WINDOW`) finds the first row instead of writing a second: both requests take a
   PostgreSQL advisory lock on the data's hash, so the check and the insert cannot interleave
   (a unique index on a time bucket would let two clicks straddling a bucket boundary through).
2. :func:`submission_process` runs in one transaction holding the submission's row lock: bot
   checks, validation, prospect upsert (dedup by normalised email), visitor linking, consent,
   completion actions (``actions_run`` with the idempotency key ``submission:<pk>``) and the
   activity. A second request for the same row waits for the lock, then finds the outcome and
   answers the same. Any failure rolls the attempt back entirely and marks the row ``failed``
   with the error; ``forms.retry_failed_submissions`` tries it again later, so a failed attempt
   left nothing half-done and a retry does everything exactly once.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from forms import bot_protection
from forms.consent import consent_grant_record, double_opt_in_email_send
from forms.models import (
    RAW_MAX_FIELDS,
    RAW_MAX_VALUE_LENGTH,
    FieldType,
    Form,
    FormHandler,
    LandingPage,
    Submission,
    SubmissionKind,
    SubmissionStatus,
)
from forms.selectors import form_fields_active, handler_fields
from forms.validation import CleanedData, clean_form_data, clean_handler_data, service_errors
from prospects.actions import ActionContext, actions_run
from prospects.models import Prospect
from prospects.normalization import nfkc, normalize_email
from prospects.services import prospect_create, prospect_find_duplicate, prospect_update
from tracking.ingest import visitor_for_cookie
from tracking.models import ActivityType, Visitor
from tracking.services import activity_record, visitor_identify

logger = logging.getLogger(__name__)

DEDUP_WINDOW = datetime.timedelta(seconds=10)
MAX_KEY_LENGTH = 200
MAX_LIST_ITEMS = 100
MAX_USER_AGENT_LENGTH = 500
MAX_REFERRER_LENGTH = 2000
MAX_ERROR_LENGTH = 5000
SOURCE_MAX_LENGTH = 100
# Statuses that processing never changes again.
FINAL_STATUSES = frozenset(
    {SubmissionStatus.PROCESSED, SubmissionStatus.INVALID, SubmissionStatus.REJECTED_BOT}
)

SUCCESS_ACTIVITY = {
    SubmissionKind.FORM: ActivityType.FORM_SUCCESS,
    SubmissionKind.LANDING_PAGE: ActivityType.LANDING_PAGE_SUCCESS,
    SubmissionKind.FORM_HANDLER: ActivityType.FORM_HANDLER_SUCCESS,
}
ERROR_ACTIVITY = {
    SubmissionKind.FORM: ActivityType.FORM_ERROR,
    SubmissionKind.LANDING_PAGE: ActivityType.LANDING_PAGE_ERROR,
    SubmissionKind.FORM_HANDLER: ActivityType.FORM_HANDLER_ERROR,
}


# --- storing -------------------------------------------------------------------------------------


def _clean_text(value: Any, limit: int) -> str:
    # PostgreSQL text and jsonb cannot hold NUL; everything else is kept as typed.
    return str(value).replace("\x00", "")[:limit]


def raw_data_clip(data: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """What is stored of a post: at most 200 fields, each value at most 10,000 characters."""
    clipped: dict[str, str | list[str]] = {}
    for key, value in data.items():
        if len(clipped) >= RAW_MAX_FIELDS:
            break
        name = _clean_text(key, MAX_KEY_LENGTH)
        if not name or name in clipped:
            continue
        if isinstance(value, list | tuple):
            items = [_clean_text(item, RAW_MAX_VALUE_LENGTH) for item in value[:MAX_LIST_ITEMS]]
            clipped[name] = items[0] if len(items) == 1 else items
        else:
            clipped[name] = _clean_text(value, RAW_MAX_VALUE_LENGTH)
    return clipped


def dedup_key_for(
    *, kind: str, target_id: int, data: Mapping[str, Any], email_names: frozenset[str]
) -> str:
    """The same post, as a person's double click repeats it: normalised values, protection
    fields (the render token is the same in both clicks anyway) left out."""
    normalised: dict[str, Any] = {}
    for name in sorted(data):
        if name in bot_protection.CONTROL_FIELDS:
            continue
        value = data[name]
        values = value if isinstance(value, list) else [value]
        texts = [
            normalize_email(item) if name in email_names else nfkc(item).strip() for item in values
        ]
        normalised[name] = texts
    digest = hashlib.sha256(
        json.dumps([kind, target_id, normalised], ensure_ascii=False, sort_keys=True).encode()
    )
    return digest.hexdigest()


def _lock(name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [name])


@dataclass(frozen=True)
class PostMeta:
    """Where a post came from (everything but the data)."""

    ip_address: str | None = None
    user_agent: str = ""
    referrer: str = ""
    visitor_uuid: uuid.UUID | None = None
    is_kiosk: bool = False
    language: str = ""


def submission_store(
    *,
    kind: str,
    data: Mapping[str, Any],
    meta: PostMeta,
    form: Form | None = None,
    landing_page: LandingPage | None = None,
    handler: FormHandler | None = None,
    email_names: frozenset[str] = frozenset(),
    status: str = SubmissionStatus.RECEIVED,
    error: str = "",
) -> tuple[Submission, bool]:
    """Store a post before anything else happens; returns (submission, created).

    Must run outside any transaction (it commits its own). ``created`` False: a double click of
    a post stored less than :data:`DEDUP_WINDOW` ago, whose row is returned.
    """
    raw_data = raw_data_clip(data)
    target = handler if kind == SubmissionKind.FORM_HANDLER else form
    dedup_key = dedup_key_for(
        kind=kind,
        target_id=target.pk if target is not None else 0,
        data=raw_data,
        email_names=email_names,
    )
    with transaction.atomic():
        _lock(f"forms.submission:{dedup_key}")
        now = timezone.now()
        existing = (
            Submission.objects.filter(dedup_key=dedup_key, received_at__gte=now - DEDUP_WINDOW)
            .order_by("id")
            .first()
        )
        if existing is not None:
            return existing, False
        submission = Submission.objects.create(
            kind=kind,
            form=form,
            landing_page=landing_page,
            handler=handler,
            received_at=now,
            raw_data=raw_data,
            ip_address=meta.ip_address,
            user_agent=_clean_text(meta.user_agent, MAX_USER_AGENT_LENGTH),
            referrer=_clean_text(meta.referrer, MAX_REFERRER_LENGTH),
            visitor_uuid=None if meta.is_kiosk else meta.visitor_uuid,
            is_kiosk=meta.is_kiosk,
            language=(meta.language or "")[:10],
            status=status,
            error=error,
            dedup_key=dedup_key,
        )
    return submission, True


# --- processing ----------------------------------------------------------------------------------


class _Invalid(Exception):
    """Validation failed: the attempt's writes are undone, the errors are kept."""

    def __init__(self, errors: dict[str, list[str]], message: str = "") -> None:
        super().__init__(message)
        self.errors = errors
        self.message = message


@dataclass
class _Plan:
    """What processing does for one submission, whatever its kind."""

    cleaned: CleanedData
    completion_actions: list[dict[str, Any]]
    source_label: str
    object_type: str
    object_id: int
    object_label: str
    campaign_name: str
    double_opt_in: bool = False


def _visitor_of(submission: Submission) -> Visitor | None:
    if submission.is_kiosk or submission.visitor_uuid is None:
        return None
    visitor, _created = visitor_for_cookie(
        visitor_uuid=submission.visitor_uuid,
        user_agent=submission.user_agent,
        ip=submission.ip_address,
    )
    return visitor


def _form_plan(submission: Submission) -> _Plan | str:
    """The plan for a form or landing-page post, or the bot reason."""
    form = submission.form
    if form is None:
        raise _Invalid({}, _("The form no longer exists."))
    if not form.is_active:
        raise _Invalid({}, _("This form is no longer accepting submissions."))
    data = submission.raw_data
    if bot_protection.honeypot_filled(data, bot_protection.HONEYPOT_FIELD):
        return bot_protection.REASON_HONEYPOT
    token, reason = bot_protection.render_token_verdict(
        token=data.get(bot_protection.TOKEN_FIELD),
        form_uuid=form.uuid,
        received_at=submission.received_at,
    )
    if reason is not None or token is None:
        return reason or bot_protection.REASON_BAD_TOKEN
    # Validated against what this person was shown (progressive profiling, fields added or
    # removed since): the token names the fields and the consent wording versions.
    shown_ids = set(token.shown_field_ids)
    fields = [item for item in form_fields_active(form) if item.pk in shown_ids]
    cleaned = clean_form_data(fields=fields, data=data, consent_wordings=token.consent_wordings)
    landing_page = submission.landing_page
    if submission.kind == SubmissionKind.LANDING_PAGE and landing_page is not None:
        object_type, object_id, label = "landing_page", landing_page.pk, landing_page.name
    else:
        object_type, object_id, label = "form", form.pk, form.name
    has_consent_field = any(item.field_type == FieldType.CONSENT for item in fields)
    cleaned.has_consent_field = cleaned.has_consent_field or has_consent_field
    return _Plan(
        cleaned=cleaned,
        completion_actions=list(form.completion_actions or []),
        source_label=label,
        object_type=object_type,
        object_id=object_id,
        object_label=label,
        campaign_name=form.campaign_name,
        double_opt_in=form.double_opt_in,
    )


def _handler_plan(submission: Submission) -> _Plan | str:
    handler = submission.handler
    if handler is None:
        raise _Invalid({}, _("The form handler no longer exists."))
    if not handler.is_active:
        raise _Invalid({}, _("This form handler is not active."))
    if bot_protection.honeypot_filled(submission.raw_data, handler.honeypot_name):
        return bot_protection.REASON_HONEYPOT
    cleaned = clean_handler_data(fields=handler_fields(handler), data=submission.raw_data)
    return _Plan(
        cleaned=cleaned,
        completion_actions=list(handler.completion_actions or []),
        source_label=handler.name,
        object_type="form_handler",
        object_id=handler.pk,
        object_label=handler.name,
        campaign_name=handler.campaign_name,
    )


def _non_empty(values: Mapping[str, Any]) -> dict[str, Any]:
    # An empty input means "not answered", never "erase what we know".
    return {
        name: value
        for name, value in values.items()
        if value not in (None, "", []) and not (isinstance(value, str) and not value.strip())
    }


def _prospect_upsert(*, plan: _Plan, visitor: Visitor | None) -> tuple[Prospect, bool]:
    """The prospect this post is about, updated with what it says (created if new)."""
    cleaned = plan.cleaned
    data = _non_empty(cleaned.prospect_data)
    custom_values = _non_empty(cleaned.custom_values)
    email = cleaned.email
    if not email:
        # A progressive form may skip the email of a prospect known by the cookie.
        known = (
            Prospect.objects.filter(pk=visitor.prospect_id).first()
            if visitor is not None and visitor.prospect_id
            else None
        )
        if known is None:
            raise _Invalid({NON_FIELD_ERRORS: [_("Email address is required.")]})
        prospect_update(actor=None, prospect=known, data=data, custom_values=custom_values)
        return known, False
    # Two posts with the same new address at once would both create: one at a time per address.
    _lock(f"forms.prospect-email:{email}")
    existing = prospect_find_duplicate(email=email)
    if existing is not None:
        prospect_update(actor=None, prospect=existing, data=data, custom_values=custom_values)
        return existing, False
    data["email"] = email
    data.setdefault("source", (plan.campaign_name or plan.source_label)[:SOURCE_MAX_LENGTH])
    return prospect_create(actor=None, data=data, custom_values=custom_values), True


def _activity_payload(submission: Submission, plan: _Plan | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"submission_id": submission.pk}
    if submission.form_id is not None:
        payload["form_id"] = submission.form_id
    if plan is not None and plan.campaign_name:
        payload["campaign"] = plan.campaign_name
    return payload


def _object_of(submission: Submission) -> tuple[str, int | str, str]:
    if submission.kind == SubmissionKind.FORM_HANDLER and submission.handler is not None:
        return "form_handler", submission.handler.pk, submission.handler.name
    if submission.kind == SubmissionKind.LANDING_PAGE and submission.landing_page is not None:
        return "landing_page", submission.landing_page.pk, submission.landing_page.name
    if submission.form is not None:
        return "form", submission.form.pk, submission.form.name
    return submission.kind, "", ""


def _run(submission: Submission) -> None:
    """One processing attempt, inside the caller's transaction. Raises _Invalid."""
    plan = (
        _handler_plan(submission)
        if submission.kind == SubmissionKind.FORM_HANDLER
        else _form_plan(submission)
    )
    if isinstance(plan, str):
        submission.status = SubmissionStatus.REJECTED_BOT
        submission.error = plan
        return
    if plan.cleaned.errors:
        raise _Invalid(plan.cleaned.errors)
    visitor = _visitor_of(submission)
    try:
        with transaction.atomic():
            prospect, _created = _prospect_upsert(plan=plan, visitor=visitor)
    except ValidationError as error:
        raise _Invalid(service_errors(error, plan.cleaned)) from error
    submission.prospect = prospect
    if visitor is not None:
        visitor_identify(visitor=visitor, prospect_id=prospect.pk, source=plan.object_type)
    cleaned = plan.cleaned
    submission.granted_consent_wording_ids = list(dict.fromkeys(cleaned.consent_wording_ids))
    # Double opt-in confirms the ticked consent, or the plain sign-up of a form without a box.
    granted = submission.granted_consent_wording_ids
    wants_confirmation = bool(granted) or not cleaned.has_consent_field
    if plan.double_opt_in and wants_confirmation:
        double_opt_in_email_send(submission=submission, email=prospect.email)
    elif submission.granted_consent_wording_ids:
        consent_grant_record(
            prospect=prospect,
            submission=submission,
            wording_ids=submission.granted_consent_wording_ids,
        )
    if plan.completion_actions:
        actions_run(
            actions=plan.completion_actions,
            prospect=prospect,
            context=ActionContext(
                cause_type="form_submission",
                cause_id=submission.pk,
                cause_label=plan.source_label,
                idempotency_key=f"submission:{submission.pk}",
            ),
        )
    activity_record(
        type=SUCCESS_ACTIVITY[SubmissionKind(submission.kind)],
        prospect_id=prospect.pk,
        visitor_id=visitor.pk if visitor is not None else None,
        object_type=plan.object_type,
        object_id=plan.object_id,
        object_label=plan.object_label,
        payload=_activity_payload(submission, plan),
    )
    if submission.kind == SubmissionKind.LANDING_PAGE and submission.landing_page_id:
        LandingPage.objects.filter(pk=submission.landing_page_id).update(
            submission_count=F("submission_count") + 1
        )
    submission.status = SubmissionStatus.PROCESSED
    submission.error = ""


def _record_invalid(submission: Submission, invalid: _Invalid) -> None:
    submission.status = SubmissionStatus.INVALID
    submission.field_errors = invalid.errors
    submission.error = (
        invalid.message
        or "; ".join(f"{name}: {' '.join(messages)}" for name, messages in invalid.errors.items())[
            :MAX_ERROR_LENGTH
        ]
    )
    visitor = _visitor_of(submission)
    object_type, object_id, label = _object_of(submission)
    activity_record(
        type=ERROR_ACTIVITY[SubmissionKind(submission.kind)],
        prospect_id=visitor.prospect_id if visitor is not None else None,
        visitor_id=visitor.pk if visitor is not None else None,
        object_type=object_type,
        object_id=object_id,
        object_label=label,
        payload=_activity_payload(submission, None),
    )


def _attempt(submission_id: int, *, skip_locked: bool) -> Submission | None:
    with transaction.atomic():
        submission = (
            Submission.objects.select_for_update(skip_locked=skip_locked, of=("self",))
            .select_related("form", "landing_page", "handler")
            .filter(pk=submission_id)
            .first()
        )
        if submission is None or submission.status in FINAL_STATUSES:
            return submission
        submission.attempts += 1
        submission.last_attempt_at = timezone.now()
        with translation.override(submission.language or settings.LANGUAGE_CODE):
            try:
                with transaction.atomic():
                    _run(submission)
            except _Invalid as invalid:
                _record_invalid(submission, invalid)
        submission.processed_at = timezone.now()
        submission.save(
            update_fields=[
                "status",
                "error",
                "field_errors",
                "prospect",
                "attempts",
                "last_attempt_at",
                "processed_at",
                "granted_consent_wording_ids",
            ]
        )
        return submission


def submission_process(*, submission_id: int, skip_locked: bool = False) -> Submission | None:
    """Process a stored submission once; safe to call again (a retry, a double click).

    Returns the submission with its outcome (None if it does not exist, or — with
    ``skip_locked`` — if another worker is processing it right now). Never raises for a
    failure of processing: the row is marked ``failed`` with the error, for the retry task.
    """
    try:
        return _attempt(submission_id, skip_locked=skip_locked)
    # The boundary of "nothing lost": whatever broke (a bug, the database, a completion action's
    # service), the attempt was rolled back as a whole and the stored post waits for a retry.
    except Exception as error:
        logger.exception("processing submission %s failed", submission_id)
        message = f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH]
        now = timezone.now()
        Submission.objects.filter(
            pk=submission_id,
            status__in=[SubmissionStatus.RECEIVED, SubmissionStatus.FAILED],
        ).update(
            status=SubmissionStatus.FAILED,
            error=message,
            attempts=F("attempts") + 1,
            last_attempt_at=now,
        )
        return Submission.objects.filter(pk=submission_id).first()


# --- retrying ------------------------------------------------------------------------------------

RETRY_BATCH = 100
MAX_ATTEMPTS = 10
# A post still "received" this long after arriving lost its request (a killed web worker).
STALE_RECEIVED_AFTER = datetime.timedelta(minutes=5)


def retry_delay(attempts: int) -> datetime.timedelta:
    """1, 2, 4 … minutes after the last attempt, at most six hours."""
    return min(datetime.timedelta(minutes=2 ** max(attempts - 1, 0)), datetime.timedelta(hours=6))


def submissions_due_for_retry(*, now: datetime.datetime | None = None) -> list[int]:
    """Ids of failed submissions whose back-off has passed, and orphaned received ones."""
    now = now or timezone.now()
    candidates = Submission.objects.filter(
        Q(status=SubmissionStatus.FAILED, attempts__lt=MAX_ATTEMPTS)
        | Q(status=SubmissionStatus.RECEIVED, received_at__lt=now - STALE_RECEIVED_AFTER)
    ).order_by("id")
    due = []
    for submission_id, status, attempts, last_attempt_at in candidates.values_list(
        "pk", "status", "attempts", "last_attempt_at"
    )[: RETRY_BATCH * 5]:
        if (
            status == SubmissionStatus.FAILED
            and last_attempt_at is not None
            and last_attempt_at + retry_delay(attempts) > now
        ):
            continue
        due.append(submission_id)
        if len(due) >= RETRY_BATCH:
            break
    return due


def submissions_retry(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Process again the submissions that are due; returns counts by resulting status."""
    counts: dict[str, int] = {}
    for submission_id in submissions_due_for_retry(now=now):
        submission = submission_process(submission_id=submission_id, skip_locked=True)
        if submission is not None:
            counts[submission.status] = counts.get(submission.status, 0) + 1
    return counts
