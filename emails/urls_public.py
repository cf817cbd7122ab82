"""Public email URLs. Included at the root by mapp/urls.py:
``path("", include("emails.urls_public"))``."""

from django.urls import path

from emails import views_public

app_name = "emails_public"

urlpatterns = [
    path("email/unsubscribe/<str:token>", views_public.unsubscribe, name="unsubscribe"),
]
