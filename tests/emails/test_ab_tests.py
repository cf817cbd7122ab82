"""A/B tests of list emails: the split at start, the winner after the test's duration, the rest
sent the winner, each prospect exactly one variant — through the real pipeline and SMTP sink."""

from __future__ import annotations

import datetime
import email
from collections import Counter
from email.policy import default as default_policy

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from emails import ab_tests, sending, tasks
from emails.models import (
    AbWinnerMetric,
    ListEmail,
    ListEmailStatus,
    Recipient,
    RecipientStatus,
    SendingDomain,
)
from emails.services import (
    list_email_ab_test_clear,
    list_email_ab_test_set,
    list_email_create,
    list_email_problems,
    list_email_schedule,
)
from emails.smtp_sink import SmtpSink
from mapp.models import AccountSettings
from prospects.models import ListMembership, Prospect, ProspectList
from tests.factories import ProspectFactory
from tracking.models import ActivityType
from tracking.services import activity_record

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

HTML = """<html><body><p>{{ prospect.last_name }} 様</p>
<a href="https://example.co.jp/seminar">セミナー</a>
<p>{{ account.postal_address }}</p><a href="{{ unsubscribe_url }}">配信停止</a></body></html>"""
VARIANT_B_HTML = """<html><body><p>{{ prospect.last_name }} 様、特別なご案内です</p>
<a href="https://example.co.jp/offer">特典</a>
<p>{{ account.postal_address }}</p><a href="{{ unsubscribe_url }}">配信停止</a></body></html>"""


def _draft(domain: SendingDomain, prospects: list[Prospect]) -> ListEmail:
    prospect_list = ProspectList.objects.create(name="AB audience")
    ListMembership.objects.bulk_create(
        ListMembership(prospect_list=prospect_list, prospect=prospect) for prospect in prospects
    )
    return list_email_create(
        actor=None,
        name="AB send",
        recipient_lists=[prospect_list],
        sending_domain=domain,
        subject="11月のお知らせ",
        html=HTML,
        sender_type="custom",
        sender_name="マップ",
        sender_address="news@mail.example.jp",
    )


def _drain(list_email: ListEmail) -> None:
    for _round in range(50):
        if sending.list_email_send_batch(list_email_id=list_email.pk, batch_size=40).claimed == 0:
            return
    raise AssertionError("the send did not drain")


def _subjects_by_address(sink: SmtpSink) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for message in sink.messages:
        parsed = email.message_from_bytes(message.data, policy=default_policy)
        for address in message.recipients:
            found.setdefault(address, []).append(str(parsed["Subject"]))
    return found


def _start(list_email: ListEmail) -> None:
    list_email_schedule(list_email=list_email)
    assert sending.list_email_start(list_email_id=list_email.pk)
    list_email.refresh_from_db()


