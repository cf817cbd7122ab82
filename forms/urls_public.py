"""Public form URLs (no sign-in), plus the staff download of a prospect's consent log.

Included at the root by mapp/urls.py: ``path("", include("forms.urls_public"))``.
"""

from django.urls import path

from forms import views_consent, views_public

app_name = "forms_public"

urlpatterns = [
    path("forms/<uuid:form_uuid>/", views_public.form_page, name="form"),
    path("forms/<uuid:form_uuid>/embed.js", views_public.form_embed_js, name="embed_js"),
    path("forms/confirm/<str:token>", views_public.double_opt_in_confirm_page, name="confirm"),
    path("handler/<uuid:handler_uuid>", views_public.form_handler_post, name="handler"),
    path(
        "forms/consent/<int:prospect_id>.csv",
        views_consent.consent_log_csv,
        name="consent_csv",
    ),
]
