"""The OpenAPI document: valid 3.1, in step with the routes, and honoured by every operation.

Schemathesis generates requests (valid and invalid) for each operation from /api/openapi.json
and calls the app at WSGI level as a tester, a reviewer and an admin: no answer may be a 5xx,
and every answer must match the status codes, content types, headers and schemas documented.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR
from werkzeug.serving import make_server

from approval.api import api
from approval.api.openapi import build
from approval.api.registry import Reply, render
from approval.api.schemas import Me
from approval.extensions import db
from approval.models import Clip, ClipStatus, Role, User
from approval.ops import tokens
from tests.plugins.factories import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass(frozen=True)
class Caller:
    app: Flask
    role: str
    headers: dict[str, str]


@pytest.fixture(params=["tester", "reviewer", "admin"])
def caller(
    request: pytest.FixtureRequest, app_factory: Callable[..., Flask],
    make_user: Callable[..., User], make_clip: Callable[..., Clip],
) -> Caller:  # fmt: skip
    """One of the three roles, with a few clips in different states to find.

    Requests go to a second app on the same database and storage: the `app` fixture holds an
    app context open, and a request inside it would share its `g` with the next one.
    """
    tester = make_user(Role.TESTER)
    make_clip(ClipStatus.WAITING, tester=tester)  # id 1, the documented example
    make_clip(ClipStatus.APPROVED, tester=tester, content=b"\x00" * 1024)
    make_clip(ClipStatus.UPLOADING, tester=tester)
    person = tester if request.param == "tester" else make_user(Role(request.param))
    _, raw = tokens.create(person, name="schemathesis", actor=None)
    db.session.commit()
    return Caller(app_factory(), request.param, {"Authorization": f"Bearer {raw}"})


#: Built from the registry the views run under, as /api/openapi.json serves it (checked below).
schema = schemathesis.openapi.from_dict(build(api))


@schema.parametrize()
@settings(
    max_examples=12,
    database=None,  # no .hypothesis/ directory in the working tree
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case: Any, caller: Caller) -> None:
    case.call_and_validate(app=caller.app, headers=caller.headers, checks=CHECKS)


# --- the document itself ------------------------------------------------------------------------


@pytest.fixture
def document(app: Flask) -> dict[str, Any]:
    return app.test_client().get("/api/openapi.json").get_json()  # type: ignore[no-any-return]


def test_the_served_document_is_the_one_tested(document: dict[str, Any]) -> None:
    assert document == build(api)


def test_the_document_is_openapi_3_1(document: dict[str, Any]) -> None:
    # The OpenAPI 3.1 meta-schema schemathesis ships checks the document's structure...
    OPENAPI_31_VALIDATOR.validate(document)
    assert document["openapi"] == "3.1.0"
    # ...and each model's schema must itself be valid JSON Schema 2020-12, which 3.1 uses.
    for name, model in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid({"$schema": DRAFT_2020_12, **model}), name


def test_every_route_is_documented_and_every_operation_routed(
    app: Flask, document: dict[str, Any]
) -> None:
    routed = {
        (method, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.") and rule.rule.startswith("/api/v1/")
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    }
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert routed == documented
    assert len(documented) == len(api.operations)


def test_every_operation_says_what_it_refuses_and_why(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["summary"], f"{method} {path} has no summary"
            refusals = [code for code in operation["responses"] if code.startswith("4")]
            assert "400" in refusals
            for code in refusals:
                content = operation["responses"][code]["content"]
                assert list(content) == ["application/problem+json"]


def test_every_reply_documents_the_rate_limit_and_every_429_its_wait(
    document: dict[str, Any],
) -> None:
    headers = document["components"]["headers"]
    assert headers["Retry-After"]["required"] is True
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for code, reply in operation["responses"].items():
                named = {ref["$ref"].rsplit("/", 1)[-1] for ref in reply["headers"].values()
                         if "$ref" in ref}  # fmt: skip
                assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= named
                assert ("Retry-After" in named) == (code == "429"), f"{method} {path} {code}"


def test_the_docs_page_runs_without_a_cdn_or_inline_script(app: Flask) -> None:
    response = app.test_client().get("/api/docs")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    sources = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert sources
    for attributes, body in sources:
        assert body.strip() == ""
        assert 'src="/static/' in attributes
    assert "//" not in "".join(re.findall(r'(?:src|href)="([^"]+)"', html)).replace("/api/", "")
    for path in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        asset = app.test_client().get(path)
        asset.close()
        assert asset.status_code == 200


# --- in a real browser ---------------------------------------------------------------------------


@pytest.fixture
def live_url(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


def test_the_docs_page_works_in_chromium_under_the_csp(
    live_url: str, make_user: Callable[..., User]
) -> None:
    """Every operation renders with no error and nothing fetched from elsewhere, and "Try it
    out" sends the CSRF token a signed-in session needs."""
    if not CHROMIUM.exists():
        pytest.skip(f"needs Chromium at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    reviewer = make_user(Role.REVIEWER)
    problems: list[str] = []

    def fetched(request: Any) -> None:
        if not request.url.startswith((live_url, "data:")):
            problems.append(f"fetched {request.url}")

    def answered(response: Any) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            problems.append(f"{response.status} for {response.url}")

    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("pageerror", lambda error: problems.append(str(error)))
            # CSP violations are reported as console errors; failed loads as responses above.
            page.on("console", lambda m: m.type == "error" and "Failed to load" not in m.text
                    and problems.append(m.text))  # fmt: skip
            page.on("request", fetched)
            page.on("response", answered)
            page.goto(f"{live_url}/login")
            page.fill("input[name=email]", reviewer.email)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.goto(f"{live_url}/api/docs")
            page.wait_for_selector(".opblock")
            assert page.locator(".opblock").count() == len(api.operations)
            claim = page.locator("#operations-review-claim_next")
            claim.locator(".opblock-summary").click()
            claim.locator(".try-out__btn").click()
            claim.locator(".execute").click()
            status = claim.locator(".live-responses-table .response .response-col_status")
            status.wait_for()
            assert status.inner_text().strip() == "204"
        finally:
            browser.close()
    assert problems == []


@pytest.mark.parametrize(
    ("status", "body"),
    [(201, None), (200, None), (204, Me(id=1, email="a@b.c", display_name="A", roles=[]))],
)
def test_a_view_cannot_answer_what_its_operation_does_not_declare(status: int, body: Any) -> None:
    """The registry refuses undeclared replies, so the document cannot promise less than views
    send (a refused reply is a 500, which schemathesis above would report)."""
    [operation] = [op for op in api.operations if op.endpoint == "claim_next"]
    with pytest.raises(TypeError, match="which its operation does not declare"):
        render(operation, Reply(status, body))
