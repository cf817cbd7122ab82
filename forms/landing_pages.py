"""Landing pages: saving and publishing them, rendering them, and the public page /lp/<slug>.

The marketer's content is a Jinja2 template rendered by the one sandbox of the app
(:mod:`mapp.templating`: autoescaped merge fields from a documented set, no attribute tricks,
bounded loops) and then passed through the HTML sanitiser, on the public page as in the in-app
preview. Unlike list emails, a landing page is served by the application itself (on a tracker
domain, or on the app's own host when none is set up), so a ``<script>`` in its content would
run with the session of a signed-in administrator who opens it: a Marketing user could act as
them. Styling is done with inline styles and the layout's classes instead. The layout around
the content is a Django template (templates/forms/landing_page.html); the form comes from
``forms.public_render`` and posts to the form's URL with ``?lp=<id>``, where submissions are
stored and processed (and recorded as landing page successes).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db.models import F
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from forms.models import Form, LandingPage
from forms.public_render import landing_page_form_html
from mapp.access import public
from mapp.services import audit_log_record
from mapp.templating import (
    MergeContext,
    TemplateError,
    merge_field_catalogue,
    render_marketer_template,
    sanitize_html,
)
from prospects.models import Prospect
from tracking import bots, links
from tracking.models import ActivityType, TrackingSettings, Visitor
from tracking.services import activity_record
from tracking.views_visitors import tracker_base_url
from tracking.visitor_cookie import (
    get_or_create_visitor,
    request_ip,
    set_visitor_cookie,
    visitor_uuid_from_request,
)

if TYPE_CHECKING:
    from mapp.models import User

logger = logging.getLogger(__name__)

LAYOUT_TEMPLATE = "forms/landing_page.html"
RATE_LIMIT_SCOPE = "landing_page"


def public_url(landing_page: LandingPage, base_url: str | None = None) -> str:
    """Where the page is published: on the primary tracker domain, else the app's host
    (``base_url``: that base, when the caller already has it, as a list page does)."""
    return (base_url or tracker_base_url()) + reverse(
        "forms:landing_page_public", kwargs={"slug": landing_page.slug}
    )


def merge_field_menu() -> list[dict[str, Any]]:
    """The merge fields the editor's insert menu offers, grouped: [{"group", "fields": [{"tag",
    "label"}]}] in registration order."""
    groups: dict[str, list[dict[str, str]]] = {}
    for merge_field in merge_field_catalogue():
        groups.setdefault(str(merge_field.group), []).append(
            {"tag": merge_field.placeholder, "label": str(merge_field.label)}
        )
    return [{"group": group, "fields": fields} for group, fields in groups.items()]


# --- writes --------------------------------------------------------------------------------------


def landing_page_save(
    *, actor: User, landing_page: LandingPage | None, data: dict[str, Any]
) -> LandingPage:
    """Create or update a landing page from the cleaned editor form (content already validated).

    A published page stays published: the change is live at once, like Account Engagement.
    """
    values = {
        "name": data["name"],
        "slug": data["slug"],
        "title": data["title"],
        "meta_description": data.get("meta_description") or "",
        "layout": data["layout"],
        "form": data.get("form"),
        "content": data.get("content") or "",
    }
    if landing_page is None:
        landing_page = LandingPage.objects.create(created_by=actor, **values)
        audit_log_record(actor=actor, action="landing_page.create", target=landing_page)
        return landing_page
    for name, value in values.items():
        setattr(landing_page, name, value)
    landing_page.save(update_fields=[*values, "updated_at"])
    audit_log_record(actor=actor, action="landing_page.update", target=landing_page)
    return landing_page


# --- rendering -----------------------------------------------------------------------------------


def content_html(content: str, context: MergeContext) -> SafeString:
    """The marketer's content rendered in the sandbox and sanitised. Raises TemplateError."""
    rendered = render_marketer_template(content, context)
    return mark_safe(sanitize_html(rendered))  # noqa: S308 - sanitised by nh3


def landing_page_preview_html(
    *, title: str, layout: str, content: str, meta_description: str, form: Form | None
) -> str:
    """The whole page with the catalogue's example values, for the in-app sandboxed frame.

    The form is shown as a placeholder (the preview frame runs nothing and posts nothing).
    Raises ValidationError with the sandbox's message when the content does not render.
    """
    try:
        body = content_html(content, MergeContext(preview=True))
    except TemplateError as error:
        raise ValidationError(str(error)) from error
    return render_to_string(
        LAYOUT_TEMPLATE,
        {
            "title": title,
            "layout": layout,
            "meta_description": meta_description,
            "content": body,
            "form": form,
            "form_html": "",
            "is_preview": True,
        },
    )


