"""Helpers for the JSON API tests: bearer headers, the problem+json shape, a clip's details.

Loaded from tests/conftest.py's ``pytest_plugins``; shared by tests/test_api*.py so none of
them imports another.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from approval.extensions import db
from approval.models import User
from approval.ops import tokens

SITE = "http://greenlight.test"
#: A valid body for POST /api/v1/clips.
CLIP = {"title": "A clip", "filename": "clip.mp4", "size": 1000}


def bearer(user: User, **options: Any) -> dict[str, str]:
    """Headers that authenticate as user with a new API token."""
    _, raw = tokens.create(user, name="test", actor=None, **options)
    db.session.commit()
    return {"Authorization": f"Bearer {raw}"}


def problem(response: Any, status: int) -> dict[str, Any]:
    """Assert response is an application/problem+json refusal with status; return its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


@pytest.fixture
def as_tester(app: Flask, tester: User) -> dict[str, str]:
    """Bearer headers for the `tester` fixture."""
    return bearer(tester)


@pytest.fixture
def as_reviewer(app: Flask, reviewer: User) -> dict[str, str]:
    """Bearer headers for the `reviewer` fixture."""
    return bearer(reviewer)
