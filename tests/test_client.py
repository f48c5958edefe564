"""The `greenlight` command-line uploader, end to end against a live server on both backends.

The app runs in a werkzeug server thread on a free 127.0.0.1 port with its own database; the
client is called as the console script calls it, so every byte crosses real HTTP: to the app
for local storage, straight to S3 (moto's server) otherwise.
"""

from __future__ import annotations

import ast
import io
import os
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from approval.client import api, cli, config, transfer, uploading
from approval.extensions import db, limiter
from approval.models import Clip, ClipStatus, Role, User, Verdict
from approval.ops import claims, tokens, uploads, workflow
from approval.storage import StorageError, storage_from_url
from tests.plugins.factories import PASSWORD

CLIENT_DIR = Path(cli.__file__).parent
ALLOWED_IMPORTS = {"requests", "platformdirs", "tqdm"}
#: What the server needs and the client must not: installing the client alone leaves them out.
SERVER_PACKAGES = ("flask", "sqlalchemy", "werkzeug", "av", "boto3")


@dataclass
class Live:
    app: Flask
    url: str
    #: Paths of the requests the app served, to show which bytes went where.
    paths: list[str] = field(default_factory=list)


@pytest.fixture(params=["local", "s3"])
def live(
    request: pytest.FixtureRequest, app_factory: Callable[..., Flask], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Live]:  # fmt: skip
    """A live server for this test's database, and a clean client configuration directory."""
    overrides = {}
    if request.param == "s3":
        overrides["STORAGE_URL"] = request.getfixturevalue("moto_server_s3_url")
    app = app_factory(**overrides)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    live = Live(app, f"http://127.0.0.1:{server.server_port}")
    app.config["SITE_URL"] = live.url  # tickets and links must point at this server
    inner = app.wsgi_app

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        live.paths.append(f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}")
        return inner(environ, start_response)

    app.wsgi_app = recording  # type: ignore[method-assign]
    for name in (config.URL_ENV, config.TOKEN_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(config.CONFIG_DIR_ENV, str(tmp_path / "greenlight-config"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with app.app_context():
        yield live
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture
def app(live: Live) -> Flask:
    """The live server's app: factories then write where the server reads (S3 included)."""
    return live.app


@pytest.fixture
def tester(live: Live, make_user: Callable[..., User]) -> User:
    return make_user(Role.TESTER, email="tess@example.com")


def token_for(user: User) -> str:
    _, raw = tokens.create(user, name="cli", actor=None)
    db.session.commit()
    return raw


def run(*argv: str, stdin: str = "", monkeypatch: pytest.MonkeyPatch | None = None) -> int:
    if monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return cli.main(list(argv))


@pytest.fixture
def cli_signed_in(
    live: Live, tester: User, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> User:
    assert run("login", live.url, stdin=token_for(tester) + "\n", monkeypatch=monkeypatch) == 0
    capsys.readouterr()
    return tester


def clips() -> list[Clip]:
    db.session.expire_all()
    return list(db.session.scalars(select(Clip).order_by(Clip.id)))


# --- login ----------------------------------------------------------------------------------------


def test_login_checks_the_token_and_saves_it_owner_only(
    live: Live, tester: User, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = token_for(tester)
    assert run("login", live.url + "/", stdin=raw + "\n", monkeypatch=monkeypatch) == 0
    assert "Signed in to" in capsys.readouterr().out
    path = config.config_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config.load() == config.Config(live.url, raw)
    assert live.paths == ["GET /api/v1/me"]


def test_login_with_a_bad_token_saves_nothing(
    live: Live, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("login", live.url, stdin="glt_" + "x" * 43, monkeypatch=monkeypatch) == 1
    assert "This API token is unknown" in capsys.readouterr().err
    assert not config.config_path().exists()


def test_login_to_nothing_says_it_could_not_connect(
    live: Live, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("login", "http://127.0.0.1:9", stdin="glt_x\n", monkeypatch=monkeypatch) == 1
    assert "could not reach http://127.0.0.1:9" in capsys.readouterr().err


def test_commands_before_login_exit_2(live: Live, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("status") == 2
    assert "run `greenlight login URL` first" in capsys.readouterr().err


# --- upload -------------------------------------------------------------------------------------


def test_upload_a_directory_one_clip_per_video_with_reasons(
    live: Live, cli_signed_in: User, make_video: Callable[..., Path],
    make_media_file: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    folder = tmp_path / "renders"
    make_video("renders/a.mp4", width=320, height=240)
    make_video("renders/b.webm", width=320, height=240)
    make_media_file("text", "renders/c.mp4")
    (folder / "readme.txt").write_text("not a clip")
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("a ball rolling\n")
    code = run(
        "upload", str(folder), "--prompt-file", str(prompt), "--generator", "vidgen",
        "--title", "Batch",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1  # one file failed
    made = clips()
    assert [(c.original_filename, c.status) for c in made] == [
        ("a.mp4", ClipStatus.WAITING), ("b.webm", ClipStatus.WAITING),
        ("c.mp4", ClipStatus.FAILED),
    ]  # fmt: skip
    assert {c.prompt for c in made} == {"a ball rolling"}
    assert made[0].title == "Batch: a"
    lines = out.splitlines()
    assert lines[0].split() == ["id", "status", "file", "reason"]
    assert lines[3].split()[:2] == [str(made[2].id), "failed"]
    assert "not a video container we accept" in lines[3]
    sent_to_app = [p for p in live.paths if p.startswith("PUT /clips/")]
    expected = 3 if live.app.config["STORAGE_URL"].startswith("file:") else 0
    assert len(sent_to_app) == expected  # on S3 the bytes never pass through the app


def test_upload_of_good_files_exits_0(
    live: Live, cli_signed_in: User, make_video: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    path = make_video("single.mov", width=320, height=240)
    assert run("upload", str(path), "--title", "One") == 0
    clip = clips()[0]
    assert (clip.title, clip.status, clip.content_type) == ("One", ClipStatus.WAITING,
                                                           "video/quicktime")  # fmt: skip
    assert re.search(rf"^{clip.id}\s+waiting\s+{path}$", capsys.readouterr().out, re.M)


def test_missing_files_and_refused_names_are_reported(
    live: Live, cli_signed_in: User, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    picture = tmp_path / "picture.png"
    picture.write_bytes(b"\x89PNG")
    assert run("upload", str(tmp_path / "gone.mp4"), str(picture)) == 1
    out = capsys.readouterr().out
    assert "no such file or directory" in out
    assert "Files ending in .png are not accepted" in out
    assert clips() == []


def test_progress_is_reported_for_hashing_and_sending(
    live: Live, cli_signed_in: User, make_video: Callable[..., Path]
) -> None:
    path = make_video(width=320, height=240)
    seen: dict[str, int] = {}

    def progress(label: str, total: int) -> tuple[Callable[[int], object], Callable[[], None]]:
        assert total == path.stat().st_size
        seen[label] = 0

        def update(amount: int) -> None:
            seen[label] += amount

        return update, lambda: None

    saved = config.load()
    client = cli.Client(saved.url, saved.token)
    [outcome] = uploading.upload_all(client, [path], uploading.Details(), progress)
    assert outcome.ok
    assert seen == {f"hashing {path.name}": path.stat().st_size, path.name: path.stat().st_size}


# --- status and share ---------------------------------------------------------------------------


def test_status_lists_clips_and_shows_one(
    live: Live, cli_signed_in: User, make_clip: Callable[..., Clip],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    rejected = make_clip(ClipStatus.REJECTED, tester=cli_signed_in, title="Blurry one")
    assert run("status") == 0
    listing = capsys.readouterr().out
    assert re.search(rf"^{rejected.id}\s+rejected\s+Blurry one\s+Too blurry$", listing, re.M)
    assert run("status", str(rejected.id)) == 0
    detail = capsys.readouterr().out
    assert "decision: reject (quality): Too blurry" in detail
    assert "media:    1920x1080, 2.0 s, 24 fps" in detail


def test_status_of_someone_elses_clip_fails(
    live: Live, cli_signed_in: User, make_clip: Callable[..., Clip],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    clip = make_clip(ClipStatus.WAITING)
    assert run("status", str(clip.id)) == 1
    assert f"There is no clip {clip.id} that you can see." in capsys.readouterr().err


def test_share_prints_a_link_that_works(
    live: Live, cli_signed_in: User, make_clip: Callable[..., Clip],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    clip = make_clip(ClipStatus.APPROVED, tester=cli_signed_in, content=b"\x00" * 2048)
    assert run("share", str(clip.id), "--expires", "2d", "--label", "press") == 0
    captured = capsys.readouterr()
    url = captured.out.strip()
    assert url.startswith(live.url + "/s/")
    assert "expires 2026-12-02T12:00:00Z" in captured.err
    assert live.app.test_client().get(url.removeprefix(live.url)).status_code == 200


def test_share_of_a_clip_in_review_fails_with_the_reason(
    live: Live, cli_signed_in: User, make_clip: Callable[..., Clip],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    clip = make_clip(ClipStatus.IN_REVIEW, tester=cli_signed_in)
    assert run("share", str(clip.id)) == 1
    assert "Only approved clips can be shared; this clip is in review" in capsys.readouterr().err


def test_a_rejected_file_uploaded_again_fails_with_the_reviewers_reason(
    live: Live, cli_signed_in: User, make_user: Callable[..., User],
    make_video: Callable[..., Path], capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    path = make_video(width=320, height=240)
    run("upload", str(path))
    clip = clips()[0]
    reviewer = make_user(Role.REVIEWER)
    claims.claim(clip, reviewer)
    workflow.decide(clip, reviewer, Verdict.REJECT, category="quality", reason="Too dark")
    db.session.commit()
    capsys.readouterr()
    assert run("upload", str(path)) == 1
    assert "already rejected" in capsys.readouterr().out


# --- the client on its own ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("7d", 7 * 86400), ("12h", 43200), ("30m", 1800), ("2w", 14 * 86400), ("3", 3 * 86400),
     ("never", None)],
)  # fmt: skip
def test_durations(text: str, seconds: int | None) -> None:
    assert cli.parse_duration(text) == seconds


def test_the_client_imports_nothing_of_the_web_app() -> None:
    """Only the standard library, requests, platformdirs, tqdm and the client's own modules."""
    for path in CLIENT_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                continue  # the client's own modules
            names = (
                [alias.name for alias in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )  # fmt: skip
            for name in names:
                top = name.split(".")[0]
                assert top in ALLOWED_IMPORTS or top in _stdlib(), f"{path.name} imports {name}"


def _fresh_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run code in a new interpreter that imports this checkout, as the console script would."""
    root = str(CLIENT_DIR.parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=60
    )


def test_importing_the_client_loads_no_server_package() -> None:
    """The package's __init__ is lazy, so the client does not pay for Flask and SQLAlchemy."""
    result = _fresh_python(
        "import sys, approval.client.cli\n"
        f"print(sorted(m for m in {SERVER_PACKAGES!r} if m in sys.modules))"
    )
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr


def test_the_client_runs_where_no_server_package_is_installed() -> None:
    """With the server's packages unimportable, as on a machine that has only the client."""
    result = _fresh_python(
        "import importlib.abc, sys\n"
        "class Missing(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.partition('.')[0] in {SERVER_PACKAGES!r}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Missing())\n"
        "from approval.client.cli import main\n"
        "main(['--help'])\n"
    )
    assert (result.returncode, "usage: greenlight" in result.stdout) == (0, True), result.stderr


def _stdlib() -> frozenset[str]:
    return frozenset(sys.stdlib_module_names) | {"__future__"}


def test_the_storage_service_never_sees_the_api_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: dict[str, Any] = {}

    class Answer:
        status_code = 200

    def fake_request(method: str, url: str, **kwargs: Any) -> Answer:
        sent.update(kwargs["headers"], body=b"".join(kwargs["data"]))
        return Answer()

    monkeypatch.setattr("approval.client.transfer.requests.request", fake_request)
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"12345")
    ticket = {"method": "PUT", "url": "https://s3.example/x", "headers": {
        "Content-Type": "video/mp4", "Content-Length": "5"}}  # fmt: skip
    uploading.send(ticket, path, 5, "video/mp4", lambda n: None)
    assert sent == {"Content-Type": "video/mp4", "body": b"12345"}


def test_the_config_dir_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(config.CONFIG_DIR_ENV, str(tmp_path / "elsewhere"))
    config.save(config.Config("https://g.example", "glt_abc"))
    assert (tmp_path / "elsewhere" / "config.json").exists()
    assert stat.S_IMODE(os.stat(tmp_path / "elsewhere").st_mode) == 0o700


def test_login_sign_in_password_is_not_a_token(
    live: Live, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("login", live.url, stdin=PASSWORD + "\n", monkeypatch=monkeypatch) == 1
    assert "not a Greenlight API token" in capsys.readouterr().err


def test_logout_forgets_the_token(
    live: Live, cli_signed_in: User, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("logout") == 0
    assert not config.config_path().exists()
    assert run("status") == 2


def test_a_presigned_post_is_streamed_as_a_multipart_form(
    moto_server_s3_url: str, tmp_path: Path
) -> None:
    """Servers that hand out S3 POST forms (no digest declared) get the file as the last field."""
    store = storage_from_url(moto_server_s3_url)
    store.init(cors_origins=[])
    ticket = store.presigned_post(
        "clips/ab/form", content_type="video/mp4", max_bytes=1 << 20, expires_in=60
    )
    assert ticket is not None
    path = tmp_path / "clip name.mp4"
    path.write_bytes(bytes(range(256)) * 40)
    sent: list[int] = []
    as_json = {"method": ticket.method, "url": ticket.url, "fields": ticket.fields}
    transfer.send(as_json, path, path.stat().st_size, "video/mp4", sent.append)
    assert sum(sent) == path.stat().st_size
    assert b"".join(store.read("clips/ab/form")) == path.read_bytes()
    assert store.head("clips/ab/form").content_type == "video/mp4"


# --- busy servers ---------------------------------------------------------------------------------


@dataclass
class Busy:
    """A client against a server that lets two API calls a second, with what it told the user."""

    client: api.Client
    notices: list[str] = field(default_factory=list)


@pytest.fixture
def busy(live: Live, tester: User) -> Iterator[Busy]:
    live.app.config["API_RATE_LIMIT"] = "2 per second"
    busy = Busy(api.Client(live.url, token_for(tester)))
    busy.client.notice = busy.notices.append
    yield busy
    limiter.reset()


@pytest.mark.parametrize("live", ["local"], indirect=True)
def test_a_rate_limited_call_is_sent_again_after_retry_after(busy: Busy) -> None:
    for _ in range(4):  # the third and fourth are limited, then pass a second later
        assert busy.client.get("/api/v1/me")["email"] == "tess@example.com"
    assert busy.notices, "no call was limited"
    for notice in busy.notices:
        assert re.fullmatch(
            r"http://\S+ answered 429 TOO MANY REQUESTS; trying again in 1 s", notice
        )


@pytest.mark.parametrize("live", ["local"], indirect=True)
def test_a_long_retry_after_fails_at_once_with_the_servers_reason(live: Live, busy: Busy) -> None:
    live.app.config["API_RATE_LIMIT"] = "1 per hour"
    waits: list[float] = []
    busy.client.sleep = waits.append
    busy.client.get("/api/v1/me")
    with pytest.raises(api.ApiFailure) as failure:
        busy.client.get("/api/v1/me")
    assert failure.value.status == 429
    assert "in about an hour" in failure.value.detail, failure.value.detail
    assert waits == []
    assert busy.notices == []


@pytest.mark.parametrize("live", ["local"], indirect=True)
def test_a_service_that_stays_away_is_tried_three_more_times_then_reported(
    live: Live, busy: Busy, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    busy.client.sleep = waits.append
    monkeypatch.setitem(live.app.config, "API_RATE_LIMIT", "1000 per second")

    def away(*_: Any, **__: Any) -> Any:
        raise StorageError("storage test: connection refused")

    monkeypatch.setattr(uploads, "create", away)
    with pytest.raises(api.ApiFailure) as failure:
        busy.client.post("/api/v1/clips", {"title": "t", "filename": "a.mp4", "size": 10})
    assert failure.value.status == 503
    assert len(waits) == 3
    assert all(29 <= wait <= 30 for wait in waits), waits  # Flask-Limiter rounds its header down
    assert len(busy.notices) == 3
