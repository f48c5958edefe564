"""No input a client can write answers 5xx: every route and every form, fed hostile values.

The walk is built from `app.url_map`, so a new route is walked without being listed here. For
each role (and anonymous) it first reads every GET page with real ids from seeded data and
collects the HTML forms and links it is shown; then it sends every method each route allows
with a NUL character, 10,000 characters, an integer no column holds and a date past the last
day in each path parameter, each query parameter and each form field the route reads. The
fields come from the forms on the pages, from the WTForms classes its view builds and from the
names its module reads off `request`; the API's come from its declared query and body models.
"""

from __future__ import annotations

import inspect
import io
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.exceptions import HTTPException
from werkzeug.routing import AnyConverter, IntegerConverter, MapAdapter, Rule
from wtforms import Form
from wtforms.fields.core import UnboundField

from approval.api import api
from approval.api.registry import IdConverter
from approval.extensions import db, limiter
from approval.models import ClipStatus, Notification, Role, User
from approval.ops import comments, people, sharing, tokens
from tests.plugins.factories import PASSWORD, FrozenClock
from tests.plugins.web import csrf_token

MakeUser = Callable[..., User]

#: What a client can send that no database column holds, each in every place in turn.
HOSTILE: dict[str, str] = {
    "a NUL character": "before\x00after",
    "10,000 characters": "x" * 10_000,
    "an out-of-range integer": "99999999999999999999",
    "an out-of-range date": "9999-12-31",
}
#: Path integers beyond any INTEGER id, just past it and far past it.
HOSTILE_PATH_INTS = ("2147483648", "99999999999999999999")
#: JSON bodies also get the out-of-range integer as a number, not a string.
HOSTILE_JSON: dict[str, Any] = {**HOSTILE, "an out-of-range JSON integer": 99999999999999999999}
#: Query parameters worth trying on every page that lists: paging cursors, old and new.
PAGING_PARAMS = ("cursor", "before", "after")
WHO = ("anonymous", "tester", "reviewer", "admin")
READ_NAMES = re.compile(r"request\.(?:args|form|values|files)\.get(?:list)?\(\s*\"(\w+)\"")
BUILT_FORMS = re.compile(r"\b([A-Z]\w*Form)\(")
ARGUMENT = re.compile(r"<(?:[^<>]*:)?(\w+)>")


@pytest.fixture
def app(app_factory: Callable[..., Flask]) -> Iterator[Flask]:
    """Rate limits off: the walk's hostile sign-ins would soon meet 429 instead of the view.

    The limiter is one object for every app and keeps `enabled` from the last app it was bound
    to, so the later tests get it back as it was.
    """
    enabled = limiter.enabled
    app = app_factory(RATELIMIT_ENABLED=False)
    try:
        with app.app_context():
            yield app
    finally:
        limiter.enabled = enabled


# --- the seeded world ----------------------------------------------------------------------------


@dataclass
class World:
    """Real rows to put in paths, by the name of the path parameter."""

    people: dict[str, User]
    ids: dict[str, list[str]] = field(default_factory=dict)


