"""CSV export: role scope, formula neutralisation, encodings, pages, and a round trip."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from mapp.models import User
from prospects import exporting, importing
from prospects.exporting import export_job_create, export_run
from prospects.models import CustomField, CustomFieldType, ExportJob, JobStatus, Prospect
from prospects.services import (
    list_add_prospects,
    list_create,
    prospect_create,
    prospect_set_custom_values,
    prospect_tags_add,
)
from tests.conftest import client_for
from tests.factories import ProspectFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _export(actor: User, **options: Any) -> ExportJob:
    job = export_job_create(actor=actor, **options)
    export_run(job.pk)
    job.refresh_from_db()
    return job


def _content(job: ExportJob) -> bytes:
    with job.file.open("rb") as file:
        return file.read()


def _rows(job: ExportJob) -> list[list[str]]:
    encoding = "cp932" if job.encoding == ExportJob.Encoding.CP932 else "utf-8-sig"
    return list(csv.reader(io.StringIO(_content(job).decode(encoding))))


def _emails(job: ExportJob) -> set[str]:
    _header, *rows = _rows(job)
    return {row[1] for row in rows}


def test_a_sales_user_exports_exactly_their_own_prospects(sales_user: User, marketer: User) -> None:
    mine = [ProspectFactory.create(assigned_user=sales_user) for _ in range(3)]
    others = [ProspectFactory.create(assigned_user=marketer), ProspectFactory.create()]

    everything = _export(sales_user)
    assert everything.status == JobStatus.DONE
    assert _emails(everything) == {prospect.email for prospect in mine}
    assert everything.total_rows == 3

    # a list holding both their prospects and others' gives only theirs too
    shared = list_create(actor=marketer, name="共有リスト")
    list_add_prospects(prospect_list=shared, prospect_ids=[mine[0].pk, others[0].pk])
    from_list = _export(sales_user, prospect_list=shared)
    assert _emails(from_list) == {mine[0].email}

    # while a marketer, who sees all, gets all
    assert len(_emails(_export(marketer))) == 5


def test_criteria_filter_the_export(marketer: User) -> None:
    prospect_create(actor=None, data={"email": "it@a.jp", "industry": "IT"})
    prospect_create(actor=None, data={"email": "mfg@a.jp", "industry": "製造"})
    criteria = {
        "match": "all",
        "conditions": [
            {"subject": "field", "field": "industry", "operator": "equals", "value": "IT"}
        ],
    }
    assert _emails(_export(marketer, criteria=criteria)) == {"it@a.jp"}


def test_formula_cells_are_neutralised(marketer: User) -> None:
    ProspectFactory.create(
        email="evil@example.jp",
        company_name='=HYPERLINK("http://evil")',
        last_name="@SUM(1)",
        phone="+81-3-1234",
        notes="-2+3",
        city="\tcmd",
    )
    job = _export(marketer)
    header, row = _rows(job)
    cells = dict(zip(header, row, strict=True))
    values = set(cells.values())
    assert '\'=HYPERLINK("http://evil")' in values
    assert "'@SUM(1)" in values
    assert "'+81-3-1234" in values and "'-2+3" in values and "'\tcmd" in values
    assert not any(value.startswith(exporting.FORMULA_START) for value in values)


def test_utf8_export_has_a_bom_and_cp932_export_decodes(marketer: User) -> None:
    ProspectFactory.create(email="jp@example.jp", company_name="株式会社サンプル", last_name="髙橋")

    utf8 = _export(marketer)
    raw = _content(utf8)
    assert raw.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in raw  # Excel's line ends
    assert "株式会社サンプル" in raw.decode("utf-8-sig")

    sjis = _export(marketer, encoding=ExportJob.Encoding.CP932)
    raw = _content(sjis)
    assert not raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("cp932")  # strict: every byte is valid CP932
    assert "株式会社サンプル" in text and "髙橋" in text
    assert sjis.failure_reason == ""  # nothing had to be replaced


def test_cp932_export_replaces_what_it_cannot_encode_and_says_so(marketer: User) -> None:
    ProspectFactory.create(email="emoji@example.jp", last_name="𠮷野", notes="よろしく😀")

    job = _export(marketer, encoding=ExportJob.Encoding.CP932)

    assert job.status == JobStatus.DONE
    text = _content(job).decode("cp932")
    assert "?野" in text and "よろしく?" in text
    assert "2" in job.notice and "?" in job.notice  # the notice on the job page


def test_tags_custom_fields_and_assignment_are_exported(marketer: User, sales_user: User) -> None:
    CustomField.objects.create(key="budget", label="予算", field_type=CustomFieldType.NUMBER)
    prospect = prospect_create(
        actor=None, data={"email": "full@a.jp", "job_title": "部長"}, tags=["VIP", "展示会"]
    )
    prospect_set_custom_values(prospect=prospect, values={"budget": "1500"})
    Prospect.objects.filter(pk=prospect.pk).update(assigned_user=sales_user, hot_status="hot")

    header, row = _rows(_export(marketer))
    cells = dict(zip(header, row, strict=True))
    assert cells["予算"] == "1500"
    assert (cells["Status"], cells["HOT since"], cells["Grade"]) == ("HOT", "", "D")
    assert sales_user.email in row
    assert "VIP;展示会" in row


def test_export_queries_do_not_grow_with_rows(
    marketer: User, django_assert_max_num_queries: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exporting, "EXPORT_CHUNK_ROWS", 1000)
    prospects = [ProspectFactory.create() for _ in range(40)]
    prospect_tags_add(prospect_ids=[prospect.pk for prospect in prospects], names=["a", "b"])
    job = export_job_create(actor=marketer)
    with django_assert_max_num_queries(20):
        export_run(job.pk)


def test_an_export_imported_again_changes_nothing(marketer: User) -> None:
    # given prospects exported in Japanese (the default language), headers and all
    prospect_create(
        actor=None,
        data={
            "email": "round@trip.jp",
            "last_name": "往復",
            "company_name": "=株式会社ラウンド",
            "job_title": "課長",
            "employee_count": 120,
        },
        tags=["VIP"],
    )
    exported = _export(marketer)
    # when that file is imported back with the pre-filled mapping
    upload = SimpleUploadedFile("export.csv", _content(exported))
    job = importing.import_job_create(actor=marketer, uploaded_file=upload)
    preview = importing.import_preview(job=job)
    importing.import_job_start(actor=marketer, job=job, columns=preview.guesses)
    importing.import_run(job.pk)
    job.refresh_from_db()
    # then the columns were recognised and the prospect is the same (the formula quote removed)
    assert "email" in preview.guesses and "company_name" in preview.guesses
    assert (job.created_count, job.error_count) == (0, 0)
    prospect = Prospect.objects.get()
    assert prospect.company_name == "=株式会社ラウンド"
    assert prospect.employee_count == 120


# --- pages ----------------------------------------------------------------------------------------


def test_the_export_pages(sales_user: User, marketer: User) -> None:
    ProspectFactory.create(email="own@example.jp", assigned_user=sales_user)
    ProspectFactory.create(email="other@example.jp")
    client = client_for(sales_user)  # Sales may export: prospects VIEW is enough
    assert client.get(reverse("prospects_import:export")).status_code == 200

    response = client.post(reverse("prospects_import:export"), {"encoding": "cp932"})
    job = ExportJob.objects.get()
    assert response["Location"] == reverse("prospects_import:export_detail", args=[job.pk])
    page = client.get(response["Location"]).content.decode()
    assert "<progress" in page and 'hx-trigger="every 1s"' in page

    export_run(job.pk)
    progress = client.get(reverse("prospects_import:export_progress", args=[job.pk]))
    assert 'hx-trigger="every 1s"' not in progress.content.decode()
    download = client.get(reverse("prospects_import:export_download", args=[job.pk]))
    text = b"".join(download.streaming_content).decode("cp932")  # type: ignore[attr-defined]
    assert "own@example.jp" in text and "other@example.jp" not in text

    # another user cannot see or download it
    other = client_for(marketer)
    assert other.get(reverse("prospects_import:export_detail", args=[job.pk])).status_code == 404
    download_url = reverse("prospects_import:export_download", args=[job.pk])
    assert other.get(download_url).status_code == 404


def test_export_by_list_id_and_bad_criteria(marketer: User) -> None:
    prospect = ProspectFactory.create(email="listed@example.jp")
    ProspectFactory.create(email="unlisted@example.jp")
    static = list_create(actor=marketer, name="セミナー")
    list_add_prospects(prospect_list=static, prospect_ids=[prospect.pk])
    client = client_for(marketer)

    # a button on the list page posts only the list id: UTF-8 for Excel is the default
    response = client.post(reverse("prospects_import:export"), {"list_id": static.pk})
    job = ExportJob.objects.get()
    assert response.status_code == 302 and job.prospect_list == static
    assert job.encoding == ExportJob.Encoding.UTF8_BOM
    export_run(job.pk)
    job.refresh_from_db()
    assert _emails(job) == {"listed@example.jp"}

    response = client.post(
        reverse("prospects_import:export"),
        {"criteria": '{"conditions": [{"subject": "nope"}]}', "encoding": "utf-8-sig"},
    )
    assert response.status_code == 200
    assert "not valid" in response.content.decode()
    assert ExportJob.objects.count() == 1


def test_a_deleted_list_fails_the_export_instead_of_exporting_everything(marketer: User) -> None:
    ProspectFactory.create()
    static = list_create(actor=marketer, name="消えるリスト")
    job = export_job_create(actor=marketer, prospect_list=static)
    static.delete()
    export_run(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert not job.file
