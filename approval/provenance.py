"""Content Credentials (C2PA): read and judge the manifest a clip arrives with.

c2pa-rs parses hostile JUMBF and CBOR, so it never runs in this process: `read_provenance`
scans the file's top-level boxes itself, refuses a manifest store too large to read, then hands
a read-only descriptor to a confined child (`approval/_provenance_child.py`) under a wall-clock
deadline and an address-space cap, exactly as the media probe does. A manifest that does not
parse is recorded as invalid with its codes; one the child cannot finish reading in time or in
memory is refused with the reason. Whatever the child reports is checked again here.

A plain library: no Flask, no models, no database.
"""

from __future__ import annotations

import json
import logging
import math
import re
import signal
import struct
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from . import media
from .formatting import format_size

logger = logging.getLogger(__name__)

CHILD_SCRIPT = Path(__file__).with_name("_provenance_child.py")

#: The UUID of the ISO-BMFF box that carries a C2PA manifest store.
C2PA_BOX_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
#: Real manifest stores, thumbnails and ingredients included, stay well under this.
MAX_MANIFEST_BYTES = 16 << 20
MAX_TOP_LEVEL_BOXES = 100_000
#: Only ISO-BMFF carries embedded C2PA among the containers we accept; WebM/MKV cannot.
BMFF_CONTAINERS = frozenset({"mp4", "mov"})

IPTC_SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
#: IPTC digital source types that say a machine made the pictures.
GENERATED_SOURCE_TYPES = frozenset(
    {
        "trainedAlgorithmicMedia",
        "compositeWithTrainedAlgorithmicMedia",
        "algorithmicMedia",
        "compositeSynthetic",
    }
)
#: Validation failures that mean the bytes no longer match what was signed.
_CHANGED_CODES = re.compile(r"^assertion\.(bmffHash|dataHash|boxesHash|collectionHash)\.mismatch$")
_UNTRUSTED = "signingCredential.untrusted"
_CODE = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")
_MAX_TEXT = 200

# States, short enough to filter the queue by.
ABSENT = "absent"  # no manifest: stripped, or never added
INTACT = "intact"  # a valid manifest from a trusted signer
UNTRUSTED = "untrusted"  # valid, but the signer chains to none of our trust anchors
ALTERED = "altered"  # the manifest is sound but the bytes changed after signing
INVALID = "invalid"  # the manifest does not parse or does not verify
REFUSED = "refused"  # not read: too large or too deep to read safely
STATES = (ABSENT, INTACT, UNTRUSTED, ALTERED, INVALID, REFUSED)


