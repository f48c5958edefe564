"""Inspect uploaded video clips safely: container sniffing, limits, and a poster frame.

FFmpeg is a large C parser and the clips are untrusted, so FFmpeg never runs in this
process. `inspect_clip` sniffs the container from magic bytes itself, checks the file's
top-level structure, then hands a read-only descriptor to a short-lived child process
(`approval/_probe_child.py`) that runs PyAV under a wall-clock deadline, an address-space
cap and a forced demuxer with every nested open refused. Whatever the child reports is
validated again here before it becomes a `MediaFacts`.

This module is a plain library: it imports nothing from Flask or the rest of `approval`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

logger = logging.getLogger(__name__)

__all__ = [
    "Inspection",
    "MediaFacts",
    "MediaLimits",
    "MediaRejected",
    "format_duration",
    "inspect_clip",
    "sniff_container",
]

# Started by path, not with -m: importing `approval` would load the web app into the
# process that parses hostile data. Tests point this at stand-in children.
CHILD_SCRIPT = Path(__file__).with_name("_probe_child.py")

# Enough for an ftyp box or an EBML header; real ones are a few dozen bytes.
SNIFF_BYTES = 4096
# A clip a frame or two past the limit is muxer rounding, not a longer clip.
DURATION_SLACK_SECONDS = 0.05
# Fragmented MP4 has two boxes per fragment; more than this is not a clip we make.
MAX_TOP_LEVEL_BOXES = 100_000
MAX_POSTER_BYTES = 4 << 20

CONTAINER_LABELS = {"mp4": "MP4", "mov": "MOV", "webm": "WebM", "mkv": "MKV"}
CODEC_LABELS = {"h264": "H.264", "hevc": "HEVC", "vp9": "VP9", "av1": "AV1", "vp8": "VP8"}
DEMUXER_FOR = {"mp4": "mov", "mov": "mov", "webm": "matroska", "mkv": "matroska"}
# ISO-BMFF major brands of still images (HEIF/HEIC/AVIF): photos, not clips.
_IMAGE_BRANDS = frozenset({b"mif1", b"heic", b"heix", b"heim", b"heis", b"avif"})

# Reasons use the real multiplication sign; spelled by name so no one "fixes" it to x.
_TIMES = "\N{MULTIPLICATION SIGN}"

_CUT_SHORT = "it ends partway through its data"
_NO_REPORT = "the probe could not report on it"
_MAX_REPORT_TEXT = 200
_MAX_CODEC_NAME = 32

_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPE = 0x4282
_MATROSKA_SEGMENT = 0x18538067


@dataclass(frozen=True)
class MediaLimits:
    """What an uploaded clip may be."""

    max_seconds: float = 120.0
    max_width: int = 4096
    max_height: int = 2160
    allowed_containers: frozenset[str] = frozenset({"mp4", "mov", "webm", "mkv"})
    allowed_codecs: frozenset[str] = frozenset({"h264", "hevc", "vp9", "av1"})


@dataclass(frozen=True)
class MediaFacts:
    """What the probe found out about an accepted clip."""

    container: str  # mp4, mov, webm or mkv, as sniffed from the file's first bytes
    codec: str  # FFmpeg's codec name: h264, hevc, vp9, av1
    width: int  # of the decoded pictures, in pixels
    height: int
    duration: float  # seconds
    fps: float  # average frame rate, or FFmpeg's guess when the file has none
    has_audio: bool
    # How the pictures and sound are encoded, for deciding whether browsers can play the
    # clip as it is. None when unknown. Left out of ==: they refine the facts above, and
    # facts made before these were probed should still compare equal to newer ones.
    pix_fmt: str | None = field(default=None, compare=False)  # of decoded pictures: yuv420p
    profile: str | None = field(default=None, compare=False)  # FFmpeg's name: High, Main 10
    audio_codec: str | None = field(default=None, compare=False)  # first audio stream: aac


@dataclass(frozen=True)
class Inspection:
    """An accepted clip's facts and its poster JPEG."""

    facts: MediaFacts
    poster_jpeg: bytes


