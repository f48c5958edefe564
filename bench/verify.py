"""Time our verify path and our renditions against bare PyAV doing the same work in-process.

Makes a 1080p H.264 clip and a 1080p HEVC clip (SECONDS long, 24 fps, AAC stereo) in a
temporary directory, then measures in one run:

  (a) the ceiling of verifying a file: `sha256sum` plus a bare PyAV decode of every frame;
  (b) ours: SHA-256 in Python over 1 MiB chunks plus `inspect_clip` (sniff, capped child);
  (c) `make_rendition` of the HEVC clip against a bare in-process PyAV transcode with the
      same encoder settings.

Prints a table (figure, ours, ceiling, ratio) and appends it to bench/RESULTS.md with the
date, commit, cores and RAM. Target: verify at most 1.5x its ceiling.

    .venv/bin/python bench/verify.py [--seconds 30] [--no-record]

30 s by default: with 60 s clips, making the HEVC source alone takes about four minutes
on two cores (x265), too long for a routine run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av

ROOT = Path(__file__).resolve().parent.parent
# This checkout's approval, not whichever one the virtualenv was installed from.
sys.path.insert(0, str(ROOT))

from approval import renditions  # noqa: E402 - needs ROOT on sys.path first
from approval.media import inspect_clip  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
WIDTH, HEIGHT, FPS = 1920, 1080, 24
SOURCE_OPTIONS = {
    # What a generator might hand us: quick encodes, not archival ones.
    "libx264": {"preset": "veryfast", "crf": "23"},
    "libx265": {"preset": "ultrafast", "crf": "28", "x265-params": "log-level=none"},
}
CHUNK = 1 << 20


def pull(graph_source: str, kind: str) -> Iterator[Any]:
    """Frames from an FFmpeg source filter, one at a time (a minute of 1080p is 4 GB raw)."""
    graph = av.filter.Graph()
    source = graph.add(*graph_source.split(" ", 1))
    if kind == "video":
        convert = graph.add("format", "yuv420p")
        sink = graph.add("buffersink")
    else:
        convert = graph.add("aformat", "sample_fmts=fltp:channel_layouts=stereo")
        sink = graph.add("abuffersink")
    source.link_to(convert)
    convert.link_to(sink)
    graph.configure()
    while True:
        try:
            yield sink.pull()
        except (av.BlockingIOError, av.EOFError):
            return


def make_clip(path: Path, codec: str, seconds: float) -> Path:
    """Encode moving test bars and a tone as `codec` in MP4, with sound, at 1080p24."""
    with av.open(str(path), "w", format="mp4") as output:
        video = output.add_stream(codec, rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = SOURCE_OPTIONS[codec]
        audio = output.add_stream("aac", rate=48000, layout="stereo")
        pictures = f"testsrc2 size={WIDTH}x{HEIGHT}:rate={FPS}:duration={seconds}"
        for frame in pull(pictures, "video"):
            output.mux(video.encode(frame))
        output.mux(video.encode(None))
        for frame in pull(f"sine frequency=440:sample_rate=48000:duration={seconds}", "audio"):
            output.mux(audio.encode(frame))
        output.mux(audio.encode(None))
    return path


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def sha256sum(path: Path) -> None:
    subprocess.run(["sha256sum", str(path)], check=True, capture_output=True)


def sha256_python(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def decode_all(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _frame in container.decode(stream))


def bare_transcode(source: Path, target: Path) -> None:
    """What make_rendition's child does, minus the sandbox and the checks."""
    cores = len(os.sched_getaffinity(0))
    with (
        av.open(str(source)) as inp,
        av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"}) as out,
    ):
        video_in, audio_in = inp.streams.video[0], inp.streams.audio[0]
        video_in.codec_context.thread_count = 2
        video = out.add_stream("libx264", rate=video_in.average_rate)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.time_base = video.codec_context.time_base = video_in.time_base
        video.codec_context.gop_size = round(float(video_in.average_rate) * 2)
        video.options = {
            "preset": renditions.PRESET,
            "crf": str(renditions.CRF),
            "profile": "high",
            "threads": str(cores),
        }
        audio = out.add_stream("aac", rate=48000, layout="stereo")
        audio.bit_rate = 160_000
        for packet in inp.demux(video_in, audio_in):
            for frame in packet.decode():
                target_stream = video if packet.stream_index == video_in.index else audio
                out.mux(target_stream.encode(frame))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))


Row = tuple[str, float, float]  # figure, ours, ceiling (seconds)


def measure_verify(label: str, path: Path) -> list[Row]:
    """Our verify path for `path` against its ceiling, part by part and in total."""
    hash_ceiling = timed(lambda: sha256sum(path))
    decode_ceiling = timed(lambda: decode_all(path))
    hash_ours = timed(lambda: sha256_python(path))
    inspect_ours = timed(lambda: inspect_clip(path))
    return [
        (f"verify {label}: SHA-256 (Python vs sha256sum)", hash_ours, hash_ceiling),
        (f"verify {label}: inspect_clip vs full decode", inspect_ours, decode_ceiling),
        (f"verify {label}: total", hash_ours + inspect_ours, hash_ceiling + decode_ceiling),
    ]


def machine() -> str:
    meminfo = Path("/proc/meminfo").read_text().split()
    ram_gib = int(meminfo[meminfo.index("MemTotal:") + 1]) / (1 << 20)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    cores = len(os.sched_getaffinity(0))
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit or 'unknown'}, "
        f"{cores} cores, {ram_gib:.0f} GiB RAM, PyAV {av.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="greenlight-bench-") as tmp:
        for label, codec in (("H.264", "libx264"), ("HEVC", "libx265")):
            path = Path(tmp, f"{codec}.mp4")
            spent = timed(lambda path=path, codec=codec: make_clip(path, codec, args.seconds))
            print(f"made {label} clip: {path.stat().st_size >> 20} MB in {spent:.1f} s")
            rows += measure_verify(label, path)
        facts = inspect_clip(path).facts
        ours = timed(lambda: renditions.make_rendition(path, Path(tmp, "ours.mp4"), facts))
        bare = timed(lambda: bare_transcode(path, Path(tmp, "bare.mp4")))
        rows.append(("rendition of HEVC: make_rendition vs bare transcode", ours, bare))

    title = (
        f"{args.seconds:g} s clips, {WIDTH}x{HEIGHT} {FPS} fps with AAC; "
        "ratio = ours / ceiling; target for verify totals: at most 1.5"
    )
    lines = [
        "| figure | ours | ceiling | ratio |",
        "|---|---|---|---|",
        *(f"| {name} | {ours:.2f} s | {ceiling:.2f} s | {ours / ceiling:.2f} |"
          for name, ours, ceiling in rows),
    ]  # fmt: skip
    print(title)
    print("\n".join(lines))
    if not args.no_record:
        section = [
            "",
            "## Verify and renditions — `bench/verify.py`",
            "",
            f"{title}. Measured {machine()}.",
            "",
            *lines,
            "",
        ]
        with RESULTS.open("a", encoding="utf-8") as fh:
            fh.write("\n".join(section))


if __name__ == "__main__":
    main()
