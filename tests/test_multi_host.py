"""Two web hosts and two worker hosts sharing one PostgreSQL, one S3 server and one Redis.

Each host runs in a network namespace of its own that the test makes (tests/plugins/netns.py),
with its own address on a veth pair: a web host is a gunicorn started from the Procfile's line,
a worker host a `flask worker --periodic` from its line. The shared servers listen on 127.0.0.1,
so the hosts reach them through relays on the far side of their veth: every byte between a host
and the database, the queue, the rate limits and storage crosses a network interface. Where
namespaces cannot be made, the web hosts fall back to loopback addresses of their own
(127.0.0.2 and 127.0.0.3) and say so. Testers upload through both web hosts, reviewers claim
and decide through both at once, and one worker host is killed while it works; a second test
kills each web host in the middle of a request (a form upload streaming to S3, a decision waiting
to commit) and finds nothing half-done.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select, text

from approval import audit
from approval.extensions import db, storage
from approval.models import AuditEvent, AuditHead, Clip, ClipStatus, Decision, Role, User
from approval.ops import storage_gc
from tests.plugins.api import bearer
from tests.plugins.factories import PASSWORD
from tests.plugins.netns import HostNetwork, NamespacesUnavailable, host_network
from tests.plugins.storage import s3_client_for
from tests.plugins.workers import (
    PROJECT_ROOT,
    Processes,
    free_port,
    fresh_redis,
    wait_for,
    worker_env,
)

pytestmark = pytest.mark.postgres

MakeUser = Callable[..., User]
WEB_HOSTS = ("web-a", "web-b")
WORKER_HOSTS = ("worker-a", "worker-b")
#: Without namespaces: the web hosts' loopback addresses.
LOOPBACK_ADDRESSES = ("127.0.0.2", "127.0.0.3")
REDIS_BASE = os.environ.get("GREENLIGHT_TEST_MULTI_HOST_REDIS", "redis://127.0.0.1:6379")
CLIPS = 10
REVIEWERS = 4


def _fresh_redis(db_number: int) -> str:
    return fresh_redis(f"{REDIS_BASE}/{db_number}")


@pytest.fixture
def app(app_factory: Callable[..., Flask], moto_server_s3_url: str) -> Iterator[Flask]:
    """The deployment's settings; the test process itself only seeds users and reads rows."""
    app = app_factory(
        STORAGE_URL=moto_server_s3_url,
        QUEUE_IMMEDIATE=False,
        QUEUE_URL=_fresh_redis(9),
        RATELIMIT_STORAGE_URL=_fresh_redis(10),
        CLOCK=None,
        JOB_LEASE_SECONDS=3,
    )
    with app.app_context():
        yield app


@pytest.fixture
def network() -> Iterator[HostNetwork | None]:
    """The hosts' namespaces, or None (loopback addresses) where they cannot be made."""
    try:
        with host_network([*WEB_HOSTS, *WORKER_HOSTS]) as made:
            yield made
    except NamespacesUnavailable as exc:
        # Shown with the test's output; the hosts still differ by address and process.
        print(f"hosts on loopback addresses, not in namespaces: {exc}")
        yield None


def _with_endpoint(storage_url: str, endpoint: str) -> str:
    parts = urlsplit(storage_url)
    query = dict(parse_qsl(parts.query))
    query["endpoint_url"] = endpoint
    return urlunsplit(parts._replace(query=urlencode(query)))


def _host_env(app: Flask, network: HostNetwork | None) -> dict[str, str]:
    """The settings every host gets: the shared servers, through relays when namespaced."""
    env = worker_env(app)
    env["GREENLIGHT_RATELIMIT_STORAGE_URL"] = app.config["RATELIMIT_STORAGE_URL"]
    # Each namespace reaches the web hosts from an address of its own, so the limit shown to be
    # shared is the one per account, whatever the address.
    env["GREENLIGHT_LOGIN_ACCOUNT_RATE_LIMIT"] = "5 per minute"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if network is not None:
        for name in ("DATABASE_URL", "QUEUE_URL", "RATELIMIT_STORAGE_URL"):
            env[f"GREENLIGHT_{name}"] = network.forward(env[f"GREENLIGHT_{name}"])
        endpoint = dict(parse_qsl(urlsplit(env["GREENLIGHT_STORAGE_URL"]).query))["endpoint_url"]
        env["GREENLIGHT_STORAGE_URL"] = _with_endpoint(
            env["GREENLIGHT_STORAGE_URL"], network.forward(endpoint)
        )
    return env


