"""Latency of "upload done" for a 10 MB and a 1 GB clip, and how long the worker then takes.

Starts, on a temporary instance (SQLite database, local storage, SqliteHuey queue), the app
under gunicorn (gthread) on a free loopback port and one `flask worker --workers 1`. A tester
with an API token then uploads, REPEAT times each, fresh clips of both sizes the way the API
says: POST /api/v1/clips for a ticket, PUT the bytes to it, POST complete_url. It times the
complete request, then polls the clip until the worker has brought it to `waiting` or `failed`.
Each round also reports one more 10 MB upload done while the worker is busy with the 1 GB one,
and a last 10 MB clip shows how long one waits after the worker has idled IDLE seconds.

Both clips are real, valid H.264 MP4s that reach `waiting` (played as they are: no rendition):
1080p24, intra-only, a one-second cycle of 24 pictures repeated until the file has the size.
The 10 MB one is plain test bars; the 1 GB one is bars under full-strength noise at QP 1, about
4 MB a picture, so that 1 GB is ten seconds of video rather than an hour.

Prints a table (figure, 10 MB, 1 GB, ratio) and appends it to bench/RESULTS.md with the date,
commit, cores and RAM. Target: "done" does not grow with size (ratio about 1).

    .venv/bin/python bench/done_latency.py [--repeat 5] [--idle 30] [--no-record]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the project root in place of bench/, for `bench._common`

from bench._common import SHIM, free_port, ms, record, stop, wait_until_up  # noqa: E402

WIDTH, HEIGHT, FPS = 1920, 1080, 24
SMALL, BIG = 10 << 20, 1 << 30
EMAIL, PASSWORD = "bench@example.com", "bench password 123"
POLL_SECONDS = 0.02
#: How long one clip may take to settle before the run gives up on it.
SETTLE_TIMEOUT = 120.0

#: Makes the tester's API token with the Python API (there is no `flask tokens` command).
MINT_SCRIPT = """\
from bench_app import app
from approval.ops import tokens
from approval.extensions import db
from approval.models import User

with app.app_context():
    user = User.by_email({email!r})
    _, raw = tokens.create(user, name="bench", actor=user)
    db.session.commit()
    print(raw)
"""


# --- clips ---------------------------------------------------------------------------------------


def pictures(noisy: bool) -> Iterator[Any]:
    """1080p test bars from FFmpeg's filters, under full-strength noise if `noisy`."""
    graph = av.filter.Graph()
    chain = [graph.add("testsrc2", f"size={WIDTH}x{HEIGHT}:rate={FPS}")]
    if noisy:
        chain.append(graph.add("noise", "alls=100:allf=t+u"))
    chain += [graph.add("format", "yuv420p"), graph.add("buffersink")]
    for upstream, downstream in itertools.pairwise(chain):
        upstream.link_to(downstream)
    graph.configure()
    while True:
        yield chain[-1].pull()


def make_clip(path: Path, size: int, *, noisy: bool, qp: int) -> int:
    """Write an intra-only H.264 MP4 of just under `size` bytes; returns its frame count.

    Every picture is a keyframe, so repeating a second's worth of encoded pictures with rising
    timestamps is a valid stream: the probe and any player see an ordinary clip.
    """
    seed = path.with_suffix(".seed.mp4")
    with av.open(str(seed), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"preset": "ultrafast", "qp": str(qp), "x264-params": "keyint=1"}
        source = pictures(noisy)
        for _ in range(FPS):
            out.mux(video.encode(next(source)))
        out.mux(video.encode(None))
    frames = 0
    with av.open(str(seed)) as inp, av.open(str(path), "w", format="mp4") as out:
        template = inp.streams.video[0]
        packets = [(bytes(p), p.duration) for p in inp.demux(template) if p.size]
        stream = out.add_stream_from_template(template)
        written, pts = 0, 0
        budget = size - (1 << 16)  # room for the moov box
        while written + len(packets[frames % len(packets)][0]) < budget:
            data, duration = packets[frames % len(packets)]
            packet = av.Packet(data)
            packet.stream, packet.time_base = stream, template.time_base
            packet.pts = packet.dts = pts
            packet.duration, packet.is_keyframe = duration, True
            out.mux(packet)
            written, pts, frames = written + len(data), pts + duration, frames + 1
    seed.unlink()
    return frames


# --- servers -------------------------------------------------------------------------------------


# --- measuring -----------------------------------------------------------------------------------


@dataclass
class Figures:
    """What the rounds measured for one size, in seconds."""

    done: list[float] = field(default_factory=list)
    settle: list[float] = field(default_factory=list)
    put_rate: list[float] = field(default_factory=list)  # MB/s
    outcomes: list[str] = field(default_factory=list)


