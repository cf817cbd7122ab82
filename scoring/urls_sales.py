from django.urls import path

from mapp.views import home

app_name = "sales"

urlpatterns = [
    path("hot_leads/", home, name="hot_leads"),
    path("overdue_tasks/", home, name="overdue_tasks"),
    path("manager/", home, name="manager"),
]
