"""Public link endpoints (no sign-in): email open pixel and click, custom redirects, files."""

from django.urls import path

from tracking import views_links

app_name = "links"

urlpatterns = [
    path("t/o/<str:token>.gif", views_links.open_pixel, name="open_pixel"),
    path("t/c/<str:token>", views_links.click, name="click"),
    path("r/<slug:slug>", views_links.custom_redirect, name="custom_redirect"),
    path("f/<slug:slug>/<str:filename>", views_links.file_download, name="file"),
]
