"""Share links under load, against a trivial endpoint of the same server in the same run.

For each storage backend (local disk; S3 on a moto server started by this script on a free
loopback port, once in a bucket with versioning on, as `flask storage init` leaves it, and once
in one whose versioning was suspended after init), builds a fresh
instance: the schema by `flask db upgrade`, `flask storage init`, one approved clip of SIZE
random bytes stored through the app's storage and a share link to it (made with the operations
the app uses, so the approval pins the stored bytes). It then starts
the Procfile's `web:` process (gunicorn gthread) on 127.0.0.1 and sends, CONCURRENCY clients at
a time with keep-alive, REQUESTS requests to each of:

- the trivial endpoint          GET /static/favicon.svg (310 bytes from Flask's static route)
- the share page                GET /s/<token> (renders the page and counts a view)
- the media                     disk: GET /s/<token>/media with Range: bytes=0-65535 (206);
                                S3: GET /s/<token>/media, the 302 to a presigned URL, not followed

One untimed media request first (followed, on S3) checks the bytes; in a versioned bucket it is
also the one that records the VersionId, so the timed ones measure a link that has been played.

Prints requests/s, median and p99 for each, and the ratio of each rate to the trivial one, and
appends the table to bench/RESULTS.md with the date, commit, cores and RAM. Target: ≥ 0.5.

Beside each rate it gives the CPU spent per request by the gunicorn workers, the run's
PostgreSQL backends and the moto server (read from /proc; Redis is shared with the rest of the
machine and left out), and the CPU ratio: all that CPU plus the clients', for the trivial
endpoint, over the same for this one. On a machine that other work keeps busy, a request that
hops between processes (worker, database, Redis) waits for each to be scheduled, so the rate
ratio falls while the CPU each request costs does not: the CPU ratio is the steadier figure.

    .venv/bin/python bench/share.py [--requests 2000] [--concurrency 8]
        [--postgres postgresql://postgres@127.0.0.1:5432/bench_share]
        [--redis redis://127.0.0.1:6379/12] [--profile] [--no-record]

Without --postgres the database is a SQLite file; without --redis rate limits are counted in
each gunicorn worker's memory. The PostgreSQL database is emptied (public schema dropped) and
the Redis database flushed before each backend's run. The share rate limit is raised for the
run (one client address sends every request); every other setting is the default.

With --profile, py-spy (`.venv/bin/pip install py-spy`) samples every gunicorn worker during
each share burst; the collapsed stacks are kept in bench/out/ (open them in speedscope.app) and
the functions that hold the most request-thread samples are printed. py-spy costs the workers
some CPU, so a profiled run's rates are not the ones to record.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the project root in place of bench/, for `approval` and `bench`

import sqlalchemy as sa  # noqa: E402

from bench._common import (  # noqa: E402
    AWS_ENV,
    Instance,
    gunicorn_master,
    instance,
    moto_process,
    ms,
    percentile,
    record,
    worker_pids,
)

RANGE = "bytes=0-65535"
OUT = ROOT / "bench" / "out"
CLIENTS = "clients (this script)"

#: Makes the approved clip and its share link with the app's own operations; prints the token.
SETUP_SCRIPT = """\
import hashlib, io, os
from bench_app import app
from approval.extensions import db
from approval.models import Role, Verdict
from approval.ops import claims, people, sharing, workflow
from approval.storage import storage_from_url

content = os.urandom({size})
with app.app_context():
    tester = people.create_user("tess@example.com", "Tess", [Role.TESTER], actor=None)
    reviewer = people.create_user("rita@example.com", "Rita", [Role.REVIEWER], actor=None)
    clip = workflow.start_upload(tester, title="Bench share", generator="gen-1")
    workflow.begin_verification(clip, tester)
    store = storage_from_url(app.config["STORAGE_URL"])
    info = store.put_stream(clip.storage_key, io.BytesIO(content), content_type="video/mp4")
    workflow.pass_verification(clip, workflow.VerifiedMedia(
        size_bytes=info.size, sha256=hashlib.sha256(content).hexdigest(), etag=info.etag,
        container="mp4", codec="h264", width=1920, height=1080, duration_seconds=2.0,
        fps=24.0, has_audio=False, poster_key=None,
    ))
    claims.claim(clip, reviewer)
    workflow.decide(clip, reviewer, Verdict.APPROVE)
    _, token = sharing.create_link(clip, tester)
    db.session.commit()
    print(token)
