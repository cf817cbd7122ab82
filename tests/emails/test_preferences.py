"""The email preference centre behind every unsubscribe link: what it shows, the public static
lists a person may join and leave, unsubscribing from everything and opting back in, CSRF for
the page's forms (not for RFC 8058 one-click), and refusal of forged, garbled or stale input."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from emails.unsubscribe import unsubscribe_token, unsubscribe_url
from mapp.models import AccountSettings
from prospects.forms import ListForm
from prospects.models import ListMembership, Prospect, ProspectList
from tests.factories import ProspectFactory
from tracking.models import Activity, ActivityType

pytestmark = pytest.mark.django_db

LIST_EMAIL_ID = 7


@pytest.fixture
def prospect() -> Prospect:
    return ProspectFactory.create(email="hanako.sato@sample-shoji.co.jp")


@pytest.fixture
def url(prospect: Prospect) -> str:
    return unsubscribe_url(prospect_id=prospect.pk, list_email_id=LIST_EMAIL_ID)


@pytest.fixture
def lists(prospect: Prospect) -> dict[str, ProspectList]:
    """Two public static lists (the prospect is on the first), and three the centre must not
    offer: a private static list and a public dynamic one (the prospect is on both), and a
    private one they are not on."""
    made = {
        "news": ProspectList.objects.create(
            name="news-internal", public_name="月刊ニュース", description="毎月のお知らせ"
        ),
        "events": ProspectList.objects.create(name="セミナー案内", description=""),
        "private": ProspectList.objects.create(name="社内VIP"),
        "dynamic": ProspectList.objects.create(name="スコア上位", is_dynamic=True),
        "other": ProspectList.objects.create(name="未公開リスト"),
    }
    ProspectList.objects.filter(pk__in=[made["news"].pk, made["events"].pk]).update(is_public=True)
    ProspectList.objects.filter(pk=made["dynamic"].pk).update(is_public=True)
    for key in ("news", "private", "dynamic"):
        ListMembership.objects.create(prospect_list=made[key], prospect=prospect)
    return made


def _member_of(prospect: Prospect) -> set[str]:
    return set(
        ListMembership.objects.filter(prospect=prospect).values_list(
            "prospect_list__name", flat=True
        )
    )


def _checked_ids(content: str) -> set[int]:
    return {
        int(value)
        for value in re.findall(
            r'<input type="checkbox" name="list" value="(\d+)" checked>', content
        )
    }


def _offered_ids(content: str) -> set[int]:
    return {int(value) for value in re.findall(r'name="shown" value="(\d+)"', content)}


def _csrf_client(url: str) -> tuple[Client, str]:
    """A browser that enforces CSRF, after loading the page: its cookie and the form token."""
    client = Client(enforce_csrf_checks=True)
    page = client.get(url).content.decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match is not None
    return client, match.group(1)


def _list_activities(prospect: Prospect) -> list[tuple[str, str]]:
    return sorted(
        Activity.objects.filter(prospect_id=prospect.pk, object_type="prospect_list").values_list(
            "type", "object_label"
        )
    )


# --- the page -----------------------------------------------------------------------------------


def test_the_page_shows_the_public_static_lists_with_the_persons_own_ticked(
    english: None, url: str, lists: dict[str, ProspectList], account_identity: AccountSettings
) -> None:
    response = Client().get(url)
    assert response.status_code == 200
    page = response.content.decode()
    # the public names and descriptions, never the internal name of a list that has a public one
    assert "月刊ニュース" in page and "毎月のお知らせ" in page and "セミナー案内" in page
    assert "news-internal" not in page
    # neither the private nor the dynamic list, though the prospect is on both
    assert "社内VIP" not in page and "スコア上位" not in page and "未公開リスト" not in page
    assert _offered_ids(page) == {lists["news"].pk, lists["events"].pk}
    assert _checked_ids(page) == {lists["news"].pk}
    # whose settings these are, partly masked (the link may have been forwarded)
    assert "Settings for ha•••@sample-shoji.co.jp" in page
    assert "hanako.sato" not in page
    # the sender's particulars (特定電子メール法)
    for text in (
        "株式会社マップ",
        "〒100-0001 東京都千代田区千代田1-1",
        "info@example.jp",
        "03-1234-5678",
    ):
        assert text in page
    assert "Unsubscribe from all emails" in page
    assert response["Cache-Control"] == "no-store, private"
    assert response["Referrer-Policy"] == "same-origin"
    assert "script-src" not in response["Content-Security-Policy"]
    assert "default-src 'none'" in response["Content-Security-Policy"]


def test_a_get_changes_nothing(
    url: str, prospect: Prospect, lists: dict[str, ProspectList]
) -> None:
    before = _member_of(prospect)
    Client().get(url)
    Client().head(url)
    prospect.refresh_from_db()
    assert not prospect.opted_out
    assert _member_of(prospect) == before
    assert not Activity.objects.filter(prospect_id=prospect.pk).exists()


def test_the_page_speaks_the_browsers_language(
    url: str, lists: dict[str, ProspectList], settings: Any
) -> None:
    settings.LANGUAGE_CODE = "ja"
    japanese = Client(HTTP_ACCEPT_LANGUAGE="ja,en;q=0.5").get(url).content.decode()
    english = Client(HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").get(url).content.decode()
    assert '<html lang="ja">' in japanese
    assert "当社からのマーケティングメールの配信を停止しますか？" in japanese
    assert '<html lang="en">' in english
    assert "Do you want to stop receiving marketing emails from us?" in english


def test_hostile_list_names_and_account_fields_are_escaped(
    url: str, prospect: Prospect, account_identity: AccountSettings
) -> None:
    hostile = ProspectList.objects.create(
        name="x",
        public_name='<script>alert("name")</script>',
        description='"><img src=x onerror=alert(1)>',
        is_public=True,
    )
    ListMembership.objects.create(prospect_list=hostile, prospect=prospect)
    AccountSettings.objects.filter(pk=account_identity.pk).update(name="<b>会社</b>")
    page = Client().get(url).content.decode()
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>会社" not in page
    assert "&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;b&gt;会社&lt;/b&gt;" in page


def test_the_page_costs_the_same_few_queries_however_many_lists(
    url: str, prospect: Prospect, django_assert_max_num_queries: Any
) -> None:
    for number in range(30):
        made = ProspectList.objects.create(name=f"list {number}", is_public=True)
        ListMembership.objects.create(prospect_list=made, prospect=prospect)
    AccountSettings.load()
    with django_assert_max_num_queries(3):  # the prospect, its lists, the account settings
        response = Client().get(url)
    assert len(_checked_ids(response.content.decode())) == 30


# --- choosing lists -----------------------------------------------------------------------------


def test_saving_joins_and_leaves_public_static_lists_once(
    english: None, url: str, prospect: Prospect, lists: dict[str, ProspectList]
) -> None:
    client, csrf = _csrf_client(url)
    # the person unticks the newsletter and ticks the seminars
    form = {
        "csrfmiddlewaretoken": csrf,
        "action": "save",
        "shown": [lists["news"].pk, lists["events"].pk],
        "list": [lists["events"].pk],
    }
    first = client.post(url, form)
    assert first.status_code == 200
    assert "Your email preferences have been saved." in first.content.decode()
    assert _checked_ids(first.content.decode()) == {lists["events"].pk}
    assert _member_of(prospect) == {"セミナー案内", "社内VIP", "スコア上位"}
    # the same POST again (a double click, a reload) changes and records nothing more
    second = client.post(url, form)
    assert second.status_code == 200
    assert _member_of(prospect) == {"セミナー案内", "社内VIP", "スコア上位"}
    assert _list_activities(prospect) == sorted(
        [
            (ActivityType.OPT_IN.value, "セミナー案内"),
            (ActivityType.EMAIL_UNSUBSCRIBED.value, "news-internal"),
        ]
    )
    joined = Activity.objects.get(prospect_id=prospect.pk, type=ActivityType.OPT_IN)
    assert joined.object_id == str(lists["events"].pk)
    assert joined.payload == {
        "source": "preference_centre",
        "scope": "list",
        "email_id": f"le{LIST_EMAIL_ID}",
    }
    # leaving lists is not an opt-out from everything
    prospect.refresh_from_db()
    assert not prospect.opted_out


def test_private_and_dynamic_list_ids_from_a_hostile_client_are_ignored(
    url: str, prospect: Prospect, lists: dict[str, ProspectList]
) -> None:
    # claims the page showed the private, dynamic and other lists; ticks only "other"
    hidden = [lists["private"].pk, lists["dynamic"].pk, lists["other"].pk]
    response = Client().post(
        url, {"action": "save", "shown": hidden, "list": [lists["other"].pk, 999_999]}
    )
    assert response.status_code == 200
    assert _member_of(prospect) == {"news-internal", "社内VIP", "スコア上位"}
    assert _list_activities(prospect) == []


def test_a_list_the_page_did_not_show_is_left_alone(
    url: str, prospect: Prospect, lists: dict[str, ProspectList]
) -> None:
    # the page was opened before "news" became public: saving with nothing ticked must not
    # take the person off a list they never saw
    Client().post(url, {"action": "save", "shown": [lists["events"].pk]})
    assert "news-internal" in _member_of(prospect)


@pytest.mark.parametrize(
    "form",
    [
        {"action": "save", "shown": ["1", "abc"]},
        {"action": "save", "list": ["-3"]},
        {"action": "save", "list": ["１２"]},  # full-width digits are not an id we sent
        {"action": "save", "list": ["9" * 40]},
        {"action": "save", "shown": [str(number) for number in range(1, 250)]},
        {"action": "delete_everything"},
        {},
    ],
)
def test_garbled_page_posts_are_a_400_and_change_nothing(
    english: None, url: str, prospect: Prospect, lists: dict[str, ProspectList], form: Any
) -> None:
    response = Client().post(url, form)
    assert response.status_code == 400
    assert "This request could not be understood." in response.content.decode()
    assert _member_of(prospect) == {"news-internal", "社内VIP", "スコア上位"}
    prospect.refresh_from_db()
    assert not prospect.opted_out


def test_too_many_fields_are_a_400_not_a_500(
    english: None, url: str, settings: Any, lists: dict[str, ProspectList]
) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 50
    response = Client().post(url, {"action": "save", "list": [str(n) for n in range(100)]})
    assert response.status_code == 400
    assert "This request could not be understood." in response.content.decode()


# --- unsubscribing from everything, opting back in ----------------------------------------------


def test_the_pages_unsubscribe_button_needs_the_csrf_token(
    english: None, url: str, prospect: Prospect
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.get(url)  # has the cookie, but a forged form has no token
    refused = client.post(url, {"action": "unsubscribe_all"})
    assert refused.status_code == 403
    assert "Your request could not be verified." in refused.content.decode()
    prospect.refresh_from_db()
    assert not prospect.opted_out


def test_the_pages_unsubscribe_button_opts_out_once(
    english: None, url: str, prospect: Prospect, lists: dict[str, ProspectList]
) -> None:
    client, csrf = _csrf_client(url)
    first = client.post(url, {"csrfmiddlewaretoken": csrf, "action": "unsubscribe_all"})
    second = client.post(url, {"csrfmiddlewaretoken": csrf, "action": "unsubscribe_all"})
    assert (first.status_code, second.status_code) == (200, 200)
    page = first.content.decode()
    assert "You have been unsubscribed." in page
    assert "You are unsubscribed from all our emails." in page
    assert 'value="resubscribe"' in page and 'name="list"' not in page
    prospect.refresh_from_db()
    assert prospect.opted_out and not prospect.is_mailable
    for activity_type in (ActivityType.EMAIL_UNSUBSCRIBED, ActivityType.OPT_OUT):
        [activity] = Activity.objects.filter(
            type=activity_type, prospect_id=prospect.pk, object_type="list_email"
        )
        assert activity.payload["one_click"] is False
    # the lists are kept: opting back in restores what the person had chosen
    assert _member_of(prospect) == {"news-internal", "社内VIP", "スコア上位"}


def test_one_click_from_a_mail_client_needs_no_csrf_token_and_no_page(
    english: None, url: str, prospect: Prospect
) -> None:
    client = Client(enforce_csrf_checks=True)  # no GET first: no cookie, no token
    response = client.post(
        url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    assert "You have been unsubscribed." in response.content.decode()
    prospect.refresh_from_db()
    assert prospect.opted_out


def test_an_opted_out_person_sees_it_and_can_opt_back_in_once(
    english: None, url: str, prospect: Prospect, lists: dict[str, ProspectList]
) -> None:
    Prospect.objects.filter(pk=prospect.pk).update(opted_out=True)
    client, csrf = _csrf_client(url)
    page = client.get(url).content.decode()
    assert "You are unsubscribed from all our emails." in page
    assert "Receive emails again" in page
    assert 'value="unsubscribe_all"' not in page

    form = {"csrfmiddlewaretoken": csrf, "action": "resubscribe"}
    first = client.post(url, form, REMOTE_ADDR="203.0.113.9")
    client.post(url, form, REMOTE_ADDR="203.0.113.9")
    assert first.status_code == 200
    page = first.content.decode()
    assert "Thank you. You will receive our emails again." in page
    assert 'value="unsubscribe_all"' in page and _checked_ids(page) == {lists["news"].pk}
    prospect.refresh_from_db()
    assert not prospect.opted_out
    [activity] = Activity.objects.filter(prospect_id=prospect.pk, type=ActivityType.OPT_IN)
    assert (activity.object_type, activity.object_id) == ("list_email", str(LIST_EMAIL_ID))
    assert activity.payload == {
        "source": "preference_centre",
        "scope": "all",
        "email_id": f"le{LIST_EMAIL_ID}",
        "ip_address": "203.0.113.9",
    }


def test_opting_back_in_needs_the_csrf_token(url: str, prospect: Prospect) -> None:
    Prospect.objects.filter(pk=prospect.pk).update(opted_out=True)
    response = Client(enforce_csrf_checks=True).post(url, {"action": "resubscribe"})
    assert response.status_code == 403
    prospect.refresh_from_db()
    assert prospect.opted_out


def test_one_click_does_not_opt_anyone_back_in(url: str, prospect: Prospect) -> None:
    Prospect.objects.filter(pk=prospect.pk).update(opted_out=True)
    Client().post(url, {"List-Unsubscribe": "One-Click", "action": "resubscribe"})
    prospect.refresh_from_db()
    assert prospect.opted_out
    assert not Activity.objects.filter(prospect_id=prospect.pk).exists()


# --- links that do not lead anywhere ------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "garbled",
        unsubscribe_token(prospect_id=1, list_email_id=1)[:-3] + "abc",
        "x" * 5000,
        "%00%ff",
    ],
)
def test_forged_garbled_or_huge_tokens_get_a_400_page(english: None, token: str) -> None:
    for response in (
        Client().get(f"/email/unsubscribe/{token}"),
        Client().post(f"/email/unsubscribe/{token}", {"action": "resubscribe"}),
    ):
        assert response.status_code == 400
        assert "This unsubscribe link is not valid." in response.content.decode()


def test_a_deleted_prospects_link_has_nothing_to_manage(english: None, prospect: Prospect) -> None:
    url = unsubscribe_url(prospect_id=prospect.pk, list_email_id=LIST_EMAIL_ID)
    prospect.delete()
    get = Client().get(url)
    assert get.status_code == 410
    assert "There is nothing to manage for this link" in get.content.decode()
    for action in ("save", "resubscribe", "unsubscribe_all"):
        assert Client().post(url, {"action": action, "list": ["1"]}).status_code == 410
    # a mail client's one-click POST still gets its 200: nobody is left to mail
    one_click = Client().post(url, {"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    assert not Activity.objects.exists()


# --- the list form ------------------------------------------------------------------------------


def test_the_list_form_offers_the_preference_centre_settings(english: None) -> None:
    form = ListForm(
        {"name": "Newsletter", "is_public": "on", "public_name": "Monthly news", "criteria": ""}
    )
    assert form.is_valid(), form.errors
    assert (form.cleaned_data["is_public"], form.cleaned_data["public_name"]) == (
        True,
        "Monthly news",
    )


def test_the_list_form_refuses_a_public_dynamic_list(english: None) -> None:
    criteria = '{"match": "all", "conditions": []}'
    new = ListForm({"name": "Hot", "is_dynamic": "on", "is_public": "on", "criteria": criteria})
    assert not new.is_valid()
    assert new.errors["is_public"] == [
        "Only static lists can be shown in the preference centre: nobody can leave a dynamic "
        "list by hand."
    ]
    # editing: the page has no "dynamic" box, the list itself says what it is
    dynamic = ProspectList.objects.create(name="Hot", is_dynamic=True)
    edited = ListForm({"name": "Hot", "is_public": "on"}, prospect_list=dynamic)
    assert not edited.is_valid() and "is_public" in edited.errors
    static = ProspectList.objects.create(name="News")
    assert ListForm({"name": "News", "is_public": "on"}, prospect_list=static).is_valid()


def test_an_autoresponders_link_works_and_names_no_list_email(
    english: None, prospect: Prospect, lists: dict[str, ProspectList]
) -> None:
    # an autoresponder is not a list email: its token carries 0 (emails.rendering)
    url = unsubscribe_url(prospect_id=prospect.pk, list_email_id=0)
    client, csrf = _csrf_client(url)
    assert _checked_ids(client.get(url).content.decode()) == {lists["news"].pk}
    client.post(url, {"csrfmiddlewaretoken": csrf, "action": "save", "shown": [lists["news"].pk]})
    left = Activity.objects.get(prospect_id=prospect.pk, type=ActivityType.EMAIL_UNSUBSCRIBED)
    assert left.payload["email_id"] == ""
    assert Client().post(url, {"List-Unsubscribe": "One-Click"}).status_code == 200
    prospect.refresh_from_db()
    assert prospect.opted_out
    opt_out = Activity.objects.get(prospect_id=prospect.pk, type=ActivityType.OPT_OUT)
    assert (opt_out.object_type, opt_out.object_id, opt_out.payload["email_id"]) == ("", "", "")
