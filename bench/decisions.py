"""Decisions per second: N reviewer clients claim and decide through the API until M are done.

Starts, on a database of its own on PostgreSQL (dropped and made afresh each run; never one
named `test`), the web process exactly as the Procfile's `web:` line does (gunicorn gthread,
its workers and threads) on a free loopback port, with rate limits and the job queue in Redis.
M clips are seeded straight into the table as `waiting` rows (verified facts made up, no bytes:
nobody plays them), one tester owns them all, and REVIEWERS reviewers each get an API token.
Each reviewer is one client thread looping POST /api/v1/review/claim, then
POST /api/v1/clips/<id>/decision (every fourth a rejection with a category and reason), until
the queue answers 204.

While they run, a sampler asks PostgreSQL every SAMPLE_SECONDS which backends wait on a lock,
in which statement, and what the transaction they queue behind is doing; py-spy (when
installed) records every gunicorn worker with idle threads included and the busiest one is
reported, so the time threads spend waiting for the audit head (taken at commit, in
`audit._chain_queued`) shows up beside the rest.

At the end an integrity check: every clip decided exactly once (one standing decision, one
`clip.approved`/`clip.rejected` event, status matching the verdict), none left claimed, and
`flask audit verify` passes. Prints a table and appends it to bench/RESULTS.md with the date,
commit, cores and RAM.

    .venv/bin/python bench/decisions.py [--reviewers 8] [--clips 2000] [--no-profile]
        [--postgres postgresql://postgres@127.0.0.1:5432/bench_b]
        [--redis redis://127.0.0.1:6379/13] [--no-record]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the project root in place of bench/, for `bench._common`

from bench._common import (  # noqa: E402
    SHIM,
    free_port,
    ms,
    percentile,
    procfile_web,
    record,
    stop,
    wait_until_up,
    worker_pids,
)

#: Profiles land here (git-ignored): collapsed stacks that speedscope.app opens.
OUT = ROOT / "bench" / "out"
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/bench_b"
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
TESTER = "bench-tester@example.com"
#: How often the lock sampler looks at pg_stat_activity.
SAMPLE_SECONDS = 0.05
#: A run that has not finished by then stops, reports what it has and says it was cut short.
DEFAULT_TIME_LIMIT = 240.0

#: Makes the users and their tokens, then seeds the waiting clips in one multi-row INSERT.
SEED_SCRIPT = """\
import json, hashlib
from datetime import timedelta
from sqlalchemy import insert
from bench_app import app
from approval import audit
from approval.clock import utcnow
from approval.extensions import db
from approval.models import Clip, ClipStatus, Role
from approval.ops import tokens
from approval.ops.people import create_user

with app.app_context():
    tester = create_user({tester!r}, "Bench tester", [Role.TESTER], actor=None, password=None)
    raws = []
    for email in {reviewers!r}:
        user = create_user(email, email, [Role.REVIEWER], actor=None, password=None)
        _, raw = tokens.create(user, name="bench", actor=user)
        raws.append(raw)
    start = utcnow() - timedelta(hours=1)
    rows = []
    for n in range({clips}):
        digest = hashlib.sha256(str(n).encode()).hexdigest()
        rows.append(dict(
            tester_id=tester.id, title=f"bench clip {{n}}", status=ClipStatus.WAITING,
            original_filename="bench.mp4", content_type="video/mp4",
            storage_key=f"clips/bench-{{n}}.mp4", size_bytes=1_000_000, etag=digest[:32],
            sha256=digest, container="mp4", codec="h264", pixel_format="yuv420p",
            width=1280, height=720, duration_seconds=5.0, fps=24.0, has_audio=False,
            created_at=start, submitted_at=start + timedelta(milliseconds=n),
            status_changed_at=start + timedelta(milliseconds=n),
        ))
    db.session.execute(insert(Clip), rows)
    db.session.commit()
    print(json.dumps({{"tokens": raws, "events": audit.event_count()}}))
