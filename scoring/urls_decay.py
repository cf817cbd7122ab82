from django.urls import path

from mapp.views import home

app_name = "decay"

urlpatterns = [
    path("list/", home, name="list"),
]
