"""Sandboxed child process that transcodes one clip into a browser-playable MP4.

Run only by approval.renditions as ``python -I _render_child.py REQUEST_JSON``, confined
exactly like the probe child (see `_sandbox_child`): resource limits before PyAV is
imported, the clip read through an inherited read-only descriptor with a forced demuxer
and every nested open refused. It writes ``rendition.mp4`` and ``result.json`` into the
work directory it was given; the parent checks both before believing either.

The rendition is H.264 High, yuv420p, AAC stereo at 48 kHz, with the moov box first so a
browser can start playing before the whole file has arrived. Every decoded picture is
encoded once, with its own timestamp: no frame is dropped or repeated.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    import av
    import av.audio
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

logger = logging.getLogger("approval.render_child")

OUTPUT_NAME = "rendition.mp4"
DECODER_THREADS = 2
AUDIO_RATE = 48000
AUDIO_BIT_RATE = 160_000
# A keyframe every two seconds: reviewers scrub, and a seek lands on a keyframe.
KEYFRAME_SECONDS = 2


class _TooLarge(Exception):
    """The rendition outgrew the file-size cap (FFmpeg saw EFBIG)."""


def _video_stream(container: av.container.InputContainer) -> av.video.VideoStream | None:
    import av

    for stream in container.streams.video:
        # Cover art in MP4/MKV is a one-picture "video" stream, not the clip.
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _add_video(
    output: av.container.OutputContainer, source: av.video.VideoStream, request: dict[str, Any]
) -> av.video.VideoStream:
    rate = source.average_rate or source.guessed_rate
    stream = output.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = request["width"], request["height"], "yuv420p"
    # The source's own clock, so every picture keeps the timestamp it came with.
    stream.time_base = source.time_base
    stream.codec_context.time_base = source.time_base
    if rate:
        stream.codec_context.gop_size = max(1, round(float(rate) * KEYFRAME_SECONDS))
    decoder = source.codec_context
    # Converting between YUV formats keeps the colour matrix, so keep its labels too.
    context = stream.codec_context
    context.color_primaries = decoder.color_primaries
    context.color_trc = decoder.color_trc
    context.colorspace = decoder.colorspace
    context.color_range = 1  # MPEG (limited) range, what yuv420p means to a player
    if decoder.sample_aspect_ratio:
        context.sample_aspect_ratio = decoder.sample_aspect_ratio
    stream.options = {
        "preset": request["preset"],
        "crf": str(request["crf"]),
        "profile": "high",
        "threads": str(request["encoder_threads"]),
    }
    return stream


def _add_audio(output: av.container.OutputContainer) -> av.audio.AudioStream:
    stream = output.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
    stream.bit_rate = AUDIO_BIT_RATE
    return stream


class _Pictures:
    """Turn decoded pictures into encoder input: scaled, 8-bit 4:2:0, strictly in order."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.last_pts: int | None = None
        self.count = 0

    def prepare(self, frame: av.VideoFrame) -> av.VideoFrame:
        """Return `frame` scaled and converted, with a timestamp after the last one."""
        pts = frame.pts
        if self.last_pts is not None and (pts is None or pts <= self.last_pts):
            # x264 refuses a timestamp that does not move on; nudge it one tick rather
            # than drop the picture.
            pts = self.last_pts + 1
        self.last_pts = pts if pts is not None else 0
        self.count += 1
        picture = frame.reformat(
            width=self.width,
            height=self.height,
            format="yuv420p",
            interpolation="BICUBIC",
            src_color_range=frame.color_range,
            dst_color_range=1,
        )
        picture.pts = self.last_pts
        picture.time_base = frame.time_base
        return picture


