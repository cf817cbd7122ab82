"""Consent to receive email (特定電子メール法 / GDPR): versioned wording, records, opt-out, export.

Evidence of an opt-in is a :class:`~forms.models.ConsentRecord`: who, when, from which address,
through which form or page, and the exact wording shown (a :class:`~forms.models.ConsentWording`
version; wordings are never edited, a change makes a new version). With double opt-in the record
is written only when the person opens the confirmation link. An opt-out is one step
(:func:`prospect_opt_out`) and is recorded the same way.
"""

from __future__ import annotations

import csv
import datetime
import io
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from forms.models import (
    ConsentRecord,
    ConsentSource,
    ConsentWording,
    FieldType,
    FormField,
    Submission,
    SubmissionKind,
)
from prospects.exporting import neutralise
from prospects.models import Prospect
from prospects.services import prospect_opt_back_in
from prospects.services import prospect_opt_out as services_opt_out
from tracking.models import ActivityType
from tracking.services import activity_record

if TYPE_CHECKING:
    from forms.models import Form

logger = logging.getLogger(__name__)

CONFIRM_SALT = "mapp.forms.confirm"
# The confirmation link works this long; after that the person submits the form again.
CONFIRM_MAX_AGE = datetime.timedelta(days=14)
MAX_CONFIRM_TOKEN_LENGTH = 200

SOURCE_BY_KIND = {
    SubmissionKind.FORM: ConsentSource.FORM,
    SubmissionKind.LANDING_PAGE: ConsentSource.LANDING_PAGE,
    SubmissionKind.FORM_HANDLER: ConsentSource.FORM_HANDLER,
}


# --- wording versions ----------------------------------------------------------------------------


def form_field_consent_wording_save(*, form_field: FormField, text: str) -> ConsentWording | None:
    """Make ``text`` the wording of a consent field; a changed text becomes a new version.

    Returns the current version (None when the text is empty). Records keep pointing at the
    version their person saw. Safe to call on every save: an unchanged text creates nothing.
    """
    text = text.strip()
    with transaction.atomic():
        field = FormField.objects.select_for_update().get(pk=form_field.pk)
        current = (
            ConsentWording.objects.filter(pk=field.consent_version_id).first()
            if field.consent_version_id
            else None
        )
        if not text:
            version = None
        elif current is not None and current.text == text:
            version = current
        elif current is not None:
            latest = (
                ConsentWording.objects.filter(lineage=current.lineage).aggregate(
                    latest=Max("version")
                )["latest"]
                or 0
            )
            version = ConsentWording.objects.create(
                lineage=current.lineage, version=latest + 1, text=text
            )
        else:
            version = ConsentWording.objects.create(text=text)
        FormField.objects.filter(pk=field.pk).update(consent_wording=text, consent_version=version)
    form_field.consent_wording = text
    form_field.consent_version = version
    return version


def consent_version_current(form_field: FormField) -> ConsentWording | None:
    """The version to show for a consent field, made if the builder saved text without one."""
    if form_field.field_type != FieldType.CONSENT or not form_field.consent_wording.strip():
        return None
    version = form_field.consent_version
    if version is not None and version.text == form_field.consent_wording.strip():
        return version
    return form_field_consent_wording_save(form_field=form_field, text=form_field.consent_wording)


# --- records -------------------------------------------------------------------------------------


def _record(
    *,
    prospect: Prospect,
    wording_id: int | None,
    granted: bool,
    source: str,
    ip_address: str | None,
    submission: Submission | None,
    form: Form | None,
    confirmed_by_email: bool = False,
    recorded_at: datetime.datetime | None = None,
) -> ConsentRecord | None:
    """One record; None if this submission recorded the same consent already (a retry)."""
    try:
        with transaction.atomic():
            return ConsentRecord.objects.create(
                prospect=prospect,
                wording_id=wording_id,
                granted=granted,
                source=source,
                ip_address=ip_address,
                submission=submission,
                form=form,
                confirmed_by_email=confirmed_by_email,
                recorded_at=recorded_at or timezone.now(),
            )
    except IntegrityError:
        return None


def _opt_back_in(prospect: Prospect) -> None:
    # The person's own, explicit consent is the one thing that may undo an opt-out
    # (prospects.actions' "opt out" is deliberately one-way for automations).
    if prospect_opt_back_in(prospect_id=prospect.pk):
        prospect.opted_out = False


def consent_grant_record(
    *,
    prospect: Prospect,
    submission: Submission,
    wording_ids: Sequence[int | None],
    confirmed_by_email: bool = False,
) -> list[ConsentRecord]:
    """Record the opt-ins of a processed submission (each wording once) and the OPT_IN activity.

    ``wording_ids`` may hold None: a double opt-in confirmed on a form without a consent box.
    """
    source = SOURCE_BY_KIND.get(SubmissionKind(submission.kind), ConsentSource.FORM)
    records = [
        record
        for wording_id in dict.fromkeys(wording_ids)
        if (
            record := _record(
                prospect=prospect,
                wording_id=wording_id,
                granted=True,
                source=source,
                ip_address=submission.ip_address,
                submission=submission,
                form=submission.form,
                confirmed_by_email=confirmed_by_email,
            )
        )
        is not None
    ]
    if records:
        _opt_back_in(prospect)
        activity_record(
            type=ActivityType.OPT_IN,
            prospect_id=prospect.pk,
            object_type="consent",
            object_id=records[0].pk,
            object_label=str(submission.form or submission.handler or ""),
            payload={
                "submission_id": submission.pk,
                "source": source,
                "double_opt_in": confirmed_by_email,
                "wording_ids": ",".join(str(record.wording_id or "") for record in records),
            },
        )
    return records