"""

#: Each clip decided once, nothing left claimed; prints the counts as JSON.
INTEGRITY_SCRIPT = """\
import json
from sqlalchemy import func, select
from bench_app import app
from approval.extensions import db
from approval.models import AuditEvent, Clip, Decision

with app.app_context():
    s = db.session
    by_status = dict(s.execute(select(Clip.status, func.count()).group_by(Clip.status)).all())
    standing = (
        select(Decision.clip_id, func.count().label("n"))
        .where(Decision.reopened_at.is_(None)).group_by(Decision.clip_id).subquery()
    )
    events = (
        select(AuditEvent.clip_id, func.count().label("n"))
        .where(AuditEvent.action.in_(("clip.approved", "clip.rejected")))
        .group_by(AuditEvent.clip_id).subquery()
    )
    pairs = s.execute(
        select(Clip.status, Decision.verdict, func.count())
        .join(Decision, Decision.clip_id == Clip.id)
        .where(Decision.reopened_at.is_(None)).group_by(Clip.status, Decision.verdict)
    ).all()
    matching = {{("approved", "approve"), ("rejected", "reject")}}
    mismatched = sum(n for status, verdict, n in pairs if (status, verdict) not in matching)
    print(json.dumps({{
        "clips": s.scalar(select(func.count()).select_from(Clip)),
        "by_status": {{str(k): v for k, v in by_status.items()}},
        "decisions": s.scalar(select(func.count()).select_from(Decision)),
        "clips_with_one_decision": s.scalar(
            select(func.count()).select_from(standing).where(standing.c.n == 1)),
        "clips_with_several": s.scalar(
            select(func.count()).select_from(standing).where(standing.c.n > 1)),
        "clips_with_one_event": s.scalar(
            select(func.count()).select_from(events).where(events.c.n == 1)),
        "clips_with_several_events": s.scalar(
            select(func.count()).select_from(events).where(events.c.n > 1)),
        "status_not_verdict": mismatched,
        "still_claimed": s.scalar(
            select(func.count()).select_from(Clip).where(Clip.claimed_by_id.is_not(None))),
        "audit_events": s.scalar(select(func.count()).select_from(AuditEvent)),
    }}))
