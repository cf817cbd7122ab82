"""Sales-side pages: my HOT leads, my overdue tasks, the sales manager's morning dashboard."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from mapp.models import Role, User
from prospects.models import HotStatus, Prospect, Task, TaskStatus
from scoring.sales import (
    hot_leads_for_user,
    hot_leads_not_followed_up,
    local_today,
    overdue_tasks_by_user,
)
from tests.conftest import client_for
from tests.factories import ProspectFactory, make_user

UTC = datetime.UTC


def _hot(
    owner: User | None, *, hours_ago: float = 1, now: datetime.datetime | None = None, **fields: Any
) -> Prospect:
    """A HOT prospect (set directly: the HOT rule's own code sets these in production)."""
    moment = (now or timezone.now()) - datetime.timedelta(hours=hours_ago)
    defaults: dict[str, Any] = {
        "last_name": "山田",
        "first_name": "太郎",
        "company_name": "株式会社テスト",
        "score": 120,
        "grade": "B+",
    }
    return ProspectFactory.create(
        assigned_user=owner,
        hot_status=HotStatus.HOT,
        hot_since=moment,
        **{**defaults, **fields},
    )


def _task(
    assignee: User,
    prospect: Prospect | None = None,
    *,
    due: datetime.date | None = None,
    status: str = TaskStatus.OPEN,
    completed_at: datetime.datetime | None = None,
    subject: str = "フォローの電話",
) -> Task:
    return Task.objects.create(
        subject=subject,
        prospect=prospect,
        assignee=assignee,
        due_date=due,
        status=status,
        completed_at=completed_at,
    )


def _days(offset: int) -> datetime.date:
    return local_today() + datetime.timedelta(days=offset)


def _freeze(monkeypatch: pytest.MonkeyPatch, moment: datetime.datetime) -> None:
    monkeypatch.setattr(timezone, "now", lambda: moment)


# --- My HOT leads ------------------------------------------------------------------------------


def test_my_hot_leads_are_my_hot_prospects_newest_first(sales_user: User) -> None:
    # given HOT leads of mine, one of another sales user, an unassigned one, and non-HOT ones
    other = make_user(Role.SALES, email="suzuki@example.jp")
    older = _hot(sales_user, hours_ago=30, first_name="一郎")
    newer = _hot(sales_user, hours_ago=2, first_name="次郎")
    _hot(other)
    _hot(None)
    ProspectFactory.create(assigned_user=sales_user, hot_status=HotStatus.ENGAGED)
    ProspectFactory.create(assigned_user=sales_user, hot_status=HotStatus.NO_RESPONSE)
    _task(sales_user, newer)
    _task(sales_user, newer, due=_days(-1))
    _task(sales_user, newer, status=TaskStatus.DONE, completed_at=timezone.now())

    # when I open the page
    response = client_for(sales_user).get(reverse("sales:hot_leads"))

    # then I see my two HOT leads, newest HOT first, with the open task count
    assert response.status_code == 200
    leads = list(response.context["leads"])
    assert leads == [newer, older]
    assert [lead.open_task_count for lead in leads] == [2, 0]
    html = response.content.decode()
    assert "山田 次郎" in html and "株式会社テスト" in html
    assert f'href="{reverse("prospects:detail", args=[newer.pk])}"' in html


def test_a_sales_user_never_sees_another_users_hot_lead(sales_user: User) -> None:
    other = make_user(Role.SALES, email="suzuki@example.jp")
    theirs = _hot(other, first_name="他人")

    response = client_for(sales_user).get(reverse("sales:hot_leads"))

    assert list(response.context["leads"]) == []
    assert "他人" not in response.content.decode()
    assert list(hot_leads_for_user(user=other)) == [theirs]


def test_my_hot_leads_page_takes_the_same_queries_for_3_or_13_leads(sales_user: User) -> None:
    client = client_for(sales_user)
    url = reverse("sales:hot_leads")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured.captured_queries)

    for _ in range(3):
        lead = _hot(sales_user)
        _task(sales_user, lead, due=_days(-2))
    few = queries()
    for _ in range(10):
        lead = _hot(sales_user)
        _task(sales_user, lead, due=_days(3))
    assert queries() == few


def test_my_hot_leads_are_paginated(sales_user: User) -> None:
    ProspectFactory.create_batch(
        51,
        assigned_user=sales_user,
        hot_status=HotStatus.HOT,
        hot_since=timezone.now(),
    )

    response = client_for(sales_user).get(reverse("sales:hot_leads"), {"page": 2})

    assert response.context["page"].number == 2
    assert len(response.context["leads"]) == 1


# --- Overdue tasks -----------------------------------------------------------------------------


