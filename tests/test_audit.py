"""The decision log: one event per change in the same transaction, append-only by the database's
own triggers, hash-chained and verifiable, exported, and shown to admins and on clip pages."""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask, render_template_string
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm.attributes import set_committed_value

from approval import audit
from approval.extensions import db
from approval.models import AuditEvent, AuditHead, Clip, ClipStatus, Role, User
from approval.ops import claims
from approval.ops.people import create_user, record_failed_sign_in, set_active, set_roles
from tests.plugins.api import bearer, problem
from tests.plugins.factories import FrozenClock
from tests.plugins.snapshot import nothing_changed
from tests.plugins.web import SignIn, csrf_token

Login = Callable[..., Any]
MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]


# --- helpers -------------------------------------------------------------------------------------


def events(**filters: Any) -> list[AuditEvent]:
    return list(db.session.scalars(audit.filtered(**filters).order_by(AuditEvent.id)))


def count() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def cli(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=list(args))


def append(n: int, action: str = "auth.sign_in_failed") -> None:
    """n events through the real append path, committed."""
    for i in range(n):
        audit.record(action, actor=None, subject_type="user", data={"n": i})
    db.session.commit()


# The guard that refuses each operation, and how to read and drop it, per database.
GUARDS = {
    ("sqlite", "UPDATE"): "audit_events_no_update",
    ("sqlite", "DELETE"): "audit_events_no_delete",
    ("postgresql", "UPDATE"): "audit_events_no_update_delete",
    ("postgresql", "DELETE"): "audit_events_no_update_delete",
}
DEFINITION = {
    "sqlite": "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = :name",
    "postgresql": "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = :name",
}
DROP = {
    "sqlite": "DROP TRIGGER {name}",
    "postgresql": "DROP TRIGGER {name} ON audit_events",
}


@contextmanager
def guard_lifted(operation: str) -> Iterator[sa.Connection]:
    """Drop the trigger refusing `operation`, yield a connection to tamper through, restore it.

    The trigger comes back even when the test fails. On PostgreSQL drop, tampering and restore
    are one transaction, so no other connection ever sees the log unguarded; that transaction
    locks the table, so the body must use `conn` only (not db.session, not expired objects).
    """
    db.session.commit()  # the test's own transaction must not hold locks the DROP waits for
    dialect = db.engine.dialect.name
    name = GUARDS[dialect, operation]
    with db.engine.connect() as conn:
        definition = conn.scalar(sa.text(DEFINITION[dialect]), {"name": name})
        assert definition, f"guard {name} is missing before the test"
        conn.execute(sa.text(DROP[dialect].format(name=name)))
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        finally:
            if conn.scalar(sa.text(DEFINITION[dialect]), {"name": name}) is None:
                conn.execute(sa.text(definition))
            conn.commit()


def recomputed_hash(line: dict[str, Any]) -> str:
    fields = {key: value for key, value in line.items() if key not in ("id", "hash")}
    return hashlib.sha256(audit.canonical_json(fields).encode()).hexdigest()


# --- one event per change, in the change's own transaction --------------------------------------


@pytest.mark.parametrize("status", list(ClipStatus))
def test_every_clip_transition_is_one_event_with_states_and_sha256(
    make_clip: MakeClip, clock: FrozenClock, status: ClipStatus
) -> None:
    clip = make_clip(status)
    timeline = audit.clip_timeline(clip.id)
    assert timeline[0].action == "clip.created"
    assert timeline[0].state_before is None
    for earlier, later in itertools.pairwise(timeline):
        assert later.state_before == earlier.state_after
    assert timeline[-1].state_after == clip.status.value
    for event in timeline:
        assert event.subject_type == "clip"
        assert event.subject_id == event.clip_id == clip.id
        assert event.occurred_at == clock.now
        assert event.occurred_at.utcoffset() is not None
        if event.state_before not in (None, "uploading", "verifying"):
            assert event.clip_sha256 == clip.sha256


def test_a_decision_event_names_the_actor_and_reason(make_clip: MakeClip) -> None:
    clip = make_clip(ClipStatus.REJECTED)
    rejected = audit.clip_timeline(clip.id)[-1]
    assert rejected.action == "clip.rejected"
    assert rejected.actor_id == clip.decided_by_id
    assert rejected.actor_email == db.session.get(User, clip.decided_by_id).email
    assert rejected.reason == "Too blurry"
    assert (rejected.state_before, rejected.state_after) == ("in_review", "rejected")


@pytest.mark.parametrize(
    ("operation", "action"),
    [
        ("create", "user.created"),
        ("roles", "user.roles_changed"),
        ("deactivate", "user.deactivated"),
        ("reactivate", "user.reactivated"),
        ("failed sign-in", "auth.sign_in_failed"),
    ],
)
def test_people_changes_are_events_about_the_person(
    make_user: MakeUser, operation: str, action: str
) -> None:
    admin = make_user(Role.ADMIN)
    person = make_user(Role.TESTER)
    if operation == "create":
        person = create_user("new@example.com", "New", [Role.REVIEWER], actor=admin)
    elif operation == "roles":
        set_roles(person, add=[Role.REVIEWER], actor=admin)
    elif operation == "deactivate":
        set_active(person, False, actor=admin)
    elif operation == "reactivate":
        set_active(person, False, actor=admin)
        set_active(person, True, actor=admin)
    else:
        record_failed_sign_in(person.email, "192.0.2.1")
    db.session.commit()
    event = events()[-1]
    assert event.action == action
    assert (event.subject_type, event.subject_id) == ("user", person.id)
    assert event.actor_id == (None if operation == "failed sign-in" else admin.id)