"""


# --- database and servers ------------------------------------------------------------------------


def fresh_database(url: str) -> None:
    """Drop and re-create the bench's own database (refusing the suite's `test` database)."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not parts.scheme.startswith("postgresql") or not name or name in ("test", "postgres"):
        sys.exit(f"give a PostgreSQL database of the bench's own (not test/postgres), got {url}")
    admin = sa.create_engine(
        urlunsplit(parts._replace(scheme="postgresql+psycopg", path="/postgres")),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def procfile_setting(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1] if flag in command else "?"


# --- load ----------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the reviewer clients saw; lists are appended to from several threads (GIL-safe)."""

    decision: list[float] = field(default_factory=list)  # claim + decide, seconds
    claim: list[float] = field(default_factory=list)
    decide: list[float] = field(default_factory=list)
    finished_at: list[float] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    cut_short: bool = False


def reviewer(base: str, token: str, index: int, tally: Tally, deadline: float) -> None:
    """Claim and decide until the queue is empty (204) or the time is up."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    n = 0
    while True:
        if time.perf_counter() > deadline:
            tally.cut_short = True
            return
        began = time.perf_counter()
        claimed = http.post(f"{base}/api/v1/review/claim", timeout=60)
        got_claim = time.perf_counter()
        if claimed.status_code == 204:
            return
        if claimed.status_code != 200:
            tally.errors[f"claim {claimed.status_code}"] += 1
            time.sleep(0.05)
            continue
        clip_id = claimed.json()["id"]
        n += 1
        body: dict[str, Any] = {"decision": "approve"}
        if (n + index) % 4 == 0:
            body = {"decision": "reject", "category": "rights", "reason": "Bench: a logo."}
        decided = http.post(f"{base}/api/v1/clips/{clip_id}/decision", json=body, timeout=60)
        done = time.perf_counter()
        if decided.status_code != 200:
            tally.errors[f"decide {decided.status_code}"] += 1
            continue
        tally.claim.append(got_claim - began)
        tally.decide.append(done - got_claim)
        tally.decision.append(done - began)
        tally.finished_at.append(done)


class LockSampler(threading.Thread):
    """Counts, every SAMPLE_SECONDS, the app's backends that are busy and those waiting on a lock.

    A backend waiting on a lock is classed by its own statement: a row lock is waited for by
    the statement that wants the row, so "UPDATE audit_head" waiting means queueing for the
    chain's head, whichever earlier statement of the holder's transaction took it. The
    transaction at the front of the queue (a blocker that waits for no lock itself) is classed
    by what it is doing while it keeps the others waiting: `idle in transaction` means the
    app's Python is between two statements of it; `active` names PostgreSQL's own wait (for
    example IO/WALSync: the commit flushing the log to disk).
    """

    QUERY = sa.text(
        """
        SELECT a.wait_event_type, a.query, pg_blocking_pids(a.pid) AS blockers
          FROM pg_stat_activity a
         WHERE a.datname = :db AND a.pid <> pg_backend_pid() AND a.state = 'active'
        """
    )
    HOLDERS = sa.text(
        """
        SELECT state, wait_event_type, wait_event, query
          FROM pg_stat_activity
         WHERE pid = ANY(:pids) AND wait_event_type IS DISTINCT FROM 'Lock'
        """
    )

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        parts = urlsplit(url)
        self.db = parts.path.lstrip("/")
        self.engine = sa.create_engine(urlunsplit(parts._replace(scheme="postgresql+psycopg")))
        self.halt = threading.Event()
        self.samples = 0
        self.active = 0
        self.lock_waits = 0
        self.waiting_in: collections.Counter[str] = collections.Counter()
        self.holder_doing: collections.Counter[str] = collections.Counter()
        self.holder_samples = 0

    def run(self) -> None:
        with self.engine.connect() as conn:
            while not self.halt.wait(SAMPLE_SECONDS):
                rows = conn.execute(self.QUERY, {"db": self.db}).all()
                self.samples += 1
                self.active += len(rows)
                blockers: set[int] = set()
                for row in rows:
                    if row.wait_event_type == "Lock":
                        self.lock_waits += 1
                        self.waiting_in[statement_kind(row.query or "")] += 1
                        blockers.update(row.blockers or ())
                if blockers:
                    holders = conn.execute(self.HOLDERS, {"pids": list(blockers)}).all()
                    for holder in holders:
                        self.holder_samples += 1
                        self.holder_doing[holder_kind(holder)] += 1
                conn.rollback()
        self.engine.dispose()


def holder_kind(holder: Any) -> str:
    """What the transaction others queue behind is doing, from its pg_stat_activity row."""
    if holder.state == "idle in transaction":
        return f"idle in transaction (the app, after {statement_kind(holder.query or '')})"
    if holder.wait_event_type:
        return f"{holder.state}, {holder.wait_event_type}/{holder.wait_event} " + (
            f"in {statement_kind(holder.query or '')}"
        )
    return f"{holder.state} on CPU in {statement_kind(holder.query or '')}"


def statement_kind(query: str) -> str:
    """A short name for a statement: its verb and the first table it names."""
    text = " ".join(query.split())[:300].lower()
    verb = text.split()[0].upper() if text else "?"
    for marker in ("audit_head", "audit_events", "clips", "decisions", "notifications", "users"):
        if f" {marker}" in text:
            return f"{verb} {marker}"
    return text[:60] or "?"


# --- profile -------------------------------------------------------------------------------------


def profile_busiest(pids: list[int], seconds: int, stem: Path) -> Profile | None:
    """py-spy every worker at once (idle threads too); the one that served most, or None.

    Clients keep their connections alive, so one worker may serve most of them: the busiest
    worker's profile is the one worth reading. Its collapsed stacks stay in bench/out/ (open
    them in speedscope.app).
    """
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy is not installed: no profile (pip install py-spy)")
        return None
    spies = {}
    for pid in pids:
        raw = stem.with_name(f"{stem.name}-worker{pid}.txt")
        command = [spy, "record", "--pid", str(pid), "--duration", str(seconds), "--idle",
                   "--rate", "50", "--nonblocking", "--format", "raw", "-o", str(raw)]  # fmt: skip
        spies[raw] = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    profiles = []
    for raw, spy_process in spies.items():
        output, _ = spy_process.communicate(timeout=seconds + 60)
        if spy_process.returncode != 0 or not raw.exists():
            print(f"py-spy failed: {output.decode(errors='replace')[-500:]}")
            continue
        profiles.append(summarise_profile(raw))
    return max(profiles, key=lambda found: found.samples, default=None)


@dataclass
class Profile:
    """One worker's request-thread samples, and the share of them in each frame of FRAMES."""

    path: Path
    samples: int
    shares: dict[str, float]


