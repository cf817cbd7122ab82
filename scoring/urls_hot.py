from django.urls import path

from mapp.views import home

app_name = "hot"

urlpatterns = [
    path("settings/", home, name="settings"),
]
