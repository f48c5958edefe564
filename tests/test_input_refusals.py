"""What no column can hold is refused before a query: ids past INTEGER, dates past the last.

On PostgreSQL each of these was a 500 with a stack trace: an id past 2**31 - 1 in a path or a
query, a date filter on the last day there is. Pages now refuse them with a page in the site's
layout (404 for an id no row can have, a field error for a filter) and change nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from approval.models import Clip, ClipStatus, Role, User
from tests.plugins.snapshot import nothing_changed
from tests.plugins.web import SignIn, csrf_token

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]
LAYOUT = '<header class="site-header">'


def refusal_page(response: Any, status: int) -> str:
    """Assert a refusal page in the site's layout, without a trace; return its text."""
    assert response.status_code == status
    assert response.mimetype == "text/html"
    page = str(response.get_data(as_text=True))
    assert LAYOUT in page
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
    refusal_page(response, 404)


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