def _head_update_lines() -> range:
    """The lines of the statement in audit._chain_queued that takes the head row lock."""
    lines = (ROOT / "approval" / "audit.py").read_text().splitlines()
    body = next((i for i, line in enumerate(lines) if line.startswith("def _chain_queued(")), None)
    if body is None:  # a commit from before events were chained at commit
        return range(0)
    start = next(i for i in range(body, len(lines)) if "update(AuditHead)" in lines[i]) - 1
    end = next(i for i in range(start, len(lines)) if ".scalar_one()" in lines[i])
    return range(start + 1, end + 2)  # line numbers count from 1


_HEAD_UPDATE = _head_update_lines()

#: Where a request thread spends its time: a name, and a test on its collapsed stack.
FRAMES = {
    "in audit.record (queueing an event)": lambda stack: "record (approval/audit.py" in stack,
    "in audit._chain_queued (chaining the events at commit)": lambda stack: (
        "_chain_queued (approval/audit.py" in stack
    ),
    "in its first UPDATE audit_head (takes the head row lock)": lambda stack: any(
        int(line) in _HEAD_UPDATE
        for line in re.findall(r"_chain_queued \(approval/audit\.py:(\d+)\)", stack)
    ),
    "in claims.claim_next": lambda stack: "claim_next (approval/ops/claims.py" in stack,
    "in workflow.decide": lambda stack: "decide (approval/ops/workflow.py" in stack,
    "in Session.commit": lambda stack: "commit (sqlalchemy/orm/session.py" in stack,
    "waiting on PostgreSQL (any statement)": lambda stack: (
        "Connection.wait (psycopg/connection.py" in stack
    ),
    "serialising replies": lambda stack: "approval/api/serialize.py" in stack,
}


def summarise_profile(raw: Path) -> Profile:
    """From py-spy's collapsed stacks: each FRAMES entry's share of request-thread samples."""
    total = 0
    hits: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "handle_request" not in stack:  # only threads busy with a request
            continue
        n = int(count)
        total += n
        for name, matches in FRAMES.items():
            if matches(stack):
                hits[name] += n
    shares = {name: hits[name] / total for name in FRAMES} if total else {}
    return Profile(raw, total, shares)


