"""Rich rendering shared by commands: tables, coloured diffs, JSON output.

Text that did not come from Shipyard itself (host output, failure reasons, store rows) is shown
through `host_text`: secrets masked, escape sequences written out, never parsed as Rich markup.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shipyard.masking import Masker

if TYPE_CHECKING:
    from shipyard.plan.diff import DiffEntry
    from shipyard.plan.rollout import Plan

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
STYLE = {
    "success": "green",
    "failed": "red",
    "rejected": "red",
    "lost": "red",
    "skipped": "yellow",
    "unchanged": "dim",
    "planned": "cyan",
    "deploying": "cyan",
    "cancelled": "yellow",
}

ACTION_STYLE = {"create": "green", "update": "yellow", "none": "dim"}


def console() -> Console:
    return Console(highlight=False)


def host_text(masker: Masker, text: object, style: str = "") -> Text:
    """Untrusted text for a terminal: secrets masked, control characters shown, no markup."""
    return Text(masker.shown(str(text)), style=style)


def print_json(value: Any, *, masker: Masker) -> None:
    """Machine output: plain JSON on stdout, no colour, no wrapping; secrets masked.

    JSON escapes every control character (`\\u001b`), so a terminal shows them literally.
    Indented for a person at a terminal; on one line for a pipe, where the C encoder makes
    10,000 rows in a tenth of the time. Every string is masked before it is encoded, and the
    text once more as written (what `default=str` made of another object included).
    """
    indent = 2 if sys.stdout.isatty() else None
    text = json.dumps(masker.json(value), default=str, indent=indent, sort_keys=True)
    print(masker.text(text))


def short(revision: str | None) -> str:
    return revision[:12] if revision else "-"


PLAN_HEADERS = ("wave", "instance", "site", "host", "revision", "deployed", "action")


def plan_cells(plan: Plan) -> list[list[tuple[str, str]]]:
    """The plan's rows as cells for `columns.print_columns` (names are the config's own)."""
    return [
        [
            (str(number), ""),
            (step.name, ""),
            (step.site, ""),
            (step.host, ""),
            (short(step.revision), ""),
            (short(step.deployed_revision), ""),
            (step.action, ACTION_STYLE[step.action]),
        ]
        for number, wave in enumerate(plan.waves, 1)
        for step in wave
    ]


def plan_table(plan: Plan) -> Table:
    table = Table(title="plan", title_justify="left")
    for column in PLAN_HEADERS:
        table.add_column(column)
    for number, wave in enumerate(plan.waves, 1):
        for step in wave:
            table.add_row(
                str(number),
                step.name,
                step.site,
                step.host,
                short(step.revision),
                short(step.deployed_revision),
                Text(step.action, style=ACTION_STYLE[step.action]),
            )
    return table


def print_diff(
    out: Console, instance: str, entries: Sequence[DiffEntry], *, masker: Masker
) -> None:
    from rich.syntax import Syntax

    shown = masker.shown
    name = Text(shown(instance), style="bold")
    if not entries:
        out.print(Text.assemble(name, ": ", ("no differences", "dim")))
        return
    out.print(Text.assemble(name, f": {len(entries)} difference(s)"))
    for entry in entries:
        path = shown(entry.path)
        if entry.unified is not None:
            out.print(Text.assemble("  ", ("~", "yellow"), f" {path} ({shown(entry.kind)})"))
            unified = shown(entry.unified)
            out.print(Syntax(unified, "diff", theme="ansi_dark", background_color="default"))
            continue
        if entry.kind == "added":
            out.print(Text(f"  + {path}: {shown(_value(entry.new))}", style="green"))
        elif entry.kind == "removed":
            out.print(Text(f"  - {path}: {shown(_value(entry.old))}", style="red"))
        else:
            line = Text(f"  ~ {path}: ")
            line.append(shown(_value(entry.old)), style="red")
            line.append(" -> ")
            line.append(shown(_value(entry.new)), style="green")
            out.print(line)


def _value(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
