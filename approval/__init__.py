"""Greenlight: a pre-publication approval gate for generated video clips.

Importing the package loads nothing of the server, because the `greenlight` client lives in it
too (approval.client) and must start where only its own dependencies are installed. The
factory and its imports load on first use of `create_app` or `ConfigError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ConfigError
    from .factory import create_app

__all__ = ["ConfigError", "create_app"]


def __getattr__(name: str) -> Any:
    """Load the factory (or the config error) when it is first asked for (PEP 562)."""
    if name == "create_app":
        from .factory import create_app

        return create_app
    if name == "ConfigError":
        from .config import ConfigError

        return ConfigError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
