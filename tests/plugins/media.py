"""Pytest fixtures that make real (and deliberately broken) media files with PyAV.

Load with ``pytest_plugins = ["tests.plugins.media"]``. Encoded clips are cached for the
whole session by their arguments, and each test gets its own copy in its tmp dir, so a
test may cut, corrupt or delete its file freely.

Fixtures:
    make_video(name="clip.mp4", *, seconds=2.0, width=1920, height=1080, fps=24,
               codec=None, container=None, audio=False, faststart=False) -> Path
    make_media_file(kind, name=None) -> Path, kind one of MEDIA_KINDS
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
import pytest

_REPO_ROOT = Path(__file__).resolve().parents[2]
# Encoders that now and then never return from their final flush: SVT-AV1 4.x with its
# thread pool hung once in a few dozen to a few hundred encodes here. lp=1 (below) ran 500
# clean; the rest is covered by encoding in a child process that can be killed and retried.
_HANG_PRONE_ENCODERS = frozenset({"libsvtav1"})
_ENCODE_TIMEOUT_SECONDS = 30
_ENCODE_ATTEMPTS = 3

_MUXERS = {".mp4": "mp4", ".m4a": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
_ENCODER_OPTIONS: dict[str, dict[str, str]] = {
    # Fast and small: the fixtures are about structure, not picture quality.
    "libx264": {"preset": "ultrafast", "crf": "32"},
    "libx265": {"preset": "ultrafast", "crf": "32", "x265-params": "log-level=none"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "crf": "50", "b": "0"},
    "libvpx": {"deadline": "realtime", "cpu-used": "16", "crf": "50", "b": "1M"},
    # lp=1: a single thread; see _HANG_PRONE_ENCODERS.
    "libsvtav1": {"preset": "12", "crf": "55", "svtav1-params": "lp=1"},
}

MEDIA_KINDS = (
    "audio_only",  # AAC in an MP4 box, no video stream
    "png",  # a real PNG image
    "text",  # plain text named .mp4
    "empty",  # zero bytes
    "truncated",  # the first half of a real H.264 MP4
    "mpeg4",  # a real MP4 whose video is MPEG-4 Part 2 (not an allowed codec)
    "hls",  # an HLS playlist pointing at file:///etc/passwd
    "dref",  # an MP4 whose samples live in a sibling file (external data reference)
)
_DEFAULT_NAMES = {
    "audio_only": "audio.m4a",
    "png": "image.png",
    "text": "notes.mp4",
    "empty": "empty.mp4",
    "truncated": "truncated.mp4",
    "mpeg4": "mpeg4.mp4",
    "hls": "playlist.m3u8",
    "dref": "reference.mp4",
}


class MakeVideo(Protocol):
    """Signature of the make_video factory."""

    def __call__(
        self,
        name: str = "clip.mp4",
        *,
        seconds: float = 2.0,
        width: int = 1920,
        height: int = 1080,
        fps: float | Fraction = 24,
        codec: str | None = None,
        container: str | None = None,
        audio: bool = False,
        faststart: bool = False,
    ) -> Path: ...


def _drain(sink: Any) -> list[Any]:
    frames = []
    while True:
        try:
            frames.append(sink.pull())
        except (av.BlockingIOError, av.EOFError):
            return frames


def _video_frames(seconds: float, width: int, height: int, rate: Fraction) -> list[Any]:
    # testsrc2 draws moving colour bars and a clock natively, far faster than Python could.
    graph = av.filter.Graph()
    source = graph.add("testsrc2", f"size={width}x{height}:rate={rate}:duration={seconds}")
    convert = graph.add("format", "yuv420p")
    sink = graph.add("buffersink")
    source.link_to(convert)
    convert.link_to(sink)
    graph.configure()
    return _drain(sink)


def _audio_frames(seconds: float) -> list[Any]:
    graph = av.filter.Graph()
    source = graph.add("sine", f"frequency=440:sample_rate=48000:duration={seconds}")
    convert = graph.add("aformat", "sample_fmts=fltp:channel_layouts=stereo")
    sink = graph.add("abuffersink")
    source.link_to(convert)
    convert.link_to(sink)
    graph.configure()
    return _drain(sink)


def write_video(
    path: Path,
    *,
    seconds: float = 2.0,
    width: int = 1920,
    height: int = 1080,
    fps: float | Fraction = 24,
    codec: str | None = None,
    container: str | None = None,
    audio: bool = False,
    video: bool = True,
    faststart: bool = False,
) -> Path:
    """Encode a synthetic clip to `path` (no caching); return `path`."""
    muxer = container or _MUXERS.get(path.suffix.lower())
    if muxer is None:
        raise ValueError(f"cannot tell the container from {path.name!r}; pass container=")
    codec = codec or ("libvpx-vp9" if muxer == "webm" else "libx264")
    rate = Fraction(fps).limit_denominator(1001)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format=muxer, options=options) as output:
        streams: list[tuple[Any, list[Any]]] = []
        if video:
            stream = output.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = dict(_ENCODER_OPTIONS.get(codec, {}))
            streams.append((stream, _video_frames(seconds, width, height, rate)))
        if audio:
            audio_codec = "libopus" if muxer == "webm" else "aac"
            audio_stream = output.add_stream(audio_codec, rate=48000, layout="stereo")
            streams.append((audio_stream, _audio_frames(seconds)))
        for stream, frames in streams:
            for frame in frames:
                output.mux(stream.encode(frame))
            output.mux(stream.encode(None))
    return path


def _write_video_in_child(path: Path, **options: Any) -> Path:
    """Run write_video in a child process, killed and retried if it hangs."""
    options["fps"] = str(Fraction(options.get("fps", 24)))
    code = (
        "import json, sys\n"
        "from fractions import Fraction\n"
        "from pathlib import Path\n"
        "from tests.plugins.media import write_video\n"
        "options = json.loads(sys.argv[2])\n"
        "options['fps'] = Fraction(options['fps'])\n"
        "write_video(Path(sys.argv[1]), **options)\n"
    )
    argv = [sys.executable, "-c", code, str(path), json.dumps(options)]
    for _attempt in range(_ENCODE_ATTEMPTS):
        try:
            subprocess.run(
                argv,
                cwd=_REPO_ROOT,
                # SVT_LOG=1: errors only, not SVT-AV1's banner on every encoder it opens.
                env={**os.environ, "SVT_LOG": "1"},
                check=True,
                capture_output=True,
                timeout=_ENCODE_TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired:
            continue
        return path
    raise RuntimeError(f"encoding {path.name} hung {_ENCODE_ATTEMPTS} times")


def _png(width: int = 16, height: int = 16) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    pixels = b"".join(
        b"\0" + b"".join(bytes((x * 16 % 256, y * 16 % 256, 128)) for x in range(width))
        for y in range(height)
    )
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body) + 8) + kind + body


def _alias_dref(target: Path) -> bytes:
    """A dref box whose only entry is a QuickTime alias to `target` (as FFmpeg reads it)."""
    name = target.name.encode()[:63]
    fixed = (
        bytes(10)
        + bytes([0])
        + bytes(27)  # volume name
        + bytes(12)
        + bytes([len(name)])
        + name.ljust(63, b"\0")
        + bytes(16)
        + struct.pack(">hh", 0, 0)  # nlvl_from, nlvl_to: no relative lookup
        + bytes(16)
    )
    path = str(target).encode()
    padded = path + (b"\0" if len(path) % 2 else b"")
    records = struct.pack(">hH", 2, len(path)) + padded + struct.pack(">hH", -1, 0)
    # Flags 0: the media is NOT in this file.
    entry = _box(b"alis", b"\0\0\0\0" + fixed + records)
    return _box(b"dref", b"\0\0\0\0" + struct.pack(">I", 1) + entry)


def _replace_dref(data: bytes, dref: bytes) -> bytes:
    # Rebuild only the boxes on the path to dref so every size above it stays right.
    containers = {b"moov", b"trak", b"mdia", b"minf", b"dinf"}
    out, pos = [], 0
    while pos < len(data):
        size = struct.unpack(">I", data[pos : pos + 4])[0]
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + size]
        if kind in containers:
            out.append(_box(kind, _replace_dref(body, dref)))
        elif kind == b"dref":
            out.append(dref)
        else:
            out.append(data[pos : pos + size])
        pos += size
    return b"".join(out)


def write_external_reference_mp4(path: Path, source: Path) -> Path:
    """Write an MP4 whose video samples point, via an alias dref, to a copy of `source`.

    `source` must have its moov box after mdat (no faststart), so the rewrite of moov does
    not move any sample. The mdat payload of the new file is zeroed: only a demuxer that
    followed the reference could decode a picture.
    """
    external = path.with_name(path.stem + "-media" + path.suffix)
    shutil.copyfile(source, external)
    data = bytearray(source.read_bytes())
    pos = 0
    while pos < len(data):
        size = struct.unpack(">I", data[pos : pos + 4])[0]
        if data[pos + 4 : pos + 8] == b"mdat":
            data[pos + 8 : pos + size] = bytes(size - 8)
        pos += size
    path.write_bytes(_replace_dref(bytes(data), _alias_dref(external)))
    return path


@pytest.fixture(scope="session")
def media_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session-wide directory of encoded clips, keyed by their arguments."""
    return tmp_path_factory.mktemp("media-cache")


