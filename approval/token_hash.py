"""How every bearer token we hand out is kept: API tokens, password links and share links."""

from __future__ import annotations

import hashlib


def hash_token(token: str) -> str:
    """The token's SHA-256, hex: enough for 256 random bits, which need no salt or slow hash."""
    return hashlib.sha256(token.encode()).hexdigest()
