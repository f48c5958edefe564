"""Bodies and replies of the share-link operations (see schemas.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field

from .schemas import (
    Body,
    Out,
    ShortText,
    text,
)


class ShareLinkCreate(Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"label": "press preview", "expires_in": 604800}]}
    )

    label: ShortText = ""
    expires_in: Annotated[int, Field(ge=60, le=365 * 86400)] | None = None
    """Seconds until the link stops working; null or absent: it never expires."""
    passphrase: Annotated[str, text(200, min_length=1)] | None = None
    allow_download: bool = False


class ShareLinkCreated(Out):
    """The new link. Its URL holds the token, which is shown only this once."""

    id: int
    url: str
    expires_at: datetime | None
    label: str
    clip: int
    allow_download: bool
    has_passphrase: bool
