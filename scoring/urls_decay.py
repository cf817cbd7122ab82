from django.urls import path

from scoring import views_decay as views

app_name = "decay"

urlpatterns = [
    path("", views.decay_rule_list, name="list"),
    path("new/", views.decay_rule_edit, name="create"),
    path("<int:rule_id>/", views.decay_rule_edit, name="edit"),
    path("<int:rule_id>/delete/", views.decay_rule_remove, name="delete"),
]
