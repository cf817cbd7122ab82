"""Public form endpoints: the form page (standalone and in an iframe), its embed script, the
form handler for customers' own HTML forms, and the double opt-in confirmation.

Every post is hostile until proven otherwise. Only ``application/x-www-form-urlencoded`` and
``multipart/form-data`` are read; a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is refused with
413, more fields than ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` or undecodable text with 400 — each with
a readable message, never a 500. What passes is stored raw before anything else
(forms.submissions) and answered from the stored outcome, so a double click gets the same page.

These views are embedded in other sites (iframe) and posted to from other origins: they are
``csrf_exempt`` (the signed render token and the honeypot protect forms; a form handler is
by design a cross-origin endpoint) and ``xframe_options_exempt`` with ``frame-ancestors *``.
"""

from __future__ import annotations

import json
import logging
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from django.conf import settings
from django.core.exceptions import (
    NON_FIELD_ERRORS,
    RequestDataTooBig,
    TooManyFieldsSent,
)
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from forms import bot_protection
from forms.consent import double_opt_in_confirm, submission_id_from_confirm_token
from forms.models import (
    Form,
    FormHandler,
    LandingPage,
    Submission,
    SubmissionKind,
    SubmissionStatus,
)
from forms.public_render import (
    form_context,
    shown_fields_for,
    thank_you_html,
)
from forms.redirects import is_allowed_redirect, url_with_parameters
from forms.selectors import form_fields_active, handler_fields
from forms.submissions import PostMeta, submission_process, submission_store
from forms.validation import raw_list
from mapp.access import public
from tracking import bots
from tracking.beacon import Admission, admit_hit
from tracking.models import ActivityType
from tracking.services import activity_record
from tracking.visitor_cookie import (
    get_or_create_visitor,
    request_ip,
    set_visitor_cookie,
    set_visitor_cookie_uuid,
    visitor_uuid_from_request,
)

logger = logging.getLogger(__name__)

FORM_CONTENT_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
DEFAULT_MAX_BODY_BYTES = 2_621_440  # Django's default DATA_UPLOAD_MAX_MEMORY_SIZE
DEFAULT_MAX_FIELDS = 1000
# Framing is the point of these pages; scripts and styles only from mapp itself.
PUBLIC_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors *"
)
NO_STORE = "no-store, private"
FORWARD_MAX_URL_LENGTH = 2000
FORWARD_VALUE_LENGTH = 500
ERROR_MESSAGE_LENGTH = 500
VIEW_SCOPE = "form_view"
SUCCESS_STATUSES = frozenset(
    {
        SubmissionStatus.PROCESSED,
        SubmissionStatus.REJECTED_BOT,
        SubmissionStatus.FAILED,
        SubmissionStatus.RECEIVED,
    }
)


def _public_page(response: HttpResponseBase, *, frameable: bool = True) -> HttpResponseBase:
    response["Content-Security-Policy"] = (
        PUBLIC_CSP
        if frameable
        else PUBLIC_CSP.replace("frame-ancestors *", "frame-ancestors 'none'")
    )
    response["Cache-Control"] = NO_STORE
    return response


def _message(
    request: HttpRequest, message: str, *, status: int, frameable: bool = True
) -> HttpResponseBase:
    response = render(request, "forms/public/message.html", {"message": message}, status=status)
    return _public_page(response, frameable=frameable)


def _too_many(request: HttpRequest) -> HttpResponseBase:
    response = _message(
        request,
        _("Too many submissions from your network. Please try again in a minute."),
        status=429,
    )
    response["Retry-After"] = "60"
    return response


# --- reading a post ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostProblem:
    status: int
    message: str


def _max_body_bytes() -> int:
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or DEFAULT_MAX_BODY_BYTES)


def _max_fields() -> int:
    return int(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS or DEFAULT_MAX_FIELDS)


