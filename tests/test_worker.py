"""The job queue with real processes: `flask worker` consumers on SqliteHuey and on Redis.

The test process is the web side: an app with QUEUE_IMMEDIATE off enqueues into the same queue
the worker processes consume, on the test's own database and storage. Every child process is
killed in teardown, and every wait is a poll with a deadline.

Faults (storage stopped, mail down) are in test_faults.py, which uses the helpers here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from approval import jobs
from approval.extensions import db
from approval.models import AuditEvent, Clip, ClipStatus, Role, User
from approval.workflow import STEP_RENDERING
from tests.conftest import IN_CI, PASSWORD, csrf_token

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("GREENLIGHT_TEST_QUEUE_REDIS_URL", "redis://127.0.0.1:6379/7")
SITE = "http://greenlight.test"
#: Short, so a killed worker's clip is free again in seconds.
LEASE_SECONDS = 3
#: How long a small clip may take from "upload done" to `waiting` on a fresh worker.
VERIFY_BOUND = 30.0

MakeUser = Callable[..., User]


# --- helpers shared with test_faults.py ----------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], Any], *, timeout: float, what: str, logs: Callable[[], str] = str
) -> Any:
    """Poll condition until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:g} s: {what}\n{logs()}")
        time.sleep(0.1)


class Processes:
    """Child processes started by a test, each in a session of its own; all killed at the end."""

    def __init__(self, logs_dir: Path) -> None:
        self.logs_dir = logs_dir
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, argv: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        log_path = self.logs_dir / f"{name}-{len(self.started)}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(  # a fixed argv from this file
                argv,
                cwd=PROJECT_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # A group of its own: a kill takes the worker's media children with it.
                start_new_session=True,
            )
        self.started.append((proc, log_path))
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process and everything it started, as a crashed host would."""
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def logs(self) -> str:
        """The tail of every child's output, for a failure message."""
        parts = []
        for proc, path in self.started:
            tail = path.read_text(errors="replace")[-3000:]
            parts.append(f"--- {path.name} (pid {proc.pid}, exit {proc.poll()}):\n{tail}")
        return "\n".join(parts)

    def close(self) -> None:
        for proc, _ in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGCONT)  # a stopped process dies only once resumed
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment: PATH, fake AWS credentials if the test set them, nothing else."""
    keep = {"PATH", "HOME", "LANG", "TMPDIR"} | {k for k in os.environ if k.startswith("AWS_")}
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def worker_env(app: Flask) -> dict[str, str]:
    """GREENLIGHT_* settings that put a worker on the same database, storage, queue and mail."""
    config = app.config
    settings = {
        "DATABASE_URL": config["DATABASE_URL"],
        "STORAGE_URL": config["STORAGE_URL"],
        "QUEUE_URL": config["QUEUE_URL"],
        "SECRET_KEY": config["SECRET_KEY"],
        "SITE_URL": config["SITE_URL"],
        "JOB_LEASE_SECONDS": str(config["JOB_LEASE_SECONDS"]),
        "SMTP_URL": config["SMTP_URL"] or "",
    }
    return child_env({f"GREENLIGHT_{name}": value for name, value in settings.items()})


class Workers:
    """Start `flask worker` processes for one app."""

    def __init__(self, app: Flask, processes: Processes) -> None:
        self.app = app
        self.processes = processes

    def start(self, *, periodic: bool = False, workers: int = 2) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "flask", "--app", "app", "worker", "--workers", str(workers)]
        argv.append("--periodic" if periodic else "--no-periodic")
        return self.processes.start(argv, worker_env(self.app), "worker")


def queue_app(app_factory: Callable[..., Flask], queue_url: str, **overrides: Any) -> Flask:
    """An app that enqueues for real workers: no immediate mode, real time, short leases."""
    settings: dict[str, Any] = {
        "QUEUE_IMMEDIATE": False,
        "QUEUE_URL": queue_url,
        # Leases and retries are compared with the worker's clock: both must be real time.
        "CLOCK": None,
        "JOB_LEASE_SECONDS": LEASE_SECONDS,
    }
    settings.update(overrides)
    return app_factory(**settings)


def signed_in(app: Flask, user: User) -> FlaskClient:
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(
        "/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302, "sign-in failed"
    return client


def start_upload(client: FlaskClient, path: Path) -> int:
    """The JavaScript path up to "done": a ticket, then the bytes sent where it says."""
    body = path.read_bytes()
    started = client.post(
        "/clips/direct",
        data={
            "title": f"Clip {path.stem}",
            "prompt": "a cat surfing",
            "generator": "vidgen",
            "filename": path.name,
            "size": str(len(body)),
            "csrf_token": csrf_token(client, "/clips/new"),
        },
        headers={"Accept": "application/json"},
    )
    assert started.status_code == 201, started.get_data(as_text=True)
    ticket = started.get_json()
    upload = ticket["upload"]
    if upload["method"] == "PUT":  # local storage: the app's own ticketed PUT
        sent = client.put(upload["url"].removeprefix(SITE), data=body, headers=upload["headers"])
        status = sent.status_code
    else:  # S3: a presigned POST straight to storage
        status = requests.post(
            upload["url"],
            data=upload["fields"],
            files={"file": (path.name, body, upload["fields"]["Content-Type"])},
            timeout=30,
        ).status_code
    assert status in (200, 201, 204), f"storage answered {status}"
    return int(ticket["clip"])


def report_done(client: FlaskClient, clip_id: int) -> Any:
    return client.post(
        f"/clips/{clip_id}/complete",
        headers={"Accept": "application/json", "X-CSRFToken": csrf_token(client, "/clips/new")},
    )


def snapshot(clip_id: int) -> dict[str, Any]:
    """The clip's job columns as another connection sees them now (no transaction kept)."""
    db.session.rollback()
    row = db.session.execute(
        select(
            Clip.status, Clip.job_attempts, Clip.job_lease_until, Clip.pipeline_step, Clip.job_error
        ).where(Clip.id == clip_id)
    ).one()
    db.session.rollback()
    return row._asdict()


