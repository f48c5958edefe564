"""Uploads through gunicorn on every path, against a ceiling taken in the same run, and memory.

For each size (256 MB and 1 GB by default; MB here is 2^20 bytes) one file of random bytes is
sent, one upload at a time, by each path and by its ceiling, right after one another:

local disk (an instance whose storage folder is on the same filesystem as the file)
- ceiling: `cp` of the file into that filesystem, then `sync` of the copy: the app fsyncs what
  it stores before the rename that makes it visible, so the ceiling pays for that too;
- a reference, not a target: the same PUT to a bare WSGI app on the same gunicorn command
  (wsgi.input read 1 MiB at a time into a file, fsynced): what gunicorn itself allows;
- the app's PUT ticket, as the upload page's script sends it: POST /clips/direct for a ticket,
  the file PUT to the app, POST …/complete answered 202;
- the no-JavaScript form: one multipart POST /clips/new with the details and the file, up to
  its 302 (the form parser spools the file into storage's own temporary folder, and the
  view renames it into place);
- with --splice-probe, a probe, not a target: the bare app again, but taking the body with
  os.splice from gunicorn's socket through a pipe into the file (after the bytes gunicorn had
  already buffered), so no byte of the body passes through Python. It reaches into gunicorn's
  private body reader to find those buffered bytes, so it is a measurement only.

S3 (an instance on a moto server in HTTP server mode, a process of its own on 127.0.0.1)
- ceiling: boto3 `upload_fileobj` of the file to the same moto server, boto3's defaults
  (8 MiB parts, 10 threads), without the CRC checksums botocore would add (the app turns
  them off too);
- the browser-direct ticket: POST /clips/direct, the presigned POST straight to moto, POST
  …/complete; the app only hands out the ticket, so it has no throughput target;
- the no-JavaScript form: the app carries the bytes (spooled by the form parser, then its
  managed upload to moto, 8 MiB parts in the request's thread).

The bytes are sent by the Python client's own code (`approval.client.transfer`: `send` for a
ticket, its streaming multipart body for the form), from a file in the page cache. The app
runs as the Procfile runs it (gunicorn gthread, 2 workers x 8 threads) on 127.0.0.1, with
SQLite. No verification worker runs: each "upload done" leaves its job on the SQLite queue,
so no verification overlaps a timed upload. Each path is warmed up once with a 16 MB file
before anything is timed. After each upload its staged object is checked (one object, the
whole size) and deleted, and before each one dirty pages are flushed (`sync`), all untimed.
An upload the app refuses is reported as failed (the run goes on, once the server has
stopped changing what is staged).

Memory: each worker's RSS (VmRSS) is read once, after sign-in and before any upload. Just
before each upload every worker's peak RSS (VmHWM) is reset to its current RSS by writing 5 to
/proc/PID/clear_refs. Two growths are shown, the largest over the workers: the VmHWM afterwards
less the RSS at the reset (what this upload added), and less the RSS before any upload (what
the worker has grown to, memory an earlier upload left held included; the target is for this).

Prints a table and appends it to bench/RESULTS.md with the date, commit, cores and RAM.
Targets: throughput ratio at least 0.8 where the app carries the bytes; peak RSS growth under
64 MB at 1 GB.

With --repeat, every other round runs its paths in reverse order.

    .venv/bin/python bench/upload.py [--sizes-mb 256,1024] [--repeat 1] [--storage disk,s3]
                                     [--splice-probe] [--no-record]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the project root in place of bench/, for `approval` and `bench`

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

# The client's own sender and streaming multipart body, so the bench sends what it sends.
from approval.client.transfer import TransferFailed, _Body, _form_head, send  # noqa: E402
from bench._common import (  # noqa: E402
    AWS_ENV,
    Instance,
    free_port,
    gunicorn_master,
    instance,
    moto_server,
    record,
    worker_pids,
)

MIB = 1 << 20
EMAIL, PASSWORD = "tess@example.com", "bench password 123"
CONTENT_TYPE = "video/mp4"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
#: Seconds one upload request may take before the run gives up on it.
TIMEOUT = 300
WARM_UP_BYTES = 16 * MIB
#: Seconds to wait, at most, for a server to finish what a failed upload left it doing.
SETTLE_SECONDS = 60
RATIO_TARGET = 0.8
RSS_TARGET = 64 * MIB
RSS_TARGET_SIZE = 1 << 30

DISK, S3 = "local disk", "S3 (moto)"
CEILING, APP, TICKET = "—", "the app", "the client (the app hands out a ticket)"
REFERENCE = "gunicorn alone (a reference)"
KERNEL = "the kernel alone (a reference)"
SPLICE_NOTE = (
    "the spliced probe takes the PUT body from gunicorn's socket by splice(2) after the bytes "
    "gunicorn had buffered (found through its private body reader: a measurement, not a "
    "candidate for the app); the raw TCP probe sends the file by sendfile(2) to a receiver "
    "that splices it into a file, with no HTTP at all (the network path's own ceiling); "
)

#: The least a WSGI app can do with a PUT, served by the same gunicorn command: wsgi.input read
#: 1 MiB at a time into a file on the same filesystem, fsynced, removed. The gap between the
#: app's PUT and this is what the app adds; the gap between this and `cp` is gunicorn's.
BARE_APP = """\
import os
import tempfile


