"""CSV import: encodings, mapping, 名寄せ, policies, rejected rows, assignment, lists, pages."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from mapp.models import Role, User
from prospects import importing
from prospects.importing import (
    ERROR_COLUMN,
    import_guess_mapping,
    import_job_create,
    import_job_run,
    import_job_start,
    import_run,
)
from prospects.models import (
    AssignmentGroup,
    Company,
    CustomField,
    CustomFieldType,
    ImportJob,
    ImportPolicy,
    ImportPreset,
    JobLevel,
    JobStatus,
    ListMembership,
    ListMembershipSource,
    Prospect,
)
from prospects.services import list_create
from tests.conftest import client_for
from tests.factories import ProspectFactory, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _csv_bytes(rows: list[list[str]], *, encoding: str = "utf-8-sig") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)  # Excel writes CRLF
    return buffer.getvalue().encode(encoding)


def _upload(content: bytes, name: str = "prospects.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


def _import(
    actor: User,
    content: bytes,
    *,
    columns: list[str] | None = None,
    **options: Any,
) -> ImportJob:
    """Upload, map (the guessed mapping unless given) and run an import synchronously."""
    job = import_job_create(actor=actor, uploaded_file=_upload(content), **options)
    assert job.status == JobStatus.PENDING, job.failure_reason
    if columns is None:
        columns = importing.import_preview(job=job).guesses
    import_job_start(actor=actor, job=job, columns=columns)
    import_run(job.pk)
    job.refresh_from_db()
    return job


def _rejected_rows(job: ImportJob) -> list[dict[str, str]]:
    encoding = "cp932" if job.encoding == "cp932" else "utf-8-sig"
    with job.errors_file.open("rb") as file:
        text = file.read().decode(encoding)
    return list(csv.DictReader(io.StringIO(text)))


# --- encodings and 名寄せ -------------------------------------------------------------------------


def test_shift_jis_excel_file_merges_the_same_person_and_links_one_company(
    marketer: User,
) -> None:
    # given a file as Excel in Japan saves it: CP932, CRLF, Japanese headers, the same company
    # written four ways and the same person twice (same email in another case, and by name)
    content = _csv_bytes(
        [
            ["会社名", "氏名", "メールアドレス", "部署", "役職"],
            ["(株)サンプル商事", "山田 太郎", "taro@sample-shoji.co.jp", "営業部", "部長"],
            ["株式会社サンプル商事", "山田　太郎", "TARO@sample-shoji.co.jp", "営業部", "部長"],
            ["㈱サンプル商事", "山田太郎", "yamada@sample-shoji.co.jp", "営業部", "部長"],
            [
                "ｻﾝﾌﾟﾙ商事株式会社",
                "鈴木　花子",
                "hanako@sample-shoji.co.jp",
                "マーケティング部",
                "課長",
            ],
            ["ＡＢＣ株式会社", "佐藤 一郎", "ｉｃｈｉｒｏ@abc.co.jp", "情報システム部", "主任"],
        ],
        encoding="cp932",
    )
    assert b"\r\n" in content

    # when it is imported with the pre-filled mapping
    job = _import(marketer, content)

    # then each person is one prospect, with the company normalised and the job level derived
    assert job.status == JobStatus.DONE
    assert job.encoding == "cp932"
    assert (job.created_count, job.error_count, job.total_rows) == (3, 0, 5)
    assert job.updated_count + job.skipped_count == 2
    taro = Prospect.objects.get(email="taro@sample-shoji.co.jp")
    assert (taro.last_name, taro.first_name) == ("山田", "太郎")
    assert taro.job_level == JobLevel.DIRECTOR
    assert taro.department_category == "sales"
    hanako = Prospect.objects.get(email="hanako@sample-shoji.co.jp")
    assert hanako.job_level == JobLevel.MANAGER
    assert hanako.company_id == taro.company_id is not None
    assert Company.objects.filter(name_normalized="サンプル商事").count() == 1
    ichiro = Prospect.objects.get(email="ichiro@abc.co.jp")  # full-width address folded
    assert ichiro.company_name_normalized == "abc"
    assert Prospect.objects.count() == 3
    # the rows merged into row 2 are reported, so the third email address is not lost silently
    report = {row[importing.ROW_COLUMN]: row[ERROR_COLUMN] for row in _rejected_rows(job)}
    assert set(report) == {"3", "4"}
    assert "row 2" in report["3"] and "row 2" in report["4"]


def test_utf8_with_bom_and_without_bom_are_both_detected(marketer: User) -> None:
    rows = [["email", "last_name", "first_name", "company_name"], ["a@x.jp", "青木", "一", "X"]]
    with_bom = _import(marketer, _csv_bytes(rows, encoding="utf-8-sig"))
    assert (with_bom.encoding, with_bom.created_count) == ("utf-8-sig", 1)
    rows[1] = ["b@x.jp", "坂本", "二", "Y"]
    without_bom = _import(marketer, _csv_bytes(rows, encoding="utf-8"))
    assert (without_bom.encoding, without_bom.created_count) == ("utf-8", 1)
    assert Prospect.objects.get(email="a@x.jp").last_name == "青木"  # BOM not in the header


def test_a_file_in_neither_utf8_nor_cp932_fails_with_a_clear_message(marketer: User) -> None:
    # given bytes that are invalid in UTF-8 and in CP932 (a lead byte without a trail byte)
    content = b"email,name\r\na@x.jp,\x81\x20\x81\r\n"

    job = import_job_create(actor=marketer, uploaded_file=_upload(content))
    import_run(job.pk)
    job.refresh_from_db()

    assert job.status == JobStatus.FAILED
    assert "UTF-8" in job.failure_reason and "Shift_JIS" in job.failure_reason
    assert Prospect.objects.count() == 0


def test_utf16_and_binary_files_fail_instead_of_importing_garbage(marketer: User) -> None:
    utf16 = "email\r\na@x.jp\r\n".encode("utf-16")  # with BOM
    job = import_job_create(actor=marketer, uploaded_file=_upload(utf16))
    assert job.status == JobStatus.FAILED and "UTF-16" in job.failure_reason
    no_bom = "email\r\na@x.jp\r\n".encode("utf-16-le")  # valid UTF-8 bytes, but NULs
    job = import_job_create(actor=marketer, uploaded_file=_upload(no_bom))
    assert job.status == JobStatus.FAILED


# --- rejected rows --------------------------------------------------------------------------------


def test_invalid_email_is_rejected_with_its_reason_and_the_rest_is_imported(
    marketer: User,
) -> None:
    content = _csv_bytes(
        [
            ["メールアドレス", "姓", "名"],
            ["ok1@example.jp", "伊藤", "一"],
            ["not-an-email", "加藤", "二"],
            ["", "後藤", "三"],
            ["ok2@example.jp", "斎藤", "四"],
        ]
    )
    job = _import(marketer, content)

    assert (job.created_count, job.error_count, job.processed_rows) == (2, 2, 4)
    assert set(Prospect.objects.values_list("email", flat=True)) == {
        "ok1@example.jp",
        "ok2@example.jp",
    }
    rejected = _rejected_rows(job)
    assert [row["メールアドレス"] for row in rejected] == ["not-an-email", ""]
    assert [row["姓"] for row in rejected] == ["加藤", "後藤"]  # the original columns, kept
    assert "not-an-email is not a valid email address" in rejected[0][ERROR_COLUMN]
    assert "empty" in rejected[1][ERROR_COLUMN]


def test_a_10_mb_cell_rejects_its_row_and_the_rest_is_imported(marketer: User) -> None:
    huge = "あ" * (10 * 1024 * 1024)
    content = _csv_bytes(
        [
            ["email", "company_name", "notes"],
            ["first@example.jp", "A社", "short"],
            ["huge@example.jp", "B社", huge],
            ["last@example.jp", "C社", ""],
        ]
    )
    job = _import(marketer, content)

    assert job.status == JobStatus.DONE
    assert (job.created_count, job.error_count) == (2, 1)
    assert not Prospect.objects.filter(email="huge@example.jp").exists()
    rejected = _rejected_rows(job)
    assert rejected[0]["email"] == "huge@example.jp"
    assert "at most 10000 characters" in rejected[0][ERROR_COLUMN]
    assert len(rejected[0]["notes"]) == len(huge)  # nothing lost: the cell is handed back


def test_malformed_rows_and_too_long_values_are_rejected_per_row(marketer: User) -> None:
    content = (
        "email,last_name,employee_count\r\n"
        "a@x.jp,青木,10\r\n"
        "b@x.jp,木村,10,extra,columns\r\n"
        "c@x.jp," + "長" * 101 + ",5\r\n"
        "d@x.jp,田中,many\r\n"
        'e@x.jp,"unclosed quote,3\r\n'
    ).encode()
    job = _import(marketer, content)

    assert job.created_count == 1
    reasons = {row["email"]: row[ERROR_COLUMN] for row in _rejected_rows(job)}
    assert "columns" in reasons["b@x.jp"]
    assert "at most 100 characters" in reasons["c@x.jp"]
    assert reasons["d@x.jp"].startswith("employee_count: ")  # the service's "whole number"
    assert job.error_count == 4
    # an unreadable row comes back whole, in the first cell, with the parser's reason
    unreadable = _rejected_rows(job)[-1]
    assert unreadable["email"] == 'e@x.jp,"unclosed quote,3'
    assert "could not be read as CSV" in unreadable[ERROR_COLUMN]


def test_the_same_email_twice_in_one_file_is_one_prospect(marketer: User) -> None:
    content = _csv_bytes(
        [
            ["email", "last_name", "job_title"],
            ["twice@example.jp", "中村", ""],
            ["Twice@Example.jp", "", "課長"],
        ]
    )
    job = _import(marketer, content)

    prospect = Prospect.objects.get()
    assert (prospect.last_name, prospect.job_title) == ("中村", "課長")  # merged into the first
    assert (job.created_count, job.updated_count) == (1, 1)
    assert "same person as row 2" in _rejected_rows(job)[0][ERROR_COLUMN]


def test_create_only_skips_existing_prospects_and_duplicates(marketer: User) -> None:
    ProspectFactory.create(email="old@example.jp", last_name="旧")
    content = _csv_bytes(
        [
            ["email", "last_name"],
            ["old@example.jp", "新"],
            ["new@example.jp", "新規"],
            ["new@example.jp", "二回目"],
        ]
    )
    job = _import(marketer, content, policy=ImportPolicy.CREATE_ONLY)

    assert (job.created_count, job.updated_count, job.skipped_count) == (1, 0, 2)
    assert Prospect.objects.get(email="old@example.jp").last_name == "旧"
    assert Prospect.objects.get(email="new@example.jp").last_name == "新規"


def test_update_only_updates_existing_prospects_and_creates_none(marketer: User) -> None:
    ProspectFactory.create(email="old@example.jp", last_name="旧", job_title="")
    ProspectFactory.create(email="solo@example.jp", company_name="", employee_count=None)
    content = _csv_bytes(
        [
            ["email", "job_title"],
            ["old@example.jp", "部長"],
            ["new@example.jp", "課長"],
            ["solo@example.jp", "主任"],
        ]
    )
    job = _import(marketer, content, policy=ImportPolicy.UPDATE_ONLY)

    assert (job.created_count, job.updated_count, job.skipped_count) == (0, 2, 1)
    old = Prospect.objects.get(email="old@example.jp")
    assert (old.job_title, old.job_level) == ("部長", JobLevel.DIRECTOR)  # normalised on update
    assert old.company is not None and old.company.name_normalized == "サンプル商事"
    assert old.last_name == "旧"  # columns the file does not have are left alone
    solo = Prospect.objects.get(email="solo@example.jp")
    assert (solo.job_level, solo.company, solo.employee_count) == (JobLevel.SUPERVISOR, None, None)
    assert not Prospect.objects.filter(email="new@example.jp").exists()


def test_an_existing_prospect_is_found_by_company_and_name(marketer: User) -> None:
    # given a prospect stored with one spelling of its company
    existing = _import(
        marketer,
        _csv_bytes([["email", "会社名", "姓", "名"], ["y@a.jp", "株式会社エー", "山本", "健"]]),
    )
    assert existing.created_count == 1
    # when another file has the same person under another address and spelling
    job = _import(
        marketer,
        _csv_bytes(
            [["email", "会社名", "氏名", "電話番号"], ["y2@a.jp", "ｴｰ(株)", "山本　健", "03-1"]]
        ),
    )
    # then it updates that prospect, keeps its email address and says so
    prospect = Prospect.objects.get()
    assert (prospect.email, prospect.phone) == ("y@a.jp", "03-1")
    assert (job.created_count, job.updated_count) == (0, 1)
    assert "kept" in _rejected_rows(job)[0][ERROR_COLUMN]


def test_tags_and_custom_fields_are_imported(marketer: User) -> None:
    CustomField.objects.create(key="budget", label="予算", field_type=CustomFieldType.NUMBER)
    CustomField.objects.create(
        key="interest", label="関心", field_type=CustomFieldType.CHOICE, choices=["MA", "SFA"]
    )
    content = _csv_bytes(
        [
            ["email", "タグ", "予算", "interest"],
            ["t@x.jp", "展示会2026; VIP", "１,０００", "MA"],
            ["u@x.jp", "", "abc", "MA"],
            ["v@x.jp", "VIP", "", "CRM"],
        ]
    )
    job = _import(marketer, content)

    assert (job.created_count, job.error_count) == (1, 2)
    prospect = Prospect.objects.get(email="t@x.jp")
    assert sorted(prospect.tags.values_list("name", flat=True)) == ["VIP", "展示会2026"]
    values = {value.field.key: value.value for value in prospect.custom_values.all()}
    assert values == {"budget": 1000, "interest": "MA"}
    reasons = {row["email"]: row[ERROR_COLUMN] for row in _rejected_rows(job)}
    assert "予算" in reasons["u@x.jp"] and "関心" not in reasons["u@x.jp"]
    assert "interest" in reasons["v@x.jp"]


def test_formula_quotes_from_our_export_are_removed_on_import(marketer: User) -> None:
    content = _csv_bytes([["email", "notes"], ["q@x.jp", "'=1+1"]])
    _import(marketer, content)
    assert Prospect.objects.get().notes == "=1+1"


# --- assignment and lists -------------------------------------------------------------------------


def test_round_robin_assigns_imported_prospects_in_turn(marketer: User) -> None:
    first = make_user(Role.SALES, email="rr1@example.jp")
    second = make_user(Role.SALES, email="rr2@example.jp")
    group = AssignmentGroup.objects.create(name="東日本")
    group.members.set([first, second])
    owner = make_user(Role.SALES, email="owner@example.jp")
    ProspectFactory.create(email="kept@example.jp", assigned_user=owner)
    rows = [["email"], *[[f"p{number}@example.jp"] for number in range(4)], ["kept@example.jp"]]

    job = _import(marketer, _csv_bytes(rows), assign_to_group=group)

    assert job.status == JobStatus.DONE
    assigned = dict(
        Prospect.objects.filter(email__startswith="p").values_list("email", "assigned_user")
    )
    assert sorted(assigned.values()) == [first.pk, first.pk, second.pk, second.pk]
    assert Prospect.objects.get(email="kept@example.jp").assigned_user == owner  # not taken


def test_assign_to_user_and_add_to_list(marketer: User, sales_user: User) -> None:
    static = list_create(actor=marketer, name="展示会 2026")
    job = _import(
        marketer,
        _csv_bytes([["email"], ["l1@x.jp"], ["l2@x.jp"]]),
        add_to_list=static,
        assign_to_user=sales_user,
    )
    assert job.created_count == 2
    memberships = ListMembership.objects.filter(prospect_list=static)
    assert memberships.count() == 2
    assert set(memberships.values_list("source", flat=True)) == {ListMembershipSource.IMPORT}
    assert set(Prospect.objects.values_list("assigned_user", flat=True)) == {sales_user.pk}


def test_dynamic_lists_are_refreshed_once_at_the_end(
    marketer: User, django_capture_on_commit_callbacks: Any
) -> None:
    list_create(actor=marketer, name="IT", is_dynamic=True, criteria={"conditions": []})
    job = import_job_create(
        actor=marketer, uploaded_file=_upload(_csv_bytes([["email"], ["d1@x.jp"], ["d2@x.jp"]]))
    )
    import_job_start(actor=marketer, job=job, columns=["email"])
    with django_capture_on_commit_callbacks() as callbacks:
        import_job_run(job_id=job.pk)
    # one full refresh for the one dynamic list, not one per prospect
    assert len(callbacks) == 1


def test_import_queries_do_not_grow_with_rows(
    marketer: User, django_assert_max_num_queries: Any
) -> None:
    # given existing prospects, a custom field, tags, a list and a group to assign in turn
    CustomField.objects.create(key="budget", label="予算", field_type=CustomFieldType.NUMBER)
    for number in range(0, 300, 3):
        ProspectFactory.create(email=f"q{number}@example.jp")
    group = AssignmentGroup.objects.create(name="全国")
    group.members.set([make_user(Role.SALES, email="q-sales@example.jp")])
    static = list_create(actor=marketer, name="大量")
    rows = [["email", "会社名", "氏名", "役職", "タグ", "予算"]]
    rows += [
        [f"q{number}@example.jp", f"株式会社Q{number % 7}", f"山田 {number}", "課長", "VIP", "10"]
        for number in range(300)
    ]
    job = import_job_create(
        actor=marketer,
        uploaded_file=_upload(_csv_bytes(rows)),
        add_to_list=static,
        assign_to_group=group,
    )
    import_job_start(actor=marketer, job=job, columns=importing.import_preview(job=job).guesses)

    # when 300 rows (200 new, 100 existing) are imported in one batch: a fixed number of queries
    with django_assert_max_num_queries(55):
        import_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert (job.created_count, job.updated_count, job.error_count) == (200, 100, 0)


# --- retries --------------------------------------------------------------------------------------


def test_a_retried_run_resumes_after_the_last_batch_and_counts_nothing_twice(
    marketer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importing, "IMPORT_BATCH_ROWS", 2)
    rows = [["email"], ["bad"], ["r1@x.jp"], ["r2@x.jp"], ["r3@x.jp"], ["r4@x.jp"]]
    job = import_job_create(actor=marketer, uploaded_file=_upload(_csv_bytes(rows)))
    import_job_start(actor=marketer, job=job, columns=["email"])
    real_write_batch = importing._write_batch
    calls = {"count": 0}

    def dies_on_the_second_batch(*args: Any, **kwargs: Any) -> Any:
        calls["count"] += 1
        if calls["count"] == 2:
            raise RuntimeError("worker lost")
        return real_write_batch(*args, **kwargs)

    monkeypatch.setattr(importing, "_write_batch", dies_on_the_second_batch)
    with pytest.raises(RuntimeError):
        import_run(job.pk)
    job.refresh_from_db()
    assert (job.status, job.processed_rows) == (JobStatus.RUNNING, 2)

    import_run(job.pk)  # the redelivered task
    import_run(job.pk)  # and a duplicate of it: finished jobs are left alone

    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    assert (job.processed_rows, job.created_count, job.error_count) == (5, 4, 1)
    assert Prospect.objects.count() == 4
    assert [row["email"] for row in _rejected_rows(job)] == ["bad"]  # from the first attempt


# --- mapping --------------------------------------------------------------------------------------


def test_japanese_headers_are_mapped_to_prospect_fields() -> None:
    CustomField.objects.create(key="budget", label="予算", field_type=CustomFieldType.NUMBER)
    headers = [
        "Eメール", "姓", "名", "セイ", "メイ", "会社名", "部署名", "役職", "業種", "従業員数",
        "TEL", "郵便番号", "都道府県", "市区町村", "住所", "国", "姓（フリガナ）", "予算", "タグ",
        "メモ欄？", "電話番号",
    ]  # fmt: skip
    assert import_guess_mapping(headers) == [
        "email", "last_name", "first_name", "last_name_kana", "first_name_kana", "company_name",
        "department", "job_title", "industry", "employee_count", "phone", "postal_code",
        "prefecture", "city", "address_line", "country",
        "ignore",  # last_name_kana is taken by セイ already
        "custom:budget", "tags", "ignore",
        "ignore",  # phone is taken by TEL already
    ]  # fmt: skip
    assert import_guess_mapping(["氏名", "企業名", "メールアドレス", "姓(カナ)"]) == [
        "full_name",
        "company_name",
        "email",
        "last_name_kana",
    ]


def test_a_preset_remembers_the_mapping_by_header(marketer: User) -> None:
    job = import_job_create(
        actor=marketer, uploaded_file=_upload(_csv_bytes([["連絡先", "備考欄"], ["p@x.jp", "x"]]))
    )
    import_job_start(actor=marketer, job=job, columns=["email", "notes"], preset_name="展示会")
    preset = ImportPreset.objects.get(name="展示会")
    assert preset.mapping == {"連絡先": "email", "備考欄": "notes"}
    assert import_guess_mapping(["備考欄", "連絡先"], preset=preset) == ["notes", "email"]


def test_a_mapping_needs_the_email_column_and_each_field_once(marketer: User) -> None:
    from django.core.exceptions import ValidationError

    job = import_job_create(
        actor=marketer, uploaded_file=_upload(_csv_bytes([["a", "b"], ["x", "y"]]))
    )
    with pytest.raises(ValidationError, match="email"):
        import_job_start(actor=marketer, job=job, columns=["last_name", "ignore"])
    with pytest.raises(ValidationError, match="more than one"):
        import_job_start(actor=marketer, job=job, columns=["email", "email"])


# --- pages ----------------------------------------------------------------------------------------


def test_sales_users_cannot_open_the_import_pages(sales_user: User, marketer: User) -> None:
    job = import_job_create(actor=marketer, uploaded_file=_upload(_csv_bytes([["email"]])))
    client = client_for(sales_user)
    for url in [
        reverse("prospects_import:list"),
        reverse("prospects_import:upload"),
        reverse("prospects_import:mapping", args=[job.pk]),
        reverse("prospects_import:detail", args=[job.pk]),
        reverse("prospects_import:progress", args=[job.pk]),
        reverse("prospects_import:rejected", args=[job.pk]),
    ]:
        assert client.get(url).status_code == 403, url
    response = client.post(
        reverse("prospects_import:upload"),
        {"file": _upload(b"email\r\n"), "policy": "create_update"},
    )
    assert response.status_code == 403
    assert ImportJob.objects.count() == 1


def test_the_import_flow_through_the_pages(marketer: User) -> None:
    client = client_for(marketer)
    content = _csv_bytes(
        [
            ["会社名", "氏名", "メールアドレス", "役職"],
            ["株式会社テスト", "田中 一郎", "tanaka@test.co.jp", "部長"],
            ["(株)テスト", "田中　一郎", "bad-address", "部長"],
        ],
        encoding="cp932",
    )
    # step 1: upload
    assert client.get(reverse("prospects_import:upload")).status_code == 200
    response = client.post(
        reverse("prospects_import:upload"),
        {"file": _upload(content, "展示会.csv"), "policy": ImportPolicy.CREATE_AND_UPDATE},
    )
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("prospects_import:mapping", args=[job.pk])

    # step 2: the mapping page shows the encoding, the preview and pre-filled selects
    page = client.get(response["Location"]).content.decode()
    assert "Shift_JIS" in page
    assert "tanaka@test.co.jp" in page
    assert '<option value="full_name" selected>' in page
    response = client.post(
        reverse("prospects_import:mapping", args=[job.pk]),
        {
            "column_0": "company_name",
            "column_1": "full_name",
            "column_2": "email",
            "column_3": "job_title",
            "preset_name": "名刺",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("prospects_import:detail", args=[job.pk])
    assert ImportPreset.objects.filter(name="名刺").exists()

    # step 3: the job page polls while it waits, then shows the counts and the download
    page = client.get(response["Location"]).content.decode()
    assert "<progress" in page and 'hx-trigger="every 1s"' in page
    import_run(job.pk)
    progress = client.get(reverse("prospects_import:progress", args=[job.pk])).content.decode()
    assert 'hx-trigger="every 1s"' not in progress  # done: the polling stops
    assert 'data-testid="created-count">1<' in progress
    assert 'data-testid="rejected-count">1<' in progress
    download = client.get(reverse("prospects_import:rejected", args=[job.pk]))
    assert download.status_code == 200
    text = b"".join(download.streaming_content).decode("cp932")  # type: ignore[attr-defined]
    assert "bad-address" in text and "エラー / error" in text
    assert client.get(reverse("prospects_import:list")).status_code == 200


def test_an_undecodable_upload_goes_to_the_failed_job_page(marketer: User) -> None:
    client = client_for(marketer)
    response = client.post(
        reverse("prospects_import:upload"),
        {"file": _upload(b"\x81\x20\x81\x20"), "policy": ImportPolicy.CREATE_AND_UPDATE},
    )
    job = ImportJob.objects.get()
    assert response["Location"] == reverse("prospects_import:detail", args=[job.pk])
    page = client.get(response["Location"]).content.decode()
    assert "Shift_JIS" in page and 'hx-trigger="every 1s"' not in page


def test_an_upload_over_the_size_limit_gets_a_form_error(
    marketer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importing, "MAX_UPLOAD_BYTES", 1024 * 1024)
    response = client_for(marketer).post(
        reverse("prospects_import:upload"),
        {"file": _upload(b"a" * (1024 * 1024 + 1)), "policy": ImportPolicy.CREATE_AND_UPDATE},
    )
    assert response.status_code == 200
    assert "larger than 1 MB" in response.content.decode()
    assert ImportJob.objects.count() == 0
