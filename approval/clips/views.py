"""Testers' pages: upload (direct or through the app), My clips, one clip, its media."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click
from flask import (
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from werkzeug.wrappers import Response as BaseResponse

from approval import audit, jobs
from approval.clock import utcnow
from approval.delivery import serve_object
from approval.extensions import csrf, storage
from approval.formatting import format_size
from approval.forms import ActionForm
from approval.inputs import query_id
from approval.media import format_duration
from approval.models import VERIFIED_STATES, Clip, ClipStatus, Role
from approval.ops import access, clip_lists, dismissals, known_bytes, storage_gc, uploads
from approval.ops.errors import Refused
from approval.ops.served import Media, served_object
from approval.ops.workflow import withdraw
from approval.rate_limits import upload_tickets
from approval.sharing.forms import ShareLinkForm
from approval.storage import UploadTicket
from approval.unit_of_work import AfterCommit
from approval.web import app_put_url, roles_required, show_refusal, spooled, undo_refused

from . import bp
from .forms import DirectUploadForm, UploadForm


def _ticket_json(clip: Clip, ticket: UploadTicket) -> dict[str, Any]:
    return {
        "clip": clip.id,
        "upload": {
            "method": ticket.method,
            "url": ticket.url,
            "fields": ticket.fields,
            "headers": ticket.headers,
            "expires_at": ticket.expires_at.isoformat(),
        },
        "ticket_url": url_for("clips.ticket", clip_id=clip.id),
        "complete_url": url_for("clips.complete", clip_id=clip.id),
        "clip_url": url_for("clips.detail", clip_id=clip.id),
    }


def _previous(previous_id: int | None) -> Clip | None:
    return access.own_clip(previous_id, current_user) if previous_id is not None else None


@bp.get("/")
@roles_required(Role.TESTER)
def mine() -> str:
    """The tester's own clips, newest first, a page at a time (keyset on id)."""
    show_dismissed = request.args.get("dismissed") == "1"
    page = clip_lists.own(
        current_user, cursor=request.args.get("cursor"), with_dismissed=show_dismissed
    )
    more = {"dismissed": 1} if show_dismissed else {}
    next_page = url_for("clips.mine", cursor=page.next, **more) if page.next else None
    return render_template(
        "clips/mine.html",
        clips=page.items,
        next_page=next_page,
        show_dismissed=show_dismissed,
        dismissed_count=clip_lists.dismissed_count(current_user),
        action_form=ActionForm(),
    )


@bp.route("/new", methods=["GET", "POST"])
@roles_required(Role.TESTER)
@upload_tickets
def upload() -> BaseResponse | str | tuple[str, int]:
    """The upload form; without JavaScript the file comes with it, spooled where storage is."""
    previous = _previous(query_id("previous"))
    form = UploadForm()
    if previous is not None and not form.is_submitted():
        form.fill_from(previous)
    if not form.validate_on_submit():
        return _upload_page(form, previous, 400 if form.is_submitted() else 200)
    # Without JavaScript one file makes one clip; the page's script sends several one by one.
    files = [f for f in form.file.data or [] if f and f.filename]
    file = files[0] if files else None
    if file is None:
        form.file.errors = ["Choose a video file."]
        return _upload_page(form, previous, 400)
    try:
        clip = uploads.upload_whole(
            current_user,
            spooled(file.stream),
            filename=file.filename,
            previous_id=previous.id if previous is not None else None,
            **_details(form),
        )
    except Refused as exc:
        return _upload_page(form, previous, show_refusal(exc, form, default_field="file"))
    if len(files) > 1:
        flash(
            f"Only the first file, {clip.original_filename}, was uploaded: without JavaScript "
            "the form takes one file at a time. Upload the others the same way.",
            "warning",
        )
    return AfterCommit(lambda: _after_completion(clip))


def _upload_page(form: UploadForm, previous: Clip | None, status: int = 200) -> tuple[str, int]:
    limits = {
        "max_size": format_size(current_app.config["MAX_CLIP_BYTES"]),
        "max_duration": format_duration(current_app.config["MAX_CLIP_SECONDS"]),
    }
    return render_template("clips/upload.html", form=form, previous=previous, **limits), status


def _details(form: UploadForm | DirectUploadForm) -> dict[str, Any]:
    return {
        "title": form.title.data or "",
        "prompt": form.prompt.data or "",
        "generator": form.generator.data or "",
        "generator_version": form.generator_version.data or "",
        "notes": form.notes.data or "",
    }


def _after_completion(clip: Clip) -> BaseResponse:
    if clip.status == ClipStatus.FAILED:
        flash(f"The clip was not accepted: {clip.failure_reason}.", "error")
    elif clip.status == ClipStatus.VERIFYING:
        flash("Upload received. The file is being checked; this page follows along.", "success")
    else:
        flash("Your clip is waiting for review.", "success")
    return redirect(url_for("clips.detail", clip_id=clip.id))


def _status_json(clip: Clip) -> dict[str, Any]:
    return {
        "status": clip.status.value,
        "label": clip.status.label,
        "step": clip.pipeline_label,
        "failure_reason": clip.failure_reason,
        "clip_url": url_for("clips.detail", clip_id=clip.id),
    }


