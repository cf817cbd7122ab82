"""Marketer pages of forms, form handlers and landing pages: lists, builder, reports, CSV.

Marketing VIEW reads every page here, Marketing EDIT changes things (the middleware checks
the declaration of each view: GET needs ``read_level``, POST ``write_level``); Sales users get
403. Writes go through ``forms.services`` (via ``forms.forms_builder``, which turns the builder's
rows into field rows, and ``forms.landing_pages``); numbers come from ``forms.reports``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from forms import landing_pages, reports, services
from forms.fields import PROSPECT_FIELD_CHOICES
from forms.forms_builder import (
    FormBuilderForm,
    FormHandlerForm,
    HandlerFieldFormSet,
    LandingPageForm,
    form_builder_save,
    form_handler_builder_save,
    handler_field_initial,
    rows_from_form,
)
from forms.models import Form, FormHandler, LandingPage, Submission
from forms.selectors import embed_snippets
from mapp.access import access_required, has_access, request_user
from mapp.models import Level, Module, User
from mapp.templating import template_validate
from prospects.models import CustomField
from tracking.views_visitors import tracker_base_url

PAGE_SIZE = 50
SUBMISSION_PAGE_SIZE = 50
# Columns of the submissions table on a report page; the CSV has every column.
SUBMISSION_TABLE_COLUMNS = 6
SUBMISSION_CELL_LENGTH = 120


def new_form_fields() -> list[dict[str, Any]]:
    """A new form starts with the one field every form needs (labelled in the user's language)."""
    return [
        {
            "key": "new-1",
            "target": "email",
            "field_type": "email",
            "label": str(dict(PROSPECT_FIELD_CHOICES)["email"]),
            "required": True,
        }
    ]


def _can_edit(request: HttpRequest) -> bool:
    return has_access(request.user, Module.MARKETING, Level.EDIT)


def _page(request: HttpRequest, queryset: Any, size: int = PAGE_SIZE) -> Page[Any]:
    return Paginator(queryset, size).get_page(request.GET.get("page"))


# --- forms ---------------------------------------------------------------------------------------


@access_required(Module.MARKETING)
def form_list(request: HttpRequest) -> HttpResponse:
    page = _page(
        request,
        Form.objects.annotate(
            field_count=Count("fields", filter=Q(fields__is_active=True))
        ).order_by("name", "id"),
    )
    totals = reports.report_totals_many(
        kind=reports.FORM_REPORT, object_ids=[form.pk for form in page]
    )
    return render(
        request,
        "forms/form_list.html",
        {
            "page": page,
            "rows": [(form, totals[form.pk]) for form in page],
            "can_edit": _can_edit(request),
        },
    )


def _form_page(
    request: HttpRequest, builder: FormBuilderForm, form: Form | None, *, status: int = 200
) -> HttpResponse:
    context: dict[str, Any] = {
        "builder": builder,
        "form_object": form,
        "can_edit": _can_edit(request),
    }
    if form is not None:
        context["snippets"] = embed_snippets(form, tracker_base_url())
        context["fields"] = list(form.fields.filter(is_active=True).select_related("custom_field"))
    return render(request, "forms/form_edit.html", context, status=status)


def _form_initial(form: Form) -> dict[str, Any]:
    return {
        "name": form.name,
        "description": form.description,
        "form_fields": rows_from_form(form),
        "submit_label": form.submit_label,
        "thank_you_content": form.thank_you_content,
        "thank_you_url": form.thank_you_url,
        "kiosk_mode": form.kiosk_mode,
        "double_opt_in": form.double_opt_in,
        "campaign_name": form.campaign_name,
        "is_active": form.is_active,
        "completion_actions": form.completion_actions,
    }


def _builder_save(builder: FormBuilderForm, *, actor: User, form: Form | None) -> Form | None:
    """Save a valid builder; None (with the errors on the builder) when it cannot be saved."""
    if not builder.is_valid():
        return None
    try:
        return form_builder_save(
            actor=actor,
            form=form,
            data=builder.cleaned_data,
            fields=builder.cleaned_data["form_fields"],
        )
    except ValidationError as error:
        builder.add_error(None, error.messages)
        return None


@access_required(Module.MARKETING, read_level=Level.EDIT)
def form_create(request: HttpRequest) -> HttpResponse:
    actor = request_user(request)
    builder = FormBuilderForm(
        request.POST or None, actor=actor, initial={"form_fields": new_form_fields()}
    )
    if request.method == "POST":
        form = _builder_save(builder, actor=actor, form=None)
        if form is not None:
            messages.success(request, _("Form %(name)s created.") % {"name": form.name})
            return redirect("forms:edit", form_id=form.pk)
        return _form_page(request, builder, None, status=400)
    return _form_page(request, builder, None)


@access_required(Module.MARKETING)
def form_edit(request: HttpRequest, form_id: int) -> HttpResponse:
    """The form's builder, embed code and numbers; POST (Marketing EDIT) saves it."""
    form = get_object_or_404(Form, pk=form_id)
    actor = request_user(request)
    builder = FormBuilderForm(request.POST or None, actor=actor, initial=_form_initial(form))
    if request.method == "POST":
        if _builder_save(builder, actor=actor, form=form) is not None:
            messages.success(request, _("Changes saved."))
            return redirect("forms:edit", form_id=form.pk)
        return _form_page(request, builder, form, status=400)
    return _form_page(request, builder, form)


# --- reports (shared by the three kinds) ---------------------------------------------------------


def _submission_rows(
    submissions: Sequence[Submission], columns: Sequence[reports.CsvColumn]
) -> list[dict[str, Any]]:
    """What the table shows per submission: the first columns' values, clipped (escaped by the
    template)."""
    shown = columns[:SUBMISSION_TABLE_COLUMNS]
    rows = []
    for submission in submissions:
        data = submission.raw_data if isinstance(submission.raw_data, dict) else {}
        values = []
        for column in shown:
            value = data.get(column.key, "")
            if isinstance(value, list):
                value = ", ".join(str(item) for item in value)
            values.append(str(value)[:SUBMISSION_CELL_LENGTH])
        rows.append({"submission": submission, "values": values})
    return rows


def _report_page(
    request: HttpRequest,
    *,
    kind: reports.ReportKind,
    subject: Form | FormHandler | LandingPage,
    columns: list[reports.CsvColumn],
    csv_url: str,
    edit_url: str,
    preview_url: str = "",
) -> HttpResponse:
    totals = reports.report_totals(kind=kind, object_id=subject.pk)
    days = reports.report_by_day(kind=kind, object_id=subject.pk)
    page = _page(
        request, reports.submissions_for(kind=kind, object_id=subject.pk), SUBMISSION_PAGE_SIZE
    )
    statuses = reports.submission_status_counts(kind=kind, object_id=subject.pk)
    status_labels = dict(Submission._meta.get_field("status").flatchoices)
    return render(
        request,
        "forms/report.html",
        {
            "subject": subject,
            "kind": kind,
            "totals": totals,
            "has_views": kind.view_type is not None,
            "chart": reports.day_chart_svg(days, show_views=kind.view_type is not None),
            "days": days,
            "page": page,
            "columns": columns[:SUBMISSION_TABLE_COLUMNS],
            "rows": _submission_rows(list(page), columns),
            "statuses": [
                (status_labels.get(status, status), count)
                for status, count in sorted(statuses.items())
            ],
            "csv_url": csv_url,
            "edit_url": edit_url,
            "preview_url": preview_url,
            "can_edit": _can_edit(request),
        },
    )


def _csv_response(
    *, kind: reports.ReportKind, subject: Any, columns: list[reports.CsvColumn], prefix: str
) -> StreamingHttpResponse:
    lines = reports.submissions_csv_lines(
        reports.submissions_for(kind=kind, object_id=subject.pk), columns
    )
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    stamp = timezone.localdate().strftime("%Y%m%d")
    response["Content-Disposition"] = (
        f'attachment; filename="{prefix}-{subject.pk}-submissions-{stamp}.csv"'
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response


@access_required(Module.MARKETING)
def form_report(request: HttpRequest, form_id: int) -> HttpResponse:
    form = get_object_or_404(Form, pk=form_id)
    return _report_page(
        request,
        kind=reports.FORM_REPORT,
        subject=form,
        columns=reports.csv_columns_for_form(form),
        csv_url=reverse("forms:csv", kwargs={"form_id": form.pk}),
        edit_url=reverse("forms:edit", kwargs={"form_id": form.pk}),
    )


@access_required(Module.MARKETING)
def form_csv(request: HttpRequest, form_id: int) -> StreamingHttpResponse:
    form = get_object_or_404(Form, pk=form_id)
    return _csv_response(
        kind=reports.FORM_REPORT,
        subject=form,
        columns=reports.csv_columns_for_form(form),
        prefix="form",
    )


# --- form handlers -------------------------------------------------------------------------------


def handler_endpoint_url(handler: FormHandler, base_url: str | None = None) -> str:
    """The handler's public endpoint, on the primary tracker domain or the app's host."""
    return (base_url or tracker_base_url()) + reverse(
        "forms_public:handler", kwargs={"handler_uuid": handler.uuid}
    )


def handler_example_html(handler: FormHandler, endpoint: str) -> str:
    """A plain HTML form posting to the handler, with the mapped names (escaped by the page)."""
    lines = [f'<form action="{escape(endpoint)}" method="post">']
    for handler_field in handler.fields.order_by("position", "id"):
        input_type = "email" if handler_field.is_email else "text"
        required = " required" if handler_field.required else ""
        name = escape(handler_field.external_name)
        lines.append(f'  <label>{name} <input type="{input_type}" name="{name}"{required}></label>')
    if handler.honeypot_name:
        lines.append(
            f'  <input type="text" name="{escape(handler.honeypot_name)}" tabindex="-1" '
            'autocomplete="off" style="display:none">'
        )
    lines.append('  <button type="submit">送信</button>')
    lines.append("</form>")
    return "\n".join(lines)


@access_required(Module.MARKETING)
def handler_list(request: HttpRequest) -> HttpResponse:
    page = _page(request, FormHandler.objects.order_by("name", "id"))
    totals = reports.report_totals_many(
        kind=reports.HANDLER_REPORT, object_ids=[handler.pk for handler in page]
    )
    base_url = tracker_base_url()
    return render(
        request,
        "forms/handler_list.html",
        {
            "page": page,
            "rows": [
                (handler, totals[handler.pk], handler_endpoint_url(handler, base_url))
                for handler in page
            ],
            "can_edit": _can_edit(request),
        },
    )


def _handler_page(
    request: HttpRequest,
    form: FormHandlerForm,
    formset: Any,
    handler: FormHandler | None,
    *,
    status: int = 200,
) -> HttpResponse:
    context: dict[str, Any] = {
        "form": form,
        "formset": formset,
        "handler": handler,
        "can_edit": _can_edit(request),
    }
    if handler is not None:
        endpoint = handler_endpoint_url(handler)
        context["endpoint"] = endpoint
        context["example_html"] = handler_example_html(handler, endpoint)
        context["mapping"] = list(handler.fields.select_related("custom_field"))
    return render(request, "forms/handler_edit.html", context, status=status)


def _custom_fields_by_key() -> dict[str, CustomField]:
    return {custom_field.key: custom_field for custom_field in CustomField.objects.all()}


def _handler_save(
    form: FormHandlerForm, formset: Any, *, actor: User, handler: FormHandler | None
) -> FormHandler | None:
    """Save a valid handler form and mapping; None (errors on the form) when it cannot."""
    form_valid = form.is_valid()
    if not (formset.is_valid() and form_valid):
        return None
    try:
        return form_handler_builder_save(
            actor=actor,
            handler=handler,
            data=form.cleaned_data,
            mapping=formset.mapping_rows(_custom_fields_by_key()),
        )
    except ValidationError as error:
        form.add_error(None, error.messages)
        return None


@access_required(Module.MARKETING, read_level=Level.EDIT)
def handler_create(request: HttpRequest) -> HttpResponse:
    actor = request_user(request)
    form = FormHandlerForm(request.POST or None, actor=actor)
    formset = HandlerFieldFormSet(
        request.POST or None,
        prefix="mapping",
        initial=[{"external_name": "email", "target": "email", "is_email": True}],
    )
    if request.method == "POST":
        handler = _handler_save(form, formset, actor=actor, handler=None)
        if handler is not None:
            messages.success(request, _("Form handler %(name)s created.") % {"name": handler.name})
            return redirect("forms:handler_edit", handler_id=handler.pk)
        return _handler_page(request, form, formset, None, status=400)
    return _handler_page(request, form, formset, None)


@access_required(Module.MARKETING)
def handler_edit(request: HttpRequest, handler_id: int) -> HttpResponse:
    handler = get_object_or_404(FormHandler, pk=handler_id)
    actor = request_user(request)
    form = FormHandlerForm(
        request.POST or None,
        actor=actor,
        initial={
            "name": handler.name,
            "success_url": handler.success_url,
            "error_url": handler.error_url,
            "forward_data": handler.forward_data,
            "kiosk_mode": handler.kiosk_mode,
            "honeypot_name": handler.honeypot_name,
            "campaign_name": handler.campaign_name,
            "is_active": handler.is_active,
            "completion_actions": handler.completion_actions,
        },
    )
    formset = HandlerFieldFormSet(
        request.POST or None, prefix="mapping", initial=handler_field_initial(handler)
    )
    if request.method == "POST":
        if _handler_save(form, formset, actor=actor, handler=handler) is not None:
            messages.success(request, _("Changes saved."))
            return redirect("forms:handler_edit", handler_id=handler.pk)
        return _handler_page(request, form, formset, handler, status=400)
    return _handler_page(request, form, formset, handler)


@access_required(Module.MARKETING)
def handler_report(request: HttpRequest, handler_id: int) -> HttpResponse:
    handler = get_object_or_404(FormHandler, pk=handler_id)
    return _report_page(
        request,
        kind=reports.HANDLER_REPORT,
        subject=handler,
        columns=reports.csv_columns_for_handler(handler),
        csv_url=reverse("forms:handler_csv", kwargs={"handler_id": handler.pk}),
        edit_url=reverse("forms:handler_edit", kwargs={"handler_id": handler.pk}),
    )


@access_required(Module.MARKETING)
def handler_csv(request: HttpRequest, handler_id: int) -> StreamingHttpResponse:
    handler = get_object_or_404(FormHandler, pk=handler_id)
    return _csv_response(
        kind=reports.HANDLER_REPORT,
        subject=handler,
        columns=reports.csv_columns_for_handler(handler),
        prefix="form-handler",
    )


# --- landing pages -------------------------------------------------------------------------------


@access_required(Module.MARKETING)
def landing_page_list(request: HttpRequest) -> HttpResponse:
    page = _page(request, LandingPage.objects.select_related("form").order_by("name", "id"))
    totals = reports.report_totals_many(
        kind=reports.LANDING_PAGE_REPORT, object_ids=[landing_page.pk for landing_page in page]
    )
    base_url = tracker_base_url()
    return render(
        request,
        "forms/landing_page_list.html",
        {
            "page": page,
            "rows": [
                (
                    landing_page,
                    totals[landing_page.pk],
                    landing_pages.public_url(landing_page, base_url),
                )
                for landing_page in page
            ],
            "can_edit": _can_edit(request),
        },
    )


def _landing_page_page(
    request: HttpRequest,
    form: LandingPageForm,
    landing_page: LandingPage | None,
    *,
    preview_html: str | None = None,
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "forms/landing_page_edit.html",
        {
            "form": form,
            "landing_page": landing_page,
            "public_url": landing_pages.public_url(landing_page) if landing_page else "",
            "merge_fields": landing_pages.merge_field_menu(),
            "preview_html": preview_html,
            "can_edit": _can_edit(request),
        },
        status=status,
    )


def _wants_preview(request: HttpRequest) -> bool:
    return request.POST.get("action") == "preview"


def _preview_of(form: LandingPageForm, landing_page: LandingPage | None) -> str | None:
    """The page as the form describes it (unsaved), or None with the error added to the form."""
    data = form.cleaned_data
    try:
        return landing_pages.landing_page_preview_html(
            title=data["title"],
            layout=data["layout"],
            content=data["content"],
            meta_description=data["meta_description"],
            form=data["form"],
        )
    except ValidationError as error:
        form.add_error("content", error)
        return None


@access_required(Module.MARKETING, read_level=Level.EDIT)
def landing_page_create(request: HttpRequest) -> HttpResponse:
    form = LandingPageForm(request.POST or None, initial={"layout": LandingPage.Layout.SINGLE})
    if request.method == "POST":
        if form.is_valid():
            if _wants_preview(request):
                preview = _preview_of(form, None)
                return _landing_page_page(
                    request, form, None, preview_html=preview, status=200 if preview else 400
                )
            landing_page = landing_pages.landing_page_save(
                actor=request_user(request), landing_page=None, data=form.cleaned_data
            )
            messages.success(
                request, _("Landing page %(name)s created.") % {"name": landing_page.name}
            )
            return redirect("forms:landing_page_edit", landing_page_id=landing_page.pk)
        return _landing_page_page(request, form, None, status=400)
    return _landing_page_page(request, form, None)


@access_required(Module.MARKETING)
def landing_page_edit(request: HttpRequest, landing_page_id: int) -> HttpResponse:
    landing_page = get_object_or_404(LandingPage, pk=landing_page_id)
    form = LandingPageForm(
        request.POST or None,
        landing_page=landing_page,
        initial={
            "name": landing_page.name,
            "slug": landing_page.slug,
            "title": landing_page.title,
            "meta_description": landing_page.meta_description,
            "layout": landing_page.layout,
            "form": landing_page.form_id,
            "content": landing_page.content,
        },
    )
    if request.method == "POST":
        if form.is_valid():
            if _wants_preview(request):
                preview = _preview_of(form, landing_page)
                return _landing_page_page(
                    request,
                    form,
                    landing_page,
                    preview_html=preview,
                    status=200 if preview else 400,
                )
            landing_pages.landing_page_save(
                actor=request_user(request), landing_page=landing_page, data=form.cleaned_data
            )
            messages.success(request, _("Changes saved."))
            return redirect("forms:landing_page_edit", landing_page_id=landing_page.pk)
        return _landing_page_page(request, form, landing_page, status=400)
    return _landing_page_page(request, form, landing_page)


@access_required(Module.MARKETING)
def landing_page_preview(request: HttpRequest, landing_page_id: int) -> HttpResponse:
    """The saved page with example merge values, in a sandboxed frame (no scripts, no forms)."""
    landing_page = get_object_or_404(LandingPage.objects.select_related("form"), pk=landing_page_id)
    error = ""
    preview_html = ""
    try:
        preview_html = landing_pages.landing_page_preview_html(
            title=landing_page.title,
            layout=landing_page.layout,
            content=landing_page.content,
            meta_description=landing_page.meta_description,
            form=landing_page.form,
        )
    except ValidationError as problem:
        error = " ".join(problem.messages)
    return render(
        request,
        "forms/landing_page_preview.html",
        {
            "landing_page": landing_page,
            "preview_html": preview_html,
            "error": error,
            "public_url": landing_pages.public_url(landing_page),
            "can_edit": _can_edit(request),
        },
    )


@access_required(Module.MARKETING, read_level=Level.EDIT)
@require_POST
def landing_page_publish(request: HttpRequest, landing_page_id: int) -> HttpResponse:
    landing_page = get_object_or_404(LandingPage, pk=landing_page_id)
    problems = template_validate(landing_page.content)
    if problems:
        messages.error(request, _("Not published: %(reason)s") % {"reason": " ".join(problems)})
    else:
        services.landing_page_publish(actor=request_user(request), landing_page=landing_page)
        messages.success(
            request,
            _("Published at %(url)s.") % {"url": landing_pages.public_url(landing_page)},
        )
    return redirect("forms:landing_page_edit", landing_page_id=landing_page.pk)


@access_required(Module.MARKETING, read_level=Level.EDIT)
@require_POST
def landing_page_unpublish(request: HttpRequest, landing_page_id: int) -> HttpResponse:
    landing_page = get_object_or_404(LandingPage, pk=landing_page_id)
    services.landing_page_unpublish(actor=request_user(request), landing_page=landing_page)
    messages.success(request, _("Unpublished: the address now answers “not found”."))
    return redirect("forms:landing_page_edit", landing_page_id=landing_page.pk)


@access_required(Module.MARKETING)
def landing_page_report(request: HttpRequest, landing_page_id: int) -> HttpResponse:
    landing_page = get_object_or_404(LandingPage.objects.select_related("form"), pk=landing_page_id)
    return _report_page(
        request,
        kind=reports.LANDING_PAGE_REPORT,
        subject=landing_page,
        columns=reports.csv_columns_for_landing_page(landing_page),
        csv_url=reverse("forms:landing_page_csv", kwargs={"landing_page_id": landing_page.pk}),
        edit_url=reverse("forms:landing_page_edit", kwargs={"landing_page_id": landing_page.pk}),
        preview_url=reverse(
            "forms:landing_page_preview", kwargs={"landing_page_id": landing_page.pk}
        ),
    )


@access_required(Module.MARKETING)
def landing_page_csv(request: HttpRequest, landing_page_id: int) -> StreamingHttpResponse:
    landing_page = get_object_or_404(LandingPage.objects.select_related("form"), pk=landing_page_id)
    return _csv_response(
        kind=reports.LANDING_PAGE_REPORT,
        subject=landing_page,
        columns=reports.csv_columns_for_landing_page(landing_page),
        prefix="landing-page",
    )
