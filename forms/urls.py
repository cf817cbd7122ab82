"""Marketer pages of forms, form handlers and landing pages, and the public landing page.

Mounted at the site root (``path("", include("forms.urls"))``): the marketer pages live under
/marketing/…, published landing pages at /lp/<slug>.
"""

from django.urls import path

from forms import landing_pages, views

app_name = "forms"

urlpatterns = [
    path("marketing/forms/", views.form_list, name="list"),
    path("marketing/forms/new/", views.form_create, name="create"),
    path("marketing/forms/<int:form_id>/", views.form_edit, name="edit"),
    path("marketing/forms/<int:form_id>/report/", views.form_report, name="report"),
    path("marketing/forms/<int:form_id>/submissions.csv", views.form_csv, name="csv"),
    path("marketing/form-handlers/", views.handler_list, name="handlers"),
    path("marketing/form-handlers/new/", views.handler_create, name="handler_create"),
    path("marketing/form-handlers/<int:handler_id>/", views.handler_edit, name="handler_edit"),
    path(
        "marketing/form-handlers/<int:handler_id>/report/",
        views.handler_report,
        name="handler_report",
    ),
    path(
        "marketing/form-handlers/<int:handler_id>/submissions.csv",
        views.handler_csv,
        name="handler_csv",
    ),
    path("marketing/landing-pages/", views.landing_page_list, name="landing_pages"),
    path("marketing/landing-pages/new/", views.landing_page_create, name="landing_page_create"),
    path(
        "marketing/landing-pages/<int:landing_page_id>/",
        views.landing_page_edit,
        name="landing_page_edit",
    ),
    path(
        "marketing/landing-pages/<int:landing_page_id>/preview/",
        views.landing_page_preview,
        name="landing_page_preview",
    ),
    path(
        "marketing/landing-pages/<int:landing_page_id>/publish/",
        views.landing_page_publish,
        name="landing_page_publish",
    ),
    path(
        "marketing/landing-pages/<int:landing_page_id>/unpublish/",
        views.landing_page_unpublish,
        name="landing_page_unpublish",
    ),
    path(
        "marketing/landing-pages/<int:landing_page_id>/report/",
        views.landing_page_report,
        name="landing_page_report",
    ),
    path(
        "marketing/landing-pages/<int:landing_page_id>/submissions.csv",
        views.landing_page_csv,
        name="landing_page_csv",
    ),
    path("lp/<slug:slug>", landing_pages.landing_page_public, name="landing_page_public"),
]
