"""The tracking UI: visitor pages under /visitors/ and Settings → Tracking (mounted at the root)."""

from django.urls import path

from tracking import views_visitors

app_name = "visitors"

urlpatterns = [
    path("visitors/", views_visitors.visitor_list, name="list"),
    path("visitors/<int:visitor_id>/", views_visitors.visitor_detail, name="detail"),
    path("settings/tracking/", views_visitors.tracking_settings, name="settings"),
    path(
        "settings/tracking/domains/",
        views_visitors.tracker_domain_create,
        name="domain_create",
    ),
    path(
        "settings/tracking/domains/<int:domain_id>/primary/",
        views_visitors.tracker_domain_primary,
        name="domain_primary",
    ),
    path(
        "settings/tracking/domains/<int:domain_id>/remove/",
        views_visitors.tracker_domain_delete,
        name="domain_delete",
    ),
]
