"""The list-email issue's end-to-end tests: the real Celery worker process sends to ~1,000
prospects through a real SMTP server (the stack's aiosmtpd sink), on the test database and
Redis; the messages' links, pixel and one-click unsubscribe are used against the running app.

The in-process pipeline tests (tests/emails) call the functions the tasks call; these prove the
same guarantees hold with the tasks, the broker, the dispatcher and a worker that is SIGKILLed.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import email
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.policy import default as default_policy
from typing import Any

import dkim
import pytest
from django.core.cache import cache
from django.db.models import F

from emails import sending, tasks
from emails.models import (
    DomainStatus,
    ListEmail,
    ListEmailStatus,
    Recipient,
    RecipientStatus,
    SendingDomain,
)
from emails.services import (
    list_email_ab_test_set,
    list_email_create,
    list_email_schedule,
    sending_domain_create,
    sending_domain_dkim_record,
)
from emails.smtp_sink import ReceivedMessage
from mapp.models import AccountSettings
from prospects.models import ListMembership, Prospect, ProspectList
from tests.e2e.conftest import StackControl
from tests.factories import ProspectFactory
from tracking import bots
from tracking.models import Activity, ActivityType

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RECIPIENTS = 1000
SEND_TIMEOUT_SECONDS = 60
SEMINAR_URL = "https://example.co.jp/seminar?a=1&b=2"
HTML = """<html><body>
<p>{{ prospect.last_name }} {{ prospect.first_name }} 様</p>
<p><a href="https://example.co.jp/seminar?a=1&amp;b=2">セミナーのご案内</a></p>
<p>{{ account.name }} {{ account.postal_address }} {{ account.contact }}</p>
<p><a href="{{ unsubscribe_url }}">配信停止</a></p>
</body></html>"""
# A mail client's user agent: the click and open endpoints set scripted clients apart.
BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36"
)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _request(url: str, *, data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request to the live app without following redirects: (status, headers, body)."""
    request = urllib.request.Request(url, data=data, headers={"User-Agent": BROWSER_UA})  # noqa: S310
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with _opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def stack(stack_control: StackControl, settings: Any) -> StackControl:
    """The stack with an empty sink; keys written here are where the worker reads them."""
    settings.DKIM_KEY_DIR = str(stack_control.dkim_key_dir)
    stack_control.sink.handler.messages.clear()
    return stack_control


@pytest.fixture
def sending_setup(stack: StackControl) -> SendingDomain:
    """A verified domain with its key and the sender identity 特定電子メール法 requires."""
    account = AccountSettings.load()
    account.name = "株式会社マップ"
    account.postal_address = "〒100-0001 東京都千代田区千代田1-1"
    account.contact_email = "info@example.jp"
    account.save()
    domain = sending_domain_create(domain="mail.example.jp", selector="e2e")
    SendingDomain.objects.filter(pk=domain.pk).update(status=DomainStatus.VERIFIED)
    domain.refresh_from_db()
    return domain


def _audience(count: int) -> tuple[ProspectList, list[Prospect]]:
    prospects = Prospect.objects.bulk_create(ProspectFactory.build_batch(count))
    prospect_list = ProspectList.objects.create(name="Newsletter")
    ListMembership.objects.bulk_create(
        ListMembership(prospect_list=prospect_list, prospect=prospect) for prospect in prospects
    )
    return prospect_list, prospects


def _schedule(domain: SendingDomain, prospect_list: ProspectList, name: str) -> ListEmail:
    """Schedule for now through the service: its on-commit hook queues the start task."""
    list_email = list_email_create(
        actor=None,
        name=name,
        recipient_lists=[prospect_list],
        sending_domain=domain,
        subject="{{ prospect.first_name }}様へ セミナーのご案内",
        html=HTML,
        sender_type="custom",
        sender_name="マップ ニュース",
        sender_address="news@mail.example.jp",
    )
    return list_email_schedule(list_email=list_email)


def _wait_until_sent(list_email: ListEmail, timeout: float = SEND_TIMEOUT_SECONDS) -> ListEmail:
    def sent() -> bool:
        list_email.refresh_from_db()
        return list_email.status == ListEmailStatus.SENT

    _wait_for(sent, timeout, f"list email {list_email.pk} to be sent")
    return list_email


def _messages(stack: StackControl) -> list[ReceivedMessage]:
    return list(stack.sink.handler.messages)  # a copy: the sink's thread appends


