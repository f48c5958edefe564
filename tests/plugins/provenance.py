"""Pytest fixtures for Content Credentials: a test CA, an ES256 signer, and signed clips.

Load with ``pytest_plugins = ["tests.plugins.provenance"]`` (after tests.plugins.media). The
certificates are made with `cryptography` once per session; clips are made with make_video and
signed with c2pa-python, all offline.

Fixtures:
    lab_authority -> Authority        the lab's generator CA and a signer it issued
    stranger_authority -> Authority   another CA nobody configured as a trust anchor
    trust_anchors_file -> Path        a PEM file holding the lab CA (for C2PA_TRUST_ANCHORS)
    make_signed_video(name="signed.mp4", *, authority=None, generated=True,
                      generator=("sora-alpha", "0.1")) -> Path
Helpers:
    alter_media(path)       flip bytes inside mdat, after signing
    corrupt_manifest(path)  overwrite bytes inside the manifest store's CBOR claim
    manifest_bomb(path, size=, depth=)  append a C2PA box of nested JUMBF headers
"""

from __future__ import annotations

import datetime
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import c2pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.plugins.media import MakeVideo

#: The UUID of the ISO-BMFF box that carries a C2PA manifest store.
C2PA_BOX_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
IPTC_SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"


@dataclass(frozen=True)
class Authority:
    """A CA (what a deployment may trust) and one ES256 signer it issued."""

    ca_name: str
    ca_pem: bytes
    chain_pem: bytes  # the signer's certificate, then the CA's
    key_pem: bytes
    signer_name: str
    signer_org: str
    signer_serial: int


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )


def _usage(*, sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not sign,
        crl_sign=not sign,
        encipher_only=False,
        decipher_only=False,
    )


def make_authority(ca_name: str, signer_name: str, signer_org: str) -> Authority:
    """A CA and a signer whose certificate carries what C2PA asks of a claim signer."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = _name(ca_name, signer_org)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(sign=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    serial = x509.random_serial_number()
    signer = (
        x509.CertificateBuilder()
        .subject_name(_name(signer_name, signer_org))
        .issuer_name(ca_subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(sign=True), critical=True)
        # C2PA requires an extended key usage; email protection is one it accepts.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return Authority(
        ca_name=ca_name,
        ca_pem=ca.public_bytes(pem),
        chain_pem=signer.public_bytes(pem) + ca.public_bytes(pem),
        key_pem=key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        signer_name=signer_name,
        signer_org=signer_org,
        signer_serial=serial,
    )


@pytest.fixture(scope="session")
def lab_authority() -> Authority:
    """The lab's generator CA: what a deployment configures as its trust anchor."""
    return make_authority("Lab Generator CA", "sora-alpha signer", "Lab Generator")


@pytest.fixture(scope="session")
def stranger_authority() -> Authority:
    """A CA that signs perfectly good manifests but that no deployment here trusts."""
    return make_authority("Elsewhere CA", "elsewhere signer", "Elsewhere Media")


@pytest.fixture
def trust_anchors_file(tmp_path: Path, lab_authority: Authority) -> Path:
    """A PEM file holding the lab's CA, as an operator would configure it."""
    path = tmp_path / "trust-anchors.pem"
    path.write_bytes(lab_authority.ca_pem)
    return path


def sign_video(
    source: Path,
    target: Path,
    authority: Authority,
    *,
    generated: bool = True,
    generator: tuple[str, str] = ("sora-alpha", "0.1"),
) -> Path:
    """Write `source` to `target` with a manifest saying who made it and how."""
    source_type = "trainedAlgorithmicMedia" if generated else "digitalCapture"
    manifest = {
        "claim_generator_info": [{"name": generator[0], "version": generator[1]}],
        "title": source.name,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": IPTC_SOURCE_TYPES + source_type,
                        }
                    ]
                },
            }
        ],
    }
    info = c2pa.C2paSignerInfo(
        c2pa.C2paSigningAlg.ES256, authority.chain_pem, authority.key_pem, None
    )
    with (
        c2pa.Signer.from_info(info) as signer,
        c2pa.Builder(manifest) as builder,
        source.open("rb") as src,
        target.open("w+b") as dst,
    ):
        builder.sign(signer, "video/mp4", src, dst)
    return target


class MakeSignedVideo(Protocol):
    """Signature of the make_signed_video factory."""

    def __call__(
        self,
        name: str = "signed.mp4",
        *,
        authority: Authority | None = None,
        generated: bool = True,
        generator: tuple[str, str] = ("sora-alpha", "0.1"),
    ) -> Path: ...


@pytest.fixture
def make_signed_video(
    make_video: MakeVideo, tmp_path: Path, lab_authority: Authority
) -> MakeSignedVideo:
    """Factory for small H.264 MP4s signed by the lab (or by `authority`)."""

    def make(
        name: str = "signed.mp4",
        *,
        authority: Authority | None = None,
        generated: bool = True,
        generator: tuple[str, str] = ("sora-alpha", "0.1"),
    ) -> Path:
        source = make_video(f"unsigned-{name}", seconds=1.0, width=320, height=240)
        return sign_video(
            source,
            tmp_path / name,
            authority or lab_authority,
            generated=generated,
            generator=generator,
        )

    return make


def top_level_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of each top-level ISO-BMFF box."""
    boxes = []
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        boxes.append((kind, offset, size))
        offset += size
    return boxes


def _box(data: bytes, kind: bytes) -> tuple[int, int]:
    for found, offset, size in top_level_boxes(data):
        if found == kind and (kind != b"uuid" or data[offset + 8 : offset + 24] == C2PA_BOX_UUID):
            return offset, size
    raise AssertionError(f"no {kind!r} box")


def alter_media(path: Path) -> Path:
    """Flip bytes in the media data after signing, where players never notice: inside the
    encoder's own note (x264's user-data SEI) when there is one, else mid-mdat."""
    data = bytearray(path.read_bytes())
    offset, size = _box(bytes(data), b"mdat")
    note = data.find(b"x264 - core", offset, offset + size)
    at = note + 12 if note >= 0 else offset + size // 2
    # Toggle letter case (or any bits): the note stays text, the decoder still skips it.
    data[at : at + 4] = bytes(b ^ 0x20 for b in data[at : at + 4])
    path.write_bytes(data)
    return path


def corrupt_manifest(path: Path) -> Path:
    """Overwrite bytes early in the manifest store, where the claim's CBOR lives."""
    data = bytearray(path.read_bytes())
    offset, _size = _box(bytes(data), b"uuid")
    data[offset + 1000 : offset + 1008] = b"\xff" * 8
    path.write_bytes(data)
    return path


def manifest_bomb(path: Path, *, size: int, depth: int | None = None) -> Path:
    """Append a C2PA box of `size` bytes to a clip: JUMBF superboxes nested `depth` deep (as
    deep as the size allows when None), padded with zeros. Appended after the clip's own boxes,
    so the media itself still plays."""
    header = 8 + 16 + 4 + len(b"manifest\x00") + 8
    room = size - header
    levels = room // 8 if depth is None else min(depth, room // 8)
    nested = bytearray()
    for level in range(levels):
        # Each superbox claims everything after its own start: a tower, not a row.
        nested += struct.pack(">I4s", room - 8 * level, b"jumb")
    nested += bytes(room - len(nested))
    box = (
        struct.pack(">I4s", size, b"uuid")
        + C2PA_BOX_UUID
        + b"\x00\x00\x00\x00"
        + b"manifest\x00"
        + struct.pack(">Q", 0)
        + bytes(nested)
    )
    with path.open("ab") as fh:
        fh.write(box)
    return path