def test_split_test_then_winner_to_the_rest_each_prospect_one_variant(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    prospects = ProspectFactory.create_batch(100)
    list_email = _draft(verified_domain, prospects)
    variant_a, variant_b = list_email_ab_test_set(
        list_email=list_email,
        variants=[{}, {"subject": "【特典あり】11月のお知らせ", "html": VARIANT_B_HTML}],
        percent=20,
        hours=4,
        metric=AbWinnerMetric.OPEN_RATE,
    )
    _start(list_email)
    # 20 % tested, evenly over A and B; the rest waits
    statuses = Counter(
        Recipient.objects.filter(list_email=list_email).values_list("status", "variant__letter")
    )
    assert statuses == {
        (RecipientStatus.QUEUED, "A"): 10,
        (RecipientStatus.QUEUED, "B"): 10,
        (RecipientStatus.HELD, None): 80,
    }
    _drain(list_email)
    first_wave = _subjects_by_address(smtp_sink)
    assert len(first_wave) == 20
    assert Counter(subjects[0] for subjects in first_wave.values()) == {
        "11月のお知らせ": 10,
        "【特典あり】11月のお知らせ": 10,
    }
    # the held rows keep the send open
    assert not sending.list_email_finish_if_done(list_email_id=list_email.pk)
    # B's recipients open it (people); A's only get machine opens (Apple MPP), which never count
    b_rows = Recipient.objects.filter(list_email=list_email, variant=variant_b)
    a_rows = Recipient.objects.filter(list_email=list_email, variant=variant_a)
    for row in list(b_rows)[:3]:
        activity_record(
            type=ActivityType.EMAIL_OPENED,
            prospect_id=row.prospect_id,
            object_type="email",
            object_id=list_email.tracking_id,
        )
    for row in a_rows:
        activity_record(
            type=ActivityType.EMAIL_OPENED,
            prospect_id=row.prospect_id,
            object_type="email",
            object_id=list_email.tracking_id,
            payload={"machine": "apple-mpp"},
            is_bot=True,
        )
    # not before the test's duration has passed
    assert not ab_tests.ab_test_decide(list_email_id=list_email.pk)
    assert list_email.started_at is not None
    later = list_email.started_at + datetime.timedelta(hours=4, seconds=1)
    assert ab_tests.ab_tests_due(later) == [list_email.pk]
    assert ab_tests.ab_test_decide(list_email_id=list_email.pk, now=later)
    assert not ab_tests.ab_test_decide(list_email_id=list_email.pk, now=later)  # decided once
    list_email.refresh_from_db()
    assert list_email.ab_winner == variant_b
    # the rest get B; nobody gets a second message
    _drain(list_email)
    received = _subjects_by_address(smtp_sink)
    assert len(received) == 100
    assert all(len(subjects) == 1 for subjects in received.values())
    for address, subjects in received.items():
        if address not in first_wave:
            assert subjects == ["【特典あり】11月のお知らせ"]
    # (the batch that found nothing left to claim marked the send sent)
    list_email.refresh_from_db()
    assert (list_email.status, list_email.sent_count) == (ListEmailStatus.SENT, 100)


def test_click_rate_winner_and_clickers_count_as_openers(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    prospects = ProspectFactory.create_batch(12)
    list_email = _draft(verified_domain, prospects)
    _variant_a, variant_b, _variant_c = list_email_ab_test_set(
        list_email=list_email,
        variants=[{}, {"subject": "B"}, {"subject": "C"}],
        percent=100,
        hours=1,
        metric=AbWinnerMetric.CLICK_RATE,
    )
    _start(list_email)
    # 100 %: everyone has a variant, 4 each, nobody held
    assert Counter(
        Recipient.objects.filter(list_email=list_email).values_list("variant__letter", flat=True)
    ) == {"A": 4, "B": 4, "C": 4}
    _drain(list_email)
    clicker = Recipient.objects.filter(list_email=list_email, variant=variant_b).first()
    assert clicker is not None
    activity_record(
        type=ActivityType.EMAIL_CLICKED,
        prospect_id=clicker.prospect_id,
        object_type="link",
        object_id="1",
        payload={"email_id": list_email.tracking_id},
    )
    scores = {score.letter: score for score in ab_tests.variant_scores(list_email)}
    assert (scores["B"].unique_clickers, scores["B"].unique_openers) == (1, 1)
    assert scores["A"].delivered == 4
    later = timezone.now() + datetime.timedelta(hours=2)
    assert ab_tests.ab_test_decide(list_email_id=list_email.pk, now=later)
    list_email.refresh_from_db()
    assert list_email.ab_winner == variant_b


def test_a_tie_goes_to_the_first_variant() -> None:
    scores = [
        ab_tests.VariantScore(1, "A", delivered=10, unique_openers=2, unique_clickers=0),
        ab_tests.VariantScore(2, "B", delivered=10, unique_openers=2, unique_clickers=0),
    ]
    winner = ab_tests.winner_choose(scores, AbWinnerMetric.OPEN_RATE)
    assert winner is not None
    assert winner.letter == "A"


def test_dispatcher_decides_due_tests(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    list_email = _draft(verified_domain, ProspectFactory.create_batch(10))
    list_email_ab_test_set(
        list_email=list_email,
        variants=[{}, {"subject": "B"}],
        percent=20,
        hours=1,
        metric=AbWinnerMetric.OPEN_RATE,
    )
    _start(list_email)
    ListEmail.objects.filter(pk=list_email.pk).update(
        started_at=timezone.now() - datetime.timedelta(hours=2)
    )
    result = tasks.dispatch.apply().get()
    assert result["ab_tests_decided"] == 1
    assert not Recipient.objects.filter(list_email=list_email, status=RecipientStatus.HELD).exists()


def test_ab_test_validation(
    verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    list_email = _draft(verified_domain, ProspectFactory.create_batch(2))
    with pytest.raises(ValidationError) as one_variant:
        list_email_ab_test_set(
            list_email=list_email, variants=[{}], percent=20, hours=4, metric="open_rate"
        )
    assert "between 2 and 5 variants" in str(one_variant.value)
    with pytest.raises(ValidationError) as bad:
        list_email_ab_test_set(
            list_email=list_email,
            variants=[{}, {"subject": "{{ prospect.__class__ }}"}, {"subject": "{% if %}"}],
            percent=0,
            hours=500,
            metric="luck",
        )
    text = str(bad.value)
    assert "test share" in text
    assert "duration" in text
    assert "winner" in text
    assert "Variant C" in text
    with pytest.raises(ValidationError, match="Two variants are the same"):
        list_email_ab_test_set(
            list_email=list_email,
            variants=[{"subject": "x"}, {"subject": "x"}],
            percent=20,
            hours=4,
            metric="open_rate",
        )
    # every variant must carry the unsubscribe link and the postal address
    list_email_ab_test_set(
        list_email=list_email,
        variants=[{}, {"html": "<p>no footer</p>"}],
        percent=20,
        hours=4,
        metric="open_rate",
    )
    problems = list_email_problems(list_email)
    assert any(
        problem.startswith("Variant B: ") and "unsubscribe" in problem for problem in problems
    )
    assert not any(problem.startswith("Variant A: ") for problem in problems)
    list_email_ab_test_clear(list_email=list_email)
    assert list_email_problems(list_email) == []
    # a started send's test is frozen
    ListEmail.objects.filter(pk=list_email.pk).update(status=ListEmailStatus.SENDING)
    list_email.refresh_from_db()
    with pytest.raises(ValidationError, match="has started"):
        list_email_ab_test_set(
            list_email=list_email,
            variants=[{}, {"subject": "B"}],
            percent=20,
            hours=4,
            metric="open_rate",
        )
