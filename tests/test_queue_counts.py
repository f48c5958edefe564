"""The queue's counts: exact while small; past the cap an estimate or a floor, labelled as such.

Counting every waiting clip on each visit made the queue page grow with the queue (issue 15),
so clips are counted one by one only up to `queue.EXACT_UP_TO`. Past it PostgreSQL gives its
planner's row estimate ("about 120,000") and SQLite, which has none, a floor ("more than
1,000"). The cap is lowered to 3 here so that "past the cap" takes four clips, not 1,001.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from approval.extensions import db
from approval.models import Clip, ClipStatus, Role, User
from approval.ops import notifications
from approval.ops import queue as reads
from approval.ops.queue import Precision, Tally
from tests.plugins.factories import FrozenClock
from tests.plugins.web import SignIn, csrf_token

MakeClip = Callable[..., Clip]
MakeUser = Callable[..., User]
CAP = 3


@pytest.fixture
def on_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


@pytest.fixture
def small_cap(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(reads, "EXACT_UP_TO", CAP)
    return CAP


@pytest.fixture
def reviewer_client(signed_in: SignIn, reviewer: User) -> FlaskClient:
    return signed_in(reviewer)


@pytest.fixture
def waiting(
    make_clip: MakeClip, make_user: MakeUser, clock: FrozenClock
) -> Callable[[int], list[Clip]]:
    """Factory: waiting(n) makes n waiting clips of one tester, a minute apart."""
    tester = make_user(Role.TESTER)

    def make(number: int) -> list[Clip]:
        made = []
        for _ in range(number):
            made.append(make_clip(ClipStatus.WAITING, tester=tester))
            clock.advance(minutes=1)
        return made

    return make


def analyse() -> None:
    """Fresh planner statistics, as autovacuum keeps them (SQLite: sqlite_stat1)."""
    db.session.execute(sa.text("ANALYZE"))
    db.session.commit()


def expected_past_the_cap(on_postgres: bool, clips: int) -> Tally:
    """PostgreSQL estimates (its statistics are fresh here, so exactly); SQLite gives a floor."""
    return Tally(clips, Precision.ESTIMATE) if on_postgres else Tally(CAP, Precision.MORE_THAN)


# --- the labels ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tally", "label"),
    [
        (Tally(0), "0"),
        (Tally(7), "7"),
        (Tally(1_000), "1,000"),
        (Tally(98, Precision.ESTIMATE), "about 98"),
        (Tally(123_456, Precision.ESTIMATE), "about 120,000"),
        (Tally(1_049, Precision.ESTIMATE), "about 1,000"),
        (Tally(1_000, Precision.MORE_THAN), "more than 1,000"),
    ],
)
def test_a_tally_is_labelled_with_what_is_known(tally: Tally, label: str) -> None:
    assert tally.label == label


# --- exact while small ---------------------------------------------------------------------------


def test_up_to_the_cap_the_count_is_exact(
    small_cap: int, waiting: Callable[[int], list[Clip]], clock: FrozenClock
) -> None:
    waiting(CAP)
    analyse()
    assert reads.counts(clock()).waiting == Tally(CAP)


def test_the_default_cap_is_a_thousand() -> None:
    assert reads.EXACT_UP_TO == 1_000


def test_a_small_count_is_a_plain_number_on_the_page(
    small_cap: int, waiting: Callable[[int], list[Clip]], reviewer_client: FlaskClient
) -> None:
    waiting(2)
    page = reviewer_client.get("/review/").get_data(as_text=True)
    assert 'data-precision="exact" data-count="waiting">2</strong> waiting' in page


def test_a_small_count_is_exact_in_the_poll(
    small_cap: int, waiting: Callable[[int], list[Clip]], reviewer_client: FlaskClient
) -> None:
    waiting(2)
    body = reviewer_client.get("/review/counts").get_json()
    assert (body["waiting"], body["waiting_precision"], body["waiting_label"]) == (2, "exact", "2")


# --- past the cap --------------------------------------------------------------------------------


def test_past_the_cap_the_count_says_what_it_knows(
    small_cap: int, waiting: Callable[[int], list[Clip]], clock: FrozenClock, on_postgres: bool
) -> None:
    waiting(6)
    analyse()
    assert reads.counts(clock()).waiting == expected_past_the_cap(on_postgres, 6)


def test_past_the_cap_postgresql_gives_the_planners_estimate(
    small_cap: int, waiting: Callable[[int], list[Clip]], clock: FrozenClock, on_postgres: bool
) -> None:
    if not on_postgres:
        pytest.skip("SQLite has no row estimate for one value of a column")
    waiting(6)
    analyse()
    assert reads.counts(clock()).waiting.label == "about 6"


def test_past_the_cap_sqlite_says_more_than(
    small_cap: int, waiting: Callable[[int], list[Clip]], clock: FrozenClock, on_postgres: bool
) -> None:
    if on_postgres:
        pytest.skip("PostgreSQL gives its estimate instead")
    waiting(6)
    assert reads.counts(clock()).waiting.label == "more than 3"


def test_an_estimate_below_what_was_counted_gives_the_floor_instead(
    small_cap: int,
    waiting: Callable[[int], list[Clip]],
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stale statistics may guess fewer than were just counted: the floor is then the truth."""
    monkeypatch.setattr(reads, "_estimate", lambda query: 2)
    waiting(6)
    assert reads.counts(clock()).waiting == Tally(CAP, Precision.MORE_THAN)


