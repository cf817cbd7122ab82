from django.urls import path

from mapp.views import home

app_name = "grading"

urlpatterns = [
    path("profiles/", home, name="profiles"),
]
