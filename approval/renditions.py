"""Review renditions: which clips browsers play as they are, and a playable MP4 for the rest.

We accept HEVC, AV1, MOV, MKV and 10-bit clips, but Chromium and its kin play only a few
combinations of container, codec and picture format. `plays_in_browsers` says whether a
clip is one of them; `make_rendition` transcodes any other into an H.264 High, yuv420p,
AAC MP4 with its moov box first. The transcode runs in `approval/_render_child.py`, a
child process confined exactly like the probe (see approval.media), and what it wrote is
inspected again here, by the probe, before it is believed.

This module is a plain library: it imports nothing from Flask, only approval.media.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .media import (
    CODEC_LABELS,
    CONTAINER_LABELS,
    DEMUXER_FOR,
    MediaFacts,
    MediaLimits,
    MediaRejected,
    check_container,
    child_logs,
    inspect_clip,
    run_child,
)

logger = logging.getLogger(__name__)

__all__ = [
    "RenditionFacts",
    "make_rendition",
    "playback_problems",
    "plays_in_browsers",
    "rendition_size",
]

# Started by path like the probe child, for the same reason; tests point it elsewhere.
RENDER_SCRIPT = Path(__file__).with_name("_render_child.py")
OUTPUT_NAME = "rendition.mp4"  # what the child writes in its work directory

MAX_LONG_SIDE = 1920
PRESET = "veryfast"  # about real time for 1080p on two cores, and still sharp at crf 20
CRF = 20
# x264 at crf 20 stays far below 64 Mbit/s even on noisy 1080p; the cap stops a runaway.
MAX_BYTES_PER_SECOND = 8 << 20
MIN_OUTPUT_BYTES = 16 << 20
# Timestamps survive the transcode; the last frame's length and AAC's padding may not.
DURATION_SLACK_FRAMES = 2
MIN_DURATION_SLACK_SECONDS = 0.05
FPS_TOLERANCE = 0.02  # relative; an average over the same timestamps barely moves
HASH_CHUNK_BYTES = 1 << 20

_FAILED = "the clip could not be converted for playback: "
_MAX_DETAIL = 200
# What each container browsers play may hold: video codec, 4:2:0 8-bit pictures, audio.
_BROWSER_VIDEO = {"mp4": "h264", "webm": "vp9"}
_BROWSER_AUDIO = {"mp4": frozenset({"aac"}), "webm": frozenset({"opus", "vorbis"})}
_BROWSER_PICTURES = frozenset({"yuv420p", "yuvj420p"})


@dataclass(frozen=True)
class RenditionFacts:
    """What was checked about a rendition that `make_rendition` wrote."""

    codec: str  # always "h264"
    width: int  # of the encoded pictures; both even
    height: int
    duration: float  # seconds, within a frame or two of the source's
    fps: float  # average frame rate, the source's
    has_audio: bool  # AAC stereo 48 kHz when the source had sound
    size_bytes: int
    sha256: str  # hex digest of the file as written to dest


def playback_problems(facts: MediaFacts) -> list[str]:
    """Say why browsers cannot play the clip as it is, one phrase each; [] if they can."""
    problems = []
    container = facts.container
    if container not in _BROWSER_VIDEO:
        problems.append(f"the {CONTAINER_LABELS.get(container, container)} container")
        container = "mp4"  # what a rendition would be; judge the rest against it
    if facts.codec != _BROWSER_VIDEO[container]:
        problems.append(f"{CODEC_LABELS.get(facts.codec, facts.codec)} video")
    if facts.pix_fmt not in _BROWSER_PICTURES:
        # 10-bit, 4:2:2 and 4:4:4 pictures decode in software, or not at all, in browsers.
        problems.append(f"{facts.pix_fmt or 'unknown'} pictures")
    if facts.has_audio and facts.audio_codec not in _BROWSER_AUDIO[container]:
        problems.append(f"{facts.audio_codec or 'unknown'} audio")
    return problems


def plays_in_browsers(facts: MediaFacts) -> bool:
    """Tell whether browsers play the clip as it is: H.264 in MP4 or VP9 in WebM, 8-bit 4:2:0.

    Facts from before the probe reported pixel formats (pix_fmt None) need a rendition.
    """
    return not playback_problems(facts)


def rendition_size(width: int, height: int, max_long_side: int = MAX_LONG_SIDE) -> tuple[int, int]:
    """The rendition's frame size: the same aspect, long side at most `max_long_side`, even."""
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive: {width}x{height}")
    scale = min(1.0, max_long_side / max(width, height))

    def even(side: int) -> int:
        # 4:2:0 chroma needs even sides; round to the nearest, never below 2.
        return max(2, 2 * round(side * scale / 2))

    return min(even(width), max_long_side), min(even(height), max_long_side)


