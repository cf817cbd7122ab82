from django.urls import path

from mapp.views import home

app_name = "automation"

urlpatterns = [
    path("list/", home, name="list"),
]
