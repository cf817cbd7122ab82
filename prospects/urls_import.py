"""Import and export pages (prospects/views_import.py)."""

from django.urls import path

from prospects import views_import

app_name = "prospects_import"

urlpatterns = [
    path("", views_import.import_list, name="list"),
    path("new/", views_import.import_upload, name="upload"),
    path("<int:job_id>/", views_import.import_detail, name="detail"),
    path("<int:job_id>/mapping/", views_import.import_mapping, name="mapping"),
    path("<int:job_id>/progress/", views_import.import_progress, name="progress"),
    path("<int:job_id>/rejected.csv", views_import.import_rejected_download, name="rejected"),
    path("export/", views_import.export_create, name="export"),
    path("export/<int:job_id>/", views_import.export_detail, name="export_detail"),
    path("export/<int:job_id>/progress/", views_import.export_progress, name="export_progress"),
    path("export/<int:job_id>/download/", views_import.export_download, name="export_download"),
]