@pytest.fixture
def world(
    app: Flask, make_user: MakeUser, make_clip: Callable[..., Any], clock: FrozenClock
) -> World:
    """One of everything a path can name: clips in each state, links, tokens, notifications."""
    tester = make_user(Role.TESTER, email="tess@example.com")
    other = make_user(Role.TESTER, email="otto@example.com")
    reviewer = make_user(Role.REVIEWER, email="rita@example.com")
    admin = make_user(Role.ADMIN, email="admin@example.com")
    invited = make_user(Role.TESTER, email="ivy@example.com")
    decider = make_user(Role.REVIEWER, email="dora@example.com")
    clips = {
        status: make_clip(status, tester=tester, reviewer=decider, admin=admin, content=b"mp4")
        for status in (
            ClipStatus.UPLOADING,
            ClipStatus.WAITING,
            ClipStatus.APPROVED,
            ClipStatus.REJECTED,
            ClipStatus.TAKEN_DOWN,
        )
    }
    # The walking reviewer holds this one, so the review page and its forms are theirs.
    clips[ClipStatus.IN_REVIEW] = make_clip(ClipStatus.IN_REVIEW, tester=tester, reviewer=reviewer)
    foreign = make_clip(ClipStatus.WAITING, tester=other)
    approved = clips[ClipStatus.APPROVED]
    link, share_token = sharing.create_link(approved, tester, allow_download=True)
    guarded, guarded_token = sharing.create_link(
        approved, tester, passphrase="open sesame", expires_at=clock.now + timedelta(days=3)
    )
    password_token = people.issue_password_link(invited, actor=admin)
    # A thread on a clip the tester sees, and one on a clip only the staff see.
    threads = [
        comments.add_comment(clip, decider, "Look here", at_seconds=1.0)
        for clip in (clips[ClipStatus.WAITING], foreign)
    ]
    api_tokens = [tokens.create(user, name="walk", actor=None)[0] for user in (tester, admin)]
    db.session.commit()
    notifications = db.session.scalars(db.select(Notification.id)).all()
    static = sorted(p for p in Path(app.static_folder or "").rglob("*") if p.is_file())
    return World(
        people={"tester": tester, "reviewer": reviewer, "admin": admin},
        ids={
            "clip_id": [str(c.id) for c in [*clips.values(), foreign]],
            "user_id": [str(u.id) for u in (tester, other, reviewer, admin, invited)],
            "link_id": [str(link.id), str(guarded.id)],
            "token_id": [str(t.id) for t in api_tokens],
            "notification_id": [str(n) for n in notifications],
            "comment_id": [str(c.id) for c in threads],
            "token": [share_token, guarded_token, password_token],
            "sha256": ["0" * 64],
            "filename": [str(static[0].relative_to(app.static_folder or "")) if static else "x"],
        },
    )


# --- what pages show: forms and links ------------------------------------------------------------


@dataclass
class HtmlForm:
    action: str
    method: str
    multipart: bool
    fields: list[tuple[str, str]] = field(default_factory=list)

    def names(self) -> list[str]:
        return list(dict.fromkeys(name for name, _ in self.fields if name != "csrf_token"))


#: Stands for a small file in a multipart form.
FILE = "<a file>"
#: What a person would type into an empty field, so one hostile field is all that is wrong.
PLAUSIBLE = {
    "email": "tess@example.com",
    "password": PASSWORD,
    "number": "1",
    "date": (FrozenClock().now + timedelta(days=10)).date().isoformat(),
}


class PageReader(HTMLParser):
    """The forms (filled in as a person would) and the links of one page."""

    def __init__(self, page_path: str) -> None:
        super().__init__()
        self.page_path = page_path
        self.forms: list[HtmlForm] = []
        self.links: list[str] = []
        self._form: HtmlForm | None = None
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        elif tag == "form":
            self._form = HtmlForm(
                action=a.get("action") or self.page_path,
                method=(a.get("method") or "get").upper(),
                multipart=a.get("enctype") == "multipart/form-data",
            )
            self.forms.append(self._form)
        elif self._form is None or not a.get("name"):
            return
        elif tag == "input":
            self._form.fields.append((a["name"], _typed_in(a)))
        elif tag == "button" and "value" in a:
            self._form.fields.append((a["name"], a["value"]))
        elif tag == "select":
            self._select, self._options = a["name"], []
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea":
            self._textarea, self._text = a["name"], []

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._form is None:
            return
        if tag == "select" and self._select is not None:
            chosen = [value for value, selected in self._options if selected]
            filled = [value for value, _ in self._options if value]
            self._form.fields.append((self._select, (chosen or filled or [""])[0]))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self._form.fields.append((self._textarea, "".join(self._text).strip() or "walk"))
            self._textarea = None
        elif tag == "form":
            self._form = None


