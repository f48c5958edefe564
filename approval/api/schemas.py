"""The API's bodies and replies as pydantic models; the OpenAPI document is generated from them.

Here: the shared pieces, errors, people and clips; review, share links and audit have theirs in
review_schemas.py, sharing_schemas.py and audit_schemas.py.

Request models are strict (no "1" for 1, no unknown fields); reply models are what the views
return, so the document and the wire cannot disagree.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)
from pydantic_core import PydanticCustomError

from approval.inputs import MAX_ID
from approval.models import ClipStatus, Role

#: A database id: ids beyond a 32-bit integer cannot exist, and are refused before any query.
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
NO_NUL = r"^[^\x00]*$"


def text(max_length: int, *, min_length: int = 0, strip: bool = False) -> StringConstraints:
    """Bounded length and no NUL characters (no database stores those)."""
    return StringConstraints(
        strip_whitespace=strip, min_length=min_length, max_length=max_length, pattern=NO_NUL
    )


Title = Annotated[str, text(200, min_length=1, strip=True)]
Name = Annotated[str, text(200)]
ShortText = Annotated[str, text(100)]
LongText = Annotated[str, text(4000)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]
Size = Annotated[int, Field(ge=0, le=2**63 - 1)]


#: The start of an ISO 8601 date-time: a date, "T", hours and minutes.
ISO_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def _iso_8601(value: object) -> object:
    """Only ISO 8601 text: pydantic would otherwise read a bare number as Unix seconds."""
    if not isinstance(value, datetime) and (
        not isinstance(value, str) or not ISO_DATE_TIME.match(value)
    ):
        raise PydanticCustomError(
            "iso_8601", "give a date-time in ISO 8601 with a UTC offset, e.g. 2026-11-30T12:00:00Z"
        )
    return value


def _in_range(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range") from None


UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_8601), AfterValidator(_in_range)]


class Body(BaseModel):
    """A request body: strict JSON types, no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    """Query parameters arrive as text, so they are read in lax mode."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)


# --- errors --------------------------------------------------------------------------------------


class FieldError(Out):
    field: str
    """The field or parameter, dotted for nested ones; "(body)" for the body as a whole."""
    message: str


class Problem(Out):
    """An RFC 9457 problem document; conflicts add what the clip is now."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    """What went wrong and what to do about it."""
    errors: list[FieldError] | None = None
    """Each bad field, for validation errors."""
    clip: int | None = None
    current_status: ClipStatus | None = None
    changed_at: datetime | None = None
    changed_by: int | None = None
    """The id of whoever changed the clip last; null for testers unless it was themselves."""


# --- people --------------------------------------------------------------------------------------


class Person(Out):
    id: int
    name: str


class Me(Out):
    id: int
    email: str
    display_name: str
    roles: list[Role]


# --- clips ---------------------------------------------------------------------------------------


class ClipCreate(Body):
    """A clip's details and what is known of its file, before any byte moves."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "title": "Rolling ball",
                    "filename": "ball.mp4",
                    "size": 1048576,
                    "prompt": "a red ball rolls across a wooden table",
                    "generator": "vidgen",
                    "generator_version": "2.1",
                }
            ]
        }
    )

    title: Title
    filename: Annotated[str, text(1000, min_length=1)]
    size: Size
    """The file's size in bytes."""
    prompt: LongText = ""
    generator: Name = ""
    generator_version: ShortText = ""
    notes: LongText = ""
    content_type: ShortText | None = None
    """Optional; if given, it must be the type the filename's extension stands for."""
    sha256: Sha256 | None = None
    """With it, S3 storage hands out a PUT whose signature pins the size and this digest."""
    previous: Id | None = None
    """The id of one's own rejected clip that this upload replaces as a new version."""


class TicketRequest(Body):
    """Optionally the file's size and SHA-256 again, for a ticket that pins both."""

    size: Size | None = None
    sha256: Sha256 | None = None


class UploadTicket(Out):
    """Where and how to send the file's bytes: a presigned S3 POST or PUT, or a PUT to the app."""

    method: Literal["POST", "PUT"]
    url: str
    fields: dict[str, str]
    """Form fields to send before the file, for POST (multipart, file field last)."""
    headers: dict[str, str]
    """Headers to send with a PUT."""
    expires_at: datetime


class Media(Out):
    """What verification measured; plain numbers."""

    width: int
    height: int
    duration: float
    """Seconds."""
    fps: float | None
    size: int
    """Bytes."""
    sha256: str
    container: str | None
    codec: str | None
    has_audio: bool | None
    rendition: Rendition | None
    """The H.264 copy reviewers and share links play, when the original does not play in
    browsers as it is; downloads give the original."""
    provenance: ProvenanceOut | None = None
    """What the file's Content Credentials (C2PA) say; null when they were not read."""


