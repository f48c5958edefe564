"""The signed copy an approval makes plays in Chromium on the share page, and is what it serves."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from approval.extensions import db
from approval.models import Clip, Role, Verdict
from approval.ops import claims, sharing, workflow
from approval.provenance_keys import make_development_identity
from tests.e2e.conftest import Site
from tests.plugins.factories import PASSWORD
from tests.plugins.provenance import MakeSignedVideo
from tests.plugins.uploads import direct_upload
from tests.plugins.web import csrf_token


@pytest.fixture
def site_settings(tmp_path: Path, trust_anchors_file: Path) -> dict[str, Any]:
    """A deployment that trusts the lab's CA and signs what it approves."""
    identity = make_development_identity("http://greenlight.test")
    key, chain = tmp_path / "key.pem", tmp_path / "chain.pem"
    key.write_text(identity.key_pem)
    chain.write_text(identity.chain_pem)
    return {
        "C2PA_TRUST_ANCHORS": str(trust_anchors_file),
        "C2PA_SIGNING_KEY": str(key),
        "C2PA_CERT_CHAIN": str(chain),
    }


@pytest.mark.parametrize("site", ["local", "s3"], indirect=True)
@pytest.mark.parametrize("viewport", [(1366, 768), (390, 844)], ids=["desktop", "phone"])
def test_the_signed_copy_plays_on_the_share_page(
    site: Site, chromium: Any, make_signed_video: MakeSignedVideo, viewport: tuple[int, int]
) -> None:
    tester = site.user(Role.TESTER, email="tess@example.com", name="Tess")
    reviewer = site.user(Role.REVIEWER, email="rey@example.com", name="Rey")
    with site.app.app_context():
        client = site.app.test_client()
        client.post(
            "/login",
            data={"email": tester.email, "password": PASSWORD, "csrf_token": csrf_token(client)},
        )
        assert direct_upload(client, make_signed_video()).status_code == 202
        clip = db.session.scalars(select(Clip)).one()
        reviewing = db.session.merge(reviewer)
        assert claims.claim_next(reviewing) == clip
        db.session.commit()
        workflow.decide(clip, reviewing, Verdict.APPROVE)
        db.session.commit()  # the signing job runs at this commit (jobs run in-process here)
        db.session.refresh(clip)
        assert clip.signed_sha256 not in (None, clip.sha256)
        _, token = sharing.create_link(clip, reviewing)
        db.session.commit()
        signed_sha256 = clip.signed_sha256

    context = chromium.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    site.contexts.append(context)
    page = context.new_page()
    site.watch(page)
    page.goto(f"{site.url}/s/{token}")
    page.wait_for_function(
        "() => { const v = document.querySelector('#player'); return v && v.readyState >= 2; }"
    )
    page.evaluate("document.querySelector('#player').play()")
    page.wait_for_function("() => document.querySelector('#player').currentTime > 0.2")
    assert page.evaluate("document.querySelector('#player').error") is None
    site.shot(page, "signed-copy-playing")
    site.check_a11y(page, "share page with the signed copy")

    # What the player was given is the signed copy, with the approval inside it.
    media = requests.get(f"{site.url}/s/{token}/media", timeout=30)
    assert media.status_code == 200
    body = media.content
    assert hashlib.sha256(body).hexdigest() == signed_sha256
    import c2pa

    with c2pa.Reader("video/mp4", io.BytesIO(body)) as reader:
        store = json.loads(reader.json())
    labels = [a["label"] for a in store["manifests"][store["active_manifest"]]["assertions"]]
    assert "org.greenlight.approval" in labels
    assert site.problems == []
    assert site.violations == []
