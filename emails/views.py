"""Marketer pages of emails: sending domains (Settings), email templates and list emails.

Sending domains need Settings EDIT to read or change (their pages show keys and DNS setup);
templates and list emails need Marketing VIEW to read and EDIT to change, so Sales users get
403 everywhere here. Writes go through ``emails.services`` (and ``emails.services_ui`` for
verification and previews); a preview is sanitised and shown in ``<iframe sandbox="">``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from emails import one_off, services, services_ui
from emails.feedback import DOMAIN_RATES_DAYS, sending_domain_feedback_rates
from emails.forms_ui import (
    AbTestForm,
    EmailTemplateForm,
    ListEmailForm,
    PreviewProspectForm,
    ScheduleForm,
    SendingDomainForm,
    TestSendForm,
)
from emails.models import EmailTemplate, ListEmail, ListEmailStatus, SendingDomain
from mapp.access import access_required, has_access, request_user
from mapp.models import Level, Module, User
from mapp.templating import merge_field_catalogue
from prospects.models import Prospect
from prospects.selectors import prospects_visible_to

PAGE_SIZE = 50
#: Statuses whose detail page polls for progress; the others do not change by themselves.
LIVE_STATUSES = frozenset({ListEmailStatus.SCHEDULED, ListEmailStatus.SENDING})


def _can_edit(request: HttpRequest) -> bool:
    return has_access(request.user, Module.MARKETING, Level.EDIT)


def _page(request: HttpRequest, queryset: Any) -> Page[Any]:
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def _merge_field_menu() -> list[dict[str, Any]]:
    """The catalogue grouped for the editor's insert menu, in registration order."""
    groups: dict[str, list[dict[str, str]]] = {}
    for merge_field in merge_field_catalogue():
        groups.setdefault(str(merge_field.group), []).append(
            {"label": str(merge_field.label), "tag": merge_field.placeholder}
        )
    return [{"group": group, "fields": fields} for group, fields in groups.items()]


def _add_service_errors(form: Any, error: ValidationError) -> None:
    for message in error.messages:
        form.add_error(None, message)


# --- sending domains ---------------------------------------------------------------------------


@access_required(Module.SETTINGS, read_level=Level.EDIT)
def domain_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "emails/domain_list.html",
        {"page": _page(request, SendingDomain.objects.order_by("domain"))},
    )


@access_required(Module.SETTINGS, read_level=Level.EDIT)
def domain_create(request: HttpRequest) -> HttpResponse:
    form = SendingDomainForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            sending_domain = services.sending_domain_create(
                domain=form.cleaned_data["domain"],
                selector=form.cleaned_data["selector"],
                add_ed25519=form.cleaned_data["add_ed25519"],
            )
        except ValidationError as error:
            _add_service_errors(form, error)
        else:
            messages.success(
                request,
                _("Domain %(domain)s added. Publish the records below, then verify it.")
                % {"domain": sending_domain.domain},
            )
            return redirect("emails:domain_detail", domain_id=sending_domain.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "emails/domain_create.html", {"form": form}, status=status)


@access_required(Module.SETTINGS, read_level=Level.EDIT)
def domain_detail(request: HttpRequest, domain_id: int) -> HttpResponse:
    sending_domain = get_object_or_404(SendingDomain, pk=domain_id)
    return render(
        request,
        "emails/domain_detail.html",
        {
            "domain": sending_domain,
            "records": services_ui.sending_domain_records(sending_domain),
            "checks": sending_domain.check_messages,
            "rates": sending_domain_feedback_rates(sending_domain_id=sending_domain.pk)[0],
            "rates_days": DOMAIN_RATES_DAYS,
        },
    )


@access_required(Module.SETTINGS, read_level=Level.EDIT)
@require_POST
def domain_verify(request: HttpRequest, domain_id: int) -> HttpResponse:
    sending_domain = get_object_or_404(SendingDomain, pk=domain_id)
    services_ui.sending_domain_verify(
        sending_domain=sending_domain, resolver=services_ui.dns_resolver()
    )
    if sending_domain.is_verified:
        messages.success(request, _("All three records are in place: the domain is verified."))
    else:
        messages.error(request, _("The domain is not verified yet; see what to fix below."))
    return redirect("emails:domain_detail", domain_id=sending_domain.pk)