def make_rendition(
    source: Path,
    dest: Path,
    facts: MediaFacts,
    *,
    timeout: float = 600.0,
    memory_limit_bytes: int = 1536 << 20,
) -> RenditionFacts:
    """Transcode an accepted clip into a browser-playable MP4 at `dest`; return its facts.

    `facts` are the clip's own, from `inspect_clip`. Raises MediaRejected with the reason
    if the rendition cannot be made or does not check out; `dest` is then left alone.
    """
    source, dest = Path(source), Path(dest)
    size = rendition_size(facts.width, facts.height)
    with source.open("rb") as fh:
        # Sniffed again here: the child must demux this descriptor with the right demuxer.
        container = check_container(fh, MediaLimits())
        if container != facts.container:
            raise MediaRejected(_FAILED + "the file is not the clip that was checked")
        # Beside dest, so the checked file is renamed into place, never copied.
        with tempfile.TemporaryDirectory(prefix=".greenlight-render-", dir=dest.parent) as tmp:
            workdir = Path(tmp)
            request = {
                **_request(fh.fileno(), container, facts, size, workdir, timeout),
                "memory_limit": memory_limit_bytes,
            }
            returncode = run_child(
                RENDER_SCRIPT, request, fd=fh.fileno(), workdir=workdir, timeout=timeout
            )
            if returncode is None:
                raise MediaRejected(_FAILED + f"it took longer than {timeout:g} s")
            report = _collect(workdir, returncode, timeout)
            output = workdir / OUTPUT_NAME
            rendition = _check_rendition(output, facts, size, report)
            os.replace(output, dest)
    logger.info("rendition of %s at %s: %r", source, dest, rendition)
    return rendition


def _request(
    fd: int,
    container: str,
    facts: MediaFacts,
    size: tuple[int, int],
    workdir: Path,
    timeout: float,
) -> dict[str, Any]:
    cores = len(os.sched_getaffinity(0))
    return {
        "fd": fd,
        "demuxer": DEMUXER_FOR[container],
        "workdir": str(workdir),
        # Encoder and decoder threads together use at most every core we have.
        "cpu_seconds": math.ceil(timeout * cores) + 1,
        "max_output_bytes": max(MIN_OUTPUT_BYTES, math.ceil(facts.duration * MAX_BYTES_PER_SECOND)),
        "width": size[0],
        "height": size[1],
        # Refuse to allocate pictures bigger than the probe saw, even if a header lies.
        "max_pixels": facts.width * facts.height,
        "audio": facts.has_audio,
        "preset": PRESET,
        "crf": CRF,
        "encoder_threads": cores,
    }


