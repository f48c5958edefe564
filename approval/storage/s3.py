"""Storage backend on S3 or an S3-compatible server, through boto3."""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import math
import re
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .base import (
    READ_CHUNK,
    STAGING_PREFIX,
    ClosingIterator,
    InstallGuard,
    ObjectChanged,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    ObjectTooLarge,
    Storage,
    StorageError,
    StoredObject,
    UploadTicket,
    check_disposition,
    check_expires_in,
    check_range,
    check_upload_limits,
    validate_content_type,
    validate_key,
)

if TYPE_CHECKING:
    from botocore.client import BaseClient

log = logging.getLogger(__name__)

ADDRESSING_STYLES = ("path", "virtual", "auto")

# S3 needs every part but the last to be at least 5 MiB; 8 MiB matches boto3's transfer
# default and bounds memory per upload to about two parts.
PART_SIZE = 8 << 20
MAX_PARTS = 10_000

# Main client: a request that finds storage hung or down must answer 503 within ~15 s, so
# two attempts of at most 3 s to connect and 6 s to hear back (a stopped server accepts the
# TCP connection, then says nothing). Reads stream, so a large object is no slower for it.
CONNECT_TIMEOUT = 3
READ_TIMEOUT = 6
MAX_ATTEMPTS = 2
# Transfer client, for uploads and server-side copies only: completing a multipart upload or
# copying a large object can keep the answer back for a long while (moto took over 6 s for
# 1 GB, and S3-compatible servers may say nothing until done, where AWS sends spaces), and
# a timeout there fails an upload the store then finishes anyway. The person waiting is the
# one whose upload it is.
TRANSFER_READ_TIMEOUT = 60
# Health client: /healthz must answer in seconds, so one attempt with tight timeouts.
HEALTH_CONNECT_TIMEOUT = 2
HEALTH_READ_TIMEOUT = 5

# A presigned GET is handed out again while it is younger than this share of its lifetime:
# signing costs more than everything else in a redirect, and a URL given out a little after it
# was signed only expires sooner than a fresh one would (never later).
URL_REUSE_SHARE = 10
MAX_REUSED_URLS = 1024
_clock = time.monotonic  # what a reused URL's age is measured by (tests move it)

# Headers a browser sends on our tickets (PUT body metadata, ranged GET of a read_url).
CORS_ALLOWED_HEADERS = ["Content-Type", "Range", "x-amz-checksum-sha256"]
CORS_EXPOSE_HEADERS = ["ETag", "Content-Range"]
CORS_RULE_ID = "greenlight-browser-direct"

# Lifecycle rules: parts of multipart uploads nobody finished cost money and are invisible to
# listings; staged uploads that outlive any retry of their verification are garbage (the gc
# removes them sooner; the rule is the backstop when nothing runs it).
ABORT_MULTIPART_DAYS = 1
EXPIRE_STAGING_DAYS = 7
EXPIRE_NONCURRENT_STAGING_DAYS = 1
LIFECYCLE_RULES: list[dict[str, Any]] = [
    {
        "ID": "greenlight-abort-incomplete-multipart",
        "Filter": {"Prefix": ""},
        "Status": "Enabled",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS},
    },
    {
        "ID": "greenlight-expire-staged-uploads",
        "Filter": {"Prefix": STAGING_PREFIX},
        "Status": "Enabled",
        "Expiration": {"Days": EXPIRE_STAGING_DAYS},
        # In a versioned bucket a deleted staged upload stays as a noncurrent version; it is
        # no backup of anything (the clip's own copy is), so it goes a day later.
        "NoncurrentVersionExpiration": {"NoncurrentDays": EXPIRE_NONCURRENT_STAGING_DAYS},
    },
]
LIFECYCLE_IDS = {rule["ID"] for rule in LIFECYCLE_RULES}

