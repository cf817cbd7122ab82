from django.urls import path

from scoring import views_page_actions as views

app_name = "page_actions"

urlpatterns = [
    path("", views.page_action_list, name="list"),
    path("new/", views.page_action_edit, name="create"),
    path("<int:page_action_id>/", views.page_action_edit, name="edit"),
    path("<int:page_action_id>/toggle/", views.page_action_toggle, name="toggle"),
    path("<int:page_action_id>/delete/", views.page_action_remove, name="delete"),
]
