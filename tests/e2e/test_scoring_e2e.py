"""Issue 7's "done when", on the real stack (gunicorn, a Celery worker and beat, Redis, the SMTP
sink, headless Chromium):

a visitor on the customer's site (another origin) who views the pricing page and downloads the
whitepaper becomes HOT within seconds; the assigned sales user gets a notification and a task,
the next digest lists the lead, the prospect page explains every point of the score and the
grade; an automation rule moves year-long inactive prospects to a cold list; and the threshold
advisor suggests a threshold from data.
"""

from __future__ import annotations

import datetime
import email
import html
import json
import time
import urllib.parse
from collections.abc import Callable, Iterator
from email.policy import default as default_policy
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Sum
from django.utils import timezone

from mapp.models import Notification, Role
from prospects.models import JobLevel, ListMembership, Prospect, ProspectList, Task
from scoring.grading import default_profile, regrade
from scoring.hot import hot_rule_get
from scoring.models import (
    GradingCriterion,
    HotDigest,
    PageAction,
    ScoreCause,
    ScoreChange,
    ScoringRule,
    UrlMatch,
)
from tests.e2e.conftest import StackControl, screenshot_path, serve_site, wait_for
from tests.factories import TEST_PASSWORD, ProspectFactory, make_user
from tracking.identity import identify_token_for
from tracking.links import tracked_file_create
from tracking.models import ActivityType

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PAGE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>{title}</title>
<script>window.mappq=window.mappq||[];function mapp(){{mappq.push(arguments)}}</script>
<script async src="{tracker}/t/mapp.js" data-mapp-tracker="{tracker}"></script>
</head><body>
<h1>{title}</h1>
<p><a id="pricing" href="/pricing/">料金プラン</a></p>
<p><a id="whitepaper" href="{whitepaper}">ホワイトペーパーをダウンロード</a></p>
<button id="signup" data-token="{token}">資料請求</button>
<script>
document.getElementById("signup").addEventListener("click", function () {{
  mapp("identify", this.dataset.token);
}});
</script>
</body></html>
"""


@pytest.fixture
def customer_site(live_stack: str) -> Iterator[Callable[..., str]]:
    """The customer's website on another origin: a top page and /pricing/, both with the
    snippet, an identify button and a link to the whitepaper (a tracked file on the stack)."""
    state: dict[str, str] = {"token": "", "whitepaper": ""}
    titles = {"/": "サンプル商事 | トップ", "/pricing/": "サンプル商事 | 料金"}

    def render(path: str) -> str | None:
        if path not in titles:
            return None
        return PAGE.format(
            title=titles[path],
            tracker=live_stack,
            token=html.escape(state["token"]),
            whitepaper=html.escape(state["whitepaper"]),
        )

    with serve_site(render) as site_url:

        def configure(*, token: str, whitepaper: str) -> str:
            state.update(token=token, whitepaper=whitepaper)
            return site_url

        yield configure


def now_minus(**delta: float) -> datetime.datetime:
    return timezone.now() - datetime.timedelta(**delta)


def _mails_to(control: StackControl, address: str) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(message.data, policy=default_policy)
        for message in list(control.sink.messages)
        if address in message.recipients
    ]


def _text_of(message: email.message.EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def _sign_in(browser: Any, live_stack: str, address: str) -> Any:
    context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(live_stack + "/accounts/login/")
    page.fill("#id_username", address)
    page.fill("#id_password", TEST_PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    return context, page


def _scoring_setup(site: str, whitepaper_id: int) -> None:
    """The deck's example account: page views +1, the whitepaper +50, the pricing page +30 and
    a priority page, HOT from 80 points; the Default profile grades 役職 (課長以上) and 業種."""
    ScoringRule.objects.create(activity_type=ActivityType.PAGE_VIEW, points=1)
    ScoringRule.objects.create(activity_type=ActivityType.FILE_DOWNLOAD, points=3)
    ScoringRule.objects.create(
        name="ホワイトペーパー",
        activity_type=ActivityType.FILE_DOWNLOAD,
        object_type="file",
        object_id=str(whitepaper_id),
        points=50,
    )
    PageAction.objects.create(
        name="価格ページ",
        match_type=UrlMatch.PREFIX,
        url_pattern=f"{site}/pricing/",
        points=30,
        is_priority=True,
    )
    rule = hot_rule_get()
    rule.threshold = 80
    rule.criteria = {}
    rule.digest_enabled = True
    rule.digest_hour = 0  # the digest is due as soon as it is asked for
    rule.save()
    profile = default_profile()
    criteria = {
        "役職 / Job title": {
            "match": "all",
            "conditions": [
                {
                    "subject": "field",
                    "field": "job_level",
                    "operator": "gte",
                    "value": str(int(JobLevel.MANAGER)),
                }
            ],
        },
        "業種 / Industry": {
            "match": "all",
            "conditions": [
                {"subject": "field", "field": "industry", "operator": "equals", "value": "製造業"}
            ],
        },
    }
    for name, document in criteria.items():
        GradingCriterion.objects.update_or_create(
            profile=profile, name=name, defaults={"criteria": document, "weight": 2}
        )


def test_a_visitor_who_views_pricing_and_downloads_the_whitepaper_becomes_hot(
    live_stack: str,
    stack_control: StackControl,
    browser: Any,
    customer_site: Callable[..., str],
) -> None:
    # given a sales user, their prospect (課長, IT industry) and the account's scoring setup
    sales = make_user(
        Role.SALES, email="sales-e2e@example.jp", first_name="一郎", last_name="鈴木", language="ja"
    )
    prospect: Prospect = ProspectFactory.create(
        email="taro.yamada@sample-shoji.co.jp",
        last_name="山田",
        first_name="太郎",
        company_name="株式会社サンプル商事",
        job_title="営業部 課長",
        job_level=JobLevel.MANAGER,
        industry="情報通信業",
        assigned_user=sales,
    )
    whitepaper = tracked_file_create(
        actor=None,
        name="ホワイトペーパー",
        uploaded=SimpleUploadedFile("whitepaper.pdf", b"%PDF-1.4 e2e", "application/pdf"),
    )
    whitepaper_url = f"{live_stack}/f/{whitepaper.slug}/whitepaper.pdf"
    site = customer_site(token=identify_token_for(prospect.pk), whitepaper=whitepaper_url)
    _scoring_setup(site, whitepaper.pk)
    regrade(prospect_ids=[prospect.pk])

    # when the visitor identifies on the top page, views the pricing page and downloads
    context = browser.new_context(locale="ja-JP", accept_downloads=True)
    page = context.new_page()
    page.goto(site + "/")
    page.click("#signup")
    wait_for(
        lambda: prospect.visitors.exists(),
        30,
        "the identification",
    )
    page.click("#pricing")
    page.wait_for_url("**/pricing/")
    with page.expect_download() as download:
        page.click("#whitepaper")
    assert download.value.suggested_filename == "whitepaper.pdf"
    started = time.monotonic()

    # then within seconds the prospect is HOT
    wait_for(
        lambda: Prospect.objects.filter(pk=prospect.pk, hot_status="hot").exists(),
        60,
        "the prospect to become HOT",
    )
    became_hot_in = time.monotonic() - started
    prospect.refresh_from_db()
    assert prospect.score >= 80
    assert prospect.hot_since is not None
    ledger = ScoreChange.objects.filter(prospect=prospect)
    assert ledger.aggregate(total=Sum("points"))["total"] == prospect.score
    assert ledger.filter(cause=ScoreCause.PAGE_ACTION, points=30).count() == 1
    assert ledger.filter(cause=ScoreCause.ACTIVITY, points=50).count() == 1

    # the assigned sales user is told (the priority page at once, then HOT) and has a task
    wait_for(
        lambda: Task.objects.filter(assignee=sales, prospect=prospect).exists(),
        30,
        "the follow-up task",
    )
    notifications = list(Notification.objects.filter(user=sales).order_by("id"))
    about_prospect = [n for n in notifications if n.url == f"/prospects/{prospect.pk}/"]
    assert len(about_prospect) == 2, [(n.title, n.url) for n in notifications]  # page + HOT
    task = Task.objects.get(assignee=sales, prospect=prospect)
    assert any(n.url == f"/tasks/{task.pk}/" for n in notifications)
    wait_for(lambda: len(_mails_to(stack_control, sales.email)) >= 2, 30, "notification mails")
    assert became_hot_in < 60

    # and the next digest lists the new HOT lead, once, with a link to the prospect: as if
    # today's digest had gone out yesterday (beat's first run may have made it already) and the
    # lead had become HOT an hour ago (a digest leaves out the last minutes, still settling)
    yesterday = timezone.localdate() - datetime.timedelta(days=1)
    HotDigest.objects.filter(user=sales).update(day=yesterday)
    Prospect.objects.filter(pk=prospect.pk).update(hot_since=now_minus(hours=1))
    stack_control_digest_before = len(_mails_to(stack_control, sales.email))
    from mapp.celery import app as celery_app

    celery_app.send_task("scoring.send_hot_digests")
    celery_app.send_task("scoring.send_hot_digests")  # beat firing twice changes nothing
    wait_for(
        lambda: HotDigest.objects.filter(
            user=sales, day=timezone.localdate(), sent_at__isnull=False
        ).exists(),
        30,
        "the digest",
    )
    digest_mail = wait_for(
        lambda: [
            message
            for message in _mails_to(stack_control, sales.email)[stack_control_digest_before:]
            if "HOT" in str(message["Subject"]) or "ホットリード" in str(message["Subject"])
        ],
        30,
        "the digest mail",
    )
    assert len(digest_mail) == 1
    assert str(digest_mail[0]["Subject"]).strip() == "[mapp] ホットリードを【1人】追加しました"
    body = _text_of(digest_mail[0])
    assert "山田" in body and f"{live_stack}/prospects/{prospect.pk}/" in body
    assert HotDigest.objects.filter(user=sales, day=timezone.localdate()).count() == 1
    context.close()

    # the prospect page explains every point of the score and the grade
    staff, staff_page = _sign_in(browser, live_stack, sales.email)
    staff_page.goto(f"{live_stack}/prospects/{prospect.pk}/")
    score_panel = staff_page.inner_text("[data-panel=score]")
    assert "価格ページ" in score_panel and "ホワイトペーパー" in score_panel
    assert f"{prospect.score}" in score_panel
    grade_panel = staff_page.inner_text("[data-testid=grade-panel]")
    assert "役職" in grade_panel and "業種" in grade_panel
    prospect.refresh_from_db()
    assert prospect.grade == "D"  # 役職 matches (+2/3), 業種 does not (−2/3)
    staff_page.screenshot(path=str(screenshot_path("scoring_hot_prospect")), full_page=True)
    staff_page.goto(f"{live_stack}/sales/hot-leads/")
    assert "山田" in staff_page.inner_text("main")
    staff_page.screenshot(path=str(screenshot_path("scoring_my_hot_leads")), full_page=True)
    staff.close()

    # the marketer sees the status counts and the page action's views; the sales manager sees
    # the lead among those not followed up yet
    make_user(Role.MARKETING, email="marketer-hot@example.jp")
    marketing, marketing_page = _sign_in(browser, live_stack, "marketer-hot@example.jp")
    marketing_page.goto(f"{live_stack}/scoring/hot/")
    assert marketing_page.inner_text("[data-testid=count-hot]").strip() == "1"
    marketing_page.screenshot(path=str(screenshot_path("scoring_hot_rule")), full_page=True)
    marketing_page.goto(f"{live_stack}/scoring/page-actions/")
    assert marketing_page.inner_text("[data-testid=views]").strip() == "1"
    marketing_page.screenshot(path=str(screenshot_path("scoring_page_actions")), full_page=True)
    marketing.close()
    make_user(Role.SALES_MANAGER, email="manager-hot@example.jp")
    managing, manager_page = _sign_in(browser, live_stack, "manager-hot@example.jp")
    manager_page.goto(f"{live_stack}/sales/manager/")
    assert "山田" in manager_page.inner_text("main")
    manager_page.screenshot(path=str(screenshot_path("scoring_sales_manager")), full_page=True)
    managing.close()


def test_year_long_inactive_prospects_move_to_a_cold_list_and_the_advisor_suggests_a_threshold(
    live_stack: str, browser: Any
) -> None:
    from engagement import rules

    marketer = make_user(Role.MARKETING, email="marketer-e2e@example.jp")
    cold = ProspectList.objects.create(name="休眠リード")
    now = timezone.now()
    sleeping = ProspectFactory.create(email="sleeping@example.jp", last_name="休眠")
    active = ProspectFactory.create(email="active@example.jp", last_name="活動")
    Prospect.objects.filter(pk=sleeping.pk).update(
        last_activity_at=now - datetime.timedelta(days=400)
    )
    Prospect.objects.filter(pk=active.pk).update(last_activity_at=now - datetime.timedelta(days=3))

    # when a running automation rule says: no activity for 365 days → cold list, do not email
    rule = rules.automation_rule_create(
        actor=marketer,
        name="1年間活動なし → 休眠リスト",
        criteria={
            "match": "all",
            "conditions": [
                {
                    "subject": "field",
                    "field": "last_activity_at",
                    "operator": "more_than_days_ago",
                    "value": 365,
                }
            ],
        },
        actions=[
            {"action": "add_to_list", "config": {"list": cold.pk}},
            {"action": "set_do_not_email", "config": {}},
        ],
        run=True,
    )

    # then the worker processes the existing prospects (retroactively)
    wait_for(
        lambda: ListMembership.objects.filter(prospect_list=cold, prospect=sleeping).exists(),
        60,
        "the sleeping prospect in the cold list",
    )
    sleeping.refresh_from_db()
    assert sleeping.do_not_email
    rule.refresh_from_db()
    assert rule.matched_count == 1
    assert not ListMembership.objects.filter(prospect_list=cold, prospect=active).exists()

    # the advisor: prospects from 60 points convert far more often (the "won" list)
    won = ProspectList.objects.create(name="受注")
    for index in range(100):
        score = index
        prospect = ProspectFactory.create(email=f"advisor{index}@example.jp", score=score)
        if score >= 60 or index % 10 == 0:
            ListMembership.objects.create(prospect_list=won, prospect=prospect)
    target = {
        "match": "all",
        "conditions": [{"subject": "list", "operator": "member_of", "value": won.pk}],
    }
    context, page = _sign_in(browser, live_stack, marketer.email)
    query = urllib.parse.urlencode({"target": json.dumps(target), "band_width": 10})
    page.goto(f"{live_stack}/scoring/advisor/?{query}")
    page.screenshot(path=str(screenshot_path("scoring_threshold_advisor")), full_page=True)
    recommendation = page.inner_text("[data-testid=recommendation]")
    assert "60" in recommendation
    page.screenshot(path=str(screenshot_path("scoring_threshold_advisor")), full_page=True)
    context.close()
