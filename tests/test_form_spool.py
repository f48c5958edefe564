"""The no-JavaScript upload form on local disk: each byte written once, nothing left on failure.

Werkzeug's multipart parser writes the form's file into the local storage's own temporary
folder (a spool storage hands out), and the upload then renames that file into place instead
of copying it. So nothing of the form is written under the system's temporary folder, and a
form that is refused or broken off leaves no spool behind, in either folder, and no row.
"""

from __future__ import annotations

import io
import os
import re
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import encode_multipart

from approval.extensions import db
from approval.extensions import storage as app_storage
from approval.models import Clip, ClipStatus, User
from approval.slow_bodies import StalledBody
from approval.storage import LocalStorage, ObjectTooLarge
from tests.plugins.factories import PASSWORD
from tests.plugins.snapshot import nothing_changed, stored_objects
from tests.plugins.web import SignIn, csrf_token
from tests.plugins.workers import Processes, WebServer

#: Larger than Werkzeug's 500 KB threshold, past which its own parser spools to a temp file.
FILE_BYTES = 2_000_000


@pytest.fixture
def app(app_factory: Callable[..., Flask]) -> Iterator[Flask]:
    """Local storage; jobs are queued, not run, so only the upload itself touches the disk."""
    app = app_factory(QUEUE_IMMEDIATE=False)
    with app.app_context():
        yield app


@pytest.fixture
def browser(app: Flask, signed_in: SignIn, tester: User) -> FlaskClient:
    return signed_in(tester, client=app.test_client())


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system temporary folder, as tempfile sees it: an empty folder of this test's."""
    path = tmp_path / "system-tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


def spool_folder(app: Flask) -> Path:
    store = app_storage()
    assert isinstance(store, LocalStorage)
    return store.root / ".tmp"


def left_behind(app: Flask, temp_dir: Path) -> list[str]:
    """Whatever is still in storage's temporary folder or the system's."""
    return sorted(str(p) for folder in (spool_folder(app), temp_dir) for p in folder.iterdir())


def form_body(
    token: str, *files: tuple[str, str, bytes], title: str = "Spooled"
) -> tuple[str, bytes]:
    """A multipart body (content type, bytes) built in memory, so the test client spools nothing."""
    values: dict[str, Any] = {"csrf_token": token, "title": title}
    boundary, body = encode_multipart(values)
    parts = []
    for field, filename, data in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{filename}"\r\nContent-Type: video/mp4\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    closing = f"--{boundary}--\r\n".encode()
    assert body.endswith(closing)
    body = body[: -len(closing)] + b"".join(parts) + closing
    return f"multipart/form-data; boundary={boundary}", body


def post_form(client: FlaskClient, content_type: str, body: bytes, **kwargs: Any) -> Any:
    return client.post("/clips/new", data=body, headers={"Content-Type": content_type}, **kwargs)


# --- the good path ------------------------------------------------------------------------------


