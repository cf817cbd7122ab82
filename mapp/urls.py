from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, reverse_lazy

from mapp import views, views_tokens, views_users
from mapp.access import public
from tracking import api as tracking_api

users_patterns = (
    [
        path("", views_users.user_list, name="list"),
        path("new/", views_users.user_create, name="create"),
        path("<int:user_id>/", views_users.user_edit, name="edit"),
        path("<int:user_id>/deactivate/", views_users.user_deactivate, name="deactivate"),
        path("<int:user_id>/reactivate/", views_users.user_reactivate, name="reactivate"),
        path("roles/", views_users.role_list, name="roles"),
        path("roles/<int:role_id>/", views_users.role_edit, name="role_edit"),
        path("audit-log/", views_users.audit_log, name="audit_log"),
    ],
    "users",
)

account_patterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", public(auth_views.LogoutView.as_view()), name="logout"),
    path(
        "password-reset/",
        public(auth_views.PasswordResetView.as_view()),
        name="password_reset",
    ),
    path(
        "password-reset/sent/",
        public(auth_views.PasswordResetDoneView.as_view()),
        name="password_reset_done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        public(
            auth_views.PasswordResetConfirmView.as_view(
                success_url=reverse_lazy("password_reset_complete")
            )
        ),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/",
        public(auth_views.PasswordResetCompleteView.as_view()),
        name="password_reset_complete",
    ),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("language/", views.set_language, name="set_language"),
    path("accounts/", include(account_patterns)),
    path("settings/users/", include(users_patterns)),
    path("settings/status/", views.system_status, name="system_status"),
    path("settings/api-tokens/", views_tokens.api_tokens, name="api_tokens"),
    path(
        "settings/api-tokens/<str:token_key>/revoke/",
        views_tokens.api_token_revoke,
        name="api_token_revoke",
    ),
    path("prospects/import/", include("prospects.urls_import")),
    path("prospects/", include("prospects.urls")),
    path("lists/", include("prospects.urls_lists")),
    path("tasks/", include("prospects.urls_tasks")),
    path("scoring/grading/", include("scoring.urls_grading")),
    path("scoring/hot/", include("scoring.urls_hot")),
    path("scoring/advisor/", include("scoring.urls_advisor")),
    path("scoring/page-actions/", include("scoring.urls_page_actions")),
    path("scoring/decay/", include("scoring.urls_decay")),
    path("scoring/", include("scoring.urls")),
    path("sales/", include("scoring.urls_sales")),
    path("automation/rules/", include("engagement.urls")),
    path("notifications/", include("mapp.urls_notifications")),
    path("", include("forms.urls")),
    path("", include("forms.urls_public")),
    path("", include("emails.urls_public")),
    path("", include("emails.urls_outbox")),
    path("", include("emails.urls")),
    path("", include("emails.urls_reports")),
    path("email/webhooks/", include("emails.urls_webhooks")),
    path("api/v1/", include("prospects.urls_api")),
    path(
        "api/v1/prospects/<int:prospect_id>/identify-token/",
        tracking_api.IdentifyTokenApi.as_view(),
        name="api-prospect-identify-token",
    ),
    path("marketing/", include("tracking.urls_assets")),
    path("", include("tracking.urls_links")),
    path("t/", include("tracking.urls")),
    path("", include("tracking.urls_app")),
    path("admin/", admin.site.urls),
]
