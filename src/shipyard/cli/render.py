"""Rich rendering shared by commands: tables, coloured diffs, JSON output."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from shipyard.plan.diff import DiffEntry
from shipyard.plan.rollout import Plan

ACTION_STYLE = {"create": "green", "update": "yellow", "none": "dim"}


def console() -> Console:
    return Console(highlight=False)


def print_json(value: Any) -> None:
    """Machine output: plain JSON on stdout, no colour, no wrapping."""
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def short(revision: str | None) -> str:
    return revision[:12] if revision else "-"


def plan_table(plan: Plan) -> Table:
    table = Table(title="plan", title_justify="left")
    for column in ("wave", "instance", "site", "host", "revision", "deployed", "action"):
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


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "waves": [
            [
                {
                    "instance": s.name,
                    "service": s.service,
                    "site": s.site,
                    "host": s.host,
                    "revision": s.revision,
                    "deployed_revision": s.deployed_revision,
                    "action": s.action,
                }
                for s in wave
            ]
            for wave in plan.waves
        ],
        "orphans": list(plan.orphans),
        "changes": len(plan.changes),
    }


def print_diff(out: Console, instance: str, entries: Sequence[DiffEntry]) -> None:
    if not entries:
        out.print(f"[bold]{instance}[/]: [dim]no differences[/]")
        return
    out.print(f"[bold]{instance}[/]: {len(entries)} difference(s)")
    for entry in entries:
        if entry.unified is not None:
            out.print(f"  [yellow]~[/] {entry.path} ({entry.kind})")
            out.print(Syntax(entry.unified, "diff", theme="ansi_dark", background_color="default"))
            continue
        if entry.kind == "added":
            out.print(Text(f"  + {entry.path}: {_value(entry.new)}", style="green"))
        elif entry.kind == "removed":
            out.print(Text(f"  - {entry.path}: {_value(entry.old)}", style="red"))
        else:
            line = Text(f"  ~ {entry.path}: ")
            line.append(_value(entry.old), style="red")
            line.append(" -> ")
            line.append(_value(entry.new), style="green")
            out.print(line)


def _value(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
