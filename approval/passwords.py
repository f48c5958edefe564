"""Hashing of passwords and share-link passphrases, in one place and at one cost."""

from __future__ import annotations

import secrets
from functools import cache

from flask import current_app, has_app_context
from werkzeug.security import check_password_hash, generate_password_hash

DEFAULT_METHOD = "scrypt"  # werkzeug's default cost: n=32768, r=8, p=1


def _method() -> str:
    if has_app_context():
        return str(current_app.config.get("PASSWORD_HASH_METHOD", DEFAULT_METHOD))
    return DEFAULT_METHOD


def hash_secret(secret: str) -> str:
    return generate_password_hash(secret, method=_method())


def check_secret(hashed: str, secret: str) -> bool:
    return check_password_hash(hashed, secret)


def spend_equal_time(secret: str) -> None:
    """Check against a throwaway hash, so an unknown account costs what a known one does."""
    check_password_hash(_dummy_hash(_method()), secret)


@cache
def _dummy_hash(method: str) -> str:
    return generate_password_hash(secrets.token_hex(16), method=method)