def test_every_action_in_the_code_is_a_known_one() -> None:
    """The audit page's action filter offers ACTIONS; an action missing there is unfindable."""
    package = Path(audit.__file__).parent
    written = set()
    for source in package.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        written |= set(re.findall(r'audit\.record\(\s*"([a-z_]+\.[a-z_]+)"', text))
        written |= set(re.findall(r'\baction="([a-z_]+\.[a-z_]+)"', text))
        written |= set(re.findall(r'\bTransition\(\s*"([a-z_]+\.[a-z_]+)"', text))
    assert "clip.approved" in written
    assert written - set(audit.ACTIONS) == set()


def test_every_recorded_action_is_a_known_one(make_clip: MakeClip, make_user: MakeUser) -> None:
    admin = make_user(Role.ADMIN)
    for status in ClipStatus:
        make_clip(status, admin=admin)
    rejected = make_clip(ClipStatus.REJECTED)
    make_clip(ClipStatus.WAITING, previous=rejected, tester=rejected.tester)
    person = make_user()
    set_roles(person, add=[Role.REVIEWER], actor=admin)
    set_active(person, False, actor=admin)
    set_active(person, True, actor=admin)
    record_failed_sign_in("nobody@example.com", None)
    db.session.commit()
    recorded = set(db.session.scalars(select(AuditEvent.action).distinct()))
    assert recorded - set(audit.ACTIONS) == set()


def test_rollback_after_record_keeps_the_chain_and_the_next_append_links_to_the_real_head(
    app: Flask, make_user: MakeUser
) -> None:
    make_user()
    head = audit.head_hash()
    audit.record("auth.sign_in_failed", actor=None, subject_type="user")
    db.session.rollback()
    assert audit.head_hash() == head
    assert count() == 1
    assert audit.verify().ok
    audit.record("auth.sign_in_failed", actor=None, subject_type="user")
    db.session.commit()
    appended = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert appended is not None
    assert appended.prev_hash == head
    assert audit.verify().as_dict() == {"ok": True, "events": 2, "head": appended.hash}


def test_a_failed_transaction_leaves_neither_the_change_nor_its_event(
    make_clip: MakeClip, make_user: MakeUser
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    reviewer = make_user(Role.REVIEWER)
    before = count()
    claims.claim(clip, reviewer)  # the change and its event, not yet committed
    # Something later in the same transaction fails: a second account with a taken email.
    db.session.add(User(email=reviewer.email, display_name="Twin"))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.flush()
    db.session.rollback()
    assert db.session.get(Clip, clip.id).status == ClipStatus.WAITING
    assert count() == before
    assert audit.verify().ok


# --- append-only, by the database ----------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET reason = 'edited' WHERE id = 1",
        "UPDATE audit_events SET hash = prev_hash",
        "DELETE FROM audit_events WHERE id = 1",
        "DELETE FROM audit_events",
    ],
)
def test_plain_sql_cannot_change_or_remove_events(make_clip: MakeClip, statement: str) -> None:
    make_clip(ClipStatus.APPROVED)
    before = count()
    with pytest.raises(sa.exc.DatabaseError, match="append-only"):
        db.session.execute(sa.text(statement))
    db.session.rollback()
    assert count() == before
    assert audit.verify().ok


@pytest.mark.postgres
@pytest.mark.parametrize(
    "statement",
    [
        "TRUNCATE audit_events",
        "TRUNCATE audit_events CASCADE",
        "TRUNCATE users, audit_events CASCADE",
    ],
)
def test_truncate_is_refused_on_postgresql(make_clip: MakeClip, statement: str) -> None:
    make_clip(ClipStatus.APPROVED)
    before = count()
    with pytest.raises(sa.exc.DatabaseError, match="append-only: TRUNCATE refused"):
        db.session.execute(sa.text(statement))
    db.session.rollback()
    assert count() == before


