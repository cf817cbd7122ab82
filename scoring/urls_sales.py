"""Sales-side pages (scoring/views_sales.py), mounted at /sales/."""

from django.urls import path

from scoring import views_sales

app_name = "sales"

urlpatterns = [
    path("hot-leads/", views_sales.hot_leads, name="hot_leads"),
    path("overdue-tasks/", views_sales.overdue_tasks, name="overdue_tasks"),
    path("manager/", views_sales.manager, name="manager"),
]
