"""Tests for approval.renditions: what plays as it is, and the renditions of the rest."""

from __future__ import annotations

import hashlib
import json
import textwrap
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest

from approval import _render_child as render_child
from approval import renditions
from approval.media import MediaFacts, MediaRejected, inspect_clip
from approval.renditions import (
    RenditionFacts,
    make_rendition,
    playback_problems,
    plays_in_browsers,
    rendition_size,
)

FAILED = "the clip could not be converted for playback: "
SMALL = {"seconds": 1.0, "width": 320, "height": 180, "fps": 25}


def _encoder_exists(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except av.codec.codec.UnknownCodecError:
        return False
    return True


def _x264_formats() -> set[str]:
    return {fmt.name for fmt in av.codec.Codec("libx264", "w").video_formats or ()}


needs_svtav1 = pytest.mark.skipif(
    not _encoder_exists("libsvtav1"), reason="this PyAV build has no AV1 encoder (libsvtav1)"
)
needs_x264_10bit = pytest.mark.skipif(
    "yuv420p10le" not in _x264_formats(), reason="this libx264 is built without 10-bit support"
)


def _reencode(source: Path, target: Path, pix_fmt: str, audio_codec: str | None) -> None:
    """Write `source`'s pictures again as H.264 in `pix_fmt`, its sound as `audio_codec`."""
    with av.open(str(source)) as inp, av.open(str(target), "w", format="mp4") as out:
        video_in = inp.streams.video[0]
        video = out.add_stream("libx264", rate=video_in.average_rate)
        video.width, video.height, video.pix_fmt = video_in.width, video_in.height, pix_fmt
        video.options = {"preset": "ultrafast", "crf": "32"}
        video.time_base = video.codec_context.time_base = video_in.time_base
        audio = None
        if audio_codec and inp.streams.audio:
            audio = out.add_stream(audio_codec, rate=48000, layout="stereo")
        for frame in inp.decode(video=0):
            out.mux(video.encode(frame.reformat(format=pix_fmt)))
        out.mux(video.encode(None))
        if audio is not None:
            with av.open(str(source)) as sound:
                for frame in sound.decode(audio=0):
                    out.mux(audio.encode(frame))
            out.mux(audio.encode(None))


@pytest.fixture
def make_clip(make_video: Callable[..., Path], tmp_path: Path) -> Callable[..., Path]:
    """Factory: make_clip(kind, audio=False, **make_video options) -> a small clip's path.

    Kinds are names of make_video clips ("clip.mp4", "hevc.mp4", …) or, for pictures and
    sound make_video cannot write, "10bit.mp4", "444.mp4" and "opus-audio.mp4".
    """
    variants = {"10bit.mp4": "yuv420p10le", "444.mp4": "yuv444p", "opus-audio.mp4": "yuv420p"}

    def make(kind: str, *, audio: bool = False, **options: Any) -> Path:
        options = {**SMALL, **options}
        if kind not in variants:
            return make_video(kind, audio=audio, **options)
        base = make_video("base.mp4", audio=audio or kind == "opus-audio.mp4", **options)
        target = tmp_path / kind
        _reencode(base, target, variants[kind], "libopus" if kind == "opus-audio.mp4" else "aac")
        return target

    return make


def facts_for(**changes: Any) -> MediaFacts:
    """An H.264 MP4's facts with `changes`; what plays_in_browsers is asked about."""
    base: dict[str, Any] = {
        "container": "mp4",
        "codec": "h264",
        "width": 320,
        "height": 180,
        "duration": 1.0,
        "fps": 25.0,
        "has_audio": False,
        "pix_fmt": "yuv420p",
        "profile": "High",
        "audio_codec": None,
    }
    return MediaFacts(**{**base, **changes})


def top_level_boxes(path: Path) -> list[bytes]:
    """The types of an MP4's top-level boxes, read independently of the code under test."""
    data, kinds, at = path.read_bytes(), [], 0
    while at + 8 <= len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        kinds.append(data[at + 4 : at + 8])
        if size == 1:
            size = int.from_bytes(data[at + 8 : at + 16], "big")
        assert size >= 8, "broken box"
        at += size
    return kinds


def video_packets(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)


# --- which clips play as they are -----------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "audio"),
    [("clip.mp4", False), ("sound.mp4", True), ("clip.webm", False), ("sound.webm", True)],
)
def test_h264_mp4_and_vp9_webm_play_as_themselves(
    make_clip: Callable[..., Path], kind: str, audio: bool
) -> None:
    facts = inspect_clip(make_clip(kind, audio=audio)).facts

    assert plays_in_browsers(facts), playback_problems(facts)


