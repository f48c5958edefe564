"""Sending stored media to a browser: a presigned redirect for S3, Werkzeug's send_file for disk.

Shared by the signed-in clip pages and the public share links, which both decide *whether*
to serve before calling in here. Byte ranges, 206/416, ETag and 304 are Werkzeug's; this
module only says where our answers part from its defaults (If-Range, long suffixes, odd
ranges), and why. S3 media never come here: S3 answers the presigned URL's ranges itself.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import quote

from flask import Response, current_app, redirect, request
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.utils import send_file
from werkzeug.wsgi import FileWrapper

from .extensions import storage
from .storage import ObjectInfo, Storage

#: Every answer from disk may be kept, but only by the browser, and is revalidated each time.
CACHE_CONTROL = "private, max-age=0, must-revalidate"
#: Bytes read from storage at a time. Werkzeug sends 8 KiB at a time and a player's range is
#: often a small part of the clip, so a larger read mostly copies bytes nobody is sent.
READ_CHUNK = 64 << 10


def content_disposition(kind: str, filename: str | None) -> str:
    """`inline` or `attachment`, with an ASCII fallback and the UTF-8 name (RFC 6266)."""
    if not filename:
        return kind
    ascii_name = filename.encode("ascii", "ignore").decode().replace('"', "").replace("\\", "")
    ascii_name = "".join(ch for ch in ascii_name if 32 <= ord(ch) < 127) or "clip"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def serve_object(
    key: str,
    *,
    info: ObjectInfo,
    content_type: str,
    filename: str | None = None,
    attachment: bool = False,
) -> Response:
    """Answer with the object's bytes: 302 to a short-lived URL, or a ranged local stream.

    Either way only the object `info` describes is sent: the URL names its version where the
    store keeps one, and a local stream reads the file only if it still has `info`'s ETag.
    """
    disposition = content_disposition("attachment" if attachment else "inline", filename)
    url = storage().read_url(
        key,
        expires_in=current_app.config["SHARE_URL_TTL"],
        content_type=content_type,
        disposition=disposition,
        version_id=info.version_id,
    )
    if url is not None:
        response = redirect(url, 302)
        response.headers["Cache-Control"] = "private, no-store"
        return response
    return _send(key, info, content_type, disposition)


def _send(key: str, info: ObjectInfo, content_type: str, disposition: str) -> Response:
    """Werkzeug's conditional send_file over the stored object, without loading it into memory."""
    environ = _conditions(info)
    response = send_file(
        _StoredFile(storage(), key, info.size, info.etag),
        environ,
        mimetype=content_type,
        etag=info.etag,
        # send_file learns the size only from a path; so the condition is applied below.
        conditional=False,
        response_class=current_app.response_class,
    )
    response.content_length = info.size
    try:
        response.make_conditional(environ, accept_ranges=True, complete_length=info.size)
    except RequestedRangeNotSatisfiable:
        response.close()
        response = current_app.response_class(status=416)
        response.set_etag(info.etag)
        response.accept_ranges = "bytes"
        response.headers["Content-Range"] = f"bytes */{info.size}"
    # The WSGI server adds its own Date; a second one from make_conditional would be a duplicate.
    response.headers.pop("Date", None)
    # The same header S3 is told to send, so both backends name the download alike.
    response.headers["Content-Disposition"] = disposition
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response


def _conditions(info: ObjectInfo) -> dict[str, Any]:
    """The request as Werkzeug should judge it, where RFC 9110 or our habits differ from it."""
    environ = dict(request.environ)
    # With the server's file_wrapper (gunicorn's cannot seek) every range would be read from
    # byte 0; Werkzeug's own wrapper seeks. In blocks of READ_CHUNK, not its 8 KiB: each block
    # is one write to the socket.
    environ["wsgi.file_wrapper"] = _file_wrapper
    # If-Match is ignored, as it always was here: Werkzeug would answer 412 and still send a body.
    environ.pop("HTTP_IF_MATCH", None)
    # If-Range is decided here, not by Werkzeug, which lets a weak or unquoted tag match.
    if_range = environ.pop("HTTP_IF_RANGE", None)
    wanted = request.range if "HTTP_RANGE" in environ else None
    if (
        wanted is None
        or wanted.units != "bytes"
        or len(wanted.ranges) != 1
        # A matching If-None-Match is evaluated before Range (RFC 9110 §13.2.2): 304, not 206.
        or request.if_none_match.contains_weak(info.etag)
        # The client's copy may be stale: send the whole object rather than a piece of it.
        or (if_range is not None and not if_range_matches(if_range, info.etag))
    ):
        # Several ranges, other units or a malformed header: RFC 9110 lets a server ignore them
        # and send it all, where Werkzeug would refuse with 416.
        environ.pop("HTTP_RANGE", None)
    elif wanted.ranges[0][0] < -info.size:
        # A suffix longer than the object means all of it (RFC 9110 §14.1.3), not 416.
        environ["HTTP_RANGE"] = "bytes=0-"
    return environ


def _file_wrapper(file: IO[bytes], buffer_size: int = READ_CHUNK) -> FileWrapper:
    return FileWrapper(file, READ_CHUNK)


def if_range_matches(value: str, etag: str) -> bool:
    """Whether If-Range lets the Range apply (RFC 9110 §13.1.5).

    Only a strong entity tag that equals ours, quoted as we send it, matches. A date would have
    to equal a Last-Modified, and we send none; a weak tag never matches.
    """
    return value.strip(" \t") == f'"{etag}"'


class _StoredFile(io.RawIOBase):
    """A read-only, seekable file over one stored object, read through the storage interface.

    Werkzeug seeks the file it sends to the start of a range; storage streams from an offset.
    Every read names the ETag that was checked, so a key replaced since is never streamed
    (ObjectChanged, a StorageError: 503, and the next request's check refuses it for good).
    """

    def __init__(self, store: Storage, key: str, size: int, etag: str) -> None:
        super().__init__()
        self._store, self._key, self._size, self._etag = store, key, size, etag
        self._position = 0
        self._pending = memoryview(b"")
        # Opened now, so an object gone since its head() fails before a response is committed.
        self._chunks: Iterator[bytes] | None = self._open(0)

    def _open(self, start: int) -> Iterator[bytes] | None:
        if start >= self._size:
            return None
        return self._store.read(
            self._key, start, self._size - 1, chunk_size=READ_CHUNK, etag=self._etag
        )

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        target = max(base + offset, 0)
        if target != self._position:
            self._release()
            self._position = target
            self._chunks = self._open(target)
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, b"") if self._chunks is not None else b""
            if not chunk:
                return 0
            self._pending = memoryview(chunk)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        self._position += count
        return count

    def close(self) -> None:
        self._release()
        super().close()

    def _release(self) -> None:
        chunks, self._chunks, self._pending = self._chunks, None, memoryview(b"")
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
