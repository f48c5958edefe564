"""The interface without a browser: layout, navigation by role, labels, badges, times, assets.

The browser tests (tests/e2e/) run axe-core on real pages; these check the same promises on
the HTML the app sends, for every role, quickly and on every run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from approval.extensions import db
from approval.models import Clip, ClipStatus, Role, User, Verdict
from approval.ops import claims, workflow

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]
Login = Callable[..., Any]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STATIC = PROJECT_ROOT / "static"


class Page(HTMLParser):
    """The parts of a page these tests look at."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.label_for: set[str] = set()
        self.wrapped: set[str] = set()  # ids of controls inside a <label>
        self.texts: dict[int, str] = {}  # index in tags → text until the element closes
        self._open_labels = 0
        self._stack: list[tuple[str, int]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._boundary(tag)
        values = {name: value or "" for name, value in attrs}
        self.tags.append((tag, values))
        if tag == "label":
            self._open_labels += 1
            if "for" in values:
                self.label_for.add(values["for"])
        elif self._open_labels and "id" in values:
            self.wrapped.add(values["id"])
        if tag not in {"input", "meta", "link", "img", "br", "hr", "source"}:
            self._stack.append((tag, len(self.tags) - 1))
            self.texts[len(self.tags) - 1] = ""

    def handle_endtag(self, tag: str) -> None:
        self._boundary(tag)
        if tag == "label":
            self._open_labels = max(0, self._open_labels - 1)
        while self._stack:
            name, _ = self._stack.pop()
            if name == tag:
                break

    def _boundary(self, tag: str) -> None:
        """Block-ish tags separate words; inline ones (a, span, kbd…) do not."""
        if tag not in {"a", "span", "strong", "em", "code", "time", "abbr", "b", "i"}:
            for _, index in self._stack:
                self.texts[index] += " "

    def handle_data(self, data: str) -> None:
        for _, index in self._stack:
            self.texts[index] += data

    def find(self, tag: str, **attrs: str) -> list[tuple[int, dict[str, str]]]:
        return [
            (index, values)
            for index, (name, values) in enumerate(self.tags)
            if name == tag and all(values.get(k) == v for k, v in attrs.items())
        ]

    def text_of(self, index: int) -> str:
        return " ".join(self.texts.get(index, "").split())

    def unlabelled_controls(self) -> list[str]:
        """Form controls a person cannot see a label for."""
        missing = []
        for name, values in self.tags:
            if name not in {"input", "select", "textarea"}:
                continue
            if values.get("type") in {"hidden", "submit", "button", "image", "reset"}:
                continue
            ident = values.get("id", "")
            if ident and (ident in self.label_for or ident in self.wrapped):
                continue
            missing.append(f"<{name} name={values.get('name')!r} id={ident!r}>")
        return missing


def page_of(client: FlaskClient, path: str) -> tuple[str, Page]:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    html = response.get_data(as_text=True)
    return html, Page(html)


@pytest.fixture
def everyone(make_user: MakeUser) -> dict[Role, User]:
    return {role: make_user(role) for role in Role}


@pytest.fixture
def story(everyone: dict[Role, User], make_clip: MakeClip) -> dict[str, Clip]:
    """Clips in the states the pages show differently."""
    tester, reviewer = everyone[Role.TESTER], everyone[Role.REVIEWER]
    waiting = make_clip(ClipStatus.WAITING, tester=tester, title="Waiting clip")
    approved = make_clip(ClipStatus.APPROVED, tester=tester, reviewer=reviewer, title="Good clip")
    rejected = make_clip(ClipStatus.WAITING, tester=tester, title="Bad clip")
    claims.claim(rejected, reviewer)
    workflow.decide(
        rejected,
        reviewer,
        Verdict.REJECT,
        category="quality",
        reason="Blurry at the end.",
        timecode=1.5,
    )
    claimed = make_clip(ClipStatus.WAITING, title="Claimed clip")
    claims.claim(claimed, reviewer)
    db.session.commit()
    return {"waiting": waiting, "approved": approved, "rejected": rejected, "claimed": claimed}


def pages_for(role: Role, story: dict[str, Clip]) -> list[str]:
    common = ["/inbox/", "/account"]
    if role == Role.TESTER:
        return [
            *common,
            "/clips/",
            "/clips/new",
            f"/clips/new?previous={story['rejected'].id}",
            *(f"/clips/{clip.id}" for key, clip in story.items() if key != "claimed"),
        ]
    if role == Role.REVIEWER:
        return [
            *common,
            "/review/",
            f"/review/{story['claimed'].id}",
            f"/review/{story['waiting'].id}",
            f"/review/{story['rejected'].id}",
            f"/clips/{story['approved'].id}",
        ]
    return [*common, "/admin/people", f"/clips/{story['approved'].id}"]


# --- the header ----------------------------------------------------------------------------------

NAV = {
    "My clips": "/clips/",
    "Upload": "/clips/new",
    "Review queue": "/review/",
    "People": "/admin/people",
    "Audit log": "/admin/audit",
}
NAV_BY_ROLE = {
    Role.TESTER: {"My clips", "Upload"},
    Role.REVIEWER: {"Review queue"},
    Role.ADMIN: {"People", "Audit log"},
}


@pytest.mark.parametrize("role", list(Role))
def test_the_header_shows_each_role_its_own_pages(
    client: FlaskClient, everyone: dict[Role, User], login: Login, role: Role
) -> None:
    login(everyone[role])
    _, page = page_of(client, "/inbox/")
    nav_links = {page.text_of(index): values["href"] for index, values in page.find("a")}
    shown = {label for label, href in NAV.items() if nav_links.get(label) == href}
    assert shown == NAV_BY_ROLE[role]


def test_a_person_with_several_roles_sees_all_their_pages(
    client: FlaskClient, make_user: MakeUser, login: Login
) -> None:
    login(make_user(Role.TESTER, Role.REVIEWER))
    html, _ = page_of(client, "/inbox/")
    assert (
        'href="/clips/"' in html,
        'href="/review/"' in html,
        'href="/admin/people"' in html,
    ) == (
        True,
        True,
        False,
    )


def test_the_current_page_is_marked_for_assistive_technology(
    client: FlaskClient, everyone: dict[Role, User], login: Login
) -> None:
    login(everyone[Role.REVIEWER])
    _, page = page_of(client, "/review/")
    current = [values["href"] for _, values in page.find("a") if values.get("aria-current")]
    assert current == ["/review/"]


def test_signed_out_pages_have_no_navigation(client: FlaskClient) -> None:
    html, _ = page_of(client, "/login")
    assert ('aria-label="Main"' in html, "Sign out" in html) == (False, False)


def test_the_inbox_link_carries_the_unread_count_in_words(
    client: FlaskClient, story: dict[str, Clip], login: Login
) -> None:
    login(story["rejected"].tester)
    html, _ = page_of(client, "/clips/")
    assert re.search(
        r'<a href="/inbox/" class="inbox-link">Inbox <span class="count" id="unread-count">2'
        r'<span class="visually-hidden"> unread</span></span></a>',
        html,
    )


def test_flash_messages_say_their_kind_in_words(
    client: FlaskClient, everyone: dict[Role, User], login: Login
) -> None:
    login(everyone[Role.REVIEWER])
    token = re.search(r'name="csrf_token" value="([^"]+)"', page_of(client, "/review/")[0])
    assert token
    response = client.post(
        "/review/next", data={"csrf_token": token.group(1)}, follow_redirects=True
    )
    html = response.get_data(as_text=True)
    assert '<span class="flash-label">Done:</span> No clips waiting — nice work.' in html


# --- every page ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_every_form_control_has_a_visible_label(
    client: FlaskClient,
    everyone: dict[Role, User],
    story: dict[str, Clip],
    login: Login,
    role: Role,
) -> None:
    login(everyone[role])
    missing = {
        path: found
        for path in pages_for(role, story)
        if (found := page_of(client, path)[1].unlabelled_controls())
    }
    assert missing == {}


