"""The job queue with real processes: `flask worker` consumers on SqliteHuey and on Redis.

The test process is the web side: an app with QUEUE_IMMEDIATE off enqueues into the same queue
the worker processes consume, on the test's own database and storage. Every child process is
killed in teardown, and every wait is a poll with a deadline.

Faults (storage stopped, mail down) are in test_faults.py; the helpers are tests/plugins/workers.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from huey.constants import EmptyData

from approval import jobqueue, jobs
from approval.models import STEP_RENDERING, ClipStatus, User
from tests.plugins.workers import (
    LEASE_SECONDS,
    REDIS_URL,
    VERIFY_BOUND,
    Processes,
    Workers,
    events,
    free_port,
    fresh_redis,
    queue_app,
    reaches,
    report_done,
    signed_in,
    snapshot,
    start_upload,
    wait_for,
)

# --- fixtures ------------------------------------------------------------------------------------


def redis_queue_url() -> str:
    """REDIS_URL after emptying its database; skip when Redis is not there, fail in CI."""
    return fresh_redis(REDIS_URL)


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
def workers(app: Flask, processes: Processes) -> Workers:
    return Workers(app, processes)


@pytest.fixture
def tester_client(app: Flask, tester: User) -> FlaskClient:
    """A client of its own, signed in as the shared `tester`."""
    return signed_in(app, tester)


# --- a clip verified by a real worker ------------------------------------------------------------


def test_a_worker_process_verifies_an_uploaded_clip_once(
    tester_client: FlaskClient,
    workers: Workers,
    processes: Processes,
    make_video: Callable[..., Path],
) -> None:
    """complete → 202 verifying at once; a `flask worker` takes it to waiting, logged once."""
    workers.start()
    clip_id = start_upload(
        tester_client, make_video("clip.mp4", seconds=1.0, width=320, height=240)
    )
    started = time.monotonic()
    response = report_done(tester_client, clip_id)
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
    tester_client: FlaskClient,
    workers: Workers,
    processes: Processes,
    make_video: Callable[..., Path],
) -> None:
    """SIGKILL mid-render; once the lease lapses the reaper hands it on; B verifies it once."""
    # HEVC needs a rendition: the transcode is a step long enough to be caught in.
    source = make_video("hevc.mp4", seconds=4.0, width=1280, height=720, codec="libx265")
    clip_id = start_upload(tester_client, source)
    worker_a = workers.start(workers=1)
    assert report_done(tester_client, clip_id).status_code == 202
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


def test_periodic_jobs_run_once_per_period_across_workers(
    app: Flask, workers: Workers, processes: Processes
) -> None:
    """Two hosts both run the schedule; a periodic job asked for four times runs once."""
    workers.start(periodic=True)
    workers.start(periodic=True)
    for _ in range(4):
        jobs.queue_digest()  # as each host's scheduler would, at 07:00

    def log_lines(pattern: str) -> int:
        return sum(
            len(re.findall(pattern, path.read_text(errors="replace")))
            for _, path in processes.started
        )

    ran = r"jobs\.queue_digest: \S+ executed in"
    skipped = r"jobs\.queue_digest: \S+ cancelled by greenlight-once-per-period"
    wait_for(
        lambda: log_lines(ran) + log_lines(skipped) >= 4,
        timeout=30,
        what="every digest job to end, run or skipped",
        logs=processes.logs,
    )
    assert log_lines(ran) == 1, processes.logs()
    assert log_lines(skipped) == 3, processes.logs()


def test_a_period_is_claimed_once_across_hosts_and_the_last_claim_is_dropped(app: Flask) -> None:
    """The claim itself, on the queue's real storage (SQLite or Redis)."""
    day = 86400.0
    now = 1_800_000_000.0
    assert jobqueue.claim_period("digest", 86400, now=now)
    assert not jobqueue.claim_period("digest", 86400, now=now + 60)
    assert not jobqueue.claim_period("digest", 86400, now=now + 61)
    assert jobqueue.claim_period("other", 86400, now=now)  # each job has its own claim
    assert jobqueue.claim_period("digest", 86400, now=now + day)  # the next day
    period = int(now // day)
    assert jobqueue.huey.storage.peek_data(f"greenlight:periodic:digest:{period}") is EmptyData


def test_healthz_names_an_unreachable_queue(app_factory: Callable[..., Flask]) -> None:
    """A Redis queue nobody answers on: 503, and the report says the queue is unreachable."""
    app = queue_app(app_factory, f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    with app.app_context():
        response = app.test_client().get("/healthz")
    assert (response.status_code, response.get_json()["queue"]) == (503, "unreachable")
    assert time.monotonic() - started < 5
    assert response.get_json()["database"] == "ok"