class Tester:
    """The API as a tester's client uses it."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def upload(self, path: Path, title: str) -> tuple[dict[str, Any], float]:
        """Create a clip and send its bytes; returns the created reply and the PUT's MB/s."""
        size = path.stat().st_size
        reply = self.http.post(
            f"{self.base}/api/v1/clips",
            json={"title": title, "filename": "bench.mp4", "size": size},
            timeout=30,
        )
        reply.raise_for_status()
        created = reply.json()
        ticket = created["upload"]
        if ticket["method"] != "PUT":
            sys.exit(f"expected a PUT ticket with local storage, got {ticket['method']}")
        began = time.perf_counter()
        with path.open("rb") as body:
            put = requests.put(ticket["url"], data=body, headers=ticket["headers"], timeout=600)
        rate = size / (time.perf_counter() - began) / 1e6
        if put.status_code >= 300:
            sys.exit(f"PUT answered {put.status_code}: {put.text[:500]}")
        return created, rate

    def complete(self, created: dict[str, Any]) -> float:
        """POST complete_url; the seconds until its 202 arrived."""
        began = time.perf_counter()
        reply = self.http.post(created["complete_url"], timeout=600)
        spent = time.perf_counter() - began
        if reply.status_code != 202 or reply.json()["status"] != "verifying":
            sys.exit(f"complete answered {reply.status_code}: {reply.text[:500]}")
        return spent

    def settle(self, created: dict[str, Any], since: float) -> tuple[float, str]:
        """Poll the clip until it leaves `verifying`; seconds from `since`, and how it ended."""
        while time.perf_counter() - since < SETTLE_TIMEOUT:
            clip = self.http.get(created["url"], timeout=30).json()
            if clip["status"] not in ("uploading", "verifying"):
                outcome = clip["status"]
                if clip.get("failure_reason"):
                    outcome += f" ({clip['failure_reason']})"
                return time.perf_counter() - since, outcome
            time.sleep(POLL_SECONDS)
        sys.exit(f"clip {created['id']} still verifying after {SETTLE_TIMEOUT:g} s")


def one_round(tester: Tester, clip: Path, figures: Figures, label: str) -> None:
    created, rate = tester.upload(clip, label)
    figures.put_rate.append(rate)
    figures.done.append(tester.complete(created))
    settled, outcome = tester.settle(created, time.perf_counter())
    figures.settle.append(settled)
    figures.outcomes.append(outcome)


def busy_round(tester: Tester, small: Path, big: Path, figures: Figures, busy: list[float]) -> None:
    """A 1 GB round, plus a 10 MB upload done while the worker verifies the 1 GB clip."""
    extra, _ = tester.upload(small, "bench 10 MB while busy")
    created, rate = tester.upload(big, "bench 1 GB")
    figures.put_rate.append(rate)
    figures.done.append(tester.complete(created))
    done_at = time.perf_counter()
    busy.append(tester.complete(extra))
    settled, outcome = tester.settle(created, done_at)
    figures.settle.append(settled)
    figures.outcomes.append(outcome)
    tester.settle(extra, done_at)  # let the queue drain before the next round


# --- report --------------------------------------------------------------------------------------


