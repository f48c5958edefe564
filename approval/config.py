"""Configuration: defaults < instance/config.py < GREENLIGHT_* environment variables.

Every setting is read when the app is created, never at import time, and checked once: a bad
value stops start-up with one line that names the setting.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .mail import parse_smtp_url

ENV_PREFIX = "GREENLIGHT_"
SECRET_KEY_FILE = "secret_key"  # noqa: S105  # a file name, not a secret

DEFAULT_REJECTION_CATEGORIES = (
    "likeness: Real person's likeness",
    "sexual: Sexual content",
    "violence: Violence or gore",
    "rights: Rights or trademark",
    "quality: Quality",
    "other: Other",
)


class ConfigError(SystemExit):
    """A setting is unusable. As a SystemExit, it ends start-up with just its message."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"greenlight: {ENV_PREFIX}{setting}: {problem}")

    def __str__(self) -> str:
        return str(self.code)


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected 1/0, true/false, yes/no or on/off, got {value!r}")


def _as_positive_int(value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"must be a positive whole number, got {value!r}")
    return number


def _as_categories(value: Any) -> tuple[tuple[str, str], ...]:
    """Parse "key: Label" items (a list, or one string separated by commas or newlines)."""
    items = value.replace("\n", ",").split(",") if isinstance(value, str) else list(value)
    categories: list[tuple[str, str]] = []
    for item in items:
        if not str(item).strip():
            continue
        key, sep, label = str(item).partition(":")
        key = key.strip().lower()
        if not sep or not key.replace("_", "").isalnum() or not label.strip():
            raise ValueError(f"each category is 'key: Label', got {item!r}")
        categories.append((key, label.strip()))
    if not categories:
        raise ValueError("at least one rejection category is needed")
    return tuple(categories)


def _as_rate_limit(value: Any) -> str:
    """A Flask-Limiter rule such as "5 per minute" or "50/hour", checked at start-up."""
    from limits import parse_many

    rule = str(value).strip()
    try:
        parse_many(rule)
    except ValueError:
        example = '"5 per minute" or "50 per hour"'
        raise ValueError(f"use a rule such as {example}, got {rule!r}") from None
    return rule


def _as_smtp_url(value: Any) -> str:
    """An empty value (no mail) or a URL that mail.parse_smtp_url accepts."""
    url = str(value).strip()
    if url:
        parse_smtp_url(url)
    return url


def _as_queue_url(value: Any) -> str:
    """sqlite:///PATH (SqliteHuey, one machine) or redis://host:port/db (RedisHuey)."""
    url = str(value).strip()
    if not url.startswith(("sqlite:///", "redis://", "rediss://")):
        raise ValueError(f"use sqlite:///PATH or redis://host:6379/0, got {url!r}")
    if url.startswith("sqlite:///") and not url.removeprefix("sqlite:///"):
        raise ValueError("sqlite:/// needs a file path")
    return url


PROVENANCE_MODES = ("off", "show", "require")


def _as_provenance_mode(value: Any) -> str:
    mode = str(value).strip().lower()
    if mode not in PROVENANCE_MODES:
        raise ValueError(f"use off, show or require, got {value!r}")
    return mode


def read_trust_anchors(path: str) -> str:
    """The PEM text of the trust anchors file, checked to hold at least one certificate."""
    from cryptography import x509

    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("C2PA_TRUST_ANCHORS", f"cannot read {path}: {exc}") from None
    try:
        x509.load_pem_x509_certificates(text.encode("ascii"))
    except ValueError:
        raise ConfigError("C2PA_TRUST_ANCHORS", f"{path} holds no PEM certificate") from None
    return text