class MediaRejected(Exception):
    """The clip was refused; `reason` is the sentence to show the uploader."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def format_duration(seconds: float) -> str:
    """Format seconds as m:ss or h:mm:ss, rounded to the nearest second."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be a finite, non-negative number: {seconds!r}")
    whole = math.floor(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def _spoken_list(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} or {items[-1]}"


def _labels(names: Iterable[str], labels: dict[str, str]) -> list[str]:
    # Known names in their familiar order, anything else after them, alphabetically.
    chosen = set(names)
    known = [label for name, label in labels.items() if name in chosen]
    return known + sorted(name.upper() for name in chosen - labels.keys())


def _container_reason(limits: MediaLimits) -> str:
    accepted = _spoken_list(_labels(limits.allowed_containers, CONTAINER_LABELS))
    return f"file is not a video container we accept ({accepted})"


def _damaged(detail: str) -> MediaRejected:
    return MediaRejected(f"file is damaged or truncated: {detail}")


def _read_vint(data: bytes, pos: int, *, keep_marker: bool) -> tuple[int, int, bool]:
    """Read an EBML variable-length integer; return (value, next position, all-ones)."""
    if pos >= len(data):
        raise ValueError("EBML data ends early")
    first = data[pos]
    length = 8 - first.bit_length() + 1
    if first == 0 or pos + length > len(data):
        raise ValueError("bad EBML variable-length integer")
    raw = int.from_bytes(data[pos : pos + length], "big")
    mask = (1 << (7 * length)) - 1
    # An all-ones size is Matroska's "unknown size" (live streams).
    return (raw if keep_marker else raw & mask), pos + length, raw & mask == mask


def _ebml_header(data: bytes) -> tuple[str | None, int]:
    """Return the EBML DocType and the offset just past the EBML header."""
    element, pos, _ = _read_vint(data, 0, keep_marker=True)
    if element != int.from_bytes(_EBML_MAGIC, "big"):
        raise ValueError("not an EBML header")
    size, pos, unknown = _read_vint(data, pos, keep_marker=False)
    end = pos + size
    if unknown or end > len(data):
        raise ValueError("EBML header does not fit the sniffed bytes")
    doctype = None
    while pos < end:
        element, pos, _ = _read_vint(data, pos, keep_marker=True)
        size, pos, _ = _read_vint(data, pos, keep_marker=False)
        if pos + size > end:
            raise ValueError("EBML header element overruns the header")
        if element == _EBML_DOCTYPE:
            doctype = data[pos : pos + size].rstrip(b"\0").decode("ascii", "replace")
        pos += size
    return doctype, end


def sniff_container(head: bytes) -> str | None:
    """Name the container ("mp4", "mov", "webm", "mkv") from a file's first bytes, or None."""
    if len(head) >= 12 and head[4:8] == b"ftyp" and int.from_bytes(head[:4], "big") >= 12:
        brand = head[8:12]
        if brand in _IMAGE_BRANDS:
            return None
        # Only QuickTime's own brand means MOV; every ISO brand (isom, mp42, …) is MP4.
        return "mov" if brand == b"qt  " else "mp4"
    if head.startswith(_EBML_MAGIC):
        try:
            doctype, _end = _ebml_header(head)
        except ValueError:
            return None
        return {"webm": "webm", "matroska": "mkv"}.get(doctype or "")
    return None


def _check_bmff_boxes(fh: BinaryIO, size: int) -> None:
    # A top-level box that runs past the end of the file is the classic truncated
    # upload; FFmpeg may still show its first frames, so catch it here.
    offset = 0
    for _ in range(MAX_TOP_LEVEL_BOXES):
        if size - offset < 8:
            return
        fh.seek(offset)
        header = fh.read(16)
        box_size = int.from_bytes(header[:4], "big")
        if box_size == 0:
            return  # "extends to the end of the file"
        if box_size == 1:
            if len(header) < 16:
                raise _damaged("the file ends inside a box header")
            box_size = int.from_bytes(header[8:16], "big")
            if box_size < 16:
                raise _damaged("a box has an impossible size")
        elif box_size < 8:
            raise _damaged("a box has an impossible size")
        if offset + box_size > size:
            logger.info("box %r at %d overruns the file (%d bytes)", header[4:8], offset, size)
            raise _damaged(_CUT_SHORT)
        offset += box_size
    raise _damaged("the file has too many top-level boxes")


def _check_matroska_segment(head: bytes, size: int) -> None:
    # Matroska writes the Segment's size when the muxer finishes; a shorter file was cut.
    try:
        _doctype, pos = _ebml_header(head)
        element, pos, _ = _read_vint(head, pos, keep_marker=True)
        segment_size, pos, unknown = _read_vint(head, pos, keep_marker=False)
    except ValueError:
        raise _damaged("the Matroska header is malformed") from None
    if element != _MATROSKA_SEGMENT:
        raise _damaged("the Matroska segment is missing")
    if not unknown and pos + segment_size > size:
        raise _damaged(_CUT_SHORT)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def child_logs(workdir: Path, limit: int = 4000) -> str:
    """The tails of a child's logs (FFmpeg's stderr and its own), for our log."""
    tails = []
    for path in sorted(workdir.glob("*.log")):
        try:
            with path.open("rb") as fh:
                fh.seek(max(0, path.stat().st_size - limit))
                text = fh.read().decode("utf-8", "replace").strip()
        except OSError:
            continue
        if text:
            tails.append(f"[{path.name}] {text}")
    return "\n".join(tails) or "(no output)"


def run_child(
    script: Path, request: dict[str, Any], *, fd: int, workdir: Path, timeout: float
) -> int | None:
    """Run a sandboxed child on descriptor `fd`; return its exit status, None if killed late.

    Shared with approval.renditions: both children are confined the same way.
    """
    # FFmpeg logs its errors to the child's stderr; the child counts them there.
    with (workdir / "ffmpeg.log").open("wb") as log:
        # -I: no user site, no PYTHON* variables, no script directory on sys.path.
        # The child gets no environment at all: nothing of the app's secrets.
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [sys.executable, "-I", str(script), json.dumps(request)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(fd,),
            env={"LC_ALL": "C.UTF-8"},
            cwd=workdir,
        )
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            logger.warning("%s killed after %.3g s (pid %d)", script.name, timeout, proc.pid)
            return None


def _run_probe(
    fd: int,
    container: str,
    limits: MediaLimits,
    *,
    timeout: float,
    memory_limit_bytes: int,
    poster_max_width: int,
) -> tuple[dict[str, Any], bytes | None]:
    """Probe in the sandboxed child; return its validated report and poster bytes."""
    with tempfile.TemporaryDirectory(prefix="greenlight-probe-") as tmp:
        workdir = Path(tmp)
        request = {
            "fd": fd,
            "demuxer": DEMUXER_FOR[container],
            "workdir": str(workdir),
            "memory_limit": memory_limit_bytes,
            # CPU time across two decoder threads can outrun the wall clock.
            "cpu_seconds": math.ceil(timeout * 2) + 1,
            "max_width": limits.max_width,
            "max_height": limits.max_height,
            "codecs": sorted(limits.allowed_codecs),
            "duration_limit": limits.max_seconds + DURATION_SLACK_SECONDS,
            "poster_max_width": poster_max_width,
        }
        returncode = run_child(CHILD_SCRIPT, request, fd=fd, workdir=workdir, timeout=timeout)
        if returncode is None:
            raise MediaRejected(f"probing took longer than {timeout:g} s")
        return _collect(workdir, returncode, timeout)


def _collect(workdir: Path, returncode: int, timeout: float) -> tuple[dict[str, Any], bytes | None]:
    result_path = workdir / "result.json"
    if returncode == -signal.SIGXCPU:
        logger.warning("media probe ran out of CPU time")
        raise MediaRejected(f"probing took longer than {timeout:g} s")
    if returncode != 0 or not result_path.exists():
        how = _signal_name(-returncode) if returncode < 0 else f"exit status {returncode}"
        logger.warning("media probe crashed (%s): %s", how, child_logs(workdir))
        raise _damaged("reading it crashed the video decoder")
    try:
        report = json.loads(result_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("media probe wrote an unreadable report: %s", exc)
        raise _damaged(_NO_REPORT) from None
    if not isinstance(report, dict):
        raise _damaged(_NO_REPORT)
    if report.get("refused_opens"):
        logger.warning("clip tried to open other resources: %r", report["refused_opens"])
    if report.get("status") != "ok":
        logger.info("media probe result %r; log: %s", report, child_logs(workdir))
    poster = None
    poster_path = workdir / "poster.jpg"
    if poster_path.exists() and poster_path.stat().st_size <= MAX_POSTER_BYTES:
        poster = poster_path.read_bytes()
    return report, poster


def _field(report: dict[str, Any], key: str, kind: type[Any]) -> Any:
    # The child parses hostile data and could be subverted by it, so its report is
    # checked like any other untrusted input: exact types, finite, non-negative.
    value = report.get(key)
    if kind is float and type(value) is int:
        value = float(value)
    if type(value) is not kind:
        raise _damaged(_NO_REPORT)
    if kind in (int, float) and not (math.isfinite(value) and value >= 0):
        raise _damaged(_NO_REPORT)
    return value


def _text(report: dict[str, Any], key: str) -> str | None:
    # Child-supplied words reach the uploader's screen: keep them short and plain.
    value = report.get(key)
    if isinstance(value, str) and 0 < len(value) <= _MAX_REPORT_TEXT and value.isprintable():
        return value
    return None


def _name(report: dict[str, Any], key: str) -> str | None:
    # Pixel formats, profiles and codecs are short ASCII names ("yuv420p10le", "High 4:2:2",
    # "HE-AAC"); a child that sends anything else is not to be believed about the rest.
    value = report.get(key)
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= _MAX_CODEC_NAME
        or not value.isascii()
        or not value.replace(" ", "").replace(":", "").replace("-", "").replace("_", "").isalnum()
    ):
        raise _damaged(_NO_REPORT)
    return value


def _judge(
    report: dict[str, Any], poster: bytes | None, container: str, limits: MediaLimits
) -> Inspection:
    status = report.get("status")
    if status == "no_video":
        raise MediaRejected("no video stream found")
    if status == "memory":
        raise _damaged("decoding it needs more memory than we allow")
    if status == "damaged":
        raise _damaged(_text(report, "detail") or "it could not be read")
    if status != "ok":
        raise _damaged(_NO_REPORT)

    codec = _text(report, "codec")
    # FFmpeg codec names are short ASCII words (h264, mpeg4, prores_ks); nothing else.
    if codec is None or len(codec) > _MAX_CODEC_NAME or not codec.isascii():
        raise _damaged(_NO_REPORT)
    if not codec.replace("_", "").isalnum():
        raise _damaged(_NO_REPORT)
    if codec not in limits.allowed_codecs:
        allowed = _spoken_list(_labels(limits.allowed_codecs, CODEC_LABELS))
        raise MediaRejected(f"video codec {codec} is not allowed; use {allowed}")

    width, height = _field(report, "width", int), _field(report, "height", int)
    if width > limits.max_width or height > limits.max_height:
        raise MediaRejected(
            f"frame size {width}{_TIMES}{height} is larger than the "
            f"{limits.max_width}{_TIMES}{limits.max_height} limit"
        )
    if width <= 0 or height <= 0:
        raise _damaged("its frame size is missing")

    if report.get("duration") is None:
        raise MediaRejected("could not read the clip's duration")
    duration = _field(report, "duration", float)
    if duration > limits.max_seconds + DURATION_SLACK_SECONDS:
        # Round the clip up so an over-limit clip never reads as equal to the limit.
        raise MediaRejected(
            f"clip is {format_duration(math.ceil(duration))} long; "
            f"the limit is {format_duration(limits.max_seconds)}"
        )

    if report.get("checked") is not True or not poster or not poster.startswith(b"\xff\xd8"):
        raise _damaged("the first video frame could not be decoded")
    facts = MediaFacts(
        container=container,
        codec=codec,
        width=width,
        height=height,
        duration=duration,
        fps=_field(report, "fps", float),
        has_audio=_field(report, "has_audio", bool),
        pix_fmt=_name(report, "pix_fmt"),
        profile=_name(report, "profile"),
        audio_codec=_name(report, "audio_codec"),
    )
    return Inspection(facts=facts, poster_jpeg=poster)


def check_container(fh: BinaryIO, limits: MediaLimits) -> str:
    """Sniff an open clip's container and check its top-level structure; return its name.

    Shared with approval.renditions, which must demux only what it has sniffed itself.
    """
    info = os.fstat(fh.fileno())
    if not stat.S_ISREG(info.st_mode):
        raise MediaRejected(_container_reason(limits))
    if info.st_size == 0:
        raise MediaRejected("file is empty")
    fh.seek(0)
    head = fh.read(SNIFF_BYTES)
    container = sniff_container(head)
    if container is None or container not in limits.allowed_containers:
        logger.info("rejected %s: container %r, head %r", fh.name, container, head[:16])
        raise MediaRejected(_container_reason(limits))
    if container in ("mp4", "mov"):
        _check_bmff_boxes(fh, info.st_size)
    else:
        _check_matroska_segment(head, info.st_size)
    return container


def inspect_clip(
    path: Path,
    limits: MediaLimits = MediaLimits(),
    *,
    timeout: float = 60.0,
    memory_limit_bytes: int = 1 << 30,
    poster_max_width: int = 640,
) -> Inspection:
    """Check an uploaded clip against `limits`; return its facts and poster or raise."""
    with Path(path).open("rb") as fh:
        container = check_container(fh, limits)
        # The child reads this very descriptor, so what was sniffed is what gets probed.
        report, poster = _run_probe(
            fh.fileno(),
            container,
            limits,
            timeout=timeout,
            memory_limit_bytes=memory_limit_bytes,
            poster_max_width=poster_max_width,
        )
    inspection = _judge(report, poster, container, limits)
    logger.info("accepted %s: %r", path, inspection.facts)
    return inspection
