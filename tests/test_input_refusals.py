"""What no column can hold is refused before a query: NUL characters and ids past INTEGER.

On PostgreSQL each of these was a 500 with a stack trace: a NUL character in a form field or a
query parameter, an id past 2**31 - 1 in a path or a query, a date filter on the last day there
is. Pages now refuse them with a page in the site's layout (400, or 404 for an id no row can
have) and change nothing; the API keeps answering problem+json, and takes only ISO 8601 times.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from approval.extensions import db
from approval.extensions import storage as app_storage
from approval.models import Clip, ClipStatus, Role, User
from tests.plugins.api import CLIP, SITE, bearer, problem
from tests.plugins.factories import PASSWORD
from tests.plugins.snapshot import nothing_changed
from tests.plugins.web import SignIn, csrf_token

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]
NUL = "\x00"
LAYOUT = '<header class="site-header">'
SHARE_LAYOUT = '<footer class="public-footer">'


def refusal_page(response: Any, status: int, layout: str | None = None) -> str:
    """Assert a refusal page in the site's layout, without a trace; return its text."""
    assert response.status_code == status
    assert response.mimetype == "text/html"
    page = str(response.get_data(as_text=True))
    assert (layout or LAYOUT) in page
    assert "Traceback" not in page
    return page


# --- ids and dates past what the columns hold ----------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/clips/99999999999999999999",
        "/clips/2147483648",
        "/clips/2147483648/status",
        "/review/2147483648",
        "/admin/people/2147483648",
    ],
)
def test_an_id_no_row_can_have_is_a_404_page(
    client: FlaskClient, signed_in: SignIn, make_user: MakeUser, path: str
) -> None:
    signed_in(make_user(Role.TESTER, Role.REVIEWER, Role.ADMIN))
    with nothing_changed():
        response = client.get(path)
    # Share links are for outsiders: their refusals come in the share pages' own frame.
    refusal_page(response, 404, SHARE_LAYOUT if path.startswith("/s/") else None)


def test_the_largest_id_still_reaches_its_view(
    client: FlaskClient, signed_in: SignIn, make_user: MakeUser
) -> None:
    signed_in(make_user(Role.TESTER))
    response = client.get("/clips/2147483647")
    assert "There is no clip 2147483647 that you can see." in refusal_page(response, 404)


def test_an_id_past_the_columns_in_a_post_is_a_404_page(
    client: FlaskClient, signed_in: SignIn
) -> None:
    signed_in(Role.REVIEWER)
    token = csrf_token(client, "/account")
    with nothing_changed():
        response = client.post("/review/99999999999/claim", data={"csrf_token": token})
    refusal_page(response, 404)


@pytest.mark.parametrize("previous", ["99999999999", "2147483648", "1" * 5000])
def test_a_previous_version_no_row_can_be_is_a_404_page(
    client: FlaskClient, signed_in: SignIn, previous: str
) -> None:
    signed_in(Role.TESTER)
    with nothing_changed():
        response = client.get(f"/clips/new?previous={previous}")
    refusal_page(response, 404)


def test_a_previous_version_still_opens_the_upload_page(
    client: FlaskClient, signed_in: SignIn, tester: User, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.REJECTED, tester=tester)
    signed_in(tester)
    response = client.get(f"/clips/new?previous={clip.id}")
    assert response.status_code == 200
    assert clip.title in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("clip=99999999999", "Give a number from 1 to 2,147,483,647."),
        ("clip=0", "Give a number from 1 to 2,147,483,647."),
        ("until=9999-12-31", "Give a date up to 9999-12-30."),
        ("since=9999-12-31", "Give a date up to 9999-12-30."),
    ],
)
def test_audit_filters_past_the_columns_are_field_errors(
    client: FlaskClient, signed_in: SignIn, query: str, message: str
) -> None:
    signed_in(Role.ADMIN)
    with nothing_changed():
        response = client.get(f"/admin/audit?{query}")
    assert message in refusal_page(response, 400)


def test_the_audit_export_with_an_id_past_the_columns_goes_back_to_the_page(
    client: FlaskClient, signed_in: SignIn
) -> None:
    signed_in(Role.ADMIN)
    response = client.get("/admin/audit/export.csv?clip=99999999999")
    assert response.status_code == 302
    assert "/admin/audit?clip=99999999999" in response.headers["Location"]


# --- NUL characters ------------------------------------------------------------------------------


def test_a_nul_character_in_the_sign_in_email_is_refused_with_a_page(
    client: FlaskClient, tester: User
) -> None:
    token = csrf_token(client)
    with nothing_changed():
        response = client.post(
            "/login", data={"email": tester.email + NUL, "password": PASSWORD, "csrf_token": token}
        )
    page = refusal_page(response, 400)
    assert "The field “email” contains a NUL character" in page


@pytest.mark.parametrize(
    ("role", "form_page", "action", "fields", "field"),
    [
        (Role.TESTER, "/account", "/account", {"display_name": "Tess" + NUL}, "display_name"),
        (Role.TESTER, "/account/tokens", "/account/tokens", {"name": "laptop" + NUL}, "name"),
        (
            Role.ADMIN,
            "/admin/people",
            "/admin/people",
            {"email": "new@example.com", "display_name": "N" + NUL, "roles": "tester"},
            "display_name",
        ),
    ],
    ids=["display name", "token name", "invite name"],
)
def test_a_nul_character_in_a_form_field_is_refused_with_a_page(
    client: FlaskClient,
    signed_in: SignIn,
    role: Role,
    form_page: str,
    action: str,
    fields: dict[str, str],
    field: str,
) -> None:
    signed_in(role)
    token = csrf_token(client, form_page)
    with nothing_changed():
        response = client.post(action, data={**fields, "csrf_token": token})
    assert f"The field “{field}” contains a NUL character" in refusal_page(response, 400)


