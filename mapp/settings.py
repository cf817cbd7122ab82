"""Django settings for mapp, read from the environment (see mapp/env.py and README.md).

Development (the default) runs with embedded services and generated secrets under ./var/.
Production (``MAPP_ENV=production``) requires every deployment-specific value to be set and
refuses to start without it.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _
from kombu import Queue

from mapp.env import get_bool, get_from_env, get_int, get_list, is_production
from mapp.hosts import AllowedHosts

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(get_from_env("MAPP_VAR_DIR", str(BASE_DIR / "var")))

PRODUCTION = is_production()
DEBUG = get_bool("DEBUG", default=False)


def _development_secret_key() -> str:
    """A per-checkout secret kept in var/ (never committed), so sessions survive restarts."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = get_from_env("SECRET_KEY", default=None) or (
    get_from_env("SECRET_KEY") if PRODUCTION else _development_secret_key()
)

# Tracker domains added in the app are admitted too (mapp/hosts.py, tracking/apps.py).
ALLOWED_HOSTS = AllowedHosts(
    get_list("ALLOWED_HOSTS", dev_default=["localhost", "127.0.0.1", "[::1]"])
)
CSRF_TRUSTED_ORIGINS = get_list("CSRF_TRUSTED_ORIGINS", default=[])
# The customer's websites a form or form handler may send visitors back to (thank-you and
# error pages); ".example.co.jp" admits its sub-domains. Tracker domains and SITE_URL always are.
FORMS_ALLOWED_REDIRECT_HOSTS = get_list("FORMS_ALLOWED_REDIRECT_HOSTS", default=[])
# The public base URL of the app: links in mails (password reset, digests) are built from it.
SITE_URL = get_from_env("SITE_URL", dev_default="http://127.0.0.1:8000").rstrip("/")

# --- Services -------------------------------------------------------------------------------
# Outside production a missing DATABASE_URL / REDIS_URL falls back to what the embedded
# development services (mapp/devservices.py) last wrote to var/services.env.
_dev_services: dict[str, str] = {}
if not PRODUCTION:
    from mapp.devservices import read_services_env

    _dev_services = read_services_env(VAR_DIR)

DATABASE_URL = get_from_env("DATABASE_URL", default=None) or _dev_services.get("DATABASE_URL")
if not DATABASE_URL:
    DATABASE_URL = get_from_env(
        "DATABASE_URL",
        dev_default="postgres://postgres@127.0.0.1:5432/mapp",
    )
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=get_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["TEST"] = {"NAME": get_from_env("TEST_DATABASE_NAME", "test_mapp")}

REDIS_URL = get_from_env("REDIS_URL", default=None) or _dev_services.get("REDIS_URL")
if not REDIS_URL:
    REDIS_URL = get_from_env("REDIS_URL", dev_default="redis://127.0.0.1:6379/0")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "mapp",
    }
}

# --- Applications ---------------------------------------------------------------------------
INSTALLED_APPS = [
    "mapp.apps.MappAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "knox",
    "django_celery_beat",
    "django_htmx",
    "anymail",
    "axes",
    "mapp.apps.MappConfig",
    "prospects.apps.ProspectsConfig",
    "tracking.apps.TrackingConfig",
    "forms.apps.FormsConfig",
    "emails.apps.EmailsConfig",
    "scoring.apps.ScoringConfig",
    "engagement.apps.EngagementConfig",
    "campaigns.apps.CampaignsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
    "mapp.access.AccessMiddleware",
]

ROOT_URLCONF = "mapp.urls"
WSGI_APPLICATION = "mapp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "mapp.context_processors.navigation",
            ],
        },
    },
]