# --- templates ---------------------------------------------------------------------------------


@access_required(Module.MARKETING)
def template_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "emails/template_list.html",
        {
            "page": _page(request, EmailTemplate.objects.order_by("name", "id")),
            "can_edit": _can_edit(request),
        },
    )


def _preview_prospect(request: HttpRequest, query: str) -> tuple[Prospect | None, str]:
    """The prospect a preview is for, among those the user may see, or a reason it is none."""
    query = query.strip()
    if not query:
        return None, ""
    visible = prospects_visible_to(request_user(request))
    if query.isdigit():
        found = visible.filter(pk=int(query)).first()
    else:
        found = (
            visible.filter(email__iexact=query).first()
            or visible.filter(email__icontains=query).order_by("email", "id").first()
        )
    if found is None:
        return None, _("No prospect matches “%(query)s”; example values are shown.") % {
            "query": query
        }
    return found, ""


def _template_page(
    request: HttpRequest,
    form: EmailTemplateForm,
    template: EmailTemplate | None,
    *,
    status: int = 200,
) -> HttpResponse:
    context: dict[str, Any] = {
        "form": form,
        "template_object": template,
        "merge_fields": _merge_field_menu(),
        "can_edit": _can_edit(request),
    }
    if template is not None:
        preview_form = PreviewProspectForm(request.GET or None)
        query = preview_form.data.get("prospect", "") if preview_form.is_bound else ""
        prospect, not_found = _preview_prospect(request, str(query))
        context.update(
            preview_form=preview_form,
            test_send_form=TestSendForm(),
            preview=services_ui.email_preview(content=template, prospect=prospect),
            preview_prospect=prospect,
            preview_not_found=not_found,
        )
    return render(request, "emails/template_edit.html", context, status=status)


def _template_save(
    request: HttpRequest, form: EmailTemplateForm, template: EmailTemplate | None
) -> EmailTemplate | None:
    data = dict(form.cleaned_data)
    try:
        return services.email_template_save(actor=request_user(request), template=template, **data)
    except ValidationError as error:
        _add_service_errors(form, error)
        return None


@access_required(Module.MARKETING, read_level=Level.EDIT)
def template_create(request: HttpRequest) -> HttpResponse:
    form = EmailTemplateForm(request.POST or None)
    if request.method == "POST":
        saved = _template_save(request, form, None) if form.is_valid() else None
        if saved is not None:
            messages.success(request, _("Template %(name)s created.") % {"name": saved.name})
            return redirect("emails:template_edit", template_id=saved.pk)
        return _template_page(request, form, None, status=400)
    return _template_page(request, form, None)


@access_required(Module.MARKETING)
def template_edit(request: HttpRequest, template_id: int) -> HttpResponse:
    template = get_object_or_404(EmailTemplate, pk=template_id)
    if request.method == "POST":
        form = EmailTemplateForm(request.POST)
        saved = _template_save(request, form, template) if form.is_valid() else None
        if saved is not None:
            messages.success(request, _("Changes saved."))
            return redirect("emails:template_edit", template_id=template.pk)
        template.refresh_from_db()  # the preview shows what is saved, not the refused draft
        return _template_page(request, form, template, status=400)
    form = EmailTemplateForm(initial=EmailTemplateForm.initial_for(template))
    return _template_page(request, form, template)


# --- list emails -------------------------------------------------------------------------------


@access_required(Module.MARKETING)
def list_email_list(request: HttpRequest) -> HttpResponse:
    page = _page(request, ListEmail.objects.order_by("-created_at", "-id"))
    # The counters on the row, not the recipient rows: one query for the whole page.
    rows = [
        (
            list_email,
            max(
                list_email.recipient_count
                - list_email.sent_count
                - list_email.failed_count
                - list_email.skipped_count,
                0,
            ),
        )
        for list_email in page
    ]
    return render(
        request,
        "emails/list_email_list.html",
        {"page": page, "rows": rows, "can_edit": _can_edit(request)},
    )