@pytest.mark.parametrize("role", list(Role))
def test_every_button_says_what_it_does(
    client: FlaskClient,
    everyone: dict[Role, User],
    story: dict[str, Clip],
    login: Login,
    role: Role,
) -> None:
    login(everyone[role])
    vague = {"ok", "submit", "go", "yes", "no", "click here", "button"}
    problems = []
    for path in pages_for(role, story):
        _, page = page_of(client, path)
        for index, values in page.find("button"):
            label = page.text_of(index) or values.get("aria-label", "")
            if not label or label.lower() in vague:
                problems.append((path, label))
    assert problems == []


@pytest.mark.parametrize("role", list(Role))
def test_every_status_badge_has_words(
    client: FlaskClient,
    everyone: dict[Role, User],
    story: dict[str, Clip],
    login: Login,
    role: Role,
) -> None:
    login(everyone[role])
    empty = []
    for path in pages_for(role, story):
        _, page = page_of(client, path)
        for name_index, (tag, values) in enumerate(page.tags):
            if "badge" in values.get("class", "").split() and not page.text_of(name_index):
                empty.append((path, tag))
    assert empty == []


@pytest.mark.parametrize("role", list(Role))
def test_relative_times_carry_the_exact_time_on_hover(
    client: FlaskClient,
    everyone: dict[Role, User],
    story: dict[str, Clip],
    login: Login,
    role: Role,
) -> None:
    login(everyone[role])
    bare = []
    for path in pages_for(role, story):
        _, page = page_of(client, path)
        for index, values in page.find("time"):
            shown = page.text_of(index)
            relative = shown.endswith(" ago") or shown.startswith("in ") or shown == "just now"
            if not values.get("datetime") or (relative and " UTC" not in values.get("title", "")):
                bare.append((path, shown))
    assert bare == []


