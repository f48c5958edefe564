"""Browser tests: Debian's Chromium, driven by Playwright, against the app on a free local port.

Each test gets a live server for an app made by `app_factory` on the test's own database, with
the storage backend it is parametrised for: the local disk, or S3 through a moto server of its
own that answers cross-origin requests only as the bucket's CORS rule allows. Every step can
save a screenshot under test-artifacts/e2e/, and every page visited can be checked with the
vendored axe-core.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from werkzeug.serving import BaseWSGIServer, make_server

from approval.extensions import db
from approval.models import Clip, Role, User
from approval.ops.people import create_user
from tests.plugins.factories import PASSWORD
from tests.plugins.storage import TEST_REGION, make_s3_url, unique_bucket_name

playwright_api = pytest.importorskip("playwright.sync_api")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # The tests press play from a script; a person's click is what normally allows it.
    "--autoplay-policy=no-user-gesture-required",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "e2e"
AXE_SOURCE = PROJECT_ROOT / "static" / "vendor" / "axe-core" / "axe.min.js"
BACKENDS = ("local", "s3")
#: Impacts that fail a page: axe's "minor" and "moderate" findings are reported, not fatal.
FATAL_IMPACTS = {"serious", "critical"}

_saved: list[Path] = []


# --- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the package; each test opens its own contexts."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    driver = playwright_api.sync_playwright().start()
    try:
        chromium = driver.chromium.launch(
            executable_path=str(CHROMIUM),
            args=LAUNCH_ARGS,
            # Playwright turns the back/forward cache off; people's browsers have it, and it is
            # what brings back a page with a form that was already used.
            ignore_default_args=["--disable-back-forward-cache"],
        )
    except Exception:
        driver.stop()
        raise
    try:
        yield chromium
    finally:
        chromium.close()
        driver.stop()


# --- storage -------------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def cors_moto() -> Iterator[str]:
    """A moto S3 server that answers cross-origin requests only as the bucket's CORS rule allows.

    It is moto's own server (what ThreadedMotoServer runs) with its global allow-every-origin
    CORS turned off. moto reads MOTO_DISABLE_GLOBAL_CORS when it is imported, long before this
    fixture runs, so the flag is set where the server reads it as well as in the environment.
    """
    from moto.moto_server import werkzeug_app

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_DISABLE_GLOBAL_CORS", "true")
        patch.setattr(werkzeug_app, "DISABLE_GLOBAL_CORS", True)
        app = _PostObjectCors(
            werkzeug_app.DomainDispatcherApplication(werkzeug_app.create_backend_app)
        )
        server = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=werkzeug_app.MotoRequestHandler
        )
        thread = threading.Thread(target=server.serve_forever, name="moto-cors", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


class _PostObjectCors:
    """Give moto's answer to a browser's POST-object upload the CORS headers S3 would send.

    moto 5 applies the bucket's CORS rule to the preflight (OPTIONS) and to object GETs and PUTs,
    but answers the POST of a presigned form without any, so the browser would refuse to read
    it. This adds them from the same bucket rule, exactly when S3 would: the Origin matches an
    allowed origin of a rule that allows POST.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        origin = environ.get("HTTP_ORIGIN")
        if environ["REQUEST_METHOD"] != "POST" or not origin:
            return self.app(environ, start_response)
        bucket = environ.get("PATH_INFO", "").strip("/").split("/")[0]
        extra = _bucket_cors_headers(bucket, origin, "POST")

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if not any(name.lower() == "access-control-allow-origin" for name, _ in headers):
                headers = [*headers, *extra]
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def _bucket_cors_headers(bucket: str, origin: str, method: str) -> list[tuple[str, str]]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.exceptions import MissingBucket
    from moto.s3.models import s3_backends
    from moto.s3.utils import cors_matches_origin

    try:
        rules = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_bucket(bucket).cors
    except MissingBucket:
        return []
    for rule in rules:
        if method in (rule.allowed_methods or []) and cors_matches_origin(
            origin, rule.allowed_origins or []
        ):
            headers = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
            if rule.exposed_headers:
                headers.append(("Access-Control-Expose-Headers", ", ".join(rule.exposed_headers)))
            return headers
    return []


# --- the live site -------------------------------------------------------------------------------


