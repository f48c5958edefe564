"""Personal API tokens: shown once, kept hashed, refused when expired, revoked or orphaned."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from approval.extensions import db
from approval.models import ApiToken, AuditEvent, Role, User
from approval.ops import tokens
from approval.ops.errors import NotAuthenticated, Refused
from approval.ops.people import set_active, set_roles
from tests.plugins.factories import FrozenClock
from tests.plugins.snapshot import nothing_changed
from tests.plugins.web import SignIn, csrf_token

MakeUser = Callable[..., User]


def make_token(user: User, **options: Any) -> tuple[ApiToken, str]:
    token, raw = tokens.create(user, name=options.pop("name", "test"), actor=None, **options)
    db.session.commit()
    return token, raw


def me(client: FlaskClient, raw: str) -> Any:
    return client.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"})


# --- the operations ------------------------------------------------------------------------------


def test_only_the_hash_and_a_prefix_are_stored(app: Flask, make_user: MakeUser) -> None:
    token, raw = make_token(make_user())
    assert raw.startswith("glt_")
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw.startswith(token.prefix)
    assert len(token.prefix) < len(raw) // 3
    stored = db.session.execute(text("SELECT * FROM api_tokens")).one()
    assert raw not in [str(value) for value in stored]


def test_a_token_authenticates_its_owner(app: Flask, make_user: MakeUser) -> None:
    user = make_user(Role.REVIEWER)
    _, raw = make_token(user)
    assert tokens.authenticate(raw) == user


def test_last_use_is_stamped_at_most_once_a_minute(
    app: Flask, make_user: MakeUser, clock: FrozenClock
) -> None:
    token, raw = make_token(make_user())
    first = clock.now
    tokens.authenticate(raw)
    clock.advance(seconds=30)
    tokens.authenticate(raw)
    db.session.refresh(token)
    assert token.last_used_at == first
    clock.advance(seconds=31)
    tokens.authenticate(raw)
    db.session.refresh(token)
    assert token.last_used_at == clock.now


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("expired", "expired on 2026-12-01 12:00 UTC"),
        ("revoked", "was revoked on 2026-11-30 12:00 UTC"),
        ("deactivated", "account this API token belongs to is deactivated"),
        ("unknown", "unknown; it may be mistyped or deleted"),
        ("malformed", "not a Greenlight API token"),
    ],
)
def test_refused_tokens_say_why(
    app: Flask, make_user: MakeUser, clock: FrozenClock, setup: str, message: str
) -> None:
    user = make_user()
    token, raw = make_token(user, expires_in_days=1)
    if setup == "expired":
        clock.advance(days=1)
    elif setup == "revoked":
        tokens.revoke(token, actor=user)
    elif setup == "deactivated":
        set_active(user, False, actor=None)
    elif setup == "unknown":
        raw = "glt_" + "A" * 43
    else:
        raw = "password123"
    db.session.commit()
    with nothing_changed(), pytest.raises(NotAuthenticated, match=message):
        tokens.authenticate(raw)


def test_revoking_twice_logs_once(app: Flask, make_user: MakeUser) -> None:
    user = make_user()
    token, _ = make_token(user)
    assert tokens.revoke(token, actor=user) is True
    assert tokens.revoke(token, actor=user) is False
    db.session.commit()
    actions = db.session.scalars(select(AuditEvent.action)).all()
    assert actions.count("api_token.revoked") == 1
    assert "api_token.created" in actions


def test_others_cannot_revoke_a_token(app: Flask, make_user: MakeUser) -> None:
    token, _ = make_token(make_user())
    stranger = make_user()
    with nothing_changed(), pytest.raises(Refused, match="no API token"):
        tokens.revoke(token, actor=stranger)


@pytest.mark.parametrize(
    ("name", "days", "message"),
    [
        ("  ", None, "Give the token a name"),
        ("x" * 101, None, "at most 100 characters"),
        ("ok", 0, "1 to 3650 days"),
        ("ok", 4000, "1 to 3650 days"),
    ],
)
def test_bad_token_requests_are_refused(
    app: Flask, make_user: MakeUser, name: str, days: int | None, message: str
) -> None:
    user = make_user()
    with nothing_changed(), pytest.raises(Refused, match=message):
        tokens.create(user, name=name, expires_in_days=days, actor=None)


def test_a_deactivated_account_gets_no_new_token(app: Flask, make_user: MakeUser) -> None:
    user = make_user(active=False)
    with nothing_changed(), pytest.raises(Refused, match="deactivated"):
        tokens.create(user, name="x", actor=None)


# --- over HTTP: roles at the time of use --------------------------------------------------------


def test_a_token_acts_with_the_roles_its_owner_has_now(
    app: Flask, client: FlaskClient, make_user: MakeUser
) -> None:
    user = make_user(Role.TESTER, Role.REVIEWER)
    _, raw = make_token(user)
    headers = {"Authorization": f"Bearer {raw}"}
    assert client.post("/api/v1/review/claim", headers=headers).status_code == 204
    set_roles(user, add=[], remove=[Role.REVIEWER], actor=None)
    db.session.commit()
    with nothing_changed():
        refused = client.post("/api/v1/review/claim", headers=headers)
    assert refused.status_code == 403
    assert "needs the reviewer role; your account has tester" in refused.get_json()["detail"]


def test_deactivation_stops_a_token_at_the_next_request(
    app: Flask, client: FlaskClient, make_user: MakeUser
) -> None:
    user = make_user()
    _, raw = make_token(user)
    assert me(client, raw).status_code == 200
    set_active(user, False, actor=None)
    db.session.commit()
    with nothing_changed():
        response = me(client, raw)
    assert response.status_code == 401
    assert "deactivated" in response.get_json()["detail"]


# --- flask tokens ---------------------------------------------------------------------------------


def test_cli_create_prints_the_token_once_and_it_works(
    app: Flask, client: FlaskClient, make_user: MakeUser
) -> None:
    user = make_user()
    result = app.test_cli_runner().invoke(
        args=["tokens", "create", user.email.upper(), "--name", "ci", "--expires", "30"]
    )
    assert result.exit_code == 0, result.output
    raw = re.search(r"glt_\S+", result.output)
    assert raw is not None
    assert me(client, raw.group(0)).get_json()["email"] == user.email
    token = db.session.scalars(select(ApiToken)).one()
    assert (token.name, token.expires_at) == ("ci", token.created_at + timedelta(days=30))


def test_cli_list_shows_state_and_last_use(
    app: Flask, client: FlaskClient, make_user: MakeUser
) -> None:
    user = make_user()
    _, raw = make_token(user, name="laptop")
    revoked, _ = make_token(user, name="old")
    tokens.revoke(revoked, actor=None)
    db.session.commit()
    me(client, raw)
    output = app.test_cli_runner().invoke(args=["tokens", "list", user.email]).output
    laptop = next(line for line in output.splitlines() if "laptop" in line)
    old = next(line for line in output.splitlines() if line.endswith("old"))
    assert "active" in laptop
    assert "2026-11-30 12:00:00 UTC" in laptop
    assert "revoked" in old
    assert "never" in old


def test_cli_revoke_stops_the_token(app: Flask, client: FlaskClient, make_user: MakeUser) -> None:
    user = make_user()
    token, raw = make_token(user)
    result = app.test_cli_runner().invoke(args=["tokens", "revoke", str(token.id)])
    assert f"token {token.id} of {user.email} revoked" in result.output
    with nothing_changed():
        assert me(client, raw).status_code == 401


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tokens", "create", "nobody@example.com"], "no account for nobody@example.com"),
        (["tokens", "list", "nobody@example.com"], "no account for nobody@example.com"),
        (["tokens", "revoke", "999"], "There is no API token 999"),
    ],
)
def test_cli_refusals_name_the_problem(app: Flask, args: list[str], message: str) -> None:
    with nothing_changed():
        result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 1
    assert message in result.output


# --- the account page -----------------------------------------------------------------------------


@pytest.fixture
def owner(signed_in: SignIn, tester: User) -> User:
    """The shared `tester`, signed in on the test's `client`: whose account page it is."""
    signed_in(tester)
    return tester


