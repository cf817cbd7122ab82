"""The forms issue's end-to-end test, on the real stack (gunicorn, Celery worker, beat) with
headless Chromium: a customer's website on another origin has the tracking snippet, an existing
plain HTML contact form whose ``action`` now points at a mapp form handler, and a page embedding
a mapp 資料請求 form with the JS embed. Two anonymous visitors browse, then submit one each.
Both become prospects (one new, one updated) linked to their earlier page views, the completion
actions run (assignment, list membership, a task for the assigned sales user, who is notified),
and the submissions are in the activity stream."""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from forms.models import FieldType, Form, FormField, FormHandler, FormHandlerField
from mapp.models import Notification, Role, User
from prospects.actions import actions_validate
from prospects.models import ListMembership, Prospect, ProspectList, Task
from tests.e2e.conftest import screenshot_path, serve_site, wait_for
from tests.factories import ProspectFactory, make_user
from tracking.models import Activity, ActivityType, Visitor

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HEAD = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>{title}</title>
<script>window.mappq=window.mappq||[];function mapp(){{mappq.push(arguments)}}</script>
<script async src="{tracker}/t/mapp.js" data-mapp-tracker="{tracker}"></script>
</head><body><h1>{title}</h1>
"""

PAGES = {
    "/index.html": ("サンプル商事 | 製品紹介", '<p><a href="/contact.html">お問い合わせ</a></p>'),
    # The site's own form, unchanged except for its action (the seeds' フォームハンドラー).
    "/contact.html": (
        "サンプル商事 | お問い合わせ",
        """<form id="contact" method="post" action="{tracker}/handler/{handler}">
  <label>メール <input name="mail" type="email"></label>
  <label>会社名 <input name="company"></label>
  <label>お名前 <input name="name"></label>
  <button type="submit">送信</button>
</form>""",
    ),
    "/thanks.html": (
        "サンプル商事 | 送信完了",
        "<p id=done>お問い合わせありがとうございました。</p>",
    ),
    "/whitepaper.html": (
        "サンプル商事 | ホワイトペーパー",
        '<div data-mapp-form="{form}"></div>\n<script src="{tracker}/forms/{form}/embed.js" async>'
        "</script>",
    ),
}


@pytest.fixture
def customer_site(live_stack: str) -> Iterator[Callable[[FormHandler, Form], str]]:
    """The customer's website on another origin (same host, another port: same site)."""
    ids: dict[str, str] = {}

    def render(path: str) -> str | None:
        if path not in PAGES:
            return None
        title, body = PAGES[path]
        values = {"tracker": live_stack, **ids}
        page = HEAD.format(title=html.escape(title), tracker=live_stack) + body.format(**values)
        return page + "</body></html>"

    with serve_site(render) as site_url:

        def serve(handler: FormHandler, form: Form) -> str:
            ids.update(handler=str(handler.uuid), form=str(form.uuid))
            return site_url

        yield serve


def _completion_actions(seller: User, prospect_list: ProspectList) -> list[dict[str, Any]]:
    return actions_validate(
        [
            {"action": "assign_user", "config": {"user": seller.pk}},
            {"action": "add_to_list", "config": {"list": prospect_list.pk}},
            {
                "action": "create_task_for_assigned_user",
                "config": {"subject": "資料請求のフォロー", "due_in_days": 2},
            },
            {"action": "notify_assigned_user", "config": {"note": "資料請求がありました"}},
        ]
    )


def _page_views_of(visitor_id: int) -> list[Activity]:
    return list(
        Activity.objects.filter(type=ActivityType.PAGE_VIEW, visitor_id=visitor_id).order_by(
            "occurred_at", "id"
        )
    )


def _assert_followed_up(prospect: Prospect, seller: User, prospect_list: ProspectList) -> None:
    prospect.refresh_from_db()
    assert prospect.assigned_user_id == seller.pk
    assert ListMembership.objects.filter(prospect=prospect, prospect_list=prospect_list).exists()
    task = Task.objects.get(prospect=prospect)
    assert (task.subject, task.assignee_id) == ("資料請求のフォロー", seller.pk)
    assert Notification.objects.filter(user=seller).count() >= 1