class LiveClock:
    """Real time, which a test can move forward (the app's frozen test clock would not tick)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@dataclass
class Site:
    url: str
    app: Flask
    backend: str
    clock: LiveClock
    artifacts: Path
    #: Problems seen in any page: console errors, CSP refusals, unexpected HTTP errors.
    problems: list[str] = field(default_factory=list)
    #: Serious or critical accessibility violations, by page.
    violations: list[str] = field(default_factory=list)
    #: Statuses that are expected answers somewhere in the test (e.g. 410 after a takedown).
    expected_statuses: set[int] = field(default_factory=set)
    contexts: list[Any] = field(default_factory=list)
    _shots: int = 0

    def user(self, *roles: Role, email: str, name: str) -> User:
        """An account with PASSWORD, made directly in the database."""
        with self.app.app_context():
            user = create_user(email, name, roles, actor=None, password=PASSWORD)
            db.session.commit()
            db.session.refresh(user)
            db.session.expunge(user)
        return user

    def clip(self, **where: Any) -> Clip:
        """The newest clip matching these column values, detached from any session."""
        with self.app.app_context():
            clip = db.session.scalar(select(Clip).filter_by(**where).order_by(Clip.id.desc()))
            assert clip is not None, f"no clip where {where}"
            db.session.expunge(clip)
            return clip

    def clip_count(self) -> int:
        with self.app.app_context():
            return db.session.scalar(select(func.count()).select_from(Clip)) or 0

    def new_page(self, browser: Any) -> Any:
        """A page in a fresh context (no cookies), watched for errors."""
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        self.watch(page)
        return page

    def watch(self, page: Any) -> None:
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", self._console)
        page.on("response", self._response)

    def _console(self, message: Any) -> None:
        # A refused resource also shows as an HTTP status, which _response judges.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console: {message.text}")

    def _response(self, response: Any) -> None:
        if response.status < 400 or response.url.endswith("/favicon.ico"):
            return
        if response.status in self.expected_statuses:
            return
        self.problems.append(f"{response.status} {response.request.method} {response.url}")

    def sign_in(self, page: Any, user: User) -> None:
        page.goto(self.url + "/login")
        page.fill("#email", user.email)
        page.fill("#password", PASSWORD)
        with page.expect_navigation():
            page.click("main button[type=submit]")
        assert "/login" not in page.url, f"{user.email} could not sign in"

    def shot(self, page: Any, name: str) -> Path:
        """Save a full-page screenshot of this step, numbered in the order taken."""
        self._shots += 1
        path = self.artifacts / f"{self._shots:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        _saved.append(path)
        return path

    def check_a11y(self, page: Any, name: str) -> list[dict[str, Any]]:
        """Run axe-core on the page as it is; remember serious and critical violations.

        Every finding, whatever its impact, is also written to a11y.txt beside the screenshots.
        """
        _load_axe(page)
        found: list[dict[str, Any]] = page.evaluate(_AXE_RUN)
        with (self.artifacts / "a11y.txt").open("a", encoding="utf-8") as report:
            report.write(f"{name} ({page.url}): {len(found)} finding(s)\n")
            for violation in found:
                line = (
                    f"{violation['id']} ({violation['impact']}): {violation['help']} "
                    f"at {violation['targets']}"
                )
                report.write(f"  {line}\n")
                if violation["impact"] in FATAL_IMPACTS:
                    self.violations.append(f"{name}: {line}")
        return found

    def close(self) -> None:
        for context in self.contexts:
            context.close()


def throttle_uploads(page: Any, bytes_per_second: int) -> None:
    """Slow the page's uploads down through the DevTools protocol, as a slow line would."""
    session = page.context.new_cdp_session(page)
    session.send("Network.enable")
    session.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": bytes_per_second,
        },
    )


def record_progress(page: Any) -> None:
    """Keep every value the upload page's progress bar takes, in window.__progress."""
    page.evaluate(
        """() => {
          window.__progress = [];
          const bar = document.getElementById("upload-bar");
          new MutationObserver(() => window.__progress.push(Number(bar.value)))
            .observe(bar, {attributes: true, attributeFilter: ["value"]});
        }"""
    )


def _load_axe(page: Any) -> None:
    """Put axe into the page. The page's CSP allows only our own scripts, so a <script> tag
    with the source (what page.add_script_tag does) is refused; evaluating the source through
    the DevTools protocol is not subject to the CSP.
    """
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_axe_source())
    assert page.evaluate("() => typeof window.axe === 'object'"), "axe-core did not load"


_AXE_CACHE: dict[str, str] = {}


def _axe_source() -> str:
    if "source" not in _AXE_CACHE:
        # Evaluated as a script, then a value, so Playwright does not take it for a function.
        _AXE_CACHE["source"] = AXE_SOURCE.read_text(encoding="utf-8") + "\n;true"
    return _AXE_CACHE["source"]


_AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.slice(0, 3).map(n => n.target.join(" ")),
  }));
}"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80]


@pytest.fixture
def live_clock() -> LiveClock:
    return LiveClock()


@pytest.fixture
def site_settings() -> dict[str, Any]:
    """Extra settings for the site's app; a test module overrides this fixture to add some."""
    return {}


@pytest.fixture(params=BACKENDS)
def site(
    request: pytest.FixtureRequest,
    app_factory: Callable[..., Flask],
    aws_credentials: None,
    live_clock: LiveClock,
    site_settings: dict[str, Any],
) -> Iterator[Site]:
    """The app on a free port, on this test's database and the backend under test."""
    backend = request.param
    holder: dict[str, Flask] = {}

    def application(environ: dict[str, Any], start_response: Any) -> Any:
        return holder["app"](environ, start_response)

    # Bind first: the site's address is part of the app's settings (links, the CORS rule).
    server: BaseWSGIServer = make_server("127.0.0.1", 0, application, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    if backend == "s3":
        endpoint = request.getfixturevalue("cors_moto")
        storage_url = make_s3_url(unique_bucket_name(), endpoint_url=endpoint, region=TEST_REGION)
    else:
        storage_url = None
    overrides: dict[str, Any] = {"SITE_URL": url, "CLOCK": live_clock, "TESTING": False}
    if storage_url:
        overrides["STORAGE_URL"] = storage_url
    overrides.update(site_settings)
    # app_factory also runs storage().init(cors_origins=[SITE_URL]), as `flask storage init`.
    app = app_factory(**overrides)
    holder["app"] = app
    thread = threading.Thread(target=server.serve_forever, name="live-site", daemon=True)
    thread.start()
    artifacts = ARTIFACTS / _slug(request.node.name)
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir(parents=True)
    site = Site(url=url, app=app, backend=backend, clock=live_clock, artifacts=artifacts)
    try:
        yield site
    finally:
        site.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _saved:
        folders = sorted({path.parent for path in _saved})
        terminalreporter.write_sep("-", "browser screenshots")
        terminalreporter.write_line(
            f"{len(_saved)} screenshots of what the browser tests saw, in {len(folders)} "
            f"folders under {ARTIFACTS.relative_to(PROJECT_ROOT)}/"
        )
        for folder in folders:
            terminalreporter.write_line(f"  {folder}")
