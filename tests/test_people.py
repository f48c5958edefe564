"""People management: invitations, set-password links, roles, deactivation, the CLI."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from approval.extensions import db
from approval.models import AuditEvent, PasswordToken, Role, User
from tests.plugins.factories import PASSWORD, FrozenClock
from tests.plugins.snapshot import nothing_changed
from tests.plugins.web import SignIn, csrf_token

Login = Callable[..., Any]
MakeUser = Callable[..., User]


@pytest.fixture
def admin_signed_in(signed_in: SignIn, admin: User) -> FlaskClient:
    """The test's `client`, signed in as the shared `admin`."""
    return signed_in(admin)


def invite(client: FlaskClient, **fields: Any) -> Any:
    data = {"email": "new@example.com", "display_name": "New Person", "roles": ["reviewer"]}
    data.update(fields)
    return client.post(
        "/admin/people", data={**data, "csrf_token": csrf_token(client, "/admin/people")}
    )


def link_path(response: Any) -> str:
    match = re.search(
        r"http://greenlight\.test(/set-password/[A-Za-z0-9_-]+)", response.get_data(as_text=True)
    )
    assert match, "no set-password link on the page"
    return match.group(1)


def actions() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_invite_shows_a_one_time_link_and_creates_the_account(
    client: FlaskClient, admin: User, admin_signed_in: FlaskClient
) -> None:
    response = invite(client)
    assert response.status_code == 200
    path = link_path(response)
    user = User.by_email("new@example.com")
    assert user is not None
    assert user.roles == {Role.REVIEWER}
    assert user.password_hash is None
    # Only the token's hash is stored.
    token = path.rsplit("/", 1)[1]
    assert db.session.scalar(select(PasswordToken.token_hash)) != token
    assert "user.created" in actions()


def test_invitee_sets_a_password_and_is_signed_in(
    app: Flask, client: FlaskClient, admin: User, admin_signed_in: FlaskClient
) -> None:
    path = link_path(invite(client))
    newcomer = app.test_client()
    page = newcomer.get(path)
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    response = newcomer.post(
        path,
        data={
            "password": "a long new password",
            "confirm": "a long new password",
            "csrf_token": csrf_token(newcomer, path),
        },
    )
    assert response.status_code == 302
    assert newcomer.get("/review/").status_code == 200


def test_set_password_link_works_once(
    app: Flask, client: FlaskClient, admin: User, admin_signed_in: FlaskClient
) -> None:
    path = link_path(invite(client))
    first = app.test_client()
    data = {"password": "a long new password", "confirm": "a long new password"}
    first.post(path, data={**data, "csrf_token": csrf_token(first, path)})
    second = app.test_client()
    with nothing_changed():
        response = second.get(path)
    assert response.status_code == 410
    assert "already been used" in response.get_data(as_text=True)


def test_expired_set_password_link_changes_nothing(
    app: Flask, client: FlaskClient, admin: User, admin_signed_in: FlaskClient, clock: FrozenClock
) -> None:
    path = link_path(invite(client))
    clock.advance(hours=72, seconds=1)
    other = app.test_client()
    with nothing_changed():
        response = other.get(path)
    assert response.status_code == 410
    assert "expired" in response.get_data(as_text=True)
    user = User.by_email("new@example.com")
    assert user is not None
    assert user.password_hash is None


def test_unknown_set_password_link_is_refused(client: FlaskClient) -> None:
    with nothing_changed():
        response = client.get("/set-password/not-a-real-token")
    assert response.status_code == 410
    assert "not valid" in response.get_data(as_text=True)


def test_short_password_is_refused_and_link_stays_usable(
    app: Flask, client: FlaskClient, admin: User, admin_signed_in: FlaskClient
) -> None:
    path = link_path(invite(client))
    other = app.test_client()
    data = {"password": "short", "confirm": "short", "csrf_token": csrf_token(other, path)}
    with nothing_changed():
        response = other.post(path, data=data)
    assert response.status_code == 200
    assert "at least 10" in response.get_data(as_text=True)
    assert other.get(path).status_code == 200


def test_new_link_replaces_the_old_one(
    app: Flask, client: FlaskClient, admin: User, admin_signed_in: FlaskClient
) -> None:
    old_path = link_path(invite(client))
    user = User.by_email("new@example.com")
    assert user is not None
    page = f"/admin/people/{user.id}"
    response = client.post(f"{page}/password-link", data={"csrf_token": csrf_token(client, page)})
    new_path = link_path(response)
    assert new_path != old_path
    assert app.test_client().get(old_path).status_code == 410
    assert app.test_client().get(new_path).status_code == 200


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"email": "not-an-email"}, "Invalid email"),
        ({"email": ""}, "This field is required"),
        ({"roles": []}, "Pick at least one role"),
        ({"roles": ["overlord"]}, "not a valid choice"),
        ({"display_name": "x" * 101}, "longer than 100"),
    ],
)
def test_bad_invitations_are_refused_and_create_nothing(
    client: FlaskClient,
    admin: User,
    admin_signed_in: FlaskClient,
    fields: dict[str, Any],
    message: str,
) -> None:
    with nothing_changed():
        response = invite(client, **fields)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(select(User).where(User.email != admin.email)) is None


