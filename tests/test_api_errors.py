"""Bad input to the API: each refusal is problem+json naming what is wrong, and changes nothing."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from approval import paging
from approval.models import Clip, ClipStatus
from tests.plugins.api import CLIP, problem
from tests.plugins.snapshot import nothing_changed

MakeClip = Callable[..., Clip]


@pytest.fixture
def unchanged(as_tester: dict[str, str]) -> Iterator[None]:
    """After the people and tokens exist: the test added or removed no row, event or object."""
    with nothing_changed():
        yield


# --- bad input ---------------------------------------------------------------------------------


def test_malformed_json_is_400_with_the_position(
    client: FlaskClient, as_tester: dict[str, str], unchanged: None
) -> None:
    response = client.post(
        "/api/v1/clips", data='{"title": "x",}', content_type="application/json",
        headers=as_tester,
    )  # fmt: skip
    assert "not valid JSON" in problem(response, 400)["detail"]
    assert "line 1 column" in response.get_json()["detail"]


def test_a_form_body_is_415(
    client: FlaskClient, as_tester: dict[str, str], unchanged: None
) -> None:
    response = client.post("/api/v1/clips", data={"title": "x"}, headers=as_tester)
    detail = problem(response, 415)["detail"]
    assert "Content-Type: application/json" in detail
    assert "application/x-www-form-urlencoded" in detail


def test_unknown_fields_are_named(
    client: FlaskClient, as_tester: dict[str, str], unchanged: None
) -> None:
    response = client.post("/api/v1/clips", json={**CLIP, "status": "approved"}, headers=as_tester)
    errors = problem(response, 422)["errors"]
    assert errors[0]["field"] == "status"
    assert errors[0]["message"].startswith("unknown field; this endpoint takes content_type")


def test_wrong_types_are_listed_field_by_field(
    client: FlaskClient, as_tester: dict[str, str], unchanged: None
) -> None:
    body = {"title": 5, "filename": "clip.mp4", "size": "1000", "prompt": None}
    response = client.post("/api/v1/clips", json=body, headers=as_tester)
    errors = {e["field"]: e["message"] for e in problem(response, 422)["errors"]}
    assert errors == {
        "title": "input should be a valid string",
        "size": "input should be a valid integer",
        "prompt": "input should be a valid string",
    }


def test_a_json_array_is_not_a_body(
    client: FlaskClient, as_tester: dict[str, str], unchanged: None
) -> None:
    response = client.post("/api/v1/clips", json=[CLIP], headers=as_tester)
    assert problem(response, 422)["errors"] == [
        {"field": "(body)", "message": "the body must be a JSON object"}
    ]


@pytest.mark.parametrize("chunked", [False, True])
def test_a_huge_json_body_is_413(
    client: FlaskClient, as_tester: dict[str, str], chunked: bool, unchanged: None
) -> None:
    body = json.dumps({**CLIP, "notes": "x" * 200_000}).encode()
    headers = {**as_tester, "Content-Type": "application/json"}
    if chunked:  # no Content-Length: the limit must hold while the body is read
        headers["Transfer-Encoding"] = "chunked"
        response = client.post(
            "/api/v1/clips", input_stream=io.BytesIO(body), headers=headers,
            environ_overrides={"wsgi.input_terminated": True},
        )  # fmt: skip
    else:
        response = client.post("/api/v1/clips", data=body, headers=headers)
    assert "larger than 64 KB" in problem(response, 413)["detail"]


@pytest.mark.parametrize(
    ("field", "value", "status", "message"),
    [
        ("filename", "notes.txt", 422, "Files ending in .txt are not accepted"),
        ("size", 0, 422, "file is empty"),
        ("size", 5 << 30, 413, "file is 5 GB; the limit is 1 GB"),
        ("content_type", "video/webm", 422, "a .mp4 file is stored as video/mp4"),
        ("title", "   ", 422, "at least 1 character"),
        ("title", "nul\x00byte", 422, "should match pattern"),
        ("previous", 999, 422, "you have no clip 999"),
        ("sha256", "abc", 422, "should match pattern"),
    ],
)
def test_bad_clip_details_name_their_field(
    client: FlaskClient, as_tester: dict[str, str], field: str, value: Any, status: int,
    message: str, unchanged: None,
) -> None:  # fmt: skip
    response = client.post("/api/v1/clips", json={**CLIP, field: value}, headers=as_tester)
    errors = problem(response, status)["errors"]
    assert errors[0]["field"] == field
    assert message in errors[0]["message"]


@pytest.mark.parametrize("path", ["/api/v1/clips/999", "/api/v1/clips/99999999999"])
def test_unknown_clips_are_404(
    client: FlaskClient, as_tester: dict[str, str], path: str, unchanged: None
) -> None:
    problem(client.get(path, headers=as_tester), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", ""), ("POST", "/complete"), ("POST", "/withdraw"), ("POST", "/ticket")],
)
def test_someone_elses_clip_is_404_and_untouched(
    client: FlaskClient, as_tester: dict[str, str], make_clip: MakeClip, method: str, path: str
) -> None:
    clip = make_clip(ClipStatus.UPLOADING)
    with nothing_changed():
        response = client.open(f"/api/v1/clips/{clip.id}{path}", method=method, headers=as_tester)
    problem(response, 404)


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "eyJiZWZvcmUiOjV9.forged", "{own}x", "{audit}"],
)
def test_a_tampered_or_foreign_cursor_is_400(
    app: Flask, client: FlaskClient, as_tester: dict[str, str], cursor: str, unchanged: None
) -> None:
    with app.test_request_context():
        cursor = cursor.format(
            own=paging.encode("api.clips", [5]), audit=paging.encode("api.audit", [5])
        )
    response = client.get("/api/v1/clips", query_string={"cursor": cursor}, headers=as_tester)
    body = problem(response, 400)
    assert body["errors"][0]["field"] == "cursor"
    assert "follow the `next` link as given" in body["detail"]


def test_unknown_and_repeated_query_parameters_are_400(
    client: FlaskClient, as_tester: dict[str, str], unchanged: None
) -> None:
    response = client.get("/api/v1/clips?colour=red&limit=1&limit=2", headers=as_tester)
    errors = problem(response, 400)["errors"]
    assert {"field": "limit", "message": "give this parameter once"} in errors
    assert errors[-1]["field"] == "colour"


def test_unknown_paths_and_methods_are_problems_too(
    client: FlaskClient, as_tester: dict[str, str], unchanged: None
) -> None:
    problem(client.get("/api/v1/nothing-here", headers=as_tester), 404)
    wrong = client.put("/api/v1/clips", headers=as_tester)
    problem(wrong, 405)
    assert "POST" in wrong.headers["Allow"]
