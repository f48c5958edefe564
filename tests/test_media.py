"""Tests for approval.media: accepted clips, every refusal reason, and the sandbox."""

from __future__ import annotations

import json
import os
import struct
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import pytest

from approval import _probe_child as probe_child
from approval import media
from approval.media import (
    Inspection,
    MediaFacts,
    MediaLimits,
    MediaRejected,
    format_duration,
    inspect_clip,
    sniff_container,
)

NOT_A_CONTAINER = "file is not a video container we accept (MP4, MOV, WebM or MKV)"
DAMAGED = "file is damaged or truncated: "


def poster_size(jpeg: bytes) -> tuple[int, int]:
    """Decode a poster with PyAV's MJPEG decoder; return its (width, height)."""
    assert jpeg.startswith(b"\xff\xd8"), "poster is not a JPEG"
    assert jpeg.endswith(b"\xff\xd9"), "poster JPEG is cut short"
    decoder = av.CodecContext.create("mjpeg", "r")
    frames = decoder.decode(av.Packet(jpeg))
    assert len(frames) == 1
    return frames[0].width, frames[0].height


@pytest.fixture
def no_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if inspect_clip would hand the file to FFmpeg at all."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        pytest.fail("the probe child was started for a file that should never reach FFmpeg")

    monkeypatch.setattr(media.subprocess, "Popen", refuse)


@pytest.fixture
def stand_in_child(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[str], Path]:
    """Swap the probe child for a script of the test's own; return the script's path."""

    def use(body: str) -> Path:
        script = tmp_path / "stand_in_child.py"
        prologue = (
            "import json, os, signal, sys, time\n"
            "from pathlib import Path\n"
            "request = json.loads(sys.argv[1])\n"
            "work = Path(request['workdir'])\n"
        )
        script.write_text(prologue + textwrap.dedent(body))
        monkeypatch.setattr(media, "CHILD_SCRIPT", script)
        return script

    return use


# --- accepted clips -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options", "container", "codec"),
    [
        ("clip.mp4", {}, "mp4", "h264"),
        ("clip.mov", {}, "mov", "h264"),
        ("clip.mkv", {"fps": 30}, "mkv", "h264"),
        ("clip.webm", {"width": 1280, "height": 720}, "webm", "vp9"),
        ("hevc.mp4", {"codec": "libx265", "width": 640, "height": 360}, "mp4", "hevc"),
        ("av1.mkv", {"codec": "libsvtav1", "width": 640, "height": 360, "fps": 25}, "mkv", "av1"),
        ("av1.mp4", {"codec": "libsvtav1", "width": 640, "height": 360}, "mp4", "av1"),
        ("sound.mp4", {"audio": True, "width": 640, "height": 360}, "mp4", "h264"),
        ("sound.webm", {"audio": True, "width": 640, "height": 360}, "webm", "vp9"),
    ],
)
def test_good_clip_passes_with_its_facts(
    make_video: Callable[..., Path],
    name: str,
    options: dict[str, Any],
    container: str,
    codec: str,
) -> None:
    path = make_video(name, **options)

    inspection = inspect_clip(path)

    assert isinstance(inspection, Inspection)
    facts = inspection.facts
    assert facts.container == container
    assert facts.codec == codec
    assert (facts.width, facts.height) == (options.get("width", 1920), options.get("height", 1080))
    assert facts.duration == pytest.approx(2.0, abs=0.05)
    assert facts.fps == pytest.approx(options.get("fps", 24))
    assert facts.has_audio is options.get("audio", False)
    width, height = poster_size(inspection.poster_jpeg)
    assert width <= 640
    assert width / height == pytest.approx(facts.width / facts.height, rel=0.02)


def test_poster_is_not_upscaled_and_keeps_portrait_aspect(make_video: Callable[..., Path]) -> None:
    small = inspect_clip(make_video("small.mp4", width=320, height=240))
    portrait = inspect_clip(make_video("portrait.mp4", width=720, height=1280))

    assert poster_size(small.poster_jpeg) == (320, 240)
    assert poster_size(portrait.poster_jpeg) == (640, 1138)


def test_poster_width_is_configurable(make_video: Callable[..., Path]) -> None:
    inspection = inspect_clip(make_video(), poster_max_width=320)

    assert poster_size(inspection.poster_jpeg) == (320, 180)


def test_clip_shorter_than_the_poster_time_still_gets_a_poster(
    make_video: Callable[..., Path],
) -> None:
    inspection = inspect_clip(make_video("short.mp4", seconds=0.25, width=640, height=360))

    assert inspection.facts.duration == pytest.approx(0.25, abs=0.05)
    assert poster_size(inspection.poster_jpeg) == (640, 360)


