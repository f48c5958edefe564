"""The keyset pager: signed cursors, last seen, and ties in the ordering key."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Select, select

from approval import paging
from approval.models import Clip, ClipStatus, Role, User
from tests.plugins.factories import FrozenClock

MakeClip = Callable[..., Clip]


@pytest.fixture
def clips(make_clip: MakeClip, clock: FrozenClock) -> list[Clip]:
    """Seven clips in three runs submitted at the same moment: ties in submitted_at."""
    made = []
    for run in (3, 2, 2):
        made += [make_clip(ClipStatus.WAITING) for _ in range(run)]
        clock.advance(seconds=1)
    return made


def walk(
    selects: Select[tuple[Clip]] | Sequence[Select[tuple[Clip]]],
    order: Sequence[Any],
    *,
    size: int = 2,
    scope: str = "test",
) -> list[int]:
    """The clip ids of every page in turn, following `next` from the first page to the last."""
    seen: list[int] = []
    cursor = None
    while True:
        page = paging.page(scope, selects, order, size=size, cursor=cursor)
        seen += [clip.id for clip in page.items]
        if page.next is None:
            return seen
        cursor = page.next


def by_queue_order(clips: list[Clip]) -> list[int]:
    return [clip.id for clip in sorted(clips, key=lambda c: (c.submitted_at, c.id))]


def test_ties_in_the_first_key_column_are_neither_skipped_nor_repeated(clips: list[Clip]) -> None:
    seen = walk(select(Clip), [Clip.submitted_at, Clip.id])
    assert seen == by_queue_order(clips)


def test_ties_survive_mixed_directions(clips: list[Clip]) -> None:
    seen = walk(select(Clip), [Clip.submitted_at.desc(), Clip.id])
    expected = sorted(clips, key=lambda c: (-c.submitted_at.timestamp(), c.id))  # type: ignore[union-attr]
    assert seen == [clip.id for clip in expected]


def test_rows_of_several_selects_are_merged_in_key_order(clips: list[Clip]) -> None:
    halves = [select(Clip).where(Clip.id % 2 == 0), select(Clip).where(Clip.id % 2 == 1)]
    seen = walk(halves, [Clip.submitted_at, Clip.id])
    assert seen == by_queue_order(clips)


def test_previous_leads_back_to_the_same_page(clips: list[Clip]) -> None:
    order = [Clip.submitted_at, Clip.id]
    first = paging.page("test", select(Clip), order, size=3)
    second = paging.page("test", select(Clip), order, size=3, cursor=first.next)
    back = paging.page("test", select(Clip), order, size=3, cursor=second.previous)
    assert (back.items, back.previous) == (first.items, None)


def test_the_last_page_has_no_next_cursor(clips: list[Clip]) -> None:
    order = [Clip.id.desc()]
    first = paging.page("test", select(Clip), order, size=len(clips) - 1)
    last = paging.page("test", select(Clip), order, size=len(clips) - 1, cursor=first.next)
    assert ([clip.id for clip in last.items], last.next) == ([clips[0].id], None)


def test_a_page_holding_everything_has_no_cursors(clips: list[Clip]) -> None:
    page = paging.page("test", select(Clip), [Clip.id], size=len(clips))
    assert (len(page.items), page.next, page.previous) == (len(clips), None, None)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda cursor: cursor + "x",
        lambda cursor: cursor[:-2],
        lambda cursor: "A" + cursor[1:],
        lambda cursor: "garbage",
    ],
    ids=["appended", "cut", "changed", "made-up"],
)
def test_a_tampered_cursor_is_refused(clips: list[Clip], tamper: Callable[[str], str]) -> None:
    cursor = paging.page("test", select(Clip), [Clip.id], size=2).next
    assert cursor is not None
    with pytest.raises(paging.BadCursor):
        paging.page("test", select(Clip), [Clip.id], size=2, cursor=tamper(cursor))


def test_a_cursor_from_another_list_is_refused(clips: list[Clip]) -> None:
    cursor = paging.page("inbox", select(Clip), [Clip.id], size=2).next
    with pytest.raises(paging.BadCursor):
        paging.page("clips.mine", select(Clip), [Clip.id], size=2, cursor=cursor)


@pytest.mark.parametrize(
    "key",
    [[], [1, 2, 3], ["not a time", 5], [5, 5], ["2026-01-01T00:00:00", 5], [None, 5], [True, 5]],
)
def test_a_signed_cursor_with_a_key_of_the_wrong_shape_is_refused(
    app: Flask, key: list[Any]
) -> None:
    cursor = paging.encode("test", key)
    with pytest.raises(paging.BadCursor):
        paging.page("test", select(Clip), [Clip.submitted_at, Clip.id], size=2, cursor=cursor)


def test_a_bad_cursor_on_a_page_is_a_400_saying_so(
    client: FlaskClient, make_user: Callable[..., User], login: Callable[..., Any]
) -> None:
    login(make_user(Role.TESTER))
    response = client.get("/clips/?cursor=garbage")
    assert (response.status_code, "Bad page link" in response.get_data(as_text=True)) == (
        400,
        True,
    )
