"""Where the client keeps the server's URL and the API token: one JSON file, mode 0600."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

#: Overrides the directory (tests and unusual setups); otherwise the platform's config dir.
CONFIG_DIR_ENV = "GREENLIGHT_CONFIG_DIR"
#: Both set: use them instead of the file (CI jobs, containers).
URL_ENV = "GREENLIGHT_URL"
TOKEN_ENV = "GREENLIGHT_TOKEN"  # noqa: S105  # the name of a variable, not a secret
FILE_NAME = "config.json"


class ConfigProblem(Exception):
    """The configuration is missing or unusable; the message says what to do."""


@dataclass(frozen=True)
class Config:
    url: str
    token: str


def config_dir() -> Path:
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override)
    return Path(platformdirs.user_config_dir("greenlight", appauthor=False))


def config_path() -> Path:
    return config_dir() / FILE_NAME


def load() -> Config:
    """The saved (or environment) URL and token; ConfigProblem when there are none."""
    url, token = os.environ.get(URL_ENV), os.environ.get(TOKEN_ENV)
    if url and token:
        return Config(url.rstrip("/"), token)
    path = config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigProblem("Not signed in: run `greenlight login URL` first.") from None
    except (OSError, ValueError) as exc:
        raise ConfigProblem(
            f"Cannot read {path} ({exc}); run `greenlight login URL` again."
        ) from None
    if not isinstance(data, dict) or not data.get("url") or not data.get("token"):
        raise ConfigProblem(f"{path} is incomplete; run `greenlight login URL` again.")
    return Config(str(data["url"]).rstrip("/"), str(data["token"]))


def save(config: Config) -> Path:
    """Write the file atomically, readable by its owner only (the token is a password)."""
    directory = config_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    body = json.dumps({"url": config.url, "token": config.token}, indent=2) + "\n"
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".config-", suffix=".tmp")
    try:
        # mkstemp makes the file 0600 already; chmod says so whatever the platform's default.
        os.chmod(temp, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        path = directory / FILE_NAME
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return path


def forget() -> bool:
    """Delete the saved token; False when there was none."""
    try:
        config_path().unlink()
    except FileNotFoundError:
        return False
    return True
