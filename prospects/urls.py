from django.urls import path

from prospects import views

app_name = "prospects"

urlpatterns = [
    path("", views.prospect_list, name="list"),
    path("<int:prospect_id>/", views.prospect_detail, name="detail"),
]
