"""Marketing pages: custom redirects and tracked files (list, create, edit, upload)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from mapp.access import access_required, has_access, request_user
from mapp.models import Level, Module
from tracking import links
from tracking.forms_assets import CustomRedirectForm, SizeLimitUploadHandler, TrackedFileForm
from tracking.models import CustomRedirect, TrackedFile

PAGE_SIZE = 50


def redirect_public_url(custom_redirect: CustomRedirect) -> str:
    return settings.SITE_URL + reverse(
        "links:custom_redirect", kwargs={"slug": custom_redirect.slug}
    )


def file_public_url(tracked_file: TrackedFile) -> str:
    return settings.SITE_URL + reverse(
        "links:file",
        kwargs={
            "slug": tracked_file.slug,
            "filename": links.tracked_file_download_name(tracked_file),
        },
    )


@access_required(Module.MARKETING)
def redirect_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(CustomRedirect.objects.order_by("-created_at", "-id"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    rows = [(item, redirect_public_url(item)) for item in page]
    can_edit = has_access(request.user, Module.MARKETING, Level.EDIT)
    return render(
        request,
        "tracking/redirects_list.html",
        {"page": page, "rows": rows, "can_edit": can_edit},
    )


def _redirect_form_page(
    request: HttpRequest, form: CustomRedirectForm, custom_redirect: CustomRedirect | None
) -> HttpResponse:
    context: dict[str, Any] = {
        "form": form,
        "custom_redirect": custom_redirect,
        "can_edit": has_access(request.user, Module.MARKETING, Level.EDIT),
    }
    if custom_redirect is not None:
        context["public_url"] = redirect_public_url(custom_redirect)
    return render(request, "tracking/redirects_form.html", context)


@access_required(Module.MARKETING, read_level=Level.EDIT)
def redirect_create(request: HttpRequest) -> HttpResponse:
    form = CustomRedirectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = links.custom_redirect_create(
                actor=request_user(request),
                name=form.cleaned_data["name"],
                destination_url=form.cleaned_data["destination_url"],
                slug=form.cleaned_data["slug"],
                campaign_name=form.cleaned_data["campaign_name"],
            )
        except ValidationError as error:
            form.add_error(None, error.messages[0])
        else:
            messages.success(
                request, _("Custom redirect %(name)s created.") % {"name": created.name}
            )
            return redirect("assets:redirect_edit", redirect_id=created.pk)
    return _redirect_form_page(request, form, None)


@access_required(Module.MARKETING, read_level=Level.VIEW)
def redirect_edit(request: HttpRequest, redirect_id: int) -> HttpResponse:
    """The redirect's link and counts; marketers with EDIT change it here (POST needs EDIT)."""
    custom_redirect = get_object_or_404(CustomRedirect, pk=redirect_id)
    form = CustomRedirectForm(
        request.POST or None,
        instance=custom_redirect,
        initial={
            "name": custom_redirect.name,
            "destination_url": custom_redirect.destination_url,
            "slug": custom_redirect.slug,
            "campaign_name": custom_redirect.campaign_name,
            "is_active": custom_redirect.is_active,
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            links.custom_redirect_update(
                custom_redirect=custom_redirect,
                name=form.cleaned_data["name"],
                destination_url=form.cleaned_data["destination_url"],
                slug=form.cleaned_data["slug"],
                campaign_name=form.cleaned_data["campaign_name"],
                is_active=form.cleaned_data["is_active"],
            )
        except ValidationError as error:
            form.add_error(None, error.messages[0])
        else:
            messages.success(request, _("Changes saved."))
            return redirect("assets:redirect_edit", redirect_id=custom_redirect.pk)
    return _redirect_form_page(request, form, custom_redirect)


@access_required(Module.MARKETING)
def file_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(TrackedFile.objects.order_by("-created_at", "-id"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    rows = [
        (item, file_public_url(item), links.is_inline_image(item.content_type)) for item in page
    ]
    can_edit = has_access(request.user, Module.MARKETING, Level.EDIT)
    return render(
        request, "tracking/files_list.html", {"page": page, "rows": rows, "can_edit": can_edit}
    )


@access_required(Module.MARKETING, read_level=Level.EDIT)
@csrf_exempt
def file_upload(request: HttpRequest) -> HttpResponse:
    """Upload a file (≤ 50 MB). The size guard must be installed before the body is parsed,
    and the CSRF check parses it, so CSRF is checked by the inner view (Django's documented
    pattern for custom upload handlers)."""
    handler = SizeLimitUploadHandler(request, limit=links.MAX_FILE_SIZE)
    request.upload_handlers = [handler, *request.upload_handlers]
    return _file_upload(request, handler)


@csrf_protect
def _file_upload(request: HttpRequest, handler: SizeLimitUploadHandler) -> HttpResponse:
    if request.method != "POST":
        return render(request, "tracking/files_upload.html", {"form": TrackedFileForm()})
    form = TrackedFileForm(request.POST, request.FILES)
    if handler.exceeded:
        form.mark_too_large()
    elif form.is_valid():
        try:
            tracked = links.tracked_file_create(
                actor=request_user(request),
                name=form.cleaned_data["name"],
                uploaded=form.cleaned_data["file"],
            )
        except ValidationError as error:
            form.add_error("file", error.messages[0])
        else:
            messages.success(request, _("File %(name)s uploaded.") % {"name": tracked.name})
            return redirect("assets:files")
    return render(request, "tracking/files_upload.html", {"form": form}, status=400)