def prospect_opt_out(
    *,
    prospect: Prospect,
    source: str,
    ip_address: str | None = None,
    submission: Submission | None = None,
) -> bool:
    """Opt the prospect out of marketing email in one step; record it (consent log + OPT_OUT).

    Returns False (and records nothing) when the prospect had opted out already.
    """
    with transaction.atomic():
        updated = services_opt_out(prospect_id=prospect.pk)
        prospect.opted_out = True
        if not updated:
            return False
        _record(
            prospect=prospect,
            wording_id=None,
            granted=False,
            source=source,
            ip_address=ip_address,
            submission=submission,
            form=submission.form if submission is not None else None,
        )
        activity_record(
            type=ActivityType.OPT_OUT,
            prospect_id=prospect.pk,
            object_type="consent",
            object_label=str(ConsentSource(source).label)
            if source in ConsentSource.values
            else source,
            payload={"source": source},
        )
    return True


# --- double opt-in -------------------------------------------------------------------------------


def confirm_token_for(submission: Submission) -> str:
    return signing.TimestampSigner(salt=CONFIRM_SALT).sign(str(submission.pk))


def submission_id_from_confirm_token(token: str) -> int | None:
    """The submission a confirmation link names, or None if tampered with or expired."""
    if not token or len(token) > MAX_CONFIRM_TOKEN_LENGTH:
        return None
    try:
        value = signing.TimestampSigner(salt=CONFIRM_SALT).unsign(token, max_age=CONFIRM_MAX_AGE)
    except signing.BadSignature:
        return None
    return int(value) if value.isdigit() else None


def confirm_url(submission: Submission) -> str:
    path = reverse("forms_public:confirm", kwargs={"token": confirm_token_for(submission)})
    return f"{settings.SITE_URL}{path}"


def double_opt_in_email_send(*, submission: Submission, email: str) -> None:
    """Queue the confirmation email for after the processing transaction commits.

    A processing attempt that fails is rolled back with its ``on_commit`` callbacks, so a retried
    submission sends the email once.
    """
    url = confirm_url(submission)
    with translation.override(submission.language or settings.LANGUAGE_CODE):
        subject = _("Please confirm your email address")
        body = "\n\n".join(
            [
                _(
                    "Thank you for your interest. Please confirm that you want to receive our "
                    "emails by opening this link:"
                ),
                url,
                _(
                    "The link works for 14 days. If you did not fill in our form, ignore this "
                    "email: nothing will be sent to you."
                ),
            ]
        )

    def send() -> None:
        # The lead is stored and processed; a mail server problem must not undo that.
        try:
            send_mail(subject, body, None, [email], fail_silently=False)
        except OSError:
            logger.exception(
                "double opt-in email for submission %s could not be sent", submission.pk
            )

    transaction.on_commit(send)


def double_opt_in_confirm(*, submission_id: int) -> Submission | None:
    """Record the opt-in a confirmation link vouches for (once; a second click changes nothing).

    Returns the submission, or None when it (or its prospect) no longer exists.
    """
    with transaction.atomic():
        submission = (
            Submission.objects.select_for_update(of=("self",))
            .select_related("form", "handler", "prospect")
            .filter(pk=submission_id)
            .first()
        )
        if submission is None or submission.prospect is None:
            return None
        if submission.opt_in_confirmed_at is not None:
            return submission
        submission.opt_in_confirmed_at = timezone.now()
        submission.save(update_fields=["opt_in_confirmed_at"])
        wording_ids: list[int | None] = [
            int(value) for value in submission.granted_consent_wording_ids if isinstance(value, int)
        ] or [None]
        consent_grant_record(
            prospect=submission.prospect,
            submission=submission,
            wording_ids=wording_ids,
            confirmed_by_email=True,
        )
    return submission


# --- export --------------------------------------------------------------------------------------


def consent_records_csv(prospect: Prospect) -> str:
    """The prospect's consent log as CSV text, every cell safe to open in a spreadsheet."""
    records = (
        ConsentRecord.objects.filter(prospect=prospect)
        .select_related("wording", "form", "submission")
        .order_by("recorded_at", "id")
    )
    output = io.StringIO()
    writer = csv.writer(output)
    writer.writerow(
        [
            _("Recorded at"),
            _("Consent"),
            _("Source"),
            _("Form"),
            _("Wording version"),
            _("Wording"),
            _("IP address"),
            _("Confirmed by email"),
            _("Submission"),
        ]
    )
    for record in records:
        wording = record.wording
        source = (
            str(ConsentSource(record.source).label)
            if record.source in ConsentSource.values
            else record.source
        )
        row = [
            timezone.localtime(record.recorded_at).isoformat(timespec="seconds"),
            _("Granted") if record.granted else _("Withdrawn"),
            source,
            record.form.name if record.form is not None else "",
            str(wording.version) if wording is not None else "",
            wording.text if wording is not None else "",
            record.ip_address or "",
            _("Yes") if record.confirmed_by_email else _("No"),
            str(record.submission_id or ""),
        ]
        writer.writerow([neutralise(str(cell)) for cell in row])
    return output.getvalue()