def test_lifted_guards_come_back(make_clip: MakeClip) -> None:
    """The tamper tests below drop triggers; the helper must put them back, even on failure."""
    make_clip(ClipStatus.WAITING)

    def fail_half_way() -> None:
        with guard_lifted("UPDATE") as conn:
            conn.execute(sa.text("UPDATE audit_events SET reason = 'x' WHERE id = 1"))
            raise RuntimeError("the test failed half-way")

    with pytest.raises(RuntimeError):
        fail_half_way()
    assert db.session.scalar(select(AuditEvent.reason).where(AuditEvent.id == 1)) is None
    for statement in ("UPDATE audit_events SET reason = 'x'", "DELETE FROM audit_events"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            db.session.execute(sa.text(statement))
        db.session.rollback()


# --- tamper evidence -----------------------------------------------------------------------------


def test_verify_reports_events_and_head(app: Flask, make_clip: MakeClip) -> None:
    make_clip(ClipStatus.APPROVED)
    result = cli(app, "audit", "verify")
    assert result.exit_code == 0, result.output
    assert result.output == f"ok: {count()} events, head {audit.head_hash()}\n"


def test_verify_on_an_empty_log_is_ok(app: Flask) -> None:
    assert audit.verify().as_dict() == {"ok": True, "events": 0, "head": audit.GENESIS_HASH}


def test_an_edited_reason_is_named_by_verify(app: Flask, make_clip: MakeClip) -> None:
    clip = make_clip(ClipStatus.REJECTED)
    make_clip(ClipStatus.APPROVED)  # events after the edited one
    rejected = audit.clip_timeline(clip.id)[-1].id
    with guard_lifted("UPDATE") as conn:
        conn.execute(
            sa.text("UPDATE audit_events SET reason = 'Looks fine' WHERE id = :id"),
            {"id": rejected},
        )
    result = cli(app, "audit", "verify")
    assert result.exit_code == 1
    assert f"BROKEN at event {rejected}: event {rejected} was changed" in result.output
    assert audit.verify().broken_event_id == rejected


def test_an_event_rewritten_with_a_fresh_hash_is_caught_at_the_next_one(
    app: Flask, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.REJECTED)
    make_clip(ClipStatus.APPROVED)
    rejected = audit.clip_timeline(clip.id)[-1]
    rejected_id = rejected.id
    rejected.reason = "Looks fine"
    forged = audit.event_hash(rejected)
    db.session.rollback()
    with guard_lifted("UPDATE") as conn:
        conn.execute(
            sa.text("UPDATE audit_events SET reason = 'Looks fine', hash = :h WHERE id = :id"),
            {"h": forged, "id": rejected_id},
        )
    result = audit.verify()
    assert not result.ok
    assert result.broken_event_id == db.session.scalar(
        select(func.min(AuditEvent.id)).where(AuditEvent.id > rejected_id)
    )


def test_removing_the_last_event_is_caught_by_the_head(app: Flask, make_clip: MakeClip) -> None:
    make_clip(ClipStatus.APPROVED)
    last = db.session.scalar(select(func.max(AuditEvent.id)))
    with guard_lifted("DELETE") as conn:
        conn.execute(sa.text("DELETE FROM audit_events WHERE id = :id"), {"id": last})
    result = cli(app, "audit", "verify")
    assert result.exit_code == 1
    assert f"BROKEN at event {last}: event {last}, the newest according to the head, is " in (
        result.output
    )


def test_removing_a_middle_event_is_caught_at_the_next_one(app: Flask, make_clip: MakeClip) -> None:
    make_clip(ClipStatus.APPROVED)
    middle = 3
    with guard_lifted("DELETE") as conn:
        conn.execute(sa.text("DELETE FROM audit_events WHERE id = :id"), {"id": middle})
    result = cli(app, "audit", "verify")
    assert result.exit_code == 1
    assert f"BROKEN at event {middle + 1}: event {middle + 1} does not follow event 2" in (
        result.output
    )


def test_removing_every_event_is_caught(app: Flask, make_clip: MakeClip) -> None:
    make_clip(ClipStatus.WAITING)
    with guard_lifted("DELETE") as conn:
        conn.execute(sa.text("DELETE FROM audit_events"))
    result = audit.verify()
    assert not result.ok
    assert "the log is empty but its head counts" in (result.problem or "")


@pytest.mark.parametrize(
    "change",
    [
        "last_hash = '" + "f" * 64 + "'",
        "event_count = event_count - 1",
        f"last_hash = '{audit.GENESIS_HASH}', last_event_id = NULL, event_count = 0",
    ],
)
def test_a_changed_head_is_caught(make_clip: MakeClip, change: str) -> None:
    make_clip(ClipStatus.WAITING)
    db.session.execute(sa.text(f"UPDATE audit_head SET {change}"))  # noqa: S608  # fixed text
    db.session.commit()
    result = audit.verify()
    assert not result.ok
    assert "the head was changed" in (result.problem or "")


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_verify_streams_in_batches_and_still_finds_the_edit(
    app: Flask, make_user: MakeUser, batch_size: int
) -> None:
    make_user()
    append(30)
    assert audit.verify(batch_size=batch_size).as_dict()["events"] == 31
    with guard_lifted("UPDATE") as conn:
        conn.execute(sa.text("UPDATE audit_events SET data = '{}' WHERE id = 20"))
    assert audit.verify(batch_size=batch_size).broken_event_id == 20


def test_verify_reads_the_database_not_the_session(app: Flask, make_user: MakeUser) -> None:
    make_user()
    with guard_lifted("UPDATE") as conn:
        conn.execute(sa.text("UPDATE audit_events SET reason = 'x' WHERE id = 1"))
    # A long-lived session still holding the event as it was before the edit.
    cached = events()[0]
    set_committed_value(cached, "reason", None)
    assert audit.verify().broken_event_id == cached.id


# --- a head kept outside the database ------------------------------------------------------------


def rewrite_from(conn: sa.Connection, first_id: int, reason: str) -> None:
    """Forge the log as a database owner could: change event `first_id`, re-hash it and every
    later event, and move the head, so the chain verifies on its own."""
    table = AuditEvent.__table__
    previous = conn.scalar(
        select(table.c.hash).where(table.c.id < first_id).order_by(table.c.id.desc()).limit(1)
    )
    previous = previous or audit.GENESIS_HASH
    rows = conn.execute(select(table).where(table.c.id >= first_id).order_by(table.c.id)).all()
    for row in rows:
        values = dict(row._mapping)
        values["prev_hash"] = previous
        if row.id == first_id:
            values["reason"] = reason
        forged = audit.event_hash(AuditEvent(**values))  # a transient copy, never added
        conn.execute(
            sa.update(table)
            .where(table.c.id == row.id)
            .values(reason=values["reason"], prev_hash=previous, hash=forged)
        )
        previous = forged
    conn.execute(sa.update(AuditHead.__table__).values(last_hash=previous))


def checkpoint_line(app: Flask) -> str:
    result = cli(app, "audit", "checkpoint")
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_checkpoint_prints_seq_hash_and_time_in_one_line(
    app: Flask, make_clip: MakeClip, clock: FrozenClock
) -> None:
    make_clip(ClipStatus.APPROVED)
    line = checkpoint_line(app)
    assert line == (
        f"greenlight-audit-head seq={count()} sha256={audit.head_hash()} "
        f"at={clock.now:%Y-%m-%dT%H:%M:%S}Z"
    )
    assert audit.parse_checkpoint(line) == audit.Checkpoint(
        sha256=audit.head_hash(), seq=count(), at=clock.now.replace(microsecond=0)
    )


def test_checkpoint_of_a_broken_chain_is_refused(app: Flask, make_clip: MakeClip) -> None:
    make_clip(ClipStatus.APPROVED)
    with guard_lifted("UPDATE") as conn:
        conn.execute(sa.text("UPDATE audit_events SET reason = 'x' WHERE id = 2"))
    result = cli(app, "audit", "checkpoint")
    assert result.exit_code == 1
    assert "BROKEN: event 2 was changed after it was written" in result.output
    assert "sha256=" not in result.output


def test_a_rewritten_tail_and_head_pass_plain_verify_but_not_the_kept_head(
    app: Flask, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.REJECTED)
    kept = checkpoint_line(app)
    rejected = audit.clip_timeline(clip.id)[-1].id
    assert rejected == count()  # the decision is the tail
    with guard_lifted("UPDATE") as conn:
        rewrite_from(conn, rejected, "Looks fine")
    # What the README used to admit: the forged chain holds on its own.
    assert cli(app, "audit", "verify").exit_code == 0
    result = cli(app, "audit", "verify", "--expect-head", kept)
    assert result.exit_code == 1
    assert (
        f"BROKEN at event {rejected}: event {rejected}, at seq {count()}, has hash "
        f"{audit.head_hash()[:12]}…, not the kept head's {kept.split('sha256=')[1][:12]}…"
    ) in result.output


def test_a_rewrite_before_the_kept_head_is_caught_at_its_position(
    app: Flask, make_user: MakeUser
) -> None:
    make_user()
    append(5)
    kept = audit.parse_checkpoint(checkpoint_line(app))
    append(5)  # the log grew after the checkpoint was taken
    with guard_lifted("UPDATE") as conn:
        rewrite_from(conn, 3, "edited")
    assert audit.verify().ok
    result = audit.verify(expect=kept)
    assert not result.ok
    assert result.broken_event_id == kept.seq
    assert "events up to and including it were rewritten" in (result.problem or "")
    bare = audit.verify(expect=audit.Checkpoint(sha256=kept.sha256))
    assert "no event has the kept hash" in (bare.problem or "")


@pytest.mark.parametrize("kept_as", ["line", "hash"])
def test_a_log_that_grew_past_the_kept_head_passes_through_it(
    app: Flask, make_user: MakeUser, kept_as: str
) -> None:
    make_user()
    append(3)
    line = checkpoint_line(app)
    kept = line if kept_as == "line" else line.split("sha256=")[1].split()[0].upper()
    append(4)
    result = cli(app, "audit", "verify", "--expect-head", kept)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"ok: {count()} events, head {audit.head_hash()}, through")


