"""/healthz, and the schema as the migrations build it: constraints and guard triggers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from approval.extensions import db
from approval.models import User

ROOT = Path(__file__).resolve().parent.parent


def test_healthz_reports_ok(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {
        "database": "ok",
        "storage": "ok",
        "queue": "ok",
        "jobs_waiting": 0,
        "worker_heartbeat_age_seconds": None,
    }


def test_healthz_names_failed_storage(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    shutil.rmtree(tmp_path / "storage")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json().items() >= {"database": "ok", "storage": "unreachable"}.items()


def test_healthz_names_failed_database(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(db.session, "execute", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json().items() >= {"database": "unreachable", "storage": "ok"}.items()


def test_audit_log_refuses_update_and_delete(app: Flask, make_user: Callable[..., User]) -> None:
    make_user()  # writes a user.created event
    for statement in ("UPDATE audit_events SET reason = 'edited'", "DELETE FROM audit_events"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            db.session.execute(sa.text(statement))
        db.session.rollback()
    assert db.session.scalar(sa.text("SELECT count(*) FROM audit_events")) == 1


def test_flask_db_upgrade_builds_an_empty_database(database_url: str, tmp_path: Path) -> None:
    """`flask db upgrade` through the real CLI, down to nothing and up again."""
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()
    env = {**os.environ, "GREENLIGHT_DATABASE_URL": database_url, "GREENLIGHT_SECRET_KEY": "k" * 40}
    flask = [sys.executable, "-m", "flask", "--app", "app", "db"]
    for step in (["upgrade"], ["downgrade", "base"], ["upgrade"]):
        done = subprocess.run(
            flask + step,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [*flask, "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