@dataclass(frozen=True)
class Provenance:
    """What a clip's Content Credentials say, and whether they hold."""

    state: str
    #: Validation failure codes (c2pa's), or the parse error's kind for an unreadable store.
    codes: tuple[str, ...] = ()
    signer_name: str | None = None  # the signing certificate's common name
    signer_issuer: str | None = None  # its organisation, which c2pa reports as the issuer
    signer_serial: str | None = None
    generator_name: str | None = None
    generator_version: str | None = None
    #: The IPTC term without its namespace, e.g. trainedAlgorithmicMedia.
    digital_source_type: str | None = None
    #: The signer chains to one of this deployment's trust anchors.
    trusted: bool = False
    #: Why the manifest was not read (state refused).
    reason: str | None = field(default=None)
    #: A Greenlight approval assertion (decision_id, approved_at, original_sha256, audit_head),
    #: when a Greenlight deployment signed this copy; see approval/provenance_signing.py.
    greenlight_approval: dict[str, Any] | None = None

    @property
    def present(self) -> bool:
        """The file carries a manifest store, readable or not."""
        return self.state != ABSENT

    @property
    def valid(self) -> bool:
        """The manifest verifies and the bytes are those that were signed."""
        return self.state in (INTACT, UNTRUSTED)

    @property
    def generated(self) -> bool:
        """The manifest says a machine made the pictures."""
        return self.digital_source_type in GENERATED_SOURCE_TYPES

    @property
    def vouched(self) -> bool:
        """What `require` asks: valid, from a trusted signer, saying it was generated."""
        return self.state == INTACT and self.trusted and self.generated

    def summary(self) -> str:
        """The sentence a reviewer reads at a glance."""
        if self.state == ABSENT:
            return "No Content Credentials — stripped or never added"
        if self.state == ALTERED:
            return "Credentials present but the file was changed after signing"
        if self.state == INVALID:
            return "Credentials present but invalid: " + ", ".join(self.codes or ("unreadable",))
        if self.state == REFUSED:
            return f"Credentials not read: {self.reason}"
        made = " ".join(filter(None, (self.generator_name, self.generator_version))) or "unknown"
        origin = f"Generated by {made}" if self.generated else f"Made with {made}"
        if not self.generated:
            origin += f" (not marked as generated: {self.digital_source_type or 'no source type'})"
        signer = self.signer_issuer or self.signer_name or "an unnamed signer"
        if self.state == INTACT:
            return f"{origin}, signed by {signer}, intact"
        return f"{origin}, signed by {signer}, whom this deployment does not trust"

    def to_json(self) -> str:
        """The stored form (Clip.provenance)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Provenance:
        """Read back what to_json stored."""
        data = json.loads(text)
        data["codes"] = tuple(data.get("codes") or ())
        return cls(**data)


def _refused(reason: str) -> Provenance:
    return Provenance(state=REFUSED, reason=reason)


def c2pa_box_bytes(fh: BinaryIO, size: int) -> int | None:
    """Total size of the top-level C2PA boxes in an ISO-BMFF file; None when there are none."""
    total: int | None = None
    offset = 0
    for _ in range(MAX_TOP_LEVEL_BOXES):
        if offset + 8 > size:
            break
        fh.seek(offset)
        header = fh.read(24)
        box_size, kind = struct.unpack(">I4s", header[:8])
        if box_size == 1 and len(header) >= 16:
            box_size = struct.unpack(">Q", header[8:16])[0]
            fh.seek(offset + 16)
            uuid = fh.read(16)
        else:
            uuid = header[8:24]
        if box_size == 0:  # runs to the end of the file
            box_size = size - offset
        if box_size < 8:
            break  # media.check_container has already refused a file like this
        if kind == b"uuid" and uuid == C2PA_BOX_UUID:
            total = (total or 0) + box_size
        offset += box_size
    return total


def read_provenance(
    path: Path,
    container: str,
    trust_anchors: str | None,
    *,
    timeout: float = 30.0,
    memory_limit_bytes: int = 1 << 30,
) -> Provenance:
    """Read and judge the clip's manifest; never raises for anything the file holds."""
    if container not in BMFF_CONTAINERS:
        return Provenance(state=ABSENT)
    with Path(path).open("rb") as fh:
        size = fh.seek(0, 2)
        manifest_bytes = c2pa_box_bytes(fh, size)
        if manifest_bytes is None:
            return Provenance(state=ABSENT)
        if manifest_bytes > MAX_MANIFEST_BYTES:
            return _refused(
                f"its Content Credentials take {format_size(manifest_bytes)}; "
                f"at most {format_size(MAX_MANIFEST_BYTES)} are read"
            )
        fh.seek(0)
        report = _run_child(fh.fileno(), trust_anchors, timeout, memory_limit_bytes)
    if isinstance(report, Provenance):
        return report
    return _judge(report)


