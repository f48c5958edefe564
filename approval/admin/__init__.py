"""Admin pages: people and roles (the audit log and takedowns join later)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from . import audit_views  # noqa: E402, F401, I001  # the decision log's pages
from . import clip_views  # noqa: E402, F401  # the clip browser and takedowns
from . import views  # noqa: E402, F401  # routes register themselves on bp
