from django.urls import path

from mapp.views import home

app_name = "advisor"

urlpatterns = [
    path("report/", home, name="report"),
]
