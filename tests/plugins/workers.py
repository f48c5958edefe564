"""Real child processes: `flask worker`, the Procfile's gunicorn, moto's server, their logs.

Load with ``pytest_plugins = ["tests.plugins.workers"]`` (tests/conftest.py does). Shared by
tests/test_worker.py, tests/test_faults.py, tests/test_gunicorn.py and tests/test_overload.py,
so none of them imports another.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from approval.extensions import db
from approval.models import AuditEvent, Clip, ClipStatus, User
from tests.plugins.factories import PASSWORD
from tests.plugins.web import csrf_token

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("GREENLIGHT_TEST_QUEUE_REDIS_URL", "redis://127.0.0.1:6379/7")
SITE = "http://greenlight.test"
#: Short, so a killed worker's clip is free again in seconds.
LEASE_SECONDS = 3
#: How long a small clip may take from "upload done" to `waiting` on a fresh worker.
VERIFY_BOUND = 30.0

MakeUser = Callable[..., User]


# --- helpers ----------------------------------------------------------------------------------


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


WEB_LINE = re.compile(r"^web:\s*(?P<command>.+)$", re.MULTILINE)
PROCFILE_BIND = "0.0.0.0:${PORT:-8000}"


def procfile_web_command() -> str:
    match = WEB_LINE.search((PROJECT_ROOT / "Procfile").read_text())
    assert match, "the Procfile has no web: line"
    return match.group("command").strip()


class WebServer:
    """One gunicorn started from the Procfile's line on 127.0.0.1 and a free port.

    `settings` are further environment variables for the server only, such as
    GREENLIGHT_MAX_CLIP_BYTES="4096" or a rate-limit store; `worker_processes` replaces the
    Procfile's --workers (one process keeps one in-memory count). Its output goes to a file.
    """

    def __init__(
        self, processes: Processes, app: Flask, *, worker_processes: int | None = None,
        **settings: str,
    ) -> None:  # fmt: skip
        self.port = free_port()
        env = {**worker_env(app), **settings}
        # gunicorn's control socket goes here, not into a ~/.gunicorn shared with other runs.
        env["XDG_RUNTIME_DIR"] = str(processes.logs_dir)
        # The Procfile names `gunicorn`; the one installed beside this interpreter.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        command = procfile_web_command()
        assert PROCFILE_BIND in command, "the Procfile's bind changed; update WebServer"
        # Loopback only: nothing outside this machine can reach a test's server.
        command = command.replace(PROCFILE_BIND, f"127.0.0.1:{self.port}")
        if worker_processes is not None:
            procfile_workers = re.search(r"--workers \d+", command)
            assert procfile_workers, "the Procfile's --workers changed; update WebServer"
            command = command.replace(procfile_workers[0], f"--workers {worker_processes}")
        self.proc = processes.start(["/bin/sh", "-c", command], env, "web")
        self.processes = processes
        self.base = f"http://127.0.0.1:{self.port}"
        wait_for(self._answers, timeout=30, what="gunicorn answers /healthz", logs=self.log)

    def _answers(self) -> bool:
        try:
            requests.get(f"{self.base}/healthz", timeout=1)
        except requests.RequestException:
            return False
        return True

    def log(self) -> str:
        return self.processes.logs()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.close()


def fresh_redis(url: str) -> str:
    """url after emptying its Redis database; skip when Redis is not there, fail in CI."""
    import redis

    from tests.plugins.database import IN_CI

    try:
        connection = redis.Redis.from_url(url, socket_connect_timeout=2)
        connection.ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {url} does not answer in CI: {exc}")
        pytest.skip(f"Redis at {url} does not answer: {exc}")
    connection.flushdb()
    connection.close()
    return url
