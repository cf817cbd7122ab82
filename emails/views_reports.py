"""The report page of a list email (numbers from ``emails.reports``); Marketing VIEW reads it."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from emails import reports
from emails.models import ListEmail
from mapp.access import access_required
from mapp.models import Module


@access_required(Module.MARKETING)
@require_safe
def list_email_report(request: HttpRequest, list_email_id: int) -> HttpResponse:
    list_email = get_object_or_404(ListEmail.objects.select_related("ab_winner"), pk=list_email_id)
    report = reports.list_email_report(list_email)
    return render(
        request,
        "emails/report.html",
        {
            "list_email": list_email,
            "report": report,
            "sections": reports.report_rows(report),
            "chart": reports.hour_chart_svg(report.timeline) if report.timeline else "",
            "active_hours": [hour for hour in report.timeline if hour.opens or hour.clicks],
            "timeline_hours": reports.TIMELINE_HOURS,
        },
    )
