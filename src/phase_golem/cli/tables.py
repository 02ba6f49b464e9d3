"""Tables that fit the terminal without ever cutting an ID.

A table that fits at its natural width is written as plain aligned lines, without loading
rich (most tables, and every table sent to a pipe). On a narrower terminal it first leaves
out its least needed columns (in the order it names them), then lets rich fold the
remaining text columns onto more lines. ID columns never wrap, never shrink and never lose
characters to an ellipsis; should the IDs alone be wider than the terminal, the table is
printed wider than it (the terminal wraps the lines) rather than cutting one.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, TextIO

from phase_golem.cli.output import safe

if TYPE_CHECKING:
    from rich.table import Table

GAP = 2  # spaces between two columns (rich's default padding of one on each side)
UNBOUNDED_WIDTH = 200  # off a terminal, without COLUMNS: wide enough not to wrap a row


def terminal_width(stream: TextIO | None = None) -> int:
    """COLUMNS when set, else the terminal's width, else `UNBOUNDED_WIDTH` (pipes, files)."""
    raw = os.environ.get("COLUMNS", "")
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    stream = stream or sys.stdout
    try:
        if stream.isatty():
            return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        pass
    return UNBOUNDED_WIDTH


def cell_width(text: str) -> int:
    """Columns `text` takes on a terminal (wide East Asian characters take two)."""
    if text.isascii():
        return len(text)
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


class IdTable:
    def __init__(
        self,
        headers: Sequence[str],
        *,
        ids: Collection[str],
        droppable: Sequence[str] = (),
        min_text_width: int = 12,
    ) -> None:
        """`droppable`: columns to leave out on a narrow terminal, least needed first;
        one is dropped while the other text columns would get less than `min_text_width`."""
        unknown = (set(ids) | set(droppable)) - set(headers)
        if unknown:
            raise ValueError(f"no such columns: {sorted(unknown)}")
        self.headers = tuple(headers)
        self.ids = frozenset(ids)
        self.droppable = tuple(droppable)
        self.min_text_width = min_text_width
        self.rows: list[tuple[tuple[str, ...], bool]] = []
        self._widths = [cell_width(h) for h in self.headers]

    def add_row(self, *cells: str, dim: bool = False) -> None:
        if len(cells) != len(self.headers):
            raise ValueError(f"{len(cells)} cells for {len(self.headers)} columns")
        cells = tuple(safe(c) for c in cells)  # one line, escapes shown, secrets removed
        self.rows.append((cells, dim))
        self._widths = [max(w, cell_width(c)) for w, c in zip(self._widths, cells, strict=True)]

    def _is_id(self, index: int) -> bool:
        return self.headers[index] in self.ids

    def _natural(self, shown: Sequence[int]) -> int:
        return sum(self._widths[i] for i in shown) + GAP * (len(shown) - 1)

    def columns_for(self, width: int) -> list[int]:
        """Indexes of the columns shown at `width`."""
        shown = list(range(len(self.headers)))
        for name in self.droppable:
            if self._fits(shown, width):
                break
            shown.remove(self.headers.index(name))
        return shown

    def _fits(self, shown: list[int], width: int) -> bool:
        if self._natural(shown) <= width:
            return True
        fixed = sum(self._widths[i] for i in shown if self._is_id(i))
        texts = sum(1 for i in shown if not self._is_id(i))
        room = width - fixed - GAP * (len(shown) - 1)
        return texts > 0 and room >= self.min_text_width * texts

    def narrowest(self, shown: Sequence[int]) -> int:
        """The width below which rich would start cutting the ID columns among `shown`."""
        ids = sum(self._widths[i] for i in shown if self._is_id(i))
        texts = sum(1 for i in shown if not self._is_id(i))
        return ids + texts + GAP * (len(shown) - 1)

    def plain_lines(self) -> list[str]:
        """Every column at its natural width, left-aligned (the layout rich would choose)."""

        def line(cells: Sequence[str]) -> str:
            padded = [
                c + " " * (w - cell_width(c)) for c, w in zip(cells, self._widths, strict=True)
            ]
            return (" " * GAP).join(padded).rstrip()

        return [line(self.headers), *(line(cells) for cells, _ in self.rows)]

    def rich_table(self, shown: Sequence[int]) -> Table:
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, pad_edge=False, header_style="bold")
        for index in shown:
            if self._is_id(index):
                table.add_column(self.headers[index], no_wrap=True, overflow="ignore")
            else:
                table.add_column(self.headers[index], overflow="fold")
        for cells, dim in self.rows:
            # Text, not str: a title like "[fix] x" is text, never rich markup.
            table.add_row(*(Text(cells[i]) for i in shown), style="dim" if dim else None)
        return table

    def print(self, stream: TextIO | None = None, width: int | None = None) -> None:
        stream = stream or sys.stdout
        width = width or terminal_width(stream)
        if self._natural(range(len(self.headers))) <= width:
            stream.write("".join(f"{line}\n" for line in self.plain_lines()))
            return
        from rich.console import Console

        shown = self.columns_for(width)
        width = max(width, self.narrowest(shown))
        Console(file=stream, width=width, soft_wrap=False, highlight=False).print(
            self.rich_table(shown)
        )