def test_a_cut_tail_with_a_moved_head_is_caught_by_the_kept_seq(
    app: Flask, make_user: MakeUser
) -> None:
    make_user()
    append(4)
    kept = audit.parse_checkpoint(checkpoint_line(app))
    last = db.session.scalar(select(func.max(AuditEvent.id)))
    with guard_lifted("DELETE") as conn:
        conn.execute(sa.text("DELETE FROM audit_events WHERE id = :id"), {"id": last})
        conn.execute(
            sa.text(
                "UPDATE audit_head SET last_hash = (SELECT hash FROM audit_events WHERE id = :id),"
                " last_event_id = :id, event_count = event_count - 1"
            ),
            {"id": last - 1},
        )
    assert audit.verify().ok
    result = audit.verify(expect=kept)
    assert result.problem == (
        f"the log holds {kept.seq - 1} events, fewer than the kept head's seq {kept.seq}: "
        "events were removed and the chain rebuilt, or the checkpoint belongs to another log"
    )
    bare = audit.verify(expect=audit.Checkpoint(sha256=kept.sha256))
    assert not bare.ok


def test_an_emptied_log_with_a_reset_head_fails_the_kept_head(
    app: Flask, make_user: MakeUser
) -> None:
    make_user()
    kept = audit.parse_checkpoint(checkpoint_line(app))
    with guard_lifted("DELETE") as conn:
        conn.execute(sa.text("DELETE FROM audit_events"))
        conn.execute(
            sa.text("UPDATE audit_head SET last_hash = :g, last_event_id = NULL, event_count = 0"),
            {"g": audit.GENESIS_HASH},
        )
    assert audit.verify().ok
    assert "fewer than the kept head's seq 1" in (audit.verify(expect=kept).problem or "")