def create_on_page(client: FlaskClient, **fields: str) -> Any:
    data = {"name": "laptop", "expiry": "30", **fields}
    data["csrf_token"] = csrf_token(client, "/account/tokens")
    return client.post("/account/tokens", data=data)


def test_account_page_links_to_the_tokens(client: FlaskClient, owner: User) -> None:
    assert 'href="/account/tokens"' in client.get("/account").get_data(as_text=True)


def test_a_token_made_on_the_page_is_shown_once(client: FlaskClient, owner: User) -> None:
    response = create_on_page(client)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    raw = re.search(r'id="new-token">(glt_[^<]+)<', response.get_data(as_text=True))
    assert raw is not None
    assert me(client, raw.group(1)).get_json()["id"] == owner.id
    later = client.get("/account/tokens").get_data(as_text=True)
    assert raw.group(1) not in later
    assert raw.group(1)[:12] + "…" in later


def test_the_page_shows_when_each_token_was_last_used(
    client: FlaskClient, owner: User, clock: FrozenClock
) -> None:
    _, raw = make_token(owner, name="ci runner")
    page = client.get("/account/tokens").get_data(as_text=True)
    assert "ci runner" in page
    assert "never" in page
    me(client, raw)
    clock.advance(minutes=5)
    page = client.get("/account/tokens").get_data(as_text=True)
    assert "5 minutes ago" in page


def test_a_token_without_a_name_is_refused_on_the_page(client: FlaskClient, owner: User) -> None:
    with nothing_changed():
        response = create_on_page(client, name="")
    assert response.status_code == 400
    assert db.session.scalar(select(ApiToken.id)) is None


def test_revoke_on_the_page(client: FlaskClient, owner: User) -> None:
    token, raw = make_token(owner)
    response = client.post(
        f"/account/tokens/{token.id}/revoke",
        data={"csrf_token": csrf_token(client, "/account/tokens")},
    )
    assert response.status_code == 302
    with nothing_changed():
        assert me(client, raw).status_code == 401


def test_someone_elses_token_cannot_be_revoked_on_the_page(
    client: FlaskClient, owner: User, make_user: MakeUser
) -> None:
    token, raw = make_token(make_user())
    data = {"csrf_token": csrf_token(client, "/account/tokens")}
    with nothing_changed():
        response = client.post(f"/account/tokens/{token.id}/revoke", data=data)
    # Like anyone else's thing, it does not exist for this caller.
    assert response.status_code == 404
    assert f"There is no API token {token.id}." in response.get_data(as_text=True)
    assert me(client, raw).status_code == 200


def test_revoke_without_csrf_is_refused(client: FlaskClient, owner: User) -> None:
    token, raw = make_token(owner)
    with nothing_changed():
        assert client.post(f"/account/tokens/{token.id}/revoke").status_code == 400
    assert me(client, raw).status_code == 200
