"""Numbers as people read them."""

from __future__ import annotations

import math


def format_size(size: int) -> str:
    """1.4 GB, 12 MB, 512 bytes: binary units, at most one decimal, no trailing .0."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            if unit == "bytes":
                return f"{size} bytes"
            return f"{value:.1f}".removesuffix(".0") + f" {unit}"
        value /= 1024
    raise AssertionError("unreachable")


#: Absorbs binary floating-point error only (5/24 * 24 is 4.999…): far less than a frame, so
#: a time inside a frame never counts as the next one. Kept equal to FRAME_EPSILON in player.js.
FRAME_EPSILON = 1e-6


def frame_timecode(seconds: float, fps: float) -> str:
    """HH:MM:SS:FF as the player shows it: frame = floor(t * fps), numbered within its second.

    The same rule as `timecode()` in static/js/player.js. For a fractional rate (29.97) the
    second is the one the frame starts in, and FF counts frames from the first that starts in it.
    """
    frame = max(0, math.floor(seconds * fps + FRAME_EPSILON))
    whole = math.floor(frame / fps + FRAME_EPSILON / fps)
    into_second = frame - math.ceil(whole * fps - FRAME_EPSILON)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}:{into_second:02d}"