def test_lapsed_leases_count_toward_the_cap(
    small_cap: int,
    waiting: Callable[[int], list[Clip]],
    make_clip: MakeClip,
    clock: FrozenClock,
    app: Flask,
) -> None:
    """Two waiting and two lapsed are four available clips: past a cap of three."""
    make_clip(ClipStatus.IN_REVIEW)
    make_clip(ClipStatus.IN_REVIEW)
    clock.advance(seconds=app.config["CLAIM_LEASE_SECONDS"])
    waiting(2)
    assert not reads.counts(clock()).waiting.exact


def test_past_the_cap_the_page_shows_the_label(
    small_cap: int,
    waiting: Callable[[int], list[Clip]],
    reviewer_client: FlaskClient,
    on_postgres: bool,
) -> None:
    waiting(6)
    analyse()
    tally = expected_past_the_cap(on_postgres, 6)
    page = reviewer_client.get("/review/").get_data(as_text=True)
    shown = f'data-precision="{tally.precision}" data-count="waiting">{tally.label}</strong>'
    assert shown in page


def test_past_the_cap_the_poll_says_it_is_not_exact(
    small_cap: int,
    waiting: Callable[[int], list[Clip]],
    reviewer_client: FlaskClient,
    on_postgres: bool,
) -> None:
    waiting(6)
    analyse()
    tally = expected_past_the_cap(on_postgres, 6)
    body = reviewer_client.get("/review/counts").get_json()
    assert (body["waiting"], body["waiting_precision"], body["waiting_label"]) == (
        tally.value,
        tally.precision.value,
        tally.label,
    )


def test_filter_matches_past_the_cap_say_more_than(
    small_cap: int,
    waiting: Callable[[int], list[Clip]],
    reviewer_client: FlaskClient,
) -> None:
    tester_id = waiting(5)[0].tester_id
    page = reviewer_client.get(f"/review/?tester={tester_id}").get_data(as_text=True)
    assert "more than 3 waiting clips match these filters." in page


def test_one_filter_match_is_exact_and_singular(
    small_cap: int,
    waiting: Callable[[int], list[Clip]],
    reviewer_client: FlaskClient,
) -> None:
    tester_id = waiting(1)[0].tester_id
    page = reviewer_client.get(f"/review/?tester={tester_id}").get_data(as_text=True)
    assert "1 waiting clip matches these filters." in page


def test_the_digest_past_the_cap_tells_the_label(
    small_cap: int,
    waiting: Callable[[int], list[Clip]],
    make_user: MakeUser,
    on_postgres: bool,
) -> None:
    reader = make_user(Role.REVIEWER)
    reader.wants_queue_digest = True
    waiting(6)
    analyse()
    (note,) = notifications.queue_digest()
    assert note.subject == f"Review queue: {expected_past_the_cap(on_postgres, 6).label} waiting"


# --- what made the queue grow --------------------------------------------------------------------


@pytest.fixture
def statements(app: Flask) -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement run while the test runs, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def record(
        conn: object, cursor: object, statement: str, parameters: Any, *rest: object
    ) -> None:
        seen.append((statement, parameters))

    sa.event.listen(db.engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(db.engine, "before_cursor_execute", record)


def test_no_queue_request_scans_the_clips_table_on_sqlite(
    waiting: Callable[[int], list[Clip]],
    reviewer_client: FlaskClient,
    statements: list[tuple[str, Any]],
    on_postgres: bool,
) -> None:
    """With statistics that show most clips waiting, SQLite's planner scanned the whole table for
    the counts and a reviewer's current claim; the counts now walk ix_clips_queue a bounded way
    and leases are read on ix_clips_leases."""
    if on_postgres:
        pytest.skip("the planner's choice on a tiny table says nothing about a large one")
    waiting(20)
    analyse()
    assert reviewer_client.get("/review/").status_code == 200
    assert reviewer_client.get("/review/counts").status_code == 200
    token = csrf_token(reviewer_client, "/review/")
    assert reviewer_client.post("/review/next", data={"csrf_token": token}).status_code == 302
    scans = []
    with db.engine.connect() as conn:
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith("SELECT") or "clips" not in statement:
                continue
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            if any(re.match(r"SCAN clips\b", row[-1]) for row in plan):
                scans.append(statement)
    assert scans == []
