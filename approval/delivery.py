"""Sending stored media to a browser: a presigned redirect for S3, ranged streaming for disk.

Shared by the signed-in clip pages and the public share links, which both decide *whether*
to serve before calling in here.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Response, current_app, redirect, request

from .extensions import storage
from .storage import ObjectInfo


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
    """Answer with the object's bytes: 302 to a short-lived URL, or a ranged local stream."""
    disposition = content_disposition("attachment" if attachment else "inline", filename)
    url = storage().read_url(
        key,
        expires_in=current_app.config["SHARE_URL_TTL"],
        content_type=content_type,
        disposition=disposition,
    )
    if url is not None:
        response = redirect(url, 302)
        response.headers["Cache-Control"] = "private, no-store"
        return response
    return _ranged(key, info, content_type, disposition)


def _ranged(key: str, info: ObjectInfo, content_type: str, disposition: str) -> Response:
    """RFC 9110 byte ranges over a stored object, without loading it into memory."""
    etag = f'"{info.etag}"'
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Content-Disposition": disposition,
        "Cache-Control": "private, max-age=0, must-revalidate",
    }
    if request.if_none_match.contains(info.etag) or request.if_none_match.star_tag:
        return Response(status=304, headers=headers)
    start, stop = 0, info.size
    status = 200
    requested = request.range if "Range" in request.headers else None
    # An If-Range that no longer matches means "send it all", as does a range we don't serve
    # (several ranges, or a malformed header, which RFC 9110 lets a server ignore).
    if requested is not None and request.if_range.etag not in (None, info.etag):
        requested = None
    if requested is not None and requested.units == "bytes" and len(requested.ranges) == 1:
        window = requested.range_for_length(info.size)
        if window is None:
            headers["Content-Range"] = f"bytes */{info.size}"
            return Response(status=416, headers=headers)
        start, stop = window
        status = 206
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{info.size}"
    body = storage().read(key, start, stop - 1) if stop > start else iter(())
    response = Response(body, status=status, headers=headers, mimetype=content_type)
    response.content_length = stop - start
    return response
