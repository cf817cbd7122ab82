"""The WSGI application: Django, with the tracking hot path in front (tracking/fastpath.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mapp.settings")
django_application = get_wsgi_application()

from tracking.fastpath import TrackingFastPath  # noqa: E402 - needs the configured Django

application = TrackingFastPath(django_application)
