"""Typed models: people and roles, clips and their decisions, share links, the audit log.

State lives in enums stored as constrained strings, and CHECK constraints tie each state to the
data it needs, so a bug in Python cannot leave, say, an approved clip with no decider.
"""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    false,
    select,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .clock import utcnow
from .extensions import db
from .passwords import check_secret, hash_secret
from .provenance import Provenance

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a real bigint.
BigId = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _enum(enum_cls: type[enum.Enum], name: str) -> Enum:
    """A portable enum column: VARCHAR plus a named CHECK, storing the values, not the names."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=20,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Role(enum.StrEnum):
    TESTER = "tester"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class ClipStatus(enum.StrEnum):
    UPLOADING = "uploading"
    VERIFYING = "verifying"
    WAITING = "waiting"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    TAKEN_DOWN = "taken_down"
    FAILED = "failed"

    @property
    def label(self) -> str:
        return _STATUS_LABELS[self]


_STATUS_LABELS = {
    ClipStatus.UPLOADING: "uploading",
    ClipStatus.VERIFYING: "verifying",
    ClipStatus.WAITING: "waiting for review",
    ClipStatus.IN_REVIEW: "in review",
    ClipStatus.APPROVED: "approved",
    ClipStatus.REJECTED: "rejected",
    ClipStatus.WITHDRAWN: "withdrawn",
    ClipStatus.TAKEN_DOWN: "taken down",
    ClipStatus.FAILED: "failed verification",
}

#: States in which the stored bytes have passed verification and their facts are known.
VERIFIED_STATES = (
    ClipStatus.WAITING,
    ClipStatus.IN_REVIEW,
    ClipStatus.APPROVED,
    ClipStatus.REJECTED,
    ClipStatus.WITHDRAWN,
    ClipStatus.TAKEN_DOWN,
)
#: States that carry a final decision by a reviewer.
DECIDED_STATES = (ClipStatus.APPROVED, ClipStatus.REJECTED, ClipStatus.TAKEN_DOWN)


#: What the verification job is doing (`Clip.pipeline_step`), and how the clip's page says it.
#: ingest.py, a plain library, reports the last two by these same names.
STEP_QUEUED = "queued"
STEP_CHECKING = "checking"
STEP_RENDERING = "rendering"
PIPELINE_STEPS = {
    STEP_QUEUED: "waiting for a worker to check the file",
    STEP_CHECKING: "checking the file",
    STEP_RENDERING: "preparing playback",
}


class Verdict(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


def _in(column: str, states: tuple[ClipStatus, ...]) -> str:
    return f"{column} IN ({', '.join(repr(s.value) for s in states)})"


#: The largest id an INTEGER primary key holds: a larger number names no row, and must not reach
#: the database (PostgreSQL fails the query). Audit events (BIGINT) are reached by signed cursors.
MAX_ID = 2**31 - 1


def new_session_token() -> str:
    """A fresh session token: 32 random bytes, URL-safe (never contains the cookie's `|`)."""
    return secrets.token_urlsafe(32)


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Always stored lower-cased and stripped; the login form normalises the same way.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    #: NULL until the invited person sets a password through their one-time link.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Whether public share pages may show this person's display name.
    show_name_publicly: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Reviewers who opted into a daily mail about the queue (count, oldest age).
    wants_queue_digest: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    last_digest_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Part of every session and remember cookie (see get_id); ops/sessions.py replaces it to
    #: end them all. Random rather than a counter, so an old value never comes back. Empty
    #: (a row made outside the app) matches no cookie.
    session_token: Mapped[str] = mapped_column(
        String(64), default=new_session_token, server_default=""
    )

    role_rows: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )

    __table_args__ = (CheckConstraint("email = lower(email)", name="email_lowercase"),)

    @property
    def is_active(self) -> bool:  # type: ignore[override]  # Flask-Login reads this
        return self.active

    def get_id(self) -> str:
        """What Flask-Login keeps in the session and the remember cookie: id and session token.

        Flask-Login's "alternative token": the user loader (ops/sessions.py) accepts a cookie
        only while its token is the account's current one.
        """
        return f"{self.id}:{self.session_token}"

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(row.role for row in self.role_rows)

    def has_role(self, role: Role) -> bool:
        return role in self.roles

    def set_password(self, password: str) -> None:
        self.password_hash = hash_secret(password)

    def check_password(self, password: str) -> bool:
        return self.password_hash is not None and check_secret(self.password_hash, password)

    @classmethod
    def by_email(cls, email: str) -> User | None:
        return db.session.scalar(select(cls).where(cls.email == normalise_email(email)))

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"