BAD_HEADS = [
    ("abc123", "give the 64-digit SHA-256 of an event"),
    ("f" * 63, "give the 64-digit SHA-256 of an event"),
    ("greenlight-audit-head sha256=" + "f" * 64, "a checkpoint needs seq= and sha256="),
    ("greenlight-audit-head seq=0 sha256=" + "f" * 64, "seq= must be a whole number from 1"),
    ("greenlight-audit-head seq=1 sha256=" + "f" * 60, "sha256= must be 64 hexadecimal digits"),
    ("greenlight-audit-head seq=1 seq=2 sha256=" + "f" * 64, "seq= is given twice"),
    ("greenlight-audit-head seq=1 sha256=" + "f" * 64 + " at=noon", "at= must be an ISO 8601"),
    ("greenlight-audit-head seq=1 sha256=" + "f" * 64 + " by=me", "'by=me' is not part of"),
]


@pytest.mark.parametrize(("value", "message"), BAD_HEADS)
def test_a_bad_kept_head_is_a_usage_error(
    app: Flask, make_user: MakeUser, value: str, message: str
) -> None:
    make_user()
    result = cli(app, "audit", "verify", "--expect-head", value)
    assert result.exit_code == 2
    assert "Invalid value for '--expect-head'" in result.output
    assert message in result.output


# --- concurrency ---------------------------------------------------------------------------------


def _append_in_own_session(app: Flask, n: int, ready: threading.Barrier) -> None:
    with app.app_context():
        ready.wait()
        for i in range(n):
            audit.record("auth.sign_in_failed", actor=None, subject_type="user", data={"i": i})
            db.session.commit()
        db.session.remove()


@pytest.mark.postgres
def test_concurrent_appends_never_fork_the_chain(app: Flask, make_user: MakeUser) -> None:
    make_user()
    threads, each = 8, 50
    ready = threading.Barrier(threads)
    with ThreadPoolExecutor(threads) as pool:
        jobs = [pool.submit(_append_in_own_session, app, each, ready) for _ in range(threads)]
        for job in jobs:
            job.result()
    result = audit.verify()
    assert result.as_dict() == {"ok": True, "events": 1 + threads * each, "head": result.head}
    assert count() == 1 + threads * each


@pytest.mark.postgres
def test_verify_during_concurrent_appends_never_reports_a_false_break(
    app: Flask, make_user: MakeUser
) -> None:
    make_user()
    threads = 4
    ready = threading.Barrier(threads + 1)
    results = []
    with ThreadPoolExecutor(threads) as pool:
        jobs = [pool.submit(_append_in_own_session, app, 40, ready) for _ in range(threads)]
        ready.wait()
        while not all(job.done() for job in jobs):
            results.append(audit.verify(batch_size=16))
            db.session.rollback()
        for job in jobs:
            job.result()
    assert results
    assert [r.problem for r in results if not r.ok] == []
    assert audit.verify().events == 1 + threads * 40


@pytest.mark.postgres
def test_an_open_transaction_with_an_event_does_not_hold_the_head(
    app: Flask, make_clip: MakeClip, make_user: MakeUser
) -> None:
    """The head is taken at commit, not at `record`: a slow request that has logged a claim
    does not make every other request that logs something wait for it (bench/decisions.py)."""
    clip = make_clip(ClipStatus.WAITING)
    reviewer = make_user(Role.REVIEWER)
    db.session.commit()
    claims.claim(clip, reviewer)  # logged, not committed: this transaction stays open

    def append_elsewhere() -> None:
        with app.app_context():
            db.session.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
            audit.record("auth.sign_in_failed", actor=None, subject_type="user")
            db.session.commit()
            db.session.remove()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(append_elsewhere).result(timeout=10)
    db.session.commit()
    assert [e.action for e in events()][-2:] == ["auth.sign_in_failed", "clip.claimed"]
    assert audit.verify().ok