def _run_child(
    fd: int, trust_anchors: str | None, timeout: float, memory_limit_bytes: int
) -> dict[str, Any] | Provenance:
    with tempfile.TemporaryDirectory(prefix="greenlight-provenance-") as tmp:
        workdir = Path(tmp)
        request: dict[str, Any] = {
            "fd": fd,
            "workdir": str(workdir),
            "memory_limit": memory_limit_bytes,
            "cpu_seconds": math.ceil(timeout * 2) + 1,
            "anchors_file": None,
        }
        if trust_anchors:
            anchors = workdir / "anchors.pem"
            anchors.write_text(trust_anchors, encoding="utf-8")
            request["anchors_file"] = str(anchors)
        returncode = media.run_child(CHILD_SCRIPT, request, fd=fd, workdir=workdir, timeout=timeout)
        slow = f"reading its Content Credentials took longer than {timeout:g} s"
        if returncode is None or returncode == -signal.SIGXCPU:
            return _refused(slow)
        result = workdir / "result.json"
        if returncode != 0 or not result.exists():
            logger.warning(
                "provenance reader stopped (status %s): %s", returncode, media.child_logs(workdir)
            )
            if returncode > 0:  # a Python error in the reader, not the file's doing
                return _refused("the reader failed on its Content Credentials")
            # Killed by a signal: c2pa-rs aborts when an allocation fails under the cap.
            return _refused("its Content Credentials are too large or too deeply nested to read")
        try:
            report = json.loads(result.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return _refused("the reader could not report on its Content Credentials")
    if not isinstance(report, dict):
        return _refused("the reader could not report on its Content Credentials")
    return report


def _text(report: dict[str, Any], key: str) -> str | None:
    # The child parsed hostile data and could be subverted by it: check its report again.
    value = report.get(key)
    if not isinstance(value, str) or not value:
        return None
    return "".join(ch for ch in value[:_MAX_TEXT] if ch.isprintable())


def _codes(values: Any) -> tuple[str, ...]:
    if not isinstance(values, list):
        return ()
    return tuple(str(v) for v in values[:32] if isinstance(v, str) and _CODE.match(v))


_APPROVAL_TEXT = ("approved_at", "original_sha256", "audit_head")


def _approval(value: Any) -> dict[str, Any] | None:
    """The Greenlight assertion's four fields, exactly typed, or None."""
    if not isinstance(value, dict) or type(value.get("decision_id")) is not int:
        return None
    approval: dict[str, Any] = {"decision_id": value["decision_id"]}
    for key in _APPROVAL_TEXT:
        text = value.get(key)
        if not isinstance(text, str) or not _CODE.match(text.replace("+", "")):
            return None
        approval[key] = text
    return approval


def _judge(report: dict[str, Any]) -> Provenance:
    status = report.get("status")
    if status == "absent":
        return Provenance(state=ABSENT)
    if status == "too_big":
        return _refused("its Content Credentials need more memory than a reader may use")
    if status == "error":
        kind = _text(report, "error_kind") or "Other"
        code = "manifest." + re.sub(r"[^A-Za-z0-9]", "", kind)[:40].lower()
        logger.info("unreadable manifest: %s", _text(report, "error"))
        return Provenance(state=INVALID, codes=(code,))
    if status != "read":
        return _refused("the reader could not report on its Content Credentials")
    failures = _codes(report.get("failures"))
    validation = report.get("validation_state")
    trusted = report.get("signer_trusted") is True and _UNTRUSTED not in failures
    if any(_CHANGED_CODES.match(code) for code in failures):
        state = ALTERED
    elif set(failures) - {_UNTRUSTED} or validation not in ("Valid", "Trusted"):
        state = INVALID
    else:
        state = INTACT if trusted else UNTRUSTED
    source = _text(report, "digital_source_type")
    if source is not None:
        source = source.removeprefix(IPTC_SOURCE_TYPES)
    return Provenance(
        state=state,
        codes=failures,
        signer_name=_text(report, "signer_name"),
        signer_issuer=_text(report, "signer_issuer"),
        signer_serial=_text(report, "signer_serial"),
        generator_name=_text(report, "generator_name"),
        generator_version=_text(report, "generator_version"),
        digital_source_type=source,
        trusted=trusted,
        greenlight_approval=_approval(report.get("greenlight_approval")),
    )
