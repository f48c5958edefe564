"""The public side of share links, and making and revoking them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from flask import (
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required
from werkzeug.wrappers import Response as BaseResponse

# The module, not the function: clip views import this package's forms, so it may be half
# loaded when this runs; clip_page is looked up when a request needs it.
from approval.clips import views as clip_views
from approval.clock import utcnow
from approval.delivery import serve_object
from approval.extensions import limiter
from approval.models import ClipStatus
from approval.ops import access, sharing, signing
from approval.ops.served import Media
from approval.ops.sharing import PublicLink
from approval.ops.workflow import InvalidInput
from approval.rate_limits import failures_only
from approval.web import client_address, show_refusal, site_url, storage_origin

from . import bp
from .forms import PassphraseForm, ShareLinkForm

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Page views and media starts are counted once per viewer session and link within this window,
# not per reload or range request.
COUNT_WINDOW_SECONDS = 30 * 60


def _share_limit() -> str:
    return str(current_app.config["SHARE_RATE_LIMIT"])


def _link_key() -> str:
    return sharing.hash_token((request.view_args or {}).get("token", ""))


def _link_and_address_key() -> str:
    return f"{_link_key()}:{client_address()}"


def _unlocking(response: BaseResponse) -> bool:
    """A redirect to the page: the passphrase was right, or the link needs none."""
    return response.status_code == 302


public = limiter.shared_limit(_share_limit, scope="share-links")


def _unlocked(link: PublicLink) -> bool:
    return link.passphrase_hash is None or link.id in session.get("share_unlocked", [])


@bp.route("/s/<token>", methods=["GET", "POST"])
@public
# Wrong passphrases per (link, address), and per link across every address, so guessing from
# many addresses is as slow as from one. Each guess counts as it arrives, so a burst of them
# gets no more through than guesses sent one by one; a right one is given back.
@failures_only("SHARE_PASSPHRASE_RATE_LIMIT", "share-passphrase", _link_and_address_key, _unlocking)
@failures_only("SHARE_PASSPHRASE_LINK_RATE_LIMIT", "share-passphrase-link", _link_key, _unlocking)
def page(token: str) -> BaseResponse | str | tuple[str, int]:
    """The public page: no account needed; a passphrase first if the link has one."""
    link = sharing.find_link(token)
    if not _unlocked(link):
        form = PassphraseForm()
        if form.validate_on_submit():
            if sharing.check_passphrase(link, form.passphrase.data or ""):
                session["share_unlocked"] = [*session.get("share_unlocked", []), link.id][-20:]
                return redirect(url_for("sharing.page", token=token))
            form.passphrase.errors = ["That passphrase is not right."]
            return render_template("sharing/passphrase.html", form=form, token=token), 403
        return render_template("sharing/passphrase.html", form=form, token=token)
    if request.method == "POST":
        return redirect(url_for("sharing.page", token=token))
    sharing.approved_object(link)
    if request.method == "GET":  # a HEAD (link preview probes, monitors) is not a view
        _count_once(link, "share_viewed", sharing.count_page_view)
    return _rendered(SharePage.of(link, token))


@dataclass(frozen=True)
class SharePage:
    """All the public page shows, and so the key its HTML is kept under: the template is
    given this and nothing else of the link or clip."""

    token: str
    title: str
    by: str | None  # the tester's name, if they chose to show it
    width: int | None
    height: int | None
    fps: float | None
    has_poster: bool
    content_type: str
    allow_download: bool
    indexable: bool

    @classmethod
    def of(cls, link: PublicLink, token: str) -> SharePage:
        clip = link.clip
        return cls(
            token=token,
            title=clip.title,
            by=clip.by,
            width=clip.width,
            height=clip.height,
            fps=clip.fps,
            has_poster=clip.poster_key is not None,
            content_type=clip.playback_content_type,
            allow_download=link.allow_download,
            indexable=bool(current_app.config["ALLOW_INDEXING"]),
        )


#: Pages rendered per worker and kept: the same link shows the same HTML until its clip or
#: options change, and rendering it is a tenth of a request. Whether the link still works is
#: decided before this is consulted, on every request.
MAX_KEPT_PAGES = 512


def _rendered(page: SharePage) -> str:
    kept: dict[SharePage, str] = current_app.extensions.setdefault("greenlight_share_pages", {})
    html = kept.get(page)
    if html is None:
        html = render_template(
            "sharing/page.html",
            page=page,
            page_url=site_url("sharing.page", token=page.token),
            poster_url=site_url("sharing.poster", token=page.token),
            media_url=site_url("sharing.media", token=page.token),
        )
        if len(kept) >= MAX_KEPT_PAGES:
            kept.clear()
        kept[page] = html
    return html


def _live_unlocked(token: str) -> PublicLink:
    link = sharing.find_link(token)
    if not _unlocked(link):
        abort(403)
    return link


@bp.get("/s/<token>/media")
@public
def media(token: str) -> Response:
    """The video: 302 to a short-lived storage URL, or the bytes with Range support."""
    link = _live_unlocked(token)
    download = request.args.get("download") == "1"
    if download and not link.allow_download:
        abort(403)
    # Players get what the reviewer watched (the rendition, if one was made); downloads the
    # original. Both are checked against what was approved.
    kind = Media.ORIGINAL if download else Media.PLAYBACK
    if link.clip.signed_key is not None:
        kind = Media.SIGNED  # the copy that carries the approval, for players and downloads
    served = sharing.approved_object(link, kind)
    if request.method == "GET" and _is_media_start():
        _count_once(link, "share_started", sharing.count_media_start)
    return serve_object(
        served.key,
        info=served.info,
        content_type=served.content_type,
        filename=served.filename,
        attachment=download,
    )


def _is_media_start() -> bool:
    """A player's first request has no Range or asks from byte 0; seeks ask from elsewhere."""
    header = request.headers.get("Range", "").replace(" ", "")
    return not header or header.startswith("bytes=0-")


