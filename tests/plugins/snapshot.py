"""What a refusal must leave alone: rows of the main tables, audit events, stored objects.

Loaded from tests/conftest.py's ``pytest_plugins``. A refusal test wraps the refused call:

    with nothing_changed():
        response = client.post(...)
    assert response.status_code == 403

The snapshot is taken in the test's own session, so a refused operation called directly is
caught even if it only flushed (autoflush) what it should never have written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from approval.extensions import db
from approval.extensions import storage as app_storage
from approval.models import (
    ApiToken,
    AuditEvent,
    Clip,
    Decision,
    Notification,
    PasswordToken,
    ShareLink,
    User,
    UserRole,
)
from approval.ops import storage_gc
from approval.storage import LocalStorage, S3Storage
from tests.plugins.storage import s3_client_for

#: The tables whose row counts a refusal must not change.
COUNTED = {
    "users": User,
    "user_roles": UserRole,
    "password_tokens": PasswordToken,
    "api_tokens": ApiToken,
    "clips": Clip,
    "decisions": Decision,
    "share_links": ShareLink,
    "notifications": Notification,
    "audit_events": AuditEvent,
}


def stored_objects() -> list[str]:
    """Every object key in the current app's storage, sorted."""
    store = app_storage()
    if isinstance(store, LocalStorage):
        return sorted(
            str(path.relative_to(store.root))
            for path in Path(store.root).rglob("*")
            if path.is_file() and not path.relative_to(store.root).parts[0].startswith(".")
        )
    assert isinstance(store, S3Storage)
    listing = s3_client_for(store).list_objects_v2(Bucket=store.bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def collect_garbage(*, delete: bool = True) -> list[str]:
    """Storage garbage collection as the periodic cleanup runs it; the keys it found, sorted."""
    found = storage_gc.collect(app_storage(), grace=storage_gc.grace_period(), delete=delete)
    return sorted(item.key for item in found)


@dataclass(frozen=True)
class Snapshot:
    """Row counts per table, each clip's status, and the stored object keys."""

    rows: dict[str, int]
    clip_statuses: dict[int, str]
    objects: list[str]


def snapshot() -> Snapshot:
    """Take a snapshot in the current app context."""
    rows = {
        name: db.session.scalar(select(func.count()).select_from(model)) or 0
        for name, model in COUNTED.items()
    }
    statuses = {
        id_: str(status) for id_, status in db.session.execute(select(Clip.id, Clip.status))
    }
    return Snapshot(rows=rows, clip_statuses=statuses, objects=stored_objects())


def differences(before: Snapshot, after: Snapshot) -> dict[str, Any]:
    """Only what changed, for a readable failure."""
    old, new = asdict(before), asdict(after)
    changed: dict[str, Any] = {}
    for part in ("rows", "clip_statuses"):
        keys = old[part].keys() | new[part].keys()
        changed.update(
            {f"{part}[{k}]": (old[part].get(k), new[part].get(k))
             for k in sorted(keys, key=str) if old[part].get(k) != new[part].get(k)}
        )  # fmt: skip
    if old["objects"] != new["objects"]:
        changed["objects"] = (old["objects"], new["objects"])
    return changed


@contextmanager
def nothing_changed() -> Iterator[Snapshot]:
    """Assert the block added or removed no row, audit event or stored object, moved no clip."""
    before = snapshot()
    yield before
    after = snapshot()
    assert after == before, f"a refusal changed something: {differences(before, after)}"
