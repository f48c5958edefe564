"""Object storage for clip files: a local directory or an S3 bucket, chosen by URL."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, unquote, urlsplit

from .base import (
    STAGING_PREFIX,
    InstallGuard,
    ObjectChanged,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    ObjectTooLarge,
    Spool,
    Storage,
    StorageError,
    StoredObject,
    UploadTicket,
    validate_key,
)
from .local import LocalStorage
from .s3 import ADDRESSING_STYLES, S3Storage, validate_bucket

__all__ = [
    "STAGING_PREFIX",
    "InstallGuard",
    "LocalStorage",
    "ObjectChanged",
    "ObjectExists",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectTooLarge",
    "S3Storage",
    "Spool",
    "Storage",
    "StorageError",
    "StoredObject",
    "UploadTicket",
    "storage_from_url",
    "validate_key",
]

_SETTING = "GREENLIGHT_STORAGE_URL"
_S3_PARAMS = ("endpoint_url", "region", "addressing")


def storage_from_url(url: str) -> Storage:
    """Build the backend named by a file:///path or s3://bucket?... URL; ValueError if malformed."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"{_SETTING} is empty; use file:///path or s3://bucket")
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise ValueError(f"{_SETTING} is not a valid URL: {exc}") from exc
    if parts.scheme == "file":
        return _local_from_url(parts.netloc, parts.path, parts.query, parts.fragment)
    if parts.scheme == "s3":
        return _s3_from_url(parts.netloc, parts.path, parts.query, parts.fragment)
    raise ValueError(
        f"unknown storage URL scheme {parts.scheme!r} in {_SETTING}; "
        "use file:///path or s3://bucket"
    )


def _local_from_url(netloc: str, path: str, query: str, fragment: str) -> LocalStorage:
    if netloc:
        # file://host/path would silently mean "path on this machine", which is never what a
        # host name in the URL intends; file://relative/dir is the other common slip.
        raise ValueError(
            f"{_SETTING} file URL must not name a host ({netloc!r}); "
            "use three slashes: file:///absolute/path"
        )
    if query or fragment:
        raise ValueError(f"{_SETTING} file URL takes no query string or fragment")
    decoded = unquote(path)
    if not decoded or not decoded.startswith("/"):
        raise ValueError(
            f"{_SETTING} file URL needs an absolute path, like file:///var/lib/greenlight"
        )
    if "\x00" in decoded:
        raise ValueError(f"{_SETTING} file URL path contains a NUL byte")
    normalised = os.path.normpath(decoded)
    if normalised == "/":
        raise ValueError(f"{_SETTING} must not point at the filesystem root")
    return LocalStorage(normalised)


def _s3_from_url(netloc: str, path: str, query: str, fragment: str) -> S3Storage:
    if "@" in netloc:
        # Deliberately not echoed: the part before "@" is a secret.
        raise ValueError(
            f"{_SETTING} must not contain credentials; supply them through the standard AWS "
            "chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, or an instance role)"
        )
    if not netloc:
        raise ValueError(f"{_SETTING} s3 URL has no bucket; use s3://bucket-name")
    validate_bucket(netloc)
    if path not in ("", "/"):
        raise ValueError(
            f"{_SETTING} s3 URL must name only a bucket, not a path ({path!r}); "
            "key prefixes are not supported"
        )
    if fragment:
        raise ValueError(f"{_SETTING} s3 URL takes no fragment")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ValueError(f"{_SETTING} s3 URL has a malformed query string") from exc

    options: dict[str, str] = {}
    for name, value in pairs:
        if name not in _S3_PARAMS:
            # Only the name is echoed: an unknown parameter may be someone's misplaced secret.
            raise ValueError(
                f"unknown parameter {name!r} in {_SETTING}; allowed: {', '.join(_S3_PARAMS)}"
            )
        if name in options:
            raise ValueError(f"parameter {name!r} appears twice in {_SETTING}")
        if not value:
            raise ValueError(f"parameter {name!r} in {_SETTING} is empty")
        options[name] = value

    endpoint_url = options.get("endpoint_url")
    if endpoint_url is not None:
        _check_endpoint(endpoint_url)
    region = options.get("region")
    addressing = options.get("addressing", _default_addressing(netloc, endpoint_url))
    if addressing not in ADDRESSING_STYLES:
        raise ValueError(
            f"invalid addressing {addressing!r} in {_SETTING}; use path, virtual or auto"
        )
    return S3Storage(
        netloc,
        endpoint_url=endpoint_url,
        region=region,
        addressing=addressing,
        url=f"s3://{netloc}" + (f"?{query}" if query else ""),
    )


def _default_addressing(bucket: str, endpoint_url: str | None) -> str:
    if endpoint_url:
        # S3-compatible servers (MinIO, moto, Ceph) almost always need path style, and
        # virtual-hosted names like bucket.localhost rarely resolve.
        return "path"
    if "." in bucket:
        # A dotted bucket as a host name breaks the *.s3.amazonaws.com TLS certificate.
        return "path"
    # On AWS, "auto" presigns against the global bucket.s3.amazonaws.com, which answers
    # browsers with a 307 for young buckets outside us-east-1 (fatal under CORS) and fails
    # outright in opt-in regions; "virtual" names the regional endpoint.
    return "virtual"


def _check_endpoint(endpoint_url: str) -> None:
    try:
        ep = urlsplit(endpoint_url)
        ep.port  # noqa: B018 - property access validates the port number
    except ValueError as exc:
        raise ValueError(f"endpoint_url in {_SETTING} is not a valid URL") from exc
    if "@" in ep.netloc:
        raise ValueError(f"endpoint_url in {_SETTING} must not contain credentials")
    if ep.scheme not in ("http", "https") or not ep.hostname:
        raise ValueError(
            f"endpoint_url {endpoint_url!r} in {_SETTING} must be http(s)://host[:port]"
        )
    if ep.path not in ("", "/") or ep.query or ep.fragment:
        raise ValueError(
            f"endpoint_url {endpoint_url!r} in {_SETTING} must not have a path or query; "
            "the bucket goes in s3://BUCKET"
        )
