"""The deployment's own C2PA signing identity: checking a configured key and chain at start-up,
making a self-signed development pair (`flask provenance init`), and telling whether a file is a
copy this deployment signed for an approval on its log (`flask provenance check`).

Checked at start-up so a deployment finds a wrong key then, not at its first approval.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEV_KEY_FILE = "c2pa-dev-signing-key.pem"
DEV_CHAIN_FILE = "c2pa-dev-cert-chain.pem"


class BadSigningIdentity(ValueError):
    """The key or the chain cannot sign; `setting` names the one at fault (without prefix)."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(problem)
        self.setting = setting
        self.problem = problem


@dataclass(frozen=True)
class SigningIdentity:
    """A P-256 key and the certificate chain that vouches for it, both as PEM text."""

    key_pem: str
    chain_pem: str


def load_signing_identity(key_path: str, chain_path: str) -> SigningIdentity:
    """Read and check the pair: an ES256 key whose public half is the chain's first cert's."""
    try:
        key_pem = Path(key_path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadSigningIdentity("C2PA_SIGNING_KEY", f"cannot read {key_path}: {exc}") from None
    try:
        chain_pem = Path(chain_path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadSigningIdentity("C2PA_CERT_CHAIN", f"cannot read {chain_path}: {exc}") from None
    try:
        key = serialization.load_pem_private_key(key_pem.encode("ascii"), password=None)
    except (ValueError, TypeError):
        raise BadSigningIdentity(
            "C2PA_SIGNING_KEY", f"{key_path} holds no unencrypted PEM private key"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise BadSigningIdentity("C2PA_SIGNING_KEY", f"{key_path} is not a P-256 (ES256) key")
    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode("ascii"))
    except ValueError:
        raise BadSigningIdentity(
            "C2PA_CERT_CHAIN", f"{chain_path} holds no PEM certificate"
        ) from None
    if chain[0].public_key() != key.public_key():
        raise BadSigningIdentity(
            "C2PA_SIGNING_KEY", f"{key_path} does not match the first certificate in {chain_path}"
        )
    return SigningIdentity(key_pem=key_pem, chain_pem=chain_pem)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Greenlight development"),
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


def make_development_identity(site: str) -> SigningIdentity:
    """A throwaway CA and an ES256 signer it issued, shaped as C2PA asks of a claim signer."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"Greenlight development CA ({site})")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(sign=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    signer = (
        x509.CertificateBuilder()
        .subject_name(_name(f"Greenlight approvals ({site})"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(sign=True), critical=True)
        # C2PA requires an extended key usage on a claim signer; email protection is accepted.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    chain_pem = (signer.public_bytes(pem) + ca.public_bytes(pem)).decode("ascii")
    return SigningIdentity(key_pem=key_pem, chain_pem=chain_pem)


def write_private(path: Path, text: str) -> None:
    """Create `path` with mode 0600 from the start; refuse to replace an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(text)


class NotApproved(Exception):
    """The file is not a copy this deployment signed for an approval on its log."""


def _signer_and_anchors(identity: SigningIdentity) -> tuple[str, str]:
    """This deployment's signer serial, and the certificates its copies chain to."""
    chain = x509.load_pem_x509_certificates(identity.chain_pem.encode("ascii"))
    pem = serialization.Encoding.PEM
    issuers = chain[1:] or chain  # a lone self-signed certificate is its own anchor
    return str(chain[0].serial_number), "".join(c.public_bytes(pem).decode() for c in issuers)


def check_approved_copy(path: Path, container: str, identity: SigningIdentity) -> str:
    """What the log says of this copy ("approved on …"), or NotApproved with the reason.

    Uses the app's database (the models), so only the CLI calls it, inside the app context.
    """
    import hashlib

    from sqlalchemy import select

    from .extensions import db
    from .models import AuditEvent, Clip, ClipStatus, Decision
    from .provenance import INTACT, read_provenance

    serial, anchors = _signer_and_anchors(identity)
    found = read_provenance(path, container, anchors)
    if found.state != INTACT or not found.trusted or found.signer_serial != serial:
        raise NotApproved(f"it is not signed by this deployment ({found.summary()})")
    approval = found.greenlight_approval
    if approval is None:
        raise NotApproved("its manifest carries no Greenlight approval")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    clip = db.session.scalar(select(Clip).where(Clip.signed_sha256 == digest.hexdigest()))
    decision = db.session.get(Decision, approval["decision_id"])
    if clip is None or decision is None or decision.clip_id != clip.id:
        raise NotApproved("the log has no approval for these bytes")
    approved_event = db.session.scalar(
        select(AuditEvent.hash)
        .where(AuditEvent.clip_id == clip.id, AuditEvent.action == "clip.approved")
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    if approval["original_sha256"] != clip.sha256 or approval["audit_head"] != approved_event:
        raise NotApproved("its approval does not match the log")
    assert clip.decided_at is not None  # an approved (or since taken down) clip has one
    when = clip.decided_at.date().isoformat()
    if clip.status == ClipStatus.TAKEN_DOWN:
        return f"approved on {when} (clip {clip.id}, decision {decision.id}), since taken down"
    return f"approved on {when} (clip {clip.id}, decision {decision.id})"
