"""The live panel of `run` and `demo` on a terminal: agents now, latest events, totals.

Off a terminal, or with `--plain`, the same events print one per line instead.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

from rich.console import Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from phase_golem.cli.render import safe
from phase_golem.engine.scheduler import Scheduler


def plain_emit(line: str) -> None:
    sys.stdout.write(safe(line) + "\n")
    sys.stdout.flush()


class LivePanel:
    def __init__(self, keep: int = 12) -> None:
        self.events: deque[str] = deque(maxlen=keep)
        self.scheduler: Scheduler | None = None

    def emit(self, line: str) -> None:
        self.events.append(safe(line))

    def watch(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def render(self) -> RenderableType:
        rows: list[tuple[str, ...]] = []
        totals = ""
        if self.scheduler is not None:
            for run, age in self.scheduler.running():
                rows.append((run.id, run.item_id, run.phase, str(run.attempt), f"{age:5.1f} s"))
            intake = self.scheduler.intake
            source_run = intake.in_progress()
            if source_run is not None:  # a source run in progress shows beside the agents
                names, age = source_run
                rows.append(("source", ", ".join(names) or "-", "intake", "-", f"{age:5.1f} s"))
            summary = self.scheduler.state.summary
            totals = (
                f"phases {summary.phases_executed}  completed {len(summary.items_completed)}  "
                f"blocked {len(summary.items_blocked)}  follow-ups {summary.follow_ups_created}  "
                f"merged {summary.items_merged}  cost ${summary.cost_usd:.4f}"
                + (f"  source runs {intake.fired}" if intake.enabled else "")
            )
        return panel(rows, self.events, totals)


AGENT_COLUMNS = ("RUN", "ITEM", "PHASE", "ATTEMPT", "ELAPSED")


def panel(
    rows: Iterable[Sequence[str]],
    events: Iterable[str],
    totals: str,
    columns: Sequence[str] = AGENT_COLUMNS,
) -> RenderableType:
    """The panel `run` shows and `watch` shows from afar: agents now, latest events, totals.

    Every cell is made printable here (agents and users wrote some of them).
    """
    agents = Table(box=None, pad_edge=False, header_style="bold", expand=False)
    # IDs never wrap; on a narrow terminal the other columns fold first.
    for index, column in enumerate(columns):
        if index < 2:
            agents.add_column(column, no_wrap=True)
        else:
            agents.add_column(column, overflow="fold")
    for row in rows:
        agents.add_row(*(Text(safe(cell)) for cell in row))
    latest = Text("\n".join(safe(line) for line in events) or "waiting for the first event…")
    return Group(
        Panel(agents, title="agents now", title_align="left"),
        Panel(latest, title="latest events", title_align="left"),
        Text(safe(totals)),
    )


@contextmanager
def display(plain: bool) -> Iterator[tuple[Callable[[str], None], Callable[[Scheduler], None]]]:
    """(emit, watch) for a run: a live panel on a terminal, plain lines otherwise."""
    if plain or not sys.stdout.isatty():
        yield plain_emit, lambda scheduler: None
        return
    panel = LivePanel()
    with Live(get_renderable=panel.render, refresh_per_second=4):
        yield panel.emit, panel.watch
