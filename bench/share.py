"""Share links under load, against a trivial endpoint of the same server in the same run.

For each storage backend (local disk, and S3 on a moto server started by this script on a free
loopback port), builds a fresh instance: the schema by `flask db upgrade`, `flask storage init`,
one approved clip of SIZE random bytes stored through the app's storage and a share link to it
(made with the operations the app uses, so the approval pins the stored bytes). It then starts
the Procfile's `web:` process (gunicorn gthread) on 127.0.0.1 and sends, CONCURRENCY clients at
a time with keep-alive, REQUESTS requests to each of:

- the trivial endpoint          GET /static/favicon.svg (310 bytes from Flask's static route)
- the share page                GET /s/<token> (renders the page and counts a view)
- the media                     disk: GET /s/<token>/media with Range: bytes=0-65535 (206);
                                S3: GET /s/<token>/media, the 302 to a presigned URL, not followed

Prints requests/s, median and p99 for each, and the ratio of each rate to the trivial one, and
appends the table to bench/RESULTS.md with the date, commit, cores and RAM. Target: ≥ 0.5.

    .venv/bin/python bench/share.py [--requests 2000] [--concurrency 8]
        [--postgres postgresql://postgres@127.0.0.1:5432/bench_share]
        [--redis redis://127.0.0.1:6379/12] [--no-record]

Without --postgres the database is a SQLite file; without --redis rate limits are counted in
each gunicorn worker's memory. The PostgreSQL database is emptied (public schema dropped) and
the Redis database flushed before each backend's run. The share rate limit is raised for the
run (one client address sends every request); every other setting is the default.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the project root in place of bench/, for `approval` and `bench`

import sqlalchemy as sa  # noqa: E402

from bench._common import (  # noqa: E402
    Instance,
    free_port,
    gunicorn,
    instance,
    ms,
    percentile,
    record,
    stop,
)

RANGE = "bytes=0-65535"
#: Fake AWS credentials for moto; nothing here can reach a real account.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}

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


def empty_postgres(url: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def flush_redis(url: str) -> None:
    import redis  # only when asked for: the default run needs no Redis

    redis.Redis.from_url(url).flushdb()


def run_backend(label: str, app: Instance, args: argparse.Namespace) -> list[Load]:
    app.flask("db", "upgrade")
    app.flask("storage", "init")
    token = app.python(SETUP_SCRIPT.format(size=args.size_mb << 20)).strip()
    s3 = app.env["GREENLIGHT_STORAGE_URL"].startswith("s3://")
    with gunicorn(app) as base:
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
        for name, url, headers, expect in plan:
            load = hammer(name, url, args.requests, args.concurrency, headers, expect)
            p99 = percentile(load.latencies, 0.99)
            print(f"{label}: {name}: {load.rate:.0f} req/s, p99 {ms(p99)}")
            loads.append(load)
    return loads


def table(results: dict[str, list[Load]]) -> list[str]:
    lines = [
        "| storage | endpoint | requests/s | median | p99 | ratio to trivial (req/s) |",
        "|---|---|---|---|---|---|",
    ]
    for label, loads in results.items():
        trivial = loads[0].rate
        for load in loads:
            lines.append(
                f"| {label} | {load.name} | {load.rate:.0f} | "
                f"{ms(statistics.median(load.latencies))} | "
                f"{ms(percentile(load.latencies, 0.99))} | {load.rate / trivial:.2f} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per endpoint")
    parser.add_argument("--concurrency", type=int, default=8, help="clients at once")
    parser.add_argument("--size-mb", type=int, default=8, help="size of the shared clip")
    parser.add_argument("--postgres", default="", help="a PostgreSQL URL to empty and use")
    parser.add_argument("--redis", default="", help="a Redis URL for rate limits (flushed)")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    began = time.perf_counter()

    results: dict[str, list[Load]] = {}
    with tempfile.TemporaryDirectory(prefix="greenlight-share-") as tmp_name:
        tmp = Path(tmp_name)
        moto_port = free_port()
        moto_log = tmp / "moto.log"
        with moto_log.open("wb") as out:
            moto = subprocess.Popen(
                [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1",
                 "-p", str(moto_port)],
                env={**os.environ, **AWS_ENV}, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        try:
            endpoint = f"http://127.0.0.1:{moto_port}"
            for _ in range(100):
                try:
                    requests.get(endpoint, timeout=5)
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            backends = {
                "local disk": (tmp / "disk" / "storage").as_uri(),
                "S3 (moto)": f"s3://bench-share-{secrets.token_hex(4)}?endpoint_url={endpoint}"
                "&region=us-east-1",
            }
            for label, storage_url in backends.items():
                folder = tmp / label.split()[0].lower()
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
                results[label] = run_backend(label, instance(folder, settings), args)
        finally:
            stop(moto)

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
        "endpoint / requests/s of the trivial one in the same server; target: at least 0.5"
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