def _typed_in(attrs: dict[str, str]) -> str:
    """The value an input sends: as given, or what a person would type; '' sends nothing."""
    kind = attrs.get("type", "text")
    if kind in ("checkbox", "radio"):
        return attrs.get("value", "on") if "checked" in attrs else ""
    if kind == "file":
        return FILE
    if kind in ("hidden", "submit") or attrs.get("value"):
        return attrs.get("value", "")
    return PLAUSIBLE.get(kind, "walk")


# --- the walk ------------------------------------------------------------------------------------


def _path(rule: Rule, values: dict[str, str]) -> str:
    return ARGUMENT.sub(lambda m: quote(values[m.group(1)], safe="/"), rule.rule)


def _hostile_path_values(rule: Rule, argument: str) -> list[str]:
    converter = rule._converters[argument]
    if isinstance(converter, IntegerConverter | IdConverter):
        return list(HOSTILE_PATH_INTS)
    if isinstance(converter, AnyConverter):
        return [HOSTILE["a NUL character"], HOSTILE["10,000 characters"]]
    return list(HOSTILE.values())


def _plausible(unbound: UnboundField) -> str:
    """What a person would put in a WTForms field of this kind."""
    kinds = {cls.__name__ for cls in unbound.field_class.__mro__}
    for kind, value in (
        ("FileField", FILE),
        ("BooleanField", "y"),
        ("DateField", PLAUSIBLE["date"]),
        ("EmailField", PLAUSIBLE["email"]),
        ("PasswordField", PLAUSIBLE["password"]),
        ("IntegerField", "1"),
        ("FloatField", "1"),
        ("SelectFieldBase", ""),
    ):
        if kind in kinds:
            return value
    return "walk"


def _form_class_fields(cls: type[Form]) -> list[tuple[str, str]]:
    unbound = [(name, getattr(cls, name, None)) for name in dir(cls)]
    return [
        (name, "walk.mp4" if name == "filename" else _plausible(field))
        for name, field in unbound
        if isinstance(field, UnboundField) and name != "csrf_token"
    ]


def _what_the_view_reads(app: Flask, endpoint: str) -> tuple[set[str], HtmlForm | None]:
    """The names the endpoint's module reads off `request`, and the form its view builds."""
    view = inspect.unwrap(app.view_functions[endpoint])
    module = sys.modules[view.__module__]
    try:
        view_source = inspect.getsource(view)
    except (OSError, TypeError):
        view_source = ""
    built: list[tuple[str, str]] = []
    for name in BUILT_FORMS.findall(view_source):
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, Form):
            built.extend(_form_class_fields(cls))
    form = None
    if built:
        form = HtmlForm("", "", any(v == FILE for _, v in built), built)
    return set(READ_NAMES.findall(inspect.getsource(module))), form


