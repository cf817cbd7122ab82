"""The ``mapp`` command: one entry point for running and testing the whole stack.

    mapp run [--demo] [--host H] [--port P]   web + Celery worker + beat, in the foreground
    mapp test [PYTEST ARGS...]                the test suite against real Postgres and Redis
    mapp manage COMMAND [ARGS...]             manage.py with the same services
    mapp services                             only the database and Redis, until Ctrl-C

Without DATABASE_URL / REDIS_URL the embedded servers from mapp/devservices.py are used.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from mapp.devservices import PROJECT_ROOT, services

STOP_GRACE_SECONDS = 15
WORKER_QUEUES = "default,sends,tracking,engine"


def _python() -> str:
    return sys.executable


def _manage(*arguments: str, env: dict[str, str]) -> None:
    subprocess.run([_python(), str(PROJECT_ROOT / "manage.py"), *arguments], check=True, env=env)


def _environment(extra: dict[str, str]) -> dict[str, str]:
    environment = dict(os.environ)
    environment.update(extra)
    environment.setdefault("DJANGO_SETTINGS_MODULE", "mapp.settings")
    environment.setdefault("PYTHONUNBUFFERED", "1")
    return environment


def stack_commands(*, host: str, port: int, concurrency: int = 2) -> dict[str, list[str]]:
    """The three long-running processes of a mapp installation (also used by the e2e tests)."""
    bin_dir = Path(_python()).parent
    return {
        "web": [
            str(bin_dir / "gunicorn"),
            "mapp.wsgi:application",
            "--bind",
            f"{host}:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--access-logfile",
            "-",
            # The same access lines, without building every possible field per request.
            "--logger-class",
            "mapp.gunicorn_logging.AccessLogger",
            "--graceful-timeout",
            "10",
            # Several stacks (make run, the e2e tests) may share a machine: no shared socket.
            "--no-control-socket",
        ],
        "worker": [
            str(bin_dir / "celery"),
            "-A",
            "mapp",
            "worker",
            "-Q",
            WORKER_QUEUES,
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "INFO",
            "--hostname",
            f"worker-{port}@%h",
        ],
        "beat": [
            str(bin_dir / "celery"),
            "-A",
            "mapp",
            "beat",
            "--loglevel",
            "INFO",
            "--pidfile=",
        ],
    }


def _stop(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in processes.values():
        remaining = max(0.1, deadline - time.monotonic())
        try:
            process.wait(remaining)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def command_run(arguments: argparse.Namespace) -> int:
    with services() as service_env:
        environment = _environment(service_env)
        print("mapp: preparing the database…", flush=True)
        _manage("migrate", "--noinput", env=environment)
        _manage("sync_periodic_tasks", env=environment)
        _manage("ensure_admin", env=environment)
        if arguments.demo:
            _manage("load_demo_data", env=environment)
        catcher = None
        if not environment.get("EMAIL_HOST") and environment.get("MAPP_ENV") != "production":
            # No SMTP server configured: every mail the app sends lands in the Outbox instead.
            from mapp.devservices import VAR_DIR
            from mapp.mailcatcher import MailCatcher, outbox_directory

            catcher = MailCatcher(outbox_directory(VAR_DIR)).start()
            environment.update(
                EMAIL_HOST=catcher.host,
                EMAIL_PORT=str(catcher.port),
                MAPP_OUTBOX="1",
                OUTBOX_DIR=str(outbox_directory(VAR_DIR)),
            )
            print(
                f"mapp: no EMAIL_HOST set — mail is kept in {outbox_directory(VAR_DIR)} "
                "(Settings → Outbox)",
                flush=True,
            )
        processes: dict[str, subprocess.Popen[bytes]] = {}
        optional: dict[str, subprocess.Popen[bytes]] = {}
        stopping = False

        def request_stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        try:
            for name, command in stack_commands(host=arguments.host, port=arguments.port).items():
                # Own session: Ctrl-C reaches only us, and we stop the children in order.
                processes[name] = subprocess.Popen(command, env=environment, start_new_session=True)
            # Bounces, complaints and List-Unsubscribe mails; optional: a busy port (another
            # stack on this machine) must not stop the app, so it is watched apart.
            optional = {
                "inbound SMTP": subprocess.Popen(
                    [_python(), str(PROJECT_ROOT / "manage.py"), "inbound_smtp"],
                    env=environment,
                    start_new_session=True,
                )
            }
            url = f"http://{arguments.host}:{arguments.port}/"
            print(
                f"\nmapp is running at {url}   (health: {url}healthz)  — Ctrl-C stops it\n",
                flush=True,
            )
            exit_code = 0
            while not stopping:
                for name, process in processes.items():
                    if process.poll() is not None:
                        print(
                            f"mapp: {name} exited with {process.returncode}; stopping", flush=True
                        )
                        exit_code = process.returncode or 1
                        stopping = True
                        break
                for name, process in list(optional.items()):
                    if process.poll() is not None:
                        print(
                            f"mapp: {name} exited with {process.returncode} (is its port in "
                            "use?); the app goes on without it",
                            flush=True,
                        )
                        del optional[name]
                time.sleep(0.2)
        finally:
            print("mapp: stopping web, worker and beat…", flush=True)
            _stop({**processes, **optional})
            if catcher is not None:
                catcher.stop()
        print("mapp: stopped.", flush=True)
        return exit_code


def command_test(arguments: argparse.Namespace, pytest_arguments: Sequence[str]) -> int:
    with services() as service_env:
        if "REDIS_URL" not in os.environ:
            # Tests use their own Redis database, so a running `make run` is not disturbed.
            service_env["REDIS_URL"] = service_env["REDIS_URL"].rsplit("/", 1)[0] + "/1"
        environment = _environment(service_env)
        result = subprocess.run(
            [_python(), "-m", "pytest", *pytest_arguments], env=environment, check=False
        )
        return result.returncode


def command_manage(manage_arguments: Sequence[str]) -> int:
    with services() as service_env:
        result = subprocess.run(
            [_python(), str(PROJECT_ROOT / "manage.py"), *manage_arguments],
            env=_environment(service_env),
            check=False,
        )
        return result.returncode


def command_services() -> int:
    with services() as service_env:
        for key, value in service_env.items():
            print(f"{key}={value}")
        print("Services are running; Ctrl-C stops them.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mapp", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    subcommands = parser.add_subparsers(dest="command", required=True)
    run = subcommands.add_parser("run", help="run web, worker and beat in the foreground")
    run.add_argument("--demo", action="store_true", help="load demo data first")
    run.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    subcommands.add_parser("test", help="run the test suite (extra arguments go to pytest)")
    subcommands.add_parser("manage", help="run a manage.py command with the services")
    subcommands.add_parser("services", help="start only the database and Redis")

    arguments, rest = parser.parse_known_args(argv)
    if arguments.command == "run":
        return command_run(arguments)
    if arguments.command == "test":
        return command_test(arguments, rest)
    if arguments.command == "manage":
        return command_manage(rest)
    return command_services()


if __name__ == "__main__":
    sys.exit(main())
