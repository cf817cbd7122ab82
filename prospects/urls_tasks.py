"""Task (ToDo) pages (prospects/views_tasks.py), mounted at /tasks/."""

from django.urls import path

from prospects import views_tasks

app_name = "tasks"

urlpatterns = [
    path("", views_tasks.task_mine, name="mine"),
    path("overdue/", views_tasks.task_overdue, name="overdue"),
    path("all/", views_tasks.task_list, name="list"),
    path("new/", views_tasks.task_create_view, name="create"),
    path("<int:task_id>/", views_tasks.task_detail, name="detail"),
    path("<int:task_id>/complete/", views_tasks.task_complete_view, name="complete"),
    path("<int:task_id>/reopen/", views_tasks.task_reopen_view, name="reopen"),
    path("<int:task_id>/cancel/", views_tasks.task_cancel_view, name="cancel"),
]
