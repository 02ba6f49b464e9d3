"""The listing rules of the read commands (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from phase_golem.domain.errors import DomainError
from phase_golem.domain.items import ItemStatus, Level, archive, new_item
from phase_golem.domain.listing import (
    ACTIVE_SECTIONS,
    SECTIONS,
    EventPage,
    RunCursor,
    RunPage,
    check_section,
    section_of,
    section_sort_key,
)

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def test_sections_follow_the_status_display_order_then_the_archive() -> None:
    assert ACTIVE_SECTIONS == ("in_progress", "blocked", "ready", "scoping", "new")
    assert SECTIONS[len(ACTIVE_SECTIONS) :] == ("done", "closed")
    with pytest.raises(DomainError, match="unknown status section"):
        check_section("asleep")


def test_an_item_is_closed_only_when_archived_with_a_reason() -> None:
    item = new_item("WRK-001", "t", NOW)
    assert section_of(item) == "new"
    assert section_of(archive(item, NOW)) == "new"
    assert section_of(archive(item, NOW, closed_reason="dup")) == "closed"
    done = archive(item.replace(status=ItemStatus.DONE), NOW)
    assert section_of(done) == "done"


def test_within_a_section_impact_high_first_then_id() -> None:
    items = [
        new_item("WRK-003", "t", NOW),
        new_item("WRK-002", "t", NOW, impact=Level.LOW),
        new_item("WRK-004", "t", NOW, impact=Level.HIGH),
        new_item("WRK-001", "t", NOW, impact=Level.LOW),
    ]
    ordered = [i.id for i in sorted(items, key=section_sort_key)]
    assert ordered == ["WRK-004", "WRK-001", "WRK-002", "WRK-003"]


def test_a_limited_page_is_cut_next_to_before_or_right_after_after() -> None:
    a, b = RunCursor("2026-01-01", "run-000001"), RunCursor("2026-01-02", "run-000002")
    assert not RunPage.around(before=None, after=None, limit=5).oldest  # the newest runs
    assert not RunPage.around(before=b, after=None, limit=5).oldest
    assert not RunPage.around(before=b, after=a, limit=5).oldest  # ends at --before
    assert RunPage.around(before=None, after=a, limit=5).oldest  # starts at --after
    assert EventPage.around(before_seq=None, after_seq=None, limit=5).newest  # the last events
    assert EventPage.around(before_seq=9, after_seq=2, limit=5).newest
    assert not EventPage.around(before_seq=None, after_seq=2, limit=5).newest
    assert a < b and RunCursor("2026-01-01", "run-000002") > a  # queued time, then ID
