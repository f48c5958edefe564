"""What testers see while a job checks their clip, and the pages' answer to storage faults."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask, g
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from approval.extensions import db
from approval.extensions import storage as app_storage
from approval.jobqueue import huey
from approval.models import AuditEvent, Clip, ClipStatus, Role, User
from approval.storage import StorageError
from tests.plugins.factories import PASSWORD
from tests.plugins.web import csrf_token

SITE = "http://127.0.0.1:5000"


@pytest.fixture
def queued_app(app: Flask, app_factory: Callable[..., Flask]) -> Iterator[Flask]:
    """An app whose jobs wait in a real SqliteHuey queue (no worker runs in these tests).

    Made after `app` (the factories' users live there): the queue is shared per process, and
    the app made last decides whether it runs jobs at once.
    """
    queued = app_factory(QUEUE_IMMEDIATE=False)
    with queued.app_context():
        yield queued


@pytest.fixture
def tester_client(queued_app: Flask, make_user: Callable[..., User]) -> FlaskClient:
    tester = make_user(Role.TESTER)
    client = queued_app.test_client()
    client.post(
        "/login",
        data={"email": tester.email, "password": PASSWORD, "csrf_token": csrf_token(client)},
    )
    return client


def upload_and_complete(client: FlaskClient, path: Path) -> tuple[int, dict[str, object]]:
    """The JavaScript path up to "done"; returns the clip id and the done answer's body."""
    body = path.read_bytes()
    token = csrf_token(client, "/clips/new")
    started = client.post(
        "/clips/direct",
        data={
            "title": "A clip",
            "filename": path.name,
            "size": str(len(body)),
            "csrf_token": token,
        },
        headers={"Accept": "application/json"},
    ).get_json()
    ticket = started["upload"]
    put = client.put(ticket["url"].removeprefix(SITE), data=body, headers=ticket["headers"])
    assert put.status_code == 204
    done = client.post(
        f"/clips/{started['clip']}/complete",
        headers={"Accept": "application/json", "X-CSRFToken": token},
    )
    assert done.status_code == 202
    return started["clip"], done.get_json()


def test_upload_done_answers_at_once_with_the_clip_verifying(
    tester_client: FlaskClient, make_video: Callable[..., Path]
) -> None:
    _, body = upload_and_complete(tester_client, make_video("clip.mp4", seconds=1.0))
    assert (body["status"], body["step"]) == (
        "verifying",
        "waiting for a worker to check the file",
    )


def test_upload_done_leaves_one_verify_job_in_the_queue(
    tester_client: FlaskClient, make_video: Callable[..., Path]
) -> None:
    upload_and_complete(tester_client, make_video("clip.mp4", seconds=1.0))
    assert huey.pending_count() == 1


def test_a_second_done_while_verifying_gives_the_same_202_and_no_second_job(
    tester_client: FlaskClient, make_video: Callable[..., Path]
) -> None:
    clip_id, first = upload_and_complete(tester_client, make_video("clip.mp4", seconds=1.0))
    again = tester_client.post(
        f"/clips/{clip_id}/complete",
        headers={
            "Accept": "application/json",
            "X-CSRFToken": csrf_token(tester_client, "/clips/new"),
        },
    )
    assert (again.status_code, again.get_json(), huey.pending_count()) == (202, first, 1)


def test_the_status_url_says_the_step_in_words(
    tester_client: FlaskClient, make_video: Callable[..., Path]
) -> None:
    clip_id, _ = upload_and_complete(tester_client, make_video("clip.mp4", seconds=1.0))
    db.session.execute(
        Clip.__table__.update().where(Clip.id == clip_id).values(pipeline_step="rendering")
    )
    db.session.commit()
    assert tester_client.get(f"/clips/{clip_id}/status").get_json()["step"] == (
        "preparing playback"
    )


def test_the_clip_page_follows_a_verifying_clip(
    tester_client: FlaskClient, make_video: Callable[..., Path]
) -> None:
    clip_id, _ = upload_and_complete(tester_client, make_video("clip.mp4", seconds=1.0))
    page = tester_client.get(f"/clips/{clip_id}").get_data(as_text=True)
    assert f'data-status-url="/clips/{clip_id}/status"' in page
    assert "waiting for a worker to check the file" in page


def test_my_clips_follows_a_verifying_clip(
    tester_client: FlaskClient, make_video: Callable[..., Path]
) -> None:
    clip_id, _ = upload_and_complete(tester_client, make_video("clip.mp4", seconds=1.0))
    page = tester_client.get("/clips/").get_data(as_text=True)
    assert f'data-status-url="/clips/{clip_id}/status"' in page


def test_nobody_else_reads_a_clips_status(
    tester_client: FlaskClient,
    queued_app: Flask,
    make_user: Callable[..., User],
    make_video: Callable[..., Path],
) -> None:
    clip_id, _ = upload_and_complete(tester_client, make_video("clip.mp4", seconds=1.0))
    other = make_user(Role.TESTER)
    stranger = queued_app.test_client()
    stranger.post(
        "/login",
        data={"email": other.email, "password": PASSWORD, "csrf_token": csrf_token(stranger)},
    )
    assert stranger.get(f"/clips/{clip_id}/status").status_code == 404


def test_the_reviewer_queue_never_shows_a_verifying_clip(
    tester_client: FlaskClient,
    queued_app: Flask,
    make_user: Callable[..., User],
    login: Callable[..., object],
    make_video: Callable[..., Path],
) -> None:
    clip_id, _ = upload_and_complete(tester_client, make_video("clip.mp4", seconds=1.0))
    reviewer = make_user(Role.REVIEWER)
    client = queued_app.test_client()
    client.post(
        "/login",
        data={"email": reviewer.email, "password": PASSWORD, "csrf_token": csrf_token(client)},
    )
    assert f"/review/{clip_id}" not in client.get("/review/").get_data(as_text=True)


def test_worker_command_refuses_immediate_mode(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["worker"])
    assert (result.exit_code, "QUEUE_IMMEDIATE" in result.output) == (1, True)


# --- storage faults in a request -----------------------------------------------------------------


def _hang_up(*args: object, **kwargs: object) -> None:
    raise StorageError("storage s3://bucket: head failed: Read timeout on endpoint URL")


def test_a_storage_failure_in_a_request_is_a_503_page_saying_so(
    app: Flask,
    client: FlaskClient,
    login: Callable[..., object],
    make_user: Callable[..., User],
    make_clip: Callable[..., Clip],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reviewer = make_user(Role.REVIEWER)
    clip = make_clip(ClipStatus.WAITING, content=b"\x00" * 64)
    login(reviewer)
    events = db.session.scalar(select(func.count()).select_from(AuditEvent))
    for checks_the_object in ("head", "stat"):  # media on disk is checked with stat()
        monkeypatch.setattr(app_storage(), checks_the_object, _hang_up)
    response = client.get(f"/clips/{clip.id}/media")
    after = db.session.scalar(select(func.count()).select_from(AuditEvent))
    assert (response.status_code, response.headers.get("Retry-After"), after) == (
        503,
        "30",
        events,
    )
    assert "storage is not answering" in response.get_data(as_text=True)


def test_a_storage_failure_in_the_api_is_a_503_problem(
    app: Flask,
    client: FlaskClient,
    make_user: Callable[..., User],
    make_clip: Callable[..., Clip],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from approval.ops import tokens

    tester = make_user(Role.TESTER)
    _, token = tokens.create(tester, name="script", actor=tester)
    db.session.commit()
    monkeypatch.setattr(app_storage(), "presigned_post", _hang_up)
    monkeypatch.setattr(app_storage(), "presigned_put", _hang_up)
    response = client.post(
        "/api/v1/clips",
        json={"title": "A clip", "filename": "clip.mp4", "size": 100},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert (response.status_code, response.mimetype) == (503, "application/problem+json")
    assert db.session.scalar(select(func.count()).select_from(Clip)) == 0


def test_the_error_page_survives_a_killed_connection(
    app_factory: Callable[..., Flask], make_user: Callable[..., User]
) -> None:
    """A killed connection leaves the session needing a rollback; the 500 page must still
    render for a signed-in person (its user loader queries the same session)."""
    broken = app_factory(PROPAGATE_EXCEPTIONS=False)

    @broken.get("/test-broken-flush")
    def broken_flush() -> str:
        # As if the connection was killed before anything had loaded the signed-in user: the
        # error page's user loader is then the first to query the broken session.
        g.pop("_login_user", None)
        db.session.connection().invalidate()
        db.session.execute(text("SELECT 1"))
        return "not reached"

    with broken.app_context():
        person = make_user(Role.TESTER)
        client = broken.test_client()
        client.post(
            "/login",
            data={"email": person.email, "password": PASSWORD, "csrf_token": csrf_token(client)},
        )
        response = client.get("/test-broken-flush")
    assert (response.status_code, "Something went wrong" in response.get_data(as_text=True)) == (
        500,
        True,
    )


def test_a_database_that_went_away_is_a_503_page_saying_so(
    app_factory: Callable[..., Flask],
) -> None:
    broken = app_factory(PROPAGATE_EXCEPTIONS=False)

    @broken.get("/test-database-gone")
    def database_gone() -> str:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    with broken.app_context():
        response = broken.test_client().get("/test-database-gone")
    assert (response.status_code, response.headers.get("Retry-After")) == (503, "30")
    assert "database is not answering" in response.get_data(as_text=True)