"""


@dataclass
class Load:
    """What one endpoint did under load."""

    name: str
    rate: float  # requests per second, over the whole burst
    latencies: list[float]
    #: CPU milliseconds per request, by process group (workers, database, moto, clients).
    cpu: dict[str, float] | None = None


def hammer(name: str, url: str, requests_total: int, concurrency: int, headers: dict[str, str],
           expect: int) -> Load:  # fmt: skip
    """Send `requests_total` GETs from `concurrency` keep-alive clients; stop at a wrong status."""
    latencies: list[float] = []
    failures: list[str] = []
    remaining = iter(range(requests_total))
    lock = threading.Lock()

    def client() -> None:
        http = requests.Session()
        # One warm-up request each, untimed: the connection and the worker's first request.
        http.get(url, headers=headers, allow_redirects=False, timeout=30)
        barrier.wait()
        while True:
            with lock:
                if next(remaining, None) is None or failures:
                    return
            began = time.perf_counter()
            reply = http.get(url, headers=headers, allow_redirects=False, timeout=30)
            spent = time.perf_counter() - began
            if reply.status_code != expect:
                with lock:
                    failures.append(f"{reply.status_code} {reply.text[:300]}")
                return
            with lock:
                latencies.append(spent)

    barrier = threading.Barrier(concurrency + 1)
    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(timeout=300)
    took = time.perf_counter() - began
    if failures:
        sys.exit(f"{name}: expected {expect}, got {failures[0]}")
    return Load(name, len(latencies) / took, latencies)


@contextlib.contextmanager
def profiled(master: int, stem: str) -> Iterator[None]:
    """py-spy on every worker of the gunicorn `master` while the block runs; prints the top."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        sys.exit("--profile needs py-spy: .venv/bin/pip install py-spy")
    OUT.mkdir(exist_ok=True)
    spies = {}
    for pid in worker_pids(master):
        raw = OUT / f"{stem}-worker{pid}.txt"
        command = [spy, "record", "--pid", str(pid), "--rate", "200", "--nonblocking", "--gil",
                   "--format", "raw", "-o", str(raw)]  # fmt: skip
        spies[raw] = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(1)  # py-spy attaches
    try:
        yield
    finally:
        for spy_process in spies.values():
            spy_process.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
        for raw, spy_process in spies.items():
            output, _ = spy_process.communicate(timeout=60)
            if not raw.exists():
                print(f"py-spy wrote nothing: {output.decode(errors='replace')[-500:]}")
        print_profile(stem, [raw for raw in spies if raw.exists()])