def _transcode(
    container: av.container.InputContainer,
    output: av.container.OutputContainer,
    request: dict[str, Any],
) -> dict[str, Any]:
    source = _video_stream(container)
    if source is None or source.codec_context is None:
        return _damaged("it has no video stream we can decode")
    decoder = source.codec_context
    decoder.thread_count = DECODER_THREADS
    decoder.options = {"max_pixels": str(request["max_pixels"])}
    video = _add_video(output, source, request)
    audio_in = container.streams.audio[0] if request["audio"] and container.streams.audio else None
    audio = _add_audio(output) if audio_in is not None else None
    pictures = _Pictures(request["width"], request["height"])
    video_packets = 0
    wanted = [source] + ([audio_in] if audio_in is not None else [])
    for packet in container.demux(wanted):
        if packet.stream_index == source.index:
            for frame in packet.decode():
                encoded = video.encode(pictures.prepare(frame))
                video_packets += len(encoded)
                output.mux(encoded)
        elif audio is not None:
            for sound in packet.decode():
                output.mux(audio.encode(sound))
    tail = video.encode(None)
    video_packets += len(tail)
    output.mux(tail)
    if audio is not None:
        output.mux(audio.encode(None))
    return {
        "status": "ok",
        "width": video.width,
        "height": video.height,
        "frames_in": pictures.count,
        "frames_out": video_packets,
        "has_audio": audio is not None,
    }


def _damaged(detail: str) -> dict[str, Any]:
    return {"status": "damaged", "detail": detail}


def _write_rendition(
    container: av.container.InputContainer, target: Path, request: dict[str, Any]
) -> dict[str, Any]:
    import av

    try:
        # By path, not a file object: faststart reopens the file to move moov to the front.
        with av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"}) as output:
            return _transcode(container, output, request)
    except OSError as exc:
        # PyAV raises FFmpeg's errno errors as OSError; EFBIG is our RLIMIT_FSIZE.
        if exc.errno == errno.EFBIG:
            raise _TooLarge from exc
        raise


def render(
    source: BinaryIO,
    request: dict[str, Any],
    refuser: sandbox.NestedOpenRefuser | None = None,
    ffmpeg_errors: Callable[[], int] | None = None,
) -> dict[str, Any]:
    """Transcode an open clip per `request` into the work directory; return the report."""
    import av

    refuser = refuser or sandbox.NestedOpenRefuser()
    errors_before = ffmpeg_errors() if ffmpeg_errors else 0
    target = Path(request["workdir"]) / OUTPUT_NAME
    try:
        with sandbox.open_input(source, request["demuxer"], refuser) as container:
            report = _write_rendition(container, target, request)
    except (MemoryError, _TooLarge):
        raise
    except (av.FFmpegError, OSError) as exc:
        logger.warning("transcode failed: %s", exc)
        if sandbox.near_memory_cap():
            # FFmpeg reports a refused allocation as whatever error it was in the middle of.
            raise MemoryError from exc
        report = _damaged("its data could not be read to the end")
    errors_after = ffmpeg_errors() if ffmpeg_errors else 0
    if refuser.attempts:
        report = {
            **_damaged("it refers to data outside the file"),
            "refused_opens": refuser.attempts,
        }
    elif report["status"] == "ok" and errors_after > errors_before:
        # Decoders conceal damage and say so only in the log; a rendition would hide it.
        report = _damaged("its video data has errors")
    return report


def main(argv: list[str]) -> int:
    """Entry point: confine, transcode the inherited descriptor, write the report."""
    request = json.loads(argv[1])
    sandbox.confine(request["memory_limit"], request["cpu_seconds"], request["max_output_bytes"])
    workdir = Path(request["workdir"])
    sandbox.start_logging(workdir, "render.log")
    report: dict[str, Any]
    try:
        sandbox.ffmpeg_errors_to_stderr()
        with os.fdopen(request["fd"], "rb") as source:
            source.seek(0)
            report = render(source, request, ffmpeg_errors=sandbox.stderr_size)
    except MemoryError:
        report = {"status": "memory"}
    except _TooLarge:
        report = {"status": "too_large"}
    except Exception:
        logger.exception("render failed")
        # Even importing PyAV fails under a tiny cap; that is memory, not a bad file.
        report = (
            {"status": "memory"} if sandbox.near_memory_cap() else _damaged("it could not be read")
        )
    sandbox.write_report(workdir, report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