def _collect(workdir: Path, returncode: int, timeout: float) -> dict[str, Any]:
    if returncode == -signal.SIGXCPU:
        logger.warning("render child ran out of CPU time")
        raise MediaRejected(_FAILED + f"it took longer than {timeout:g} s")
    result = workdir / "result.json"
    if returncode != 0 or not result.exists():
        logger.warning("render child failed (status %d): %s", returncode, child_logs(workdir))
        raise MediaRejected(_FAILED + "the converter crashed")
    try:
        report = json.loads(result.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("render child wrote an unreadable report: %s", exc)
        report = None
    if not isinstance(report, dict):
        raise MediaRejected(_FAILED + "the converter could not report on it")
    if report.get("refused_opens"):
        logger.warning("clip tried to open other resources: %r", report["refused_opens"])
    status = report.get("status")
    if status != "ok":
        logger.info("render child result %r; log: %s", report, child_logs(workdir))
    if status == "memory":
        raise MediaRejected(_FAILED + "it needs more memory than we allow")
    if status == "too_large":
        raise MediaRejected(_FAILED + "the converted file would be too large")
    if status == "damaged":
        detail = report.get("detail")
        plain = isinstance(detail, str) and 0 < len(detail) <= _MAX_DETAIL and detail.isprintable()
        raise MediaRejected(_FAILED + (detail if plain else "it could not be read"))
    if status != "ok":
        raise MediaRejected(_FAILED + "the converter could not report on it")
    return report


def _top_level_boxes(path: Path) -> list[bytes]:
    """The types of an MP4's top-level boxes, in file order."""
    kinds = []
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        offset = 0
        while offset + 8 <= size:
            fh.seek(offset)
            header = fh.read(16)
            box_size = int.from_bytes(header[:4], "big")
            if box_size == 1 and len(header) == 16:
                box_size = int.from_bytes(header[8:16], "big")
            kinds.append(header[4:8])
            if box_size < 8:
                break  # 0 runs to the end of the file; anything else is broken (probe says)
            offset += box_size
    return kinds


def _check_rendition(
    output: Path, facts: MediaFacts, size: tuple[int, int], report: dict[str, Any]
) -> RenditionFacts:
    """Check what the child wrote as the untrusted file it is; return its facts."""
    if not output.is_file():
        raise MediaRejected(_FAILED + "the converter wrote nothing")
    frames_in, frames_out = report.get("frames_in"), report.get("frames_out")
    if type(frames_in) is not int or frames_in <= 0 or frames_in != frames_out:
        logger.warning("render child encoded %r of %r frames", frames_out, frames_in)
        raise MediaRejected(_FAILED + "the converter lost frames")
    slack = max(DURATION_SLACK_FRAMES / facts.fps if facts.fps else 0.0, MIN_DURATION_SLACK_SECONDS)
    limits = MediaLimits(
        max_seconds=facts.duration + slack,
        max_width=size[0],
        max_height=size[1],
        allowed_containers=frozenset({"mp4"}),
        allowed_codecs=frozenset({"h264"}),
    )
    try:
        got = inspect_clip(output, limits).facts
    except MediaRejected as exc:
        logger.warning("rendition failed its inspection: %s", exc.reason)
        raise MediaRejected(_FAILED + "the converted file did not check out") from None
    boxes = _top_level_boxes(output)
    wrong = [
        what
        for what, bad in [
            ("frame size", (got.width, got.height) != size),
            ("pixel format", got.pix_fmt != "yuv420p"),
            ("profile", got.profile != "High"),
            ("duration", abs(got.duration - facts.duration) > slack),
            ("frame rate", abs(got.fps - facts.fps) > FPS_TOLERANCE * facts.fps),
            ("audio", got.has_audio != facts.has_audio),
            ("audio codec", got.has_audio and got.audio_codec != "aac"),
            ("moov first", b"moov" not in boxes or b"mdat" not in boxes
             or boxes.index(b"moov") > boxes.index(b"mdat")),
        ]
        if bad
    ]  # fmt: skip
    if wrong:
        logger.warning("rendition %r of %r is wrong in: %s", got, facts, ", ".join(wrong))
        raise MediaRejected(_FAILED + "the converted file did not check out")
    return RenditionFacts(
        codec=got.codec,
        width=got.width,
        height=got.height,
        duration=got.duration,
        fps=got.fps,
        has_audio=got.has_audio,
        size_bytes=output.stat().st_size,
        sha256=_sha256(output),
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