def print_profile(stem: str, raws: list[Path]) -> None:
    """Each function's share of request-thread samples (inclusive), over every worker."""
    total = 0
    inclusive: collections.Counter[str] = collections.Counter()
    for raw in raws:
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if "handle_request" not in stack:  # only threads busy with a request
                continue
            n = int(count)
            total += n
            # A frame is "name (file:line)"; the line is dropped so a function counts once.
            frames = {frame.rsplit(":", 1)[0] for frame in stack.split(";")}
            for frame in frames:
                inclusive[frame] += n
    print(f"{stem}: {total} request-thread samples in {', '.join(str(r) for r in raws)}")
    for frame, n in inclusive.most_common(60):
        print(f"  {n / total:6.1%}  {frame}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU spent during a burst by each group of processes that serve it, per request.

    Redis is left out: it is shared with other users of the machine, so its CPU is not ours.
    """

    def __init__(self, master: int, database: str, moto: int | None) -> None:
        self.master, self.database, self.moto = master, database, moto

    def groups(self) -> dict[str, list[int]]:
        found = {"gunicorn workers": worker_pids(self.master)}
        if self.database:
            engine = sa.create_engine(
                self.database.replace("postgresql://", "postgresql+psycopg://", 1)
            )
            with engine.connect() as conn:
                found["PostgreSQL backends"] = list(conn.scalars(sa.text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                )))  # fmt: skip
            engine.dispose()
        if self.moto is not None:
            found["moto server"] = [self.moto]
        return found

    @contextlib.contextmanager
    def measure(self, load: list[Load]) -> Iterator[None]:
        before = {
            name: {pid: cpu_seconds(pid) for pid in pids} for name, pids in self.groups().items()
        }
        clients = time.process_time()
        yield
        spent = {CLIENTS: time.process_time() - clients}
        for name, pids in self.groups().items():
            started = before.get(name, {})
            # A backend opened during the burst counts from zero; one closed during it is gone
            # with what it spent since the start (its last moments go uncounted).
            spent[name] = sum(
                max(0.0, cpu_seconds(pid) - started.get(pid, 0.0)) for pid in {*pids, *started}
            )
        done = load[0]
        count = len(done.latencies)
        done.cpu = {name: 1000 * seconds / count for name, seconds in spent.items()}


def empty_postgres(url: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def flush_redis(url: str) -> None:
    import redis  # only when asked for: the default run needs no Redis

    redis.Redis.from_url(url).flushdb()


def s3_url(endpoint: str) -> str:
    """A fresh bucket on the moto server."""
    return f"s3://bench-share-{secrets.token_hex(4)}?endpoint_url={endpoint}&region=us-east-1"


def suspend_versioning(storage_url: str) -> None:
    """What an operator who wants no versions does after `flask storage init` turned them on."""
    import boto3  # only for S3 runs

    bucket, _, query = storage_url.removeprefix("s3://").partition("?")
    endpoint = dict(pair.split("=", 1) for pair in query.split("&"))["endpoint_url"]
    credentials = {
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": AWS_ENV["AWS_SESSION_TOKEN"],
    }
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **credentials)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})


def run_backend(
    label: str, app: Instance, args: argparse.Namespace, moto: int | None, versioned: bool
) -> list[Load]:
    app.flask("db", "upgrade")
    said = app.flask("storage", "init")
    s3 = app.env["GREENLIGHT_STORAGE_URL"].startswith("s3://")
    if s3 and "versioning" not in said:
        sys.exit(f"{label}: storage init said nothing of versioning:\n{said}")
    if s3 and not versioned:
        suspend_versioning(app.env["GREENLIGHT_STORAGE_URL"])
    token = app.python(SETUP_SCRIPT.format(size=args.size_mb << 20)).strip()
    with gunicorn_master(app) as server:
        base = app.base
        media = f"{base}/s/{token}/media"
        check = requests.get(media, headers={"Range": RANGE}, timeout=30)
        if check.status_code != 206 or len(check.content) != 65536:  # S3: the redirect followed
            sys.exit(f"{label}: media answered {check.status_code}, {len(check.content)} bytes")
        plan = [
            ("trivial: GET /static/favicon.svg", f"{base}/static/favicon.svg", {}, 200),
            ("share page: GET /s/<token>", f"{base}/s/{token}", {}, 200),
            (
                "media: 302 to S3, not followed" if s3 else f"media: Range {RANGE} from disk",
                media,
                {} if s3 else {"Range": RANGE},
                302 if s3 else 206,
            ),
        ]
        loads = []
        stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}"
        meter = CpuMeter(server.pid, args.postgres, moto)
        for n, (name, url, headers, expect) in enumerate(plan):
            done: list[Load] = []
            stem = f"share-{stamp}-{app.tmp.name}-{name.split(':')[0]}"
            with contextlib.ExitStack() as during:
                during.enter_context(meter.measure(done))
                if args.profile and n > 0:
                    during.enter_context(profiled(server.pid, stem.replace(" ", "-")))
                done.append(hammer(name, url, args.requests, args.concurrency, headers, expect))
            load = done[0]
            p99 = percentile(load.latencies, 0.99)
            cpu = ", ".join(f"{group} {spent:.2f}" for group, spent in (load.cpu or {}).items())
            print(f"{label}: {name}: {load.rate:.0f} req/s, p99 {ms(p99)}; CPU ms/request: {cpu}")
            loads.append(load)
    return loads


def table(results: dict[str, list[Load]]) -> list[str]:
    lines = [
        "| storage | endpoint | requests/s | median | p99 | ratio to trivial (req/s) "
        "| server CPU per request (workers + database + moto) "
        "| CPU ratio (trivial's CPU / this one's, clients included) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, loads in results.items():
        trivial = loads[0].rate
        trivial_cpu = sum((loads[0].cpu or {}).values())
        for load in loads:
            cpu = load.cpu or {}
            server = sum(spent for group, spent in cpu.items() if group != CLIENTS)
            lines.append(
                f"| {label} | {load.name} | {load.rate:.0f} | "
                f"{ms(statistics.median(load.latencies))} | "
                f"{ms(percentile(load.latencies, 0.99))} | {load.rate / trivial:.2f} | "
                f"{server:.2f} ms | {trivial_cpu / sum(cpu.values()):.2f} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per endpoint")
    parser.add_argument("--concurrency", type=int, default=8, help="clients at once")
    parser.add_argument("--size-mb", type=int, default=8, help="size of the shared clip")
    parser.add_argument("--postgres", default="", help="a PostgreSQL URL to empty and use")
    parser.add_argument("--redis", default="", help="a Redis URL for rate limits (flushed)")
    parser.add_argument("--profile", action="store_true", help="py-spy the workers (no record)")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    args.no_record = args.no_record or args.profile
    began = time.perf_counter()

    results: dict[str, list[Load]] = {}
    with tempfile.TemporaryDirectory(prefix="greenlight-share-") as tmp_name:
        tmp = Path(tmp_name)
        with moto_process(tmp) as (endpoint, moto):
            backends = {  # label: folder, storage URL, whether the bucket keeps versions
                "local disk": ("disk", (tmp / "disk" / "storage").as_uri(), False),
                "S3 (moto), versioned bucket": ("s3v", s3_url(endpoint), True),
                "S3 (moto), no versioning": ("s3", s3_url(endpoint), False),
            }
            for label, (name, storage_url, versioned) in backends.items():
                folder = tmp / name
                folder.mkdir(parents=True, exist_ok=True)
                settings = {
                    **AWS_ENV,
                    "GREENLIGHT_DATABASE_URL": args.postgres or f"sqlite:///{folder}/greenlight.db",
                    "GREENLIGHT_STORAGE_URL": storage_url,
                    "GREENLIGHT_QUEUE_URL": f"sqlite:///{folder}/queue.db",
                    "GREENLIGHT_SECRET_KEY": "bench-" + "k" * 40,
                    "GREENLIGHT_SHARE_RATE_LIMIT": "1000000 per minute",
                }
                if args.redis:
                    settings["GREENLIGHT_RATELIMIT_STORAGE_URL"] = args.redis
                    flush_redis(args.redis)
                if args.postgres:
                    empty_postgres(args.postgres)
                app = instance(folder, settings)
                moto_pid = moto.pid if storage_url.startswith("s3://") else None
                results[label] = run_backend(label, app, args, moto_pid, versioned)

    lines = table(results)
    print("\n".join(lines))
    took = time.perf_counter() - began
    print(f"whole run {took:.0f} s")
    if args.no_record:
        return
    database = "PostgreSQL" if args.postgres else "SQLite"
    limits = "Redis" if args.redis else "memory"
    intro = (
        f"{args.requests} requests per endpoint, {args.concurrency} keep-alive clients at once "
        f"(Python threads on the same machine), after one untimed request per client; the "
        f"Procfile's gunicorn (gthread, 2 workers x 8 threads) on loopback, {database}, rate "
        f"limits in {limits}; an {args.size_mb} MB approved clip; ratio = requests/s of the "
        "endpoint / requests/s of the trivial one in the same server; target: at least 0.5. "
        "Server CPU: workers, this run's PostgreSQL backends and moto, from /proc (Redis is "
        "shared with other users of the machine and left out); CPU ratio: that plus the "
        "clients' CPU for the trivial endpoint / the same for this one"
    )
    notes = (
        f"Whole run {took:.0f} s. The clients share the 2 cores with gunicorn (and other agents' "
        "test suites were running beside it), so the trivial endpoint's rate is partly the "
        "clients' own ceiling and every figure is noisy; each ratio compares bursts sent one "
        "after the other to the same server."
    )
    record("Share links under load — `bench/share.py`", intro, lines, notes)


if __name__ == "__main__":
    main()