def events(clip_id: int, action: str) -> int:
    db.session.rollback()
    count = db.session.scalar(
        select(func.count()).where(AuditEvent.clip_id == clip_id, AuditEvent.action == action)
    )
    db.session.rollback()
    return int(count or 0)


def reaches(clip_id: int, status: ClipStatus) -> Callable[[], bool]:
    return lambda: snapshot(clip_id)["status"] == status


# --- fixtures ------------------------------------------------------------------------------------


def redis_queue_url() -> str:
    """REDIS_URL after emptying its database; skip when Redis is not there, fail in CI."""
    try:
        connection = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        connection.ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} does not answer in CI: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} does not answer: {exc}")
    connection.flushdb()
    connection.close()
    return REDIS_URL


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty queue: SqliteHuey in a file of this test's, or a Redis db of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'queue.db'}"
        return
    url = redis_queue_url()
    yield url
    redis.Redis.from_url(url).flushdb()


@pytest.fixture
def app(app_factory: Callable[..., Flask], queue_url: str) -> Iterator[Flask]:
    """The web side: enqueues into the real queue, on local storage."""
    app = queue_app(app_factory, queue_url)
    with app.app_context():
        yield app


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def workers(app: Flask, processes: Processes) -> Workers:
    return Workers(app, processes)


@pytest.fixture
def tester(app: Flask, make_user: MakeUser) -> FlaskClient:
    return signed_in(app, make_user(Role.TESTER))


# --- a clip verified by a real worker ------------------------------------------------------------


def test_a_worker_process_verifies_an_uploaded_clip_once(
    tester: FlaskClient,
    workers: Workers,
    processes: Processes,
    make_video: Callable[..., Path],
) -> None:
    """complete → 202 verifying at once; a `flask worker` takes it to waiting, logged once."""
    workers.start()
    clip_id = start_upload(tester, make_video("clip.mp4", seconds=1.0, width=320, height=240))
    started = time.monotonic()
    response = report_done(tester, clip_id)
    assert (response.status_code, response.get_json()["status"]) == (202, "verifying")
    assert time.monotonic() - started < 2.0
    wait_for(
        reaches(clip_id, ClipStatus.WAITING),
        timeout=VERIFY_BOUND,
        what="the worker verifies the clip",
        logs=processes.logs,
    )
    assert (events(clip_id, "clip.verified"), snapshot(clip_id)["job_attempts"]) == (1, 1)