@dataclass
class DataStall:
    """The sink has kept ``address``'s message and holds its reply until ``release`` is set."""

    address: str
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def stall_data_for(stack: StackControl) -> Iterator[Callable[[str], DataStall]]:
    """Make the sink keep one address's message but hold back its "250": the sender is then
    provably between the server's acceptance and its own row update, holding its claim, when
    the test kills it (the one instant that yields a duplicate).
    """
    handler = stack.sink.handler
    original = handler.handle_DATA
    stalls: list[DataStall] = []

    def stall(address: str) -> DataStall:
        held = DataStall(address.lower())
        stalls.append(held)

        async def handle_data(server: Any, session: Any, envelope: Any) -> str:
            reply = await original(server, session, envelope)  # kept from here on
            if held.address in (rcpt.lower() for rcpt in envelope.rcpt_tos):
                held.reached.set()
                # aiosmtpd cancels this when the client's connection is gone
                while not held.release.is_set():
                    await asyncio.sleep(0.02)
            return reply

        handler.handle_DATA = handle_data  # type: ignore[method-assign]
        return held

    yield stall
    handler.__dict__.pop("handle_DATA", None)
    for held in stalls:
        held.release.set()  # a failed test must not leave the sink holding a reply


def _parsed(message: ReceivedMessage) -> Message:
    return email.message_from_bytes(message.data, policy=default_policy)


def _subject_of(message: ReceivedMessage) -> str:
    return str(_parsed(message)["Subject"])


def _dnsfunc(domain: SendingDomain) -> Callable[..., bytes]:
    """The DNS answer for the selector's TXT record: what the domain publishes."""
    name, value = sending_domain_dkim_record(domain)

    def dnsfunc(query: bytes, timeout: int = 5) -> bytes:
        assert query.decode().rstrip(".") == name.rstrip(".")
        return value.encode()

    return dnsfunc


def _signed_header_names(message: Message) -> set[str]:
    signature = re.sub(r"\s+", "", str(message["DKIM-Signature"]))
    tag = re.search(r"(?:^|;)h=([^;]+)", signature)
    assert tag is not None, signature
    return {name.lower() for name in tag.group(1).split(":")}


def _html(message: Message) -> str:
    part = message.get_body(preferencelist=("html",))  # type: ignore[attr-defined]
    assert part is not None
    return str(part.get_content())


def test_a_thousand_prospects_each_get_one_signed_message_whose_links_work_live(
    stack: StackControl, sending_setup: SendingDomain
) -> None:
    # given 1,000 prospects in one list
    prospect_list, prospects = _audience(RECIPIENTS)
    expected = {prospect.email.lower() for prospect in prospects}
    # when a list email is scheduled for now and the worker sends it
    first = _wait_until_sent(_schedule(sending_setup, prospect_list, "November newsletter"))
    messages = _wait_for(
        lambda: (found := _messages(stack)) and len(found) >= RECIPIENTS and found,
        10,
        "every message at the sink",
    )
    # then every address received exactly one message
    per_address = collections.Counter(address for m in messages for address in m.recipients)
    assert set(per_address) == expected
    assert set(per_address.values()) == {1}
    assert len(messages) == RECIPIENTS
    assert (first.recipient_count, first.sent_count) == (RECIPIENTS, RECIPIENTS)
    assert (
        Recipient.objects.filter(list_email=first, status=RecipientStatus.SENT).count()
        == RECIPIENTS
    )
    # and each one's DKIM signature verifies against the published key, with the RFC 8058
    # headers present and signed
    dnsfunc = _dnsfunc(sending_setup)
    base_url = stack.base_url
    for received in messages:
        assert dkim.verify(received.data, dnsfunc=dnsfunc), received.recipients
        message = _parsed(received)
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert str(message["List-Unsubscribe"]).startswith(f"<{base_url}/email/unsubscribe/")
        assert {"list-unsubscribe", "list-unsubscribe-post", "from", "subject"} <= (
            _signed_header_names(message)
        )
    assert len({str(_parsed(m)["Message-ID"]) for m in messages}) == RECIPIENTS

    # the stack runs with SITE_URL = its own base URL, so the links point at the running app
    reader = prospects[123]
    [received] = [m for m in messages if m.recipients == (reader.email.lower(),)]
    message = _parsed(received)
    body = _html(message)
    [tracked] = [href for href in re.findall(r'href="([^"]+)"', body) if "/t/c/" in href]
    assert tracked.startswith(f"{base_url}/t/c/")
    # a click redirects to the original URL and is recorded by the worker
    status, headers, _body = _request(tracked)
    assert status == 302
    assert headers["Location"] == SEMINAR_URL
    _wait_for(
        lambda: Activity.objects.filter(
            type=ActivityType.EMAIL_CLICKED, prospect_id=reader.pk
        ).exists(),
        30,
        "the click to be recorded",
    )
    # the open pixel answers a GIF
    pixel = re.search(r'<img src="([^"]+/t/o/[^"]+\.gif)"', body)
    assert pixel is not None
    assert pixel.group(1).startswith(f"{base_url}/t/o/")
    status, headers, gif = _request(pixel.group(1))
    assert status == 200
    assert headers["Content-Type"] == "image/gif"
    assert gif.startswith(b"GIF8")
    # a mail client's RFC 8058 one-click POST to the List-Unsubscribe https URL unsubscribes
    unsubscribe = re.match(r"<([^>]+)>", str(message["List-Unsubscribe"]))
    assert unsubscribe is not None
    status, _headers, _page = _request(unsubscribe.group(1), data=b"List-Unsubscribe=One-Click")
    assert status == 200
    reader.refresh_from_db()
    assert reader.opted_out

    # when another list email goes to the same list
    second = _wait_until_sent(_schedule(sending_setup, prospect_list, "December newsletter"))
    later = _wait_for(
        lambda: (found := _messages(stack)[RECIPIENTS:]) and len(found) >= RECIPIENTS - 1 and found,
        10,
        "the second send at the sink",
    )
    # then everyone but the person who unsubscribed receives it, once
    per_address = collections.Counter(address for m in later for address in m.recipients)
    assert set(per_address) == expected - {reader.email.lower()}
    assert set(per_address.values()) == {1}
    assert (second.recipient_count, second.sent_count) == (RECIPIENTS - 1, RECIPIENTS - 1)
    assert all(_subject_of(m).endswith("セミナーのご案内") for m in later)


