"""The web process exactly as the Procfile starts it: a real gunicorn on the test's database.

Its access log keeps only a prefix of share tokens, set-password tokens and upload tickets,
slow clients that trickle a body do not hold up /healthz, and the README shows the same
command.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from gunicorn.config import Config
from gunicorn.glogging import SafeAtoms

from approval.extensions import db
from approval.gunicorn_logging import RedactingLogger
from approval.models import Clip, ClipStatus, User
from approval.ops import people, sharing
from tests.plugins.api import bearer
from tests.plugins.workers import (
    PROJECT_ROOT,
    Processes,
    WebServer,
    procfile_web_command,
    wait_for,
)

MakeClip = Callable[..., Clip]


@pytest.fixture
def web(processes: Processes, app: Flask) -> WebServer:
    """gunicorn on the test's database; the `processes` fixture kills it at the end."""
    return WebServer(processes, app)


# --- the access log ------------------------------------------------------------------------------


def _secrets(make_clip: MakeClip, reviewer: User, tester: User) -> dict[str, str]:
    """A live share token, a set-password token and an (unsigned) upload ticket."""
    clip = make_clip(ClipStatus.APPROVED, reviewer=reviewer)
    _, share_token = sharing.create_link(clip, reviewer)
    password_token = people.issue_password_link(tester, actor=None)
    db.session.commit()
    return {"share": share_token, "password": password_token, "ticket": "T" * 24 + ".abc.def"}


def test_the_access_log_keeps_only_a_prefix_of_each_secret(
    web: WebServer, make_clip: MakeClip, reviewer: User, tester: User
) -> None:
    secret = _secrets(make_clip, reviewer, tester)
    for path in (
        f"/s/{secret['share']}",
        f"/s/{secret['share']}/media",
        f"/set-password/{secret['password']}",
    ):
        requests.get(f"{web.base}{path}", timeout=10)
    requests.put(f"{web.base}/clips/1/upload?ticket={secret['ticket']}", data=b"x", timeout=10)
    # A page's own address comes back as the referer of what it loads.
    referer = {"Referer": f"{web.base}/set-password/{secret['password']}"}
    requests.get(f"{web.base}/static/css/app.css", headers=referer, timeout=10)
    wait_for(lambda: "app.css" in web.log(), timeout=10, what="the access log's last line")
    log = web.log()
    assert [name for name, value in secret.items() if value in log] == []
    assert f"/s/{secret['share'][:4]}…" in log
    assert f"/s/{secret['share'][:4]}…/media" in log
    assert f"/set-password/{secret['password'][:4]}…" in log
    assert "ticket=TTTT…" in log


# --- slow clients --------------------------------------------------------------------------------


def _trickle(port: int, stop: threading.Event) -> None:
    """Send a request's headers promising a body, then a byte of it every half second."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        while not stop.wait(0.5):
            try:
                sock.sendall(b"a")
            except OSError:
                return


@pytest.mark.parametrize("clients", [2, 4])
def test_clients_trickling_a_body_do_not_hold_up_healthz(web: WebServer, clients: int) -> None:
    """Two slow clients, and four: as many as the sync workers the README once recommended."""
    stop = threading.Event()
    slow = [threading.Thread(target=_trickle, args=(web.port, stop)) for _ in range(clients)]
    for thread in slow:
        thread.start()
    try:
        time.sleep(1)  # all are being served, and reading their bodies, by now
        times = [_healthz_time(web) for _ in range(3)]
        assert max(times) < 1.0, f"/healthz took {times} s behind {clients} slow clients"
    finally:
        stop.set()
        for thread in slow:
            thread.join()


def _healthz_time(web: WebServer, patience: float = 5.0) -> float:
    """Seconds until /healthz answers (any status), or `patience` if it does not answer."""
    started = time.monotonic()
    try:
        requests.get(f"{web.base}/healthz", timeout=patience)
    except requests.Timeout:
        return patience
    return time.monotonic() - started


# --- the size limit ------------------------------------------------------------------------------


@pytest.mark.parametrize(("over", "status"), [(0, 204), (1, 413)])
def test_a_put_ticket_takes_a_file_of_exactly_the_size_limit(
    processes: Processes, app: Flask, tester: User, over: int, status: int
) -> None:
    """gunicorn marks its input terminated, so Werkzeug reads to the limit itself (issue 15)."""
    limit = 4096
    web = WebServer(processes, app, GREENLIGHT_MAX_CLIP_BYTES=str(limit))
    created = requests.post(
        f"{web.base}/api/v1/clips",
        json={"title": "At the limit", "filename": "clip.mp4", "size": limit},
        headers=bearer(tester),
        timeout=10,
    )
    assert created.status_code == 201, created.text
    ticket = created.json()["upload"]
    where = urlsplit(ticket["url"])
    put = requests.put(
        f"{web.base}{where.path}?{where.query}",
        data=b"x" * (limit + over),
        headers=ticket["headers"],
        timeout=10,
    )
    assert put.status_code == status, put.text[-500:]


# --- the README ----------------------------------------------------------------------------------


def test_the_readme_starts_gunicorn_as_the_procfile_does() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    shown = [line.split("#")[0].strip() for line in readme.splitlines() if "gunicorn " in line]
    shown = [line for line in shown if line.startswith("gunicorn ")]
    expected = procfile_web_command().replace("${PORT:-8000}", "8000")
    assert shown == [expected]


# --- the logger class on its own -----------------------------------------------------------------


#: A format naming every kind of atom that can hold a secret, and the credential headers.
EVERY_KIND = (
    '%(h)s "%(r)s" %(U)s %(q)s "%(f)s" %({Authorization}i)s %({cookie}i)s %({referer}i)s '
    "%({raw_uri}e)s %(s)s"
)


def _log_line(log_format: str, token: str) -> tuple[dict[str, object], str]:
    """The atoms RedactingLogger hands on for one request to a share link, and the line."""
    environ = {
        "REQUEST_METHOD": "GET",
        "REMOTE_ADDR": "127.0.0.1",
        "RAW_URI": f"/s/{token}/media?ticket={token}",
        "PATH_INFO": f"/s/{token}/media",
        "QUERY_STRING": f"ticket={token}",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_REFERER": f"https://greenlight.test/set-password/{token}",
    }
    request = SimpleNamespace(
        headers=[
            ("AUTHORIZATION", f"Bearer glt_{token}"),
            ("COOKIE", f"greenlight_session={token}"),
            ("REFERER", f"https://greenlight.test/set-password/{token}"),
        ]
    )
    response = SimpleNamespace(status="200 OK", headers=[("Location", f"/s/{token}")], sent=10)
    config = Config()
    config.set("accesslog", "-")
    config.set("access_log_format", log_format)
    atoms = RedactingLogger(config).atoms(response, request, environ, timedelta(seconds=1))
    return atoms, log_format % SafeAtoms(atoms)


def test_the_logger_class_drops_credentials_and_cuts_secrets_from_every_atom() -> None:
    token = "k" * 43
    _, line = _log_line(EVERY_KIND, token)
    assert line == (
        '127.0.0.1 "GET /s/kkkk…/media?ticket=kkkk… HTTP/1.1" /s/kkkk…/media ticket=kkkk… '
        '"https://greenlight.test/set-password/kkkk…" - - '
        "https://greenlight.test/set-password/kkkk… /s/kkkk…/media?ticket=kkkk… 200"
    )


def test_the_logger_class_hands_on_only_the_atoms_its_format_names() -> None:
    atoms, _ = _log_line('%(h)s "%(r)s" %(s)s', "k" * 43)
    assert sorted(atoms) == ["h", "r", "s"]