@access_required(Module.MARKETING, read_level=Level.EDIT)
def list_email_create(request: HttpRequest) -> HttpResponse:
    initial: dict[str, Any] = {}
    if request.GET.get("template", "").isdigit():
        initial["template"] = int(request.GET["template"])
    form = ListEmailForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            list_email = services.list_email_create(
                actor=request_user(request),
                name=data["name"],
                template=data["template"],
                recipient_lists=list(data["recipient_lists"]),
                suppression_lists=list(data["suppression_lists"]),
                sending_domain=data["sending_domain"],
            )
        except ValidationError as error:
            _add_service_errors(form, error)
        else:
            messages.success(
                request, _("List email %(name)s created as a draft.") % {"name": list_email.name}
            )
            return redirect("emails:list_email_detail", list_email_id=list_email.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "emails/list_email_create.html", {"form": form}, status=status)


def _list_email_page(
    request: HttpRequest,
    list_email: ListEmail,
    *,
    schedule_form: ScheduleForm | None = None,
    refusal: list[str] | None = None,
    status: int = 200,
) -> HttpResponse:
    is_draft = list_email.status == ListEmailStatus.DRAFT
    return render(
        request,
        "emails/list_email_detail.html",
        {
            "list_email": list_email,
            "progress": services_ui.list_email_progress(list_email),
            "is_live": list_email.status in LIVE_STATUSES,
            "problems": services.list_email_problems(list_email) if is_draft else [],
            "refusal": refusal or [],
            "schedule_form": schedule_form or ScheduleForm(),
            "test_send_form": TestSendForm(list_email=list_email),
            "variants": list(list_email.variants.order_by("letter")),
            "recipient_lists": list(list_email.recipient_lists.order_by("name")),
            "suppression_lists": list(list_email.suppression_lists.order_by("name")),
            "preview": services_ui.email_preview(
                content=list_email,
                prospect=None,
                domain=list_email.sending_domain.domain if list_email.sending_domain else "",
            ),
            "can_edit": _can_edit(request),
        },
        status=status,
    )


def _list_email(list_email_id: int) -> ListEmail:
    return get_object_or_404(
        ListEmail.objects.select_related("sending_domain", "sender_user", "template"),
        pk=list_email_id,
    )


@access_required(Module.MARKETING)
def list_email_detail(request: HttpRequest, list_email_id: int) -> HttpResponse:
    return _list_email_page(request, _list_email(list_email_id))


@access_required(Module.MARKETING)
def list_email_progress(request: HttpRequest, list_email_id: int) -> HttpResponse:
    """The progress partial the detail page polls every 2 s while a send may move."""
    list_email = _list_email(list_email_id)
    return render(
        request,
        "emails/_progress.html",
        {
            "list_email": list_email,
            "progress": services_ui.list_email_progress(list_email),
            "is_live": list_email.status in LIVE_STATUSES,
        },
    )


@access_required(Module.MARKETING, read_level=Level.EDIT)
@require_POST
def list_email_schedule(request: HttpRequest, list_email_id: int) -> HttpResponse:
    list_email = _list_email(list_email_id)
    form = ScheduleForm(request.POST)
    if not form.is_valid():
        return _list_email_page(request, list_email, schedule_form=form, status=400)
    try:
        services.list_email_schedule(list_email=list_email, send_at=form.cleaned_data["send_at"])
    except ValidationError as error:
        return _list_email_page(
            request, list_email, schedule_form=form, refusal=list(error.messages), status=400
        )
    messages.success(request, _("The email is scheduled."))
    return redirect("emails:list_email_detail", list_email_id=list_email.pk)


def _transition_view(request: HttpRequest, list_email_id: int, *, action: str) -> HttpResponse:
    list_email = _list_email(list_email_id)
    actor: User = request_user(request)
    if action == "pause":
        done = services.list_email_pause(
            list_email=list_email,
            reason=_("Paused by %(user)s.") % {"user": actor.display_name},
        )
        success, refused = _("Sending paused."), _("Only an email being sent can be paused.")
    elif action == "resume":
        done = services.list_email_resume(list_email=list_email)
        success, refused = _("Sending resumed."), _("Only a paused email can be resumed.")
    else:
        done = services.list_email_cancel(list_email=list_email)
        success, refused = _("The email is cancelled."), _("This email can no longer be cancelled.")
    if done:
        messages.success(request, success)
    else:
        messages.error(request, refused)
    return redirect("emails:list_email_detail", list_email_id=list_email.pk)