def _count_once(link: PublicLink, name: str, count: Callable[[PublicLink], None]) -> None:
    """Count a view or a start once per viewer session and link within the window.

    As analytics count a visit, not every reload: a viewer who comes back after the window
    counts again. A client that keeps no cookie (a script, a link-preview bot) counts each time.
    """
    counted: dict[str, float] = session.get(name, {})
    now = utcnow().timestamp()
    key = str(link.id)
    if now - counted.get(key, 0) < COUNT_WINDOW_SECONDS:
        return
    counted = {k: v for k, v in counted.items() if now - v < COUNT_WINDOW_SECONDS}
    counted[key] = now
    session[name] = counted
    count(link)


@bp.get("/s/<token>/poster")
@public
def poster(token: str) -> Response:
    """The poster frame, through the same checks as the video."""
    link = _live_unlocked(token)
    sharing.approved_object(link)  # a link whose video changed shows nothing of it, poster neither
    served = sharing.approved_object(link, Media.POSTER)
    return serve_object(served.key, info=served.info, content_type=served.content_type)


@bp.get("/.well-known/greenlight/approvals/<sha256>")
@public
def approval_record(sha256: str) -> tuple[Response, int]:
    """Public, no account: was a signed copy with this SHA-256 approved here, and on what day.

    Says nothing more (no clip, no people), so `greenlight check FILE` can ask it for anyone.
    """
    if not SHA256_HEX.fullmatch(sha256):
        return jsonify(error="give the file's SHA-256: 64 lowercase hex digits"), 400
    day = signing.approved_on(sha256)
    if day is None:
        return jsonify(sha256=sha256, status="unknown"), 404
    return jsonify(sha256=sha256, status="approved", approved_on=day.isoformat()), 200


@bp.after_request
def _public_headers(response: Response) -> Response:
    """Share pages must not leak their token or be indexed, cached or framed."""
    if not request.path.startswith("/s/"):
        return response
    origin = storage_origin()
    extra = f" {origin}" if origin else ""
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; img-src 'self'{extra}; media-src 'self'{extra}; "
        "style-src 'self'; script-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "private, no-store"
    if not current_app.config["ALLOW_INDEXING"]:
        response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


# --- management ----------------------------------------------------------------------------------


@bp.post("/clips/<int:clip_id>/share-links")
@login_required
def create(clip_id: int) -> BaseResponse | str | tuple[str, int]:
    """Make a share link and show its URL, once."""
    clip = access.visible_clip(clip_id, current_user)
    form = ShareLinkForm()
    # Bad options come back on the clip's page, as typed, each error beside its field (422).
    if not form.validate_on_submit():
        if clip.status != ClipStatus.APPROVED:  # no share form on its page to hold the errors
            errors = "; ".join(
                f"{form[name].label.text}: {' '.join(e)}" for name, e in form.errors.items()
            )
            flash(f"The share link was not made. {errors}", "error")
        return clip_views.clip_page(clip, share_form=form), 422
    try:
        link, token = sharing.create_link(
            clip,
            current_user,
            label=form.label.data or "",
            expires_at=form.expires_at(utcnow()),
            passphrase=form.passphrase.data or None,
            allow_download=bool(form.allow_download.data),
        )
    except InvalidInput as exc:
        # The one refusal that names no field is the expiry in the past.
        status = show_refusal(exc, form, default_field="expires_on")
        return clip_views.clip_page(clip, share_form=form), status
    return render_template(
        "sharing/created.html", clip=clip, link=link, url=site_url("sharing.page", token=token)
    )


@bp.post("/share-links/<int:link_id>/revoke")
@login_required
def revoke(link_id: int) -> BaseResponse:
    """Revoke one link; new requests to it get 410 at once."""
    link = sharing.revoke_link(link_id, current_user)
    ttl = current_app.config["SHARE_URL_TTL"]
    flash(
        "The link is revoked: it stops working for every new request now. A video that was "
        f"already playing may go on for up to {ttl // 60 or 1} minute{'s' if ttl >= 120 else ''}.",
        "success",
    )
    return redirect(url_for("clips.detail", clip_id=link.clip_id))
