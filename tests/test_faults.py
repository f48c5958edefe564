"""Faults with real processes: S3 (a moto server) frozen by SIGSTOP, and mail servers down or slow.

A stopped moto server still accepts TCP connections (the kernel does) and then says nothing,
which is how a hung S3 looks: requests must answer 503 within the client's bounded timeouts,
change nothing, and the verification job must postpone rather than fail the clip.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from approval import jobs
from approval.clock import utcnow
from approval.extensions import db
from approval.extensions import storage as app_storage
from approval.jobqueue import huey
from approval.models import AuditEvent, Clip, ClipStatus, Notification, ShareLink, User
from approval.ops import claims, sharing, workflow
from approval.ops.workflow import Verdict
from approval.storage import S3Storage
from tests.plugins.factories import FAKE_MEDIA
from tests.plugins.storage import TEST_REGION, make_s3_url, s3_client_for, unique_bucket_name
from tests.plugins.web import csrf_token
from tests.plugins.workers import (
    VERIFY_BOUND,
    Processes,
    Workers,
    child_env,
    events,
    free_port,
    queue_app,
    reaches,
    report_done,
    signed_in,
    snapshot,
    start_upload,
    wait_for,
)

MakeUser = Callable[..., User]
#: What a request may take against a hung storage: the client's ~15 s and some slack.
STORAGE_BOUND = 20.0
#: A decision must not wait on mail at all.
DECISION_BOUND = 1.0


@dataclass
class MotoProcess:
    """moto's S3 server in a child process, so the test can freeze and thaw it."""

    proc: Any
    endpoint: str

    def freeze(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def moto(processes: Processes, aws_credentials: None) -> MotoProcess:
    """`python -m moto.server` on a free port, answering."""
    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = processes.start(argv, child_env(), "moto")
    endpoint = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return requests.get(f"{endpoint}/moto-api/data.json", timeout=1).ok
        except requests.RequestException:
            return False

    wait_for(answers, timeout=30, what="moto's server answers", logs=processes.logs)
    return MotoProcess(proc, endpoint)


@pytest.fixture
def app(
    app_factory: Callable[..., Flask], request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Flask]:
    """The web side on a SqliteHuey queue; on the moto server's S3 when the test asks for it."""
    overrides: dict[str, Any] = {}
    if "moto" in request.fixturenames:
        endpoint = request.getfixturevalue("moto").endpoint
        bucket_url = make_s3_url(unique_bucket_name(), endpoint_url=endpoint, region=TEST_REGION)
        overrides["STORAGE_URL"] = bucket_url + "&addressing=path"
    app = queue_app(app_factory, f"sqlite:///{tmp_path / 'queue.db'}", **overrides)
    with app.app_context():
        yield app


@pytest.fixture
def workers(app: Flask, processes: Processes) -> Workers:
    return Workers(app, processes)


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def audit_count() -> int:
    db.session.rollback()
    return int(db.session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


# --- storage stopped -----------------------------------------------------------------------------


def test_storage_stopped_during_completion_postpones_and_the_clip_is_verified_later(
    app: Flask,
    moto: MotoProcess,
    tester: User,
    workers: Workers,
    processes: Processes,
    make_video: Callable[..., Path],
) -> None:
    """'Done' answers 202 at once; the job postpones (never fails); after SIGCONT it verifies."""
    client = signed_in(app, tester)
    clip_id = start_upload(client, make_video("clip.mp4", seconds=1.0, width=320, height=240))
    workers.start()
    moto.freeze()
    response, elapsed = timed(lambda: report_done(client, clip_id))
    assert (response.status_code, response.get_json()["status"], elapsed < 2) == (
        202,
        "verifying",
        True,
    )

    postponed = wait_for(
        lambda: snapshot(clip_id)["job_error"],
        timeout=STORAGE_BOUND,
        what="the job gives up on the hung storage and postpones",
        logs=processes.logs,
    )
    assert "StorageError" in postponed
    assert (snapshot(clip_id)["status"], snapshot(clip_id)["job_attempts"]) == (
        ClipStatus.VERIFYING,
        1,
    )
    # The worker schedules the retry just after committing the error.
    wait_for(lambda: huey.scheduled_count() == 1, timeout=5, what="the retry is scheduled")

    moto.thaw()
    # The retry is due in 30 s; bring it forward rather than wait (the lease runs until then).
    db.session.execute(update(Clip).where(Clip.id == clip_id).values(job_lease_until=utcnow()))
    db.session.commit()
    jobs.verify_clip(clip_id)
    wait_for(
        reaches(clip_id, ClipStatus.WAITING),
        timeout=VERIFY_BOUND,
        what="the clip is verified once storage is back",
        logs=processes.logs,
    )
    assert (
        events(clip_id, "clip.verified"),
        events(clip_id, "clip.verification_failed"),
        snapshot(clip_id)["job_attempts"],
    ) == (1, 0, 2)


@pytest.fixture(params=["Enabled", "Suspended"])
def versioning(app: Flask, request: pytest.FixtureRequest) -> str:
    """The bucket's versioning, set before anything is stored: on, as `flask storage init`
    leaves it, or suspended, as on a store that keeps no versions."""
    store = app_storage()
    assert isinstance(store, S3Storage)
    s3_client_for(store).put_bucket_versioning(
        Bucket=store.bucket, VersioningConfiguration={"Status": request.param}
    )
    return str(request.param)


@pytest.fixture
def shared_clip(
    app: Flask,
    moto: MotoProcess,
    versioning: str,
    tester: User,
    reviewer: User,
    workers: Workers,
    processes: Processes,
    make_video: Callable[..., Path],
) -> tuple[Clip, str]:
    """A clip uploaded to S3, verified by a real worker, approved, with a share link."""
    client = signed_in(app, tester)
    clip_id = start_upload(client, make_video("clip.mp4", seconds=1.0, width=320, height=240))
    workers.start()
    assert report_done(client, clip_id).status_code == 202
    wait_for(
        reaches(clip_id, ClipStatus.WAITING),
        timeout=VERIFY_BOUND,
        what="the worker verifies the clip",
        logs=processes.logs,
    )
    clip = db.session.get(Clip, clip_id, populate_existing=True)
    assert clip is not None
    claims.claim(clip, reviewer)
    workflow.decide(clip, reviewer, Verdict.APPROVE)
    _, token = sharing.create_link(clip, reviewer)
    db.session.commit()
    return clip, token


def test_media_requests_against_stopped_storage_answer_in_time_and_change_nothing(
    app: Flask, moto: MotoProcess, reviewer: User, shared_clip: tuple[Clip, str], versioning: str
) -> None:
    """Share page, share media and poster, reviewer's media and poster, within the bound.

    In a bucket that keeps versions (as `flask storage init` sets it up) the first requests
    pin each file's VersionId, so later ones need nothing of storage: they answer as before,
    and S3 serves the pinned bytes or none. Without versions each asks storage, and gets 503.
    """
    clip, token = shared_clip
    paths = {
        "share page": (None, f"/s/{token}"),
        "share media": (None, f"/s/{token}/media"),
        "share poster": (None, f"/s/{token}/poster"),
        "reviewer media": (reviewer, f"/clips/{clip.id}/media"),
        "reviewer poster": (reviewer, f"/clips/{clip.id}/poster"),
    }
    clients = {
        name: signed_in(app, user) if user else app.test_client()
        for name, (user, _) in paths.items()
    }
    # Before the stop: the page renders, and media redirect to presigned storage URLs.
    before = {name: clients[name].get(path).status_code for name, (_, path) in paths.items()}
    assert before == {name: 200 if name == "share page" else 302 for name in paths}
    link = db.session.scalars(select(ShareLink).where(ShareLink.clip_id == clip.id)).one()
    counters_before = (link.page_views, link.media_starts)
    events_before = audit_count()

    def fetch(name: str) -> tuple[int, bool, bool]:
        with app.app_context():
            response, elapsed = timed(lambda: clients[name].get(paths[name][1]))
        # Only that there is one (its value is tested in test_rate_limit_headers.py).
        retry_after = response.headers.get("Retry-After", "").isdigit()
        return response.status_code, retry_after, elapsed < STORAGE_BOUND

    moto.freeze()
    try:
        with ThreadPoolExecutor(len(paths)) as pool:
            answers = dict(zip(paths, pool.map(fetch, paths), strict=True))
    finally:
        moto.thaw()
    if versioning == "Enabled":
        assert answers == {name: (code, False, True) for name, code in before.items()}
    else:
        assert answers == {name: (503, True, True) for name in paths}
    db.session.rollback()
    db.session.refresh(link)
    assert ((link.page_views, link.media_starts), audit_count()) == (counters_before, events_before)
    # Storage back: the same link serves again.
    assert clients["share media"].get(f"/s/{token}/media").status_code == 302


# --- mail down or slow ---------------------------------------------------------------------------


def clip_in_review(tester: User, reviewer: User) -> Clip:
    """A verified clip the reviewer has claimed (its bytes are not needed to decide)."""
    clip = workflow.start_upload(tester, title="Dog at sunset", generator="gen-1")
    workflow.begin_verification(clip, tester)
    workflow.pass_verification(clip, FAKE_MEDIA)
    claims.claim(clip, reviewer)
    db.session.commit()
    return clip


def approve(client: FlaskClient, clip: Clip) -> tuple[Any, float]:
    token = csrf_token(client, f"/review/{clip.id}")
    return timed(lambda: client.post(f"/review/{clip.id}/approve", data={"csrf_token": token}))


def notification_of(clip: Clip) -> Notification:
    db.session.rollback()
    return db.session.scalars(
        select(Notification).where(
            Notification.clip_id == clip.id, Notification.kind == "clip.approved"
        )
    ).one()


def test_a_dead_mail_server_never_slows_a_decision_and_the_worker_records_it(
    app: Flask, tester: User, reviewer: User, workers: Workers, processes: Processes
) -> None:
    """Approve answers in under a second; the worker records the SMTP error, retry scheduled."""
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{free_port()}?timeout=2"
    workers.start()
    clip = clip_in_review(tester, reviewer)
    response, elapsed = approve(signed_in(app, reviewer), clip)
    assert (response.status_code, elapsed < DECISION_BOUND) == (302, True)
    wait_for(
        lambda: notification_of(clip).last_email_error,
        timeout=VERIFY_BOUND,
        what="the worker records why the mail was not sent",
        logs=processes.logs,
    )
    # The worker schedules the retry just after committing the error.
    wait_for(lambda: huey.scheduled_count() == 1, timeout=5, what="the retry is scheduled")
    row = notification_of(clip)
    assert (row.email_attempts, row.emailed_at) == (1, None)


class SlowHandler:
    """An SMTP server that takes its time over every message."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.received: list[bytes] = []

    async def handle_DATA(
        self, server: Any, session: Any, envelope: Any
    ) -> str:  # aiosmtpd's hook name
        await asyncio.sleep(self.delay)
        self.received.append(envelope.content)
        return "250 OK"


@pytest.fixture
def slow_smtp() -> Iterator[tuple[str, SlowHandler]]:
    handler = SlowHandler(delay=3.0)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{controller.port}?timeout=10", handler
    finally:
        controller.stop()


def test_a_slow_mail_server_never_slows_a_decision_and_the_mail_arrives(
    app: Flask,
    tester: User,
    reviewer: User,
    workers: Workers,
    processes: Processes,
    slow_smtp: tuple[str, SlowHandler],
) -> None:
    """The server sleeps 3 s per message: Approve still answers at once; the worker mails it."""
    app.config["SMTP_URL"], handler = slow_smtp
    workers.start()
    clip = clip_in_review(tester, reviewer)
    response, elapsed = approve(signed_in(app, reviewer), clip)
    assert (response.status_code, elapsed < DECISION_BOUND) == (302, True)
    wait_for(
        lambda: notification_of(clip).emailed_at,
        timeout=VERIFY_BOUND,
        what="the worker hands the mail to the slow server",
        logs=processes.logs,
    )
    assert len(handler.received) == 1
