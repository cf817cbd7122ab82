from django.urls import path

from prospects import views

app_name = "prospects"

urlpatterns = [
    path("", views.prospect_list, name="list"),
    path("new/", views.prospect_create, name="create"),
    path("bulk/", views.prospect_bulk, name="bulk"),
    path("<int:prospect_id>/", views.prospect_detail, name="detail"),
    path("<int:prospect_id>/edit/", views.prospect_edit, name="edit"),
    path("<int:prospect_id>/merge/", views.prospect_merge, name="merge"),
]
