"""The dependency graph: which dependencies are met, and cycles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from phase_golem.domain.items import Item, ItemStatus


def unmet_dependencies(item: Item, active: Mapping[str, Item]) -> list[str]:
    """`DEP (status)` for each dependency still pending; absent (archived) or done is met."""
    unmet: list[str] = []
    for dep in item.dependencies:
        other = active.get(dep)
        if other is not None and other.status is not ItemStatus.DONE:
            unmet.append(f"{dep} ({other.status.value})")
    return unmet


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """One dependency cycle as a path `[a, b, ..., a]`, or None. Iterative DFS, any size."""
    white, grey, black = 0, 1, 2
    color: dict[str, int] = {}
    for start in sorted(edges):
        if color.get(start, white) != white:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = [start]
        color[start] = grey
        while stack:
            node, index = stack[-1]
            children = edges.get(node, ())
            if index < len(children):
                stack[-1] = (node, index + 1)
                child = children[index]
                state = color.get(child, white)
                if state == grey:
                    return [*path[path.index(child) :], child]
                if state == white and child in edges:
                    color[child] = grey
                    stack.append((child, 0))
                    path.append(child)
            else:
                color[node] = black
                stack.pop()
                path.pop()
    return None


def cycle_with(
    items: Sequence[Item], item_id: str, dependencies: Sequence[str]
) -> list[str] | None:
    """The cycle that giving `item_id` these dependencies would create, if any."""
    edges: dict[str, Sequence[str]] = {i.id: i.dependencies for i in items}
    edges[item_id] = tuple(dependencies)
    return find_cycle(edges)
