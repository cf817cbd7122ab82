"""Tasks (ToDo): creation notifies the assignee, role scope, overdue lists, htmx rows, cards."""

from __future__ import annotations

import datetime
import re

import pytest
from django.conf import settings
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from mapp.models import AuditLogEntry, Notification, Role, User
from prospects.models import Prospect, Task, TaskPriority, TaskStatus
from prospects.task_selectors import (
    register_task_dashboard_cards,
    tasks_overdue,
    tasks_visible_to,
)
from prospects.task_services import (
    task_cancel,
    task_complete,
    task_create,
    task_reopen,
    task_update,
    tasks_reassign,
)
from tests.conftest import client_for
from tests.factories import ProspectFactory, make_user


def _today() -> datetime.date:
    return timezone.localdate()


def _days(offset: int) -> datetime.date:
    return _today() + datetime.timedelta(days=offset)


def _prospect(owner: User | None = None, **kwargs: object) -> Prospect:
    return ProspectFactory.create(assigned_user=owner, **kwargs)


# --- creation and notification ------------------------------------------------------------------


def test_manager_gives_a_sales_user_a_task_who_is_notified_in_japanese(
    sales_manager: User, django_capture_on_commit_callbacks
) -> None:
    # given a Japanese-speaking sales user with a prospect, and a manager browsing in English
    assignee = make_user(Role.SALES, email="tanaka@example.jp", language="ja")
    prospect = _prospect(assignee, last_name="佐藤", first_name="花子")
    client = client_for(sales_manager)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"

    # when the manager creates a task from the prospect page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("tasks:create") + f"?prospect={prospect.pk}",
            {
                "subject": "見積書を送付",
                "assignee": assignee.pk,
                "due_date": "2026-03-05",
                "priority": TaskPriority.HIGH,
                "notes": "金曜までに",
            },
        )

    # then the task exists, and the assignee has an in-app notice and one mail in Japanese
    task = Task.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("tasks:detail", args=[task.pk])
    assert (task.assignee, task.prospect, task.created_by) == (assignee, prospect, sales_manager)
    assert task.due_date == datetime.date(2026, 3, 5)
    task_path = reverse("tasks:detail", args=[task.pk])
    notification = Notification.objects.get(user=assignee)
    assert notification.url == task_path
    assert "見積書を送付" in notification.title
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["tanaka@example.jp"]
    assert "見積書を送付" in message.subject
    assert f"{settings.SITE_URL}{task_path}" in message.body
    assert "2026年3月5日" in message.body  # the assignee's language, not the manager's English
    assert "March" not in message.body
    with translation.override("ja"):
        assert translation.gettext("New task: %(subject)s") % {"subject": "見積書を送付"} in (
            message.subject
        )
    assert "task.create" in AuditLogEntry.objects.values_list("action", flat=True)


def test_the_notification_follows_an_english_assignee_whatever_the_actor_speaks(
    sales_manager: User, django_capture_on_commit_callbacks
) -> None:
    assignee = make_user(Role.SALES, email="smith@example.jp", language="en")
    with translation.override("ja"), django_capture_on_commit_callbacks(execute=True):
        task_create(
            actor=sales_manager,
            assignee=assignee,
            subject="Call back",
            due_date=datetime.date(2026, 3, 5),
        )
    assert len(mail.outbox) == 1
    assert "March 5, 2026" in mail.outbox[0].body