#: Settings that take a GREENLIGHT_ environment override, and how each is parsed.
PARSERS: dict[str, Callable[[Any], Any]] = {
    "DATABASE_URL": str,
    "STORAGE_URL": str,
    "SECRET_KEY": str,
    "SITE_URL": str,
    "COOKIE_SECURE": _as_bool,
    "RATELIMIT_STORAGE_URL": str,
    "LOGIN_RATE_LIMIT": _as_rate_limit,
    "LOGIN_ADDRESS_RATE_LIMIT": _as_rate_limit,
    "LOGIN_ACCOUNT_RATE_LIMIT": _as_rate_limit,
    "MAX_CLIP_BYTES": _as_positive_int,
    "MAX_CLIP_SECONDS": _as_positive_int,
    "APPROVALS_REQUIRED": _as_positive_int,
    "CLAIM_LEASE_SECONDS": _as_positive_int,
    "REOPEN_WINDOW_SECONDS": _as_positive_int,
    "SHARE_URL_TTL": _as_positive_int,
    "SHARE_RATE_LIMIT": _as_rate_limit,
    "SHARE_PASSPHRASE_RATE_LIMIT": _as_rate_limit,
    "SHARE_PASSPHRASE_LINK_RATE_LIMIT": _as_rate_limit,
    "API_RATE_LIMIT": _as_rate_limit,
    "UPLOAD_RATE_LIMIT": _as_rate_limit,
    "UPLOAD_TICKET_TTL": _as_positive_int,
    "BODY_TIMEOUT": _as_positive_int,
    "REJECTION_CATEGORIES": _as_categories,
    "ALLOW_INDEXING": _as_bool,
    "PROXY_HOPS": int,
    "SMTP_URL": _as_smtp_url,
    "QUEUE_URL": _as_queue_url,
    "QUEUE_IMMEDIATE": _as_bool,
    "JOB_LEASE_SECONDS": _as_positive_int,
    "PROVENANCE": _as_provenance_mode,
    "C2PA_TRUST_ANCHORS": str,
    "C2PA_SIGNING_KEY": str,
    "C2PA_CERT_CHAIN": str,
}


def defaults(instance_path: Path) -> dict[str, Any]:
    """Settings used when nothing else is configured: everything under instance/."""
    return {
        "DATABASE_URL": f"sqlite:///{instance_path / 'greenlight.db'}",
        "STORAGE_URL": (instance_path / "storage").as_uri(),
        "SECRET_KEY": None,
        "SITE_URL": "http://127.0.0.1:5000",
        "COOKIE_SECURE": False,
        "RATELIMIT_STORAGE_URL": "memory://",
        # Failed sign-ins: tight per (account, address) and per address, loose per account, so
        # nobody can lock a real user out by failing on purpose from elsewhere.
        "LOGIN_RATE_LIMIT": "5 per minute",
        "LOGIN_ADDRESS_RATE_LIMIT": "20 per minute",
        "LOGIN_ACCOUNT_RATE_LIMIT": "50 per hour",
        "MAX_CLIP_BYTES": 1 << 30,
        "MAX_CLIP_SECONDS": 120,
        "APPROVALS_REQUIRED": 1,
        "CLAIM_LEASE_SECONDS": 600,
        # How long a reviewer may take back their own verdict (while no share link exists).
        "REOPEN_WINDOW_SECONDS": 600,
        "SHARE_URL_TTL": 300,
        # Per client address over every /s/ URL: enough for a player seeking, not for guessing.
        "SHARE_RATE_LIMIT": "300 per minute",
        # Wrong passphrases: per (link, address), and per link across every address.
        "SHARE_PASSPHRASE_RATE_LIMIT": "5 per minute",
        "SHARE_PASSPHRASE_LINK_RATE_LIMIT": "50 per hour",
        # Per account (an API token counts as its owner): twice what bench/decisions.py's
        # fastest reviewer client sends (about 530 a minute), far below a runaway loop.
        "API_RATE_LIMIT": "1200 per minute",
        # Uploads started and tickets renewed, per account, on the pages and the API together:
        # each start writes a clip and an audit event, and the audit chain takes one at a time.
        "UPLOAD_RATE_LIMIT": "60 per minute",
        "UPLOAD_TICKET_TTL": 3600,
        # Seconds a request body may go silent before the server stops waiting (nginx's
        # client_body_timeout default): without it, a silent client held a thread for good.
        "BODY_TIMEOUT": 60,
        "REJECTION_CATEGORIES": DEFAULT_REJECTION_CATEGORIES,
        "ALLOW_INDEXING": False,
        "PROXY_HOPS": 0,
        "SMTP_URL": "",
        "QUEUE_URL": f"sqlite:///{instance_path / 'queue.db'}",
        # Tests run jobs in the enqueuing process, at once; a deployment never does.
        "QUEUE_IMMEDIATE": False,
        # How long a verification job may hold a clip before the reaper hands it to another
        # worker (a killed worker's clip is picked up again after at most this).
        "JOB_LEASE_SECONDS": 900,
        # Content Credentials: off (not read), show (reviewers see them) or require (a clip
        # without trusted, generated credentials is held out of the queue).
        "PROVENANCE": "show",
        #: A PEM file of the issuers this deployment trusts to sign generated clips.
        "C2PA_TRUST_ANCHORS": "",
        #: The deployment's own ES256 key and certificate chain (PEM files) for signing approvals;
        #: `flask provenance init` makes a development pair.
        "C2PA_SIGNING_KEY": "",
        "C2PA_CERT_CHAIN": "",
        "INVITE_TTL_HOURS": 72,
        "REMEMBER_DAYS": 14,
        "CLOCK": None,
    }