class ProvenanceSigner(Out):
    common_name: str | None
    issuer: str | None
    """The signing certificate's organisation, as C2PA reports it."""
    serial: str | None
    trusted: bool
    """The signer chains to one of this deployment's trust anchors."""


class ProvenanceGenerator(Out):
    name: str | None
    version: str | None


class ProvenanceOut(Out):
    """A clip's Content Credentials as verification read them."""

    state: Literal["absent", "intact", "untrusted", "altered", "invalid", "refused"]
    summary: str
    """The same sentence reviewers read on the review page."""
    present: bool
    valid: bool
    generated: bool
    """The manifest says a machine made the pictures (e.g. trainedAlgorithmicMedia)."""
    held: bool
    """GREENLIGHT_PROVENANCE=require keeps the clip out of the queue until an admin lets it in."""
    digital_source_type: str | None
    signer: ProvenanceSigner | None
    generator: ProvenanceGenerator | None
    codes: list[str]
    """C2PA validation failure codes."""
    reason: str | None
    """Why the credentials were not read (state `refused`)."""


class Rendition(Out):
    size: int
    sha256: str
    codec: str | None


class FinalDecision(Out):
    decision: Literal["approve", "reject"]
    category: str | None
    reason: str | None
    timecode: float | None
    """Seconds into the clip that a rejection points at."""
    decided_at: datetime
    decided_by: Person | None
    """Null for testers: they never learn who reviewed their clip."""


class Claim(Out):
    reviewer: Person
    expires_at: datetime


class Takedown(Out):
    reason: str
    at: datetime


class ClipOut(Out):
    id: int
    url: str
    title: str
    status: ClipStatus
    failure_reason: str | None
    """Why verification refused the file, for `failed` clips."""
    step: str | None
    """While `verifying`: what the check is doing now, in words."""
    version: int
    previous_version: int | None
    tester: Person
    prompt: str
    generator: str
    generator_version: str
    notes: str
    filename: str
    content_type: str
    created_at: datetime
    status_changed_at: datetime
    submitted_at: datetime | None
    media: Media | None
    """Known once the file passed verification."""
    decision: FinalDecision | None
    claim: Claim | None
    """Who is reviewing the clip now (reviewers and admins only)."""
    takedown: Takedown | None
    dismissed_at: datetime | None
    """When the tester put this failed upload out of sight (POST .../dismiss)."""


class DecisionOut(Out):
    id: int
    decision: Literal["approve", "reject"]
    category: str | None
    reason: str | None
    timecode: float | None
    played_seconds: float | None
    """How much of the clip the reviewer's player played (null from the API)."""
    comment_ids: list[int]
    """The clip's comments a rejection points at."""
    reviewer: Person | None
    """Null for testers: they never learn who reviewed their clip."""
    created_at: datetime
    reopened_at: datetime | None
    """When its reviewer undid it (it no longer counts); null for a standing verdict."""


class ShareLinkOut(Out):
    id: int
    label: str
    created_at: datetime
    created_by: Person | None
    """Null for a tester when a reviewer or an admin made the link."""
    expires_at: datetime | None
    revoked_at: datetime | None
    allow_download: bool
    has_passphrase: bool
    page_views: int
    media_starts: int
    live: bool


class SameBytes(Out):
    id: int
    url: str
    title: str
    status: ClipStatus
    tester: Person
    part: Literal["original", "playback_copy"]
    """Which of that clip's files has these bytes: its original, or the copy made for playback."""


class ClipDetail(ClipOut):
    decisions: list[DecisionOut]
    share_links: list[ShareLinkOut]
    """The clip's links, for those who may manage them; the tokens are never shown again."""
    same_bytes: list[SameBytes]
    """Other testers' earlier clips with these very bytes (reviewers and admins; else empty)."""


class ClipCreated(Out):
    id: int
    status: ClipStatus
    url: str
    complete_url: str
    """POST here once the bytes are sent."""
    upload: UploadTicket


class ClipPage(Out):
    items: list[ClipOut]
    next: str | None
    """The next page, or null at the end."""


class ClipQuery(Query):
    status: ClipStatus | None = None
    tester: Id | None = None
    """Only this tester's clips (testers see only their own anyway)."""
    q: Annotated[str, text(200)] | None = None
    """Words that must each appear in the title or the prompt (any case, any order)."""
    tester_name: Annotated[str, text(254)] | None = None
    """Part of the tester's name or email."""
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{4,64}$")] | None = None
    """The start of the clip's SHA-256: 4 to 64 hexadecimal characters."""
    cursor: Annotated[str, Field(max_length=500)] | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50