def landing_page_csp(tracker_url: str) -> str:
    """Scripts only from this host and the tracker (the sanitised content has none); inline
    style attributes allowed (the sanitiser keeps safe ones); posts only to this host."""
    return (
        f"default-src 'self'; script-src 'self' {tracker_url}; "
        f"style-src 'self' 'unsafe-inline'; img-src 'self' {tracker_url} https: data:; "
        f"connect-src 'self' {tracker_url}; form-action 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )


def _visitor_for(
    request: HttpRequest, *, bot_kind: str | None, kiosk: bool
) -> tuple[Visitor | None, bool]:
    """The visitor to attribute the view to, and whether to (re)set their cookie.

    Bots and kiosk pages are nobody's; without a cookie, a visitor is created only where the
    tracking settings allow it without consent (the tracking script asks for consent itself).
    """
    if bot_kind is not None or kiosk:
        return None, False
    if visitor_uuid_from_request(request) is not None:
        visitor, _created = get_or_create_visitor(request)
        return visitor, True
    settings_row = TrackingSettings.load()
    if settings_row.require_consent:
        return None, False
    if settings_row.honour_do_not_track and request.headers.get("DNT") == "1":
        return None, False
    visitor, _created = get_or_create_visitor(request)
    return visitor, True


def _known_prospect(visitor: Visitor | None) -> Prospect | None:
    if visitor is None or visitor.prospect_id is None:
        return None
    return Prospect.objects.filter(pk=visitor.prospect_id).first()


def landing_page_view_record(
    *, landing_page: LandingPage, visitor: Visitor | None, bot_kind: str | None
) -> None:
    """One LANDING_PAGE_VIEW activity (bots flagged, kept out of reports) and the counter."""
    if bot_kind is None:
        LandingPage.objects.filter(pk=landing_page.pk).update(view_count=F("view_count") + 1)
    activity_record(
        type=ActivityType.LANDING_PAGE_VIEW,
        prospect_id=visitor.prospect_id if visitor is not None else None,
        visitor_id=visitor.pk if visitor is not None else None,
        object_type="landing_page",
        object_id=landing_page.pk,
        object_label=landing_page.name,
        payload={"bot": bot_kind} if bot_kind else {"slug": landing_page.slug},
        is_bot=bot_kind is not None,
    )


@public
@require_safe
def landing_page_public(request: HttpRequest, slug: str) -> HttpResponse:
    """``/lp/<slug>``: the published page, personalised for a known visitor; 404 otherwise."""
    landing_page = (
        LandingPage.objects.select_related("form").filter(slug=slug, is_published=True).first()
    )
    if landing_page is None:
        raise Http404(_("This page does not exist."))
    bot_kind = bots.classify_user_agent(request.headers.get("User-Agent", "")[:500])
    kiosk = landing_page.form is not None and landing_page.form.kiosk_mode
    visitor, set_cookie = _visitor_for(request, bot_kind=bot_kind, kiosk=kiosk)
    prospect = _known_prospect(visitor)
    try:
        body = content_html(landing_page.content, MergeContext(prospect=prospect))
    except TemplateError:
        # Validated when saved and published; a runtime limit (a loop too long for this
        # prospect's data) must not take the page down: it shows without the content.
        logger.warning("landing page %s content failed to render", landing_page.pk, exc_info=True)
        body = mark_safe("")
    if request.method == "GET" and not links.is_rate_limited(
        scope=RATE_LIMIT_SCOPE, client_address=request_ip(request)
    ):
        landing_page_view_record(landing_page=landing_page, visitor=visitor, bot_kind=bot_kind)
    base_url = tracker_base_url()
    response = render(
        request,
        LAYOUT_TEMPLATE,
        {
            "title": landing_page.title,
            "layout": landing_page.layout,
            "meta_description": landing_page.meta_description,
            "content": body,
            "form": landing_page.form,
            "form_html": landing_page_form_html(request=request, landing_page=landing_page),
            "is_preview": False,
            "tracker_base_url": base_url,
            "use_tracking": not kiosk,
        },
    )
    # Personalised for the visitor: never stored by a shared cache.
    response["Cache-Control"] = "private, no-store"
    response["Content-Security-Policy"] = landing_page_csp(base_url)
    if set_cookie and visitor is not None:
        set_visitor_cookie(response, visitor, secure=request.is_secure())
    return response
