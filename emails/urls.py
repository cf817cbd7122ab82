"""Marketer pages of emails, mounted at the site root (``path("", include("emails.urls"))``):
templates and list emails under /marketing/…, sending domains under /settings/…."""

from django.urls import path

from emails import views

app_name = "emails"

urlpatterns = [
    path("marketing/emails/", views.list_email_list, name="list"),
    path("marketing/emails/new/", views.list_email_create, name="list_email_create"),
    path(
        "marketing/emails/<int:list_email_id>/",
        views.list_email_detail,
        name="list_email_detail",
    ),
    path(
        "marketing/emails/<int:list_email_id>/progress/",
        views.list_email_progress,
        name="list_email_progress",
    ),
    path(
        "marketing/emails/<int:list_email_id>/schedule/",
        views.list_email_schedule,
        name="list_email_schedule",
    ),
    path(
        "marketing/emails/<int:list_email_id>/pause/",
        views.list_email_pause,
        name="list_email_pause",
    ),
    path(
        "marketing/emails/<int:list_email_id>/resume/",
        views.list_email_resume,
        name="list_email_resume",
    ),
    path(
        "marketing/emails/<int:list_email_id>/cancel/",
        views.list_email_cancel,
        name="list_email_cancel",
    ),
    path(
        "marketing/emails/<int:list_email_id>/ab-test/",
        views.list_email_ab_test,
        name="list_email_ab_test",
    ),
    path(
        "marketing/emails/<int:list_email_id>/test-send/",
        views.list_email_test_send,
        name="list_email_test_send",
    ),
    path(
        "marketing/emails/templates/<int:template_id>/test-send/",
        views.template_test_send,
        name="template_test_send",
    ),
    path("marketing/emails/templates/", views.template_list, name="templates"),
    path("marketing/emails/templates/new/", views.template_create, name="template_create"),
    path(
        "marketing/emails/templates/<int:template_id>/",
        views.template_edit,
        name="template_edit",
    ),
    path("settings/sending-domains/", views.domain_list, name="domains"),
    path("settings/sending-domains/new/", views.domain_create, name="domain_create"),
    path("settings/sending-domains/<int:domain_id>/", views.domain_detail, name="domain_detail"),
    path(
        "settings/sending-domains/<int:domain_id>/verify/",
        views.domain_verify,
        name="domain_verify",
    ),
]
