"""Storage interface shared by the local-directory and S3 backends."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

log = logging.getLogger(__name__)

# S3's own limit on key length; keeping the local backend to it too means a key that works in
# development never fails after a switch to S3.
MAX_KEY_LENGTH = 1024

_KEY_CHARS = re.compile(r"[A-Za-z0-9/_.-]+")
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")

#: Where uploads are staged before verification takes them: the one prefix a client may write
#: to, and the one the bucket's lifecycle rule expires.
STAGING_PREFIX = "incoming/"

# Bytes asked of an upload stream per read(); small enough that memory stays flat however
# large the upload is, big enough that per-call overhead does not matter.
READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class ObjectInfo:
    """What the backend knows about one stored object."""

    size: int
    etag: str  # opaque, without quotes; stable while the bytes are unchanged
    content_type: str | None
    #: The S3 VersionId of these bytes where the bucket keeps versions; None elsewhere. A read
    #: or URL that names it gets exactly these bytes, whatever is written to the key later.
    version_id: str | None = None


@dataclass(frozen=True)
class UploadTicket:
    """Everything a browser needs to upload one object directly to the backend."""

    method: str  # "POST" (multipart form, file field last) or "PUT"
    url: str
    fields: dict[str, str]  # form fields for POST (empty for PUT)
    headers: dict[str, str]  # headers the client must send for PUT (empty for POST)
    expires_at: datetime  # tz-aware UTC


class StorageError(Exception):
    """A backend problem; the message says what and where, and never carries secrets."""


class ObjectNotFound(StorageError):
    """The key does not exist."""


class ObjectTooLarge(StorageError):
    """put_stream read more than max_bytes; nothing was stored."""


class ObjectExists(StorageError):
    """take() found its destination already there; it never overwrites."""


class ObjectChanged(StorageError):
    """read(..., etag=) found other bytes under the key than the ones with that ETag."""


@dataclass(frozen=True)
class StoredObject:
    """One entry of a listing: an object, or an upload of one that nobody finished."""

    key: str
    size: int
    modified: datetime  # tz-aware UTC
    #: Set for an unfinished upload (what it wrote costs storage but is no object).
    upload_id: str | None = None


#: Called by put_stream once every byte is written and before the object becomes visible; it
#: raises to refuse the object (nothing is stored), e.g. when the upload is no longer wanted.
InstallGuard = Callable[[], None]


class Spool(io.BufferedRandom):
    """A temporary file an upload is written into before adopt() stores it.

    Readable, writable and seekable, as a form parser wants of a file part's stream. Until
    adopt() takes it, the file is the spool's own: closing the spool, or dropping it, removes
    the file, so an upload that is refused or broken off leaves nothing behind.
    """

    def __init__(self, raw: io.FileIO, *, path: str | None = None, owner: Storage | None = None):
        """Wrap raw; `path` names the file on disk (None: already unlinked), `owner` made it."""
        super().__init__(raw)
        #: Where the file is while the spool owns it; None once adopted, or if it never had one.
        self.path = path
        #: The storage that made the spool, the only one that may move the file itself.
        self.owner = owner

    def give_up_file(self) -> None:
        """The file has moved elsewhere (adopted): closing the spool must not remove it."""
        self.path = None

    def close(self) -> None:
        """Close the file and, unless it was adopted, remove it."""
        path, self.path = getattr(self, "path", None), None
        try:
            super().close()
        finally:
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)


def validate_key(key: str) -> str:
    """Return key unchanged if it is a safe relative object key, else raise ValueError."""
    if not isinstance(key, str) or not key:
        raise ValueError("storage key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"storage key is longer than {MAX_KEY_LENGTH} characters")
    if _KEY_CHARS.fullmatch(key) is None:
        # Backslash, NUL, spaces, percent signs and non-ASCII all land here.
        raise ValueError(f"storage key {key!r} has characters outside [A-Za-z0-9/_.-]")
    if key.startswith("/"):
        raise ValueError(f"storage key {key!r} must be relative, not absolute")
    for part in key.split("/"):
        # Empty parts ("a//b", "a/") and dot-leading parts ("..", ".", ".tmp") are refused so no
        # key can climb out of the root or collide with the local backend's own bookkeeping
        # directories.
        if not part:
            raise ValueError(f"storage key {key!r} has an empty path segment")
        if part.startswith("."):
            raise ValueError(f"storage key {key!r} has a segment starting with '.'")
    return key


def validate_content_type(content_type: str) -> str:
    """Return content_type unchanged if it is a plausible single-line MIME type, else ValueError."""
    if not isinstance(content_type, str) or not content_type.strip():
        raise ValueError("content_type must be a non-empty string")
    if len(content_type) > 255 or not content_type.isascii() or not content_type.isprintable():
        # Control characters would let a caller smuggle extra headers into signed requests.
        raise ValueError(f"content_type {content_type!r} is not a printable ASCII MIME type")
    if "/" not in content_type:
        raise ValueError(f"content_type {content_type!r} is not of the form type/subtype")
    return content_type


def check_range(start: int, end: int | None, chunk_size: int) -> None:
    """Raise ValueError unless start/end/chunk_size describe a sane inclusive byte range."""
    if start < 0:
        raise ValueError(f"range start must be >= 0, got {start}")
    if end is not None and end < start:
        raise ValueError(f"range end {end} is before start {start}")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")


def check_upload_limits(
    *, max_bytes: int | None = None, size: int | None = None, sha256_hex: str | None = None
) -> None:
    """Raise ValueError unless the declared upload bounds and digest are well-formed."""
    if max_bytes is not None and max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
    if size is not None and size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if sha256_hex is not None and _SHA256_HEX.fullmatch(sha256_hex) is None:
        raise ValueError("sha256_hex must be 64 hexadecimal characters")


def check_disposition(disposition: str) -> str:
    """Return disposition unchanged if it is a single printable ASCII line, else ValueError."""
    if not disposition.isascii() or not disposition.isprintable():
        # Non-ASCII file names belong in RFC 6266 filename*=UTF-8''... form, which is ASCII.
        raise ValueError(f"disposition {disposition!r} is not printable ASCII")
    return disposition


def check_expires_in(expires_in: int) -> None:
    """Raise ValueError unless expires_in is within SigV4's 1 s .. 7 days."""
    if not 1 <= expires_in <= 7 * 24 * 3600:
        raise ValueError(f"expires_in must be between 1 and 604800 seconds, got {expires_in}")


