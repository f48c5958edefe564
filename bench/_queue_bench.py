"""The review queue benchmark itself: bench/queue.py runs it and says what it measures."""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from approval import create_app, paging
from approval.extensions import db
from approval.models import Clip, ClipStatus, Role, User
from approval.ops import claims, people
from bench._common import ms, percentile, record

TESTER, REVIEWER, PASSWORD = "tess@example.com", "rita@example.com", "bench password 123"
FIGURES = ("first page", "deep page", "counts", "claim-next")
#: Rows per INSERT statement while seeding.
CHUNK = 5_000
#: How far down the queue the deep page's cursor points.
DEEP = 0.9


@dataclass
class Run:
    """One database's figures in seconds, samples[figure][size] for whole requests and
    sql[figure][size] for their SQL statements alone, and what seeding cost."""

    name: str
    samples: dict[str, dict[int, list[float]]] = field(
        default_factory=lambda: {figure: {} for figure in FIGURES}
    )
    sql: dict[str, dict[int, list[float]]] = field(
        default_factory=lambda: {figure: {} for figure in FIGURES}
    )
    seed_seconds: dict[int, float] = field(default_factory=dict)


def make_app(url: str, tmp: Path) -> Flask:
    """The app on `url`, with CSRF and rate limits off: the bench signs in and posts directly."""
    settings = {
        "DATABASE_URL": url,
        "STORAGE_URL": (tmp / "storage").as_uri(),
        "SECRET_KEY": "bench-" + "k" * 40,
        "SITE_URL": "http://greenlight.bench",
        "QUEUE_IMMEDIATE": True,
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
    }
    return create_app(settings, instance_path=tmp / "instance", environ={})


def schema_of(size: int) -> str:
    """The PostgreSQL schema that holds the queue of this size."""
    return f"queue_{size}"


def postgres_url(url: str, size: int) -> str:
    """The bench's PostgreSQL URL, with its connections working in the schema of this size."""
    options = {"options": f"-csearch_path={schema_of(size)}"}
    return sa.make_url(url).update_query_dict(options).render_as_string(hide_password=False)


def empty_postgres(url: str, sizes: list[int]) -> None:
    """Drop what an earlier run left (the public schema, as earlier versions used it, too)."""
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
        for size in sizes:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema_of(size)} CASCADE"))
            conn.execute(sa.text(f"CREATE SCHEMA {schema_of(size)}"))
    engine.dispose()


def build_schema(app: Flask) -> None:
    """Run the migrations on the (empty) database, as the test suite builds its template."""
    with app.app_context():
        upgrade()
        people.create_user(TESTER, "Tess", [Role.TESTER], actor=None, password=PASSWORD)
        people.create_user(REVIEWER, "Rita", [Role.REVIEWER], actor=None, password=PASSWORD)
        db.session.commit()


def seed(app: Flask, start: int, stop: int) -> None:
    """Insert waiting clips number `start` … `stop - 1`, each submitted a second after the last."""
    epoch = datetime(2026, 1, 1, tzinfo=UTC)
    with app.app_context():
        tester_id = db.session.scalar(sa.select(User.id).where(User.email == TESTER))
        for first in range(start, stop, CHUNK):
            rows = []
            for number in range(first, min(first + CHUNK, stop)):
                at = epoch + timedelta(seconds=number)
                rows.append({
                    "tester_id": tester_id, "version": 1, "title": f"Bench clip {number}",
                    "prompt": "", "generator": "gen-1", "generator_version": "", "notes": "",
                    "original_filename": "bench.mp4", "content_type": "video/mp4",
                    "status": ClipStatus.WAITING, "status_changed_at": at,
                    "status_changed_by_id": tester_id,
                    "storage_key": f"clips/bench-{number:08d}.mp4",
                    "job_attempts": 0, "size_bytes": 1234, "sha256": f"{number:064x}",
                    "etag": f"etag-{number}", "container": "mp4", "codec": "h264",
                    "width": 1920, "height": 1080, "duration_seconds": 2.0, "fps": 24.0,
                    "has_audio": False, "created_at": at, "submitted_at": at,
                    "provenance_held": False,
                })  # fmt: skip
            db.session.execute(sa.insert(Clip.__table__), rows)
        db.session.commit()
        # PostgreSQL's autovacuum would vacuum and analyse a table that grew this much soon
        # after; do it now, so the planner and the visibility map see the table as a
        # deployment's would, and no autovacuum runs while the figures are taken.
        with db.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            vacuum = "VACUUM (ANALYZE)" if db.engine.dialect.name == "postgresql" else "ANALYZE"
            conn.execute(sa.text(vacuum))


