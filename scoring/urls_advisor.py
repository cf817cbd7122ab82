"""The HOT threshold advisor (scoring/views_advisor.py), mounted at /scoring/advisor/."""

from django.urls import path

from scoring import views_advisor

app_name = "advisor"

urlpatterns = [
    path("", views_advisor.advisor_report_view, name="report"),
]