# Error codes by which S3-compatible servers say "this API does not exist here".
_UNSUPPORTED_CODES = {"NotImplemented", "XNotImplemented", "MethodNotAllowed", "NotSupported"}

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4_RE = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
_REGION_RE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_ORIGIN_RE = re.compile(
    r"https?://([a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*"
    r"|\[[0-9a-f:.]+\])(:[0-9]{1,5})?"
)


def validate_bucket(bucket: str) -> str:
    """Return bucket unchanged if it is a valid S3 bucket name, else raise ValueError."""
    if not bucket:
        raise ValueError("S3 bucket name is missing")
    if _BUCKET_RE.fullmatch(bucket) is None or ".." in bucket:
        raise ValueError(
            f"invalid S3 bucket name {bucket!r}: use 3-63 lowercase letters, digits, '.' or '-', "
            "starting and ending with a letter or digit"
        )
    if _IPV4_RE.fullmatch(bucket):
        raise ValueError(f"invalid S3 bucket name {bucket!r}: must not look like an IP address")
    return bucket


def validate_origin(origin: str) -> str:
    """Return origin unchanged if it is a bare scheme://host[:port] origin, else ValueError."""
    if _ORIGIN_RE.fullmatch(origin) is None:
        # The usual mistakes are a trailing slash or a path; browsers send neither, so a rule
        # containing them would silently never match.
        raise ValueError(
            f"invalid CORS origin {origin!r}: use lowercase scheme://host[:port] "
            "with no path, no trailing slash and no wildcard"
        )
    return origin