def _too_big() -> PostProblem:
    return PostProblem(
        413,
        _("The submitted data is too large (at most %(size)d KB).")
        % {"size": _max_body_bytes() // 1024},
    )


def _too_many_fields() -> PostProblem:
    return PostProblem(
        400, _("Too many fields were submitted (at most %(count)d).") % {"count": _max_fields()}
    )


def _not_text() -> PostProblem:
    return PostProblem(400, _("The submitted data is not valid UTF-8 text."))


def _as_dict(pairs: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    data: dict[str, str | list[str]] = {}
    for name, value in pairs:
        if name in data:
            current = data[name]
            data[name] = [*current, value] if isinstance(current, list) else [current, value]
        else:
            data[name] = value
    return data


def _parse_urlencoded(body: bytes, encoding: str) -> list[tuple[str, str]]:
    return parse_qsl(
        body.decode(encoding),
        keep_blank_values=True,
        encoding=encoding,
        errors="strict",
        max_num_fields=_max_fields(),
    )


def read_post(
    request: HttpRequest, *, legacy_encoding: bool = False
) -> dict[str, str | list[str]] | PostProblem:
    """The posted fields, or why they cannot be read (a 4xx to answer).

    ``legacy_encoding``: accept Shift_JIS (CP932) bodies too — older Japanese sites post
    their forms in the page's encoding, and a form handler receives exactly those.
    """
    content_type = (request.content_type or "").lower()
    if content_type not in FORM_CONTENT_TYPES:
        return PostProblem(
            415,
            _(
                "Unsupported content type. Send the form as application/x-www-form-urlencoded "
                "or multipart/form-data."
            ),
        )
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    # No files are accepted, so the whole body counts against the limit (Django's own limit
    # leaves out file parts).
    if length > _max_body_bytes():
        return _too_big()
    if content_type == "multipart/form-data":
        return _read_multipart(request)
    try:
        body = request.body
    except RequestDataTooBig:
        return _too_big()
    try:
        return _as_dict(_parse_urlencoded(body, "utf-8"))
    except UnicodeDecodeError:
        if not legacy_encoding:
            return _not_text()
    except ValueError:
        return _too_many_fields()
    try:
        pairs = _parse_urlencoded(body, "cp932")
    except UnicodeDecodeError:
        return _not_text()
    except ValueError:
        return _too_many_fields()
    # CP932 maps a few stray bytes to private-use and C1 control characters: bytes that are
    # neither UTF-8 nor Japanese text are refused, not stored as such characters.
    if any(not _is_typed_text(name) or not _is_typed_text(value) for name, value in pairs):
        return _not_text()
    return _as_dict(pairs)


def _is_typed_text(text: str) -> bool:
    return not any(
        unicodedata.category(character) in ("Co", "Cc") and character not in "\t\n\r"
        for character in text
    )


def _read_multipart(request: HttpRequest) -> dict[str, str | list[str]] | PostProblem:
    try:
        post = request.POST
    except RequestDataTooBig:
        return _too_big()
    except TooManyFieldsSent:
        return _too_many_fields()
    except MultiPartParserError:
        return PostProblem(400, _("The submitted form data is malformed."))
    data: dict[str, str | list[str]] = {}
    for name, values in post.lists():
        # Django replaces undecodable bytes with U+FFFD: refused rather than stored garbled.
        if "\ufffd" in name or any("\ufffd" in value for value in values):
            return _not_text()
        data[name] = values[0] if len(values) == 1 else list(values)
    return data


def _meta(request: HttpRequest, *, kiosk: bool) -> tuple[PostMeta, bool]:
    """Where the post came from; (meta, whether the visitor cookie is new)."""
    cookie_uuid = None if kiosk else visitor_uuid_from_request(request)
    visitor_uuid = None if kiosk else (cookie_uuid or uuid.uuid4())
    meta = PostMeta(
        ip_address=request_ip(request),
        user_agent=str(request.headers.get("User-Agent", "")),
        referrer=str(request.headers.get("Referer", "")),
        visitor_uuid=visitor_uuid,
        is_kiosk=kiosk,
        language=translation.get_language() or settings.LANGUAGE_CODE,
    )
    return meta, cookie_uuid is None


def _with_cookie(
    request: HttpRequest, response: HttpResponseBase, submission: Submission
) -> HttpResponseBase:
    """The stored submission's visitor cookie (a double click's second answer sets the same)."""
    if (
        not submission.is_kiosk
        and submission.visitor_uuid is not None
        and submission.status != SubmissionStatus.REJECTED_BOT
        and visitor_uuid_from_request(request) != submission.visitor_uuid
    ):
        set_visitor_cookie_uuid(response, submission.visitor_uuid, secure=request.is_secure())
    return response


# --- the form page -------------------------------------------------------------------------------


def _landing_page_of(request: HttpRequest, form: Form) -> LandingPage | None:
    raw = request.GET.get("lp", "")
    if not raw.isdigit() or len(raw) > 18:
        return None
    return LandingPage.objects.filter(pk=int(raw), form=form, is_published=True).first()


def _is_embedded(request: HttpRequest) -> bool:
    return request.GET.get("embed") == "1"


def _record_view(request: HttpRequest, form: Form, response: HttpResponseBase) -> None:
    """FORM_VIEW for people and bots apart; the visitor cookie set or refreshed (not in kiosk)."""
    address = request_ip(request)
    if admit_hit(client_address=address, scope=VIEW_SCOPE) is Admission.LIMITED:
        return
    bot_kind = bots.classify_user_agent(str(request.headers.get("User-Agent", "")))
    visitor = None
    if not form.kiosk_mode and bot_kind is None:
        visitor, _created = get_or_create_visitor(request)
        set_visitor_cookie(response, visitor, secure=request.is_secure())
    payload: dict[str, Any] = {"kiosk": form.kiosk_mode}
    if bot_kind:
        payload["bot"] = bot_kind
    activity_record(
        type=ActivityType.FORM_VIEW,
        prospect_id=visitor.prospect_id if visitor is not None else None,
        visitor_id=visitor.pk if visitor is not None else None,
        object_type="form",
        object_id=form.pk,
        object_label=form.name,
        payload=payload,
        is_bot=bot_kind is not None,
    )


def _render_form(
    request: HttpRequest,
    form: Form,
    *,
    landing_page: LandingPage | None,
    shown: list[Any],
    data: dict[str, Any] | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> HttpResponseBase:
    context = form_context(
        form=form,
        shown=shown,
        data=data,
        errors=errors,
        landing_page=landing_page,
        embedded=_is_embedded(request),
    )
    context["landing_page"] = landing_page
    context["embedded"] = _is_embedded(request)
    return _public_page(render(request, "forms/public/form.html", context, status=status))


def _success(request: HttpRequest, form: Form, submission: Submission) -> HttpResponseBase:
    url = form.thank_you_url
    if url and is_allowed_redirect(url):
        if _is_embedded(request):
            # Inside an iframe a redirect would load the thank-you page in the frame: the
            # frame asks the embedding page (embed.js) to go there, with a link as fallback.
            response = render(
                request,
                "forms/public/redirect.html",
                {"form": form, "redirect_url": url},
            )
        else:
            response = HttpResponseRedirect(url, status=303)
            response.status_code = 303
    else:
        response = render(
            request,
            "forms/public/thank_you.html",
            {"form": form, "content": thank_you_html(form), "embedded": _is_embedded(request)},
        )
    return _with_cookie(request, _public_page(response), submission)


def _shown_from_token(form: Form, data: dict[str, Any]) -> list[Any] | None:
    token = bot_protection.render_token_load(data.get(bot_protection.TOKEN_FIELD))
    if token is None or token.form_uuid != form.uuid:
        return None
    ids = set(token.shown_field_ids)
    return [item for item in form_fields_active(form) if item.pk in ids]


def _answer_post(
    request: HttpRequest, form: Form, landing_page: LandingPage | None, submission: Submission
) -> HttpResponseBase:
    if submission.status in SUCCESS_STATUSES:
        return _success(request, form, submission)
    if not submission.field_errors:
        # Invalid without field errors: the form was switched off (or deleted) meanwhile.
        return _message(request, _("This form is no longer accepting submissions."), status=410)
    data = dict(submission.raw_data)
    shown = _shown_from_token(form, data) or shown_fields_for(request, form)
    response = _render_form(
        request,
        form,
        landing_page=landing_page,
        shown=shown,
        data=data,
        errors=submission.field_errors,
        status=400,
    )
    return _with_cookie(request, response, submission)


@public
@csrf_exempt
@xframe_options_exempt
def form_page(request: HttpRequest, form_uuid: uuid.UUID) -> HttpResponseBase:
    """``/forms/<uuid>/``: GET shows the form, POST stores and processes a submission."""
    form = Form.objects.filter(uuid=form_uuid).first()
    if form is None:
        return _message(request, _("This form does not exist."), status=404)
    if request.method in ("GET", "HEAD"):
        if not form.is_active:
            return _message(request, _("This form is no longer accepting submissions."), status=410)
        landing_page = _landing_page_of(request, form)
        shown = shown_fields_for(request, form)
        response = _render_form(request, form, landing_page=landing_page, shown=shown)
        if request.method == "GET":
            _record_view(request, form, response)
        return response
    if request.method != "POST":
        response = _message(request, _("Method not allowed."), status=405)
        response["Allow"] = "GET, HEAD, POST"
        return response
    if bot_protection.is_throttled(client_address=request_ip(request)):
        return _too_many(request)
    data = read_post(request)
    if isinstance(data, PostProblem):
        return _message(request, data.message, status=data.status)
    landing_page = _landing_page_of(request, form)
    meta, _new_cookie = _meta(request, kiosk=form.kiosk_mode)
    email_names = frozenset(
        item.input_name for item in form_fields_active(form) if item.prospect_field == "email"
    )
    submission, _created = submission_store(
        kind=SubmissionKind.LANDING_PAGE if landing_page is not None else SubmissionKind.FORM,
        data=data,
        meta=meta,
        form=form,
        landing_page=landing_page,
        email_names=email_names,
    )
    processed = submission_process(submission_id=submission.pk) or submission
    return _answer_post(request, form, landing_page, processed)


# --- embedding -----------------------------------------------------------------------------------


@public
@require_safe
def form_embed_js(request: HttpRequest, form_uuid: uuid.UUID) -> HttpResponseBase:
    """``/forms/<uuid>/embed.js``: inserts the form's iframe and fits its height to the form."""
    form = Form.objects.filter(uuid=form_uuid).first()
    if form is None:
        return HttpResponse(
            "/* mapp: this form does not exist */", status=404, content_type="text/javascript"
        )
    form_url = request.build_absolute_uri(
        reverse("forms_public:form", kwargs={"form_uuid": form.uuid})
    )
    parts = urlsplit(form_url)
    config = {
        "form": str(form.uuid),
        "src": f"{form_url}?embed=1",
        "origin": f"{parts.scheme}://{parts.netloc}",
        "title": form.name,
    }
    script = render(
        request,
        "forms/public/embed.js",
        {"config": json.dumps(config, ensure_ascii=True).replace("</", "<\\/")},
        content_type="text/javascript; charset=utf-8",
    )
    script["Cache-Control"] = "public, max-age=300"
    # Loaded by <script> tags on any site.
    script["Cross-Origin-Resource-Policy"] = "cross-origin"
    return script


# --- form handler --------------------------------------------------------------------------------


def _handler_error(
    request: HttpRequest, handler: FormHandler | None, message: str, *, status: int
) -> HttpResponseBase:
    if handler is not None and handler.error_url and is_allowed_redirect(handler.error_url):
        url = url_with_parameters(
            handler.error_url,
            [("errors", "true"), ("errorMessage", message[:ERROR_MESSAGE_LENGTH])],
        )
        if is_allowed_redirect(url):
            return HttpResponseRedirect(url, status=303)
    return _message(request, message, status=status)


def _forwarded(handler: FormHandler, data: dict[str, Any]) -> list[tuple[str, str]]:
    parameters = []
    for handler_field in handler_fields(handler):
        for value in raw_list(data, handler_field.external_name):
            parameters.append((handler_field.external_name, value[:FORWARD_VALUE_LENGTH]))
    return parameters


def _handler_success(
    request: HttpRequest, handler: FormHandler, submission: Submission
) -> HttpResponseBase:
    url = handler.success_url
    if url and is_allowed_redirect(url):
        if handler.forward_data and submission.status != SubmissionStatus.REJECTED_BOT:
            forwarded = url
            for parameter in _forwarded(handler, submission.raw_data):
                candidate = url_with_parameters(forwarded, [parameter])
                if len(candidate) > FORWARD_MAX_URL_LENGTH:
                    break
                forwarded = candidate
            url = forwarded if is_allowed_redirect(forwarded) else url
        response: HttpResponseBase = HttpResponseRedirect(url, status=303)
    else:
        response = render(
            request,
            "forms/public/thank_you.html",
            {"form": None, "content": thank_you_html(None), "embedded": False},
        )
    return _with_cookie(request, _public_page(response), submission)


def _handler_error_text(submission: Submission) -> str:
    messages = []
    for name, errors in (submission.field_errors or {}).items():
        for message in errors:
            messages.append(message if name == NON_FIELD_ERRORS else f"{name}: {message}")
    return " ".join(messages) or submission.error or _("The submission could not be accepted.")


@public
@csrf_exempt
@xframe_options_exempt
def form_handler_post(request: HttpRequest, handler_uuid: uuid.UUID) -> HttpResponseBase:
    """``/handler/<uuid>``: a customer's own HTML form posts here (Account Engagement style).

    Success: 303 to the success location (with the submitted fields appended if the handler
    forwards data). Failure: 303 to the error location with ``errors=true&errorMessage=…``,
    or a 4xx page saying what is wrong when no error location is set.
    """
    handler = FormHandler.objects.filter(uuid=handler_uuid).first()
    if request.method != "POST":
        response = _message(
            request,
            _("This address receives form posts only (method POST)."),
            status=405 if handler is not None else 404,
        )
        response["Allow"] = "POST"
        return response
    if handler is None:
        return _message(request, _("This form handler does not exist."), status=404)
    if bot_protection.is_throttled(client_address=request_ip(request)):
        return _too_many(request)
    data = read_post(request, legacy_encoding=True)
    if isinstance(data, PostProblem):
        return _handler_error(request, handler, data.message, status=data.status)
    meta, _new_cookie = _meta(request, kiosk=handler.kiosk_mode)
    email_names = frozenset(
        item.external_name
        for item in handler_fields(handler)
        if item.is_email or item.prospect_field == "email"
    )
    submission, _created = submission_store(
        kind=SubmissionKind.FORM_HANDLER,
        data=data,
        meta=meta,
        handler=handler,
        email_names=email_names,
    )
    processed = submission_process(submission_id=submission.pk) or submission
    if processed.status in SUCCESS_STATUSES:
        return _handler_success(request, handler, processed)
    status = 400 if processed.field_errors else 410
    return _with_cookie(
        request,
        _handler_error(request, handler, _handler_error_text(processed), status=status),
        processed,
    )


# --- double opt-in -------------------------------------------------------------------------------


@public
@csrf_exempt
def double_opt_in_confirm_page(request: HttpRequest, token: str) -> HttpResponseBase:
    """``/forms/confirm/<token>``: the link in the confirmation email.

    GET shows a confirm button; the POST it sends records the opt-in. Mail security scanners
    open every link in an email (GET, HEAD) but do not submit forms, so only the person
    confirms. The signed token is the authority (no CSRF cookie: the page may be opened in
    another browser than the form's).
    """
    submission_id = submission_id_from_confirm_token(token)
    if submission_id is None:
        return _message(
            request,
            _("This confirmation link is invalid or has expired. Please fill in the form again."),
            status=400,
            frameable=False,
        )
    if request.method in ("GET", "HEAD"):
        return _public_page(
            render(request, "forms/public/confirm.html", {"token": token, "confirmed": False}),
            frameable=False,
        )
    if request.method != "POST":
        response = _message(request, _("Method not allowed."), status=405, frameable=False)
        response["Allow"] = "GET, HEAD, POST"
        return response
    submission = double_opt_in_confirm(submission_id=submission_id)
    if submission is None:
        return _message(
            request, _("This confirmation link is no longer valid."), status=404, frameable=False
        )
    return _public_page(
        render(request, "forms/public/confirm.html", {"token": token, "confirmed": True}),
        frameable=False,
    )