def test_a_nul_character_in_the_upload_form_is_refused_and_the_file_is_not_kept(
    client: FlaskClient, signed_in: SignIn
) -> None:
    """The multipart upload form, file and all: refused after the one parse CSRF needs."""
    signed_in(Role.TESTER)
    token = csrf_token(client, "/clips/new")
    with nothing_changed():
        response = client.post(
            "/clips/new",
            data={
                "title": "A clip" + NUL,
                "notes": "fine",
                "csrf_token": token,
                "file": (io.BytesIO(b"\x00" * 4096), "clip.mp4"),
            },
            content_type="multipart/form-data",
        )
    assert "The field “title” contains a NUL character" in refusal_page(response, 400)


def test_a_nul_character_in_a_direct_upload_filename_is_refused(
    client: FlaskClient, signed_in: SignIn
) -> None:
    """No file system names a file with one, so it is refused, not quietly dropped."""
    signed_in(Role.TESTER)
    data = {"title": "A clip", "filename": "evil\x00name.mp4", "size": "1000"}
    with nothing_changed():
        response = client.post(
            "/clips/direct", data={**data, "csrf_token": csrf_token(client, "/clips/new")}
        )
    assert "The field “filename” contains a NUL character" in refusal_page(response, 400)


def test_a_ticketed_upload_body_is_never_read_as_a_form(
    client: FlaskClient, signed_in: SignIn
) -> None:
    """The clip's own bytes stream to storage untouched, whatever they look like."""
    signed_in(Role.TESTER)
    body = b"title=a%00b&notes=\x00\x00" + b"\x00" * 65536
    data = {"title": "A clip", "filename": "clip.mp4", "size": str(len(body))}
    started = client.post(
        "/clips/direct", data={**data, "csrf_token": csrf_token(client, "/clips/new")}
    )
    ticket = started.get_json()["upload"]
    assert ticket["method"] == "PUT"
    response = client.put(
        ticket["url"].removeprefix(SITE),
        data=body,
        headers={**ticket["headers"], "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 204
    clip = db.session.get(Clip, started.get_json()["clip"])
    assert clip is not None
    assert clip.staging_key is not None
    assert b"".join(app_storage().read(clip.staging_key)) == body


@pytest.mark.parametrize(
    ("role", "query"),
    [
        (Role.REVIEWER, "/review/?generator=vid%00gen"),
        (Role.ADMIN, "/admin/audit?actor=a%00b@example.com"),
        (Role.ADMIN, "/admin/audit?action=%00"),
    ],
    ids=["queue filter", "audit actor", "audit action"],
)
def test_a_nul_character_in_a_filter_is_refused_with_a_page(
    client: FlaskClient, signed_in: SignIn, role: Role, query: str
) -> None:
    signed_in(role)
    with nothing_changed():
        response = client.get(query)
    assert "The query parameter" in refusal_page(response, 400)


@pytest.mark.parametrize("path", ["/s/abc%00def", "/set-password/abc%00def", "/static/a%00.css"])
def test_an_address_with_a_nul_character_names_nothing(client: FlaskClient, path: str) -> None:
    with nothing_changed():
        response = client.get(path)
    # Share links are for outsiders: their refusals come in the share pages' own frame.
    refusal_page(response, 404, SHARE_LAYOUT if path.startswith("/s/") else None)


# --- the API keeps its own answers ---------------------------------------------------------------


def test_the_api_still_refuses_a_nul_character_field_by_field(
    client: FlaskClient, make_user: MakeUser
) -> None:
    headers = bearer(make_user(Role.TESTER))
    with nothing_changed():
        response = client.post("/api/v1/clips", json={**CLIP, "title": "A" + NUL}, headers=headers)
    body = problem(response, 422)
    assert [error["field"] for error in body["errors"]] == ["title"]


def test_the_api_still_refuses_a_nul_character_in_the_query_as_a_problem(
    client: FlaskClient, make_user: MakeUser
) -> None:
    headers = bearer(make_user(Role.ADMIN))
    response = client.get("/api/v1/audit?action=clip%00", headers=headers)
    assert problem(response, 400)["errors"][0]["field"] == "action"


@pytest.mark.parametrize("since", ["0.5", "0", "1700000000", "-1", "1e9"])
def test_the_api_takes_only_iso_8601_date_times_for_since(
    client: FlaskClient, make_user: MakeUser, since: str
) -> None:
    """Pydantic reads a bare number as Unix seconds; a query parameter must say its date."""
    headers = bearer(make_user(Role.ADMIN))
    with nothing_changed():
        response = client.get(f"/api/v1/audit?since={since}", headers=headers)
    body = problem(response, 400)
    assert body["errors"][0]["field"] == "since"
    assert "ISO 8601" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    "since", ["2026-11-30T12:00:00Z", "2026-11-30T12:00:00%2B01:00", "2026-11-30T12:00:00.5-05:00"]
)
def test_the_api_still_takes_iso_8601_date_times_for_since(
    client: FlaskClient, make_user: MakeUser, since: str
) -> None:
    response = client.get(f"/api/v1/audit?since={since}", headers=bearer(make_user(Role.ADMIN)))
    assert response.status_code == 200