def _cached(cache: Path, suffix: str, key: tuple[Any, ...], build: Callable[[Path], Any]) -> Path:
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:20]
    target = cache / f"{digest}{suffix}"
    if not target.exists():
        partial = cache / f"{digest}.part{suffix}"
        build(partial)
        partial.replace(target)
    return target


def _place(source: Path, directory: Path, name: str) -> Path:
    target = directory / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


@pytest.fixture
def make_video(tmp_path: Path, media_cache_dir: Path) -> MakeVideo:
    """Factory for real video files in this test's tmp dir (encoded once per session).

    codec is a PyAV encoder name (libx264, libx265, libvpx-vp9, libsvtav1, mpeg4, …) and
    defaults to libvpx-vp9 for .webm and libx264 otherwise; container is an FFmpeg muxer
    name and defaults from the suffix (.mp4 .m4a .mov .mkv .webm).
    """

    def make(
        name: str = "clip.mp4",
        *,
        seconds: float = 2.0,
        width: int = 1920,
        height: int = 1080,
        fps: float | Fraction = 24,
        codec: str | None = None,
        container: str | None = None,
        audio: bool = False,
        faststart: bool = False,
    ) -> Path:
        suffix = Path(name).suffix.lower()
        muxer = container or _MUXERS.get(suffix)
        key = ("video", muxer, seconds, width, height, Fraction(fps), codec, audio, faststart)

        def build(partial: Path) -> None:
            options: dict[str, Any] = {
                "seconds": seconds,
                "width": width,
                "height": height,
                "fps": fps,
                "codec": codec,
                "container": muxer,
                "audio": audio,
                "faststart": faststart,
            }
            if codec in _HANG_PRONE_ENCODERS:
                _write_video_in_child(partial, **options)
            else:
                write_video(partial, **options)

        return _place(_cached(media_cache_dir, suffix, key, build), tmp_path, name)

    return make