@dataclass
class Walk:
    app: Flask
    world: World
    who: str
    failures: list[str] = field(default_factory=list)
    forms: dict[str, list[HtmlForm]] = field(default_factory=dict)
    query_names: dict[str, set[str]] = field(default_factory=dict)
    answered: dict[str, str] = field(default_factory=dict)
    sent: int = 0

    @property
    def adapter(self) -> MapAdapter:
        return self.app.url_map.bind("greenlight.test")

    def endpoint_of(self, path: str, method: str) -> str | None:
        try:
            endpoint, _ = self.adapter.match(path, method)
        except HTTPException:
            return None
        return str(endpoint)

    def client(self) -> tuple[FlaskClient, str]:
        """A new browser, signed in as this walk's person, with its CSRF token."""
        browser = self.app.test_client()
        if self.who == "anonymous":
            return browser, csrf_token(browser)
        user = self.world.people[self.who]
        response = browser.post(
            "/login",
            data={"email": user.email, "password": PASSWORD, "csrf_token": csrf_token(browser)},
        )
        assert response.status_code == 302, f"{user.email} could not sign in"
        return browser, csrf_token(browser, "/account")

    def send(self, browser: FlaskClient, method: str, path: str, what: str, **kw: Any) -> Any:
        self.sent += 1
        response = browser.open(path, method=method, **kw)
        body = response.get_data()
        response.close()  # a static file's handle stays open until then
        if response.status_code >= 500 or b"Traceback" in body:
            shown = path if len(path) < 120 else path[:100] + "…"
            self.failures.append(f"{method} {shown} ({what}) as {self.who}: {response.status}")
        return response

    def rules(self) -> list[Rule]:
        return sorted(self.app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint))

    def fillings(self, rule: Rule) -> list[dict[str, str]]:
        """Real values for the rule's path parameters: each seeded row in turn."""
        arguments = sorted(rule.arguments)
        if not arguments:
            return [{}]
        rows = []
        for index in range(max(len(self.world.ids.get(a, ["1"])) for a in arguments)):
            rows.append(
                {a: (ids := self.world.ids.get(a, ["1"]))[index % len(ids)] for a in arguments}
            )
        if any(isinstance(c, AnyConverter) for c in rule._converters.values()):
            for name, converter in rule._converters.items():
                if isinstance(converter, AnyConverter):
                    choice = re.findall(r"\w+", converter.regex)[0]
                    rows = [{**row, name: choice} for row in rows]
        return rows

    def discover(self) -> None:
        """Read every GET page as this person; keep its forms, links, and a path that answers."""
        browser, _ = self.client()
        for rule in self.rules():
            if "GET" not in (rule.methods or ()) or rule.endpoint.startswith("api."):
                continue
            for values in self.fillings(rule):
                path = _path(rule, values)
                response = self.send(browser, "GET", path, "real ids")
                if response.status_code < 400:
                    self.answered.setdefault(rule.endpoint, path)
                if response.mimetype == "text/html":
                    self.read(path, response.get_data(as_text=True))
            if rule.endpoint == "auth.set_password":
                browser, _ = self.client()  # a set-password page may have signed someone in

    def read(self, path: str, html: str) -> None:
        reader = PageReader(path)
        reader.feed(html)
        for href in reader.links:
            parts = urlsplit(href)
            endpoint = self.endpoint_of(parts.path, "GET") if not parts.netloc else None
            if endpoint and parts.query:
                self.query_names.setdefault(endpoint, set()).update(
                    name for name, _ in parse_qsl(parts.query, keep_blank_values=True)
                )
        for form in reader.forms:
            target = urlsplit(form.action).path
            endpoint = self.endpoint_of(target, form.method)
            if endpoint is None:
                continue
            if form.method == "GET":
                self.query_names.setdefault(endpoint, set()).update(form.names())
            known = self.forms.setdefault(endpoint, [])
            if not any(f.action == form.action and f.names() == form.names() for f in known):
                known.append(form)

    def walk(self) -> None:
        for rule in self.rules():
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                if rule.endpoint.startswith("api."):
                    self.walk_api(rule, method)
                else:
                    self.walk_page(rule, method)

    def walk_page(self, rule: Rule, method: str) -> None:
        browser, token = self.client()
        endpoint = rule.endpoint
        read, built = _what_the_view_reads(self.app, endpoint)
        real = self.answered.get(endpoint) or _path(rule, self.fillings(rule)[0])
        if method == "GET":
            names = read | self.query_names.get(endpoint, set()) | set(PAGING_PARAMS)
            names |= set(built.names()) if built else set()
            for name in sorted(names):
                for what, value in HOSTILE.items():
                    self.send(
                        browser, "GET", real, f"{what} in ?{name}", query_string={name: value}
                    )
            self.walk_path(browser, rule, method, None, token)
            return
        # The forms the pages showed, as they showed them; else the view's own form, filled in.
        forms = [f for f in self.forms.get(endpoint, []) if f.method == method]
        if not forms:
            fields = [*(built.fields if built else []), *((n, "") for n in sorted(read))]
            multipart = built.multipart if built else False
            forms = [HtmlForm(real, method, multipart, fields)]
        for form in forms:
            for name in form.names():
                for what, value in HOSTILE.items():
                    self.send(
                        browser, method, form.action, f"{what} in field {name}",
                        **_body(form, token, {name: value}),
                    )  # fmt: skip
        for name in sorted(read):
            for what, value in HOSTILE.items():
                self.send(
                    browser, method, urlsplit(forms[0].action).path, f"{what} in ?{name}",
                    query_string={name: value}, **_body(forms[0], token),
                )  # fmt: skip
        self.walk_path(browser, rule, method, forms[0], token)

    def walk_path(
        self, browser: FlaskClient, rule: Rule, method: str, form: HtmlForm | None, token: str
    ) -> None:
        values = self.fillings(rule)[0]
        for argument in sorted(rule.arguments):
            for value in _hostile_path_values(rule, argument):
                path = _path(rule, {**values, argument: value})
                kw = _body(form, token) if form is not None else {}
                self.send(browser, method, path, f"{value[:12]!r}… as <{argument}>", **kw)

    def walk_api(self, rule: Rule, method: str) -> None:
        browser, token = self.client()
        operation = next(
            (o for o in api.operations if o.rule == rule.rule and o.method == method), None
        )
        headers = {"X-CSRFToken": token}
        real = _path(rule, self.fillings(rule)[0])
        query_names = list(operation.query.model_fields) if operation and operation.query else []
        for name in [*query_names, *PAGING_PARAMS]:
            for what, value in HOSTILE.items():
                self.send(
                    browser, method, real, f"{what} in ?{name}", query_string={name: value},
                    headers=headers,
                )  # fmt: skip
        body_names = list(operation.body.model_fields) if operation and operation.body else []
        for name in body_names:
            for what, value in HOSTILE_JSON.items():
                self.send(
                    browser, method, real, f"{what} in JSON {name}", headers=headers,
                    data=json.dumps({name: value}), content_type="application/json",
                )  # fmt: skip
        for argument in sorted(rule.arguments):
            for value in _hostile_path_values(rule, argument):
                path = _path(rule, {**self.fillings(rule)[0], argument: value})
                what = f"{value[:12]!r}… as <{argument}>"
                self.send(browser, method, path, what, headers=headers)


