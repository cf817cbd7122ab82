"""Landing pages: the editor (content validated by the sandbox, merge-field menu), the preview in
a sandboxed frame, publish / unpublish, and the public page /lp/<slug> personalised for a known
visitor, escaped, recorded as a view, with the form embedded."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.test import Client

from forms.models import Form, LandingPage
from mapp.models import User
from tests.conftest import client_for
from tests.factories import ProspectFactory
from tests.forms.conftest import make_form
from tracking.models import Activity, ActivityType, TrackingSettings, Visitor
from tracking.visitor_cookie import COOKIE_NAME, visitor_cookie_value

pytestmark = pytest.mark.django_db

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
CONTENT = (
    "<h1>{{ prospect.last_name|default('ご担当者') }} 様</h1>"
    '<p style="color: #c00">{{ prospect.company }}の皆さまへ</p>'
    "<script>alert('marketer')</script>"
)


@pytest.fixture(autouse=True)
def no_rate_limit(settings: Any) -> None:
    settings.TRACKING_RATE_LIMIT_HITS = 0


@pytest.fixture
def marketing_client(marketer: User) -> Client:
    return client_for(marketer)


def _page_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "ホワイトペーパー LP",
        "slug": "whitepaper-2025",
        "title": "DX ホワイトペーパー 無料ダウンロード",
        "meta_description": "製造業の DX 事例集",
        "layout": LandingPage.Layout.TWO_COLUMN,
        "form": "",
        "content": CONTENT,
    }
    data.update(overrides)
    return data


def _landing_page(form: Form | None = None, **overrides: Any) -> LandingPage:
    values = {
        "name": "ホワイトペーパー LP",
        "slug": "whitepaper-2025",
        "title": "DX ホワイトペーパー",
        "content": CONTENT,
        "form": form,
        "is_published": True,
    }
    values.update(overrides)
    return LandingPage.objects.create(**values)


def _srcdoc(page: str) -> str:
    match = re.search(r'<iframe class="lp-preview" sandbox="" srcdoc="([^"]*)"', page)
    assert match is not None, "no sandboxed preview frame"
    return html.unescape(match.group(1))


# --- the editor ----------------------------------------------------------------------------------


def test_marketer_creates_a_landing_page_with_a_form(
    marketing_client: Client, marketer: User
) -> None:
    form = make_form()

    response = marketing_client.post("/marketing/landing-pages/new/", _page_data(form=str(form.pk)))

    assert response.status_code == 302
    landing_page = LandingPage.objects.get()
    assert response["Location"] == f"/marketing/landing-pages/{landing_page.pk}/"
    assert landing_page.form == form
    assert landing_page.layout == LandingPage.Layout.TWO_COLUMN
    assert landing_page.created_by == marketer
    assert landing_page.is_published is False
    assert landing_page.content == CONTENT


def test_editor_offers_the_merge_field_menu(marketing_client: Client) -> None:
    response = marketing_client.get("/marketing/landing-pages/new/")

    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-merge-insert="id_content"' in page
    assert 'value="{{ prospect.first_name }}"' in page
    assert "js/form-builder.js" in page


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{{ ''.__class__.__mro__ }}", "“__class__” is not available in templates."),
        ("{{ prospect|attr('__class__') }}", "The filter “attr” is not available."),
        ("{% for i in range(10**9) %}x{% endfor %}", None),
        ("{{ prospect.salary }}", "“prospect.salary” is not a merge field."),
        ("{% if %}", "Syntax error"),
    ],
)
def test_sandbox_escape_attempts_are_refused_on_save_with_a_clear_error(
    marketing_client: Client, english: None, content: str, message: str | None
) -> None:
    response = marketing_client.post("/marketing/landing-pages/new/", _page_data(content=content))

    assert response.status_code == 400
    assert not LandingPage.objects.exists()
    errors = response.content.decode().split('data-testid="content-errors"', 1)
    assert len(errors) == 2, "the content errors are shown next to the content"
    if message is not None:
        assert html.escape(message, quote=False) in errors[1].split("</div>", 1)[0]


def test_slug_must_be_unique(marketing_client: Client, english: None) -> None:
    _landing_page(slug="taken")

    response = marketing_client.post("/marketing/landing-pages/new/", _page_data(slug="taken"))

    assert response.status_code == 400
    assert "Another landing page already uses this address." in response.content.decode()


def test_preview_without_saving_renders_examples_in_a_sandboxed_frame(
    marketing_client: Client,
) -> None:
    form = make_form(name="資料請求")

    response = marketing_client.post(
        "/marketing/landing-pages/new/",
        {**_page_data(form=str(form.pk)), "action": "preview"},
    )

    assert response.status_code == 200
    assert not LandingPage.objects.exists()
    document = _srcdoc(response.content.decode())
    # Example values from the merge-field catalogue, scripts removed, inline style kept.
    assert "山田 様" in document
    assert "株式会社サンプルの皆さまへ" in document
    assert "<script>alert" not in document
    assert "alert('marketer')" not in document
    assert 'style="color:#c00"' in document.replace(" ", "")
    assert "/t/mapp.js" not in document
    assert 'data-testid="lp-form-placeholder"' in document


def test_saved_page_preview_page(marketing_client: Client) -> None:
    landing_page = _landing_page(is_published=False)

    response = marketing_client.get(f"/marketing/landing-pages/{landing_page.pk}/preview/")

    assert response.status_code == 200
    document = _srcdoc(response.content.decode())
    assert "山田 様" in document
    assert "alert('marketer')" not in document


def test_preview_of_content_broken_after_saving_shows_the_error(
    marketing_client: Client, english: None
) -> None:
    # Content saved by another path (admin, an older version) that no longer validates.
    landing_page = _landing_page(content="{{ ''.__class__ }}", is_published=False)

    response = marketing_client.get(f"/marketing/landing-pages/{landing_page.pk}/preview/")

    assert response.status_code == 200
    assert 'data-testid="preview-error"' in response.content.decode()
    assert "__class__" in response.content.decode()


# --- publish / unpublish -------------------------------------------------------------------------


def test_publish_and_unpublish(marketing_client: Client) -> None:
    landing_page = _landing_page(is_published=False)
    anonymous = Client(HTTP_USER_AGENT=CHROME)
    assert anonymous.get("/lp/whitepaper-2025").status_code == 404

    response = marketing_client.post(f"/marketing/landing-pages/{landing_page.pk}/publish/")

    assert response.status_code == 302
    landing_page.refresh_from_db()
    assert landing_page.is_published is True
    assert landing_page.published_at is not None
    assert anonymous.get("/lp/whitepaper-2025").status_code == 200

    response = marketing_client.post(f"/marketing/landing-pages/{landing_page.pk}/unpublish/")

    assert response.status_code == 302
    landing_page.refresh_from_db()
    assert landing_page.is_published is False
    assert anonymous.get("/lp/whitepaper-2025").status_code == 404


def test_publishing_invalid_content_is_refused(marketing_client: Client, english: None) -> None:
    landing_page = _landing_page(content="{{ ''.__class__ }}", is_published=False)

    response = marketing_client.post(
        f"/marketing/landing-pages/{landing_page.pk}/publish/", follow=True
    )

    landing_page.refresh_from_db()
    assert landing_page.is_published is False
    assert "Not published:" in response.content.decode()


def test_publish_needs_post_and_edit_rights(sales_manager: User) -> None:
    landing_page = _landing_page(is_published=False)
    client = client_for(sales_manager)

    assert client.get(f"/marketing/landing-pages/{landing_page.pk}/").status_code == 200
    assert client.post(f"/marketing/landing-pages/{landing_page.pk}/publish/").status_code == 403
    landing_page.refresh_from_db()
    assert landing_page.is_published is False


def test_sales_users_get_403_on_landing_page_pages(sales_user: User) -> None:
    landing_page = _landing_page()
    client = client_for(sales_user)

    for url in (
        "/marketing/landing-pages/",
        "/marketing/landing-pages/new/",
        f"/marketing/landing-pages/{landing_page.pk}/",
        f"/marketing/landing-pages/{landing_page.pk}/preview/",
        f"/marketing/landing-pages/{landing_page.pk}/report/",
    ):
        assert client.get(url).status_code == 403, url
    assert client.post(f"/marketing/landing-pages/{landing_page.pk}/unpublish/").status_code == 403


# --- the public page -----------------------------------------------------------------------------


def test_public_page_is_personalised_for_a_known_visitor_and_escaped() -> None:
    # given a visitor whose cookie links them to a prospect with a hostile name
    prospect = ProspectFactory.create(
        last_name="<script>alert(1)</script>", company_name="株式会社テスト"
    )
    visitor = Visitor.objects.create(prospect=prospect)
    form = make_form()
    landing_page = _landing_page(form=form)
    client = Client(HTTP_USER_AGENT=CHROME)
    client.cookies[COOKIE_NAME] = visitor_cookie_value(visitor)

    # when they open the page
    response = client.get("/lp/whitepaper-2025")

    # then their values are merged, escaped; the marketer's script is removed
    assert response.status_code == 200
    page = response.content.decode()
    content = page.split('data-testid="lp-content">', 1)[1].split("</div>", 1)[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; 様" in content
    assert "株式会社テストの皆さまへ" in content
    assert "<script" not in content
    assert "alert('marketer')" not in page
    # the form is embedded and posts to the form with the landing page's id
    assert f'action="/forms/{form.uuid}/?lp={landing_page.pk}"' in page.replace("&amp;", "&")
    # the tracking script, the layout and the head
    assert "/t/mapp.js" in page
    assert "lp-layout-single" in page
    assert "<title>DX ホワイトペーパー</title>" in page
    assert response["Cache-Control"] == "private, no-store"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]

    # and the view is recorded for the visitor and their prospect
    activity = Activity.objects.get(type=ActivityType.LANDING_PAGE_VIEW)
    assert activity.visitor_id == visitor.pk
    assert activity.prospect_id == prospect.pk
    assert activity.object_type == "landing_page"
    assert activity.object_id == str(landing_page.pk)
    assert activity.is_bot is False
    landing_page.refresh_from_db()
    assert landing_page.view_count == 1


def test_anonymous_visitor_sees_empty_merge_values_and_gets_a_cookie() -> None:
    _landing_page()
    client = Client(HTTP_USER_AGENT=CHROME)

    response = client.get("/lp/whitepaper-2025")

    assert response.status_code == 200
    content = response.content.decode().split('data-testid="lp-content">', 1)[1]
    assert "ご担当者 様" in content
    assert "山田" not in content  # no preview example values on the public page
    assert COOKIE_NAME in response.cookies
    activity = Activity.objects.get(type=ActivityType.LANDING_PAGE_VIEW)
    assert activity.visitor_id is not None
    assert activity.prospect_id is None


def test_consent_mode_sets_no_cookie_before_consent() -> None:
    settings_row = TrackingSettings.load()
    settings_row.require_consent = True
    settings_row.save()
    _landing_page()
    client = Client(HTTP_USER_AGENT=CHROME)

    response = client.get("/lp/whitepaper-2025")

    assert response.status_code == 200
    assert COOKIE_NAME not in response.cookies
    assert not Visitor.objects.exists()
    assert Activity.objects.get(type=ActivityType.LANDING_PAGE_VIEW).visitor_id is None


def test_bots_are_recorded_as_bots_without_a_visitor() -> None:
    landing_page = _landing_page()
    client = Client(HTTP_USER_AGENT=GOOGLEBOT)

    response = client.get("/lp/whitepaper-2025")

    assert response.status_code == 200
    assert COOKIE_NAME not in response.cookies
    activity = Activity.objects.get(type=ActivityType.LANDING_PAGE_VIEW)
    assert activity.is_bot is True
    assert activity.visitor_id is None
    landing_page.refresh_from_db()
    assert landing_page.view_count == 0


def test_kiosk_form_page_neither_reads_nor_sets_the_cookie() -> None:
    prospect = ProspectFactory.create(last_name="既知")
    visitor = Visitor.objects.create(prospect=prospect)
    _landing_page(form=make_form(kiosk_mode=True))
    client = Client(HTTP_USER_AGENT=CHROME)
    client.cookies[COOKIE_NAME] = visitor_cookie_value(visitor)

    response = client.get("/lp/whitepaper-2025")

    assert response.status_code == 200
    assert "既知" not in response.content.decode()
    assert "/t/mapp.js" not in response.content.decode()
    assert Activity.objects.get(type=ActivityType.LANDING_PAGE_VIEW).visitor_id is None


def test_unpublished_and_unknown_pages_answer_404() -> None:
    _landing_page(slug="draft", is_published=False)
    client = Client(HTTP_USER_AGENT=CHROME)

    assert client.get("/lp/draft").status_code == 404
    assert client.get("/lp/no-such-page").status_code == 404
    assert not Activity.objects.exists()


def test_head_requests_are_answered_but_not_recorded() -> None:
    _landing_page()

    response = Client(HTTP_USER_AGENT=CHROME).head("/lp/whitepaper-2025")

    assert response.status_code == 200
    assert not Activity.objects.exists()


def test_public_page_refuses_post() -> None:
    _landing_page()

    response = Client(HTTP_USER_AGENT=CHROME).post("/lp/whitepaper-2025", {"email": "a@b.jp"})

    assert response.status_code == 405


def test_landing_page_list_queries_do_not_grow_with_the_pages(
    marketing_client: Client, django_assert_max_num_queries: Any
) -> None:
    form = make_form()
    for index in range(15):
        _landing_page(form=form, slug=f"page-{index}", name=f"Page {index}")

    with django_assert_max_num_queries(12):
        response = marketing_client.get("/marketing/landing-pages/")

    assert response.content.decode().count('data-testid="landing-page-row"') == 15