@bp.post("/direct")
@roles_required(Role.TESTER)
@upload_tickets
def start_direct() -> tuple[Response, int]:
    """JavaScript path, step 1: create the clip from its details and hand out a ticket."""
    previous = _previous(query_id("previous"))
    form = DirectUploadForm()
    if not form.validate_on_submit():
        return jsonify(errors=form.errors), 400
    try:
        clip = uploads.create(
            current_user,
            filename=form.filename.data or "",
            size=form.size.data,
            previous_id=previous.id if previous is not None else None,
            **_details(form),
        )
        ticket = uploads.ticket_for(clip, app_put_url=app_put_url)
    except Refused as exc:
        return jsonify(errors={"file": [exc.message]}), undo_refused(exc)
    return jsonify(_ticket_json(clip, ticket)), 201


@bp.post("/<int:clip_id>/ticket")
@roles_required(Role.TESTER)
@upload_tickets
def ticket(clip_id: int) -> Response:
    """A fresh ticket for a retry after a failed or cancelled transfer."""
    clip = access.own_clip(clip_id, current_user)
    return jsonify(_ticket_json(clip, uploads.ticket_for(clip, app_put_url=app_put_url)))


@bp.put("/<int:clip_id>/upload")
@csrf.exempt  # the signed, short-lived ticket in the URL is the credential, as with S3
def receive(clip_id: int) -> tuple[str, int]:
    """Local storage: take the streamed body of a ticketed PUT."""
    clip = uploads.clip_for_ticket(clip_id, request.args.get("ticket", ""))
    # request.stream refuses a declared Content-Length over the limit with 413 before reading.
    # A PUT after "upload done" (or overtaken by it) gets 409 and stores nothing.
    uploads.receive(clip, request.stream)
    return "", 204


@bp.post("/<int:clip_id>/complete")
@roles_required(Role.TESTER)
def complete(clip_id: int) -> Response | BaseResponse:
    """The transfer is done: answer at once (202) while a job checks the bytes."""
    clip = access.own_clip(clip_id, current_user)
    uploads.complete(clip, current_user)
    if request.accept_mimetypes.best == "application/json":
        return AfterCommit(lambda: (jsonify(_status_json(clip)), 202))
    return AfterCommit(lambda: _after_completion(clip))


@bp.get("/<int:clip_id>/status")
@login_required
def status(clip_id: int) -> Response:
    """Where the clip is now; the clip page and My clips poll this while it is verifying."""
    return jsonify(_status_json(access.visible_clip(clip_id, current_user)))


@bp.get("/<int:clip_id>")
@login_required
def detail(clip_id: int) -> str:
    """One clip: player, status, reasons, versions, share links and its own timeline."""
    return clip_page(access.visible_clip(clip_id, current_user))


def clip_page(clip: Clip, *, share_form: ShareLinkForm | None = None) -> str:
    """The clip's page; a share form that came back with errors is shown as it was typed."""
    return render_template(
        "clips/detail.html",
        clip=clip,
        versions=clip.earlier_versions(),
        earlier_copies=known_bytes.earlier_copies(clip, current_user),
        events=audit.clip_timeline(clip.id),
        action_form=ActionForm(),
        playable=clip.status in VERIFIED_STATES,
        links=clip.share_links,
        share_form=share_form or ShareLinkForm(formdata=None),
        now=utcnow(),
    )


@bp.post("/<int:clip_id>/withdraw")
@roles_required(Role.TESTER)
def withdraw_clip(clip_id: int) -> BaseResponse:
    """Withdraw a clip that is still waiting for review."""
    clip = access.own_clip(clip_id, current_user)
    withdraw(clip, current_user)
    flash("The clip is withdrawn.", "success")
    return redirect(url_for("clips.detail", clip_id=clip.id))


@bp.post("/<int:clip_id>/dismiss")
@roles_required(Role.TESTER)
def dismiss(clip_id: int) -> BaseResponse:
    """Put one's own failed upload out of sight in My clips (Show dismissed brings it back)."""
    clip = access.own_clip(clip_id, current_user)
    dismissals.dismiss(clip, current_user)
    flash(f"The failed upload “{clip.original_filename}” is dismissed from My clips.", "success")
    return redirect(url_for("clips.mine"))


@bp.get("/<int:clip_id>/media")
@login_required
def media(clip_id: int) -> Response:
    """What the player shows (the rendition, if one was made) for tester, reviewers, admins."""
    clip = access.visible_clip(clip_id, current_user)
    kind = Media.ORIGINAL if request.args.get("original") == "1" else Media.PLAYBACK
    return _serve(clip, kind)


@bp.get("/<int:clip_id>/poster")
@login_required
def poster(clip_id: int) -> Response:
    """The clip's poster frame."""
    return _serve(access.visible_clip(clip_id, current_user), Media.POSTER)


def _serve(clip: Clip, kind: Media) -> Response:
    served = served_object(clip, kind)
    return serve_object(
        served.key,
        info=served.info,
        content_type=served.content_type,
        filename=served.filename,
        attachment=kind is Media.ORIGINAL,
    )


@bp.cli.command("cleanup")
@click.option("--older-than-hours", default=24, show_default=True, type=click.IntRange(min=1))
def cleanup(older_than_hours: int) -> None:
    """Fail uploads abandoned for longer than this, then delete what no clip needs (storage gc)."""
    count = jobs.cleanup_abandoned(timedelta(hours=older_than_hours))
    click.echo(f"{count} abandoned upload{'s' if count != 1 else ''} cleaned up")
    garbage = storage_gc.collect(storage(), grace=storage_gc.grace_period(), delete=True)
    click.echo(f"{len(garbage)} object{'s' if len(garbage) != 1 else ''} no clip needs deleted")
