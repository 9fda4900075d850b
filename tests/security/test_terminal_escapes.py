"""What a host prints is shown, never obeyed: escape sequences written out, Rich markup literal.

A local host whose install, program, health check and nginx check print a title change, a clear
screen, the alternate screen, an OSC 8 link, concealed text, a one-byte C1 CSI, a bidi override
and Rich markup. Every command that shows host text (run, bootstrap, deploy and its failure
reasons, status, audit, diff, show) is run plain, with `--json`, and as on a colour terminal
(FORCE_COLOR): no output holds a control character that did not come from Rich's own styling,
and the markup reads as the host wrote it.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from local_project import HOST, LocalProject, bootstrapped, explain
from rich.console import Console

from shipyard.cli.render import host_text
from shipyard.masking import NO_SECRETS, Masker, safe_text

INSTANCE = f"web@{HOST}"
MARKUP = "[red]x[/red] [link=http://evil.example/]y[/link] [bold blink]z[/]"
HOSTILE = (
    "\x1b]0;pwned-title\x07"  # window title
    "\x1b[2J\x1b[H"  # clear screen, cursor home
    "\x1b[?1049h"  # alternate screen
    "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\"  # OSC 8 hyperlink
    "\x1b[8mconcealed\x1b[0m"  # concealed text
    "\u009b31mc1-csi"  # CSI as one C1 character
    "\x08\x07\x00\x7f"  # backspace, bell, NUL, DEL
    "\u202eevil-bidi\u202c"  # right-to-left override
    f" {MARKUP}"
)
# The same text as `safe_text` shows it.
SHOWN = (
    "\\x1b]0;pwned-title\\x07\\x1b[2J\\x1b[H\\x1b[?1049h"
    "\\x1b]8;;http://evil.example/\\x1b\\click\\x1b]8;;\\x1b\\"
    "\\x1b[8mconcealed\\x1b[0m\\x9b31mc1-csi\\x08\\x07\\x00\\x7f\\u202eevil-bidi\\u202c"
    f" {MARKUP}"
)
# What Rich itself writes on a colour terminal: styles, and the live view's cursor moves.
RICH_OWN = re.compile(r"\x1b\[[0-9;]*m|\x1b\[[0-9]*[AK]|\x1b\[\?25[lh]|\r")
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

# Prints HOSTILE on one line, on both streams, then a second line; exits with argv[1].
HOSTILE_PY = f"""\
import sys
line = ({HOSTILE!r} + "\\n").encode()
for stream in (sys.stdout.buffer, sys.stderr.buffer):
    stream.write(line + b"more output\\n")
    stream.flush()
sys.exit(int(sys.argv[1]))
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HOSTILE, SHOWN),
        ("plain text, tab\tand\nnewline", "plain text, tab\tand\nnewline"),
        ("windows line\r\nends", "windows line\nends"),
        ("progress 10%\rprogress 20%", "progress 10%\\x0dprogress 20%"),
        ("\u2066isolate\u2069 and \u200fmark", "\\u2066isolate\\u2069 and \\u200fmark"),
        ("accents stay: é ü 日本", "accents stay: é ü 日本"),
    ],
)
def test_safe_text_writes_out_what_a_terminal_would_act_on(text: str, expected: str) -> None:
    assert safe_text(text) == expected


def test_host_text_is_never_markup_and_masks_first() -> None:
    out = Console(force_terminal=True, color_system="truecolor", width=400, record=True)
    out.print(host_text(Masker(["s3cret-value"]), f"{HOSTILE} s3cret-value"))
    written = out.export_text(styles=True)
    assert MARKUP in written
    assert "\x1b]8;" not in written
    assert "evil.example" in written
    assert "s3cret-value" not in written
    assert "***" in written
    assert not UNSAFE.search(RICH_OWN.sub("", written))
    assert host_text(NO_SECRETS, "[red]x[/red]").plain == "[red]x[/red]"


@pytest.fixture
def project(tmp_path: Path) -> LocalProject:
    found = LocalProject(tmp_path / "project", tmp_path / "host")
    (found.dir / "app").mkdir(parents=True)
    (found.dir / "app" / "hostile.py").write_text(HOSTILE_PY)
    return found


def configure(project: LocalProject, *, health_exit: int, nginx_check: bool = False) -> None:
    hostile = ["python3", str(project.dir / "app" / "hostile.py")]
    template: dict[str, Any] = {
        "artifact": {"path": "app"},
        "commands": {
            "install": ["python3", "hostile.py", "0"],
            "start": ["sh", "-c", "python3 hostile.py 0; exec sleep 3600"],
        },
        # The config author is trusted, but what the config holds is shown escaped too.
        "env": {"BANNER": HOSTILE.replace("\x00", ""), "HEALTH": str(health_exit)},
        "health": {"command": [*hostile, str(health_exit)], "retries": 0, "timeout": 5},
    }
    services: dict[str, Any] = {"web": {"template": "app", "hosts": [HOST]}}
    host: dict[str, Any] = {}
    if nginx_check:  # a blue/green service makes bootstrap run the host's nginx check
        host = {"nginx": {"test": [*hostile, "1"]}}
        services["front"] = {
            "template": "app",
            "hosts": [HOST],
            "overrides": {"strategy": {"kind": "blue-green", "front": "127.0.0.1:1"}},
        }
    project.write({"app": template}, services, host=host)


def three_ways(project: LocalProject, *args: str, expect: int = 0) -> str:
    """ARGS plain, with --json (which must parse) and on a colour terminal; the plain stdout."""
    project.env["COLUMNS"] = "2000"  # no table cell wrapped
    plain = project.shipyard(*args, expect=expect)
    as_json = project.shipyard(args[0], "--json", *args[1:], expect=expect)
    json.loads(as_json.stdout)
    project.env["FORCE_COLOR"] = "1"
    try:
        project.shipyard(*args, expect=expect)
    finally:
        del project.env["FORCE_COLOR"]
    return plain.stdout + plain.stderr


def assert_every_output_safe(runs: list[subprocess.CompletedProcess[str]]) -> None:
    for done in runs:
        for stream in (done.stdout, done.stderr):
            left = UNSAFE.search(RICH_OWN.sub("", stream))
            assert left is None, f"raw {left.group()!r} in the output of {explain(done)}"
            assert "\x1b]8;" not in stream, explain(done)  # no link, from the host or from markup


def test_host_output_is_shown_literally_by_every_command(project: LocalProject) -> None:
    configure(project, health_exit=0)
    three_ways(project, "show", INSTANCE)
    hostile = str(project.dir / "app" / "hostile.py")
    with bootstrapped(project):
        shown = three_ways(project, "run", "--", "python3", hostile, "0")
        assert SHOWN in shown, shown
        shown = three_ways(project, "run", "--", "python3", hostile, "3", expect=1)
        assert "exit status 3: more output" in shown

        project.shipyard("deploy")
        configure(project, health_exit=1)
        shown = three_ways(project, "deploy", expect=1)
        assert SHOWN in shown, shown  # the health check's last line, in the failure reason
        shown = three_ways(project, "status")
        assert SHOWN in shown, shown
        three_ways(project, "audit")
        three_ways(project, "diff")

        configure(project, health_exit=0, nginx_check=True)
        shown = three_ways(project, "bootstrap", expect=1)
        assert SHOWN in shown, shown
    assert_every_output_safe(project.runs)
