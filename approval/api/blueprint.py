"""The API blueprint and the registry its operations are declared in."""

from __future__ import annotations

from flask import Blueprint

from .registry import Registry

bp = Blueprint("api", __name__)
#: Every versioned operation lives under /api/v1; the document and docs page sit beside it.
api = Registry(bp, "/api/v1")
