"""Secrets that travel in URLs keep only a short prefix in the app's and Werkzeug's logs.

gunicorn's access log, through the Procfile's logger class, is tested with a real gunicorn in
tests/test_gunicorn.py.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from approval.log_redaction import redact
from approval.ops import sharing
from approval.storage import StorageError

SHARE = "q5Xc1u0Yf3J9pK2mW8rT4vZ6bN0aL7eH"
TICKET = "eyJjbGlwIjoxfQ.Z3x9Qw.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("line", "logged"),
    [
        (f"GET /s/{SHARE} HTTP/1.1", "GET /s/q5Xc… HTTP/1.1"),
        (f"GET /s/{SHARE}/media HTTP/1.1", "GET /s/q5Xc…/media HTTP/1.1"),
        (f"POST /set-password/{SHARE}", "POST /set-password/q5Xc…"),
        (f"PUT /clips/7/upload?ticket={TICKET}", "PUT /clips/7/upload?ticket=eyJj…"),
        (
            f"PUT /clips/7/upload?x=1&ticket={TICKET}&y=2",
            "PUT /clips/7/upload?x=1&ticket=eyJj…&y=2",
        ),
        (f'"http://greenlight.test/s/{SHARE}"', '"http://greenlight.test/s/q5Xc…"'),
        # A query string on its own, as gunicorn's %(q)s atom holds it.
        (f"ticket={TICKET}&x=1", "ticket=eyJj…&x=1"),
        ("myticket=1&x=1", "myticket=1&x=1"),
        ("GET /clips/7/media HTTP/1.1", "GET /clips/7/media HTTP/1.1"),
        ("GET /static/js/player.js", "GET /static/js/player.js"),
    ],
)
def test_redact_keeps_a_prefix_of_each_secret_and_nothing_else_changes(
    line: str, logged: str
) -> None:
    assert redact(line) == logged


@pytest.fixture
def dev_server(app: Flask) -> Iterator[str]:
    """Werkzeug's development server (what `flask run` uses) on a free port, in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def test_the_development_servers_request_log_keeps_only_a_prefix(
    dev_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        requests.get(f"{dev_server}/s/{SHARE}", timeout=10)
        requests.get(f"{dev_server}/set-password/{SHARE}", timeout=10)
        requests.put(f"{dev_server}/clips/7/upload?ticket={TICKET}", data=b"x", timeout=10)
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert len(lines) == 3
    assert [line for line in lines if SHARE in line or TICKET in line] == []
    assert ["/s/q5Xc…" in lines[0], "/set-password/q5Xc…" in lines[1]] == [True, True]
    assert "ticket=eyJj…" in lines[2]


def test_the_apps_own_log_of_a_failed_share_request_keeps_only_a_prefix(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def storage_down(token: str) -> None:
        raise StorageError("storage is not answering")

    monkeypatch.setattr(sharing, "find_link", storage_down)
    with caplog.at_level(logging.WARNING):
        response = client.get(f"/s/{SHARE}")
    assert response.status_code == 503
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("approval")]
    assert any("/s/q5Xc…" in message for message in messages), messages
    assert [message for message in messages if SHARE in message] == []


def test_a_record_with_a_secret_is_redacted_before_any_handler_sees_it(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """The filter on Werkzeug's logger rewrites the record itself, for every handler after it."""
    log: Callable[..., None] = logging.getLogger("werkzeug").info
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        log('%s - - "%s" %s', "127.0.0.1", f"GET /s/{SHARE}/poster HTTP/1.1", 200)
    assert caplog.records[-1].getMessage() == '127.0.0.1 - - "GET /s/q5Xc…/poster HTTP/1.1" 200'