def test_an_event_says_what_was_true_when_recorded_and_is_timed_when_chained(
    app: Flask, make_user: MakeUser, clock: FrozenClock
) -> None:
    person = make_user()
    email = person.email
    audit.record("user.password_changed", actor=person, subject_type="user", subject_id=person.id)
    person.email = "renamed@example.com"  # later in the same transaction
    clock.advance(seconds=5)
    db.session.commit()
    event = events(action="user.password_changed")[-1]
    assert event.actor_email == email
    assert event.occurred_at == clock.now


def test_several_events_of_one_transaction_chain_in_order_with_ids_in_chain_order(
    app: Flask, make_user: MakeUser
) -> None:
    make_user()
    db.session.commit()
    before = audit.event_count()
    for i in range(5):
        audit.record("auth.sign_in_failed", actor=None, subject_type="user", data={"i": i})
    assert audit.event_count() == before  # nothing is written before the commit
    db.session.commit()
    appended = events()[-5:]
    assert [json.loads(e.data)["i"] for e in appended] == list(range(5))
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(appended))
    assert audit.event_count() == before + 5
    assert audit.head_hash() == appended[-1].hash
    assert audit.verify().ok


# --- export --------------------------------------------------------------------------------------


def test_jsonl_export_can_be_rechecked_offline(app: Flask, make_clip: MakeClip) -> None:
    make_clip(ClipStatus.TAKEN_DOWN)
    result = cli(app, "audit", "export", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == count()
    previous = audit.GENESIS_HASH
    for line in lines:
        assert line["prev_hash"] == previous
        assert recomputed_hash(line) == line["hash"]
        previous = line["hash"]
    assert previous == audit.head_hash()


def test_csv_export_to_a_file(app: Flask, make_clip: MakeClip, tmp_path: Path) -> None:
    make_clip(ClipStatus.REJECTED)
    target = tmp_path / "log.csv"
    result = cli(app, "audit", "export", "--format", "csv", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"), newline="")))
    assert [row["action"] for row in rows] == [event.action for event in events()]
    assert rows[-1]["reason"] == "Too blurry"
    assert tuple(rows[0]) == audit.EXPORT_FIELDS


def test_export_filters_by_clip_and_since(
    app: Flask, make_clip: MakeClip, clock: FrozenClock
) -> None:
    first = make_clip(ClipStatus.WAITING)
    clock.advance(days=2)
    second = make_clip(ClipStatus.WAITING)
    by_clip = cli(app, "audit", "export", "--clip", str(first.id))
    assert {json.loads(line)["clip_id"] for line in by_clip.stdout.splitlines()} == {first.id}
    since = cli(app, "audit", "export", "--since", (clock.now.date()).isoformat())
    clip_ids = {json.loads(line)["clip_id"] for line in since.stdout.splitlines()}
    assert clip_ids == {second.id, None}  # the second clip and its people


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "30/11/2026"])
def test_export_with_a_bad_since_is_a_usage_error(app: Flask, value: str) -> None:
    result = cli(app, "audit", "export", "--since", value)
    assert result.exit_code == 2
    assert "Invalid value for '--since'" in result.output
    assert "use YYYY-MM-DD" in result.output


def test_export_streams_row_by_row(app: Flask, make_user: MakeUser) -> None:
    make_user()
    append(5)
    chunks = audit.export(audit.filtered(), "csv")
    assert next(chunks).count("\n") == 2  # the header and the first row, before the rest is read
    assert len(list(chunks)) == 5


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_abandoned_export_closes_its_cursor(app: Flask, make_user: MakeUser, fmt: str) -> None:
    make_user()
    append(10)
    # Several batches, so the cursor is still open after the first row.
    chunks = audit.export(audit.filtered(), fmt, batch_size=3)
    next(chunks)
    chunks.close()  # a download cut off; an unclosed server-side cursor would warn (an error)
    gc.collect()
    assert audit.verify().ok


# --- the admin page ------------------------------------------------------------------------------


@pytest.fixture
def admin_signed_in(signed_in: SignIn, admin: User) -> FlaskClient:
    """The test's `client`, signed in as the shared `admin`."""
    return signed_in(admin)


def test_page_shows_events_and_the_head_hash(
    client: FlaskClient, admin: User, admin_signed_in: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.REJECTED)
    page = client.get("/admin/audit").get_data(as_text=True)
    assert audit.head_hash() in page.replace("<wbr>", "")
    newest = events()[-1]
    assert f'<code title="{newest.hash}">{newest.hash[:12]}</code>' in page
    assert f'title="{newest.occurred_at:%Y-%m-%d %H:%M:%S} UTC">just now</time>' in page
    assert "in review → rejected" in page
    assert 'Too blurry<br><span class="muted">category: quality</span>' in page
    assert f">clip {clip.id}</a>" in page
    assert db.session.get(User, clip.decided_by_id).email in page