def app(environ, start_response):
    fd, name = tempfile.mkstemp(dir={folder!r})
    with os.fdopen(fd, "wb") as out:
        while chunk := environ["wsgi.input"].read(1 << 20):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.unlink(name)
    start_response("204 No Content", [])
    return [b""]
"""

#: BARE_APP, but zero-copy: the bytes gunicorn already read from the socket (its body and
#: unreader buffers: private attributes of gunicorn.http.body) are written first, then the rest
#: of the body goes socket -> pipe -> file by splice(2), never entering user space. gunicorn is
#: told the body is consumed (the reader's length, private too), or it would wait for it.
SPLICE_APP = """\
import fcntl
import os
import select
import tempfile

PIPE_BYTES = 1 << 20
SPLICE_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_MORE


def _wait(fd):
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.poll(60_000)


def app(environ, start_response):
    body = environ["wsgi.input"]
    reader = body.reader  # a LengthReader: the PUT declares its length
    held = body.buf.getvalue()  # read from the reader, not yet by the app
    ahead = reader.unreader.take_buffered()  # read from the socket, not yet by the reader
    left = reader.length - len(ahead)  # still on the socket
    reader.length = 0
    sock = environ["gunicorn.socket"].fileno()
    fd, name = tempfile.mkstemp(dir={folder!r})
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        os.write(fd, held + ahead)
        while left > 0:
            try:
                got = os.splice(sock, write_end, min(left, PIPE_BYTES), flags=SPLICE_FLAGS)
            except BlockingIOError:
                _wait(sock)
                continue
            if not got:
                raise ConnectionError(f"client went away with {{left}} bytes unsent")
            left -= got
            while got:
                got -= os.splice(read_end, fd, got, flags=os.SPLICE_F_MOVE)
        os.fsync(fd)
        whole = os.fstat(fd).st_size == int(environ["CONTENT_LENGTH"])
    finally:
        os.close(read_end)
        os.close(write_end)
        os.close(fd)
        os.unlink(name)
    # The probe must carry every byte, or its figure means nothing.
    start_response("204 No Content" if whole else "500 Short", [])
    return [b""]
"""


#: No HTTP and no copy through user space at either end: the bench sends the file with
#: sendfile(2), this receiver splices it socket -> pipe -> file and fsyncs, once per connection
#: (an 8-byte length first, one byte back when done). What loopback TCP into a file costs on
#: this machine: a ceiling for any server that takes an upload over the network.
RAW_RECEIVER = """\
import fcntl
import os
import socket
import sys
import tempfile

PIPE_BYTES = 1 << 20
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
read_end, write_end = os.pipe()
fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
while True:
    conn, _ = server.accept()
    with conn:
        left = int.from_bytes(conn.recv(8, socket.MSG_WAITALL), "big")
        fd, name = tempfile.mkstemp(dir=sys.argv[1])
        while left > 0:
            got = os.splice(conn.fileno(), write_end, min(left, PIPE_BYTES), flags=os.SPLICE_F_MOVE)
            if not got:
                break
            left -= got
            while got:
                got -= os.splice(read_end, fd, got, flags=os.SPLICE_F_MOVE)
        os.fsync(fd)
        os.close(fd)
        os.unlink(name)
        conn.sendall(b"k" if left == 0 else b"!")