def table(small: Figures, big: Figures) -> list[str]:
    def row(name: str, a: float, b: float, shown: Any = ms) -> str:
        return f"| {name} | {shown(a)} | {shown(b)} | {b / a:.2f} |"

    def secs(seconds: float) -> str:
        return f"{seconds:.2f} s"

    def rate(mb_s: float) -> str:
        return f"{mb_s:.0f} MB/s"

    return [
        "| figure | 10 MB | 1 GB | ratio |",
        "|---|---|---|---|",
        row('"done" (POST …/complete → 202), median', *(statistics.median(f.done) for f in (small, big))),  # noqa: E501
        row('"done", max', max(small.done), max(big.done)),
        row("worker: 202 → waiting, median", *(statistics.median(f.settle) for f in (small, big)), secs),  # noqa: E501
        row("worker: 202 → waiting, max", max(small.settle), max(big.settle), secs),
        row("PUT to the ticket, median", *(statistics.median(f.put_rate) for f in (small, big)), rate),  # noqa: E501
    ]  # fmt: skip


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh clips per size")
    parser.add_argument(
        "--idle", type=float, default=30.0, help="seconds the worker idles before a last clip"
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    began = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="greenlight-done-") as tmp_name:
        tmp = Path(tmp_name)
        instance = tmp / "instance"
        Path(tmp, "bench_app.py").write_text(SHIM.format(instance=str(instance)))
        small, big = tmp / "small.mp4", tmp / "big.mp4"
        for path, size, noisy, qp in ((small, SMALL, False, 24), (big, BIG, True, 1)):
            started = time.perf_counter()
            frames = make_clip(path, size, noisy=noisy, qp=qp)
            print(f"made {path.name}: {path.stat().st_size / 1e6:.1f} MB, {frames / FPS:.1f} s "
                  f"of 1080p{FPS}, in {time.perf_counter() - started:.1f} s")  # fmt: skip

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(tmp), str(ROOT)]),
            "GREENLIGHT_DATABASE_URL": f"sqlite:///{tmp}/greenlight.db",
            "GREENLIGHT_STORAGE_URL": Path(tmp, "storage").as_uri(),
            "GREENLIGHT_QUEUE_URL": f"sqlite:///{tmp}/queue.db",
            "GREENLIGHT_SECRET_KEY": "bench-" + "k" * 40,
            "GREENLIGHT_SITE_URL": base,
            "GREENLIGHT_MAX_CLIP_BYTES": str(BIG + (1 << 20)),
            "XDG_RUNTIME_DIR": str(tmp),  # gunicorn's control socket: this run's own
        }
        flask = [sys.executable, "-m", "flask", "--app", "bench_app"]
        run: dict[str, Any] = {"cwd": ROOT, "env": env, "check": True, "capture_output": True}
        subprocess.run([*flask, "db", "upgrade"], **run)
        subprocess.run([*flask, "storage", "init"], **run)
        subprocess.run([*flask, "users", "create", EMAIL, "--role", "tester", "--password-stdin"],
                       input=PASSWORD.encode() + b"\n", **run)  # fmt: skip
        script = MINT_SCRIPT.format(email=EMAIL)
        token = subprocess.run([sys.executable, "-c", script], **run).stdout.decode().strip()

        server_log, worker_log = tmp / "gunicorn.log", tmp / "worker.log"
        processes: list[subprocess.Popen[bytes]] = []
        try:
            with server_log.open("wb") as out:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "gunicorn", "--worker-class", "gthread",
                     "--workers", "1", "--threads", "4", "--timeout", "600",
                     "--bind", f"127.0.0.1:{port}", "bench_app:app"],
                    cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,
                ))  # fmt: skip
            with worker_log.open("wb") as out:
                processes.append(subprocess.Popen(
                    [*flask, "worker", "--workers", "1"],
                    cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,
                ))  # fmt: skip
            wait_until_up(base, processes[0], server_log)
            tester = Tester(base, token)
            # One clip to warm up: the gunicorn worker's first requests import and connect.
            one_round(tester, small, Figures(), "bench warm-up")

            figures = {SMALL: Figures(), BIG: Figures()}
            busy: list[float] = []
            for n in range(args.repeat):
                one_round(tester, small, figures[SMALL], "bench 10 MB")
                busy_round(tester, small, big, figures[BIG], busy)
                last = figures[SMALL], figures[BIG]
                print(f"round {n + 1}: done {ms(last[0].done[-1])} / {ms(last[1].done[-1])} "
                      f"(busy {ms(busy[-1])}), settled {last[0].settle[-1]:.2f} s / "
                      f"{last[1].settle[-1]:.2f} s")  # fmt: skip
            # Huey's consumer polls a SQLite queue, backing off while it is empty (x1.15 per
            # empty look, up to 10 s): after a quiet spell a clip waits for the next look.
            idle = Figures()
            if args.idle:
                time.sleep(args.idle)
                one_round(tester, small, idle, "bench 10 MB after idling")
        except BaseException:
            for log in (server_log, worker_log):
                print(f"--- {log.name} (last lines)\n{log.read_text(errors='replace')[-3000:]}")
            raise
        finally:
            for process in processes:
                stop(process)

    outcomes = sorted({o for f in (*figures.values(), idle) for o in f.outcomes})
    title = (
        f"{args.repeat} fresh clips of each size through the API, after one warm-up clip; "
        "gunicorn gthread (1 worker, 4 threads), one `flask worker --workers 1`, SQLite "
        "database and queue, local storage, loopback; ratio = 1 GB / 10 MB; target for "
        '"done": ratio about 1'
    )
    lines = table(figures[SMALL], figures[BIG])
    busy_line = (
        f'"done" for a 10 MB clip while the worker verifies a 1 GB one: median '
        f"{ms(statistics.median(busy))}, max {ms(max(busy))}."
    )
    if idle.settle:
        busy_line += (
            f" After the worker had idled {args.idle:g} s, a 10 MB clip took "
            f"{idle.settle[0]:.2f} s from 202 to {idle.outcomes[0]}."
        )
    busy_line += (
        f" Clips ended: {', '.join(outcomes)}. Whole run {time.perf_counter() - began:.0f} s."
    )
    print(title)
    print("\n".join(lines))
    print(busy_line)
    if not args.no_record:
        record('"Upload done" latency — `bench/done_latency.py`', title, lines, busy_line)


if __name__ == "__main__":
    main()