@pytest.mark.parametrize("kind", ["clip", "actor", "action", "dates"])
def test_page_filters(
    client: FlaskClient,
    admin: User,
    admin_signed_in: FlaskClient,
    make_clip: MakeClip,
    make_user: MakeUser,
    clock: FrozenClock,
    kind: str,
) -> None:
    reviewer = make_user(Role.REVIEWER, email="rev@example.com")
    old = make_clip(ClipStatus.WAITING)
    clock.advance(days=3)
    new = make_clip(ClipStatus.APPROVED, reviewer=reviewer)
    query, expected = {
        "clip": (f"clip={old.id}", events(clip_id=old.id)),
        "actor": ("actor=REV@example.com", events(actor_id=reviewer.id)),
        "action": ("action=clip.approved", events(action="clip.approved")),
        "dates": (
            f"since={clock.now.date()}&until={clock.now.date()}",
            [e for e in events() if e.occurred_at == clock.now],
        ),
    }[kind]
    assert expected
    assert len(expected) < count()
    page = client.get(f"/admin/audit?{query}").get_data(as_text=True)
    shown = re.findall(r'<code title="([0-9a-f]{64})">', page)
    assert shown == [event.hash for event in reversed(expected)]
    assert new.id  # both clips exist; the filter chose


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("clip=abc", "Not a valid integer value."),
        ("action=clip.invented", "Not a valid choice."),
        ("since=2026-12-01&until=2026-11-01", "The end date must not be before the start date."),
        ("actor=nobody@example.com", "No account has this email."),
    ],
)
def test_bad_filters_say_what_is_wrong(
    client: FlaskClient, admin: User, admin_signed_in: FlaskClient, query: str, message: str
) -> None:
    response = client.get(f"/admin/audit?{query}")
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_page_is_keyset_paginated_newest_first_without_offset(
    client: FlaskClient, admin: User, admin_signed_in: FlaskClient
) -> None:
    append(120)
    all_hashes = [event.hash for event in reversed(events())]
    offsets: list[Any] = []
    keysets: list[str] = []

    def collect(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if "FROM audit_events" in statement and "OFFSET" in statement.upper():
            # SQLite spells every LIMIT as "LIMIT ? OFFSET ?", with 0 for the offset.
            offsets.append(parameters[-1])
        if "audit_events.id <" in statement:
            keysets.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", collect)
    try:
        seen: list[str] = []
        path: str | None = "/admin/audit?action=auth.sign_in_failed"
        pages = 0
        while path:
            page = client.get(path).get_data(as_text=True)
            seen += re.findall(r'<code title="([0-9a-f]{64})">', page)
            older = re.search(r'rel="next" href="([^"]+)">Older events', page)
            path = older.group(1).replace("&amp;", "&") if older else None
            pages += 1
        newer = re.search(r'rel="prev" href="([^"]+)">← Newer events', page)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", collect)
    assert pages == 3
    sign_ins = [e.hash for e in reversed(events(action="auth.sign_in_failed"))]
    assert seen == sign_ins
    assert len(all_hashes) == 121
    assert set(offsets) <= {0}
    assert keysets
    assert newer is not None
    back = client.get(newer.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert re.findall(r'<code title="([0-9a-f]{64})">', back) == sign_ins[50:100]


def test_verify_button_flashes_the_result(
    app: Flask, client: FlaskClient, admin: User, admin_signed_in: FlaskClient, make_clip: MakeClip
) -> None:
    make_clip(ClipStatus.APPROVED)
    token = csrf_token(client, "/admin/audit")
    response = client.post("/admin/audit/verify", data={"csrf_token": token})
    assert response.status_code == 302
    page = client.get("/admin/audit").get_data(as_text=True)
    assert f"The chain holds: {count()} events, ending in {audit.head_hash()}." in page
    with guard_lifted("UPDATE") as conn:
        conn.execute(sa.text("UPDATE audit_events SET reason = 'x' WHERE id = 4"))
    client.post("/admin/audit/verify", data={"csrf_token": token})
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "The chain is broken: event 4 was changed after it was written" in page


def test_verify_button_gives_a_checkpoint_and_checks_a_kept_head(
    app: Flask, client: FlaskClient, admin: User, admin_signed_in: FlaskClient, make_clip: MakeClip
) -> None:
    make_clip(ClipStatus.APPROVED)
    token = csrf_token(client, "/admin/audit")
    client.post("/admin/audit/verify", data={"csrf_token": token})
    page = client.get("/admin/audit").get_data(as_text=True)
    found = re.search(r"Checkpoint to keep: (greenlight-audit-head [^<]+)", page)
    assert found is not None
    kept = found.group(1).strip()
    assert kept == checkpoint_line(app)
    newest = count()
    with guard_lifted("UPDATE") as conn:
        rewrite_from(conn, newest, "rewritten")
    response = client.post("/admin/audit/verify", data={"csrf_token": token, "expected_head": kept})
    assert response.status_code == 302
    page = client.get("/admin/audit").get_data(as_text=True)
    assert f"The chain is broken: event {count()}, at seq {count()}, has hash" in page


@pytest.mark.parametrize(
    ("value", "message"), [*BAD_HEADS, ("x" * 10_000, "longer than 300 characters")]
)
def test_verify_button_with_a_bad_kept_head_shows_the_error_on_the_form(
    client: FlaskClient,
    admin: User,
    admin_signed_in: FlaskClient,
    make_clip: MakeClip,
    value: str,
    message: str,
) -> None:
    make_clip(ClipStatus.WAITING)
    token = csrf_token(client, "/admin/audit")
    with nothing_changed():
        response = client.post(
            "/admin/audit/verify", data={"csrf_token": token, "expected_head": value}
        )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    errors = re.search(r'<ul class="errors" id="expected_head-errors">(.*?)</ul>', html, re.S)
    assert errors is not None
    assert message.replace("'", "&#39;")[1:] in errors.group(1)
    assert "The chain holds" not in html


def test_api_verify_checks_a_kept_head(
    app: Flask, client: FlaskClient, make_user: MakeUser
) -> None:
    headers = bearer(make_user(Role.ADMIN))
    first = client.get("/api/v1/audit/verify", headers=headers).get_json()
    assert first["checkpoint"] == checkpoint_line(app)
    newest = count()
    with guard_lifted("UPDATE") as conn:
        rewrite_from(conn, newest, "rewritten")
    assert client.get("/api/v1/audit/verify", headers=headers).get_json()["ok"] is True
    result = client.get(
        "/api/v1/audit/verify", query_string={"expect_head": first["checkpoint"]}, headers=headers
    ).get_json()
    assert result["ok"] is False
    assert result["broken_event"] == count()
    assert "events up to and including it were rewritten" in result["problem"]
    assert "checkpoint" not in result


@pytest.mark.parametrize(("value", "message"), BAD_HEADS)
def test_api_verify_with_a_bad_kept_head_is_422(
    client: FlaskClient, make_user: MakeUser, value: str, message: str
) -> None:
    headers = bearer(make_user(Role.ADMIN))
    with nothing_changed():
        response = client.get(
            "/api/v1/audit/verify", query_string={"expect_head": value}, headers=headers
        )
    body = problem(response, 422)
    assert body["errors"][0]["field"] == "expect_head"
    assert message in body["errors"][0]["message"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_download_uses_the_page_filters(
    client: FlaskClient, admin: User, admin_signed_in: FlaskClient, make_clip: MakeClip, fmt: str
) -> None:
    clip = make_clip(ClipStatus.APPROVED)
    make_clip(ClipStatus.REJECTED)
    page = client.get(f"/admin/audit?clip={clip.id}").get_data(as_text=True)
    link = re.search(rf'href="(/admin/audit/export\.{fmt}\?[^"]+)"', page)
    assert link is not None
    response = client.get(link.group(1).replace("&amp;", "&"))
    assert response.status_code == 200
    assert response.is_streamed
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    body = response.get_data(as_text=True)
    if fmt == "csv":
        clip_ids = {row["clip_id"] for row in csv.DictReader(io.StringIO(body))}
        assert clip_ids == {str(clip.id)}
    else:
        assert {json.loads(line)["clip_id"] for line in body.splitlines()} == {clip.id}
    assert len(body.strip().splitlines()) == len(events(clip_id=clip.id)) + (fmt == "csv")


# --- a clip's timeline ---------------------------------------------------------------------------


def test_clip_timeline_is_the_clips_own_events_oldest_first(make_clip: MakeClip) -> None:
    rejected = make_clip(ClipStatus.REJECTED)
    newer = make_clip(ClipStatus.WAITING, previous=rejected, tester=rejected.tester)
    old_timeline = audit.clip_timeline(rejected.id)
    assert [e.action for e in old_timeline] == [
        "clip.created",
        "clip.upload_completed",
        "clip.verified",
        "clip.claimed",
        "clip.rejected",
        "clip.superseded",
    ]
    assert all(e.clip_id == rejected.id for e in old_timeline)
    assert [e.id for e in old_timeline] == sorted(e.id for e in old_timeline)
    assert {e.clip_id for e in audit.clip_timeline(newer.id)} == {newer.id}


TIMELINE = '{% from "_timeline.html" import timeline %}{{ timeline(events, show_actor=show) }}'


@pytest.mark.parametrize("show", [True, False])
def test_timeline_macro_renders_steps_in_order(
    app: Flask, make_clip: MakeClip, clock: FrozenClock, show: bool
) -> None:
    clip = make_clip(ClipStatus.REJECTED)
    clock.advance(hours=2)
    with app.test_request_context():
        html = render_template_string(TIMELINE, events=audit.clip_timeline(clip.id), show=show)
    steps = ["upload started", "upload completed", "passed verification", "claimed for review"]
    positions = [html.index(f"<strong>{step}</strong>") for step in [*steps, "rejected"]]
    assert positions == sorted(positions)
    assert "(in review → rejected)" in html
    assert '<p class="reason">Too blurry</p>' in html
    assert "2 hours ago</time>" in html
    assert f'title="{clock.now:%Y-%m-%d} 12:00:00 UTC"' in html
    reviewer_email = db.session.get(User, clip.decided_by_id).email
    assert (reviewer_email in html) is show


def test_timeline_macro_for_a_clip_without_events(app: Flask) -> None:
    with app.test_request_context():
        html = render_template_string(TIMELINE, events=[], show=True)
    assert "Nothing recorded yet." in html
