"""mapp: self-hosted B2B marketing automation."""

from mapp.celery import app as celery_app

__all__ = ["celery_app"]