def test_duplicate_email_is_refused(
    client: FlaskClient, admin: User, admin_signed_in: FlaskClient
) -> None:
    invite(client)
    with nothing_changed():
        response = invite(client, email="NEW@example.com")
    assert response.status_code == 409
    assert "already exists" in response.get_data(as_text=True)


def test_roles_change_is_saved_and_audited(
    client: FlaskClient, admin: User, admin_signed_in: FlaskClient, make_user: MakeUser
) -> None:
    user = make_user(Role.TESTER)
    page = f"/admin/people/{user.id}"
    response = client.post(
        f"{page}/roles",
        data={"roles": ["tester", "reviewer"], "csrf_token": csrf_token(client, page)},
    )
    assert response.status_code == 302
    db.session.refresh(user)
    assert user.roles == {Role.TESTER, Role.REVIEWER}
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "user.roles_changed")
    ).one()
    assert event.actor_id == admin.id
    assert '"after":["reviewer","tester"]' in event.data


def test_last_admin_cannot_lose_admin_role(
    client: FlaskClient, admin: User, admin_signed_in: FlaskClient
) -> None:
    page = f"/admin/people/{admin.id}"
    data = {"roles": ["tester"], "csrf_token": csrf_token(client, page)}
    with nothing_changed():
        response = client.post(f"{page}/roles", data=data)
    assert response.status_code == 400
    assert "At least one active admin" in response.get_data(as_text=True)
    db.session.refresh(admin)
    assert Role.ADMIN in admin.roles


def test_deactivate_and_reactivate(
    client: FlaskClient, admin: User, admin_signed_in: FlaskClient, make_user: MakeUser
) -> None:
    user = make_user(Role.TESTER)
    page = f"/admin/people/{user.id}"
    client.post(f"{page}/active", data={"csrf_token": csrf_token(client, page)})
    db.session.refresh(user)
    assert not user.active
    client.post(f"{page}/active", data={"csrf_token": csrf_token(client, page)})
    db.session.refresh(user)
    assert user.active
    assert actions()[-2:] == ["user.deactivated", "user.reactivated"]


def test_admin_cannot_deactivate_themselves(
    client: FlaskClient, admin: User, admin_signed_in: FlaskClient
) -> None:
    page = f"/admin/people/{admin.id}"
    data = {"csrf_token": csrf_token(client, page)}
    with nothing_changed():
        response = client.post(f"{page}/active", data=data, follow_redirects=True)
    assert "cannot deactivate your own account" in response.get_data(as_text=True)
    db.session.refresh(admin)
    assert admin.active


def test_unknown_person_is_404(
    client: FlaskClient, admin: User, admin_signed_in: FlaskClient
) -> None:
    with nothing_changed():
        assert client.get("/admin/people/9999").status_code == 404


# --- the CLI ------------------------------------------------------------------------------------


def run(app: Flask, *args: str, input: str | None = None) -> Result:
    return app.test_cli_runner().invoke(args=list(args), input=input)


def test_cli_create_with_password_from_stdin(app: Flask) -> None:
    result = run(
        app,
        "users",
        "create",
        "cli@example.com",
        "--role",
        "reviewer",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    user = User.by_email("cli@example.com")
    assert user is not None
    assert user.check_password(PASSWORD)


def test_cli_create_without_password_prints_a_link(app: Flask) -> None:
    result = run(app, "users", "create", "cli@example.com", "--role", "tester")
    assert result.exit_code == 0, result.output
    assert "http://greenlight.test/set-password/" in result.output


def test_cli_refuses_duplicates_and_weak_passwords(app: Flask, make_user: MakeUser) -> None:
    make_user(email="taken@example.com")
    with nothing_changed():
        duplicate = run(app, "users", "create", "taken@example.com", "--role", "tester")
        weak = run(
            app,
            "users",
            "create",
            "weak@example.com",
            "--role",
            "tester",
            "--password-stdin",
            input="short\n",
        )
    assert duplicate.exit_code == weak.exit_code == 1
    assert "already exists" in duplicate.output
    assert "at least 10" in weak.output
    assert User.by_email("weak@example.com") is None


def test_cli_roles_and_deactivate_and_list(app: Flask, make_user: MakeUser) -> None:
    make_user(Role.TESTER, email="p@example.com")
    assert (
        run(
            app, "users", "roles", "p@example.com", "--add", "admin", "--remove", "tester"
        ).exit_code
        == 0
    )
    with nothing_changed():
        assert run(app, "users", "deactivate", "p@example.com").exit_code == 1  # the only admin
    make_user(Role.ADMIN, email="other-admin@example.com")
    assert run(app, "users", "deactivate", "p@example.com").exit_code == 0
    listing = run(app, "users", "list").output
    assert "p@example.com\tadmin\tdeactivated" in listing
    assert "other-admin@example.com\tadmin\tactive" in listing


def test_cli_unknown_email_fails_clearly(app: Flask) -> None:
    with nothing_changed():
        result = run(app, "users", "deactivate", "ghost@example.com")
    assert result.exit_code == 1
    assert "no account for ghost@example.com" in result.output


def test_demo_seed_creates_three_accounts_once(app: Flask) -> None:
    first = run(app, "demo", "seed")
    second = run(app, "demo", "seed")
    assert first.exit_code == second.exit_code == 0
    assert first.output.count("@example.com") == 3
    assert "no demo accounts created" in second.output
    assert len(db.session.scalars(select(User)).all()) == 3
