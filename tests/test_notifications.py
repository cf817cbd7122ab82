"""In-app notifications: list, open (never an open redirect), mark all read, top-bar badge."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from mapp.models import Notification, Role, User
from mapp.notifications import notify_user
from mapp.views_notifications import is_safe_local_path
from tests.conftest import client_for
from tests.factories import make_user


def _notify(user: User, title: str = "お知らせ", url: str = "") -> Notification:
    notification = notify_user(user=user, title=title, body="本文", url=url, send_email=False)
    assert notification is not None
    return notification


def test_the_list_shows_my_notifications_newest_first_unread_in_bold(
    sales_user: User, marketer: User
) -> None:
    older = _notify(sales_user, "古いお知らせ")
    newer = _notify(sales_user, "新しいお知らせ")
    Notification.objects.filter(pk=older.pk).update(read_at=timezone.now())
    _notify(marketer, "他人宛て")

    html = client_for(sales_user).get(reverse("notifications:list")).content.decode()

    assert html.index("新しいお知らせ") < html.index("古いお知らせ")
    assert "<strong>新しいお知らせ</strong>" in html
    assert "<strong>古いお知らせ</strong>" not in html
    assert f'data-notification="{newer.pk}" data-unread="true"' in html
    assert "他人宛て" not in html


@pytest.mark.parametrize(
    "stored_url",
    [
        "https://evil.example",
        "https://evil.example/tasks/1/",
        "//evil.example",
        "//evil.example/tasks/",
        "/\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "///evil.example",
        "javascript:alert(1)",
        "tasks/1/",
    ],
)
def test_opening_a_notification_never_follows_a_link_off_the_site(
    sales_user: User, stored_url: str
) -> None:
    # given a notification whose stored link points elsewhere
    notification = _notify(sales_user, url=stored_url)

    # when the user clicks it
    response = client_for(sales_user).get(reverse("notifications:open", args=[notification.pk]))

    # then it is read, and the user lands on the notification list, not on the link
    assert response.status_code == 302
    assert response["Location"] == reverse("notifications:list")
    notification.refresh_from_db()
    assert notification.read_at is not None


def test_opening_a_notification_follows_a_path_on_this_site_and_marks_it_read(
    sales_user: User,
) -> None:
    notification = _notify(sales_user, url="/tasks/12/")
    response = client_for(sales_user).get(reverse("notifications:open", args=[notification.pk]))
    assert response.status_code == 302
    assert response["Location"] == "/tasks/12/"
    notification.refresh_from_db()
    assert notification.read_at is not None


def test_safe_local_paths() -> None:
    assert is_safe_local_path("/tasks/1/?tab=notes#top")
    assert not is_safe_local_path("")
    assert not is_safe_local_path("/ /evil.example")
    assert not is_safe_local_path("/\u3000/evil.example")


def test_nobody_opens_someone_elses_notification(sales_user: User, marketer: User) -> None:
    notification = _notify(marketer, url="/tasks/1/")
    response = client_for(sales_user).get(reverse("notifications:open", args=[notification.pk]))
    assert response.status_code == 404
    notification.refresh_from_db()
    assert notification.read_at is None


def test_mark_all_read_marks_only_my_unread_notifications(sales_user: User, marketer: User) -> None:
    mine = [_notify(sales_user, f"n{index}") for index in range(3)]
    read_earlier = timezone.now() - datetime.timedelta(days=1)
    Notification.objects.filter(pk=mine[0].pk).update(read_at=read_earlier)
    theirs = _notify(marketer)
    client = client_for(sales_user)

    assert (
        reverse("notifications:mark_all_read")
        in client.get(reverse("notifications:list")).content.decode()
    )
    assert client.get(reverse("notifications:mark_all_read")).status_code == 405
    response = client.post(reverse("notifications:mark_all_read"))

    assert response.status_code == 302
    assert response["Location"] == reverse("notifications:list")
    assert not Notification.objects.filter(user=sales_user, read_at__isnull=True).exists()
    mine[0].refresh_from_db()
    assert mine[0].read_at == read_earlier  # the first reading time is kept
    theirs.refresh_from_db()
    assert theirs.read_at is None
    # nothing unread any more: the button is gone
    html = client.get(reverse("notifications:list")).content.decode()
    assert reverse("notifications:mark_all_read") not in html


def test_the_unread_count_fragment_is_a_small_badge(sales_user: User, marketer: User) -> None:
    client = client_for(sales_user)
    empty = client.get(reverse("notifications:unread_count"), HTTP_HX_REQUEST="true")
    assert empty.status_code == 200
    assert 'data-unread="0"' in empty.content.decode()
    assert 'data-testid="unread-count"' not in empty.content.decode()
    assert "no-cache" in empty["Cache-Control"] or "no-store" in empty["Cache-Control"]

    for index in range(2):
        _notify(sales_user, f"n{index}")
    _notify(marketer)
    fragment = client.get(reverse("notifications:unread_count")).content.decode()
    assert "<html" not in fragment
    assert 'data-testid="unread-count">2</span>' in fragment
    assert f'href="{reverse("notifications:list")}"' in fragment


def test_the_badge_caps_its_count(sales_user: User) -> None:
    Notification.objects.bulk_create(
        [Notification(user=sales_user, title=f"n{index}") for index in range(120)]
    )
    with CaptureQueriesContext(connection) as queries:
        fragment = client_for(sales_user).get(reverse("notifications:unread_count"))
    assert 'data-testid="unread-count">99+</span>' in fragment.content.decode()
    assert any("LIMIT 100" in query["sql"] for query in queries.captured_queries)


def test_the_badge_is_empty_for_a_signed_out_browser(db: None) -> None:
    # An expired session must not swap the sign-in page into the top bar.
    response = Client().get(reverse("notifications:unread_count"), HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert response.content == b""


def test_notification_pages_need_a_signed_in_user(db: None) -> None:
    response = Client().get(reverse("notifications:list"))
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_every_role_has_notifications(db: None) -> None:
    for slug in (Role.ADMINISTRATOR, Role.MARKETING, Role.SALES_MANAGER, Role.SALES):
        user = make_user(slug)
        assert client_for(user).get(reverse("notifications:list")).status_code == 200


def test_the_notification_list_paginates(sales_user: User) -> None:
    Notification.objects.bulk_create(
        [Notification(user=sales_user, title=f"n{index}") for index in range(51)]
    )
    html = client_for(sales_user).get(reverse("notifications:list")).content.decode()
    assert "?page=2" in html
