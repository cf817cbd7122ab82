"""Staff download of one prospect's consent log (CSV, formula-safe)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

from forms.consent import consent_records_csv
from mapp.access import access_required, request_user
from mapp.models import Level, Module
from prospects.selectors import prospect_get_for_user


@access_required(Module.PROSPECTS, read_level=Level.VIEW)
@require_safe
def consent_log_csv(request: HttpRequest, prospect_id: int) -> HttpResponse:
    """The prospect's opt-ins and opt-outs with their evidence; 404 outside the user's scope."""
    prospect = prospect_get_for_user(user=request_user(request), prospect_id=prospect_id)
    # A byte-order mark so Excel opens the UTF-8 file with Japanese intact.
    body = "\ufeff" + consent_records_csv(prospect)
    response = HttpResponse(body.encode("utf-8"), content_type="text/csv; charset=utf-8")
    filename = f"consent-{prospect.pk}-{timezone.localdate():%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store, private"
    response["X-Content-Type-Options"] = "nosniff"
    return response