def test_a_worker_killed_mid_send_and_replaced_leaves_no_address_missed_or_mailed_twice(
    stack: StackControl,
    sending_setup: SendingDomain,
    stall_data_for: Callable[[str], DataStall],
) -> None:
    """SIGKILL the worker (and its pool) mid-send, start a new one: every address is mailed,
    none receives two different messages.

    The one duplicate an SMTP sender cannot rule out: a worker killed between the server's
    "250" and the row's UPDATE leaves that row claimed; once reclaimed it is sent again with the
    SAME Message-ID (stable per row, so receivers that deduplicate drop it). So deliveries are
    counted by (address, Message-ID): no address gets two different Message-IDs, and at most one
    delivery per kill repeats a Message-ID. The kill lands mid-message by design: the sink holds
    its reply to the 251st message until the worker is dead, then keeps it, so that message is
    exactly this duplicate.

    The stale-claim limit (EMAIL_STALE_CLAIM_MINUTES, at least two minutes) is longer than a
    test should wait; the test makes the dead worker's claim that old in the database instead,
    and then lets the real dispatcher take it back.
    """
    prospect_list, prospects = _audience(RECIPIENTS)
    expected = {prospect.email.lower() for prospect in prospects}
    # rows are sent in id order, 100 to a claim: the 251st is in the middle of the third claim
    in_flight = prospects[250]
    held = stall_data_for(in_flight.email)
    list_email = _schedule(sending_setup, prospect_list, "Fault test")
    # when the worker is in the middle of a message, 250 having arrived, it is killed
    assert held.reached.wait(SEND_TIMEOUT_SECONDS), "the send did not reach the 251st message"
    stack.kill_worker()
    held.release.set()
    assert len(_messages(stack)) == 251  # the in-flight message was kept by the server
    dead_claim = list(
        Recipient.objects.filter(list_email=list_email, status=RecipientStatus.CLAIMED)
    )
    assert sorted(row.email for row in dead_claim) == sorted(
        prospect.email.lower() for prospect in prospects[250:300]
    )
    # and a new worker starts: it sends the rows still queued (the second send task is still in
    # the broker) and leaves the dead worker's claim alone, since it is not stale
    stack.start_worker()
    dead_ids = [row.pk for row in dead_claim]
    _wait_for(
        lambda: (
            not Recipient.objects.filter(
                list_email=list_email, status=RecipientStatus.QUEUED
            ).exists()
            and Recipient.objects.filter(
                list_email=list_email, status=RecipientStatus.CLAIMED
            ).count()
            == len(dead_ids)
        ),
        SEND_TIMEOUT_SECONDS,
        "the new worker to send the queued rows",
    )
    assert set(
        Recipient.objects.filter(list_email=list_email, status=RecipientStatus.CLAIMED).values_list(
            "pk", flat=True
        )
    ) == set(dead_ids)
    list_email.refresh_from_db()
    assert list_email.status == ListEmailStatus.SENDING
    # then, once the dead claim is older than the stale-claim limit, the dispatcher takes it back
    # and starts a sender (the test does not wait out the dispatcher's one-minute throttle)
    Recipient.objects.filter(pk__in=dead_ids, status=RecipientStatus.CLAIMED).update(
        claimed_at=F("claimed_at") - sending.stale_claim_after()
    )
    cache.delete(f"emails:dispatch:{list_email.pk}")
    tasks.dispatch.delay()

    nudged: list[bool] = []

    def finished() -> bool:
        # the dispatcher marks a send sent once nothing is queued or claimed (a sender that
        # finds nothing to claim does too); one more run instead of waiting for beat's
        if (
            not nudged
            and not Recipient.objects.filter(
                list_email=list_email, status__in=[RecipientStatus.QUEUED, RecipientStatus.CLAIMED]
            ).exists()
        ):
            nudged.append(True)
            tasks.dispatch.delay()
        list_email.refresh_from_db()
        return list_email.status == ListEmailStatus.SENT

    _wait_for(finished, SEND_TIMEOUT_SECONDS, "the reclaimed rows to be sent")
    messages = _messages(stack)
    # every address received its message
    deliveries = [
        (address, str(_parsed(m)["Message-ID"])) for m in messages for address in m.recipients
    ]
    assert {address for address, _message_id in deliveries} == expected
    # no address received two different messages
    message_ids = collections.defaultdict(set)
    for address, message_id in deliveries:
        message_ids[address].add(message_id)
    assert [address for address, ids in message_ids.items() if len(ids) > 1] == []
    # at most one delivery repeated, with the same Message-ID: here it is the one in flight at
    # the kill, which the server had accepted
    repeated = [key for key, count in collections.Counter(deliveries).items() if count > 1]
    assert len(deliveries) - len(set(deliveries)) <= 1, repeated
    assert [address for address, _message_id in repeated] == [in_flight.email.lower()]
    assert (
        Recipient.objects.filter(list_email=list_email, status=RecipientStatus.SENT).count()
        == RECIPIENTS
    )
    # the send's counters are recounted from the rows when it finishes (the killed worker's
    # batch never reached the running counters)
    assert (list_email.sent_count, list_email.failed_count) == (RECIPIENTS, 0)