def signed_in(app: Flask) -> FlaskClient:
    client = app.test_client()
    reply = client.post("/login", data={"email": REVIEWER, "password": PASSWORD})
    if reply.status_code != 302:
        sys.exit(f"sign-in answered {reply.status_code}")
    return client


def deep_cursor(app: Flask, size: int) -> str:
    """The queue cursor just past the clip DEEP of the way down a queue of `size` clips."""
    with app.app_context():
        clip = db.session.scalars(
            sa.select(Clip)
            .where(Clip.status == ClipStatus.WAITING)
            .order_by(Clip.submitted_at, Clip.id)
            .offset(int(size * DEEP))
            .limit(1)
        ).one()
        return paging.encode("review.queue", [clip.submitted_at, clip.id])


def release_all(app: Flask) -> None:
    """Give back whatever the reviewer claimed, through the same operation the page uses."""
    with app.app_context():
        reviewer = db.session.scalars(sa.select(User).where(User.email == REVIEWER)).one()
        held = claims.current_claim(reviewer)
        if held is not None:
            claims.release(held, reviewer)
            db.session.commit()


class SqlClock:
    """Adds up the time the engine's statements take, from the driver's execute to its return."""

    def __init__(self, engine: sa.Engine) -> None:
        self.total = 0.0
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: object, cursor: object, *args: object) -> None:
        self._began = time.perf_counter()

    def _after(self, conn: object, cursor: object, *args: object) -> None:
        self.total += time.perf_counter() - self._began


@dataclass
class Queue:
    """One queue of `size` waiting clips: its own database, app, signed-in client and cursor."""

    size: int
    app: Flask
    client: FlaskClient
    sql: SqlClock
    deep_cursor: str

    def calls(self) -> dict[str, Callable[[], None]]:
        def get(path: str, **query: str) -> Callable[[], None]:
            def call() -> None:
                reply = self.client.get(path, query_string=query)
                if reply.status_code != 200:
                    sys.exit(f"GET {path} answered {reply.status_code}")

            return call

        def claim_next() -> None:
            reply = self.client.post("/review/next")
            if reply.status_code != 302 or not re.search(r"/review/\d+", reply.location):
                sys.exit(f"POST /review/next answered {reply.status_code} → {reply.location}")

        return {
            "first page": get("/review/"),
            "deep page": get("/review/", cursor=self.deep_cursor),
            "counts": get("/review/counts"),
            "claim-next": claim_next,
        }


def measure(run: Run, queues: list[Queue], repeat: int, warmup: int) -> None:
    """Every figure at every size, round after round: within a round the sizes and figures
    follow each other, so a change in the machine's load falls on every size alike."""
    calls = {queue.size: queue.calls() for queue in queues}
    for queue in queues:
        for figure in FIGURES:
            run.samples[figure][queue.size] = []
            run.sql[figure][queue.size] = []
    for round_number in range(warmup + repeat):
        for queue in queues:
            for figure, call in calls[queue.size].items():
                queue.sql.total = 0.0
                began = time.perf_counter()
                call()
                spent = time.perf_counter() - began
                spent_in_sql = queue.sql.total
                if figure == "claim-next":
                    release_all(queue.app)
                if round_number >= warmup:
                    run.samples[figure][queue.size].append(spent)
                    run.sql[figure][queue.size].append(spent_in_sql)


def run_database(
    name: str, url_of: Callable[[int], str], sizes: list[int], repeat: int, warmup: int, tmp: Path
) -> Run:
    """Build a queue of each size in a database of its own (url_of(size)), then measure them."""
    run = Run(name)
    queues = []
    for size in sizes:
        app = make_app(url_of(size), tmp / str(size))
        build_schema(app)
        began = time.perf_counter()
        seed(app, 0, size)
        run.seed_seconds[size] = time.perf_counter() - began
        with app.app_context():
            clock = SqlClock(db.engine)
        queues.append(Queue(size, app, signed_in(app), clock, deep_cursor(app, size)))
    measure(run, queues, repeat, warmup)
    for queue in queues:
        print(f"{name} {queue.size:>7,}: seeded in {run.seed_seconds[queue.size]:.1f} s; " +
              ", ".join(f"{figure} {ms(statistics.median(run.samples[figure][queue.size]))}"
                        for figure in FIGURES))  # fmt: skip
        with queue.app.app_context():
            db.session.remove()
            db.engine.dispose()
    return run


