from django.urls import path

from scoring import views

app_name = "scoring"

urlpatterns = [
    path("", views.rule_list, name="rules"),
    path("new/", views.rule_edit, name="rule_create"),
    path("<int:rule_id>/", views.rule_edit, name="rule_edit"),
    path("<int:rule_id>/delete/", views.rule_delete, name="rule_delete"),
]
