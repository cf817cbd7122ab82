"""The Outbox of `mapp run` without an SMTP server (emails/views_outbox.py)."""

from django.urls import path

from emails import views_outbox

app_name = "outbox"

urlpatterns = [
    path("settings/outbox/", views_outbox.outbox_list, name="list"),
    path("settings/outbox/<str:name>", views_outbox.outbox_message, name="message"),
]