class Deployment:
    """The hosts' processes and their base URLs."""

    def __init__(self, app: Flask, processes: Processes, network: HostNetwork | None) -> None:
        self.processes = processes
        self.network = network
        self.env = _host_env(app, network)
        self.port = free_port()
        procfile = (PROJECT_ROOT / "Procfile").read_text().splitlines()
        web = next(line for line in procfile if line.startswith("web:")).removeprefix("web:")
        self.webs: list[str] = []
        self._web_commands: list[tuple[str, list[str], dict[str, str]]] = []
        self.web_processes: list[subprocess.Popen[bytes]] = []
        for host, loopback in zip(WEB_HOSTS, LOOPBACK_ADDRESSES, strict=True):
            address = network.address(host) if network is not None else loopback
            env = dict(self.env, XDG_RUNTIME_DIR=str(processes.logs_dir))
            command = web.replace("0.0.0.0:${PORT:-8000}", f"{address}:{self.port}")
            assert command != web, "the Procfile's bind changed; update this test"
            self._web_commands.append((host, ["/bin/sh", "-c", command.strip()], env))
            self.web_processes.append(
                processes.start(self._on(host, ["/bin/sh", "-c", command.strip()]), env, host)
            )
            self.webs.append(f"http://{address}:{self.port}")
        worker = next(line for line in procfile if line.startswith("worker:"))
        argv = worker.removeprefix("worker:").split()
        assert argv[0] == "flask", "the Procfile's worker changed; update this test"
        self.worker_argv = [sys.executable, "-m", *argv]
        for n in range(len(self.webs)):
            self._wait_for_web(n)

    def _wait_for_web(self, n: int) -> None:
        base = self.webs[n]
        wait_for(
            lambda: _answers(base), timeout=30, what=f"{base} answers", logs=self.processes.logs
        )

    def lose_web(self, n: int) -> None:
        """SIGKILL web host n's gunicorn and its workers, as a crashed machine would."""
        self.processes.kill(self.web_processes[n])

    def restart_web(self, n: int) -> None:
        host, argv, env = self._web_commands[n]
        self.web_processes[n] = self.processes.start(self._on(host, argv), env, host)
        self._wait_for_web(n)

    def _on(self, host: str, argv: list[str]) -> list[str]:
        return self.network.run_in(host, argv) if self.network is not None else argv

    def start_worker(self, host: str, name: str) -> Any:
        return self.processes.start(self._on(host, self.worker_argv), self.env, name)


