"""What the benchmarks share: machine facts, percentiles, RESULTS.md, gunicorn as deployed, moto.

Each script stays runnable on its own (`.venv/bin/python bench/x.py`): it puts the project root
on sys.path, then imports this module as `bench._common`. Servers bind to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
PROCFILE = ROOT / "Procfile"

#: The app on a run's own instance folder, so nothing under ./instance is read or written.
SHIM = """\
from approval import create_app

app = create_app(instance_path={instance!r})
"""


# --- facts and figures ---------------------------------------------------------------------------


def machine() -> str:
    """'<date> UTC, commit <sha>, <n> cores, <n> GiB RAM', as every RESULTS.md section says."""
    meminfo = Path("/proc/meminfo").read_text().split()
    ram_gib = int(meminfo[meminfo.index("MemTotal:") + 1]) / (1 << 20)
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", "approval"], check=False)
    if dirty.returncode == 1:
        commit += " with uncommitted changes under approval/"
    cores = len(os.sched_getaffinity(0))
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit or 'unknown'}, "
        f"{cores} cores, {ram_gib:.0f} GiB RAM"
    )


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (0.5 = median, 0.95 = p95): a value that was measured."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def record(heading: str, intro: str, lines: Sequence[str], notes: str = "") -> None:
    """Append one section to bench/RESULTS.md: heading, intro with the machine, table, notes."""
    text = f"\n## {heading}\n\n{intro}. Measured {machine()}.\n\n" + "\n".join(lines) + "\n"
    if notes:
        text += f"\n{notes}\n"
    with RESULTS.open("a") as out:
        out.write(text)
    print(f"appended to {RESULTS.relative_to(ROOT)}")


# --- servers -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def procfile_web(port: int, module: str) -> list[str]:
    """The Procfile's `web:` command, on 127.0.0.1:`port`, serving `module`:app."""
    for line in PROCFILE.read_text().splitlines():
        if line.startswith("web:"):
            words = shlex.split(line.removeprefix("web:"))
            break
    else:
        sys.exit("Procfile has no web: line")
    if words[0] != "gunicorn" or words[-1] != "app:app":
        sys.exit(f"unexpected Procfile web line: {words}")
    command = [sys.executable, "-m", "gunicorn", *words[1:-1], f"{module}:app"]
    bind = command.index("--bind") + 1
    command[bind] = f"127.0.0.1:{port}"  # loopback only, whatever the Procfile binds
    return command


def wait_until_up(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    wait_until_answers(f"{base}/healthz", server, log)  # the first request boots the app


def wait_until_answers(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(300):
        if server.poll() is not None:
            sys.exit(f"server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            requests.get(url, timeout=10)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    sys.exit(f"server did not answer on {url}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL for whatever is left in the process group we started it in."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):  # the group is gone: nothing was left
        os.killpg(process.pid, signal.SIGKILL)


@dataclass(frozen=True)
class Instance:
    """One run's app: a shim module and instance folder in `tmp`, a port, and its environment."""

    tmp: Path
    port: int
    env: dict[str, str]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def flask(self, *args: str, stdin: bytes | None = None) -> str:
        """Run `flask <args>` on this instance (db upgrade, users create…); its stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "bench_app", *args],
            cwd=ROOT, env=self.env, input=stdin, capture_output=True, check=False,
        )  # fmt: skip
        if done.returncode:
            sys.exit(f"flask {' '.join(args)} failed:\n{done.stderr.decode()[-3000:]}")
        return done.stdout.decode()

    def python(self, script: str) -> str:
        """Run a Python script that imports `bench_app`; its stdout."""
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, env=self.env, capture_output=True,
            check=False,
        )  # fmt: skip
        if done.returncode:
            sys.exit(f"script failed:\n{done.stderr.decode()[-3000:]}")
        return done.stdout.decode()


def instance(tmp: Path, settings: Mapping[str, str]) -> Instance:
    """An app on `tmp`/instance with these GREENLIGHT_* settings, on a free loopback port."""
    Path(tmp, "bench_app.py").write_text(SHIM.format(instance=str(tmp / "instance")))
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp), str(ROOT)]),
        "GREENLIGHT_SITE_URL": f"http://127.0.0.1:{port}",
        **settings,
    }
    return Instance(tmp, port, env)


#: Fake AWS credentials for moto; nothing here can reach a real account.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


@contextlib.contextmanager
def moto_server(tmp: Path) -> Iterator[str]:
    """moto's S3 in HTTP server mode, in a process of its own on 127.0.0.1; yields its URL."""
    with moto_process(tmp) as (endpoint, _):
        yield endpoint


@contextlib.contextmanager
def moto_process(tmp: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """As `moto_server`, but yields the process too, for scripts that measure its CPU."""
    port = free_port()
    log = tmp / f"moto-{port}.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1",
             "-p", str(port)],
            env={**os.environ, **AWS_ENV}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(endpoint, server, log)
        yield endpoint, server
    finally:
        stop(server)


def worker_pids(master: int) -> list[int]:
    """A gunicorn master's children: its workers."""
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


@contextlib.contextmanager
def gunicorn(app: Instance) -> Iterator[str]:
    """Run the Procfile's web process for `app` until the block ends; yields its base URL."""
    with gunicorn_master(app):
        yield app.base


@contextlib.contextmanager
def gunicorn_master(app: Instance) -> Iterator[subprocess.Popen[bytes]]:
    """As `gunicorn`, but yields the master process, for scripts that watch its workers."""
    log = app.tmp / f"gunicorn-{app.port}.log"
    # gunicorn's control socket (gunicorn.ctl) goes into $XDG_RUNTIME_DIR, else ~/.gunicorn: a
    # folder of this server's own, so two benches (or a bench and a test) never share one.
    runtime = tempfile.mkdtemp(prefix=f"gunicorn-{app.port}-run-", dir=app.tmp)
    with log.open("wb") as out:
        server = subprocess.Popen(
            procfile_web(app.port, "bench_app"),
            cwd=ROOT,
            env={**app.env, "XDG_RUNTIME_DIR": runtime},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_up(app.base, server, log)
        yield server
    except BaseException:
        print(f"--- {log.name} (last lines)\n{log.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        stop(server)