def test_clip_exactly_at_the_limit_passes(make_video: Callable[..., Path]) -> None:
    limits = MediaLimits(max_seconds=2.0, max_width=1920, max_height=1080)

    facts = inspect_clip(make_video(), limits).facts

    assert facts == MediaFacts(
        container="mp4",
        codec="h264",
        width=1920,
        height=1080,
        duration=pytest.approx(2.0, abs=0.05),
        fps=24.0,
        has_audio=False,
    )


# --- refused inputs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name", "reason"),
    [
        ("png", None, NOT_A_CONTAINER),
        ("png", "image.mp4", NOT_A_CONTAINER),
        ("text", None, NOT_A_CONTAINER),
        ("empty", None, "file is empty"),
        ("truncated", None, DAMAGED + "it ends partway through its data"),
        ("hls", None, NOT_A_CONTAINER),
        ("hls", "playlist.mp4", NOT_A_CONTAINER),
    ],
)
@pytest.mark.usefixtures("no_child")
def test_bad_input_is_refused_before_ffmpeg_sees_it(
    make_media_file: Callable[..., Path], kind: str, name: str | None, reason: str
) -> None:
    path = make_media_file(kind, name)

    with pytest.raises(MediaRejected) as caught:
        inspect_clip(path)

    assert caught.value.reason == reason
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("audio_only", "no video stream found"),
        ("mpeg4", "video codec mpeg4 is not allowed; use H.264, HEVC, VP9 or AV1"),
        # FFmpeg must not follow the reference; the file's own sample data is zeros.
        ("dref", DAMAGED + "the first video frame could not be decoded"),
    ],
)
def test_bad_media_is_refused_by_the_probe(
    make_media_file: Callable[..., Path], kind: str, reason: str
) -> None:
    with pytest.raises(MediaRejected) as caught:
        inspect_clip(make_media_file(kind))

    assert caught.value.reason == reason


def test_audio_only_file_named_mp4_has_no_video(make_media_file: Callable[..., Path]) -> None:
    with pytest.raises(MediaRejected, match=r"^no video stream found$"):
        inspect_clip(make_media_file("audio_only", "audio.mp4"))


def test_hls_playlist_pointing_at_local_files_is_never_opened(
    make_media_file: Callable[..., Path], no_child: None
) -> None:
    playlist = make_media_file("hls", "upload.mp4")
    assert "file:///etc/passwd" in playlist.read_text()

    with pytest.raises(MediaRejected) as caught:
        inspect_clip(playlist)

    assert caught.value.reason == NOT_A_CONTAINER


