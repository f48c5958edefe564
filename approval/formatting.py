"""Numbers as people read them."""

from __future__ import annotations


def format_size(size: int) -> str:
    """1.4 GB, 12 MB, 512 bytes: binary units, at most one decimal, no trailing .0."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            if unit == "bytes":
                return f"{size} bytes"
            return f"{value:.1f}".removesuffix(".0") + f" {unit}"
        value /= 1024
    raise AssertionError("unreachable")
