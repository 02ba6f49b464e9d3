"""Hypothesis strategies shared by the interchange tests."""

from __future__ import annotations

from hypothesis import strategies as st

from phase_golem.domain.descriptions import StructuredDescription
from phase_golem.domain.items import BlockedType, Item, ItemStatus, Level, PhasePool, Size

text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30)
opt_text = st.none() | text.filter(lambda s: s.strip() == s and s != "")


@st.composite
def items(draw: st.DrawFn) -> Item:
    number = draw(st.integers(1, 9999))
    status = draw(st.sampled_from([s for s in ItemStatus if s is not ItemStatus.DONE]))
    return Item(
        id=f"WRK-{number:03d}",
        title=draw(text.filter(lambda s: s.strip() == s)),
        status=status,
        created="2026-01-01T00:00:00.000000001+00:00",
        updated="2026-02-01T10:00:00+00:00",
        phase=draw(opt_text),
        size=draw(st.none() | st.sampled_from(list(Size))),
        risk=draw(st.none() | st.sampled_from(list(Level))),
        impact=draw(st.none() | st.sampled_from(list(Level))),
        requires_human_review=draw(st.booleans()),
        origin=draw(opt_text),
        blocked_reason=draw(opt_text),
        blocked_type=draw(st.none() | st.sampled_from(list(BlockedType))),
        tags=tuple(draw(st.lists(text, max_size=3, unique=True))),
        pipeline_type=draw(st.none() | st.sampled_from(["feature", "simple"])),
        description=draw(
            st.none() | st.builds(StructuredDescription, context=text, problem=st.just("p\nq"))
        ),
        phase_pool=draw(st.none() | st.sampled_from(list(PhasePool))),
        last_phase_commit=draw(st.none() | st.just("8957cea715e8f9607e0b6112ab5ef80c00756b1c")),
    )


def _consistent_block_fields(item: Item, blocked_from: ItemStatus) -> Item:
    if item.status is ItemStatus.BLOCKED:
        return item.replace(blocked_from_status=blocked_from)
    return item.replace(blocked_reason=None, blocked_type=None, blocked_from_status=None)


@st.composite
def stored_items(draw: st.DrawFn) -> Item:
    """Items as the store holds them: block fields only on blocked items."""
    blocked_from = draw(
        st.sampled_from(
            [ItemStatus.NEW, ItemStatus.SCOPING, ItemStatus.READY, ItemStatus.IN_PROGRESS]
        )
    )
    return _consistent_block_fields(draw(items()), blocked_from)