"""


@contextlib.contextmanager
def raw_receiver(folder: Path) -> Iterator[Callable[[Path], None]]:
    """RAW_RECEIVER in a process of its own; yields the sender of a file to it."""
    folder.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", RAW_RECEIVER, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())

        def send_raw(source: Path) -> None:
            size = source.stat().st_size
            with socket.create_connection(("127.0.0.1", port)) as sock, source.open("rb") as f:
                sock.sendall(size.to_bytes(8, "big"))
                sent = 0
                while sent < size:
                    sent += os.sendfile(sock.fileno(), f.fileno(), sent, size - sent)
                if sock.recv(1) != b"k":
                    raise UploadFailed("the raw receiver got fewer bytes than were sent")

        yield send_raw
    finally:
        process.kill()
        process.wait()


def nothing(_: int) -> None:
    """A progress callback that hears every chunk and says nothing."""


class UploadFailed(Exception):
    """An upload was not answered as it should be; the message says what came back."""


def answer(reply: requests.Response) -> str:
    """A refusal in a few words: the status, and the page's heading or the body's start."""
    heading = re.search(r"<title>([^<]*)</title>", reply.text)
    return f"HTTP {reply.status_code} {heading.group(1) if heading else reply.text[:200]}"


# --- the tester, as the upload page drives the app ----------------------------------------------


class Tester:
    """A signed-in tester's browser session and the upload page's two ways to send a file."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()
        signed_in = self.http.post(
            f"{base}/login",
            data={"email": EMAIL, "password": PASSWORD, "csrf_token": self._csrf("/login")},
            allow_redirects=False,
            timeout=30,
        )
        if signed_in.status_code != 302:
            sys.exit(f"sign-in answered {signed_in.status_code}: {signed_in.text[:500]}")
        self.csrf = self._csrf("/clips/new")

    def _csrf(self, page: str) -> str:
        found = CSRF.search(self.http.get(f"{self.base}{page}", timeout=30).text)
        if found is None:
            sys.exit(f"no CSRF token on {page}")
        return found.group(1)

    def ticketed(self, path: Path) -> str:
        """The page's script: a ticket, the bytes where it says, "upload done"; its method."""
        size = path.stat().st_size
        started = self.http.post(
            f"{self.base}/clips/direct",
            data={"title": f"bench {path.name}", "filename": path.name, "size": str(size),
                  "csrf_token": self.csrf},
            headers={"Accept": "application/json"},
            timeout=30,
        )  # fmt: skip
        if started.status_code != 201:
            raise UploadFailed(f"POST /clips/direct: {answer(started)}")
        ticket = started.json()
        try:
            send(ticket["upload"], path, size, CONTENT_TYPE, nothing)
        except TransferFailed as exc:
            raise UploadFailed(str(exc)) from None
        done = self.http.post(
            urljoin(self.base, ticket["complete_url"]),
            headers={"Accept": "application/json", "X-CSRFToken": self.csrf},
            timeout=30,
        )
        if done.status_code != 202 or done.json()["status"] != "verifying":
            raise UploadFailed(f"POST …/complete: {answer(done)}")
        return str(ticket["upload"]["method"])

    def form(self, path: Path) -> None:
        """The page without JavaScript: one multipart POST of the details and the file."""
        size = path.stat().st_size
        boundary = "bench-" + secrets.token_hex(12)
        fields = {"title": f"bench form {path.name}", "csrf_token": self.csrf}
        head = _form_head(fields, boundary, path.name, CONTENT_TYPE)
        with path.open("rb") as handle:
            body = _Body(head, handle, size, f"\r\n--{boundary}--\r\n".encode(), nothing)
            reply = self.http.post(
                f"{self.base}/clips/new",
                data=body,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                allow_redirects=False,
                timeout=TIMEOUT,
            )
        if reply.status_code != 302 or "/clips/" not in reply.headers.get("Location", ""):
            raise UploadFailed(f"POST /clips/new: {answer(reply)}")


# --- memory --------------------------------------------------------------------------------------


