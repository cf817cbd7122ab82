"""Production settings (MAPP_ENV=production), checked in a fresh process as a deployment runs them.

Each test runs ``manage.py check`` in a subprocess with an environment built from scratch, so
neither the development services of ``mapp test`` nor the developer's shell leak into it. No
database is needed: ``check`` without ``--database`` connects to nothing, so DATABASE_URL and
REDIS_URL only have to be well-formed.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHECK_TIMEOUT_SECONDS = 120


def production_environment(var_dir: Path) -> dict[str, str]:
    """Everything a production deployment sets (README: Production), with realistic values."""
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "MAPP_ENV": "production",
        # Where a deployment keeps runtime files; production must not write its secret here.
        "MAPP_VAR_DIR": str(var_dir),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "mapp.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://mapp.example.com",
        "SITE_URL": "https://mapp.example.com",
        "DATABASE_URL": "postgres://mapp:db-password@db.internal.example.com:5432/mapp",
        "REDIS_URL": "redis://redis.internal.example.com:6379/0",
        "EMAIL_HOST": "smtp.example.com",
        "EMAIL_PORT": "587",
        "EMAIL_USE_TLS": "true",
        "EMAIL_HOST_USER": "mapp@example.com",
        "EMAIL_HOST_PASSWORD": "smtp-password",
        "DEFAULT_FROM_EMAIL": "mapp@example.com",
        "TRUSTED_PROXY_COUNT": "1",
        # HSTS preload is off by default (a commitment for the whole domain, opted into per
        # deployment), and check --deploy warns about that (security.W021). This deployment opts
        # in; once settings.py silences W021 for the deliberate default, this line can go.
    }


def run_manage(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "manage.py"), *arguments],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_SECONDS,
        check=False,
    )


def test_deploy_check_passes_with_a_complete_production_environment(tmp_path: Path) -> None:
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", env=production_environment(tmp_path)
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output


@pytest.mark.parametrize("secret_key", [None, ""], ids=["unset", "empty"])
def test_production_without_secret_key_fails_loudly(tmp_path: Path, secret_key: str | None) -> None:
    env = production_environment(tmp_path)
    if secret_key is None:
        del env["SECRET_KEY"]
    else:
        env["SECRET_KEY"] = secret_key

    result = run_manage("check", env=env)

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "SECRET_KEY" in output
    # No silent fallback to the generated development key.
    assert not (tmp_path / "secret_key").exists()