# --- Users, authentication, login throttling ------------------------------------------------
AUTH_USER_MODEL = "mapp.User"
AUTHENTICATION_BACKENDS = [
    # django-axes must come first: it refuses a locked-out username/IP before any check.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AXES_FAILURE_LIMIT = get_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=get_int("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Django's login form posts the email address as "username" (axes would look for "email").
AXES_USERNAME_FORM_FIELD = "username"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_IPWARE_PROXY_COUNT = get_int("TRUSTED_PROXY_COUNT", 0)
AXES_VERBOSE = False
# Number of reverse proxies in front of the app whose X-Forwarded-For may be trusted (audit IPs).
TRUSTED_PROXY_COUNT = AXES_IPWARE_PROXY_COUNT

SESSION_COOKIE_AGE = get_int("SESSION_COOKIE_AGE", 60 * 60 * 12)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "ja"
LANGUAGES = [("ja", _("Japanese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = get_from_env("TIME_ZONE", "Asia/Tokyo")
USE_I18N = True
USE_TZ = True
LANGUAGE_COOKIE_NAME = "mapp_language"
LANGUAGE_COOKIE_AGE = 60 * 60 * 24 * 365
LANGUAGE_COOKIE_SAMESITE = "Lax"

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(get_from_env("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
MEDIA_ROOT = Path(get_from_env("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "media/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Email (password reset now; list emails use their own pipeline later) -------------------
EMAIL_HOST = get_from_env("EMAIL_HOST", default="")
EMAIL_PORT = get_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = get_from_env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = get_from_env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = get_bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = 30
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
elif PRODUCTION:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = get_from_env("EMAIL_HOST")
else:
    # Development without an SMTP server: mails land as files in var/mail to be read.
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "mail")
DEFAULT_FROM_EMAIL = get_from_env("DEFAULT_FROM_EMAIL", dev_default="mapp@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_USE_SSL = get_bool("EMAIL_USE_SSL", default=False)

# --- List emails (emails/) ------------------------------------------------------------------
# `mapp run` without EMAIL_HOST keeps every sent message here (mapp/mailcatcher.py, Outbox page).
OUTBOX_DIR = Path(get_from_env("OUTBOX_DIR", str(VAR_DIR / "outbox")))
OUTBOX_ENABLED = get_bool("MAPP_OUTBOX", default=False)  # set by `mapp run` with the catcher
# DKIM private keys live in files here (0600), never in the database.
DKIM_KEY_DIR = Path(get_from_env("DKIM_KEY_DIR", str(VAR_DIR / "dkim")))
# The mailto: of List-Unsubscribe; empty: unsubscribe@<sending domain>.
EMAIL_UNSUBSCRIBE_MAILBOX = get_from_env("EMAIL_UNSUBSCRIBE_MAILBOX", default="")
# Account-wide send caps (0: none), and how many batches of one send run at once.
EMAIL_SEND_HOURLY_CAP = get_int("EMAIL_SEND_HOURLY_CAP", 0) or None
EMAIL_SEND_DAILY_CAP = get_int("EMAIL_SEND_DAILY_CAP", 0) or None
EMAIL_SEND_PARALLELISM = get_int("EMAIL_SEND_PARALLELISM", 2)
# The host whose SPF record lists the sending servers, for the SPF record a domain is told to
# publish (empty: "v=spf1 mx ~all"); name servers that "Verify now" asks instead of the system's.
EMAIL_SPF_INCLUDE = get_from_env("EMAIL_SPF_INCLUDE", default="")
EMAIL_DNS_NAMESERVERS = get_list("EMAIL_DNS_NAMESERVERS", default=[])
EMAIL_DNS_PORT = get_int("EMAIL_DNS_PORT", 53)
# A claim older than this belongs to a dead worker and goes back to the queue (emails.sending).
EMAIL_STALE_CLAIM_MINUTES = get_int("EMAIL_STALE_CLAIM_MINUTES", 10)
# Guard rails (Gmail/Yahoo bulk-sender rules): a send pauses itself when, after at least
# EMAIL_GUARD_MIN_SENT messages, its complaint or hard-bounce rate passes these (per mille).
EMAIL_COMPLAINT_RATE_PAUSE_PER_MILLE = get_int("EMAIL_COMPLAINT_RATE_PAUSE_PER_MILLE", 3)
EMAIL_HARD_BOUNCE_RATE_PAUSE_PER_MILLE = get_int("EMAIL_HARD_BOUNCE_RATE_PAUSE_PER_MILLE", 50)
EMAIL_GUARD_MIN_SENT = get_int("EMAIL_GUARD_MIN_SENT", 100)
# Envelope sender (Return-Path) of list emails, where bounces go; empty: the From address.
# Point it at an address whose MX reaches mapp's inbound SMTP endpoint (`manage.py inbound_smtp`).
EMAIL_RETURN_PATH = get_from_env("EMAIL_RETURN_PATH", default="")
# Inbound SMTP (emails/inbound.py, `manage.py inbound_smtp`, started by `mapp run`): bounces,
# feedback-loop complaints and List-Unsubscribe mails. Production: 0.0.0.0 and port 25 (or a
# forward) on the return-path domain's MX.
INBOUND_SMTP_HOST = get_from_env("INBOUND_SMTP_HOST", default="127.0.0.1")
INBOUND_SMTP_PORT = get_int("INBOUND_SMTP_PORT", 2525)
INBOUND_SMTP_MAX_MESSAGE_BYTES = get_int("INBOUND_SMTP_MAX_MESSAGE_BYTES", 10 * 1024 * 1024)
INBOUND_SMTP_MAILBOXES = get_list("INBOUND_SMTP_MAILBOXES", default=[])  # e.g. the FBL address
# ESP webhooks (django-anymail) at /email/webhooks/<esp>/tracking/: basic-auth "user:pass";
# without a secret the webhooks answer 503 rather than accept anyone's posts.
_mailgun_key = get_from_env("MAILGUN_WEBHOOK_SIGNING_KEY", default="")
ANYMAIL = {
    "WEBHOOK_SECRET": get_list("ANYMAIL_WEBHOOK_SECRET", default=[]),
    # never "": anyone could sign with an empty key
    **({"MAILGUN_WEBHOOK_SIGNING_KEY": _mailgun_key} if _mailgun_key else {}),
}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = get_from_env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = get_from_env("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = timedelta(hours=6)
# A task is acknowledged only after it ran, and goes back to the queue if its worker dies, so
# tasks must be idempotent (ARCHITECTURE.md). visibility_timeout bounds how long a message held
# by a dead worker stays invisible; it must exceed the longest hard time limit.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = get_int("CELERY_TASK_SOFT_TIME_LIMIT", 5 * 60)
CELERY_TASK_TIME_LIMIT = get_int("CELERY_TASK_TIME_LIMIT", 6 * 60)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 60 * 60}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_QUEUE_NAMES = ("default", "sends", "tracking", "engine")
CELERY_TASK_QUEUES = [Queue(name) for name in CELERY_QUEUE_NAMES]
# Routed by task name (each app names its tasks "<app>.<task>"), so a busy queue (a large send,
# a tracking surge) never delays another app's work.
CELERY_TASK_ROUTES = {
    "emails.*": {"queue": "sends"},
    "tracking.*": {"queue": "tracking"},
    "engagement.*": {"queue": "engine"},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_TASK_ALWAYS_EAGER = get_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
DJANGO_CELERY_BEAT_TZ_AWARE = True

# Periodic tasks stored in the database (django-celery-beat), created once by
# ``manage.py sync_periodic_tasks`` and then editable in Django admin.
HEARTBEAT_INTERVAL_SECONDS = get_int("HEARTBEAT_INTERVAL_SECONDS", 30)
MAPP_PERIODIC_TASKS = [
    {
        "name": "mapp heartbeat",
        "task": "mapp.tasks.heartbeat",
        "every_seconds": HEARTBEAT_INTERVAL_SECONDS,
        "description": "Proves that Celery beat and a worker are alive (see /healthz).",
    },
    {
        "name": "refresh dynamic lists",
        "task": "prospects.refresh_all_dynamic_lists",
        "every_seconds": 60 * 60,
        "description": "Full refresh of every dynamic list (relative dates move with time).",
    },
    {
        "name": "drain tracking hits",
        "task": "tracking.drain_hits",
        "every_seconds": 60,
        "description": "Stores queued tracking hits if no drain was requested (a safety net).",
    },
    {
        "name": "retry failed form submissions",
        "task": "forms.retry_failed_submissions",
        "every_seconds": 60,
        "description": (
            "Processes again form submissions whose processing failed (with back-off) "
            "or whose request died."
        ),
    },
    {
        "name": "list email dispatcher",
        "task": "emails.dispatch",
        "every_seconds": 60,
        "description": (
            "Starts due list emails, retries deferred recipients, reclaims claims of dead "
            "workers, marks finished sends."
        ),
    },
    {
        "name": "re-verify sending domains",
        "task": "emails.reverify_domains",
        "every_seconds": 60 * 60,
        "description": (
            "Checks each sending domain's DKIM, SPF and DMARC again once a day (an hour later "
            "after a DNS failure) and tells administrators when a verified domain breaks."
        ),
    },
    {
        "name": "daily HOT-lead digests",
        "task": "scoring.send_hot_digests",
        "every_seconds": 15 * 60,
        "description": (
            "Once the account's digest hour has passed, mails each user the HOT leads that are "
            "new since their last digest (once per user and day)."
        ),
    },
    {
        "name": "HOT status sweep",
        "task": "scoring.evaluate_hot_all",
        "every_seconds": 60 * 60,
        "description": "Re-evaluates every prospect's HOT status (criteria that move with time).",
    },
    {
        "name": "score decay",
        "task": "scoring.apply_score_decay",
        "every_seconds": 60 * 60,
        "description": "Applies the active score decay rules to prospects without activity.",
    },
    {
        "name": "automation rule sweep",
        "task": "engagement.sweep_automation_rules",
        "every_seconds": 60 * 60,
        "description": (
            "Evaluates every running automation rule over all prospects (criteria that move "
            "with time, such as no activity for 365 days)."
        ),
    },
    {
        "name": "deliver missed activities",
        "task": "tracking.sweep_undelivered",
        "every_seconds": 5 * 60,
        "description": "Delivers recent activities that no delivery task handed to a consumer.",
    },
    {
        "name": "activity partitions",
        "task": "tracking.ensure_activity_partitions",
        "every_seconds": 24 * 60 * 60,
        "description": "Creates the next months' partitions of the activity table.",
    },
    {
        "name": "anonymous activity retention",
        "task": "tracking.retention",
        "every_seconds": 24 * 60 * 60,
        "description": "Removes anonymous visitors' activity older than 180 days.",
    },
    {
        "name": "mailable prospect limit check",
        "task": "prospects.check_mailable_limit",
        "every_seconds": 24 * 60 * 60,
        "description": "Warns administrators when mailable prospects exceed the account limit.",
    },
]

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Machine clients: "Authorization: Token <token>" (django-rest-knox stores only a hash;
        # tokens are made on the API tokens page). First, so anonymous calls get 401.
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["mapp.access.ModulePermission"],
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": "600/minute", "anon": "60/minute"},
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=get_int("API_TOKEN_DAYS", 90)),
    "TOKEN_LIMIT_PER_USER": 10,
    "AUTO_REFRESH": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "mapp API",
    "DESCRIPTION": "Prospects, lists and tasks. Sales users see only their assigned prospects.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from drf-spectacular-sidecar: served by mapp, no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Security -------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    SECURE_SSL_REDIRECT = get_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    LANGUAGE_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = get_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = get_bool("SECURE_HSTS_PRELOAD", default=False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading commits the whole domain to https for years: opted into per deployment.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": get_from_env("LOG_LEVEL", "INFO")},
    "loggers": {"axes": {"level": "WARNING"}},
}

# Administrator created by ``manage.py ensure_admin`` on first start (README: First login).
MAPP_ADMIN_EMAIL = get_from_env("MAPP_ADMIN_EMAIL", default="admin@example.com")
MAPP_ADMIN_PASSWORD = get_from_env("MAPP_ADMIN_PASSWORD", default="")

# Outside production, whitenoise serves static files straight from the app folders.
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = not PRODUCTION
