"""Sandboxed child process that reads one untrusted clip's C2PA manifest for approval.provenance.

Run only by approval.provenance as ``python -I _provenance_child.py REQUEST_JSON``, started by
path for the same reason as `_probe_child`: c2pa-rs parses hostile JUMBF and CBOR here, so the
`approval` package never loads in this process. It confines itself (address space, CPU time,
file sizes) before c2pa-python is imported, reads the clip through an inherited read-only
descriptor and leaves ``result.json`` in its work directory: what the manifest says, pared
down to the few facts the parent checks again.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

if __package__:
    from . import _sandbox_child as sandbox
else:
    # Started by path under -I: load the shared confinement from its file beside this one.
    import importlib.util

    _spec = importlib.util.spec_from_file_location(
        "_sandbox_child", Path(__file__).with_name("_sandbox_child.py")
    )
    if _spec is None or _spec.loader is None:
        raise ImportError("cannot load _sandbox_child.py")
    sandbox = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sandbox)

logger = logging.getLogger("approval.provenance_child")

#: Codes reported at most; a hostile manifest could list thousands.
MAX_CODES = 32
SOURCE_TYPE_KEY = "digitalSourceType"


def _text(value: Any, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _source_type(manifest: dict[str, Any]) -> str | None:
    """The digital source type of the first action that names one (c2pa.actions, v1 or v2)."""
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict):
            continue
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            if isinstance(action, dict) and isinstance(action.get(SOURCE_TYPE_KEY), str):
                return action[SOURCE_TYPE_KEY]
    return None


def _assertion(manifest: dict[str, Any], label: str) -> Any:
    for assertion in manifest.get("assertions") or []:
        if isinstance(assertion, dict) and assertion.get("label") == label:
            return assertion.get("data")
    return None


def _codes(results: Any, kind: str) -> list[str]:
    """The active manifest's validation codes of one kind: success, informational or failure."""
    active = results.get("activeManifest") if isinstance(results, dict) else None
    items = (active or {}).get(kind) or []
    codes = [str(item.get("code")) for item in items if isinstance(item, dict)]
    return codes[:MAX_CODES]


def describe(reader: Any) -> dict[str, Any]:
    """The facts of the active manifest, as plain JSON."""
    store = json.loads(reader.json())
    manifest = (store.get("manifests") or {}).get(store.get("active_manifest")) or {}
    generator = (manifest.get("claim_generator_info") or [{}])[0]
    results = reader.get_validation_results()
    signature = manifest.get("signature_info") or {}
    return {
        "status": "read",
        "validation_state": _text(reader.get_validation_state()),
        "failures": _codes(results, "failure"),
        # Said apart from the overall state: a trusted signer's manifest on altered bytes.
        "signer_trusted": "signingCredential.trusted" in _codes(results, "success"),
        "signer_name": _text(signature.get("common_name")),
        # c2pa-rs reports the signing certificate's organisation under "issuer".
        "signer_issuer": _text(signature.get("issuer")),
        "signer_serial": _text(signature.get("cert_serial_number")),
        "generator_name": _text(generator.get("name") if isinstance(generator, dict) else None),
        "generator_version": _text(
            generator.get("version") if isinstance(generator, dict) else None
        ),
        "digital_source_type": _text(_source_type(manifest), 300),
        # A Greenlight deployment's own approval, when this is a copy one signed.
        "greenlight_approval": _assertion(manifest, "org.greenlight.approval"),
    }


def read(fd: int, anchors: str | None) -> dict[str, Any]:
    """Read the manifest on descriptor `fd`, judging trust against `anchors` (PEM) only."""
    import c2pa

    settings: dict[str, Any] = {"verify": {"verify_trust": True}}
    if anchors:
        settings["trust"] = {"trust_anchors": anchors}
    context = c2pa.Context.from_dict(settings)
    with os.fdopen(os.dup(fd), "rb") as source:
        try:
            reader = c2pa.Reader.try_create("video/mp4", source, None, context)
        except c2pa.C2paError as exc:
            # A manifest store that does not parse is a fact about the file, not a crash.
            kind = type(exc).__name__.lstrip("_").removeprefix("C2pa") or "Other"
            return {"status": "error", "error_kind": kind, "error": str(exc)[:300]}
        if reader is None:
            return {"status": "absent"}
        with reader:
            return describe(reader)


def sign(fd: int, request: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Write a signed copy of the clip on `fd` to ``signed.mp4``: the clip (its own manifest as
    the parent ingredient) plus the Greenlight approval assertion, signed with the given pair."""
    import c2pa

    key = (workdir / "key.pem").read_bytes()
    chain = (workdir / "chain.pem").read_bytes()
    # The key is in memory now; its file goes before any hostile byte is parsed.
    (workdir / "key.pem").unlink()
    manifest = {
        "claim_generator_info": [{"name": "Greenlight", "version": request["version"]}],
        "title": request["title"],
        "assertions": [
            {"label": request["assertion_label"], "data": request["assertion"]},
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {"action": "c2pa.opened", "parameters": {"ingredientIds": ["original"]}},
                        {"action": "c2pa.published"},
                    ]
                },
            },
        ],
    }
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None)
    try:
        with c2pa.Signer.from_info(info) as signer, c2pa.Builder(manifest) as builder:
            with os.fdopen(os.dup(fd), "rb") as ingredient:
                builder.add_ingredient(
                    {"title": request["title"], "relationship": "parentOf", "label": "original"},
                    "video/mp4",
                    ingredient,
                )
            with os.fdopen(os.dup(fd), "rb") as source, (workdir / "signed.mp4").open("w+b") as out:
                source.seek(0)
                builder.sign(signer, "video/mp4", source, out)
    except c2pa.C2paError as exc:
        return {"status": "error", "error": str(exc)[:300]}
    return {"status": "signed"}


def main(argv: list[str]) -> int:
    """Confine, read (or sign), report; the exit status only says whether a report was written."""
    request = json.loads(argv[1])
    workdir = Path(request["workdir"])
    signing = request.get("mode") == "sign"
    max_file = request.get("max_file_bytes", sandbox.MAX_OUTPUT_FILE_BYTES)
    sandbox.confine(request["memory_limit"], request["cpu_seconds"], max_file)
    sandbox.start_logging(workdir, "provenance.log")
    if signing:
        sandbox.write_report(workdir, sign(request["fd"], request, workdir))
        return 0
    anchors_file = request.get("anchors_file")
    anchors = Path(anchors_file).read_text(encoding="utf-8") if anchors_file else None
    try:
        report = read(request["fd"], anchors)
    except MemoryError:
        report = {"status": "too_big"}
    sandbox.write_report(workdir, report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