def test_a_task_one_makes_for_oneself_notifies_nobody(
    sales_user: User, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        task = task_create(actor=sales_user, assignee=sales_user, subject="自分用メモ")
    assert task.pk
    assert not Notification.objects.exists()
    assert mail.outbox == []


def test_the_same_dedup_key_twice_makes_one_task_and_one_notification(
    sales_user: User, django_capture_on_commit_callbacks
) -> None:
    # given a prospect an automation follows up
    prospect = _prospect(sales_user)

    # when a retried automation job creates "the same" task twice
    with django_capture_on_commit_callbacks(execute=True):
        first = task_create(
            actor=None,
            assignee=sales_user,
            subject="HOTリードをフォロー",
            prospect=prospect,
            dedup_key=f"rule:7:prospect:{prospect.pk}",
        )
        second = task_create(
            actor=None,
            assignee=sales_user,
            subject="HOTリードをフォロー",
            prospect=prospect,
            dedup_key=f"rule:7:prospect:{prospect.pk}",
        )

    # then there is one task, one notice and one mail
    assert first.pk == second.pk
    assert Task.objects.count() == 1
    assert Notification.objects.filter(user=sales_user).count() == 1
    assert len(mail.outbox) == 1


def test_a_dedup_key_only_holds_while_its_task_is_open_and_only_for_itself(
    sales_user: User,
) -> None:
    prospect = _prospect(sales_user)
    first = task_create(
        actor=None, assignee=sales_user, subject="フォロー", prospect=prospect, dedup_key="k1"
    )
    # a hand-made task with the same subject is not "the same" as the automation's
    manual = task_create(
        actor=sales_user, assignee=sales_user, subject="フォロー", prospect=prospect
    )
    assert manual.pk != first.pk
    # once done, the automation firing again makes a new task (and a new notice)
    task_complete(actor=sales_user, task=first)
    again = task_create(
        actor=None, assignee=sales_user, subject="フォロー", prospect=prospect, dedup_key="k1"
    )
    assert again.pk not in {first.pk, manual.pk}
    assert Notification.objects.filter(user=sales_user).count() == 2


@pytest.mark.parametrize(
    ("subject", "field"),
    [("", "subject"), ("   ", "subject"), ("あ" * 201, "subject")],
)
def test_a_task_needs_a_short_subject(sales_manager: User, subject: str, field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        task_create(actor=sales_manager, assignee=sales_manager, subject=subject)
    assert field in raised.value.message_dict
    assert not Task.objects.exists()


def test_tasks_go_only_to_active_users_who_can_see_the_prospect(sales_manager: User) -> None:
    leaver = make_user(Role.SALES, email="leaver@example.jp", is_active=False)
    with pytest.raises(ValidationError) as raised:
        task_create(actor=sales_manager, assignee=leaver, subject="引継ぎ")
    assert "assignee" in raised.value.message_dict

    sales = make_user(Role.SALES, email="other@example.jp")
    not_theirs = _prospect(None)
    with pytest.raises(ValidationError) as raised:
        task_create(actor=sales_manager, assignee=sales, subject="電話", prospect=not_theirs)
    assert "assignee" in raised.value.message_dict
    assert not Task.objects.exists()


def test_a_sales_user_creates_tasks_only_for_themselves_on_their_prospects(
    sales_user: User,
) -> None:
    colleague = make_user(Role.SALES, email="colleague@example.jp")
    theirs = _prospect(colleague)
    mine = _prospect(sales_user)

    with pytest.raises(ValidationError) as raised:
        task_create(actor=sales_user, assignee=sales_user, subject="横取り", prospect=theirs)
    assert "prospect" in raised.value.message_dict
    with pytest.raises(ValidationError) as raised:
        task_create(actor=sales_user, assignee=colleague, subject="お願い", prospect=None)
    assert "assignee" in raised.value.message_dict

    # the pages refuse the same: someone else's prospect is 404, another assignee is no choice
    client = client_for(sales_user)
    assert client.get(reverse("tasks:create") + f"?prospect={theirs.pk}").status_code == 404
    assert client.get(reverse("tasks:create") + "?prospect=abc").status_code == 404
    response = client.post(
        reverse("tasks:create") + f"?prospect={mine.pk}",
        {"subject": "お願い", "assignee": colleague.pk, "priority": TaskPriority.NORMAL},
    )
    assert response.status_code == 200
    assert not Task.objects.exists()
    response = client.post(
        reverse("tasks:create") + f"?prospect={mine.pk}",
        {"subject": "訪問準備", "assignee": sales_user.pk, "priority": TaskPriority.NORMAL},
    )
    assert response.status_code == 302
    assert Task.objects.get().prospect == mine


def test_the_create_form_offers_the_prospects_owner_and_only_active_users(
    sales_manager: User,
) -> None:
    owner = make_user(Role.SALES, email="owner@example.jp")
    make_user(Role.SALES, email="gone@example.jp", is_active=False)
    prospect = _prospect(owner)
    page = client_for(sales_manager).get(reverse("tasks:create") + f"?prospect={prospect.pk}")
    html = page.content.decode()
    assert page.status_code == 200
    assert re.search(rf'<option value="{owner.pk}" selected>', html)
    assert "gone@example.jp" not in html


# --- role scope ---------------------------------------------------------------------------------


def test_a_sales_user_cannot_see_or_change_another_users_task(
    sales_user: User, sales_manager: User
) -> None:
    # given a colleague's task about the colleague's prospect
    colleague = make_user(Role.SALES, email="colleague@example.jp")
    task = task_create(
        actor=sales_manager,
        assignee=colleague,
        subject="他人のタスク",
        prospect=_prospect(colleague),
    )
    client = client_for(sales_user)

    # then every page about it is a 404 and nothing changes
    assert client.get(reverse("tasks:detail", args=[task.pk])).status_code == 404
    assert (
        client.post(
            reverse("tasks:detail", args=[task.pk]),
            {"subject": "乗っ取り", "assignee": sales_user.pk, "priority": 2},
        ).status_code
        == 404
    )
    for name in ("tasks:complete", "tasks:cancel", "tasks:reopen"):
        assert client.post(reverse(name, args=[task.pk])).status_code == 404
    assert "他人のタスク" not in client.get(reverse("tasks:list") + "?status=").content.decode()
    task.refresh_from_db()
    assert (task.subject, task.status) == ("他人のタスク", TaskStatus.OPEN)
    assert list(tasks_visible_to(sales_user)) == []
    assert list(tasks_visible_to(sales_manager)) == [task]


def test_a_sales_user_sees_the_managers_task_on_their_prospect_but_cannot_change_it(
    sales_user: User, sales_manager: User
) -> None:
    prospect = _prospect(sales_user)
    task = task_create(
        actor=sales_manager, assignee=sales_manager, subject="上長同行", prospect=prospect
    )
    client = client_for(sales_user)
    page = client.get(reverse("tasks:detail", args=[task.pk]))
    assert page.status_code == 200
    assert "上長同行" in page.content.decode()
    assert client.post(reverse("tasks:complete", args=[task.pk])).status_code == 403
    with pytest.raises(PermissionDenied):
        task_update(actor=sales_user, task=task, data={"subject": "変更"})
    task.refresh_from_db()
    assert task.status == TaskStatus.OPEN


def test_editing_a_task_saves_and_handing_it_over_notifies_the_new_assignee(
    sales_manager: User, sales_user: User, django_capture_on_commit_callbacks
) -> None:
    task = task_create(actor=sales_manager, assignee=sales_manager, subject="資料準備")
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(sales_manager).post(
            reverse("tasks:detail", args=[task.pk]),
            {
                "subject": "資料準備（改）",
                "assignee": sales_user.pk,
                "due_date": "2026-04-01",
                "priority": TaskPriority.LOW,
                "notes": "",
            },
        )
    assert response.status_code == 302
    task.refresh_from_db()
    assert (task.subject, task.assignee, task.priority) == ("資料準備（改）", sales_user, 1)
    assert Notification.objects.filter(user=sales_user, url=f"/tasks/{task.pk}/").count() == 1
    assert len(mail.outbox) == 1


def test_deactivating_a_user_can_hand_their_open_tasks_over(sales_manager: User) -> None:
    leaver = make_user(Role.SALES, email="leaver@example.jp")
    open_task = task_create(actor=leaver, assignee=leaver, subject="未完了")
    done_task = task_complete(
        actor=leaver, task=task_create(actor=leaver, assignee=leaver, subject="完了済み")
    )
    assert tasks_reassign(leaver, None) == 0
    assert tasks_reassign(leaver, sales_manager) == 1
    open_task.refresh_from_db()
    done_task.refresh_from_db()
    assert open_task.assignee == sales_manager
    assert done_task.assignee == leaver


# --- status changes -----------------------------------------------------------------------------


def test_completing_by_htmx_swaps_the_row_and_sets_completed_at(sales_user: User) -> None:
    task = task_create(
        actor=sales_user, assignee=sales_user, subject="電話する", due_date=_days(-1)
    )
    client = client_for(sales_user)
    mine = client.get(reverse("tasks:mine")).content.decode()
    assert f'hx-post="{reverse("tasks:complete", args=[task.pk])}"' in mine
    assert 'hx-target="closest tr"' in mine

    response = client.post(
        reverse("tasks:complete", args=[task.pk]),
        {"next": reverse("tasks:mine")},
        HTTP_HX_REQUEST="true",
    )

    fragment = response.content.decode()
    assert response.status_code == 200
    assert fragment.lstrip().startswith(f'<tr id="task-{task.pk}"')
    assert "<html" not in fragment
    assert 'data-status="done"' in fragment
    assert 'data-overdue="true"' not in fragment  # done is not overdue any more
    assert reverse("tasks:reopen", args=[task.pk]) in fragment
    task.refresh_from_db()
    assert task.status == TaskStatus.DONE
    assert task.completed_at is not None
    assert AuditLogEntry.objects.filter(action="task.complete", object_id=str(task.pk)).count() == 1


def test_completing_twice_changes_nothing_the_second_time(sales_user: User) -> None:
    task = task_create(actor=sales_user, assignee=sales_user, subject="二重クリック")
    client = client_for(sales_user)
    first = client.post(reverse("tasks:complete", args=[task.pk]))
    task.refresh_from_db()
    completed_at = task.completed_at
    second = client.post(reverse("tasks:complete", args=[task.pk]))
    assert (first.status_code, second.status_code) == (302, 302)
    assert first["Location"] == reverse("tasks:detail", args=[task.pk])
    task.refresh_from_db()
    assert task.completed_at == completed_at
    assert AuditLogEntry.objects.filter(action="task.complete").count() == 1


def test_reopen_and_cancel(sales_user: User) -> None:
    task = task_create(actor=sales_user, assignee=sales_user, subject="再開")
    task_complete(actor=sales_user, task=task)
    task_reopen(actor=sales_user, task=task)
    assert (task.status, task.completed_at) == (TaskStatus.OPEN, None)
    task_cancel(actor=sales_user, task=task)
    assert task.status == TaskStatus.CANCELLED
    response = client_for(sales_user).post(
        reverse("tasks:reopen", args=[task.pk]), {"next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("tasks:detail", args=[task.pk])
    task.refresh_from_db()
    assert task.status == TaskStatus.OPEN


# --- overdue ------------------------------------------------------------------------------------


def test_overdue_means_open_and_due_before_todays_local_date(sales_user: User) -> None:
    yesterday = task_create(
        actor=sales_user, assignee=sales_user, subject="昨日", due_date=_days(-1)
    )
    done = task_create(actor=sales_user, assignee=sales_user, subject="済", due_date=_days(-3))
    task_complete(actor=sales_user, task=done)
    cancelled = task_create(
        actor=sales_user, assignee=sales_user, subject="中止", due_date=_days(-3)
    )
    task_cancel(actor=sales_user, task=cancelled)
    task_create(actor=sales_user, assignee=sales_user, subject="今日", due_date=_today())
    task_create(actor=sales_user, assignee=sales_user, subject="明日", due_date=_days(1))
    task_create(actor=sales_user, assignee=sales_user, subject="期日なし")

    assert list(tasks_overdue(user=sales_user)) == [yesterday]
    assert list(tasks_overdue()) == [yesterday]
    # "today" is the Asia/Tokyo date: the same task is not overdue on its due date
    assert list(tasks_overdue(today=_days(-1))) == []

    page = client_for(sales_user).get(reverse("tasks:overdue")).content.decode()
    assert "昨日" in page
    for subject in ("済", "中止", "今日", "明日", "期日なし"):
        assert f">{subject}<" not in page

    mine = client_for(sales_user).get(reverse("tasks:mine")).content.decode()
    assert len(re.findall(r'data-overdue="true"', mine)) == 1
    assert (
        mine.index(">昨日<")
        < mine.index(">今日<")
        < mine.index(">明日<")
        < mine.index(">期日なし<")
    )


def test_my_tasks_sorts_by_due_date_then_priority(sales_user: User) -> None:
    for subject, priority in (("低", TaskPriority.LOW), ("高", TaskPriority.HIGH)):
        task_create(
            actor=sales_user,
            assignee=sales_user,
            subject=subject,
            due_date=_days(2),
            priority=priority,
        )
    mine = client_for(sales_user).get(reverse("tasks:mine")).content.decode()
    assert mine.index(">高<") < mine.index(">低<")


def test_the_manager_sees_team_overdue_grouped_by_assignee_and_sales_only_their_own(
    sales_manager: User, sales_user: User
) -> None:
    # given overdue tasks of two sales users
    colleague = make_user(Role.SALES, email="colleague@example.jp", last_name="鈴木")
    for index in range(2):
        task_create(
            actor=sales_manager, assignee=sales_user, subject=f"mine-{index}", due_date=_days(-2)
        )
    for index in range(3):
        task_create(
            actor=sales_manager, assignee=colleague, subject=f"theirs-{index}", due_date=_days(-5)
        )

    # when the manager opens the overdue page
    page = client_for(sales_manager).get(reverse("tasks:overdue")).content.decode()

    # then each assignee is a group with its count, the biggest first
    summary = re.findall(r'<tr data-assignee="(\d+)"><td>.*?</td><td><a [^>]*>(\d+)</a>', page)
    assert summary == [(str(colleague.pk), "3"), (str(sales_user.pk), "2")]
    assert f'id="assignee-{colleague.pk}"' in page
    assert f'id="assignee-{sales_user.pk}"' in page
    assert all(f"mine-{index}" in page for index in range(2))

    # and the sales user sees only their own
    own = client_for(sales_user).get(reverse("tasks:overdue")).content.decode()
    assert "mine-0" in own
    assert "theirs-0" not in own
    assert f'id="assignee-{colleague.pk}"' not in own


# --- list, filters and query counts -------------------------------------------------------------


def test_the_task_list_filters_by_status_assignee_and_due_date(
    sales_manager: User, sales_user: User
) -> None:
    colleague = make_user(Role.SALES, email="colleague@example.jp")
    task_create(actor=sales_manager, assignee=sales_user, subject="A-early", due_date=_days(1))
    task_create(actor=sales_manager, assignee=sales_user, subject="A-late", due_date=_days(30))
    task_create(actor=sales_manager, assignee=colleague, subject="B-early", due_date=_days(1))
    done = task_create(actor=sales_manager, assignee=colleague, subject="B-done")
    task_complete(actor=sales_manager, task=done)
    client = client_for(sales_manager)

    def subjects(query: str) -> set[str]:
        html = client.get(reverse("tasks:list") + query).content.decode()
        return set(re.findall(r'<a href="/tasks/\d+/">([^<]+)</a>', html))

    assert subjects("") == {"A-early", "A-late", "B-early"}  # open by default
    assert subjects("?status=") == {"A-early", "A-late", "B-early", "B-done"}
    assert subjects("?status=done") == {"B-done"}
    assert subjects(f"?status=open&assignee={sales_user.pk}") == {"A-early", "A-late"}
    assert subjects(f"?due_before={_days(2).isoformat()}") == {"A-early", "B-early"}
    assert subjects("?status=bogus") == {"A-early", "A-late", "B-early", "B-done"}


def test_the_task_list_paginates_keeping_its_filters(sales_manager: User) -> None:
    for index in range(51):
        task_create(actor=sales_manager, assignee=sales_manager, subject=f"t{index}")
    html = client_for(sales_manager).get(reverse("tasks:list") + "?status=open").content.decode()
    assert "?status=open&amp;page=2" in html


@pytest.mark.parametrize("url_name", ["tasks:list", "tasks:mine", "tasks:overdue"])
def test_task_pages_do_not_query_per_task(
    sales_manager: User, sales_user: User, url_name: str
) -> None:
    client = client_for(sales_manager)

    def make_tasks(count: int) -> None:
        for _index in range(count):
            owner = make_user(Role.SALES)
            task_create(
                actor=sales_manager,
                assignee=owner if url_name != "tasks:mine" else sales_manager,
                subject="フォロー",
                prospect=_prospect(owner if url_name != "tasks:mine" else None),
                due_date=_days(-1),
            )

    make_tasks(2)
    client.get(reverse(url_name))  # warm the session and caches
    with CaptureQueriesContext(connection) as few:
        assert client.get(reverse(url_name)).status_code == 200
    make_tasks(12)
    with CaptureQueriesContext(connection) as many:
        assert client.get(reverse(url_name)).status_code == 200
    assert len(many) == len(few), [query["sql"] for query in many.captured_queries]


# --- dashboard ----------------------------------------------------------------------------------


def test_dashboard_cards_show_my_tasks_and_the_team_card_only_to_managers(
    sales_manager: User, sales_user: User
) -> None:
    register_task_dashboard_cards()
    task_create(actor=sales_manager, assignee=sales_user, subject="期限切れ", due_date=_days(-1))
    task_create(actor=sales_manager, assignee=sales_user, subject="まだ", due_date=_days(3))

    sales_home = client_for(sales_user).get(reverse("home")).content.decode()
    manager_home = client_for(sales_manager).get(reverse("home")).content.decode()

    def card(html: str, key: str) -> str | None:
        found = re.search(rf'data-card="{key}">.*?<a href="([^"]+)">(\d+)</a>', html, re.S)
        return f"{found.group(1)} {found.group(2)}" if found else None

    assert card(sales_home, "tasks_mine_open") == f"{reverse('tasks:mine')} 2"
    assert card(sales_home, "tasks_mine_overdue") == f"{reverse('tasks:mine')} 1"
    assert card(sales_home, "tasks_team_overdue") is None
    assert card(manager_home, "tasks_mine_open") == f"{reverse('tasks:mine')} 0"
    assert card(manager_home, "tasks_team_overdue") == f"{reverse('tasks:overdue')} 1"


def test_anonymous_visitors_are_sent_to_sign_in(db: None) -> None:
    response = Client().get(reverse("tasks:mine"))
    assert response.status_code == 302
    assert "login" in response["Location"]