def status_bytes(pid: int, name: str) -> int:
    found = re.search(rf"^{name}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    if found is None:
        sys.exit(f"/proc/{pid}/status has no {name}")
    return int(found.group(1)) << 10


@dataclass(frozen=True)
class Growth:
    """Peak RSS growth of the workers: over the RSS at the upload's start, and before any."""

    during: int
    overall: int

    def __str__(self) -> str:
        return f"{self.during / MIB:.1f} MB / {self.overall / MIB:.1f} MB"


class Workers:
    """gunicorn's workers: each one's RSS before any upload, and its peak since a reset."""

    def __init__(self, master: int) -> None:
        self.before = {pid: status_bytes(pid, "VmRSS") for pid in worker_pids(master)}
        if not self.before:
            sys.exit("gunicorn has no workers")
        self.start = dict(self.before)

    def reset_peaks(self) -> None:
        """Set each worker's VmHWM to its RSS now, so that it then holds this upload's peak."""
        for pid in self.before:
            try:
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            except OSError as exc:
                sys.exit(f"cannot reset the peak RSS of worker {pid} ({exc}); needs Linux 4.0+")
            self.start[pid] = status_bytes(pid, "VmHWM")

    def peak_growth(self) -> Growth:
        """The largest peak since the reset, over each worker's RSS then and before any upload."""
        peaks = {pid: status_bytes(pid, "VmHWM") for pid in self.before}
        return Growth(
            during=max(peaks[pid] - self.start[pid] for pid in peaks),
            overall=max(peaks[pid] - self.before[pid] for pid in peaks),
        )


# --- figures -------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One path (or ceiling) at one size: its times, the worker's peak RSS growth, failures."""

    size: int
    storage: str
    path: str
    carrier: str
    seconds: list[float] = field(default_factory=list)
    growth: list[Growth] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        """MB/s over the median time of the uploads that succeeded."""
        return self.size / statistics.median(self.seconds) / MIB if self.seconds else None


@dataclass
class Staging:
    """Where one instance's uploads land, to check and remove each one untimed."""

    sizes: Callable[[], list[int]]
    clear: Callable[[], None]

    def check(self, size: int) -> None:
        found = self.sizes()
        if found != [size]:
            sys.exit(f"expected one staged object of {size} bytes, found sizes {found}")
        self.clear()

    def settle(self) -> None:
        """After a failure: wait until the server stops changing what is staged, then clear.

        A server may still be finishing the request the app gave up on (moto completing a
        multipart upload, say); the next timed upload must not overlap it.
        """
        seen, still = self.sizes(), 0
        for _ in range(SETTLE_SECONDS):
            time.sleep(1)
            now = self.sizes()
            still = still + 1 if now == seen else 0
            if still == 3:
                break
            seen = now
        self.clear()


def disk_staging(root: Path) -> Staging:
    def staged() -> list[Path]:
        incoming = root / "incoming"
        return [p for p in incoming.rglob("*") if p.is_file()] if incoming.exists() else []

    def clear() -> None:
        for path in staged():
            path.unlink()

    return Staging(lambda: [p.stat().st_size for p in staged()], clear)


def s3_staging(client: Any, bucket: str) -> Staging:
    def listed() -> list[dict[str, Any]]:
        return list(client.list_objects_v2(Bucket=bucket, Prefix="incoming/").get("Contents", []))

    def clear() -> None:
        for item in listed():
            client.delete_object(Bucket=bucket, Key=item["Key"])

    return Staging(lambda: [int(item["Size"]) for item in listed()], clear)


def timed(
    figure: Figure, workers: Workers | None, run: Callable[[], object], staging: Staging | None
) -> None:
    """Flush dirty pages, then time `run` (and the workers' peak RSS); check what it staged."""
    os.sync()
    if workers is not None:
        workers.reset_peaks()
    began = time.perf_counter()
    failure = None
    try:
        run()
    except UploadFailed as exc:
        failure = f"{exc} after {time.perf_counter() - began:.1f} s"
        figure.failures.append(failure)
    else:
        figure.seconds.append(time.perf_counter() - began)
    if workers is not None:
        figure.growth.append(workers.peak_growth())
    if staging is not None and failure:
        staging.settle()
    elif staging is not None:
        staging.check(figure.size)
    shown = (
        f"FAILED: {failure}" if failure else
        f"{figure.seconds[-1]:.2f} s, {figure.size / figure.seconds[-1] / MIB:.0f} MB/s"
    )  # fmt: skip
    growth = f", peak RSS growth {figure.growth[-1]}" if workers is not None else ""
    print(f"{figure.size // MIB} MB, {figure.storage}, {figure.path}: {shown}{growth}")


@dataclass
class Step:
    """One timed upload of a round: `run` carries it, `after` (untimed) cleans up after it."""

    figure: Figure
    workers: Workers | None
    run: Callable[[], object]
    staging: Staging | None = None
    after: Callable[[], object] | None = None


def rounds(steps: list[Step], repeat: int) -> None:
    """Time every step `repeat` times, every other round in reverse order: a server can slow
    as it has held more (moto does), and no path should always come first or last."""
    for n in range(repeat):
        for step in steps if n % 2 == 0 else steps[::-1]:
            timed(step.figure, step.workers, step.run, step.staging)
            if step.after is not None:
                step.after()


# --- the two instances ---------------------------------------------------------------------------


def prepare(app: Instance) -> None:
    app.flask("db", "upgrade")
    app.flask("storage", "init")
    app.flask(
        "users", "create", EMAIL, "--role", "tester", "--password-stdin",
        stdin=PASSWORD.encode() + b"\n",
    )  # fmt: skip


def bare_gunicorn(folder: Path, source: str = BARE_APP) -> Instance:
    """The Procfile's gunicorn serving BARE_APP (or SPLICE_APP), writing into `folder`."""
    folder.mkdir()
    Path(folder, "bench_app.py").write_text(source.format(folder=str(folder)))
    return Instance(folder, free_port(), {**os.environ, "PYTHONPATH": str(folder)})


def disk_run(folder: Path, files: dict[int, Path], warm: Path, settings: dict[str, str],
             args: argparse.Namespace) -> list[Figure]:  # fmt: skip
    storage = folder / "storage"
    app = instance(folder, {**settings, "GREENLIGHT_STORAGE_URL": storage.as_uri()})
    prepare(app)
    staging = disk_staging(storage)
    copy = folder / "cp-ceiling"

    def cp(source: Path) -> None:
        subprocess.run(["cp", str(source), str(copy)], check=True)
        subprocess.run(["sync", str(copy)], check=True)  # fsync the copy, as put_stream does

    bare = bare_gunicorn(folder / "bare")
    spliced = bare_gunicorn(folder / "splice", SPLICE_APP)

    def put_to(server: Instance) -> Callable[[Path], None]:
        ticket = {"method": "PUT", "url": f"{server.base}/", "headers": {}}
        return lambda source: send(ticket, source, source.stat().st_size, CONTENT_TYPE, nothing)

    bare_put, splice_put = put_to(bare), put_to(spliced)
    figures: list[Figure] = []
    with contextlib.ExitStack() as servers:
        server = servers.enter_context(gunicorn_master(app))
        servers.enter_context(gunicorn_master(bare))
        if args.splice_probe:
            servers.enter_context(gunicorn_master(spliced))
            splice_put(warm)
            send_raw = servers.enter_context(raw_receiver(folder / "raw"))
            send_raw(warm)
        tester = Tester(app.base)
        workers = Workers(server.pid)
        if tester.ticketed(warm) != "PUT":
            sys.exit("expected a PUT ticket to the app with local storage")
        staging.check(warm.stat().st_size)
        tester.form(warm)
        staging.check(warm.stat().st_size)
        bare_put(warm)
        for size, source in files.items():
            ceiling = Figure(size, DISK, "ceiling: `cp` + `sync` of the copy", CEILING)
            reference = Figure(size, DISK, "PUT to a bare WSGI app on the same gunicorn", REFERENCE)
            probe = Figure(size, DISK, "PUT to the bare app, spliced (a probe)", REFERENCE)
            raw = Figure(size, DISK, "TCP into a file, no HTTP: sendfile -> splice", KERNEL)
            put = Figure(size, DISK, "PUT ticket to the app", APP)
            form = Figure(size, DISK, "no-JS form post", APP)
            rounds(
                [
                    Step(ceiling, None, lambda s=source: cp(s), after=copy.unlink),
                    Step(reference, None, lambda s=source: bare_put(s)),
                    *(
                        [
                            Step(raw, None, lambda s=source: send_raw(s)),
                            Step(probe, None, lambda s=source: splice_put(s)),
                        ]
                        if args.splice_probe
                        else []
                    ),
                    Step(put, workers, lambda s=source: tester.ticketed(s), staging),
                    Step(form, workers, lambda s=source: tester.form(s), staging),
                ],
                args.repeat,
            )
            probes = [raw, probe] if args.splice_probe else []
            figures += [ceiling, *probes, reference, put, form]
    return figures


def s3_run(folder: Path, files: dict[int, Path], warm: Path, settings: dict[str, str],
           args: argparse.Namespace) -> list[Figure]:  # fmt: skip
    figures: list[Figure] = []
    with moto_server(folder) as endpoint:
        bucket = f"bench-upload-{secrets.token_hex(4)}"
        storage_url = f"s3://{bucket}?endpoint_url={endpoint}&region=us-east-1"
        app = instance(folder, {**settings, **AWS_ENV, "GREENLIGHT_STORAGE_URL": storage_url})
        prepare(app)
        client = boto3.session.Session(
            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        ).client(
            "s3",
            endpoint_url=endpoint,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )
        staging = s3_staging(client, bucket)

        def upload_fileobj(source: Path) -> None:
            with source.open("rb") as handle:
                client.upload_fileobj(handle, bucket, "ceiling/copy")

        with gunicorn_master(app) as server:
            tester = Tester(app.base)
            workers = Workers(server.pid)
            upload_fileobj(warm)
            if tester.ticketed(warm) != "POST":
                sys.exit("expected a presigned POST ticket to S3")
            staging.check(warm.stat().st_size)
            tester.form(warm)
            staging.check(warm.stat().st_size)
            for size, source in files.items():
                ceiling = Figure(size, S3, "ceiling: boto3 `upload_fileobj`", CEILING)
                direct = Figure(size, S3, "browser-direct: presigned POST to S3", TICKET)
                form = Figure(size, S3, "no-JS form post", APP)

                rounds(
                    [
                        Step(
                            ceiling,
                            None,
                            lambda s=source: upload_fileobj(s),
                            after=lambda: client.delete_object(Bucket=bucket, Key="ceiling/copy"),
                        ),
                        Step(direct, workers, lambda s=source: tester.ticketed(s), staging),
                        Step(form, workers, lambda s=source: tester.form(s), staging),
                    ],
                    args.repeat,
                )
                figures += [ceiling, direct, form]
    return figures


# --- report --------------------------------------------------------------------------------------


def make_file(path: Path, size: int) -> None:
    """Random bytes (not a video: nothing verifies them here), written a block at a time."""
    block = os.urandom(8 * MIB)
    with path.open("wb") as out:
        left = size
        while left:
            left -= out.write(block[: min(left, len(block))])


def table(figures: list[Figure]) -> list[str]:
    lines = [
        "| size | storage | path | carries the bytes | time | MB/s | ratio to ceiling | "
        "worker peak RSS growth: in the upload / since before the first | targets |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ceiling_rate = 0.0
    for figure in figures:
        rate = figure.rate
        if figure.carrier == CEILING and rate is not None:
            ceiling_rate = rate
        ratio = rate / ceiling_rate if rate is not None and ceiling_rate else None
        targets = []
        if figure.carrier == APP:
            verdict = "missed" if ratio is None or ratio < RATIO_TARGET else "met"
            targets.append(f"ratio ≥ {RATIO_TARGET}: {verdict}")
        growth = max(figure.growth, key=lambda g: g.overall) if figure.growth else None
        if growth is not None and figure.size >= RSS_TARGET_SIZE:
            verdict = "met" if growth.overall < RSS_TARGET else "missed"
            targets.append(f"RSS < {RSS_TARGET // MIB} MB: {verdict}")
        took = f"{statistics.median(figure.seconds):.2f} s" if figure.seconds else ""
        if figure.failures:
            tries = len(figure.failures) + len(figure.seconds)
            took += f" (failed {len(figure.failures)} of {tries}: {figure.failures[0]})"
        lines.append(
            f"| {figure.size // MIB} MB | {figure.storage} | {figure.path} | {figure.carrier} | "
            f"{took.strip()} | {'—' if rate is None else f'{rate:.0f}'} | "
            f"{'—' if ratio is None else f'{ratio:.2f}'} | "
            f"{'—' if growth is None else growth} | "
            f"{'; '.join(targets) or '—'} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes-mb", default="256,1024", help="file sizes in MB (2^20 bytes), comma-separated"
    )
    parser.add_argument("--repeat", type=int, default=1, help="uploads per path and size")
    parser.add_argument(
        "--storage", default="disk,s3", help="which backends to run: disk, s3 or disk,s3"
    )
    parser.add_argument(
        "--splice-probe",
        action="store_true",
        help="also time a bare app taking the PUT body by splice(2) (local disk only)",
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    runs = {"disk": (DISK, disk_run), "s3": (S3, s3_run)}
    chosen = args.storage.split(",")
    if not chosen or any(name not in runs for name in chosen):
        parser.error(f"--storage wants disk, s3 or disk,s3, not {args.storage!r}")
    try:
        sizes = [int(part) * MIB for part in args.sizes_mb.split(",")]
    except ValueError:
        parser.error(f"--sizes-mb wants whole numbers separated by commas, not {args.sizes_mb!r}")
    if min(sizes) <= 0 or args.repeat < 1:
        parser.error("sizes and --repeat must be at least 1")
    began = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="greenlight-upload-") as tmp_name:
        tmp = Path(tmp_name)
        files = {size: tmp / f"bench-{size // MIB}mb.mp4" for size in sorted(set(sizes))}
        warm = tmp / "warm-up.mp4"
        for size, path in [*files.items(), (WARM_UP_BYTES, warm)]:
            make_file(path, size)
        settings = {
            "GREENLIGHT_SECRET_KEY": "bench-" + "k" * 40,
            # The default limit (1 GiB) unless a larger file is asked for: S3 part sizes follow it.
            "GREENLIGHT_MAX_CLIP_BYTES": str(max(1 << 30, *sizes)),
        }
        figures: list[Figure] = []
        for label, run in (runs[name] for name in chosen):
            folder = tmp / label.split()[0].lower()
            folder.mkdir()
            backend = {
                **settings,
                "GREENLIGHT_DATABASE_URL": f"sqlite:///{folder}/greenlight.db",
                "GREENLIGHT_QUEUE_URL": f"sqlite:///{folder}/queue.db",
            }
            figures += run(folder, files, warm, backend, args)

    order = {size: n for n, size in enumerate(files)}
    figures.sort(key=lambda f: order[f.size])  # by size, each backend's rows kept in order
    lines = table(figures)
    took = time.perf_counter() - began
    print("\n".join(lines))
    print(f"whole run {took:.0f} s")
    if args.no_record:
        return
    intro = (
        f"One file of random bytes per size, {args.repeat} upload(s) per path"
        f"{' (median shown)' if args.repeat > 1 else ''}, one at a time, each beside its "
        "ceiling; the Procfile's gunicorn (gthread, 2 workers x 8 threads) on loopback, "
        "SQLite, no verification worker; "
        + ("moto in server mode in its own process; " if "s3" in chosen else "local disk only; ")
        + ("every other round runs its paths in reverse order; " if args.repeat > 1 else "")
        + (SPLICE_NOTE if args.splice_probe else "")
        + "bytes sent by the Python client's own code; MB = 2^20 bytes; ratio = MB/s / the "
        "ceiling's MB/s; "
        f"targets: ratio at least {RATIO_TARGET} where the app carries the bytes, worker peak "
        f"RSS growth under {RSS_TARGET // MIB} MB at 1 GB"
    )
    notes = (
        f"Whole run {took:.0f} s. Times run from the first request of an upload to its "
        '"done" answer (202 from …/complete, or the form\'s 302), the ticket request included. '
        "Peak RSS growth: each worker's VmHWM is reset (5 to /proc/PID/clear_refs) just "
        "before the upload and read after it; shown less the worker's RSS at that reset "
        "(what this upload added) and less its RSS before its first upload (what the worker "
        "has grown to, memory earlier uploads left held included: the figure the target "
        "is for), the largest over the workers."
    )
    record("Uploads through gunicorn — `bench/upload.py`", intro, lines, notes)


if __name__ == "__main__":
    main()