def test_my_overdue_tasks_oldest_first_with_days_overdue(sales_user: User) -> None:
    other = make_user(Role.SALES, email="suzuki@example.jp")
    prospect = _hot(sales_user)
    oldest = _task(sales_user, prospect, due=_days(-5), subject="見積書を送付")
    recent = _task(sales_user, due=_days(-1))
    _task(sales_user, due=_days(0))  # due today: not overdue yet
    _task(sales_user, due=None)
    _task(sales_user, due=_days(-3), status=TaskStatus.DONE, completed_at=timezone.now())
    _task(sales_user, due=_days(-3), status=TaskStatus.CANCELLED)
    _task(other, due=_days(-9))

    response = client_for(sales_user).get(reverse("sales:overdue_tasks"))

    assert response.status_code == 200
    rows = response.context["rows"]
    assert [(row.task, row.days_overdue) for row in rows] == [(oldest, 5), (recent, 1)]
    html = response.content.decode()
    assert "見積書を送付" in html and "山田 太郎" in html


@pytest.mark.parametrize(
    ("utc_moment", "overdue"),
    [
        # 2026-03-04 23:59 in Tokyo: a task due on the 4th is still due today
        (datetime.datetime(2026, 3, 4, 14, 59, tzinfo=UTC), False),
        # 2026-03-05 00:30 in Tokyo (still the 4th in UTC): now it is overdue
        (datetime.datetime(2026, 3, 4, 15, 30, tzinfo=UTC), True),
    ],
)
def test_overdue_starts_at_the_local_midnight(
    sales_user: User, monkeypatch: pytest.MonkeyPatch, utc_moment: datetime.datetime, overdue: bool
) -> None:
    task = _task(sales_user, due=datetime.date(2026, 3, 4))
    client = client_for(sales_user)
    _freeze(monkeypatch, utc_moment)

    response = client.get(reverse("sales:overdue_tasks"))

    assert [row.task for row in response.context["rows"]] == ([task] if overdue else [])


def test_overdue_page_takes_the_same_queries_for_2_or_12_tasks(sales_user: User) -> None:
    client = client_for(sales_user)
    url = reverse("sales:overdue_tasks")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured.captured_queries)

    for _ in range(2):
        _task(sales_user, _hot(sales_user), due=_days(-2))
    few = queries()
    for _ in range(10):
        _task(sales_user, _hot(sales_user), due=_days(-4))
    assert queries() == few


# --- the sales manager's dashboard -------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["sales_user"])
def test_roles_limited_to_their_own_prospects_get_403(request: Any, fixture: str) -> None:
    user = request.getfixturevalue(fixture)
    assert client_for(user).get(reverse("sales:manager")).status_code == 403


@pytest.mark.parametrize("fixture", ["sales_manager", "marketer", "administrator"])
def test_roles_that_see_every_prospect_get_the_dashboard(request: Any, fixture: str) -> None:
    user = request.getfixturevalue(fixture)
    assert client_for(user).get(reverse("sales:manager")).status_code == 200


def test_a_role_without_prospects_gets_403_on_every_sales_page(db: None) -> None:
    user = make_user(Role.MARKETING, email="reports@example.jp")
    user.role = Role.objects.create(name="閲覧のみ", slug="nothing", permissions={"reports": 1})
    user.save(update_fields=["role"])
    client = client_for(user)
    for name in ("sales:hot_leads", "sales:overdue_tasks", "sales:manager"):
        assert client.get(reverse(name)).status_code == 403, name


def test_followed_up_means_a_task_done_since_the_lead_became_hot(sales_manager: User) -> None:
    # given HOT leads in every state, at a fixed "now"
    now = timezone.now()
    tanaka = make_user(Role.SALES, email="tanaka@example.jp", last_name="田中", first_name="一郎")
    unassigned = _hot(None, hours_ago=3, now=now, first_name="未割当")
    waiting = _hot(tanaka, hours_ago=50, now=now, first_name="放置")
    done_before = _hot(tanaka, hours_ago=5, now=now, first_name="以前に対応")
    _task(
        tanaka,
        done_before,
        status=TaskStatus.DONE,
        completed_at=now - datetime.timedelta(hours=6),  # an hour before it became HOT
    )
    overdue_open = _hot(tanaka, hours_ago=4, now=now, first_name="期限切れ")
    _task(tanaka, overdue_open, due=_days(-2))
    followed = _hot(tanaka, hours_ago=10, now=now, first_name="対応済み")
    _task(
        tanaka,
        followed,
        status=TaskStatus.DONE,
        completed_at=now - datetime.timedelta(hours=1),
    )
    ProspectFactory.create(assigned_user=tanaka, hot_status=HotStatus.ENGAGED)

    # when the manager opens the dashboard
    response = client_for(sales_manager).get(reverse("sales:manager"))

    # then every HOT lead without a task done since it became HOT is listed, unassigned first,
    # then the longest waiting
    rows = response.context["leads"]
    assert [row.prospect for row in rows] == [unassigned, waiting, done_before, overdue_open]
    assert followed not in [row.prospect for row in rows]
    assert [row.hours_since_hot for row in rows] == [3, 50, 5, 4]
    assert [row.has_overdue_task for row in rows] == [False, False, False, True]
    assert response.context["lead_counts"] == {"total": 4, "unassigned": 1}
    html = response.content.decode()
    assert 'data-unassigned="true"' in html
    assert 'data-testid="followed-up-definition"' in html
    assert "田中 一郎" in html
    # and the selector agrees
    assert list(hot_leads_not_followed_up(user=sales_manager)) == [
        unassigned,
        waiting,
        done_before,
        overdue_open,
    ]


