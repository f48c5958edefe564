"""Signing an approval into a copy of the clip (issue 14, point 4): the building block.

`sign_approved_copy` writes the approved bytes again with a C2PA manifest of the deployment's
own: the original (its own manifest, if any, as the parent ingredient) plus a Greenlight
assertion naming the decision, the approval time, the SHA-256 of the approved original and the
audit head at approval. c2pa-rs parses the original's manifest to make it an ingredient, so
this runs in the same confined child as the reader (approval/_provenance_child.py).

The approval job (approval/jobs.py, sign_approved_clip) calls it once a clip is approved and a
signing key is configured. A plain library: no Flask, no models.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import signal
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from . import media
from .provenance import CHILD_SCRIPT
from .provenance_keys import SigningIdentity

#: The label of Greenlight's own assertion in the signed copy's manifest.
APPROVAL_ASSERTION = "org.greenlight.approval"
GENERATOR_VERSION = "0.1.0"
#: Room for the manifest the signed copy gains over the original.
MANIFEST_ROOM_BYTES = 16 << 20


class SigningFailed(Exception):
    """The copy could not be signed; `reason` says why, for the log and the admin."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ApprovalClaim:
    """What the Greenlight assertion says about the approval."""

    decision_id: int
    approved_at: str  # ISO 8601, UTC
    original_sha256: str
    audit_head: str


@dataclass(frozen=True)
class SignedCopy:
    path: Path
    size: int
    sha256: str


def sign_approved_copy(
    source: Path,
    target: Path,
    identity: SigningIdentity,
    claim: ApprovalClaim,
    *,
    title: str = "approved.mp4",
    timeout: float = 120.0,
    memory_limit_bytes: int = 1 << 30,
) -> SignedCopy:
    """Write `source` to `target` signed with the approval; raise SigningFailed."""
    with (
        Path(source).open("rb") as fh,
        tempfile.TemporaryDirectory(prefix="greenlight-sign-") as tmp,
    ):
        workdir = Path(tmp)
        media.check_container(fh, media.MediaLimits(allowed_containers=frozenset({"mp4", "mov"})))
        size = fh.seek(0, 2)
        fh.seek(0)
        # Files only this process and the child can read (the directory is 0700).
        (workdir / "key.pem").write_text(identity.key_pem, encoding="ascii")
        (workdir / "chain.pem").write_text(identity.chain_pem, encoding="ascii")
        request = {
            "mode": "sign",
            "fd": fh.fileno(),
            "workdir": str(workdir),
            "memory_limit": memory_limit_bytes,
            "cpu_seconds": math.ceil(timeout * 2) + 1,
            "max_file_bytes": size + MANIFEST_ROOM_BYTES,
            "title": title,
            "version": GENERATOR_VERSION,
            "assertion_label": APPROVAL_ASSERTION,
            "assertion": asdict(claim),
        }
        returncode = media.run_child(CHILD_SCRIPT, request, fd=fh.fileno(), workdir=workdir,
                                     timeout=timeout)  # fmt: skip
        if returncode is None or returncode == -signal.SIGXCPU:
            raise SigningFailed(f"signing took longer than {timeout:g} s")
        result = workdir / "result.json"
        if returncode != 0 or not result.exists():
            raise SigningFailed(f"the signer stopped: {media.child_logs(workdir)[:300]}")
        report = json.loads(result.read_text(encoding="utf-8"))
        if not isinstance(report, dict) or report.get("status") != "signed":
            detail = report.get("error") if isinstance(report, dict) else None
            raise SigningFailed(f"the copy could not be signed: {detail or 'no report'}")
        shutil.move(workdir / "signed.mp4", target)
    digest = hashlib.sha256()
    with Path(target).open("rb") as signed:
        for chunk in iter(lambda: signed.read(1 << 20), b""):
            digest.update(chunk)
    return SignedCopy(
        path=Path(target), size=Path(target).stat().st_size, sha256=digest.hexdigest()
    )
