"""Uploading clips: one clip per video file, each hashed, sent, verified and reported."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .api import COMPLETE_TIMEOUT, ApiFailure, Client
from .transfer import Progress, TransferFailed, send, sha256_of

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".mkv")
CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
}

#: Makes a progress callback for one pass over one file: (label, total bytes) → (callback, close).
ProgressFactory = Callable[[str, int], tuple[Progress, Callable[[], None]]]


@dataclass
class Outcome:
    """What became of one file: the clip's id (if one was made), its status and why."""

    file: str
    clip_id: int | None
    status: str
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "waiting"


@dataclass(frozen=True)
class Details:
    title: str | None = None
    prompt: str = ""
    generator: str = ""
    generator_version: str = ""
    notes: str = ""


def expand(arguments: Iterable[str]) -> tuple[list[Path], list[Outcome]]:
    """The files to upload (directories searched for video files), and arguments that failed."""
    files: list[Path] = []
    problems: list[Outcome] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
            )
            if not found:
                kinds = ", ".join(VIDEO_SUFFIXES)
                problems.append(Outcome(argument, None, "error", f"no video files ({kinds})"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Outcome(argument, None, "error", "no such file or directory"))
    return files, problems


def _title(details: Details, path: Path, several: bool) -> str:
    if details.title and several:
        return f"{details.title}: {path.stem}"
    return details.title or path.stem


def upload_file(
    client: Client, path: Path, details: Details, progress: ProgressFactory, *, several: bool
) -> Outcome:
    """Hash, create the clip, send the bytes, report completion; never raises for the file."""
    name = str(path)
    try:
        size = path.stat().st_size
        callback, close = progress(f"hashing {path.name}", size)
        try:
            digest = sha256_of(path, callback)
        finally:
            close()
    except OSError as exc:
        return Outcome(name, None, "error", f"cannot read the file: {exc.strerror or exc}")
    body = {
        "title": _title(details, path, several),
        "filename": path.name,
        "size": size,
        "sha256": digest,
        "prompt": details.prompt,
        "generator": details.generator,
        "generator_version": details.generator_version,
        "notes": details.notes,
    }
    try:
        created = client.post("/api/v1/clips", body)
    except ApiFailure as exc:
        return Outcome(name, None, "error", _describe(exc))
    clip_id = int(created["id"])
    transfer_error = None
    content_type = CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
    callback, close = progress(path.name, size)
    try:
        send(created["upload"], path, size, content_type, callback)
    except (TransferFailed, OSError) as exc:
        transfer_error = str(exc)
    finally:
        close()
    # Reported even after a failed transfer: the server then marks the clip failed and removes
    # any partial bytes, instead of leaving it `uploading` until a clean-up runs.
    try:
        done = client.post(f"/api/v1/clips/{clip_id}/complete", timeout=COMPLETE_TIMEOUT)
    except ApiFailure as exc:
        status = str(exc.body.get("current_status") or "error")
        return Outcome(name, clip_id, status, transfer_error or _describe(exc))
    if transfer_error:
        return Outcome(name, clip_id, str(done["status"]), transfer_error)
    return Outcome(name, clip_id, str(done["status"]), done.get("failure_reason") or "")


def _describe(exc: ApiFailure) -> str:
    return str(exc.body.get("failure_reason") or exc.detail)


def upload_all(
    client: Client, paths: list[Path], details: Details, progress: ProgressFactory
) -> list[Outcome]:
    """Each file in turn; one file's failure does not stop the rest."""
    several = len(paths) > 1
    return [upload_file(client, path, details, progress, several=several) for path in paths]
