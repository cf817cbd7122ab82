"""List email reports, mounted at the site root: ``path("", include("emails.urls_reports"))``."""

from django.urls import path

from emails import views_reports

app_name = "email_reports"

urlpatterns = [
    path(
        "marketing/emails/<int:list_email_id>/report/",
        views_reports.list_email_report,
        name="list_email_report",
    ),
]