def test_an_ab_test_sends_the_share_then_the_winner_chosen_by_a_live_click_to_the_rest(
    stack: StackControl, sending_setup: SendingDomain
) -> None:
    # given 200 prospects and an email whose variant B has another subject
    prospect_list, prospects = _audience(200)
    list_email = list_email_create(
        actor=None,
        name="A/B seminar",
        recipient_lists=[prospect_list],
        sending_domain=sending_setup,
        subject="セミナーのご案内",
        html=HTML,
        sender_type="custom",
        sender_name="マップ ニュース",
        sender_address="news@mail.example.jp",
    )
    list_email_ab_test_set(
        list_email=list_email,
        variants=[{}, {"subject": "【残席わずか】セミナーのご案内"}],
        percent=20,
        hours=1,
        metric="click_rate",
    )
    # when it is scheduled, the worker sends the test share: 20 of each variant
    list_email_schedule(list_email=list_email)
    first = _wait_for(
        lambda: (found := _messages(stack)) and len(found) >= 40 and found,
        SEND_TIMEOUT_SECONDS,
        "the test share at the sink",
    )
    time.sleep(1)  # nothing more arrives while the rest is held
    assert len(_messages(stack)) == 40
    assert collections.Counter(_subject_of(m) for m in first) == {
        "セミナーのご案内": 20,
        "【残席わずか】セミナーのご案内": 20,
    }
    # a recipient of B clicks a link in the running app, at a person's pace (a click within
    # five seconds of delivery is a link scanner's and never counts); the worker records it
    time.sleep(bots.SCANNER_CLICK_SECONDS)
    b_message = next(m for m in first if _subject_of(m).startswith("【"))
    [tracked] = [
        href for href in re.findall(r'href="([^"]+)"', _html(_parsed(b_message))) if "/t/c/" in href
    ]
    assert _request(tracked)[0] == 302
    _wait_for(
        lambda: Activity.objects.filter(type=ActivityType.EMAIL_CLICKED, is_bot=False).exists(),
        30,
        "the click to be recorded",
    )
    # when the test's hour has passed, the dispatcher chooses B and the worker sends the rest
    ListEmail.objects.filter(pk=list_email.pk).update(
        started_at=F("started_at") - datetime.timedelta(hours=1)
    )
    cache.delete(f"emails:dispatch:{list_email.pk}")
    tasks.dispatch.delay()
    _wait_until_sent(list_email)
    list_email.refresh_from_db()
    assert list_email.ab_winner is not None
    assert list_email.ab_winner.letter == "B"
    messages = _wait_for(
        lambda: (found := _messages(stack)) and len(found) >= 200 and found,
        10,
        "every message at the sink",
    )
    # then each prospect received exactly one message, and the 160 held ones got B
    per_address = collections.Counter(address for m in messages for address in m.recipients)
    assert set(per_address) == {prospect.email.lower() for prospect in prospects}
    assert set(per_address.values()) == {1}
    assert all(_subject_of(m) == "【残席わずか】セミナーのご案内" for m in messages[40:])