class ClosingIterator(Iterator[bytes]):
    """Iterates chunks and releases the underlying file or connection however iteration ends."""

    def __init__(self, chunks: Iterator[bytes], release: Callable[[], None]) -> None:
        """Wrap chunks; release() is called exactly once, on exhaustion, error, close() or GC."""
        self._chunks = chunks
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> ClosingIterator:
        """Return self: this is a one-shot iterator."""
        return self

    def __next__(self) -> bytes:
        """Return the next chunk, releasing the resource once there are no more."""
        if self._release is None:
            raise StopIteration
        try:
            return next(self._chunks)
        except BaseException:
            # StopIteration included: the resource goes back as soon as it is drained.
            self.close()
            raise

    def close(self) -> None:
        """Release the resource now; WSGI servers call this when a client goes away."""
        release, self._release = self._release, None
        if release is not None:
            release()

    def __del__(self) -> None:
        # A response abandoned before it was started must still give back its file handle or
        # socket, or the leak surfaces later as a ResourceWarning far from its cause.
        try:
            self.close()
        except Exception:
            log.exception("failed to release a storage read")


class Storage(ABC):
    """A flat namespace of immutable-ish objects addressed by validated keys."""

    url: str

    @abstractmethod
    def presigned_post(
        self, key: str, *, content_type: str, max_bytes: int, expires_in: int
    ) -> UploadTicket | None:
        """Return a browser-direct POST ticket, or None if the app must receive the bytes."""

    @abstractmethod
    def presigned_put(
        self, key: str, *, content_type: str, size: int, sha256_hex: str, expires_in: int
    ) -> UploadTicket | None:
        """Return a browser-direct PUT ticket pinned to size and digest, or None."""

    @abstractmethod
    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        *,
        content_type: str,
        max_bytes: int | None = None,
        guard: InstallGuard | None = None,
    ) -> ObjectInfo:
        """Store the stream's bytes under key in bounded memory; raise ObjectTooLarge past max.

        `guard`, if given, runs after the last byte is written and before the object appears.
        """

    def spool(self) -> Spool:
        """A temporary file to write an upload into, for adopt() to store.

        This default is an unnamed file in the system's temporary folder, which adopt() then
        copies; a backend that can move its own spools into place overrides both.
        """
        fd, path = tempfile.mkstemp(prefix="greenlight-spool-")
        os.unlink(path)  # nameless from here on: nothing outlives the process
        return Spool(io.FileIO(fd, "r+"))

    def adopt(
        self,
        key: str,
        spool: Spool,
        *,
        content_type: str,
        max_bytes: int | None = None,
        guard: InstallGuard | None = None,
    ) -> ObjectInfo:
        """Store what was written into spool under key, as put_stream() does; the spool is
        used up either way (closed, its file stored or removed). This default copies it."""
        with spool:
            spool.seek(0)
            return self.put_stream(
                key, spool, content_type=content_type, max_bytes=max_bytes, guard=guard
            )

    @abstractmethod
    def take(self, source: str, dest: str) -> ObjectInfo:
        """Move source's bytes to dest, which must not exist; raise ObjectExists or ObjectNotFound.

        Atomic per object: dest holds one complete version of source, never a mix, whatever
        is written to source meanwhile. Afterwards source is gone.
        """

    @abstractmethod
    def list_keys(self, prefix: str) -> Iterator[StoredObject]:
        """Every object whose key starts with prefix (a folder path ending in "/")."""

    @abstractmethod
    def list_unfinished_uploads(self, prefixes: Sequence[str]) -> Iterator[StoredObject]:
        """Writes that were started and never finished nor given up (their writer was killed
        mid-transfer), under any of prefixes where the store knows the key; `modified` is
        when each was started, or where the store knows it, last written to."""

    @abstractmethod
    def abort_unfinished_upload(self, item: StoredObject) -> None:
        """Drop what an unfinished upload list_unfinished_uploads gave has written."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo:
        """Return size, etag and content type of key; raise ObjectNotFound if absent."""

    def stat(self, key: str) -> ObjectInfo:
        """Size, etag and version of key, where the content type may be left out (None).

        For checks made on every request, where the content type is known already and a
        backend can answer the rest more cheaply than head().
        """
        return self.head(key)

    @abstractmethod
    def read(
        self,
        key: str,
        start: int = 0,
        end: int | None = None,
        chunk_size: int = 1 << 20,
        *,
        etag: str | None = None,
    ) -> Iterator[bytes]:
        """Stream bytes start..end (inclusive, clamped to the object); raise ObjectNotFound.

        With `etag`, the bytes streamed are those with that ETag or none: ObjectChanged.
        """

    @abstractmethod
    def read_url(
        self,
        key: str,
        *,
        expires_in: int,
        content_type: str | None = None,
        disposition: str | None = None,
        version_id: str | None = None,
    ) -> str | None:
        """Return a time-limited download URL, or None if the app must stream the bytes.

        With `version_id` (from ObjectInfo), the URL gets that version's bytes only.
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove key; a key that is already gone is not an error."""

    @abstractmethod
    def check(self) -> None:
        """Cheaply confirm the backend is usable; raise StorageError naming what failed."""

    @abstractmethod
    def init(self, *, cors_origins: list[str]) -> list[str]:
        """Create and configure the backend's container; return lines saying what was done."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"
