"""Moving a file's bytes: hash it, then send it where its upload ticket says, streaming.

Bytes go straight to S3 when the server hands out a presigned URL, or to the app's own upload
URL otherwise; either way the file is read in chunks, never held in memory, and a progress
callback hears of every chunk.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import requests

CHUNK = 1 << 20
TRANSFER_TIMEOUT = (30, 300)  # connect, and between bytes; a large upload may take long overall

#: Called with the number of bytes just hashed or sent.
Progress = Callable[[int], object]


class TransferFailed(Exception):
    """The storage (or app) refused the bytes; the message says what it answered."""


def sha256_of(path: Path, progress: Progress) -> str:
    """The file's SHA-256 in hex, read a chunk at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            progress(len(chunk))
    return digest.hexdigest()


class _Body:
    """A request body of known length from byte strings and one open file, read in chunks.

    Its length lets requests send Content-Length, which a presigned PUT signs and S3 needs (it
    refuses chunked uploads to presigned URLs).
    """

    def __init__(
        self, head: bytes, file: BinaryIO, size: int, tail: bytes, progress: Progress
    ) -> None:
        self._parts: list[bytes | BinaryIO] = [head, file, tail]
        self._length = len(head) + size + len(tail)
        self._progress = progress

    def __len__(self) -> int:
        return self._length

    def read(self, amount: int = -1) -> bytes:
        want = CHUNK if amount is None or amount < 0 else amount
        while self._parts:
            part = self._parts[0]
            if isinstance(part, bytes):
                chunk, rest = part[:want], part[want:]
                self._parts[0] = rest
                if not rest:
                    self._parts.pop(0)
                if chunk:
                    return chunk
                continue
            chunk = part.read(want)
            if chunk:
                self._progress(len(chunk))
                return chunk
            self._parts.pop(0)
        return b""

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk


def _form_head(fields: dict[str, str], boundary: str, filename: str, content_type: str) -> bytes:
    safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", filename) or "clip"
    lines = []
    for name, value in fields.items():
        lines.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n')
        lines.append(f"{value}\r\n")
    lines.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe_name}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    )
    return "".join(lines).encode()


def send(
    ticket: dict[str, Any], path: Path, size: int, content_type: str, progress: Progress
) -> None:
    """Send the file as `ticket` says (PUT, or multipart POST with the file last)."""
    method = ticket["method"]
    with path.open("rb") as handle:
        if method == "PUT":
            # requests sets Content-Length from the body; the ticket's copy would be a duplicate.
            headers = {
                name: value
                for name, value in ticket.get("headers", {}).items()
                if name.lower() != "content-length"
            }
            body = _Body(b"", handle, size, b"", progress)
        elif method == "POST":
            boundary = "greenlight-" + secrets.token_hex(12)
            fields = {**ticket.get("fields", {})}
            head = _form_head(fields, boundary, path.name, content_type)
            body = _Body(head, handle, size, f"\r\n--{boundary}--\r\n".encode(), progress)
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        else:
            raise TransferFailed(f"the server asked for an upload by {method}, which is unknown")
        try:
            # A plain request: the API token must never travel to the storage service.
            response = requests.request(
                method, ticket["url"], data=body, headers=headers, timeout=TRANSFER_TIMEOUT
            )
        except requests.RequestException as exc:
            raise TransferFailed(f"sending the file failed: {exc}") from None
    if not 200 <= response.status_code < 300:
        raise TransferFailed(f"the upload was refused: {_storage_reason(response)}")


def _storage_reason(response: requests.Response) -> str:
    """S3's error Code and Message, the app's problem detail, or the status line."""
    text = response.text
    code = re.search(r"<Code>([^<]*)</Code>", text)
    message = re.search(r"<Message>([^<]*)</Message>", text)
    if code:
        return f"HTTP {response.status_code} {code.group(1)}" + (
            f": {message.group(1)}" if message else ""
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return f"HTTP {response.status_code}: {body['detail']}"
    return f"HTTP {response.status_code} {response.reason}"
