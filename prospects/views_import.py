"""Import and export pages: upload → mapping → job progress; export of a list or a filter.

Importing writes any prospect, so it needs the prospects module at EDIT *and* a role that sees
all prospects (a Sales user, who sees only their own, cannot import). Exporting needs only VIEW:
the file holds exactly what :func:`prospects.selectors.prospects_visible_to` gives the user.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from mapp.access import access_required, request_user, sees_all_prospects
from mapp.models import Level, Module, User
from prospects import exporting, importing
from prospects.models import (
    AssignmentGroup,
    ExportJob,
    ImportJob,
    ImportPolicy,
    ImportPreset,
    JobStatus,
    ProspectList,
)

import_access = access_required(Module.PROSPECTS, read_level=Level.EDIT, write_level=Level.EDIT)
export_access = access_required(Module.PROSPECTS, read_level=Level.VIEW, write_level=Level.VIEW)


def _importer(request: HttpRequest) -> User:
    """The signed-in user, if their role may import (EDIT was checked by the middleware)."""
    user = request_user(request)
    if not sees_all_prospects(user):
        raise PermissionDenied
    return user


def _add_errors(form: forms.Form, error: ValidationError) -> None:
    for message in error.messages:
        form.add_error(None, message)


# --- forms ---------------------------------------------------------------------------------------


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.display_name} <{obj.email}>" if obj.display_name != obj.email else obj.email


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("CSV file"),
        help_text=gettext_lazy(
            "UTF-8 (with or without BOM) or Shift_JIS as Excel saves it; at most 50 MB. "
            "The first row must hold the column names."
        ),
    )
    policy = forms.ChoiceField(
        label=gettext_lazy("Existing prospects"),
        choices=ImportPolicy.choices,
        initial=ImportPolicy.CREATE_AND_UPDATE,
        widget=forms.RadioSelect,
    )
    add_to_list = forms.ModelChoiceField(
        label=gettext_lazy("Add the imported prospects to list"),
        queryset=ProspectList.objects.filter(is_dynamic=False).order_by("name"),
        required=False,
    )
    assign_to_user = UserChoiceField(
        label=gettext_lazy("Assign unassigned prospects to"),
        queryset=User.objects.filter(is_active=True).order_by("last_name", "email"),
        required=False,
    )
    assign_to_group = forms.ModelChoiceField(
        label=gettext_lazy("…or round-robin in group"),
        queryset=AssignmentGroup.objects.order_by("name"),
        required=False,
    )
    preset = forms.ModelChoiceField(
        label=gettext_lazy("Column mapping preset"),
        queryset=ImportPreset.objects.order_by("name"),
        required=False,
        help_text=gettext_lazy("Columns not in the preset are matched by their names."),
    )

    def clean_file(self) -> Any:
        uploaded = self.cleaned_data["file"]
        if uploaded.size > importing.MAX_UPLOAD_BYTES:
            raise ValidationError(
                _("The file is larger than %(size)d MB; split it into smaller files.")
                % {"size": importing.MAX_UPLOAD_BYTES // 1024 // 1024}
            )
        return uploaded

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("assign_to_user") and cleaned.get("assign_to_group"):
            raise ValidationError(_("Assign to a user or to a group, not both."))
        return cleaned


class ImportMappingForm(forms.Form):
    preset_name = forms.CharField(
        label=gettext_lazy("Save this mapping as a preset named"),
        max_length=100,
        required=False,
        help_text=gettext_lazy("Leave empty not to save it. The same name replaces a preset."),
    )

    def __init__(
        self,
        *args: Any,
        headers: list[str],
        choices: list[tuple[str, str]],
        initial_columns: list[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.column_names = []
        for index, header in enumerate(headers):
            name = f"column_{index}"
            self.fields[name] = forms.ChoiceField(
                label=header or _("column %(number)d") % {"number": index + 1},
                choices=choices,
                initial=initial_columns[index],
            )
            self.column_names.append(name)

    def columns(self) -> list[str]:
        return [self.cleaned_data[name] for name in self.column_names]

    def column_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.column_names]


class ExportForm(forms.Form):
    list_id = forms.IntegerField(required=False, widget=forms.HiddenInput)
    prospect_list = forms.ModelChoiceField(
        label=gettext_lazy("List"),
        queryset=ProspectList.objects.order_by("name"),
        required=False,
        empty_label=gettext_lazy("All prospects I can see (or the filter below)"),
    )
    criteria = forms.CharField(
        label=gettext_lazy("Filter (criteria JSON)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    encoding = forms.ChoiceField(
        label=gettext_lazy("Encoding"),
        choices=ExportJob.Encoding.choices,
        initial=ExportJob.Encoding.UTF8_BOM,
        required=False,  # a button elsewhere may post only list_id or criteria
    )

    def clean_criteria(self) -> dict[str, Any] | None:
        text = self.cleaned_data.get("criteria", "").strip()
        if not text:
            return None
        try:
            document = json.loads(text)
        except ValueError as error:
            raise ValidationError(_("The filter is not valid JSON.")) from error
        if not isinstance(document, dict):
            raise ValidationError(_("The filter must be a JSON object."))
        return document

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        cleaned["encoding"] = cleaned.get("encoding") or ExportJob.Encoding.UTF8_BOM
        list_id = cleaned.get("list_id")
        if list_id and not cleaned.get("prospect_list"):
            prospect_list = ProspectList.objects.filter(pk=list_id).first()
            if prospect_list is None:
                raise ValidationError(_("The list does not exist."))
            cleaned["prospect_list"] = prospect_list
        return cleaned


# --- import pages --------------------------------------------------------------------------------


@import_access
def import_list(request: HttpRequest) -> HttpResponse:
    _importer(request)
    return render(
        request, "prospects/import_list.html", {"jobs": importing.import_jobs_recent(limit=50)}
    )


@import_access
def import_upload(request: HttpRequest) -> HttpResponse:
    user = _importer(request)
    is_post = request.method == "POST"
    form = ImportUploadForm(request.POST if is_post else None, request.FILES if is_post else None)
    if request.method == "POST" and form.is_valid():
        try:
            job = importing.import_job_create(
                actor=user,
                uploaded_file=form.cleaned_data["file"],
                policy=form.cleaned_data["policy"],
                add_to_list=form.cleaned_data["add_to_list"],
                assign_to_user=form.cleaned_data["assign_to_user"],
                assign_to_group=form.cleaned_data["assign_to_group"],
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            if job.status == JobStatus.FAILED:
                return redirect("prospects_import:detail", job_id=job.pk)
            preset = form.cleaned_data["preset"]
            url = reverse("prospects_import:mapping", args=[job.pk])
            return redirect(f"{url}?preset={preset.pk}" if preset else url)
    return render(request, "prospects/import_upload.html", {"form": form})


@import_access
def import_mapping(request: HttpRequest, job_id: int) -> HttpResponse:
    user = _importer(request)
    job = get_object_or_404(ImportJob, pk=job_id)
    if job.status != JobStatus.PENDING or job.mapping:
        return redirect("prospects_import:detail", job_id=job.pk)
    preset_id = request.GET.get("preset", "")
    preset = ImportPreset.objects.filter(pk=preset_id).first() if preset_id.isdigit() else None
    try:
        preview = importing.import_preview(job=job, preset=preset)
    except importing.ImportFileError as error:
        importing.import_job_fail(job=job, reason=str(error))
        return redirect("prospects_import:detail", job_id=job.pk)
    form = ImportMappingForm(
        request.POST or None,
        headers=preview.headers,
        choices=importing.import_mapping_choices(),
        initial_columns=preview.guesses,
    )
    if request.method == "POST" and form.is_valid():
        try:
            importing.import_job_start(
                actor=user,
                job=job,
                columns=form.columns(),
                preset_name=form.cleaned_data["preset_name"],
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            return redirect("prospects_import:detail", job_id=job.pk)
    return render(
        request,
        "prospects/import_mapping.html",
        {"job": job, "preview": preview, "form": form, "preset": preset},
    )


def _import_context(job: ImportJob) -> dict[str, Any]:
    percent = int(job.processed_rows * 100 / job.total_rows) if job.total_rows else 0
    return {
        "job": job,
        "is_running": job.status in (JobStatus.PENDING, JobStatus.RUNNING) and bool(job.mapping),
        "percent": percent,
        "encoding_label": importing.ENCODING_LABELS.get(job.encoding, job.encoding),
    }


@import_access
def import_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    _importer(request)
    job = get_object_or_404(
        ImportJob.objects.select_related(
            "created_by", "add_to_list", "assign_to_user", "assign_to_group"
        ),
        pk=job_id,
    )
    return render(request, "prospects/import_detail.html", _import_context(job))


@import_access
def import_progress(request: HttpRequest, job_id: int) -> HttpResponse:
    _importer(request)
    job = get_object_or_404(ImportJob, pk=job_id)
    return render(request, "prospects/import_progress.html", _import_context(job))


@import_access
def import_rejected_download(request: HttpRequest, job_id: int) -> FileResponse:
    _importer(request)
    job = get_object_or_404(ImportJob, pk=job_id)
    if not job.errors_file:
        raise Http404
    stem = job.original_filename.rsplit(".", 1)[0] or "import"
    return FileResponse(
        job.errors_file.open("rb"),
        as_attachment=True,
        filename=f"{stem}-rejected.csv",
        content_type="text/csv",
    )


# --- export pages --------------------------------------------------------------------------------


@export_access
def export_create(request: HttpRequest) -> HttpResponse:
    """GET: the export form; POST (from it, or from a list or filter page): start an export."""
    user = request_user(request)
    form = ExportForm(
        request.POST if request.method == "POST" else None,
        initial={"list_id": request.GET.get("list", "")},
    )
    if request.method == "POST" and form.is_valid():
        try:
            job = exporting.export_job_create(
                actor=user,
                prospect_list=form.cleaned_data["prospect_list"],
                criteria=form.cleaned_data["criteria"],
                encoding=form.cleaned_data["encoding"],
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            return redirect("prospects_import:export_detail", job_id=job.pk)
    return render(
        request,
        "prospects/export_form.html",
        {"form": form, "jobs": exporting.export_jobs_for(user=user)},
    )


def _export_job(request: HttpRequest, job_id: int) -> ExportJob:
    job = exporting.export_job_get_for_user(user=request_user(request), job_id=job_id)
    if job is None:
        raise Http404
    return job


def _export_context(job: ExportJob) -> dict[str, Any]:
    percent = int(job.processed_rows * 100 / job.total_rows) if job.total_rows else 0
    return {
        "job": job,
        "is_running": job.status in (JobStatus.PENDING, JobStatus.RUNNING),
        "percent": percent,
    }


@export_access
def export_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _export_job(request, job_id)
    return render(request, "prospects/export_detail.html", _export_context(job))


@export_access
def export_progress(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _export_job(request, job_id)
    return render(request, "prospects/export_progress.html", _export_context(job))


@export_access
def export_download(request: HttpRequest, job_id: int) -> FileResponse:
    job = _export_job(request, job_id)
    if job.status != JobStatus.DONE or not job.file:
        raise Http404
    charset = "shift_jis" if job.encoding == ExportJob.Encoding.CP932 else "utf-8"
    return FileResponse(
        job.file.open("rb"),
        as_attachment=True,
        filename=job.file.name.rsplit("/", 1)[-1],
        content_type=f"text/csv; charset={charset}",
    )