def load(
    instance_path: Path, overrides: Mapping[str, Any] | None, environ: Mapping[str, str]
) -> dict[str, Any]:
    """Merge the layers and parse every setting; raise ConfigError naming a bad one."""
    settings = defaults(instance_path)
    settings.update(_instance_file(instance_path))
    for name in PARSERS:
        if ENV_PREFIX + name in environ:
            settings[name] = environ[ENV_PREFIX + name]
    settings.update(overrides or {})

    for name, parse in PARSERS.items():
        if settings.get(name) is None:
            continue
        try:
            settings[name] = parse(settings[name])
        except (TypeError, ValueError) as exc:
            raise ConfigError(name, str(exc)) from None

    settings["DATABASE_URL"] = _check_database_url(settings["DATABASE_URL"])
    settings["SITE_URL"] = settings["SITE_URL"].rstrip("/")
    if not settings["SITE_URL"].startswith(("http://", "https://")):
        raise ConfigError("SITE_URL", "must start with http:// or https://")
    if not settings["SECRET_KEY"]:
        settings["SECRET_KEY"] = persistent_secret_key(instance_path)
    _check_provenance(settings)
    return settings


def _check_provenance(settings: dict[str, Any]) -> None:
    """Read the trust anchors once; `require` without any could never let a clip through."""
    path = str(settings.get("C2PA_TRUST_ANCHORS") or "").strip()
    settings["C2PA_TRUST_ANCHORS_PEM"] = read_trust_anchors(path) if path else None
    if settings["PROVENANCE"] == "require" and not path:
        raise ConfigError(
            "PROVENANCE", f"require needs {ENV_PREFIX}C2PA_TRUST_ANCHORS (a PEM file of issuers)"
        )
    settings["C2PA_SIGNING_IDENTITY"] = _signing_identity(settings)


def _signing_identity(settings: dict[str, Any]) -> Any:
    """The checked signing key and chain, or None when neither is configured."""
    from .provenance_keys import BadSigningIdentity, load_signing_identity

    key = str(settings.get("C2PA_SIGNING_KEY") or "").strip()
    chain = str(settings.get("C2PA_CERT_CHAIN") or "").strip()
    if not key and not chain:
        return None
    if not chain:
        raise ConfigError("C2PA_CERT_CHAIN", f"needed with {ENV_PREFIX}C2PA_SIGNING_KEY")
    if not key:
        raise ConfigError("C2PA_SIGNING_KEY", f"needed with {ENV_PREFIX}C2PA_CERT_CHAIN")
    try:
        return load_signing_identity(key, chain)
    except BadSigningIdentity as exc:
        raise ConfigError(exc.setting, exc.problem) from None


def _instance_file(instance_path: Path) -> dict[str, Any]:
    """Upper-case names from instance/config.py, if the operator wrote one."""
    path = instance_path / "config.py"
    if not path.exists():
        return {}
    namespace: dict[str, Any] = {"__file__": str(path)}
    exec(compile(path.read_bytes(), str(path), "exec"), namespace)  # noqa: S102  # operator's own config file, like Flask's from_pyfile
    return {key: value for key, value in namespace.items() if key.isupper()}


def _check_database_url(url: str) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("DATABASE_URL", f"not a database URL: {url!r}") from None
    backend = parsed.get_backend_name()
    if backend not in {"sqlite", "postgresql"}:
        raise ConfigError(
            "DATABASE_URL",
            f"unknown scheme {parsed.drivername!r}; use sqlite:///PATH or postgresql://…",
        )
    if backend == "postgresql" and parsed.drivername == "postgresql":
        # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def persistent_secret_key(instance_path: Path) -> str:
    """Read instance/secret_key, creating it (mode 0600) on first start.

    Several workers may start at once: each writes a private temp file and links it into place,
    which fails for all but the first, so every worker ends up reading the same complete key.
    """
    instance_path.mkdir(parents=True, exist_ok=True)
    key_path = instance_path / SECRET_KEY_FILE
    if not key_path.exists():
        fd, temp_name = tempfile.mkstemp(dir=instance_path, prefix=".secret-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
            os.chmod(temp_name, 0o600)
            with contextlib.suppress(FileExistsError):  # another worker won the race
                os.link(temp_name, key_path)
        finally:
            os.unlink(temp_name)
    key = key_path.read_text().strip()
    if len(key) < 32:
        raise ConfigError("SECRET_KEY", f"{key_path} holds too short a key; delete it to renew")
    return key


def rejection_categories() -> dict[str, str]:
    """The configured rejection categories, key → label, in order: the one way to read them."""
    return dict(current_app.config["REJECTION_CATEGORIES"])
