"""The web server's access logger (mapp/gunicorn_logging.py) prints what gunicorn's prints."""

from __future__ import annotations

import datetime
import io
import logging
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from gunicorn import glogging
from gunicorn.config import Config

from mapp.cli import stack_commands
from mapp.gunicorn_logging import AccessLogger

NOW = "[23/Nov/2026:18:15:51 +0900]"


class _Response:
    def __init__(self, status: Any, sent: int | None, headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.sent = sent
        self.headers = headers


class _Request:
    def __init__(self, headers: list[tuple[str, str]]) -> None:
        self.headers = headers


def _environ(**extra: str) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/t/c/WzEsImIiXQ:1xVQ9J:cjNbdPubmR31D?x=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.7",
        "PATH_INFO": "/t/c/WzEsImIiXQ:1xVQ9J:cjNbdPubmR31D",
        "QUERY_STRING": "x=1",
        "HTTP_USER_AGENT": 'Mozilla/5.0 "quoted" <script>alert(1)</script> 日本語',
        "HTTP_REFERER": "https://example.jp/お知らせ",
        "HTTP_HOST": "track.example.jp",
        "wsgi.url_scheme": "https",
    }
    environ.update(extra)
    return environ


def _line(logger_class: type[glogging.Logger], access_log_format: str | None, call: Any) -> str:
    config = Config()
    if access_log_format is not None:
        config.set("access_log_format", access_log_format)
    logger = logger_class(config)
    logger.now = lambda: NOW
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.access_log.handlers = [handler]
    logger.access_log.propagate = False
    logger._access_log_enabled = True  # as setup() computes it with --access-logfile
    call(logger)
    return stream.getvalue()


CASES = [
    pytest.param(
        _Response("302 Found", 0, [("Location", "https://example.jp/lp"), ("Set-Cookie", "a=b")]),
        _Request([("HOST", "track.example.jp"), ("X-FORWARDED-FOR", "198.51.100.1")]),
        _environ(),
        id="click redirect",
    ),
    pytest.param(
        _Response("200 OK", 43, [("Content-Type", "image/gif")]),
        _Request([]),
        _environ(HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz", HTTP_REFERER=""),
        id="basic auth user, empty referer",
    ),
    pytest.param(
        _Response(204, None, []),
        _Request([]),
        {
            key: value
            for key, value in _environ().items()
            if key not in {"HTTP_USER_AGENT", "HTTP_REFERER", "REMOTE_ADDR"}
        },
        id="integer status, nothing sent, no user agent",
    ),
]
FORMATS = [
    pytest.param(None, id="default format"),
    pytest.param(
        "%(h)s %({x-forwarded-for}i)s %({location}o)s %({wsgi.url_scheme}e)s %(m)s %(U)s %(q)s "
        '%(H)s %(B)s %(D)s %(L)s %(p)s "%(a)s" %(missing)s %({absent}i)s',
        id="custom format",
    ),
]


@pytest.mark.parametrize("access_log_format", FORMATS)
@pytest.mark.parametrize(("response", "request_", "environ"), CASES)
def test_access_line_is_gunicorns(
    access_log_format: str | None, response: Any, request_: Any, environ: dict[str, Any]
) -> None:
    elapsed = datetime.timedelta(seconds=1, microseconds=2345)

    def call(logger: glogging.Logger) -> None:
        logger.access(response, request_, environ, elapsed)

    expected = _line(glogging.Logger, access_log_format, call)
    assert expected.strip()
    assert _line(AccessLogger, access_log_format, call) == expected


def test_quotes_are_escaped_in_the_line() -> None:
    def call(logger: glogging.Logger) -> None:
        logger.access(_Response("200 OK", 43, []), _Request([]), _environ(), datetime.timedelta(0))

    line = _line(AccessLogger, None, call)
    assert '\\"quoted\\"' in line
    assert line.startswith(f'203.0.113.7 - - {NOW} "GET /t/c/')


def test_no_line_without_an_access_log() -> None:
    config = Config()  # no --access-logfile
    logger = AccessLogger(config)
    stream = io.StringIO()
    logger.access_log.handlers = [logging.StreamHandler(stream)]
    logger.access(_Response("200 OK", 1, []), _Request([]), _environ(), datetime.timedelta(0))
    assert stream.getvalue() == ""


def test_mapp_run_serves_with_it_and_logs_each_request(tmp_path: Path) -> None:
    """gunicorn as ``mapp run`` starts it loads the class and prints the request's line."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    command = stack_commands(host="127.0.0.1", port=port)["web"]
    assert command[command.index("--logger-class") + 1] == "mapp.gunicorn_logging.AccessLogger"
    # Only the logger is under test: a WSGI app that needs no database.
    command[command.index("mapp.wsgi:application")] = "tests.wsgi_hello:application"
    log_path = tmp_path / "web.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parent.parent,
            env={**os.environ, "PYTHONPATH": "."},
        )
    try:

        def answered() -> bool:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/hello?q=1",
                    headers={"User-Agent": 'agent "x"', "Referer": "https://example.jp/"},
                )
                with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - http://
                    return bool(response.status == 200)
            except OSError:
                return False

        deadline = time.monotonic() + 30
        while not answered():
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "gunicorn did not answer"
            time.sleep(0.2)
        while "GET /hello?q=1 HTTP/1.1" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(15)
    line = next(
        text for text in log_path.read_text().splitlines() if "GET /hello?q=1 HTTP/1.1" in text
    )
    assert line.startswith("127.0.0.1 - - [")
    assert line.endswith('"GET /hello?q=1 HTTP/1.1" 200 5 "https://example.jp/" "agent \\"x\\""')
