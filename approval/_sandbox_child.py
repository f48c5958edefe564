"""Confinement shared by the sandboxed media children (`_probe_child`, `_render_child`).

The children are started by path with ``python -I`` and must not import the `approval`
package (it would load the web app into the process that parses hostile data), so they
load this file by path too (see the top of each child). It holds what both need: the resource
limits applied before PyAV is imported, the locked-down demuxer options, the hook that
refuses nested opens, FFmpeg's logging set-up and the atomic report write.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    import av.container

logger = logging.getLogger("approval.sandbox_child")

# Demuxer options shared by both forced demuxers. Nested opens are refused by
# NestedOpenRefuser as well; these are the second lock on the same door.
OPEN_OPTIONS: dict[str, str] = {
    # No protocol is named "none", so FFmpeg's default opener could reach nothing.
    "protocol_whitelist": "none",
    # QuickTime external data references (drefs) must never be resolved.
    "enable_drefs": "0",
    "use_absolute_path": "0",
    "max_streams": "32",
}

# The only demuxers the parent may ask for, each with FFmpeg's full name for the
# format_whitelist check (FFmpeg compares the whole comma list).
DEMUXERS: dict[str, str] = {
    "mov": "mov,mp4,m4a,3gp,3g2,mj2",
    "matroska": "matroska,webm",
}

READ_BUFFER_BYTES = 1 << 18
# Output files (poster, result, this process's log) never need more than this.
MAX_OUTPUT_FILE_BYTES = 16 << 20
MAX_OPEN_FILES = 64
# A failed allocation leaves the peak address space within one large request of the cap.
MEMORY_CAP_MARGIN = 64 << 20

_memory_limit: int | None = None


class NestedOpenRefuser:
    """io_open hook for PyAV that refuses every URL a demuxer tries to open."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def __call__(self, url: str, flags: int, options: dict[str, str]) -> BinaryIO:
        """Record the attempt and refuse it."""
        self.attempts.append(url)
        logger.warning("refused nested open of %r", url)
        raise PermissionError(f"nested open refused: {url}")


def _cap(kind: int, soft: int, hard: int | None = None) -> None:
    # Never try to raise a hard limit the parent already lowered: that fails.
    hard = soft if hard is None else hard
    _current_soft, current_hard = resource.getrlimit(kind)
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(kind, (soft, hard))


def confine(
    memory_limit: int, cpu_seconds: int, max_file_bytes: int = MAX_OUTPUT_FILE_BYTES
) -> None:
    """Apply the resource limits for this child; call before importing PyAV."""
    global _memory_limit
    _memory_limit = memory_limit
    _cap(resource.RLIMIT_CORE, 0)
    _cap(resource.RLIMIT_AS, memory_limit)
    # A backstop only (SIGXCPU, then SIGKILL): the parent's wall clock is the deadline.
    _cap(resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1)
    # Python ignores SIGXFSZ, so a write past this fails with EFBIG instead of killing us.
    _cap(resource.RLIMIT_FSIZE, max_file_bytes)
    _cap(resource.RLIMIT_NOFILE, MAX_OPEN_FILES)


def near_memory_cap() -> bool:
    """Tell whether this process came close enough to its address-space cap to fail."""
    if _memory_limit is None:
        return False
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmPeak:"):
                    return int(line.split()[1]) * 1024 > _memory_limit - MEMORY_CAP_MARGIN
    except (OSError, ValueError):
        pass
    return False


def open_input(
    source: BinaryIO, demuxer: str, refuser: NestedOpenRefuser
) -> av.container.InputContainer:
    """Open `source` with the forced `demuxer`, every nested open refused."""
    import av

    if demuxer not in DEMUXERS:
        raise ValueError(f"unsupported demuxer {demuxer!r}")
    options = {**OPEN_OPTIONS, "format_whitelist": DEMUXERS[demuxer]}
    return av.open(
        source,
        "r",
        format=demuxer,
        container_options=options,
        io_open=refuser,
        buffer_size=READ_BUFFER_BYTES,
    )


def start_logging(workdir: Path, filename: str) -> None:
    """Send this process's own log to `filename` in `workdir`."""
    # A file of its own: stderr belongs to FFmpeg (see ffmpeg_errors_to_stderr).
    logging.basicConfig(
        level=logging.INFO,
        filename=workdir / filename,
        format="%(levelname)s %(name)s: %(message)s",
    )


def ffmpeg_errors_to_stderr() -> None:
    """Route FFmpeg's errors, and nothing else, to stderr; this imports PyAV."""
    import av.logging

    # FFmpeg's own C logger, straight to stderr, where the children count the bytes.
    # PyAV's Python log callback would make FFmpeg's decoder threads take the GIL,
    # which PyAV itself warns does not play well with threads.
    av.logging.restore_default_callback()
    av.logging.set_libav_level(av.logging.ERROR)


def stderr_size() -> int:
    """Bytes FFmpeg has logged so far; grows whenever it reports an error."""
    return os.fstat(sys.stderr.fileno()).st_size


def write_report(workdir: Path, report: dict[str, Any]) -> None:
    """Write ``result.json``: last, and renamed into place, so a crash never leaves half."""
    partial = workdir / "result.json.part"
    partial.write_text(json.dumps(report), encoding="utf-8")
    partial.replace(workdir / "result.json")