@access_required(Module.MARKETING, read_level=Level.EDIT)
@require_POST
def list_email_pause(request: HttpRequest, list_email_id: int) -> HttpResponse:
    return _transition_view(request, list_email_id, action="pause")


@access_required(Module.MARKETING, read_level=Level.EDIT)
@require_POST
def list_email_resume(request: HttpRequest, list_email_id: int) -> HttpResponse:
    return _transition_view(request, list_email_id, action="resume")


@access_required(Module.MARKETING, read_level=Level.EDIT)
@require_POST
def list_email_cancel(request: HttpRequest, list_email_id: int) -> HttpResponse:
    return _transition_view(request, list_email_id, action="cancel")


# --- A/B tests and test sends -------------------------------------------------------------------


@access_required(Module.MARKETING, read_level=Level.EDIT)
def list_email_ab_test(request: HttpRequest, list_email_id: int) -> HttpResponse:
    """Set up (or remove) the A/B test of a draft or scheduled send."""
    list_email = _list_email(list_email_id)
    editable = list_email.status in (ListEmailStatus.DRAFT, ListEmailStatus.SCHEDULED)
    if request.method == "POST" and editable:
        if request.POST.get("remove"):
            services.list_email_ab_test_clear(list_email=list_email)
            messages.success(request, _("The A/B test was removed."))
            return redirect("emails:list_email_detail", list_email_id=list_email.pk)
        form = AbTestForm(request.POST)
        if form.is_valid():
            try:
                services.list_email_ab_test_set(
                    list_email=list_email,
                    variants=form.variants(),
                    percent=form.cleaned_data["percent"],
                    hours=form.cleaned_data["hours"],
                    metric=form.cleaned_data["metric"],
                )
            except ValidationError as error:
                _add_service_errors(form, error)
            else:
                messages.success(request, _("The A/B test is set up."))
                return redirect("emails:list_email_detail", list_email_id=list_email.pk)
        status = 400
    else:
        form = AbTestForm(initial=AbTestForm.initial_for(list_email))
        status = 200
    return render(
        request,
        "emails/ab_test.html",
        {"list_email": list_email, "form": form, "editable": editable},
        status=status,
    )


def _test_send(
    request: HttpRequest, source: ListEmail | EmailTemplate, list_email: ListEmail | None
) -> None:
    form = TestSendForm(request.POST, list_email=list_email)
    if not form.is_valid():
        for field_errors in form.errors.values():
            for field_error in field_errors:
                messages.error(request, str(field_error))
        return
    try:
        addresses = one_off.test_addresses_clean(form.cleaned_data["addresses"])
        prospect, not_found = _preview_prospect(request, form.cleaned_data["prospect"])
        if not_found:
            raise ValidationError(not_found)
        sent = one_off.test_send(
            source=source,
            addresses=addresses,
            prospect=prospect,
            variant_id=form.cleaned_data.get("variant"),
        )
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return
    messages.success(
        request,
        _("A test was sent to %(addresses)s.") % {"addresses": ", ".join(addresses)}
        if sent
        else _("Nothing was sent."),
    )


@access_required(Module.MARKETING, read_level=Level.EDIT)
@require_POST
def list_email_test_send(request: HttpRequest, list_email_id: int) -> HttpResponse:
    list_email = _list_email(list_email_id)
    _test_send(request, list_email, list_email)
    return redirect("emails:list_email_detail", list_email_id=list_email.pk)


@access_required(Module.MARKETING, read_level=Level.EDIT)
@require_POST
def template_test_send(request: HttpRequest, template_id: int) -> HttpResponse:
    template = get_object_or_404(EmailTemplate, pk=template_id)
    _test_send(request, template, None)
    return redirect("emails:template_edit", template_id=template.pk)