@pytest.fixture
def make_media_file(tmp_path: Path, media_cache_dir: Path) -> Callable[..., Path]:
    """Factory for inputs a clip gate must refuse: make_media_file(kind, name=None).

    Kinds (see MEDIA_KINDS): audio_only, png, text, empty, truncated, mpeg4, hls, dref.
    """

    def make(kind: str, name: str | None = None) -> Path:
        if kind not in MEDIA_KINDS:
            raise ValueError(f"unknown media kind {kind!r}; pick one of {MEDIA_KINDS}")
        target = tmp_path / (name or _DEFAULT_NAMES[kind])
        target.parent.mkdir(parents=True, exist_ok=True)
        if kind == "audio_only":
            source = _cached(
                media_cache_dir,
                ".m4a",
                ("audio_only",),
                lambda p: write_video(p, container="mp4", video=False, audio=True),
            )
            return _place(source, target.parent, target.name)
        if kind == "png":
            target.write_bytes(_png())
        elif kind == "text":
            target.write_text("This is a shopping list, not a video.\nmilk\neggs\n")
        elif kind == "empty":
            target.write_bytes(b"")
        elif kind == "hls":
            target.write_text(
                "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n"
                "file:///etc/passwd\n#EXT-X-ENDLIST\n"
            )
        else:
            codec = "mpeg4" if kind == "mpeg4" else "libx264"
            size = {"width": 320, "height": 240}
            source = _cached(
                media_cache_dir,
                ".mp4",
                ("bad-source", codec),
                lambda p: write_video(p, codec=codec, **size),
            )
            if kind == "mpeg4":
                return _place(source, target.parent, target.name)
            if kind == "truncated":
                data = source.read_bytes()
                target.write_bytes(data[: len(data) // 2])
            else:
                write_external_reference_mp4(target, source)
        return target

    return make