def test_the_form_writes_nothing_under_the_system_temp_folder(
    app: Flask, browser: FlaskClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the system temp folder pointing nowhere, the form upload still lands whole."""
    data = os.urandom(FILE_BYTES)
    content_type, body = form_body(csrf_token(browser, "/clips/new"), ("file", "clip.mp4", data))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "nowhere"))
    response = post_form(browser, content_type, body)
    assert response.status_code == 302
    clip = db.session.scalars(select(Clip)).one()
    assert clip.status == ClipStatus.VERIFYING
    assert clip.staging_key is not None
    assert (app_storage().root / clip.staging_key).read_bytes() == data
    assert list(spool_folder(app).iterdir()) == []


def test_adopt_renames_the_spool_into_place(app: Flask) -> None:
    """The stored file is the spooled file itself (same inode), not a copy of it."""
    store = app_storage()
    spool = store.spool()
    spool.write(b"x" * 1000)
    inode = os.fstat(spool.fileno()).st_ino
    info = store.adopt("incoming/a/b.mp4", spool, content_type="video/mp4", max_bytes=1000)
    assert info.size == 1000
    assert info.content_type == "video/mp4"
    assert os.stat(store.root / "incoming/a/b.mp4").st_ino == inode
    assert spool.closed
    assert list(spool_folder(app).iterdir()) == []


def test_adopt_refuses_a_spool_over_the_limit_and_removes_it(app: Flask) -> None:
    store = app_storage()
    spool = store.spool()
    spool.write(b"x" * 1001)
    with pytest.raises(ObjectTooLarge):
        store.adopt("incoming/a/b.mp4", spool, content_type="video/mp4", max_bytes=1000)
    assert stored_objects() == []
    assert list(spool_folder(app).iterdir()) == []


def test_a_spool_closed_without_adopt_is_removed(app: Flask) -> None:
    spool = app_storage().spool()
    spool.write(b"x")
    assert len(list(spool_folder(app).iterdir())) == 1
    spool.close()
    assert list(spool_folder(app).iterdir()) == []


def test_only_the_first_file_stays_and_every_other_spool_goes(
    app: Flask, browser: FlaskClient, temp_dir: Path
) -> None:
    """Two files in the file field, and one in a field the form does not have."""
    first, second, stray = (os.urandom(FILE_BYTES // 2) for _ in range(3))
    content_type, body = form_body(
        csrf_token(browser, "/clips/new"),
        ("file", "first.mp4", first),
        ("file", "second.mp4", second),
        ("other", "stray.mp4", stray),
    )
    response = post_form(browser, content_type, body, follow_redirects=True)
    assert "Only the first file, first.mp4, was uploaded" in response.get_data(as_text=True)
    clip = db.session.scalars(select(Clip)).one()
    assert clip.staging_key is not None
    assert (app_storage().root / clip.staging_key).read_bytes() == first
    assert stored_objects() == [clip.staging_key]
    assert left_behind(app, temp_dir) == []


# --- every way the form can fail ----------------------------------------------------------------


class StallingInput(io.BytesIO):
    """A body that stops arriving after its bytes, as slow_bodies.BodyTimeout reports it."""

    def read(self, size: int | None = -1) -> bytes:
        if data := super().read(size):
            return data
        raise StalledBody("The request's body stopped arriving.")

    def readinto(self, buffer: Any) -> int:
        if got := super().readinto(buffer):
            return got
        raise StalledBody("The request's body stopped arriving.")


def _bad_extension(token: str) -> dict[str, Any]:
    content_type, body = form_body(token, ("file", "notes.txt", os.urandom(FILE_BYTES)))
    return {"data": body, "headers": {"Content-Type": content_type}}


def _wrong_field(token: str) -> dict[str, Any]:
    content_type, body = form_body(token, ("video", "clip.mp4", os.urandom(FILE_BYTES)))
    return {"data": body, "headers": {"Content-Type": content_type}}


def _no_file(token: str) -> dict[str, Any]:
    content_type, body = form_body(token)
    return {"data": body, "headers": {"Content-Type": content_type}}


def _bad_csrf(token: str) -> dict[str, Any]:
    content_type, body = form_body("forged", ("file", "clip.mp4", os.urandom(FILE_BYTES)))
    return {"data": body, "headers": {"Content-Type": content_type}}


def _file_over_the_limit(token: str) -> dict[str, Any]:
    # Within the body limit (the clip limit and 1 MB for the fields), so it is read whole;
    # the file itself is over the clip limit.
    content_type, body = form_body(token, ("file", "clip.mp4", os.urandom(FILE_BYTES + 1)))
    return {"data": body, "headers": {"Content-Type": content_type}}


def _chunked_over_the_limit(token: str) -> dict[str, Any]:
    content_type, body = form_body(token, ("file", "clip.mp4", os.urandom(FILE_BYTES + (2 << 20))))
    return {
        "input_stream": io.BytesIO(body),
        "headers": {"Content-Type": content_type, "Transfer-Encoding": "chunked"},
        "environ_overrides": {"wsgi.input_terminated": True},
    }


def _disconnected(token: str) -> dict[str, Any]:
    content_type, body = form_body(token, ("file", "clip.mp4", os.urandom(FILE_BYTES)))
    return {
        "input_stream": io.BytesIO(body[: len(body) // 2]),
        "headers": {"Content-Type": content_type},
        # Said outright: the test client would declare only what the stream holds.
        "environ_overrides": {"CONTENT_LENGTH": str(len(body))},
    }


def _stalled(token: str) -> dict[str, Any]:
    content_type, body = form_body(token, ("file", "clip.mp4", os.urandom(FILE_BYTES)))
    return {
        "input_stream": StallingInput(body[: len(body) // 2]),
        "headers": {"Content-Type": content_type},
        # Said outright: the test client would declare only what the stream holds.
        "environ_overrides": {"CONTENT_LENGTH": str(len(body))},
    }


@pytest.mark.parametrize(
    ("make_request", "status"),
    [
        pytest.param(_bad_extension, 422, id="not-a-video-name"),
        pytest.param(_wrong_field, 400, id="file-in-another-field"),
        pytest.param(_no_file, 400, id="no-file"),
        pytest.param(_bad_csrf, 400, id="bad-csrf-token"),
        pytest.param(_file_over_the_limit, 413, id="file-over-the-clip-limit"),
        pytest.param(_chunked_over_the_limit, 413, id="chunked-body-over-the-limit"),
        pytest.param(_disconnected, 400, id="client-gone-mid-body"),
        pytest.param(_stalled, 408, id="body-stops-arriving"),
    ],
)
def test_a_failed_form_leaves_no_spool_and_no_row(
    app: Flask,
    browser: FlaskClient,
    temp_dir: Path,
    make_request: Callable[[str], dict[str, Any]],
    status: int,
) -> None:
    app.config["MAX_CLIP_BYTES"] = FILE_BYTES
    kwargs = make_request(csrf_token(browser, "/clips/new"))
    with nothing_changed():
        response = browser.post("/clips/new", **kwargs)
    assert response.status_code == status
    assert left_behind(app, temp_dir) == []
    assert db.session.scalar(select(func.count()).select_from(Clip)) == 0


# --- through the Procfile's gunicorn ------------------------------------------------------------


def page_token(page: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def test_a_stalled_form_under_gunicorn_gets_408_and_leaves_no_spool(
    app: Flask, processes: Processes, tester: User
) -> None:
    """The real server: BodyTimeout gives up on the form mid-file; the spool goes with it."""
    server = WebServer(processes, app, GREENLIGHT_BODY_TIMEOUT="1")
    session = requests.Session()
    login = session.get(f"{server.base}/login", timeout=10).text
    signed = session.post(
        f"{server.base}/login",
        data={"email": tester.email, "password": PASSWORD, "csrf_token": page_token(login)},
        allow_redirects=False,
        timeout=10,
    )
    assert signed.status_code == 302
    token = page_token(session.get(f"{server.base}/clips/new", timeout=10).text)
    content_type, body = form_body(token, ("file", "clip.mp4", os.urandom(FILE_BYTES)))
    cookie = "; ".join(f"{name}={value}" for name, value in session.cookies.items())
    head = (
        f"POST /clips/new HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with (
        nothing_changed(),
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock,
    ):
        sock.sendall(head.encode() + body[: len(body) // 2])
        status_line = sock.makefile("rb").readline()
    assert status_line.split()[1] == b"408"
    assert list(spool_folder(app).iterdir()) == []


def test_a_form_with_more_files_than_anyone_picks_is_refused_holding_few_files_open(
    app: Flask, browser: FlaskClient, temp_dir: Path
) -> None:
    """Each spool is an open file: a thousand tiny file parts must not take a thousand of the
    worker's file descriptors (Werkzeug's own parser kept small parts in memory)."""
    opened: list[int] = []
    store = app_storage()
    real_spool = type(store).spool

    def counting_spool(self: Any) -> Any:
        opened.append(1)
        return real_spool(self)

    parts = [("file", f"f{n}.mp4", b"x") for n in range(200)]
    content_type, body = form_body(csrf_token(browser, "/clips/new"), *parts)
    with pytest.MonkeyPatch.context() as patch, nothing_changed():
        patch.setattr(type(store), "spool", counting_spool)
        response = post_form(browser, content_type, body)
    assert response.status_code == 413
    assert "at most 10 files" in response.get_data(as_text=True)
    assert len(opened) <= 10
    assert left_behind(app, temp_dir) == []