def test_external_reference_is_refused_even_if_ffmpeg_tried_to_follow_it(
    make_media_file: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Flip FFmpeg's own dref switches on, in-process: the io_open hook is the last lock.
    monkeypatch.setitem(probe_child.OPEN_OPTIONS, "enable_drefs", "1")
    monkeypatch.setitem(probe_child.OPEN_OPTIONS, "use_absolute_path", "1")
    path = make_media_file("dref")
    external = path.with_name("reference-media.mp4")
    request = {
        "demuxer": "mov",
        "max_width": 4096,
        "max_height": 2160,
        "codecs": ["h264"],
        "duration_limit": 120.0,
        "poster_max_width": 640,
    }
    refuser = probe_child.NestedOpenRefuser()

    with path.open("rb") as source:
        report, poster = probe_child.probe(source, request, refuser)

    assert refuser.attempts == [str(external)]
    assert report["status"] == "damaged"
    assert report["refused_opens"] == [str(external)]
    assert poster is None


def test_mp4_cut_inside_its_sample_data_is_caught_by_the_probe(
    make_video: Callable[..., Path],
) -> None:
    # moov first, then mdat cut in half with its size patched to match: the top-level
    # structure looks whole, so only the probe's frame count can notice.
    path = make_video("cut.mp4", faststart=True, width=640, height=360)
    data = path.read_bytes()
    mdat = data.index(b"mdat") - 4
    cut = mdat + (len(data) - mdat) // 2
    path.write_bytes(data[:mdat] + struct.pack(">I", cut - mdat) + data[mdat + 4 : cut])

    with pytest.raises(MediaRejected) as caught:
        inspect_clip(path)

    assert caught.value.reason.startswith(DAMAGED)
    assert "frames are present" in caught.value.reason or "incomplete" in caught.value.reason


@pytest.mark.parametrize("name", ["cut.mkv", "cut.webm"])
def test_matroska_cut_in_half_is_refused(make_video: Callable[..., Path], name: str) -> None:
    path = make_video(name, width=640, height=360)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(MediaRejected) as caught:
        inspect_clip(path)

    assert caught.value.reason == DAMAGED + "it ends partway through its data"


@pytest.mark.parametrize("name", ["garbled.mp4", "garbled.mkv", "garbled.webm"])
def test_garbled_video_data_is_refused(make_video: Callable[..., Path], name: str) -> None:
    path = make_video(name, width=640, height=360)
    data = bytearray(path.read_bytes())
    # Flip bits through the middle of the file, leaving headers and the index alone.
    for index in range(len(data) // 8, len(data) * 3 // 4, 5):
        data[index] ^= 0x5A
    path.write_bytes(bytes(data))

    with pytest.raises(MediaRejected) as caught:
        inspect_clip(path)

    assert caught.value.reason.startswith(DAMAGED)


def test_matroska_without_a_duration_is_refused(make_video: Callable[..., Path]) -> None:
    path = make_video("nodur.mkv", width=320, height=240)
    data = path.read_bytes()
    # Overwrite Info/Duration (ID 4489, 8-byte float) with an EBML Void of the same size.
    at = data.index(b"\x44\x89\x88", 0, 4096)
    path.write_bytes(data[:at] + b"\xec\x89" + bytes(9) + data[at + 11 :])

    with pytest.raises(MediaRejected) as caught:
        inspect_clip(path)

    assert caught.value.reason == "could not read the clip's duration"


# --- limits ---------------------------------------------------------------------------


def test_clip_longer_than_the_limit_is_refused(make_video: Callable[..., Path]) -> None:
    with pytest.raises(MediaRejected) as caught:
        inspect_clip(make_video(), MediaLimits(max_seconds=1.0))

    assert caught.value.reason == "clip is 0:02 long; the limit is 0:01"


def test_frame_larger_than_the_limit_is_refused(make_video: Callable[..., Path]) -> None:
    with pytest.raises(MediaRejected) as caught:
        inspect_clip(make_video(), MediaLimits(max_width=1280, max_height=720))

    x = "\N{MULTIPLICATION SIGN}"
    assert caught.value.reason == f"frame size 1920{x}1080 is larger than the 1280{x}720 limit"


def test_codec_outside_the_limits_is_refused(make_video: Callable[..., Path]) -> None:
    path = make_video("clip.webm", width=640, height=360)

    with pytest.raises(MediaRejected) as caught:
        inspect_clip(path, MediaLimits(allowed_codecs=frozenset({"h264", "av1"})))

    assert caught.value.reason == "video codec vp9 is not allowed; use H.264 or AV1"


@pytest.mark.usefixtures("no_child")
def test_container_outside_the_limits_is_refused(make_video: Callable[..., Path]) -> None:
    path = make_video("clip.mkv", width=640, height=360)

    with pytest.raises(MediaRejected) as caught:
        inspect_clip(path, MediaLimits(allowed_containers=frozenset({"mp4"})))

    assert caught.value.reason == "file is not a video container we accept (MP4)"


def test_memory_cap_is_enforced_in_the_child(make_video: Callable[..., Path]) -> None:
    # PyAV alone maps ~120 MiB; decoding a 1080p frame needs well over 160 MiB more.
    with pytest.raises(MediaRejected) as caught:
        inspect_clip(make_video(), memory_limit_bytes=160 << 20)

    assert caught.value.reason == DAMAGED + "decoding it needs more memory than we allow"


# --- the child process ----------------------------------------------------------------


def test_probe_over_its_deadline_is_refused(make_video: Callable[..., Path]) -> None:
    with pytest.raises(MediaRejected) as caught:
        inspect_clip(make_video(), timeout=0.001)

    assert caught.value.reason == "probing took longer than 0.001 s"


def test_hanging_child_is_killed_at_the_deadline(
    make_video: Callable[..., Path], stand_in_child: Callable[[str], Path], tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    stand_in_child(f"Path({str(pid_file)!r}).write_text(str(os.getpid()))\ntime.sleep(60)\n")
    path = make_video("s.mp4", width=320, height=240)
    started = time.monotonic()

    with pytest.raises(MediaRejected) as caught:
        inspect_clip(path, timeout=1.5)

    assert caught.value.reason == "probing took longer than 1.5 s"
    assert time.monotonic() - started < 10
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)  # killed and reaped, not left behind


@pytest.mark.parametrize(
    "body",
    [
        "os.kill(os.getpid(), signal.SIGSEGV)\n",
        "raise MemoryError\n",
        "(work / 'result.json').write_text('{not json')\n",
        "(work / 'result.json').write_text('[1, 2]')\n",
    ],
    ids=["segfault", "memory-error", "garbage-report", "wrong-shape-report"],
)
def test_crashing_child_means_a_damaged_file(
    make_video: Callable[..., Path], stand_in_child: Callable[[str], Path], body: str
) -> None:
    stand_in_child(body)

    with pytest.raises(MediaRejected) as caught:
        inspect_clip(make_video("s.mp4", width=320, height=240))

    assert caught.value.reason.startswith(DAMAGED)


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        ({"duration": None}, "could not read the clip's duration"),
        ({"duration": "2"}, DAMAGED + "the probe could not report on it"),
        ({"width": True}, DAMAGED + "the probe could not report on it"),
        ({"fps": float("inf")}, DAMAGED + "the probe could not report on it"),
        ({"checked": False}, DAMAGED + "the first video frame could not be decoded"),
        ({"status": "surprise"}, DAMAGED + "the probe could not report on it"),
        ({"duration": -1.0}, DAMAGED + "the probe could not report on it"),
        ({"codec": "h264" * 20}, DAMAGED + "the probe could not report on it"),
        ({"codec": "h264; see evil.example"}, DAMAGED + "the probe could not report on it"),
        ({"status": "damaged", "detail": "x" * 500}, DAMAGED + "it could not be read"),
        ({"status": "damaged", "detail": "odd\u202eword"}, DAMAGED + "it could not be read"),
    ],
)
def test_child_report_is_validated(
    make_video: Callable[..., Path],
    stand_in_child: Callable[[str], Path],
    report: dict[str, Any],
    reason: str,
) -> None:
    full = {
        "status": "ok",
        "codec": "h264",
        "width": 320,
        "height": 240,
        "fps": 24.0,
        "has_audio": False,
        "duration": 2.0,
        "checked": True,
        **report,
    }
    stand_in_child(
        f"(work / 'poster.jpg').write_bytes(b'\\xff\\xd8\\xff\\xd9')\n"
        f"(work / 'result.json').write_text({json.dumps(full)!r})\n"
    )

    with pytest.raises(MediaRejected) as caught:
        inspect_clip(make_video("s.mp4", width=320, height=240))

    assert caught.value.reason == reason


