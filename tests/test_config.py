"""Configuration layers, zero-config defaults and start-up refusal of bad settings."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from approval import ConfigError, create_app

ROOT = Path(__file__).resolve().parent.parent


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_zero_config_uses_sqlite_and_local_storage_under_instance(tmp_path: Path) -> None:
    app = create_app(instance_path=tmp_path, environ={})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'greenlight.db'}"
    assert app.config["STORAGE_URL"] == (tmp_path / "storage").as_uri()


def test_secret_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    first = create_app(instance_path=tmp_path, environ={}).config["SECRET_KEY"]
    second = create_app(instance_path=tmp_path, environ={}).config["SECRET_KEY"]
    key_file = tmp_path / "secret_key"
    assert first == second
    assert len(first) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_environment_overrides_instance_file_which_overrides_defaults(tmp_path: Path) -> None:
    (tmp_path / "config.py").write_text("MAX_CLIP_SECONDS = 30\nAPPROVALS_REQUIRED = 2\n")
    app = create_app(instance_path=tmp_path, environ={"GREENLIGHT_APPROVALS_REQUIRED": "3"})
    assert app.config["MAX_CLIP_SECONDS"] == 30
    assert app.config["APPROVALS_REQUIRED"] == 3


def test_secret_key_from_environment_is_used_and_no_file_written(tmp_path: Path) -> None:
    app = create_app(instance_path=tmp_path, environ={"GREENLIGHT_SECRET_KEY": "s" * 40})
    assert app.config["SECRET_KEY"] == "s" * 40
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("GREENLIGHT_DATABASE_URL", "mysql://x@localhost/db", "unknown scheme"),
        ("GREENLIGHT_DATABASE_URL", "not a url", "not a database URL"),
        ("GREENLIGHT_STORAGE_URL", "ftp://example.com/clips", "ftp"),
        ("GREENLIGHT_STORAGE_URL", "file://relative/path", "STORAGE_URL"),
        ("GREENLIGHT_COOKIE_SECURE", "maybe", "expected 1/0"),
        ("GREENLIGHT_MAX_CLIP_BYTES", "lots", "invalid literal"),
        ("GREENLIGHT_APPROVALS_REQUIRED", "0", "positive"),
        ("GREENLIGHT_SITE_URL", "greenlight.example", "http"),
        ("GREENLIGHT_REJECTION_CATEGORIES", "no-colon-here", "key: Label"),
        ("GREENLIGHT_LOGIN_ACCOUNT_RATE_LIMIT", "fifty an hour", "5 per minute"),
    ],
)
def test_bad_setting_stops_start_up_naming_the_setting(
    tmp_path: Path, variable: str, value: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        create_app(instance_path=tmp_path, environ={variable: value})
    message = str(caught.value)
    assert variable in message
    assert words in message
    assert "\n" not in message


def test_unreachable_database_stops_start_up(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/nothing"
    with pytest.raises(ConfigError, match="GREENLIGHT_DATABASE_URL: cannot connect"):
        create_app(instance_path=tmp_path, environ={"GREENLIGHT_DATABASE_URL": url})


def test_bad_setting_prints_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GREENLIGHT_DATABASE_URL": "oracle://x/y",
        "GREENLIGHT_SECRET_KEY": "k" * 40,
    }
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "users", "list"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("greenlight: GREENLIGHT_DATABASE_URL")
    assert "Traceback" not in done.stderr


def test_remember_cookie_is_capped_at_14_days(tmp_path: Path) -> None:
    app = create_app({"REMEMBER_DAYS": 365}, instance_path=tmp_path, environ={})
    assert app.config["REMEMBER_COOKIE_DURATION"].days == 14
    assert app.config["REMEMBER_COOKIE_SAMESITE"] == "Lax"
    assert app.config["REMEMBER_COOKIE_HTTPONLY"] is True


def test_cookie_secure_setting_applies_to_both_cookies(tmp_path: Path) -> None:
    app = create_app(instance_path=tmp_path, environ={"GREENLIGHT_COOKIE_SECURE": "1"})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["REMEMBER_COOKIE_SECURE"] is True
