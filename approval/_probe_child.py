"""Sandboxed child process that probes one untrusted clip with PyAV for approval.media.

Run only by approval.media as ``python -I _probe_child.py REQUEST_JSON``. The script is
started by path so that it imports nothing but the standard library and PyAV: the
`approval` package (and the web app behind it) never loads in the process that parses
hostile data. It confines itself with resource limits before PyAV is imported, reads the
clip through an inherited read-only file descriptor, and leaves ``result.json`` (and
``poster.jpg``) in the work directory it was given.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    import av
    import av.container
    import av.video

if __package__:
    from . import _sandbox_child as sandbox
else:
    # Started by path under -I: `approval` is not importable here, and must not be, so
    # the shared confinement is loaded from its file beside this one.
    import importlib.util

    _spec = importlib.util.spec_from_file_location(
        "_sandbox_child", Path(__file__).with_name("_sandbox_child.py")
    )
    if _spec is None or _spec.loader is None:
        raise ImportError("cannot load _sandbox_child.py")
    sandbox = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sandbox)

logger = logging.getLogger("approval.probe_child")

# Shared with the render child; re-exported because tests and callers use these names.
OPEN_OPTIONS = sandbox.OPEN_OPTIONS
DEMUXERS = sandbox.DEMUXERS
NestedOpenRefuser = sandbox.NestedOpenRefuser
confine = sandbox.confine
near_memory_cap = sandbox.near_memory_cap

POSTER_AT_SECONDS = 0.5
# Packets and frames we are willing to look at before the poster; bounds work on
# streams whose timestamps never reach POSTER_AT_SECONDS.
MAX_POSTER_FRAMES = 600
DECODER_THREADS = 2


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _clock(seconds: float) -> str:
    whole = max(0, round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def _damaged(detail: str, facts: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**(facts or {}), "status": "damaged", "detail": detail}


def _video_stream(container: av.container.InputContainer) -> av.video.VideoStream | None:
    import av

    for stream in container.streams.video:
        # Cover art in MP4/MKV is a one-picture "video" stream, not the clip.
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _codec_name(context: av.CodecContext | None) -> str | None:
    # A stream FFmpeg has no decoder for has no context, and then no name worth reporting.
    return context.codec.canonical_name if context is not None else None


def _declared_duration(
    container: av.container.InputContainer, stream: av.video.VideoStream
) -> float | None:
    if container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000
    seconds = _seconds(stream.duration, stream.time_base)
    if seconds is not None and seconds > 0:
        return seconds
    return None


def _poster_jpeg(frame: av.VideoFrame, sar: Fraction | None, max_width: int) -> bytes:
    import av

    display_width = frame.width * (sar if sar and sar > 0 else 1)
    width = min(max_width, math.floor(display_width))
    height = round(width * frame.height / display_width)
    # 4:2:0 chroma needs even dimensions.
    width, height = max(2, width - width % 2), max(2, height - height % 2)
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width = width
    encoder.height = height
    encoder.pix_fmt = "yuv420p"
    encoder.color_range = av.video.reformatter.ColorRange.JPEG
    encoder.time_base = Fraction(1, 25)
    # Fixed quantiser range: the default rate control targets a bitrate, not a picture.
    encoder.options = {"qmin": "2", "qmax": "4"}
    small = frame.reformat(
        width=width,
        height=height,
        format="yuv420p",
        interpolation="AREA",
        dst_color_range=av.video.reformatter.ColorRange.JPEG,
    )
    small.pts = 0
    packets = encoder.encode(small) + encoder.encode(None)
    return b"".join(bytes(packet) for packet in packets)


def probe(
    source: BinaryIO,
    request: dict[str, Any],
    refuser: NestedOpenRefuser | None = None,
    ffmpeg_errors: Callable[[], int] | None = None,
) -> tuple[dict[str, Any], bytes | None]:
    """Probe an open clip per `request`; return the report and the poster JPEG, if any.

    `ffmpeg_errors` returns a number that grows whenever FFmpeg logs an error (main()
    passes the size of the stderr file); without it, logged errors are not checked.
    """
    import av

    refuser = refuser or NestedOpenRefuser()
    errors_before = ffmpeg_errors() if ffmpeg_errors else 0
    report: dict[str, Any]
    poster: bytes | None = None
    try:
        container = sandbox.open_input(source, request["demuxer"], refuser)
    except MemoryError:
        raise
    except (av.FFmpegError, OSError) as exc:
        logger.warning("open failed: %s", exc)
        if near_memory_cap():
            # FFmpeg reports a refused allocation as whatever error it was in the middle of.
            raise MemoryError from exc
        report = _damaged("the container could not be opened")
    else:
        with container:
            report, poster = _probe_open(container, request)
    errors_after = ffmpeg_errors() if ffmpeg_errors else 0
    if refuser.attempts:
        report = _damaged("it refers to data outside the file", report)
        report["refused_opens"] = list(refuser.attempts)
    elif report.get("checked") and errors_after > errors_before:
        # Demuxers resync past garbage and decoders conceal it; both say so only in the log.
        report = _damaged("its video data has errors", report)
    if report["status"] != "ok":
        poster = None
    return report, poster


def _probe_open(
    container: av.container.InputContainer, request: dict[str, Any]
) -> tuple[dict[str, Any], bytes | None]:
    import av

    stream = _video_stream(container)
    if stream is None:
        return {"status": "no_video"}, None
    context = stream.codec_context
    codec = context.codec.canonical_name if context is not None else "unknown"
    rate = stream.average_rate or stream.guessed_rate
    audio = container.streams.audio[0] if container.streams.audio else None
    facts: dict[str, Any] = {
        "status": "ok",
        "codec": codec,
        # Whether browsers can play the clip as it is turns on these (see renditions).
        "profile": context.profile if context is not None else None,
        "audio_codec": _codec_name(audio.codec_context) if audio is not None else None,
        "width": stream.width,
        "height": stream.height,
        "fps": float(rate) if rate else 0.0,
        "has_audio": len(container.streams.audio) > 0,
        "duration": _declared_duration(container, stream),
        "checked": False,
    }
    max_width, max_height = request["max_width"], request["max_height"]
    limit = request["duration_limit"]
    if (
        context is None
        or codec not in request["codecs"]
        or stream.width > max_width
        or stream.height > max_height
        or facts["duration"] is None
        or facts["duration"] > limit
    ):
        # The parent turns these facts into the reason; decoding would only add risk.
        return facts, None

    context.thread_count = DECODER_THREADS
    # Refuse to allocate frames bigger than the limit even if the header lied.
    context.options = {"max_pixels": str(max_width * max_height)}
    decoded = 0
    corrupt = False
    candidate: av.VideoFrame | None = None
    poster_frame: av.VideoFrame | None = None
    video_packets = 0
    span_start: float | None = None
    span_end: float | None = None

    def take(frames: list[av.VideoFrame]) -> None:
        nonlocal decoded, corrupt, candidate, poster_frame
        for frame in frames:
            if poster_frame is not None:
                return
            decoded += 1
            corrupt = corrupt or frame.is_corrupt
            candidate = frame
            at_mark = frame.time is not None and frame.time >= POSTER_AT_SECONDS
            if at_mark or decoded >= MAX_POSTER_FRAMES:
                poster_frame = frame

    try:
        for packet in container.demux():
            if packet.size == 0 and packet.pts is None and packet.dts is None:
                continue  # PyAV's end-of-stream flush marker
            stamp = packet.pts if packet.pts is not None else packet.dts
            at = _seconds(stamp, packet.time_base)
            if packet.is_corrupt:
                where = f" at {_clock(at)}" if at is not None else ""
                return _damaged(f"the data{where} is incomplete", facts), None
            if at is not None:
                end = at + (_seconds(packet.duration, packet.time_base) or 0.0)
                span_start = at if span_start is None else min(span_start, at)
                span_end = end if span_end is None else max(span_end, end)
                if span_end - span_start > limit:
                    # Declared duration lied; report what the data says.
                    return {**facts, "duration": span_end - span_start}, None
            if packet.stream_index != stream.index:
                continue
            video_packets += 1
            if poster_frame is None:
                take(stream.decode(packet))
        if poster_frame is None:
            take(stream.decode(None))
    except MemoryError:
        raise
    except av.FFmpegError as exc:
        logger.warning("demux/decode failed: %s", exc)
        if near_memory_cap():
            raise MemoryError from exc
        if candidate is None:
            return _damaged("the first video frame could not be decoded", facts), None
        return _damaged("the video data could not be read to the end", facts), None

    if candidate is None:
        return _damaged("the first video frame could not be decoded", facts), None
    if corrupt:
        return _damaged("the first video frames are corrupt", facts), None
    if stream.frames and video_packets < stream.frames:
        return _damaged(
            f"only {video_packets} of {stream.frames} video frames are present", facts
        ), None
    declared = facts["duration"]
    covered = (span_end - span_start) if span_start is not None and span_end is not None else 0.0
    if covered < declared - max(0.5, 0.05 * declared):
        return _damaged(
            f"the data stops at {_clock(covered)} but the clip claims {_clock(declared)}", facts
        ), None

    # Decoded pictures are the truth about frame size when a header disagrees.
    facts["width"], facts["height"] = candidate.width, candidate.height
    facts["pix_fmt"] = candidate.format.name
    facts["duration"] = max(declared, covered)
    facts["checked"] = True
    sar = context.sample_aspect_ratio
    return facts, _poster_jpeg(candidate, sar, request["poster_max_width"])


def main(argv: list[str]) -> int:
    """Entry point: confine, probe the inherited descriptor, write the outputs."""
    request = json.loads(argv[1])
    confine(request["memory_limit"], request["cpu_seconds"])
    workdir = Path(request["workdir"])
    sandbox.start_logging(workdir, "probe.log")
    report: dict[str, Any]
    poster: bytes | None = None
    try:
        sandbox.ffmpeg_errors_to_stderr()
        with os.fdopen(request["fd"], "rb") as source:
            source.seek(0)
            report, poster = probe(source, request, ffmpeg_errors=sandbox.stderr_size)
    except MemoryError:
        poster = None
        report = {"status": "memory"}
    except Exception:
        logger.exception("probe failed")
        # Even importing PyAV fails under a tiny cap; that is memory, not a bad file.
        report = {"status": "memory"} if near_memory_cap() else _damaged("it could not be read")
    if poster is not None:
        (workdir / "poster.jpg").write_bytes(poster)
    sandbox.write_report(workdir, report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
