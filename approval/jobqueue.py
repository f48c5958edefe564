"""The background job queue: one Huey instance, bound to the app's settings at start-up.

Tasks are declared at import time (Huey's decorators need an instance), so the instance exists
unbound, in immediate mode, until `init_queue` points it at the configured storage:
SqliteHuey's file under instance/ by default, Redis when several hosts share the work.

Jobs are enqueued only after the transaction that asked for them commits (`after_commit`), so
a worker never looks for a row that is not there yet, and a rolled-back request leaves no job.
A job enqueued while the queue is unreachable is not lost for good: the periodic reaper finds
the clip it was for and enqueues it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, has_app_context
from huey import MemoryHuey
from huey.exceptions import CancelExecution
from huey.signals import SIGNAL_COMPLETE, SIGNAL_ERROR
from huey.storage import RedisStorage, SqliteStorage
from redis import ConnectionPool
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

QUEUE_NAME = "greenlight"
HEARTBEAT_KEY = "greenlight:worker-heartbeat"

huey = MemoryHuey(QUEUE_NAME, immediate=True, utc=True)

_PENDING = "greenlight_pending_jobs"
_bound: dict[str, Flask] = {}


def init_queue(app: Flask) -> None:
    """Point the shared Huey instance at the queue this app is configured for."""
    immediate = bool(app.config["QUEUE_IMMEDIATE"])
    huey.immediate = immediate
    if not immediate:
        huey.storage = queue_storage(app.config["QUEUE_URL"])
    app.extensions["greenlight_queue"] = huey
    _bound["app"] = app


def queue_storage(url: str) -> SqliteStorage | RedisStorage:
    """SqliteStorage for sqlite:///PATH, RedisStorage for redis:// URLs."""
    if url.startswith("sqlite:///"):
        return SqliteStorage(name=QUEUE_NAME, filename=url.removeprefix("sqlite:///"), timeout=10)
    # Short socket timeouts: a dead Redis must fail an enqueue quickly, not hang a request.
    # Huey takes a URL or connection options, not both, so the options go on a pool.
    pool = ConnectionPool.from_url(url, socket_connect_timeout=3, socket_timeout=5)
    return RedisStorage(name=QUEUE_NAME, connection_pool=pool)


def job_app() -> Flask:
    """The app a job runs in: the enqueuing request's in immediate mode, else the worker's."""
    if has_app_context():
        return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]
    return _bound["app"]


def enqueue_after_commit(session: Session, task: Callable[..., Any], *args: Any) -> None:
    """Enqueue task(*args) once this session's transaction commits; never if it rolls back."""
    session.info.setdefault(_PENDING, []).append((task, args))


@event.listens_for(Session, "after_commit")
def _enqueue_committed(session: Session) -> None:
    for task, args in session.info.pop(_PENDING, []):
        try:
            task(*args)
        except Exception:  # the commit stands; the reaper re-enqueues what this lost
            log.exception("could not enqueue %s%r; the periodic reaper will retry", task, args)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)


def record_heartbeat() -> None:
    """Say that a worker is alive now (healthz reports the age)."""
    huey.storage.put_data(HEARTBEAT_KEY, str(time.time()).encode())


def beat_while_consuming() -> None:
    """Make this process's consumer beat when it starts and after every task it runs.

    The periodic heartbeat task runs only on the one consumer with --periodic; without this,
    workers that only verify and mail would never show in /healthz.
    """

    def beat(*_: Any, **__: Any) -> None:
        try:
            record_heartbeat()
        except Exception:  # a missed beat must never fail the task it follows
            log.warning("could not record the worker heartbeat", exc_info=True)

    huey.on_startup("greenlight-heartbeat")(beat)
    huey.signal(SIGNAL_COMPLETE, SIGNAL_ERROR)(beat)


#: Periodic task name → how many seconds one period lasts. Every worker host may run the
#: schedule (--periodic); the first consumer to claim a period runs the task, the others skip.
_PERIODS: dict[str, int] = {}


def once_per_period(seconds: int) -> Callable[[Any], Any]:
    """Mark a periodic task to run once per `seconds` across the deployment, not per host.

    Apply it outside `huey.periodic_task`, so it sees the task's registered name.
    """

    def mark(task: Any) -> Any:
        _PERIODS[task.task_class.__name__] = seconds  # what a running task calls its name
        return task

    return mark


def claim_period(name: str, seconds: int, now: float | None = None) -> bool:
    """Whether this consumer is the first in the deployment to run `name` this period.

    The claim is a put-if-empty in the queue's own storage (a Redis hash field, a SQLite row),
    shared by every host that shares the queue. The previous period's claim is dropped, so
    claims do not pile up. Hosts' clocks need only agree well within one period.
    """
    period = int((time.time() if now is None else now) // seconds)
    claimed = bool(huey.storage.put_if_empty(_period_key(name, period), b"1"))
    if claimed:
        huey.storage.delete_data(_period_key(name, period - 1))
    return claimed


def _period_key(name: str, period: int) -> str:
    return f"greenlight:periodic:{name}:{period}"


def run_periodic_once_per_deployment() -> None:
    """Make this process's consumer skip a periodic task another host ran this period.

    A pre-execute hook runs only in a consumer, so `task.call_local()` (tests, the CLI) always
    runs the task.
    """

    def skip_if_claimed(task: Any) -> None:
        seconds = _PERIODS.get(task.name)
        if seconds is not None and not claim_period(task.name, seconds):
            log.info("%s: already run this period by another worker; skipped", task.name)
            raise CancelExecution()

    huey.pre_execute("greenlight-once-per-period")(skip_if_claimed)


def queue_health() -> dict[str, Any]:
    """Whether the queue answers, how many jobs wait, and the last worker heartbeat's age."""
    storage = huey.storage
    try:
        pending = storage.queue_size()
        raw = storage.peek_data(HEARTBEAT_KEY)
    except Exception as exc:  # any failure is the report's content
        log.warning("health check: queue failed: %s", exc)
        return {"queue": "unreachable"}
    report: dict[str, Any] = {"queue": "ok", "jobs_waiting": pending}
    if isinstance(raw, bytes):
        report["worker_heartbeat_age_seconds"] = round(time.time() - float(raw), 1)
    else:
        report["worker_heartbeat_age_seconds"] = None
    return report
