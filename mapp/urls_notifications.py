"""In-app notifications (mapp/views_notifications.py), mounted at /notifications/."""

from django.urls import path

from mapp import views_notifications

app_name = "notifications"

urlpatterns = [
    path("", views_notifications.notification_list, name="list"),
    path("read-all/", views_notifications.notification_mark_all_read, name="mark_all_read"),
    path("unread-count/", views_notifications.notification_unread_badge, name="unread_count"),
    path("<int:notification_id>/", views_notifications.notification_open, name="open"),
]
