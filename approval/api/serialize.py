"""Database rows as the API's reply models, showing each caller only what they may see."""

from __future__ import annotations

from flask import request

from approval.models import (
    DECIDED_STATES,
    VERIFIED_STATES,
    AuditEvent,
    Clip,
    ClipStatus,
    Decision,
    ShareLink,
    User,
    Verdict,
)
from approval.ops import access, known_bytes
from approval.ops.sharing import is_live
from approval.web import site_url

from . import audit_schemas as aus
from . import schemas as s


def person(user: User) -> s.Person:
    return s.Person(id=user.id, name=user.display_name)


def actor(user: User | None, viewer: User) -> s.Person | None:
    """Who acted, or None where the viewer may not learn it (testers, of reviewers)."""
    if user is None or not access.may_learn_who_acted(viewer, user.id):
        return None
    return person(user)


def clip_url(clip_id: int) -> str:
    return site_url("api.get_clip", clip_id=clip_id)


def next_url(cursor: str | None) -> str | None:
    """The absolute URL of the following page (the request's filters kept), or None at the end."""
    if cursor is None:
        return None
    args = {name: value for name, value in request.args.items() if name != "cursor"}
    args["cursor"] = cursor
    return site_url(str(request.endpoint), **(request.view_args or {}), **args)


def _media(clip: Clip) -> s.Media | None:
    facts = (clip.sha256, clip.width, clip.height, clip.duration_seconds, clip.size_bytes)
    if clip.status not in VERIFIED_STATES or None in facts:
        return None
    return s.Media.model_validate(
        {
            "width": clip.width,
            "height": clip.height,
            "duration": clip.duration_seconds,
            "fps": clip.fps,
            "size": clip.size_bytes,
            "sha256": clip.sha256,
            "container": clip.container,
            "codec": clip.codec,
            "has_audio": clip.has_audio,
            "rendition": (
                {
                    "size": clip.rendition_size,
                    "sha256": clip.rendition_sha256,
                    "codec": clip.rendition_codec,
                }
                if clip.rendition_sha256
                else None
            ),
            "provenance": _provenance(clip),
        }
    )


def _provenance(clip: Clip) -> s.ProvenanceOut | None:
    found = clip.provenance_record
    if found is None:
        return None
    signed = found.signer_name or found.signer_issuer or found.signer_serial
    made = found.generator_name or found.generator_version
    return s.ProvenanceOut(
        state=found.state,  # type: ignore[arg-type]  # one of provenance.STATES
        summary=found.summary(),
        present=found.present,
        valid=found.valid,
        generated=found.generated,
        held=clip.provenance_held,
        digital_source_type=found.digital_source_type,
        signer=s.ProvenanceSigner(
            common_name=found.signer_name,
            issuer=found.signer_issuer,
            serial=found.signer_serial,
            trusted=found.trusted,
        )
        if signed
        else None,
        generator=s.ProvenanceGenerator(name=found.generator_name, version=found.generator_version)
        if made
        else None,
        codes=list(found.codes),
        reason=found.reason,
    )


def _decision(clip: Clip, viewer: User) -> s.FinalDecision | None:
    if clip.status not in DECIDED_STATES or clip.decided_at is None:
        return None
    return s.FinalDecision(
        decision="reject" if clip.status == ClipStatus.REJECTED else "approve",
        category=clip.decision_category,
        reason=clip.decision_reason,
        timecode=clip.decision_timecode,
        decided_at=clip.decided_at,
        decided_by=actor(clip.decided_by, viewer),
    )


def _claim(clip: Clip, viewer: User) -> s.Claim | None:
    if (
        not access.is_staff(viewer)
        or clip.status != ClipStatus.IN_REVIEW
        or clip.claimed_by is None
    ):
        return None
    assert clip.claim_expires_at is not None
    return s.Claim(reviewer=person(clip.claimed_by), expires_at=clip.claim_expires_at)


def _fields(clip: Clip, viewer: User) -> dict[str, object]:
    takedown = None
    if clip.status == ClipStatus.TAKEN_DOWN and clip.taken_down_at and clip.takedown_reason:
        takedown = s.Takedown(reason=clip.takedown_reason, at=clip.taken_down_at)
    return {
        "id": clip.id,
        "url": clip_url(clip.id),
        "title": clip.title,
        "status": clip.status,
        "failure_reason": clip.failure_reason,
        "step": clip.pipeline_label,
        "version": clip.version,
        "previous_version": clip.previous_version_id,
        "tester": person(clip.tester),
        "prompt": clip.prompt,
        "generator": clip.generator,
        "generator_version": clip.generator_version,
        "notes": clip.notes,
        "filename": clip.original_filename,
        "content_type": clip.content_type,
        "created_at": clip.created_at,
        "status_changed_at": clip.status_changed_at,
        "submitted_at": clip.submitted_at,
        "media": _media(clip),
        "decision": _decision(clip, viewer),
        "claim": _claim(clip, viewer),
        "takedown": takedown,
        "dismissed_at": clip.dismissed_at,
    }


def clip_out(clip: Clip, viewer: User) -> s.ClipOut:
    return s.ClipOut.model_validate(_fields(clip, viewer))


def decision_out(decision: Decision, viewer: User) -> s.DecisionOut:
    return s.DecisionOut(
        id=decision.id,
        decision="approve" if decision.verdict == Verdict.APPROVE else "reject",
        category=decision.category,
        reason=decision.reason,
        timecode=decision.timecode,
        played_seconds=decision.played_seconds,
        comment_ids=[comment.id for comment in decision.comments],
        reviewer=actor(decision.reviewer, viewer),
        created_at=decision.created_at,
        reopened_at=decision.reopened_at,
    )


def share_link_out(link: ShareLink, viewer: User) -> s.ShareLinkOut:
    return s.ShareLinkOut(
        id=link.id,
        label=link.label,
        created_at=link.created_at,
        created_by=actor(link.created_by, viewer),
        expires_at=link.expires_at,
        revoked_at=link.revoked_at,
        allow_download=link.allow_download,
        has_passphrase=link.passphrase_hash is not None,
        page_views=link.page_views,
        media_starts=link.media_starts,
        live=is_live(link),
    )


def clip_detail(clip: Clip, viewer: User) -> s.ClipDetail:
    links = clip.share_links if access.can_see(clip, viewer) else []
    return s.ClipDetail.model_validate(
        {
            **_fields(clip, viewer),
            "decisions": [decision_out(d, viewer) for d in clip.decisions],
            "share_links": [share_link_out(link, viewer) for link in links],
            "same_bytes": [
                s.SameBytes(
                    id=match.clip.id,
                    url=clip_url(match.clip.id),
                    title=match.clip.title,
                    status=match.clip.status,
                    tester=person(match.clip.tester),
                    part=match.part.value,
                )
                for match in known_bytes.earlier_copies(clip, viewer)
            ],
        }
    )


def audit_event(event: AuditEvent) -> aus.AuditEventOut:
    return aus.AuditEventOut.model_validate({**event.as_dict(), "hash": event.hash})


def me(user: User) -> s.Me:
    return s.Me(
        id=user.id, email=user.email, display_name=user.display_name, roles=sorted(user.roles)
    )
