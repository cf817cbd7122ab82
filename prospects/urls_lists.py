from django.urls import path

from prospects import views_lists

app_name = "lists"

urlpatterns = [
    path("", views_lists.list_index, name="index"),
    path("new/", views_lists.list_create, name="create"),
    path("criteria-preview/", views_lists.criteria_preview, name="criteria_preview"),
    path("<int:list_id>/", views_lists.list_detail, name="detail"),
    path("<int:list_id>/edit/", views_lists.list_edit, name="edit"),
    path("<int:list_id>/refresh/", views_lists.list_refresh, name="refresh"),
    path("<int:list_id>/delete/", views_lists.list_delete, name="delete"),
]
