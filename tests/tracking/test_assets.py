"""Custom redirect and tracked file pages, and serving tracked files safely."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import StopUpload
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from mapp.models import User
from tests.conftest import client_for
from tracking import links
from tracking.forms_assets import SizeLimitUploadHandler
from tracking.models import Activity, ActivityType, CustomRedirect, TrackedFile

pytestmark = pytest.mark.django_db

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
PNG_1X1 = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f"
    b"\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00"
    b"\x00IEND\xaeB`\x82"
)
SANDBOX = "sandbox; default-src 'none'"


@pytest.fixture(autouse=True)
def media_in_tmp(settings: Any, tmp_path: Path) -> Iterator[None]:
    settings.MEDIA_ROOT = tmp_path
    settings.TRACKING_RATE_LIMIT_HITS = 0
    yield


def _upload(client: Client, filename: str, content: bytes, name: str = "") -> Any:
    return client.post(
        "/marketing/files/upload/",
        {"name": name, "file": SimpleUploadedFile(filename, content)},
    )


def _file(filename: str, content: bytes) -> TrackedFile:
    return links.tracked_file_create(
        actor=None, name="", uploaded=SimpleUploadedFile(filename, content)
    )


def _file_path(tracked_file: TrackedFile) -> str:
    return f"/f/{tracked_file.slug}/{links.tracked_file_download_name(tracked_file)}"


def _visitor_browser(user_agent: str = CHROME) -> Client:
    return Client(HTTP_USER_AGENT=user_agent)


# --- uploads -------------------------------------------------------------------------------------


def test_a_hostile_file_name_is_sanitised_and_kept_for_display(
    marketer: User, tmp_path: Path
) -> None:
    # given
    client = client_for(marketer)

    # when
    response = _upload(client, "../../etc/passwd<script>.html", b"<script>alert(1)</script>")

    # then
    assert response.status_code == 302
    tracked = TrackedFile.objects.get()
    assert tracked.original_filename == "passwd<script>.html"
    stored = Path(tracked.file.name)
    assert stored.parts[0] == "files"
    assert ".." not in stored.parts
    assert stored.name.startswith("passwdscript-")
    assert stored.suffix == ".html"
    assert (tmp_path / stored).read_bytes() == b"<script>alert(1)</script>"
    assert links.tracked_file_download_name(tracked) == "passwdscript.html"
    assert tracked.content_type == "text/html"
    assert tracked.name == "passwd<script>.html"
    # and the list page shows the original name escaped
    page = client.get("/marketing/files/").content.decode()
    assert "passwd&lt;script&gt;.html" in page
    assert "passwd<script>" not in page


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("資料 2025.pdf", "資料_2025.pdf"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("....", "file"),
        ("", "file"),
        (".htaccess", "htaccess"),
        ("a" * 300 + ".pdf", "a" * 80 + ".pdf"),
    ],
)
def test_file_names_are_made_safe(original: str, expected: str) -> None:
    # when / then
    assert links.safe_filename(original) == expected


def test_an_upload_over_50_mb_is_refused(marketer: User, english: None) -> None:
    # given
    client = client_for(marketer)
    too_big = b"\0" * (50 * 1024 * 1024 + 1)

    # when
    response = _upload(client, "big.zip", too_big, name="大きすぎる")

    # then
    assert response.status_code == 400
    assert response.context["form"].errors["file"] == ["The file is larger than 50 MB."]
    assert not TrackedFile.objects.exists()


def test_the_upload_size_guard_stops_reading_at_the_limit() -> None:
    # given
    handler = SizeLimitUploadHandler(limit=10)

    # when / then: the chunk that crosses the limit stops the upload
    assert handler.receive_data_chunk(b"12345", 0) == b"12345"
    assert handler.receive_data_chunk(b"12345", 5) == b"12345"
    with pytest.raises(StopUpload):
        handler.receive_data_chunk(b"1", 10)
    assert handler.exceeded is True


def test_a_file_at_the_limit_is_accepted_by_the_service() -> None:
    # given
    uploaded = SimpleUploadedFile("limit.bin", b"x")
    uploaded.size = links.MAX_FILE_SIZE

    # when
    tracked = links.tracked_file_create(actor=None, name="limit", uploaded=uploaded)

    # then
    assert tracked.size == links.MAX_FILE_SIZE
    uploaded.size = links.MAX_FILE_SIZE + 1
    with pytest.raises(ValidationError):
        links.tracked_file_create(actor=None, name="over", uploaded=uploaded)


# --- serving -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filename",
    ["page.html", "drawing.svg", "notes.xhtml", "script.js", "report.pdf", "noextension"],
)
def test_documents_are_served_as_sandboxed_attachments(filename: str) -> None:
    # given
    tracked = _file(filename, b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>")

    # when
    response = _visitor_browser().get(_file_path(tracked))

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == SANDBOX
    assert b"".join(response.streaming_content) == (  # type: ignore[attr-defined]
        b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"
    )


def test_a_download_is_counted_and_recorded() -> None:
    # given
    tracked = _file("catalogue.pdf", b"%PDF-1.7")

    # when
    first = _visitor_browser().get(_file_path(tracked))
    _visitor_browser(GOOGLEBOT).get(_file_path(tracked))
    _visitor_browser().head(_file_path(tracked))

    # then: a person and a bot counted apart; HEAD not counted
    tracked.refresh_from_db()
    assert (tracked.download_count, tracked.bot_download_count) == (1, 1)
    downloads = Activity.objects.filter(type=ActivityType.FILE_DOWNLOAD)
    assert sorted(downloads.values_list("is_bot", flat=True)) == [False, True]
    human = downloads.get(is_bot=False)
    assert (human.object_type, human.object_id) == ("file", str(tracked.pk))
    assert "mapp_vid" in first.cookies


def test_an_image_is_shown_inline_and_not_counted() -> None:
    # given
    tracked = _file("logo.png", PNG_1X1)

    # when
    response = _visitor_browser().get(_file_path(tracked))

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"].startswith("inline;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == SANDBOX
    tracked.refresh_from_db()
    assert tracked.download_count == 0
    assert not Activity.objects.exists()


def test_a_japanese_file_name_downloads_under_its_name() -> None:
    # given
    tracked = _file("製品カタログ.pdf", b"%PDF-1.7")

    # when
    response = _visitor_browser().get(_file_path(tracked))

    # then
    assert response.status_code == 200
    assert "filename*=utf-8''" in response["Content-Disposition"]


def test_unknown_or_missing_files_are_not_found() -> None:
    # given
    tracked = _file("gone.pdf", b"%PDF")
    tracked.file.storage.delete(tracked.file.name)

    # when
    missing = _visitor_browser().get(_file_path(tracked))
    unknown = _visitor_browser().get("/f/nothing/else.pdf")
    traversal = _visitor_browser().get("/f/../../etc/passwd")

    # then
    assert {missing.status_code, unknown.status_code, traversal.status_code} == {404}
    assert not Activity.objects.exists()


# --- management pages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/marketing/redirects/",
        "/marketing/redirects/new/",
        "/marketing/files/",
        "/marketing/files/upload/",
    ],
)
def test_sales_users_cannot_open_the_management_pages(sales_user: User, path: str) -> None:
    # when
    response = client_for(sales_user).get(path)

    # then
    assert response.status_code == 403


def test_sales_managers_see_but_cannot_change(sales_manager: User) -> None:
    # given
    custom_redirect = links.custom_redirect_create(
        actor=None, name="資料", destination_url="https://www.example.co.jp/"
    )
    client = client_for(sales_manager)

    # when
    listing = client.get("/marketing/redirects/")
    detail = client.get(f"/marketing/redirects/{custom_redirect.pk}/")
    create = client.get("/marketing/redirects/new/")
    change = client.post(
        f"/marketing/redirects/{custom_redirect.pk}/",
        {"name": "x", "destination_url": "https://evil.example/", "slug": "", "is_active": "on"},
    )
    upload = client.post("/marketing/files/upload/", {"file": SimpleUploadedFile("a.pdf", b"x")})

    # then
    assert (listing.status_code, detail.status_code) == (200, 200)
    assert (create.status_code, change.status_code, upload.status_code) == (403, 403, 403)
    custom_redirect.refresh_from_db()
    assert custom_redirect.destination_url == "https://www.example.co.jp/"
    assert not TrackedFile.objects.exists()


def test_anonymous_users_are_sent_to_sign_in() -> None:
    # when
    response = Client().get("/marketing/redirects/")

    # then
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_a_marketer_creates_a_redirect_with_a_generated_slug(marketer: User) -> None:
    # given
    client = client_for(marketer)

    # when
    response = client.post(
        "/marketing/redirects/new/",
        {
            "name": "展示会 資料請求",
            "destination_url": "https://www.example.co.jp/expo",
            "slug": "",
            "campaign_name": "展示会 2025",
        },
    )

    # then
    created = CustomRedirect.objects.get()
    assert response.status_code == 302
    assert len(created.slug) == 8
    assert (created.destination_url, created.campaign_name, created.created_by) == (
        "https://www.example.co.jp/expo",
        "展示会 2025",
        marketer,
    )
    page = client.get(f"/marketing/redirects/{created.pk}/").content.decode()
    assert f"/r/{created.slug}" in page


@pytest.mark.parametrize(
    "destination",
    ["javascript:alert(1)", "//evil.example/", "evil.example", "data:text/html,x", "/r/loop"],
)
def test_a_redirect_form_refuses_anything_but_a_full_http_url(
    marketer: User, destination: str
) -> None:
    # when
    response = client_for(marketer).post(
        "/marketing/redirects/new/", {"name": "x", "destination_url": destination}
    )

    # then
    assert response.status_code == 200
    assert "destination_url" in response.context["form"].errors
    assert not CustomRedirect.objects.exists()


def test_a_marketer_edits_a_redirect_and_slugs_stay_unique(marketer: User) -> None:
    # given
    first = links.custom_redirect_create(
        actor=None, name="一", destination_url="https://a.example.jp/", slug="expo"
    )
    second = links.custom_redirect_create(
        actor=None, name="二", destination_url="https://b.example.jp/"
    )
    client = client_for(marketer)

    # when
    taken = client.post(
        f"/marketing/redirects/{second.pk}/",
        {"name": "二", "destination_url": "https://b.example.jp/", "slug": "expo"},
    )
    changed = client.post(
        f"/marketing/redirects/{second.pk}/",
        {
            "name": "二",
            "destination_url": "https://c.example.jp/",
            "slug": "expo-2",
            "is_active": "",
        },
    )

    # then
    assert taken.status_code == 200
    assert "slug" in taken.context["form"].errors
    assert changed.status_code == 302
    second.refresh_from_db()
    assert (second.slug, second.destination_url, second.is_active) == (
        "expo-2",
        "https://c.example.jp/",
        False,
    )
    first.refresh_from_db()
    assert first.slug == "expo"


def test_the_redirect_list_shows_people_and_bots_apart(marketer: User, settings: Any) -> None:
    # given
    custom_redirect = links.custom_redirect_create(
        actor=None, name="<b>資料</b>", destination_url="https://www.example.co.jp/"
    )
    CustomRedirect.objects.filter(pk=custom_redirect.pk).update(click_count=12, bot_click_count=5)

    # when
    response = client_for(marketer).get("/marketing/redirects/")

    # then
    page = response.content.decode()
    assert 'data-testid="human-clicks">12<' in page
    assert 'data-testid="bot-clicks" class="muted">5<' in page
    assert f'value="{settings.SITE_URL}/r/{custom_redirect.slug}"' in page
    assert "&lt;b&gt;資料&lt;/b&gt;" in page


def test_the_redirect_list_needs_a_constant_number_of_queries(marketer: User) -> None:
    # given
    client = client_for(marketer)
    links.custom_redirect_create(actor=None, name="一", destination_url="https://a.example.jp/")
    client.get("/marketing/redirects/")
    with CaptureQueriesContext(connection) as few:
        client.get("/marketing/redirects/")
    for number in range(10):
        links.custom_redirect_create(
            actor=None, name=f"r{number}", destination_url="https://a.example.jp/"
        )

    # when
    with CaptureQueriesContext(connection) as many:
        client.get("/marketing/redirects/")

    # then
    assert len(many) == len(few)