def test_a_form_handler_and_an_embedded_form_turn_visitors_into_followed_up_prospects(
    live_stack: str, browser: Any, customer_site: Callable[[FormHandler, Form], str]
) -> None:
    # given: a sales user, a list, and the marketer's handler and form with completion actions
    seller = make_user(Role.SALES, email="eigyo@sample-shoji.co.jp")
    prospect_list = ProspectList.objects.create(name="資料請求者")
    actions = _completion_actions(seller, prospect_list)
    handler = FormHandler.objects.create(
        name="既存のお問い合わせフォーム",
        success_url="http://127.0.0.1/thanks.html",  # replaced below with the site's port
        error_url="",
        completion_actions=actions,
    )
    for position, (external, field) in enumerate(
        [("mail", "email"), ("company", "company_name"), ("name", "last_name")]
    ):
        FormHandlerField.objects.create(
            handler=handler,
            external_name=external,
            prospect_field=field,
            is_email=field == "email",
            position=position,
        )
    form = Form.objects.create(name="ホワイトペーパー資料請求", completion_actions=actions)
    for position, (label, field, kind) in enumerate(
        [
            ("メールアドレス", "email", FieldType.EMAIL),
            ("会社名", "company_name", FieldType.TEXT),
            ("姓", "last_name", FieldType.TEXT),
        ]
    ):
        FormField.objects.create(
            form=form,
            position=position,
            label=label,
            prospect_field=field,
            field_type=kind,
            required=field == "email",
        )
    existing = ProspectFactory.create(
        email="hanako.sato@example.co.jp", last_name="佐藤", company_name="旧社名株式会社"
    )
    site = customer_site(handler, form)
    handler.success_url = site + "/thanks.html"
    handler.save(update_fields=["success_url"])

    # when: visitor 1 reads a page, then sends the site's own contact form to the handler
    first = browser.new_context(locale="ja-JP")
    page = first.new_page()
    page.goto(site + "/index.html")
    wait_for(lambda: Activity.objects.filter(type=ActivityType.PAGE_VIEW).count() == 1, 30, "pv")
    page.click("a[href='/contact.html']")
    page.fill("input[name=mail]", "taro.yamada@example.co.jp")
    page.fill("input[name=company]", "株式会社サンプル")
    page.fill("input[name=name]", "山田")
    page.click("#contact button[type=submit]")
    page.wait_for_url(site + "/thanks.html**")
    page.screenshot(path=str(screenshot_path("forms_handler_thanks")))

    # then: a new prospect, this browser's history, the actions and the activity
    taro = wait_for(
        lambda: Prospect.objects.filter(email="taro.yamada@example.co.jp").first(), 30, "prospect"
    )
    assert (taro.company_name, taro.last_name) == ("株式会社サンプル", "山田")
    visitor_one = wait_for(
        lambda: Visitor.objects.filter(prospect=taro).first(), 30, "the cookie linked"
    )
    # (the thank-you page has the snippet too: it may be stored by now or a moment later)
    wait_for(lambda: len(_page_views_of(visitor_one.pk)) >= 2, 30, "the page views stored")
    views = _page_views_of(visitor_one.pk)
    assert [view.object_label for view in views[:2]] == [
        site + "/index.html",
        site + "/contact.html",
    ]
    assert {view.prospect_id for view in views} == {taro.pk}
    assert Activity.objects.filter(
        type=ActivityType.FORM_HANDLER_SUCCESS, prospect_id=taro.pk, object_id=str(handler.pk)
    ).exists()
    _assert_followed_up(taro, seller, prospect_list)
    first.close()

    # when: visitor 2 (an existing prospect on a new device) fills the embedded form
    second = browser.new_context(locale="ja-JP")
    page = second.new_page()
    page.goto(site + "/index.html")
    wait_for(
        lambda: any(cookie["name"] == "mapp_vid" for cookie in second.cookies(live_stack)),
        30,
        "the visitor cookie",
    )
    page.goto(site + "/whitepaper.html")
    frame_element = page.wait_for_selector("iframe")
    frame = frame_element.content_frame()
    assert frame is not None
    frame.wait_for_selector("[data-testid=mapp-form]")
    frame.fill("input[type=email]", "Hanako.Sato@Example.co.jp")
    frame.fill("input[autocomplete=organization]", "株式会社サンプル商事")
    time.sleep(2.5)  # a person takes a moment: the minimum fill time
    frame.click("button.mapp-form__submit")
    wait_for(
        lambda: Activity.objects.filter(
            type=ActivityType.FORM_SUCCESS, object_id=str(form.pk)
        ).exists(),
        30,
        "the embedded form's submission",
    )
    frame.wait_for_selector("[data-testid=thank-you]")
    page.screenshot(path=str(screenshot_path("forms_embedded_thanks")), full_page=True)

    # then: the existing prospect is updated, not duplicated, and linked to this device too
    assert Prospect.objects.filter(email__iexact="hanako.sato@example.co.jp").count() == 1
    existing.refresh_from_db()
    assert existing.company_name == "株式会社サンプル商事"
    assert existing.last_name == "佐藤"  # an empty answer never wipes a value
    visitor_two = wait_for(
        lambda: Visitor.objects.filter(prospect=existing).first(), 30, "the second cookie linked"
    )
    wait_for(lambda: len(_page_views_of(visitor_two.pk)) == 2, 30, "her page views stored")
    views = _page_views_of(visitor_two.pk)
    assert [view.object_label for view in views] == [
        site + "/index.html",
        site + "/whitepaper.html",
    ]
    assert {view.prospect_id for view in views} == {existing.pk}
    _assert_followed_up(existing, seller, prospect_list)
    second.close()
