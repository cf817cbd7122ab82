from django.urls import path

from scoring import views_grading

app_name = "grading"

urlpatterns = [
    path("profiles/", views_grading.profile_list, name="profiles"),
    path("profiles/new/", views_grading.profile_edit, name="profile_create"),
    path("profiles/<int:profile_id>/", views_grading.profile_edit, name="profile_edit"),
    path("profiles/<int:profile_id>/delete/", views_grading.profile_delete, name="profile_delete"),
    path(
        "prospects/<int:prospect_id>/profile/",
        views_grading.prospect_profile_change,
        name="prospect_profile",
    ),
    path(
        "prospects/<int:prospect_id>/criteria/<int:criterion_id>/mark/",
        views_grading.prospect_criterion_mark,
        name="prospect_mark",
    ),
]
