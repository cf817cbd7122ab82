"""Marketing pages for custom redirects and tracked files (mounted under /marketing/)."""

from django.urls import path

from tracking import views_assets

app_name = "assets"

urlpatterns = [
    path("redirects/", views_assets.redirect_list, name="redirects"),
    path("redirects/new/", views_assets.redirect_create, name="redirect_create"),
    path("redirects/<int:redirect_id>/", views_assets.redirect_edit, name="redirect_edit"),
    path("files/", views_assets.file_list, name="files"),
    path("files/upload/", views_assets.file_upload, name="file_upload"),
]
