from django.urls import path

from scoring import views_hot

app_name = "hot"

urlpatterns = [
    path("", views_hot.hot_settings, name="settings"),
]