class S3Storage(Storage):
    """Objects live in one private S3 bucket; browsers upload and download via presigned URLs."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        addressing: str = "auto",
        url: str | None = None,
    ) -> None:
        """Build clients for bucket; credentials come from the standard AWS chain."""
        self.bucket = validate_bucket(bucket)
        if addressing not in ADDRESSING_STYLES:
            raise ValueError(f"addressing must be one of path, virtual, auto; got {addressing!r}")
        if region is not None and _REGION_RE.fullmatch(region) is None:
            raise ValueError(f"invalid S3 region {region!r}")
        self.endpoint_url = endpoint_url
        self.addressing = addressing
        self.url = url or f"s3://{bucket}"
        # A private session keeps this storage's clients independent of boto3's global default
        # session, which other code (and moto) may reset.
        session = boto3.session.Session(region_name=region)
        self._session = session
        self._client = self._make_client(session, CONNECT_TIMEOUT, READ_TIMEOUT, MAX_ATTEMPTS)
        self._transfer_client = self._make_client(
            session, CONNECT_TIMEOUT, TRANSFER_READ_TIMEOUT, MAX_ATTEMPTS
        )
        self._health_client = self._make_client(
            session, HEALTH_CONNECT_TIMEOUT, HEALTH_READ_TIMEOUT, 1
        )
        self.region: str = self._client.meta.region_name or "us-east-1"
        # (key, version, content type, disposition, lifetime) -> (monotonic signing time, URL)
        self._signed: dict[tuple[Any, ...], tuple[float, str]] = {}
        self._signed_lock = threading.Lock()

    def _make_client(
        self, session: boto3.session.Session, connect: float, read: float, attempts: int
    ) -> BaseClient:
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": self.addressing},
            connect_timeout=connect,
            read_timeout=read,
            retries={"total_max_attempts": attempts, "mode": "standard"},
            # botocore >= 1.36 adds CRC checksums to every upload by default, which several
            # S3-compatible servers reject; checksums we want (presigned PUT) are explicit.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return session.client("s3", endpoint_url=self.endpoint_url, config=config)

    # -- errors --------------------------------------------------------------------------------

    def _error(self, action: str, exc: Exception) -> StorageError:
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            detail = f"{err.get('Code', 'error')} (HTTP {status}): {err.get('Message', '')}"
        else:
            detail = str(exc) or type(exc).__name__
        return StorageError(f"storage {self.url}: {action} failed: {detail.strip()}")

    def _require_credentials(self, action: str) -> None:
        # Presigning happens offline, and without credentials botocore fails with a bare
        # AttributeError instead of NoCredentialsError; say what is actually wrong.
        if self._session.get_credentials() is None:
            raise StorageError(
                f"storage {self.url}: {action} failed: no AWS credentials found "
                "(set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, or an instance role)"
            )

    # -- browser-direct transfers --------------------------------------------------------------

    def presigned_post(
        self, key: str, *, content_type: str, max_bytes: int, expires_in: int
    ) -> UploadTicket | None:
        """Return a POST form ticket for exactly key, content_type and 1..max_bytes bytes."""
        validate_key(key)
        validate_content_type(content_type)
        check_upload_limits(max_bytes=max_bytes)
        check_expires_in(expires_in)
        # Taken before signing so the ticket never claims more time than the policy grants.
        self._require_credentials(f"presigning POST for {key!r}")
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
        try:
            # generate_presigned_post adds exact-match conditions for bucket and key itself.
            post = self._client.generate_presigned_post(
                Bucket=self.bucket,
                Key=key,
                Fields={"Content-Type": content_type},
                Conditions=[
                    {"Content-Type": content_type},
                    ["content-length-range", 1, max_bytes],
                ],
                ExpiresIn=expires_in,
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._error(f"presigning POST for {key!r}", exc) from exc
        fields = {str(k): str(v) for k, v in post["fields"].items()}
        return UploadTicket(
            method="POST", url=post["url"], fields=fields, headers={}, expires_at=expires_at
        )

    def presigned_put(
        self, key: str, *, content_type: str, size: int, sha256_hex: str, expires_in: int
    ) -> UploadTicket | None:
        """Return a PUT ticket whose signature pins the body's length, type and SHA-256."""
        validate_key(key)
        validate_content_type(content_type)
        check_upload_limits(size=size, sha256_hex=sha256_hex)
        check_expires_in(expires_in)
        checksum = base64.b64encode(binascii.unhexlify(sha256_hex)).decode("ascii")
        self._require_credentials(f"presigning PUT for {key!r}")
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
        try:
            # As parameters these become signed headers, not query strings, so S3 refuses a
            # request whose body differs in length, type or digest.
            url = self._client.generate_presigned_url(
                "put_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ContentType": content_type,
                    "ContentLength": size,
                    "ChecksumSHA256": checksum,
                },
                ExpiresIn=expires_in,
                HttpMethod="PUT",
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._error(f"presigning PUT for {key!r}", exc) from exc
        headers = {
            "Content-Type": content_type,
            # Browsers set Content-Length from the body themselves (fetch refuses to set it);
            # it is listed because the signature covers it.
            "Content-Length": str(size),
            "x-amz-checksum-sha256": checksum,
        }
        return UploadTicket(
            method="PUT", url=url, fields={}, headers=headers, expires_at=expires_at
        )

    def read_url(
        self,
        key: str,
        *,
        expires_in: int,
        content_type: str | None = None,
        disposition: str | None = None,
        version_id: str | None = None,
    ) -> str | None:
        """Return a presigned GET URL that makes S3 answer with the given headers.

        With `version_id`, S3 answers with that version's bytes or 404, never with another
        object written to the key since. The same URL may be returned again for the same
        arguments while it is younger than expires_in / URL_REUSE_SHARE seconds.
        """
        validate_key(key)
        check_expires_in(expires_in)
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id is not None:
            params["VersionId"] = _checked_version(version_id)
        if content_type is not None:
            params["ResponseContentType"] = validate_content_type(content_type)
        if disposition is not None:
            params["ResponseContentDisposition"] = check_disposition(disposition)
        wanted = (key, version_id, content_type, disposition, expires_in)
        now = _clock()
        signed = self._signed.get(wanted)
        if signed is not None and now - signed[0] < expires_in / URL_REUSE_SHARE:
            return signed[1]
        self._require_credentials(f"presigning GET for {key!r}")
        try:
            url = self._client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires_in, HttpMethod="GET"
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._error(f"presigning GET for {key!r}", exc) from exc
        with self._signed_lock:
            if len(self._signed) >= MAX_REUSED_URLS:
                self._signed.clear()  # a burst of distinct objects: start again
            self._signed[wanted] = (now, url)
        return url

    # -- objects -------------------------------------------------------------------------------

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        *,
        content_type: str,
        max_bytes: int | None = None,
        guard: InstallGuard | None = None,
    ) -> ObjectInfo:
        """Upload stream to key by boto3's managed transfer; raise ObjectTooLarge past max_bytes."""
        validate_key(key)
        validate_content_type(content_type)
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        part_size = PART_SIZE
        if max_bytes is not None:
            # Grow parts so that the largest allowed upload still fits S3's part count.
            part_size = max(PART_SIZE, math.ceil(max_bytes / MAX_PARTS))
        reader = _BoundedReader(stream, max_bytes, part_size * MAX_PARTS, guard, key, self.url)
        config = TransferConfig(
            # One part read, then one request: a stream shorter than a part is a single PUT.
            multipart_threshold=part_size,
            multipart_chunksize=part_size,
            # In this thread, one part at a time (memory stays flat), and the guard (which may
            # use this thread's database session) runs here, after the last part is sent and
            # before the upload is completed.
            use_threads=False,
            # Not the CRT client boto3 may pick when awscrt is installed: it ignores the above.
            preferred_transfer_client="classic",
        )
        try:
            # On any failure, our reader's included, s3transfer aborts the multipart upload.
            self._transfer_client.upload_fileobj(
                reader, self.bucket, key, ExtraArgs={"ContentType": content_type}, Config=config
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._error(f"uploading {key!r}", exc) from exc
        log.debug("stored %s (%d bytes) in %s", key, reader.total, self.url)
        return self.head(key)

    def take(self, source: str, dest: str) -> ObjectInfo:
        """Server-side copy (boto3's managed copy: multipart above its threshold), then delete.

        S3 copies one complete version of source, so a write to source during the copy lands
        either wholly before it (and is what dest holds) or after it (and is never read).
        """
        validate_key(source)
        validate_key(dest)
        with contextlib.suppress(ObjectNotFound):
            self.head(dest)
            raise ObjectExists(f"storage {self.url}: {dest!r} already exists")
        extra: dict[str, str] = {}
        content_type = self.head(source).content_type
        if content_type:
            # Said outright: a multipart copy starts a fresh upload that inherits nothing.
            extra = {"ContentType": content_type, "MetadataDirective": "REPLACE"}
        try:
            self._transfer_client.copy(
                {"Bucket": self.bucket, "Key": source}, self.bucket, dest, ExtraArgs=extra
            )
        except ClientError as exc:
            if _status(exc) == 404:
                raise ObjectNotFound(f"storage {self.url}: no object {source!r}") from exc
            raise self._error(f"copying {source!r} to {dest!r}", exc) from exc
        except BotoCoreError as exc:
            raise self._error(f"copying {source!r} to {dest!r}", exc) from exc
        self.delete(source)
        return self.head(dest)

    def list_keys(self, prefix: str) -> Iterator[StoredObject]:
        """Page through ListObjectsV2 under prefix."""
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield StoredObject(
                        key=item["Key"], size=int(item["Size"]), modified=item["LastModified"]
                    )
        except (BotoCoreError, ClientError) as exc:
            raise self._error(f"listing {prefix!r}", exc) from exc

    def list_unfinished_uploads(self, prefixes: Sequence[str]) -> Iterator[StoredObject]:
        """Page through ListMultipartUploads under each prefix, with the bytes of its parts.

        The bucket's lifecycle rule (set by init) aborts these after a day where the store
        applies lifecycle rules; garbage collection does it on every store. `modified` is when
        the upload was started.
        """
        uploads = self._client.get_paginator("list_multipart_uploads")
        parts = self._client.get_paginator("list_parts")
        for prefix in prefixes:
            try:
                for page in uploads.paginate(Bucket=self.bucket, Prefix=prefix):
                    for upload in page.get("Uploads", []):
                        key, upload_id = upload["Key"], upload["UploadId"]
                        size = sum(
                            int(part["Size"])
                            for listed in parts.paginate(
                                Bucket=self.bucket, Key=key, UploadId=upload_id
                            )
                            for part in listed.get("Parts", [])
                        )
                        yield StoredObject(key, size, upload["Initiated"], upload_id=upload_id)
            except (BotoCoreError, ClientError) as exc:
                raise self._error(f"listing unfinished uploads under {prefix!r}", exc) from exc

    def abort_unfinished_upload(self, item: StoredObject) -> None:
        """AbortMultipartUpload; one already gone (completed or aborted meanwhile) is fine."""
        try:
            self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=item.key, UploadId=item.upload_id
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                return
            raise self._error(f"aborting the upload of {item.key!r}", exc) from exc
        except BotoCoreError as exc:
            raise self._error(f"aborting the upload of {item.key!r}", exc) from exc

    def head(self, key: str) -> ObjectInfo:
        """Return size, etag and content type of key; raise ObjectNotFound if absent."""
        validate_key(key)
        try:
            resp = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404:
                raise ObjectNotFound(f"storage {self.url}: no object {key!r}") from exc
            raise self._error(f"head {key!r}", exc) from exc
        except BotoCoreError as exc:
            raise self._error(f"head {key!r}", exc) from exc
        version = resp.get("VersionId")
        return ObjectInfo(
            size=int(resp["ContentLength"]),
            etag=str(resp.get("ETag", "")).strip('"'),
            content_type=resp.get("ContentType"),
            # "null" is the version of an object written while versioning was off or
            # suspended, and the next such write replaces it: it pins nothing.
            version_id=None if version in (None, "", "null") else str(version),
        )

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

        With `etag`, S3 itself refuses (If-Match) to send any other object: ObjectChanged.
        """
        validate_key(key)
        check_range(start, end, chunk_size)
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start > 0 or end is not None:
            # Only when needed: S3 answers any Range on an empty object with 416.
            params["Range"] = f"bytes={start}-{'' if end is None else end}"
        if etag is not None:
            params["IfMatch"] = f'"{etag}"'
        try:
            resp = self._client.get_object(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "NoSuchKey" or (_status(exc) == 404 and code != "NoSuchBucket"):
                raise ObjectNotFound(f"storage {self.url}: no object {key!r}") from exc
            if code == "PreconditionFailed" or _status(exc) == 412:
                raise ObjectChanged(
                    f"storage {self.url}: {key!r} is no longer the object read"
                ) from exc
            if code == "InvalidRange" or _status(exc) == 416:
                # The range starts past the end: same answer as the local backend, no bytes.
                return iter(())
            raise self._error(f"read {key!r}", exc) from exc
        except BotoCoreError as exc:
            raise self._error(f"read {key!r}", exc) from exc
        body = resp["Body"]
        return ClosingIterator(self._chunks(body, chunk_size, key), body.close)

    def _chunks(self, body: Any, chunk_size: int, key: str) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(chunk_size)
        except (BotoCoreError, OSError) as exc:
            raise self._error(f"streaming {key!r}", exc) from exc

    def delete(self, key: str) -> None:
        """Remove key; S3 already treats a missing key as success."""
        validate_key(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchKey":
                return
            raise self._error(f"delete {key!r}", exc) from exc
        except BotoCoreError as exc:
            raise self._error(f"delete {key!r}", exc) from exc

    # -- setup and health ----------------------------------------------------------------------

    def check(self) -> None:
        """HEAD the bucket once with tight timeouts; raise StorageError naming the failure."""
        try:
            self._health_client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            status = _status(exc)
            if status == 404:
                raise StorageError(
                    f"storage {self.url}: bucket {self.bucket!r} does not exist; initialise storage"
                ) from exc
            if status == 403:
                raise StorageError(
                    f"storage {self.url}: access to bucket {self.bucket!r} denied "
                    "(wrong credentials, or the bucket belongs to another account)"
                ) from exc
            raise self._error("checking bucket", exc) from exc
        except BotoCoreError as exc:
            raise self._error("checking bucket", exc) from exc

    def init(self, *, cors_origins: list[str]) -> list[str]:
        """Create the bucket if needed, block public access, turn on versioning, set the CORS and
        lifecycle rules."""
        origins = list(dict.fromkeys(validate_origin(o) for o in cors_origins))
        lines = [
            self._ensure_bucket(),
            self._block_public_access(),
            self._turn_on_versioning(),
            self._set_cors(origins),
            self._set_lifecycle(),
        ]
        for line in lines:
            log.info("storage init: %s", line)
        return lines

    def _ensure_bucket(self) -> str:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _status(exc) == 403:
                raise StorageError(
                    f"storage {self.url}: bucket {self.bucket!r} exists but these credentials "
                    "may not use it (or it belongs to another account)"
                ) from exc
            if _status(exc) != 404:
                raise self._error("checking bucket", exc) from exc
        except BotoCoreError as exc:
            raise self._error("checking bucket", exc) from exc
        else:
            return f"bucket {self.bucket!r} already exists"

        params: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":
            # us-east-1 is the one region that rejects an explicit LocationConstraint.
            params["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._client.create_bucket(**params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "BucketAlreadyOwnedByYou":
                return f"bucket {self.bucket!r} already exists"
            raise self._error(f"creating bucket {self.bucket!r}", exc) from exc
        except BotoCoreError as exc:
            raise self._error(f"creating bucket {self.bucket!r}", exc) from exc
        return f"created bucket {self.bucket!r} in region {self.region}"

    def _block_public_access(self) -> str:
        try:
            self._client.put_public_access_block(
                Bucket=self.bucket,
                PublicAccessBlockConfiguration={
                    "BlockPublicAcls": True,
                    "IgnorePublicAcls": True,
                    "BlockPublicPolicy": True,
                    "RestrictPublicBuckets": True,
                },
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _UNSUPPORTED_CODES or _status(exc) in (405, 501):
                return (
                    f"server does not support blocking public access ({code}); left as is. "
                    "The bucket stays private as long as nobody adds a public ACL or policy"
                )
            raise self._error("blocking public access", exc) from exc
        except BotoCoreError as exc:
            raise self._error("blocking public access", exc) from exc
        return f"blocked all public access to bucket {self.bucket!r}"

    def _turn_on_versioning(self) -> str:
        """Versioning on, unless someone suspended it on purpose.

        A deleted or overwritten object stays recoverable (the README's backups), and share
        links pin each verified file's VersionId, so S3 serves those bytes or none without a
        HEAD per request (ops/served.py). The app works without it: a store that refuses is
        told so in one line, and init carries on.
        """
        try:
            status = self._client.get_bucket_versioning(Bucket=self.bucket).get("Status")
            if status == "Enabled":
                return f"versioning already on for bucket {self.bucket!r}"
            if status == "Suspended":
                return (
                    f"versioning is suspended on bucket {self.bucket!r}; left as is: deleted "
                    "objects are not kept, and share links ask storage on every request"
                )
            self._client.put_bucket_versioning(
                Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"}
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code") or _status(exc) or "no code"
            return (
                f"server refused versioning ({code}: {error.get('Message', '')}); left as is: "
                "deleted objects are not kept, and share links ask storage on every request"
            )
        except BotoCoreError as exc:
            raise self._error("turning on versioning", exc) from exc
        return (
            f"turned on versioning for bucket {self.bucket!r}: expire noncurrent versions "
            "after your backup window with a lifecycle rule of your own"
        )

    def _set_cors(self, origins: list[str]) -> str:
        try:
            if not origins:
                self._client.delete_bucket_cors(Bucket=self.bucket)
                return "no CORS origins given: removed CORS rules, browser-direct upload is off"
            self._client.put_bucket_cors(
                Bucket=self.bucket,
                CORSConfiguration={
                    "CORSRules": [
                        {
                            "ID": CORS_RULE_ID,
                            "AllowedOrigins": origins,
                            "AllowedMethods": ["GET", "HEAD", "POST", "PUT"],
                            "AllowedHeaders": CORS_ALLOWED_HEADERS,
                            "ExposeHeaders": CORS_EXPOSE_HEADERS,
                            "MaxAgeSeconds": 3600,
                        }
                    ]
                },
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._error("setting CORS", exc) from exc
        return f"set CORS (GET, HEAD, POST, PUT) for {', '.join(origins)}; replaced other rules"

    def _set_lifecycle(self) -> str:
        """Our two lifecycle rules, replacing earlier versions of them and keeping any others."""
        try:
            try:
                current = self._client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
                rules = [r for r in current.get("Rules", []) if r.get("ID") not in LIFECYCLE_IDS]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
                    raise
                rules = []
            self._client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": [*rules, *LIFECYCLE_RULES]}
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _UNSUPPORTED_CODES or _status(exc) in (405, 501):
                return (
                    f"server does not support lifecycle rules ({code}); left as is. "
                    "`flask storage gc --delete` removes stale staged uploads instead"
                )
            raise self._error("setting lifecycle rules", exc) from exc
        except BotoCoreError as exc:
            raise self._error("setting lifecycle rules", exc) from exc
        return (
            f"set lifecycle: abort multipart uploads unfinished after {ABORT_MULTIPART_DAYS} day, "
            f"expire {STAGING_PREFIX!r} after {EXPIRE_STAGING_DAYS} days (and its noncurrent "
            f"versions after {EXPIRE_NONCURRENT_STAGING_DAYS}); kept other rules"
        )


class _BoundedReader:
    """The upload stream as boto3 reads it: whole parts, counted against the limits.

    boto3 takes a short read for the end of the stream, so reads are filled. The guard runs
    on the first read that finds nothing left: every byte has been sent by then, and the
    object appears only after it returns.
    """

    def __init__(
        self,
        stream: BinaryIO,
        max_bytes: int | None,
        max_total: int,
        guard: InstallGuard | None,
        key: str,
        url: str,
    ) -> None:
        self._stream = stream
        self._max_bytes = max_bytes
        self._max_total = max_total
        self._guard = guard
        self._key = key
        self._url = url
        self._eof = False
        self.total = 0

    def read(self, size: int = -1) -> bytes:
        """Return size bytes (all that is left if size < 0), fewer only at the end."""
        chunks: list[bytes] = []
        have = 0
        while (size < 0 or have < size) and not self._eof:
            want = READ_CHUNK if size < 0 else min(READ_CHUNK, size - have)
            chunk = self._stream.read(want)
            if not chunk:
                self._eof = True
                break
            have += len(chunk)
            self.total += len(chunk)
            if self._max_bytes is not None and self.total > self._max_bytes:
                raise ObjectTooLarge(
                    f"storage {self._url}: upload for {self._key!r} exceeds {self._max_bytes} bytes"
                )
            if self.total > self._max_total:
                raise StorageError(
                    f"storage {self._url}: upload of {self._key!r} "
                    f"needs more than {MAX_PARTS} parts"
                )
            chunks.append(chunk)
        if not chunks and self._guard is not None:
            guard, self._guard = self._guard, None
            guard()
        return b"".join(chunks)


_VERSION_RE = re.compile(r"[A-Za-z0-9._+/=-]{1,1024}")


def _checked_version(version_id: str) -> str:
    """A VersionId as S3 hands them out (opaque, URL-safe-ish); ValueError for anything else."""
    if version_id == "null" or _VERSION_RE.fullmatch(version_id) is None:
        raise ValueError(f"not an S3 version id: {version_id!r}")
    return version_id


def _status(exc: ClientError) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if status is None:
        # Some errors only carry the status as their code ("404" from HEAD).
        code = exc.response.get("Error", {}).get("Code", "")
        return int(code) if str(code).isdigit() else None
    return int(status)