# --- report --------------------------------------------------------------------------------------


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviewers", type=int, default=8, help="concurrent reviewer clients")
    parser.add_argument("--clips", type=int, default=2000, help="waiting clips to decide")
    parser.add_argument(
        "--postgres", default=DEFAULT_DATABASE, help="a PostgreSQL URL, dropped and re-made"
    )
    parser.add_argument(
        "--redis", default=DEFAULT_REDIS, help="a Redis URL for rate limits and the queue (flushed)"
    )
    parser.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT, help="seconds")
    parser.add_argument("--profile-seconds", type=int, default=20, help="py-spy on one worker")
    parser.add_argument("--no-profile", action="store_true", help="do not run py-spy")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    began = time.perf_counter()
    OUT.mkdir(exist_ok=True)

    fresh_database(args.postgres)
    with tempfile.TemporaryDirectory(prefix="greenlight-decisions-") as tmp_name:
        tmp = Path(tmp_name)
        Path(tmp, "bench_app.py").write_text(SHIM.format(instance=str(tmp / "instance")))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(tmp), str(ROOT)]),
            "GREENLIGHT_DATABASE_URL": args.postgres,
            "GREENLIGHT_STORAGE_URL": Path(tmp, "storage").as_uri(),
            "GREENLIGHT_QUEUE_URL": args.redis,
            "GREENLIGHT_RATELIMIT_STORAGE_URL": args.redis,
            "GREENLIGHT_SECRET_KEY": "bench-" + "k" * 40,
            "GREENLIGHT_SITE_URL": base,
            "XDG_RUNTIME_DIR": str(tmp),  # gunicorn's control socket: this run's own
        }
        subprocess.run(["redis-cli", "-u", args.redis, "flushdb"], capture_output=True)
        flask = [sys.executable, "-m", "flask", "--app", "bench_app"]
        run: dict[str, Any] = {"cwd": ROOT, "env": env, "check": True, "capture_output": True}
        subprocess.run([*flask, "db", "upgrade"], **run)
        subprocess.run([*flask, "storage", "init"], **run)
        emails = [f"bench-reviewer-{n}@example.com" for n in range(args.reviewers)]
        seeding = time.perf_counter()
        script = SEED_SCRIPT.format(tester=TESTER, reviewers=emails, clips=args.clips)
        seeded = json.loads(subprocess.run([sys.executable, "-c", script], **run).stdout)
        tokens = seeded["tokens"]
        print(f"seeded {args.clips} waiting clips in {time.perf_counter() - seeding:.1f} s")

        command = procfile_web(port, "bench_app")
        log = tmp / "gunicorn.log"
        with log.open("wb") as out:
            server = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        sampler = LockSampler(args.postgres)
        spied: Profile | None = None
        try:
            wait_until_up(base, server, log)
            for _ in range(4 * len(worker_pids(server.pid))):  # every worker's app is up
                requests.get(f"{base}/healthz", timeout=10)
            tally = Tally()
            deadline = time.perf_counter() + args.time_limit
            clients = [
                threading.Thread(target=reviewer, args=(base, token, n, tally, deadline))
                for n, token in enumerate(tokens)
            ]
            sampler.start()
            start = time.perf_counter()
            for client in clients:
                client.start()
            if not args.no_profile and worker_pids(server.pid):
                time.sleep(2)  # past the first requests of each thread
                stem = OUT / f"decisions-{datetime.now(UTC):%Y%m%dT%H%M%S}"
                spied = profile_busiest(worker_pids(server.pid), args.profile_seconds, stem)
            for client in clients:
                client.join()
            elapsed = max(tally.finished_at, default=start) - start
            sampler.halt.set()
            sampler.join()
        except BaseException:
            print(f"--- gunicorn.log (last lines)\n{log.read_text(errors='replace')[-3000:]}")
            raise
        finally:
            sampler.halt.set()
            stop(server)

        checks = json.loads(
            subprocess.run([sys.executable, "-c", INTEGRITY_SCRIPT.format()], **run).stdout
        )
        verify = subprocess.run([*flask, "audit", "verify"], cwd=ROOT, env=env,
                                capture_output=True, text=True)  # fmt: skip
        access_lines = sum(1 for line in log.read_text(errors="replace").splitlines()
                           if '"POST /api/v1/' in line)  # fmt: skip

    decided = len(tally.decision)
    appended = checks["audit_events"] - seeded["events"]
    integrity_ok = (
        verify.returncode == 0
        and checks["clips_with_one_decision"] == args.clips
        and checks["clips_with_several"] == 0
        and checks["clips_with_one_event"] == args.clips
        and checks["clips_with_several_events"] == 0
        and checks["status_not_verdict"] == 0
        and checks["still_claimed"] == 0
        and checks["decisions"] == decided
    )
    workers = procfile_setting(command, "--workers")
    threads = procfile_setting(command, "--threads")
    title = (
        f"{args.reviewers} reviewer clients (one thread each, claim then decide over the API) "
        f"until {args.clips} seeded waiting clips are decided; gunicorn as in the Procfile "
        f"(gthread, {workers} workers x {threads} threads), PostgreSQL, Redis for rate limits "
        "and the queue, loopback"
    )
    lines = [
        "| figure | value |",
        "|---|---|",
        f"| decisions/s (claim + decide) | {decided / elapsed:.1f} |" if elapsed else "| - | - |",
        f"| decisions made / time | {decided} in {elapsed:.1f} s |",
        f"| claim + decide, median | {ms(percentile(tally.decision, 0.5))} |",
        f"| claim + decide, p95 | {ms(percentile(tally.decision, 0.95))} |",
        f"| POST …/review/claim, median / p95 | {ms(percentile(tally.claim, 0.5))} / "
        f"{ms(percentile(tally.claim, 0.95))} |",
        f"| POST …/decision, median / p95 | {ms(percentile(tally.decide, 0.5))} / "
        f"{ms(percentile(tally.decide, 0.95))} |",
        f"| audit events appended (chained at commit, under the head row lock) | {appended}, "
        f"one per {ms(elapsed / max(1, appended))} |",
        f"| unexpected replies | {dict(tally.errors) or 'none'} |",
        f"| integrity | {'passes' if integrity_ok else 'FAILS'}: "
        f"{checks['clips_with_one_decision']} clips with exactly one decision and one "
        f"verdict event, {checks['clips_with_several']} with more, "
        f"{checks['still_claimed']} still claimed; audit verify: "
        f"{(verify.stdout or verify.stderr).strip().splitlines()[-1][:120]} |",
    ]
    if sampler.samples:
        busy = sampler.active / sampler.samples
        waiting = sampler.lock_waits / sampler.samples
        lines.append(
            f"| PostgreSQL: active backends / waiting on a lock (mean per sample) | "
            f"{busy:.2f} / {waiting:.2f} ({sampler.samples} samples) |"
        )
        for statement, count in sampler.waiting_in.most_common(3):
            share = count / max(1, sampler.lock_waits)
            lines.append(f"| lock waits in `{statement}` | {share:.0%} of waits |")
        in_app = sum(n for doing, n in sampler.holder_doing.items() if doing.startswith("idle"))
        lines.append(
            "| the transaction at the front of the queue: in the app (idle in transaction) / "
            f"in PostgreSQL | {in_app / max(1, sampler.holder_samples):.0%} / "
            f"{1 - in_app / max(1, sampler.holder_samples):.0%} |"
        )
        for doing, count in sampler.holder_doing.most_common(4):
            share = count / max(1, sampler.holder_samples)
            lines.append(f"| the transaction at the front: {doing} | {share:.0%} of samples |")
    if spied:
        lines.append(
            f"| py-spy: samples of request threads in the busiest worker | {spied.samples} "
            f"(bench/out/{spied.path.name}) |"
        )
        for name, share in spied.shares.items():
            lines.append(
                f"| py-spy, busiest worker: {name} | {share:.0%} of request-thread samples |"
            )
    tail = (
        f"Status counts {checks['by_status']}; {checks['audit_events']} audit events; "
        f"{access_lines} API requests in the access log. "
        f"{'Cut short at the time limit. ' if tally.cut_short else ''}"
        f"Whole run {time.perf_counter() - began:.0f} s."
    )
    print(title)
    print("\n".join(lines))
    print(tail)
    if not integrity_ok:
        print(json.dumps(checks, indent=2))
        print(verify.stdout, verify.stderr)
    if not args.no_record:
        record("Decisions per second — `bench/decisions.py`", title, lines, tail)
    if not integrity_ok:
        sys.exit("the integrity check failed")


if __name__ == "__main__":
    main()
