"""Notifications: the inbox page, its unread count in the header, mail retries and the digest."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("inbox", __name__, url_prefix="/inbox")

from . import cli, views  # noqa: E402, F401  # routes and commands register themselves on bp