def table(runs: list[Run], sizes: list[int], *, sql: bool = False) -> list[str]:
    """The figures' table: whole requests, or (sql) their SQL statements alone."""
    small, large = sizes[0], sizes[-1]
    head = " | ".join(f"{size:,} median | {size:,} p95" for size in sizes)
    lines = [
        f"| database | figure | {head} | ratio {large:,}/{small:,} median | ratio p95 |",
        "|---|---|" + "---|" * (2 * len(sizes) + 2),
    ]
    for run in runs:
        for figure in FIGURES:
            by_size = (run.sql if sql else run.samples)[figure]
            cells = " | ".join(
                f"{ms(statistics.median(by_size[s]))} | {ms(percentile(by_size[s], 0.95))}"
                for s in sizes
            )
            median_ratio = statistics.median(by_size[large]) / statistics.median(by_size[small])
            p95_ratio = percentile(by_size[large], 0.95) / percentile(by_size[small], 0.95)
            lines.append(
                f"| {run.name} | {figure} | {cells} | {median_ratio:.2f} | {p95_ratio:.2f} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Whether the review queue stays as fast at 100,000 waiting clips as at 1,000."
    )
    parser.add_argument("--sizes", default="1000,10000,100000", help="queue sizes, ascending")
    parser.add_argument("--repeat", type=int, default=60, help="timed rounds at each size")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--postgres", default="", help="a PostgreSQL URL to empty and use")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    began = time.perf_counter()
    load_before = os.getloadavg()[0]

    runs = []
    with tempfile.TemporaryDirectory(prefix="greenlight-queue-") as tmp_name:
        tmp = Path(tmp_name)
        rounds = (args.repeat, args.warmup)

        def sqlite_url(size: int) -> str:
            return f"sqlite:///{tmp}/queue-{size}.db"

        runs.append(run_database("SQLite", sqlite_url, sizes, *rounds, tmp / "sqlite"))
        if args.postgres:
            empty_postgres(args.postgres, sizes)

            def pg_url(size: int) -> str:
                return postgres_url(args.postgres, size)

            runs.append(run_database("PostgreSQL", pg_url, sizes, *rounds, tmp / "postgres"))
    lines = [
        *table(runs, sizes),
        "",
        "The same requests, the time in their SQL statements only (driver execute to return):",
        "",
        *table(runs, sizes, sql=True),
    ]
    print("\n".join(lines))
    took = time.perf_counter() - began
    load_after = os.getloadavg()[0]
    print(f"whole run {took:.0f} s")
    if args.no_record:
        return
    seeding = "; ".join(
        f"{run.name} " + ", ".join(f"{s:,} in {t:.1f} s" for s, t in run.seed_seconds.items())
        for run in runs
    )
    intro = (
        f"Waiting clips at {', '.join(f'{s:,}' for s in sizes)}; {args.repeat} timed rounds "
        f"after {args.warmup} untimed, each round one request of every figure at every size in "
        "turn (a database of its own per size: a SQLite file, a PostgreSQL schema), through "
        "Flask's test client in process (no server, no network) as one signed-in reviewer; "
        "claim-next is POST /review/next with the clip released again untimed; the deep page's "
        f"cursor points {DEEP:.0%} down the queue; "
        f"ratio = {sizes[-1]:,} / {sizes[0]:,}; target: at most 1.5"
    )
    notes = (
        f"Seeded with bulk inserts ({seeding}), then VACUUM ANALYZE (SQLite: ANALYZE). "
        f"Whole run {took:.0f} s; "
        f"1-minute load average {load_before:.1f} at the start, {load_after:.1f} at the end. "
        "Other agents' test suites were running on the same 2 cores, so single figures are "
        "noisy; the rounds interleave the sizes and the figures so the noise falls on all alike."
    )
    record("Review queue at size — `bench/queue.py`", intro, lines, notes)