def test_child_runs_isolated_without_the_app_environment(
    make_video: Callable[..., Path],
    stand_in_child: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("GREENLIGHT_SECRET_KEY", "do-not-leak")
    seen_file = tmp_path / "seen.json"
    stand_in_child(
        f"""
        fd = request["fd"]
        seen = {{
            "env": sorted(os.environ),
            "isolated": sys.flags.isolated,
            "fd_readable": os.pread(fd, 8, 0)[4:8].decode(),
            "cwd": os.getcwd(),
            "workdir": str(work),
        }}
        Path({str(seen_file)!r}).write_text(json.dumps(seen))
        """
    )

    with pytest.raises(MediaRejected):
        inspect_clip(make_video("s.mp4", width=320, height=240))

    seen = json.loads(seen_file.read_text())
    assert "GREENLIGHT_SECRET_KEY" not in seen["env"]
    assert seen["isolated"] == 1
    assert seen["fd_readable"] == "ftyp"  # the sniffed file itself, passed as a descriptor
    assert seen["cwd"] == seen["workdir"]
    assert not Path(seen["workdir"]).exists()  # the scratch directory is cleaned up


# --- pure helpers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "container"),
    [
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ", "mov"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", "mp4"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "mp4"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", None),
        (b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00avifmif1", None),
        (b"\x1a\x45\xdf\xa3\x87\x42\x82\x84webm", "webm"),
        (b"\x1a\x45\xdf\xa3\x8b\x42\x82\x88matroska", "mkv"),
        (b"\x1a\x45\xdf\xa3\x8a\x42\x82\x87unknown", None),
        (b"\x1a\x45\xdf\xa3\xff", None),
        (b"#EXTM3U\n#EXTINF:10,\nfile:///etc/passwd\n", None),
        (b"ffconcat version 1.0\nfile /etc/passwd\n", None),
        (b"\x89PNG\r\n\x1a\n", None),
        (b"", None),
    ],
)
def test_sniff_container(head: bytes, container: str | None) -> None:
    assert sniff_container(head) == container


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0:00"),
        (5, "0:05"),
        (59.4, "0:59"),
        (59.5, "1:00"),
        (120, "2:00"),
        (845, "14:05"),
        (3723, "1:02:03"),
        (36000, "10:00:00"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf")])
def test_format_duration_refuses_nonsense(seconds: float) -> None:
    with pytest.raises(ValueError, match="finite, non-negative"):
        format_duration(seconds)


def test_media_rejected_carries_its_reason() -> None:
    error = MediaRejected("file is empty")

    assert error.reason == "file is empty"
    assert str(error) == "file is empty"