def _answers(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _instance_files() -> dict[str, float]:
    instance = PROJECT_ROOT / "instance"
    if not instance.exists():
        return {}
    return {str(p): p.stat().st_mtime for p in instance.rglob("*") if p.is_file()}


def _upload(base: str, headers: dict[str, str], body: bytes, n: int) -> int:
    created = requests.post(
        f"{base}/api/v1/clips",
        json={"title": f"Clip {n}", "filename": f"clip{n}.mp4", "size": len(body)},
        headers=headers,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    ticket = created.json()
    upload = ticket["upload"]
    assert upload["method"] == "POST"
    sent = requests.post(
        upload["url"],
        data=upload["fields"],
        files={"file": (f"clip{n}.mp4", body, upload["fields"]["Content-Type"])},
        timeout=30,
    )
    assert sent.status_code in (200, 201, 204), sent.text
    done = requests.post(
        f"{base}/api/v1/clips/{ticket['id']}/complete", headers=headers, timeout=30
    )
    assert done.status_code == 202, done.text
    return int(ticket["id"])


def _review_until_empty(base: str, headers: dict[str, str], outcomes: list[Any]) -> None:
    """Claim and decide through one web host until the queue is empty for this reviewer."""
    while True:
        claimed = requests.post(f"{base}/api/v1/review/claim", headers=headers, timeout=30)
        if claimed.status_code == 204:
            return
        assert claimed.status_code == 200, claimed.text
        clip_id = claimed.json()["id"]
        decided = requests.post(
            f"{base}/api/v1/clips/{clip_id}/decision",
            json={"decision": "approve"},
            headers=headers,
            timeout=30,
        )
        outcomes.append((clip_id, decided.status_code))


def _a_lease_is_held(ids: list[int]) -> Callable[[], bool]:
    def check() -> bool:
        db.session.rollback()
        held = db.session.scalar(
            select(func.count()).where(
                Clip.id.in_(ids),
                Clip.status == ClipStatus.VERIFYING,
                Clip.job_lease_until.is_not(None),
            )
        )
        db.session.rollback()
        return bool(held)

    return check


def _waiting_or_later(ids: list[int]) -> Callable[[], bool]:
    def check() -> bool:
        db.session.rollback()
        statuses = set(db.session.scalars(select(Clip.status).where(Clip.id.in_(ids))))
        db.session.rollback()
        return statuses <= {ClipStatus.WAITING, ClipStatus.APPROVED}

    return check


def test_two_web_and_two_worker_hosts_share_one_deployment(
    app: Flask,
    network: HostNetwork | None,
    processes: Processes,
    make_user: MakeUser,
    make_video: Callable[..., Path],
) -> None:
    before = _instance_files()
    testers = [make_user(Role.TESTER) for _ in range(2)]
    reviewers = [make_user(Role.REVIEWER) for _ in range(REVIEWERS)]
    tester_headers = [bearer(tester) for tester in testers]
    reviewer_headers = [bearer(reviewer) for reviewer in reviewers]
    deployment = Deployment(app, processes, network)
    if network is not None:  # the hosts are apart: the servers' own addresses are out of reach
        database_port = urlsplit(app.config["DATABASE_URL"]).port or 5432
        probe = f"import socket; socket.create_connection(('127.0.0.1', {database_port}), 2)"
        reached = subprocess.run(
            network.run_in("worker-b", [sys.executable, "-c", probe]),
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert reached.returncode != 0, "a host reached the database without its relay"
    webs = deployment.webs

    # Uploads through both web hosts at once; the two worker hosts share the verification.
    videos = [
        make_video(f"v{n}.mp4", seconds=1.0, width=320, height=180, fps=24 + n)
        for n in range(CLIPS)
    ]
    ids: list[int] = []
    errors: list[BaseException] = []

    def upload(n: int) -> None:
        try:
            ids.append(_upload(webs[n % 2], tester_headers[n % 2], videos[n].read_bytes(), n))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    # A worker host is lost in the middle of a job; two others share the rest, and the reaper
    # (on whichever of them claims its period) hands on what the lost one held.
    doomed = deployment.start_worker("worker-a", "worker-doomed")
    threads = [threading.Thread(target=upload, args=(n,)) for n in range(CLIPS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    wait_for(
        _a_lease_is_held(ids), timeout=60, what="the doomed host takes a job", logs=processes.logs
    )
    processes.kill(doomed)
    deployment.start_worker("worker-a", "worker-a")  # the lost host, restarted
    deployment.start_worker("worker-b", "worker-b")
    wait_for(
        _waiting_or_later(ids),
        timeout=150,
        what="every clip verified by the surviving worker hosts",
        logs=processes.logs,
    )
    db.session.rollback()
    rows = db.session.execute(select(Clip.id, Clip.job_attempts).where(Clip.id.in_(ids))).all()
    attempts = {clip_id: tries for clip_id, tries in rows}
    assert max(attempts.values()) == 2, attempts  # the lost job was taken up again, once

    # Reviewers decide through both web hosts at once.
    outcomes: list[Any] = []
    reviewing = [
        threading.Thread(
            target=_review_until_empty, args=(webs[n % 2], reviewer_headers[n], outcomes)
        )
        for n in range(REVIEWERS)
    ]
    for thread in reviewing:
        thread.start()
    for thread in reviewing:
        thread.join()

    db.session.rollback()
    assert sorted(clip_id for clip_id, _ in outcomes) == sorted(ids)  # each decided once
    assert {status for _, status in outcomes} == {200}
    per_clip = Counter(
        db.session.scalars(select(Decision.clip_id).where(Decision.clip_id.in_(ids)))
    )
    assert set(per_clip.values()) == {1}
    claimed = Counter(
        db.session.scalars(select(AuditEvent.clip_id).where(AuditEvent.action == "clip.claimed"))
    )
    assert set(claimed.values()) == {1}
    verified = Counter(
        db.session.scalars(select(AuditEvent.clip_id).where(AuditEvent.action == "clip.verified"))
    )
    assert sorted(verified) == sorted(ids)
    assert set(verified.values()) == {1}
    assert audit.verify().ok
    approved = db.session.scalar(
        select(func.count()).where(Clip.id.in_(ids), Clip.status == ClipStatus.APPROVED)
    )
    assert approved == CLIPS

    # Sign-in limits are shared: wrong passwords through either host count together.
    email = testers[0].email
    answers = []
    for attempt in range(6):
        session = requests.Session()
        base = webs[attempt % 2]
        page = session.get(f"{base}/login", timeout=10)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
        assert token, page.text
        answer = session.post(
            f"{base}/login",
            data={"email": email, "password": PASSWORD + "wrong", "csrf_token": token[1]},
            timeout=10,
            allow_redirects=False,
        )
        answers.append(answer.status_code)
    assert answers == [200] * 5 + [429], answers

    # Nothing was written on the hosts' disks under instance/.
    assert _instance_files() == before


# --- a web host lost mid-request ----------------------------------------------------------------


def _browser_session(base: str, user: User) -> tuple[requests.Session, str]:
    """Signed in through the sign-in form; with the upload page's CSRF token."""
    session = requests.Session()
    page = session.get(f"{base}/login", timeout=10)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
    assert token, page.text
    signed = session.post(
        f"{base}/login",
        data={"email": user.email, "password": PASSWORD, "csrf_token": token[1]},
        timeout=10,
        allow_redirects=False,
    )
    assert signed.status_code == 302, signed.text
    form = session.get(f"{base}/clips/new", timeout=10)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form.text)
    assert token, form.text
    return session, token[1]


def _unfinished_uploads() -> list[str]:
    """Keys of the multipart uploads the bucket holds that nobody completed or aborted."""
    store: Any = storage()
    listed = s3_client_for(store).list_multipart_uploads(Bucket=store.bucket)
    return [upload["Key"] for upload in listed.get("Uploads", [])]


def _lock_waiters() -> int:
    """Database sessions (of any host) waiting on a row lock right now."""
    return int(
        db.session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    )


def test_a_web_host_lost_mid_request_loses_no_decision_and_no_clip(
    app: Flask,
    network: HostNetwork | None,
    processes: Processes,
    make_user: MakeUser,
    make_video: Callable[..., Path],
) -> None:
    """SIGKILL a web host while it streams a form upload to S3, and while a decision of its
    waits to commit: neither leaves a row, an event or an object behind, and each succeeds
    when tried again through the other host."""
    tester = make_user(Role.TESTER)
    reviewer = make_user(Role.REVIEWER)
    deployment = Deployment(app, processes, network)
    web_a, web_b = deployment.webs
    deployment.start_worker("worker-b", "worker-b")
    head_before = db.session.get(AuditHead, 1)
    assert head_before is not None
    events_before = head_before.event_count

    # 1. The no-JavaScript form post, which the web host streams to S3 in 8 MiB parts: lost
    # once the bucket holds a multipart upload of it.
    video = make_video("lost.mp4", seconds=1.0, width=320, height=180)
    padded = video.read_bytes() + os.urandom(64 * 1024 * 1024)  # eight parts, one at a time
    session, csrf = _browser_session(web_a, tester)
    failures: list[BaseException] = []

    def post_form() -> None:
        try:
            session.post(
                f"{web_a}/clips/new",
                data={"title": "Lost with its host", "csrf_token": csrf},
                files={"file": ("lost.mp4", padded, "video/mp4")},
                timeout=60,
            )
        except requests.RequestException as exc:  # expected: the host is gone
            failures.append(exc)

    posting = threading.Thread(target=post_form)
    posting.start()
    deadline = time.monotonic() + 60
    while not _unfinished_uploads():  # polled tightly: the parts take well under a second
        assert posting.is_alive(), f"the upload ended before its host was lost\n{processes.logs()}"
        assert time.monotonic() < deadline, processes.logs()
        time.sleep(0.005)
    deployment.lose_web(0)
    posting.join(timeout=60)
    assert failures, "the upload was answered although its host was killed"
    db.session.rollback()
    assert db.session.scalar(select(func.count()).where(Clip.tester_id == tester.id)) == 0
    assert db.session.get(AuditHead, 1).event_count == events_before  # nothing logged
    # No object, only the parts of an unfinished upload, which garbage collection aborts once
    # it is older than an upload ticket's life (moto dates every upload 2010, so at once here).
    assert not list(storage().list_keys("")), "the lost upload left an object"
    [unfinished] = _unfinished_uploads()
    assert unfinished.startswith("incoming/"), unfinished
    swept = storage_gc.collect(storage(), grace=storage_gc.grace_period(), delete=True)
    assert [item.key for item in swept] == [unfinished]
    assert _unfinished_uploads() == []

    # Tried again through the other host: one clip, verified once.
    session, csrf = _browser_session(web_b, tester)
    answer = session.post(
        f"{web_b}/clips/new",
        data={"title": "Sent again", "csrf_token": csrf},
        files={"file": ("again.mp4", video.read_bytes(), "video/mp4")},
        timeout=60,
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text
    [clip_id] = db.session.scalars(select(Clip.id).where(Clip.tester_id == tester.id))
    wait_for(_waiting_or_later([clip_id]), timeout=60, what="the clip is verified")

    # 2. A decision lost while it waits for the audit head, which the test holds.
    headers = bearer(reviewer)
    claimed = requests.post(f"{web_b}/api/v1/review/claim", headers=headers, timeout=30)
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["id"] == clip_id
    db.session.rollback()
    events_before = db.session.get(AuditHead, 1).event_count
    db.session.rollback()
    outcome: list[Any] = []

    def approve(base: str, reason: str) -> requests.Response:
        return requests.post(
            f"{base}/api/v1/clips/{clip_id}/decision",
            json={"decision": "approve", "reason": reason},
            headers=headers,
            timeout=60,
        )

    with db.engine.connect() as holder:
        holder.execute(text("SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE"))

        def decide() -> None:
            try:
                outcome.append(approve(web_b, "lost with its host"))
            except requests.RequestException as exc:  # expected: the host is gone
                outcome.append(exc)

        deciding = threading.Thread(target=decide)
        deciding.start()
        wait_for(lambda: _lock_waiters() > 0, timeout=30, what="the decision waits to commit")
        deployment.lose_web(1)  # in the middle of its transaction
        deciding.join(timeout=60)
        holder.rollback()  # the head is free; the lost host's transaction can never commit
    [lost] = outcome
    assert isinstance(lost, requests.RequestException), lost
    wait_for(lambda: _lock_waiters() == 0, timeout=30, what="the lost transaction ends")
    db.session.rollback()
    assert db.session.scalar(select(func.count()).where(Decision.clip_id == clip_id)) == 0
    assert db.session.get(Clip, clip_id).status == ClipStatus.IN_REVIEW  # still the reviewer's
    assert db.session.get(AuditHead, 1).event_count == events_before
    db.session.rollback()

    # A host comes back: the same decision goes through once, and a repeat of it is refused.
    deployment.restart_web(0)
    decided = approve(web_a, "tried again")
    assert decided.status_code == 200, decided.text
    again = approve(web_a, "a client retrying a lost answer")
    assert again.status_code == 409, again.text
    db.session.rollback()
    assert db.session.scalar(select(func.count()).where(Decision.clip_id == clip_id)) == 1
    approvals = db.session.scalar(
        select(func.count()).where(
            AuditEvent.clip_id == clip_id, AuditEvent.action == "clip.approved"
        )
    )
    assert approvals == 1
    assert audit.verify().ok
