from django.urls import path

from engagement import views

app_name = "automation"

urlpatterns = [
    path("", views.rule_list, name="list"),
    path("new/", views.rule_create, name="create"),
    path("<int:rule_id>/", views.rule_detail, name="detail"),
    path("<int:rule_id>/edit/", views.rule_edit, name="edit"),
    path("<int:rule_id>/resume/", views.rule_resume, name="resume"),
    path("<int:rule_id>/pause/", views.rule_pause, name="pause"),
    path("<int:rule_id>/delete/", views.rule_delete, name="delete"),
]
