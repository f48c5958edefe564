"""Two web hosts and two worker hosts sharing one PostgreSQL, one S3 server and one Redis.

Each host runs in a network namespace of its own that the test makes (tests/plugins/netns.py),
with its own address on a veth pair: a web host is a gunicorn started from the Procfile's line,
a worker host a `flask worker --periodic` from its line. The shared servers listen on 127.0.0.1,
so the hosts reach them through relays on the far side of their veth: every byte between a host
and the database, the queue, the rate limits and storage crosses a network interface. Where
namespaces cannot be made, the web hosts fall back to loopback addresses of their own
(127.0.0.2 and 127.0.0.3) and say so. Testers upload through both web hosts, reviewers claim
and decide through both at once, and one worker host is killed while it works.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select

from approval import audit
from approval.extensions import db
from approval.models import AuditEvent, Clip, ClipStatus, Decision, Role, User
from tests.plugins.api import bearer
from tests.plugins.factories import PASSWORD
from tests.plugins.netns import HostNetwork, NamespacesUnavailable, host_network
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
        self.webs = []
        for host, loopback in zip(WEB_HOSTS, LOOPBACK_ADDRESSES, strict=True):
            address = network.address(host) if network is not None else loopback
            env = dict(self.env, XDG_RUNTIME_DIR=str(processes.logs_dir))
            command = web.replace("0.0.0.0:${PORT:-8000}", f"{address}:{self.port}")
            assert command != web, "the Procfile's bind changed; update this test"
            processes.start(self._on(host, ["/bin/sh", "-c", command.strip()]), env, host)
            self.webs.append(f"http://{address}:{self.port}")
        worker = next(line for line in procfile if line.startswith("worker:"))
        argv = worker.removeprefix("worker:").split()
        assert argv[0] == "flask", "the Procfile's worker changed; update this test"
        self.worker_argv = [sys.executable, "-m", *argv]
        for base in self.webs:
            wait_for(
                lambda base=base: _answers(base),
                timeout=30,
                what=f"{base} answers",
                logs=processes.logs,
            )

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
