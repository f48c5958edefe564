"""`greenlight login | upload | status | share | check | logout`: the console script's commands.

Exit status: 0 when everything asked for succeeded, 1 when any file or call failed (each with
its reason), 2 for a usage problem such as not being signed in.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import requests
from tqdm import tqdm

from . import config
from .api import ApiFailure, Client
from .uploading import Details, Outcome, ProgressFactory, expand, upload_all

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNITS = {"": 86400, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class UsageProblem(Exception):
    """Something the person must fix before the command can run."""


def parse_duration(text: str) -> int | None:
    """'7d', '12h', '30m', '2w', '90s' or a bare number of days as seconds; 'never' as None."""
    if text.strip().lower() in {"never", "none", "0"}:
        return None
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; use e.g. 7d, 12h, 30m, 2w or never"
        )
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def format_size(size: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Left-aligned columns as wide as their widest cell; the last column runs free."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip(), file=out)


def tqdm_progress(enabled: bool | None) -> ProgressFactory:
    """Progress bars with speed on stderr; None: only when stderr is a terminal."""

    def make(label: str, total: int) -> tuple[Callable[[int], object], Callable[[], None]]:
        bar = tqdm(
            total=total,
            desc=label,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=None if enabled is None else not enabled,
            leave=False,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        return bar.update, bar.close

    return make


def _client() -> Client:
    try:
        saved = config.load()
    except config.ConfigProblem as exc:
        raise UsageProblem(str(exc)) from None
    return Client(saved.url, saved.token)


# --- commands ------------------------------------------------------------------------------------


def cmd_login(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageProblem(
            f"{args.url!r} is not a web address; use e.g. https://greenlight.example"
        )
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        print(f"warning: {url} is plain http; the token will travel unencrypted", file=sys.stderr)
    if args.token_stdin or not sys.stdin.isatty():
        token = sys.stdin.readline().strip()
    else:
        print(f"Make a token on your account page: {url}/account/tokens", file=sys.stderr)
        token = getpass.getpass("API token: ").strip()
    if not token:
        raise UsageProblem("no token given")
    me = Client(url, token).get("/api/v1/me")
    path = config.save(config.Config(url, token))
    roles = ", ".join(me.get("roles", [])) or "no roles"
    print(f"Signed in to {url} as {me['email']} ({roles}); token saved in {path}")
    return EXIT_OK


def cmd_logout(args: argparse.Namespace) -> int:
    if config.forget():
        print(f"Forgot the token in {config.config_path()} (it stays valid until revoked).")
    else:
        print("Not signed in.")
    return EXIT_OK


def cmd_upload(args: argparse.Namespace) -> int:
    client = _client()
    prompt = args.prompt or ""
    if args.prompt_file is not None:
        try:
            prompt = Path(args.prompt_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageProblem(f"cannot read the prompt file {args.prompt_file}: {exc}") from None
    details = Details(
        title=args.title,
        prompt=prompt,
        generator=args.generator or "",
        generator_version=args.generator_version or "",
        notes=args.notes or "",
    )
    files, outcomes = expand(args.paths)
    try:
        outcomes += upload_all(client, files, details, tqdm_progress(args.progress))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        _report(outcomes)
        return 130
    _report(outcomes)
    return EXIT_OK if outcomes and all(o.ok for o in outcomes) else EXIT_FAILED


def _report(outcomes: list[Outcome]) -> None:
    if not outcomes:
        return
    rows = [["id", "status", "file", "reason"]]
    rows += [[str(o.clip_id) if o.clip_id else "-", o.status, o.file, o.reason] for o in outcomes]
    table(rows, sys.stdout)


def cmd_status(args: argparse.Namespace) -> int:
    client = _client()
    if args.id is not None:
        clip = client.get(f"/api/v1/clips/{args.id}")
        if args.json:
            print(json.dumps(clip, indent=2))
        else:
            _print_clip(clip)
        return EXIT_OK
    page = client.get("/api/v1/clips", limit=args.limit)
    if args.json:
        print(json.dumps(page["items"], indent=2))
        return EXIT_OK
    if not page["items"]:
        print("No clips yet.")
        return EXIT_OK
    rows = [["id", "status", "title", "reason"]]
    for clip in page["items"]:
        rows.append([str(clip["id"]), clip["status"], clip["title"], _reason(clip)])
    table(rows, sys.stdout)
    return EXIT_OK


def _reason(clip: dict[str, Any]) -> str:
    decision = clip.get("decision") or {}
    takedown = clip.get("takedown") or {}
    return str(clip.get("failure_reason") or takedown.get("reason") or decision.get("reason") or "")


def _print_clip(clip: dict[str, Any]) -> None:
    print(f"Clip {clip['id']}: {clip['title']} (v{clip['version']})")
    print(f"  status:   {clip['status']}")
    print(f"  file:     {clip['filename']} ({clip['content_type']})")
    media = clip.get("media")
    if media:
        fps = f", {media['fps']:.3g} fps" if media.get("fps") else ""
        print(
            f"  media:    {media['width']}x{media['height']}, {media['duration']:.1f} s{fps}, "
            f"{format_size(media['size'])}, sha256 {media['sha256']}"
        )
    if clip.get("failure_reason"):
        print(f"  failed:   {clip['failure_reason']}")
    decision = clip.get("decision")
    if decision:
        where = f" at {decision['timecode']:.1f} s" if decision.get("timecode") is not None else ""
        why = f" ({decision['category']}): {decision['reason']}" if decision.get("reason") else ""
        print(f"  decision: {decision['decision']}{why}{where}")
    if clip.get("takedown"):
        print(f"  taken down: {clip['takedown']['reason']}")
    for link in clip.get("share_links", []):
        state = "live" if link["live"] else "not live"
        expiry = f", expires {link['expires_at']}" if link.get("expires_at") else ""
        print(f"  share link {link['id']}: {state}{expiry}, {link['page_views']} views")


def cmd_share(args: argparse.Namespace) -> int:
    client = _client()
    body: dict[str, Any] = {"expires_in": args.expires, "allow_download": args.allow_download}
    if args.label:
        body["label"] = args.label
    link = client.post(f"/api/v1/clips/{args.id}/share-links", body)
    expiry = f"expires {link['expires_at']}" if link.get("expires_at") else "never expires"
    print(link["url"])
    print(f"share link {link['id']} {expiry}; this URL is shown only now", file=sys.stderr)
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """Was this file (a signed copy) approved by the deployment? Asks its public record only."""
    path = Path(args.file)
    try:
        with path.open("rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        raise UsageProblem(f"cannot read {path}: {exc.strerror or exc}") from None
    if args.server:
        server = args.server.rstrip("/")
    else:
        try:
            server = config.load().url
        except config.ConfigProblem:
            raise UsageProblem("give --server URL, or run `greenlight login URL` first") from None
    try:
        answer = requests.get(f"{server}/.well-known/greenlight/approvals/{digest}", timeout=30)
    except requests.RequestException as exc:
        print(f"greenlight: could not reach {server}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    record = answer.json() if answer.headers.get("Content-Type", "").startswith(
        "application/json"
    ) else {}  # fmt: skip
    if answer.status_code == 200 and record.get("status") == "approved":
        print(f"{path.name}: approved on {record['approved_on']}")
        return EXIT_OK
    if answer.status_code == 404:
        print(f"{path.name}: unknown to {server} (not a copy it approved)")
        return EXIT_FAILED
    print(f"greenlight: {server} answered {answer.status_code}", file=sys.stderr)
    return EXIT_FAILED


# --- entry point ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="greenlight", description="Upload clips to Greenlight and follow their review."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    login = commands.add_parser("login", help="save the server's address and your API token")
    login.add_argument("url", help="the Greenlight address, e.g. https://greenlight.example")
    login.add_argument("--token-stdin", action="store_true", help="read the token from stdin")
    login.set_defaults(run=cmd_login)

    logout = commands.add_parser("logout", help="forget the saved token")
    logout.set_defaults(run=cmd_logout)

    upload = commands.add_parser("upload", help="upload video files (one clip per file)")
    upload.add_argument("paths", nargs="+", metavar="FILE_OR_DIR")
    upload.add_argument("--title", help="the clip's title (default: the file name)")
    prompts = upload.add_mutually_exclusive_group()
    prompts.add_argument("--prompt", help="the prompt that generated the clip")
    prompts.add_argument("--prompt-file", help="read the prompt from this file")
    upload.add_argument("--generator", help="the generator or model, e.g. vidgen")
    upload.add_argument("--generator-version", help="its version, e.g. 2.1")
    upload.add_argument("--notes", help="notes for the reviewer")
    upload.add_argument(
        "--no-progress", dest="progress", action="store_false", default=None,
        help="no progress bars (they show only on a terminal anyway)",
    )  # fmt: skip
    upload.set_defaults(run=cmd_upload)

    status = commands.add_parser("status", help="your clips, or one clip in detail")
    status.add_argument("id", nargs="?", type=int)
    status.add_argument("--limit", type=int, default=50, help="how many clips to list (max 100)")
    status.add_argument("--json", action="store_true", help="print the API's JSON")
    status.set_defaults(run=cmd_status)

    share = commands.add_parser("share", help="make a public link to an approved clip")
    share.add_argument("id", type=int)
    share.add_argument(
        "--expires", type=parse_duration, default=7 * 86400, metavar="DURATION",
        help="e.g. 7d (the default), 12h, 2w, or never",
    )  # fmt: skip
    share.add_argument("--label", help="who or where the link is for")
    share.add_argument("--allow-download", action="store_true")
    share.set_defaults(run=cmd_share)

    check = commands.add_parser(
        "check", help="was this file a copy the deployment approved? (no account needed)"
    )
    check.add_argument("file")
    check.add_argument("--server", help="the Greenlight address (default: the one logged in to)")
    check.set_defaults(run=cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except UsageProblem as exc:
        print(f"greenlight: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApiFailure as exc:
        print(f"greenlight: {exc}", file=sys.stderr)
        for error in exc.field_errors:
            print(f"  {error.get('field')}: {error.get('message')}", file=sys.stderr)
        if exc.status == 401:
            print("  (run `greenlight login URL` with a valid token)", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