def _body(form: HtmlForm, token: str, hostile: dict[str, str] | None = None) -> dict[str, Any]:
    """What a browser would send, with this session's CSRF token and `hostile` swapped in."""
    data: dict[str, list[Any]] = {}
    for name, value in form.fields:
        if value:
            data.setdefault(name, []).append(value)
    data["csrf_token"] = [token]
    data.update({name: [value] for name, value in (hostile or {}).items()})
    if form.multipart:
        for values in data.values():
            values[:] = [
                (io.BytesIO(b"not a video"), "walk.mp4") if v == FILE else v for v in values
            ]
    sent = {name: values if len(values) > 1 else values[0] for name, values in data.items()}
    if form.multipart:
        return {"data": sent, "content_type": "multipart/form-data"}
    return {"data": sent}


@pytest.mark.parametrize("who", WHO)
def test_no_route_answers_5xx_to_hostile_input(
    app: Flask, world: World, who: str, caplog: pytest.LogCaptureFixture
) -> None:
    walk = Walk(app, world, who)
    with caplog.at_level(logging.ERROR):
        walk.discover()
        walk.walk()
    assert walk.sent > 300, "the walk sent too little to mean anything"
    if who != "anonymous":
        assert walk.forms, "the walk found no forms"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not walk.failures, f"{len(walk.failures)} server errors:\n" + "\n".join(walk.failures)
    assert not errors, "errors logged:\n" + "\n".join(errors)


def test_the_walk_covers_every_route(app: Flask, world: World) -> None:
    """Every rule in the map is walked: none is skipped for want of a path value."""
    walk = Walk(app, world, "admin")
    missing = [
        rule.rule
        for rule in walk.rules()
        for argument in rule.arguments
        if argument not in world.ids and not isinstance(rule._converters[argument], AnyConverter)
    ]
    assert not missing, f"give these path parameters real values in `world`: {missing}"