@pytest.mark.parametrize("role", list(Role))
def test_pages_load_nothing_from_other_sites(
    client: FlaskClient,
    everyone: dict[Role, User],
    story: dict[str, Clip],
    login: Login,
    role: Role,
) -> None:
    login(everyone[role])
    outside = []
    for path in pages_for(role, story):
        _, page = page_of(client, path)
        for tag, values in page.tags:
            for attribute in ("src", "href", "poster", "action"):
                value = values.get(attribute, "")
                if value.startswith(("http:", "https:", "//")) and tag != "a":
                    outside.append((path, tag, value))
        inline = [v for _, v in page.find("script") if "src" not in v]
        styles = [1 for tag, v in page.tags if tag == "style" or "style" in v]
        if inline or styles:
            outside.append((path, "inline script or style", len(inline) + len(styles)))
    assert outside == []


def test_the_stylesheet_loads_nothing_from_elsewhere() -> None:
    css = (STATIC / "css" / "app.css").read_text()
    assert (re.findall(r"@import|url\(", css)) == []


@pytest.mark.parametrize(
    "selector",
    [".queue-row.selected", "kbd", ".shortcuts.highlight", ".pager", ".verdicts", ":focus-visible"],
)
def test_the_stylesheet_styles_what_the_review_pages_use(selector: str) -> None:
    css = (STATIC / "css" / "app.css").read_text()
    assert re.search(rf"(^|[\s,}}]){re.escape(selector)}[\s,{{:]", css, re.MULTILINE)


def test_the_vendored_axe_core_keeps_its_licence() -> None:
    folder = STATIC / "vendor" / "axe-core"
    head = (folder / "axe.min.js").read_text(encoding="utf-8")[:200]
    licence = (folder / "LICENSE").read_text()
    assert (head.startswith("/*! axe v"), "Mozilla Public License" in licence) == (True, True)


def test_no_page_loads_axe_core(
    client: FlaskClient, everyone: dict[Role, User], story: dict[str, Clip], login: Login
) -> None:
    login(everyone[Role.REVIEWER])
    assert all(
        "vendor/axe-core" not in page_of(client, path)[0]
        for path in pages_for(Role.REVIEWER, story)
    )


# --- empty states and the review page ------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "path", "words"),
    [
        (Role.TESTER, "/clips/", "Upload your first clip"),
        (Role.REVIEWER, "/review/", "No clips waiting — nice work."),
        (Role.TESTER, "/inbox/", "You hear here when a clip of yours is approved"),
        (Role.REVIEWER, "/inbox/", "Ask for the daily queue digest below"),
    ],
)
def test_empty_pages_say_what_to_do_next(
    client: FlaskClient,
    everyone: dict[Role, User],
    login: Login,
    role: Role,
    path: str,
    words: str,
) -> None:
    login(everyone[role])
    assert words in page_of(client, path)[0]


def test_the_review_page_lists_its_keyboard_shortcuts(
    client: FlaskClient, everyone: dict[Role, User], story: dict[str, Clip], login: Login
) -> None:
    login(everyone[Role.REVIEWER])
    _, page = page_of(client, f"/review/{story['claimed'].id}")
    (index, _), *_ = page.find("section", id="shortcuts")
    keys = re.findall(r"\S+", page.text_of(index))
    assert {"J", "K", "A", "R", "Space", "?"} <= set(keys)


def test_the_rejection_shows_the_moment_as_a_seek_link(
    client: FlaskClient, story: dict[str, Clip], login: Login
) -> None:
    clip = story["rejected"]
    login(clip.tester)
    html, _ = page_of(client, f"/clips/{clip.id}")
    assert '<a href="#t=1.5" class="seek" data-seconds="1.5">See the moment at 0:01.5</a>' in html


def test_the_review_page_preloads_the_next_poster(
    app: Flask,
    client: FlaskClient,
    everyone: dict[Role, User],
    make_clip: MakeClip,
    login: Login,
) -> None:
    reviewer = everyone[Role.REVIEWER]
    clip = make_clip(ClipStatus.WAITING, content=b"first")
    upcoming = make_clip(ClipStatus.WAITING, content=b"second")
    claims.claim(clip, reviewer)
    db.session.commit()
    login(reviewer)
    html, _ = page_of(client, f"/review/{clip.id}")
    assert f'<link rel="prefetch" as="image" href="/clips/{upcoming.id}/poster">' in html


def test_the_queue_page_polls_its_counts(
    client: FlaskClient, everyone: dict[Role, User], login: Login
) -> None:
    login(everyone[Role.REVIEWER])
    html, _ = page_of(client, "/review/")
    script = (STATIC / "js" / "review.js").read_text()
    assert ('data-counts-url="/review/counts"' in html, "setInterval(refresh" in script) == (
        True,
        True,
    )