# --- a worker killed in the middle of a job ------------------------------------------------------


@pytest.mark.parametrize("queue_url", ["sqlite"], indirect=True)
def test_a_clip_whose_worker_was_killed_is_verified_by_another(
    tester: FlaskClient,
    workers: Workers,
    processes: Processes,
    make_video: Callable[..., Path],
) -> None:
    """SIGKILL mid-render; once the lease lapses the reaper hands it on; B verifies it once."""
    # HEVC needs a rendition: the transcode is a step long enough to be caught in.
    source = make_video("hevc.mp4", seconds=4.0, width=1280, height=720, codec="libx265")
    clip_id = start_upload(tester, source)
    worker_a = workers.start(workers=1)
    assert report_done(tester, clip_id).status_code == 202
    wait_for(
        lambda: snapshot(clip_id)["pipeline_step"] == STEP_RENDERING,
        timeout=VERIFY_BOUND,
        what="worker A reaches the rendering step",
        logs=processes.logs,
    )
    during = snapshot(clip_id)
    assert during["job_attempts"] == 1
    assert during["job_lease_until"] > datetime.now(UTC)  # A holds a live lease
    processes.kill(worker_a)
    assert snapshot(clip_id)["status"] == ClipStatus.VERIFYING

    # The reaper leaves a live lease alone, and takes the clip once it has lapsed.
    jobs.reap_stalled_verifications.call_local()
    assert snapshot(clip_id)["job_attempts"] == 1
    wait_for(
        lambda: snapshot(clip_id)["job_lease_until"] <= datetime.now(UTC),
        timeout=LEASE_SECONDS + 2,
        what="A's lease lapses",
    )
    jobs.reap_stalled_verifications.call_local()  # enqueues verify_clip again

    workers.start(workers=1)
    wait_for(
        reaches(clip_id, ClipStatus.WAITING),
        timeout=VERIFY_BOUND + 30,
        what="worker B verifies the clip",
        logs=processes.logs,
    )
    assert (events(clip_id, "clip.verified"), snapshot(clip_id)["job_attempts"]) == (1, 2)


# --- health --------------------------------------------------------------------------------------


@pytest.mark.parametrize("queue_url", ["sqlite"], indirect=True)
def test_healthz_shows_a_live_workers_heartbeat(
    app: Flask, workers: Workers, processes: Processes
) -> None:
    """With a periodic worker running, /healthz says the queue is ok and how old its beat is."""
    client = app.test_client()
    assert client.get("/healthz").get_json()["worker_heartbeat_age_seconds"] is None
    workers.start(periodic=True)

    def heartbeat_age() -> float | None:
        report = client.get("/healthz").get_json()
        assert report["queue"] == "ok"
        return report["worker_heartbeat_age_seconds"]

    wait_for(
        lambda: heartbeat_age() is not None,
        timeout=15,
        what="a worker heartbeat appears in /healthz",
        logs=processes.logs,
    )
    assert 0 <= (heartbeat_age() or 0) < 15


@pytest.mark.parametrize("queue_url", ["sqlite"], indirect=True)
def test_a_worker_without_the_schedule_beats_too(
    app: Flask, workers: Workers, processes: Processes
) -> None:
    """A worker without --periodic says it is alive too: /healthz shows its heartbeat."""
    client = app.test_client()
    workers.start(periodic=False)
    wait_for(
        lambda: client.get("/healthz").get_json()["worker_heartbeat_age_seconds"] is not None,
        timeout=15,
        what="a heartbeat from a worker without --periodic",
        logs=processes.logs,
    )


def test_healthz_names_an_unreachable_queue(app_factory: Callable[..., Flask]) -> None:
    """A Redis queue nobody answers on: 503, and the report says the queue is unreachable."""
    app = queue_app(app_factory, f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    with app.app_context():
        response = app.test_client().get("/healthz")
    assert (response.status_code, response.get_json()["queue"]) == (503, "unreachable")
    assert time.monotonic() - started < 5
    assert response.get_json()["database"] == "ok"
