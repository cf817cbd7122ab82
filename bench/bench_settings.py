"""Settings of the tracking-hit benchmark's web server: the app's own, plus a no-op view.

Used only by ``bench/tracking_hits.py`` (``DJANGO_SETTINGS_MODULE=bench.bench_settings``).
"""

from mapp.settings import *  # noqa: F403

ROOT_URLCONF = "bench.bench_urls"

# The load generator is one address: a limit it can never reach keeps the limiter's cost (three
# Redis round trips per hit) in the measurement without cutting the run short.
TRACKING_RATE_LIMIT_HITS = 10**12
