from django.urls import path

from mapp.views import home

app_name = "page_actions"

urlpatterns = [
    path("list/", home, name="list"),
]