@pytest.mark.parametrize(
    ("kind", "options", "problem"),
    [
        ("hevc.mp4", {"codec": "libx265"}, "HEVC video"),
        pytest.param("av1.mp4", {"codec": "libsvtav1"}, "AV1 video", marks=needs_svtav1),
        ("clip.mov", {}, "the MOV container"),
        ("clip.mkv", {}, "the MKV container"),
        pytest.param("10bit.mp4", {}, "yuv420p10le pictures", marks=needs_x264_10bit),
        ("444.mp4", {}, "yuv444p pictures"),
        ("opus-audio.mp4", {}, "opus audio"),
    ],
)
def test_other_clips_need_a_rendition(
    make_clip: Callable[..., Path], kind: str, options: dict[str, Any], problem: str
) -> None:
    facts = inspect_clip(make_clip(kind, **options)).facts

    assert not plays_in_browsers(facts)
    assert problem in playback_problems(facts)


@pytest.mark.parametrize(
    ("changes", "problems"),
    [
        ({}, []),
        ({"pix_fmt": "yuvj420p"}, []),
        ({"has_audio": True, "audio_codec": "aac"}, []),
        ({"container": "webm", "codec": "vp9", "has_audio": True, "audio_codec": "vorbis"}, []),
        ({"container": "webm", "codec": "vp8"}, ["VP8 video"]),
        ({"container": "webm", "codec": "h264"}, ["H.264 video"]),
        ({"container": "webm", "codec": "vp9", "has_audio": True, "audio_codec": "aac"},
         ["aac audio"]),
        ({"container": "mov", "codec": "hevc", "pix_fmt": "yuv420p10le"},
         ["the MOV container", "HEVC video", "yuv420p10le pictures"]),
        ({"pix_fmt": "yuv422p"}, ["yuv422p pictures"]),
        ({"pix_fmt": None}, ["unknown pictures"]),
        ({"has_audio": True, "audio_codec": None}, ["unknown audio"]),
    ],
)  # fmt: skip
def test_playback_problems_name_each_reason(changes: dict[str, Any], problems: list[str]) -> None:
    assert playback_problems(facts_for(**changes)) == problems


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((320, 180), (320, 180)),
        ((2560, 1440), (1920, 1080)),
        ((1080, 1920), (1080, 1920)),
        ((1440, 2560), (1080, 1920)),
        ((4096, 2160), (1920, 1012)),
        ((3840, 1600), (1920, 800)),
        ((321, 181), (320, 180)),
        ((1, 1), (2, 2)),
    ],
)
def test_rendition_size_keeps_aspect_and_even_sides(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert rendition_size(*size) == expected


# --- renditions -----------------------------------------------------------------------


RENDITION_SOURCES = [
    pytest.param("hevc.mp4", {"codec": "libx265"}, id="hevc-mp4"),
    pytest.param("av1.mp4", {"codec": "libsvtav1"}, id="av1-mp4", marks=needs_svtav1),
    pytest.param("clip.mov", {}, id="h264-mov"),
    pytest.param("clip.mkv", {"fps": 30}, id="h264-mkv"),
    pytest.param("10bit.mp4", {}, id="h264-10bit", marks=needs_x264_10bit),
    pytest.param("opus-audio.mp4", {}, id="opus-audio"),
]


# Each source silent and with sound, but the Opus one, which is about its sound.
SILENT_AND_SOUND = [
    pytest.param(*case.values, audio, id=f"{case.id}-{'sound' if audio else 'silent'}",
                 marks=case.marks)
    for case in RENDITION_SOURCES
    for audio in (False, True)
    if audio or case.id != "opus-audio"
]  # fmt: skip


@pytest.mark.parametrize(("kind", "options", "audio"), SILENT_AND_SOUND)
def test_rendition_is_h264_high_yuv420p_mp4_with_moov_first(
    make_clip: Callable[..., Path],
    tmp_path: Path,
    kind: str,
    options: dict[str, Any],
    audio: bool,
) -> None:
    source = make_clip(kind, audio=audio, **options)
    facts = inspect_clip(source).facts
    dest = tmp_path / "review.mp4"

    rendition = make_rendition(source, dest, facts)

    with av.open(str(dest)) as container:
        assert container.format.name.startswith("mov,mp4")
        video = container.streams.video[0].codec_context
        assert (video.name, video.profile, video.pix_fmt) == ("h264", "High", "yuv420p")
        sound = [(s.codec_context.name, s.layout.name, s.rate) for s in container.streams.audio]
    assert sound == ([("aac", "stereo", 48000)] if audio else [])
    boxes = top_level_boxes(dest)
    assert boxes.index(b"moov") < boxes.index(b"mdat")  # faststart
    assert (rendition.width, rendition.height) == (320, 180)
    assert rendition.codec == "h264"
    assert plays_in_browsers(inspect_clip(dest).facts)


@pytest.mark.parametrize(("kind", "options"), RENDITION_SOURCES)
def test_rendition_keeps_frame_rate_duration_and_every_frame(
    make_clip: Callable[..., Path], tmp_path: Path, kind: str, options: dict[str, Any]
) -> None:
    source = make_clip(kind, audio=True, **options)
    facts = inspect_clip(source).facts

    rendition = make_rendition(source, tmp_path / "review.mp4", facts)

    one_frame = 1 / facts.fps
    assert rendition.fps == pytest.approx(facts.fps, abs=0.02 * facts.fps)
    assert rendition.duration == pytest.approx(facts.duration, abs=one_frame)
    assert video_packets(tmp_path / "review.mp4") == video_packets(source)


@pytest.mark.parametrize("audio", [False, True], ids=["silent", "sound"])
def test_rendition_has_aac_stereo_48k_only_when_the_source_has_sound(
    make_clip: Callable[..., Path], tmp_path: Path, audio: bool
) -> None:
    source = make_clip("hevc.mp4", codec="libx265", audio=audio)
    dest = tmp_path / "review.mp4"

    rendition = make_rendition(source, dest, inspect_clip(source).facts)

    assert rendition.has_audio is audio
    with av.open(str(dest)) as container:
        streams = [(s.codec_context.name, s.layout.name, s.rate) for s in container.streams.audio]
    assert streams == ([("aac", "stereo", 48000)] if audio else [])


def test_rendition_size_and_sha256_describe_the_written_file(
    make_clip: Callable[..., Path], tmp_path: Path
) -> None:
    source = make_clip("clip.mkv")
    dest = tmp_path / "review.mp4"

    rendition = make_rendition(source, dest, inspect_clip(source).facts)

    data = dest.read_bytes()
    assert rendition.size_bytes == len(data)
    assert rendition.sha256 == hashlib.sha256(data).hexdigest()
    assert isinstance(rendition, RenditionFacts)


def test_large_clip_is_scaled_to_1920_on_its_long_side(
    make_clip: Callable[..., Path], tmp_path: Path
) -> None:
    source = make_clip("big.mov", seconds=0.5, width=2560, height=1440)
    dest = tmp_path / "review.mp4"

    rendition = make_rendition(source, dest, inspect_clip(source).facts)

    assert (rendition.width, rendition.height) == (1920, 1080)
    with av.open(str(dest)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (1920, 1080)


# --- refusals -------------------------------------------------------------------------


def test_corrupt_source_is_refused_with_a_reason(
    make_clip: Callable[..., Path], tmp_path: Path
) -> None:
    source = make_clip("clip.mkv")
    facts = inspect_clip(source).facts
    data = bytearray(source.read_bytes())
    # Flip bits through the middle of the file, leaving headers and the index alone.
    for index in range(len(data) // 8, len(data) * 3 // 4, 5):
        data[index] ^= 0x5A
    source.write_bytes(bytes(data))
    dest = tmp_path / "review.mp4"

    with pytest.raises(MediaRejected) as caught:
        make_rendition(source, dest, facts)

    assert caught.value.reason.startswith(FAILED)
    assert caught.value.reason[len(FAILED) :].isprintable()
    assert not dest.exists()
    assert list(tmp_path.glob(".greenlight-render-*")) == []  # scratch space cleaned up


def test_file_that_is_not_a_clip_is_refused_before_the_child(
    make_clip: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    facts = inspect_clip(make_clip("clip.mkv")).facts
    text = tmp_path / "notes.mkv"
    text.write_text("not a video\n")
    monkeypatch.setattr(renditions, "run_child", lambda *a, **k: pytest.fail("child started"))

    with pytest.raises(MediaRejected) as caught:
        make_rendition(text, tmp_path / "review.mp4", facts)

    assert caught.value.reason.startswith("file is not a video container we accept")


def test_facts_of_another_container_are_refused(
    make_clip: Callable[..., Path], tmp_path: Path
) -> None:
    facts = inspect_clip(make_clip("clip.mkv")).facts
    other = make_clip("clip.mov")

    with pytest.raises(MediaRejected) as caught:
        make_rendition(other, tmp_path / "review.mp4", facts)

    assert caught.value.reason == FAILED + "the file is not the clip that was checked"


def test_child_over_its_deadline_is_refused(make_clip: Callable[..., Path], tmp_path: Path) -> None:
    source = make_clip("clip.mkv")
    dest = tmp_path / "review.mp4"

    with pytest.raises(MediaRejected) as caught:
        make_rendition(source, dest, inspect_clip(source).facts, timeout=0.001)

    assert caught.value.reason == FAILED + "it took longer than 0.001 s"
    assert not dest.exists()


def test_memory_cap_is_enforced_in_the_child(
    make_clip: Callable[..., Path], tmp_path: Path
) -> None:
    source = make_clip("clip.mkv")

    with pytest.raises(MediaRejected) as caught:
        make_rendition(
            source, tmp_path / "review.mp4", inspect_clip(source).facts, memory_limit_bytes=64 << 20
        )

    assert caught.value.reason == FAILED + "it needs more memory than we allow"


@pytest.fixture
def stand_in_child(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[str], Path]:
    """Swap the render child for a script of the test's own; return the script's path."""

    def use(body: str) -> Path:
        script = tmp_path / "stand_in_render_child.py"
        prologue = (
            "import json, os, shutil, sys\n"
            "from pathlib import Path\n"
            "request = json.loads(sys.argv[1])\n"
            "work = Path(request['workdir'])\n"
        )
        script.write_text(prologue + textwrap.dedent(body))
        monkeypatch.setattr(renditions, "RENDER_SCRIPT", script)
        return script

    return use


OK_REPORT = {"status": "ok", "frames_in": 25, "frames_out": 25, "has_audio": False}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # The child "renders" by copying the HEVC source: the parent's inspection sees it.
        (
            "with os.fdopen(request['fd'], 'rb') as src:\n"
            "    src.seek(0); (work / 'rendition.mp4').write_bytes(src.read())\n"
            f"(work / 'result.json').write_text({json.dumps(OK_REPORT)!r})\n",
            "the converted file did not check out",
        ),
        (
            f"(work / 'result.json').write_text({json.dumps(OK_REPORT)!r})\n",
            "the converter wrote nothing",
        ),
        ("os.abort()\n", "the converter crashed"),
        ("(work / 'result.json').write_text('[1]')\n", "the converter could not report on it"),
        (
            "(work / 'result.json').write_text(json.dumps("
            "{'status': 'damaged', 'detail': 'odd\\u202eword'}))\n",
            "it could not be read",
        ),
    ],
    ids=["wrong-codec", "no-output", "crash", "bad-report", "unprintable-detail"],
)
def test_child_output_is_checked_before_it_is_believed(
    make_clip: Callable[..., Path],
    stand_in_child: Callable[[str], Path],
    tmp_path: Path,
    body: str,
    reason: str,
) -> None:
    source = make_clip("hevc.mp4", codec="libx265")
    facts = inspect_clip(source).facts
    stand_in_child(body)
    dest = tmp_path / "review.mp4"

    with pytest.raises(MediaRejected) as caught:
        make_rendition(source, dest, facts)

    assert caught.value.reason == FAILED + reason
    assert not dest.exists()


def test_child_that_loses_frames_is_not_believed(
    make_clip: Callable[..., Path], stand_in_child: Callable[[str], Path], tmp_path: Path
) -> None:
    source = make_clip("clip.mkv")
    facts = inspect_clip(source).facts
    report = {**OK_REPORT, "frames_out": 24}
    stand_in_child(
        "(work / 'rendition.mp4').write_bytes(b'')\n"
        f"(work / 'result.json').write_text({json.dumps(report)!r})\n"
    )

    with pytest.raises(MediaRejected) as caught:
        make_rendition(source, tmp_path / "review.mp4", facts)

    assert caught.value.reason == FAILED + "the converter lost frames"


def test_rendition_frame_rate_survives_an_ntsc_rate(
    make_clip: Callable[..., Path], tmp_path: Path
) -> None:
    source = make_clip("ntsc.mov", fps=Fraction(30000, 1001))
    facts = inspect_clip(source).facts

    rendition = make_rendition(source, tmp_path / "review.mp4", facts)

    assert rendition.fps == pytest.approx(30000 / 1001, rel=1e-3)


def test_rendition_past_its_size_cap_is_refused(
    make_clip: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(renditions, "MIN_OUTPUT_BYTES", 20_000)
    monkeypatch.setattr(renditions, "MAX_BYTES_PER_SECOND", 1)
    source = make_clip("hevc.mp4", codec="libx265")

    with pytest.raises(MediaRejected) as caught:
        make_rendition(source, tmp_path / "review.mp4", inspect_clip(source).facts)

    assert caught.value.reason == FAILED + "the converted file would be too large"


def test_external_reference_is_refused_even_if_ffmpeg_tried_to_follow_it(
    make_media_file: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Flip FFmpeg's own dref switches on, in-process: the io_open hook is the last lock.
    monkeypatch.setitem(render_child.sandbox.OPEN_OPTIONS, "enable_drefs", "1")
    monkeypatch.setitem(render_child.sandbox.OPEN_OPTIONS, "use_absolute_path", "1")
    path = make_media_file("dref")
    work = tmp_path / "work"
    work.mkdir()
    request = {
        "demuxer": "mov",
        "workdir": str(work),
        "width": 320,
        "height": 240,
        "max_pixels": 320 * 240,
        "audio": False,
        "preset": "ultrafast",
        "crf": 30,
        "encoder_threads": 1,
    }
    refuser = render_child.sandbox.NestedOpenRefuser()

    with path.open("rb") as source:
        report = render_child.render(source, request, refuser)

    assert refuser.attempts == [str(path.with_name("reference-media.mp4"))]
    assert report == {
        "status": "damaged",
        "detail": "it refers to data outside the file",
        "refused_opens": refuser.attempts,
    }
