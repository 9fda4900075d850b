"""Big tables drawn fast: aligned columns as one text, without a Rich Table's per-cell layout.

A Rich Table measures every cell of every row to lay out its columns; at 10,000 rows that
takes seconds. Past `BIG` rows, the tables of status and plan are printed by `print_columns`
instead: widths from the longest cell of each column, one line a row, the styles kept on a
terminal and left out otherwise. Cells are already-safe text (masked, escapes shown).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.color import ColorSystem
from rich.console import Console
from rich.style import Style

BIG = 200  # rows; past this, a table is printed as columns
Cell = tuple[str, str]  # text and its style ("" for none)
GAP = "  "
COLOR_SYSTEMS = {
    "standard": ColorSystem.STANDARD,
    "256": ColorSystem.EIGHT_BIT,
    "truecolor": ColorSystem.TRUECOLOR,
    "windows": ColorSystem.WINDOWS,
}


def print_columns(out: Console, headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> None:
    """Print `rows` under `headers` in aligned columns (the last column is not padded)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for index, (cell, _) in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    last = len(headers) - 1
    paint = _painter(out)
    head = [(h, "bold") for h in headers]
    lines = []
    for row in [head, *rows]:
        cells = (
            paint(text if i == last else text.ljust(widths[i]), style)
            for i, (text, style) in enumerate(row)
        )
        lines.append(GAP.join(cells).rstrip())
    out.file.write("\n".join(lines) + "\n")
    out.file.flush()


def _painter(out: Console) -> Callable[[str, str], str]:
    """What styles a cell: with ANSI codes on a colour terminal, else not at all."""
    system = COLOR_SYSTEMS.get(out.color_system or "")
    if not out.is_terminal or out.no_color or system is None:
        return lambda text, style: text
    styles: dict[str, Style] = {}

    def paint(text: str, style: str) -> str:
        if not style or not text.strip():
            return text
        found = styles.get(style)
        if found is None:
            found = styles[style] = Style.parse(style)
        return found.render(text, color_system=system)

    return paint