def test_the_definition_of_followed_up_is_stated_on_the_page(
    sales_manager: User, english: None
) -> None:
    response = client_for(sales_manager).get(reverse("sales:manager"))

    assert (
        "A HOT lead counts as followed up once a task about it has been marked done after it "
        "became HOT." in response.content.decode()
    )


def test_overdue_tasks_by_user_counts_oldest_and_links_to_the_filtered_list(
    sales_manager: User,
) -> None:
    tanaka = make_user(Role.SALES, email="tanaka@example.jp", last_name="田中", first_name="一郎")
    suzuki = make_user(Role.SALES, email="suzuki@example.jp", last_name="鈴木", first_name="花子")
    _task(tanaka, due=_days(-5))
    _task(tanaka, due=_days(-1))
    _task(tanaka, due=_days(0))  # due today
    _task(tanaka, due=_days(-7), status=TaskStatus.DONE, completed_at=timezone.now())
    _task(suzuki, due=_days(-2))
    today = local_today()

    response = client_for(sales_manager).get(reverse("sales:manager"))

    groups = [item["group"] for item in response.context["overdue_groups"]]
    assert [(group.assignee, group.count, group.oldest_due_date) for group in groups] == [
        (tanaka, 2, _days(-5)),
        (suzuki, 1, _days(-2)),
    ]
    assert [item["days_overdue"] for item in response.context["overdue_groups"]] == [5, 2]
    assert response.context["overdue_total"] == 3
    link = (
        f"{reverse('tasks:list')}?status=open&amp;assignee={tanaka.pk}"
        f"&amp;due_before={today:%Y-%m-%d}"
    )
    assert link in response.content.decode()
    # the link's list shows exactly those tasks
    listed = client_for(sales_manager).get(
        reverse("tasks:list"),
        {"status": "open", "assignee": str(tanaka.pk), "due_before": f"{today:%Y-%m-%d}"},
    )
    assert len(listed.context["rows"]) == 2


def test_overdue_by_user_uses_the_local_day(
    sales_manager: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    tanaka = make_user(Role.SALES, email="tanaka@example.jp")
    _task(tanaka, due=datetime.date(2026, 3, 4))
    tokyo_after_midnight = datetime.datetime(2026, 3, 4, 15, 30, tzinfo=UTC)

    groups = overdue_tasks_by_user(user=sales_manager, today=local_today(tokyo_after_midnight))

    assert [(group.assignee, group.count) for group in groups] == [(tanaka, 1)]
    assert overdue_tasks_by_user(user=sales_manager, today=datetime.date(2026, 3, 4)) == []


def test_manager_dashboard_takes_the_same_queries_for_few_or_many_rows(
    sales_manager: User,
) -> None:
    client = client_for(sales_manager)
    url = reverse("sales:manager")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured.captured_queries)

    def add(count: int) -> None:
        for index in range(count):
            owner = make_user(Role.SALES)
            lead = _hot(owner if index % 2 else None)
            _task(owner, lead, due=_days(-1 - index))

    add(2)
    few = queries()
    add(10)
    assert queries() == few


def test_home_dashboard_counts_my_hot_leads_and_shows_managers_those_not_followed_up(
    db: None,
) -> None:
    import re

    sales = make_user(Role.SALES)
    manager = make_user(Role.SALES_MANAGER)
    _hot(sales)
    _hot(sales)
    _hot(None)
    engaged = _hot(manager)
    Prospect.objects.filter(pk=engaged.pk).update(hot_status=HotStatus.ENGAGED, hot_since=None)

    sales_home = client_for(sales).get(reverse("home")).content.decode()
    manager_home = client_for(manager).get(reverse("home")).content.decode()

    def card(html: str, key: str) -> str | None:
        found = re.search(rf'data-card="{key}">.*?<a href="([^"]+)">(\d+)</a>', html, re.S)
        return f"{found.group(1)} {found.group(2)}" if found else None

    assert card(sales_home, "hot_leads_mine") == f"{reverse('sales:hot_leads')} 2"
    assert card(sales_home, "hot_leads_not_followed_up") is None
    assert card(manager_home, "hot_leads_mine") == f"{reverse('sales:hot_leads')} 0"
    assert card(manager_home, "hot_leads_not_followed_up") == f"{reverse('sales:manager')} 3"