def normalise_email(email: str) -> str:
    """Emails compare case-insensitively and without surrounding space."""
    return email.strip().lower()


class UserRole(db.Model):
    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), primary_key=True)

    user: Mapped[User] = relationship(back_populates="role_rows")


class PasswordToken(db.Model):
    """A one-time set-password link (invitation or reset); only the token's SHA-256 is kept."""

    __tablename__ = "password_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    user: Mapped[User] = relationship(foreign_keys=[user_id])


class Clip(db.Model):
    __tablename__ = "clips"

    id: Mapped[int] = mapped_column(primary_key=True)
    tester_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    #: The rejected clip this one replaces; unique, so a rejection is superseded at most once.
    previous_version_id: Mapped[int | None] = mapped_column(ForeignKey("clips.id"), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    title: Mapped[str] = mapped_column(String(200))
    prompt: Mapped[str] = mapped_column(Text, default="")
    generator: Mapped[str] = mapped_column(String(200), default="")
    generator_version: Mapped[str] = mapped_column(String(100), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    #: The uploader's filename, sanitised; metadata only, never part of a storage key.
    original_filename: Mapped[str] = mapped_column(String(255), default="")
    content_type: Mapped[str] = mapped_column(String(100), default="application/octet-stream")

    status: Mapped[ClipStatus] = mapped_column(_enum(ClipStatus, "clip_status"), index=True)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    #: Where upload tickets write (`incoming/…`). Nothing that shows or serves media reads it:
    #: a ticket used again after completion writes into a key nobody reads.
    staging_key: Mapped[str | None] = mapped_column(String(200), unique=True, index=True)
    #: Generated, random object keys only the server writes; the bucket is private. Verification
    #: takes the staged bytes to `storage_key` once, then checks that copy.
    storage_key: Mapped[str] = mapped_column(String(200), unique=True)
    poster_key: Mapped[str | None] = mapped_column(String(200))
    poster_size: Mapped[int | None] = mapped_column(BigInteger)
    poster_etag: Mapped[str | None] = mapped_column(String(200))
    #: An H.264/AAC MP4 made for clips whose original browsers cannot play; reviewers and the
    #: public watch it, downloads still give the original.
    rendition_key: Mapped[str | None] = mapped_column(String(200))
    rendition_size: Mapped[int | None] = mapped_column(BigInteger)
    rendition_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    rendition_etag: Mapped[str | None] = mapped_column(String(200))
    rendition_codec: Mapped[str | None] = mapped_column(String(20))

    #: The verification job's own state: Huey delivers at most once, so the row says whether a
    #: job holds the clip (lease), how often it tried, and what last went wrong.
    pipeline_step: Mapped[str | None] = mapped_column(String(30))
    job_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    job_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    job_error: Mapped[str | None] = mapped_column(Text)

    # Facts recorded by verification. The approval pins these bytes: size, etag and sha256.
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    etag: Mapped[str | None] = mapped_column(String(200))
    container: Mapped[str | None] = mapped_column(String(20))
    codec: Mapped[str | None] = mapped_column(String(20))
    pixel_format: Mapped[str | None] = mapped_column(String(32))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    fps: Mapped[float | None] = mapped_column(Float)
    has_audio: Mapped[bool | None] = mapped_column(Boolean)
    failure_reason: Mapped[str | None] = mapped_column(Text)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When the clip entered the queue; the queue is ordered by it (oldest first).
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decision_category: Mapped[str | None] = mapped_column(String(50))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    #: Seconds into the clip that a rejection points at, if the reviewer gave one.
    decision_timecode: Mapped[float | None] = mapped_column(Float)

    taken_down_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    taken_down_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    takedown_reason: Mapped[str | None] = mapped_column(Text)
    #: When the tester put a failed upload out of sight in My clips; the row and its log stay.
    dismissed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Content Credentials (approval/provenance.py), read by verification; NULL when not read.
    #: The Provenance record as JSON: signer, generator, source type, validation codes.
    provenance: Mapped[str | None] = mapped_column(Text)
    #: Its state, for filtering: absent, intact, untrusted, altered, invalid or refused.
    provenance_state: Mapped[str | None] = mapped_column(
        String(16),
        CheckConstraint(
            "provenance_state IS NULL OR provenance_state IN ('absent', 'intact', 'untrusted', "
            "'altered', 'invalid', 'refused')",
            name="provenance_state_known",
        ),
        index=True,
    )
    #: Under GREENLIGHT_PROVENANCE=require: waiting, but kept out of the queue until an admin
    #: lets it through with a reason (logged).
    provenance_held: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: The approved copy signed with the deployment's C2PA key (GREENLIGHT_C2PA_SIGNING_KEY):
    #: what share links serve once it exists. Its SHA-256 is in the audit chain.
    signed_key: Mapped[str | None] = mapped_column(String(200))
    signed_size: Mapped[int | None] = mapped_column(BigInteger)
    signed_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    signed_etag: Mapped[str | None] = mapped_column(String(200))
    #: JSON: the S3 VersionId of each of the clip's files, by storage, key and ETag, where the
    #: bucket keeps versions. ops/served.py records one the first time it finds the stored object
    #: to be the verified one, then names it in every URL for that file, so that S3 itself serves
    #: those bytes and no others. NULL on disk, without versioning, and until first served.
    object_versions: Mapped[str | None] = mapped_column(Text)

    tester: Mapped[User] = relationship(foreign_keys=[tester_id], lazy="joined")
    claimed_by: Mapped[User | None] = relationship(foreign_keys=[claimed_by_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
    previous_version: Mapped[Clip | None] = relationship(
        remote_side=[id], foreign_keys=[previous_version_id], back_populates="next_version"
    )
    next_version: Mapped[Clip | None] = relationship(
        foreign_keys=[previous_version_id], back_populates="previous_version", uselist=False
    )
    decisions: Mapped[list[Decision]] = relationship(
        back_populates="clip", order_by="Decision.created_at"
    )
    share_links: Mapped[list[ShareLink]] = relationship(
        back_populates="clip", order_by="ShareLink.created_at"
    )

    __table_args__ = (
        CheckConstraint(
            "status <> 'in_review' OR (claimed_by_id IS NOT NULL AND claim_expires_at IS NOT NULL)",
            name="in_review_has_claim",
        ),
        CheckConstraint(
            "status = 'in_review' OR (claimed_by_id IS NULL AND claim_expires_at IS NULL)",
            name="claim_only_in_review",
        ),
        CheckConstraint(
            f"NOT ({_in('status', VERIFIED_STATES)}) OR (sha256 IS NOT NULL AND size_bytes "
            "IS NOT NULL AND width IS NOT NULL AND height IS NOT NULL AND duration_seconds "
            "IS NOT NULL AND submitted_at IS NOT NULL)",
            name="verified_has_facts",
        ),
        CheckConstraint(
            f"NOT ({_in('status', DECIDED_STATES)}) OR "
            "(decided_at IS NOT NULL AND decided_by_id IS NOT NULL)",
            name="decided_has_decider",
        ),
        CheckConstraint(
            "status <> 'rejected' OR (decision_category IS NOT NULL AND decision_reason IS NOT "
            "NULL)",
            name="rejected_has_reason",
        ),
        CheckConstraint(
            "status <> 'taken_down' OR (taken_down_at IS NOT NULL AND taken_down_by_id IS NOT "
            "NULL AND takedown_reason IS NOT NULL)",
            name="taken_down_has_reason",
        ),
        CheckConstraint(
            "status <> 'failed' OR failure_reason IS NOT NULL", name="failed_has_reason"
        ),
        CheckConstraint("version >= 1", name="version_positive"),
        # The queue reads waiting clips oldest first, page by page, with a keyset.
        Index("ix_clips_queue", "status", "submitted_at", "id"),
        # Leases, live and lapsed: only the clips in review, a handful however long the queue,
        # so the counts and a reviewer's current claim read them without walking the waiting
        # clips (SQLite's planner, seeing one status on most rows, would scan the table).
        Index(
            "ix_clips_leases",
            "claim_expires_at",
            "claimed_by_id",
            sqlite_where=text("status = 'in_review'"),
            postgresql_where=text("status = 'in_review'"),
        ),
        Index("ix_clips_tester_newest", "tester_id", "id"),
        CheckConstraint(
            "decided_by_id IS NULL OR decided_by_id <> tester_id", name="no_self_decision"
        ),
    )

    @property
    def provenance_record(self) -> Provenance | None:
        """What verification read of the clip's Content Credentials; None when not read."""
        return Provenance.from_json(self.provenance) if self.provenance else None

    @property
    def playback_content_type(self) -> str:
        """The type of what players are given: the rendition's when there is one."""
        return "video/mp4" if self.rendition_key is not None else self.content_type

    @property
    def pipeline_label(self) -> str | None:
        """What verification is doing now, in the tester's words; None when it is not running."""
        if self.status != ClipStatus.VERIFYING:
            return None
        return PIPELINE_STEPS.get(self.pipeline_step or STEP_QUEUED, PIPELINE_STEPS[STEP_CHECKING])

    def is_owned_by(self, user: User) -> bool:
        return self.tester_id == user.id

    def earlier_versions(self) -> list[Clip]:
        """The versions this one replaced, newest first."""
        versions: list[Clip] = []
        earlier = self.previous_version
        while earlier is not None and len(versions) < 100:  # a guard, not a real limit
            versions.append(earlier)
            earlier = earlier.previous_version
        return versions

    def claim_is_live(self, now: datetime) -> bool:
        return (
            self.status == ClipStatus.IN_REVIEW
            and self.claim_expires_at is not None
            and self.claim_expires_at > now
        )

    def __repr__(self) -> str:
        return f"<Clip {self.id} {self.status.value}>"


class Decision(db.Model):
    """One reviewer's verdict on one clip; with four-eyes review a clip gathers several."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    verdict: Mapped[Verdict] = mapped_column(_enum(Verdict, "verdict"))
    category: Mapped[str | None] = mapped_column(String(50))
    reason: Mapped[str | None] = mapped_column(Text)
    timecode: Mapped[float | None] = mapped_column(Float)
    #: Seconds of the clip the reviewer's player actually played, as the review page reported
    #: it; NULL from the API and older decisions.
    played_seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When its reviewer took it back within the undo window: the verdict stays on record, but
    #: no longer counts, and the reviewer may give a new one.
    reopened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    clip: Mapped[Clip] = relationship(back_populates="decisions")
    reviewer: Mapped[User] = relationship()
    comments: Mapped[list[Comment]] = relationship(
        secondary="decision_comments", order_by="Comment.id"
    )

    __table_args__ = (
        # One standing verdict per reviewer and clip; reopened ones are history.
        Index(
            "uq_decisions_clip_reviewer_standing",
            "clip_id",
            "reviewer_id",
            unique=True,
            sqlite_where=text("reopened_at IS NULL"),
            postgresql_where=text("reopened_at IS NULL"),
        ),
        CheckConstraint(
            "verdict = 'approve' OR (category IS NOT NULL AND reason IS NOT NULL)",
            name="reject_has_reason",
        ),
        CheckConstraint("timecode IS NULL OR timecode >= 0", name="timecode_not_negative"),
    )


#: A comment is a paragraph in the margin, not an essay.
COMMENT_MAX_CHARS = 2000


class Comment(db.Model):
    """A remark on a clip at a moment or over a range (in to out), or a reply in its thread.

    Comments are never edited or deleted: a thread is part of the clip's history, and each one
    is written to the audit log. A reply belongs to its thread's first comment and has no time
    of its own.
    """

    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: The thread's first comment; NULL for that first comment itself.
    thread_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id"), index=True)
    at_seconds: Mapped[float | None] = mapped_column(Float)
    until_seconds: Mapped[float | None] = mapped_column(Float)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    clip: Mapped[Clip] = relationship()
    author: Mapped[User] = relationship(lazy="joined")
    replies: Mapped[list[Comment]] = relationship(order_by="Comment.id")

    __table_args__ = (
        Index("ix_comments_clip_thread", "clip_id", "id"),
        CheckConstraint("at_seconds IS NULL OR at_seconds >= 0", name="comment_at_not_negative"),
        CheckConstraint(
            "until_seconds IS NULL OR (at_seconds IS NOT NULL AND until_seconds > at_seconds)",
            name="comment_range_ordered",
        ),
        CheckConstraint(
            "thread_id IS NULL OR (at_seconds IS NULL AND until_seconds IS NULL)",
            name="reply_has_no_time",
        ),
    )


#: Which comments a rejection points at ("see the comments at 0:03 and 0:07").
decision_comments = db.Table(
    "decision_comments",
    db.Column("decision_id", ForeignKey("decisions.id"), primary_key=True),
    db.Column("comment_id", ForeignKey("comments.id"), primary_key=True),
)


class ShareLink(db.Model):
    """A public link to an approved clip. Only the token's SHA-256 is stored.

    A trigger in the migrations refuses a row for a clip that is not approved, so the rule
    holds even against code that forgets to ask the workflow.
    """

    __tablename__ = "share_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    passphrase_hash: Mapped[str | None] = mapped_column(String(255))
    allow_download: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    page_views: Mapped[int] = mapped_column(Integer, default=0)
    media_starts: Mapped[int] = mapped_column(Integer, default=0)

    clip: Mapped[Clip] = relationship(back_populates="share_links")
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])

    __table_args__ = (
        CheckConstraint(
            "(revoked_at IS NULL) = (revoked_by_id IS NULL)", name="revoked_has_revoker"
        ),
        CheckConstraint("expires_at IS NULL OR expires_at > created_at", name="expiry_after"),
    )


class AuditEvent(db.Model):
    """One entry in the append-only, hash-chained decision log.

    Deliberately free of foreign keys: the log records what happened and must neither block nor
    be blocked by changes elsewhere. Triggers shipped in the migrations refuse UPDATE and DELETE.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: Indexed for the audit page's and export's date filters.
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer, index=True)
    #: The actor's email when the event was written; people may change it later.
    actor_email: Mapped[str | None] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(50), index=True)
    subject_type: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[int | None] = mapped_column(Integer)
    clip_id: Mapped[int | None] = mapped_column(Integer, index=True)
    state_before: Mapped[str | None] = mapped_column(String(20))
    state_after: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    clip_sha256: Mapped[str | None] = mapped_column(String(64))
    #: Canonical JSON of anything else worth keeping (roles changed, link options, address).
    data: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    def as_dict(self) -> dict[str, Any]:
        """The fields that the hash covers, in a JSON-ready form."""
        return {
            "id": self.id,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor_id": self.actor_id,
            "actor_email": self.actor_email,
            "action": self.action,
            "subject_type": self.subject_type,
            "subject_id": self.subject_id,
            "clip_id": self.clip_id,
            "state_before": self.state_before,
            "state_after": self.state_after,
            "reason": self.reason,
            "clip_sha256": self.clip_sha256,
            "data": self.data,
            "prev_hash": self.prev_hash,
        }


class AuditHead(db.Model):
    """A single row naming the chain's last event; updating it first serialises appends."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_event_id: Mapped[int | None] = mapped_column(BigId)
    last_hash: Mapped[str] = mapped_column(String(64))
    event_count: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


class ApiToken(db.Model):
    """A personal API token; only its SHA-256 is kept. It acts with its owner's current roles."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The first characters of the token, so people can tell their tokens apart in lists.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()

    __table_args__ = (
        CheckConstraint("expires_at IS NULL OR expires_at > created_at", name="expiry_after"),
    )


class Notification(db.Model):
    """Something a person should hear about: shown in the app, mailed after the commit."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    clip_id: Mapped[int | None] = mapped_column(ForeignKey("clips.id"))
    #: e.g. clip.approved, clip.rejected, clip.taken_down, queue.digest
    kind: Mapped[str] = mapped_column(String(30))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Mail state: sent once, retried after failures; NULL emailed_at means not sent yet.
    emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    email_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_email_error: Mapped[str | None] = mapped_column(Text)

    user: Mapped[User] = relationship()
    clip: Mapped[Clip | None] = relationship()

    __table_args__ = (
        Index("ix_notifications_user_unread", "user_id", "read_at", "id"),
        Index("ix_notifications_mail_queue", "emailed_at", "id"),
    )
