"""The application factory: settings, extensions, blueprints, CLI and error pages."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.middleware.proxy_fix import ProxyFix

from . import config as config_module
from .config import ConfigError
from .extensions import csrf, db, limiter, login_manager, migrate

__all__ = ["ConfigError", "create_app"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


def create_app(
    overrides: Mapping[str, Any] | None = None,
    *,
    instance_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Flask:
    """Build the app: settings, extensions, blueprints, CLI and error pages."""
    app = Flask(
        # The package's name, not this module's: it names the app and its logger, as before.
        "approval",
        instance_path=os.fspath(instance_path) if instance_path else None,
        instance_relative_config=True,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    settings = config_module.load(instance, overrides, os.environ if environ is None else environ)
    app.config.update(settings)
    _configure_flask(app)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)
    from .web import allow_large_bodies, refuse_overlong_forms

    # Before CSRFProtect reads any request body.
    app.before_request(allow_large_bodies)
    app.before_request(refuse_overlong_forms)
    csrf.init_app(app)
    limiter.init_app(app)
    from . import rate_limits

    rate_limits.install(app)
    from . import inputs

    inputs.install(app)  # after CSRFProtect, before the blueprints add their rules
    _configure_login(app)
    _configure_storage(app)
    _check_database(app)
    from .jobqueue import init_queue

    init_queue(app)

    from .slow_bodies import BodyTimeout

    app.wsgi_app = BodyTimeout(app.wsgi_app, app.config["BODY_TIMEOUT"])  # type: ignore[method-assign]

    if app.config["PROXY_HOPS"]:
        hops = app.config["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops
        )

    from . import admin, auth, clips, home, inbox, review, sharing, unit_of_work
    from .cli import register_cli
    from .error_pages import register_error_handlers
    from .web import register_web_helpers

    for blueprint in (home.bp, auth.bp, admin.bp, clips.bp, review.bp, sharing.bp, inbox.bp):
        app.register_blueprint(blueprint)
    from . import api

    api.init_app(app)
    register_error_handlers(app)
    register_web_helpers(app)
    register_cli(app)
    unit_of_work.install(app)  # last: it wraps every view registered above
    return app


def _configure_flask(app: Flask) -> None:
    """Translate our settings into the keys Flask and its extensions read."""
    cfg = app.config
    secure = cfg["COOKIE_SECURE"]
    remember = timedelta(days=min(cfg["REMEMBER_DAYS"], 14))
    cfg.update(
        SQLALCHEMY_DATABASE_URI=cfg["DATABASE_URL"],
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(cfg["DATABASE_URL"]),
        SESSION_COOKIE_NAME="greenlight_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        PERMANENT_SESSION_LIFETIME=remember,
        # Flask-Login's remember cookie defaults to 365 days, not Secure, no SameSite.
        REMEMBER_COOKIE_NAME="greenlight_remember",
        REMEMBER_COOKIE_DURATION=remember,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=secure,
        RATELIMIT_STORAGE_URI=cfg["RATELIMIT_STORAGE_URL"],
        # Flask-Limiter's X-RateLimit-* cost two trips to the limit store on every request and
        # rewrote our Retry-After as whole seconds left (0 near a window's end); the API writes
        # its own (approval/rate_limits.py), and every 429 keeps the error page's Retry-After.
        RATELIMIT_HEADERS_ENABLED=False,
        # Ordinary forms are small; the upload views raise this for their own requests.
        MAX_CONTENT_LENGTH=1 << 20,
        WTF_CSRF_TIME_LIMIT=None,
    )


def _engine_options(url: str) -> dict[str, Any]:
    if make_url(url).get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 5}}


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """Foreign keys on, and WAL so readers do not block the writer."""
    if type(dbapi_connection).__module__ != "sqlite3":
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _configure_login(app: Flask) -> None:
    from .ops.sessions import user_for_session

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to see that page."
    login_manager.login_message_category = "info"
    # "basic" marks a session non-fresh when the client changes; "strong" would sign people
    # out whenever a phone moves between networks.
    login_manager.session_protection = "basic"

    # The session keeps "<id>:<session token>" (User.get_id), checked on every request: a
    # deactivated account, or one whose sessions were ended, is signed out at once.
    login_manager.user_loader(user_for_session)


def _configure_storage(app: Flask) -> None:
    from .storage import storage_from_url

    try:
        app.extensions["greenlight_storage"] = storage_from_url(app.config["STORAGE_URL"])
    except ValueError as exc:
        raise ConfigError("STORAGE_URL", str(exc)) from None


def _check_database(app: Flask) -> None:
    """Fail start-up at once, with the setting's name, when the database cannot be reached."""
    with app.app_context():
        try:
            db.session.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            shown = make_url(app.config["DATABASE_URL"]).render_as_string(hide_password=True)
            reason = str(exc.orig if getattr(exc, "orig", None) else exc).strip().splitlines()[0]
            raise ConfigError("DATABASE_URL", f"cannot connect to {shown}: {reason}") from None
        finally:
            db.session.remove()
