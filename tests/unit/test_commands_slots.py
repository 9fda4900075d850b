"""Blue/green slot state as the host reports it: the live slot is the one nginx's site file names;
what the supervisor and `ss` say about a slot's program and its port."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from shipyard.commands.release import Color
from shipyard.commands.slots import (
    Holder,
    SlotProcess,
    parse_slot_process,
    parse_state,
    slot_process_script,
)

PORTS: dict[Color, int] = {"blue": 9001, "green": 9002}
SITE = "site     server 127.0.0.1:9002;"


@pytest.mark.parametrize(
    ("stdout", "live", "recorded", "agrees"),
    [
        ("", None, None, True),
        ("live blue\n", "blue", "blue", True),  # no site file: the record is all there is
        (f"live green\n{SITE}\n", "green", "green", True),
        (f"live blue\n{SITE}\n", "green", "blue", False),  # a switch cut short after nginx's
        (f"{SITE}\n", "green", None, False),  # the first switch, cut short
        ("live blue\nsite     server 127.0.0.1:7000;\n", "blue", "blue", True),  # other ports
    ],
)
def test_the_live_slot_is_the_one_the_nginx_site_file_names(
    stdout: str, live: Color | None, recorded: Color | None, agrees: bool
) -> None:
    state = parse_state(stdout).resolve(PORTS)

    assert (state.live, state.recorded, state.agrees) == (live, recorded, agrees)


def test_draining_and_slot_links_are_read_beside_the_site() -> None:
    state = parse_state(f"live green\ndraining blue 12.5\nblue r1\ngreen r2\n{SITE}\n")

    assert (state.draining, state.drain_until, state.blue, state.green) == (
        "blue",
        12.5,
        "r1",
        "r2",
    )
    assert state.served_port == 9002


STATUS_RUNNING = "status kb-blue                          RUNNING   pid 40, uptime 0:00:03"
STATUS_SPAWN = "status kb-blue                          BACKOFF   can't find command 'nope'"


@pytest.mark.parametrize(
    ("stdout", "state", "description", "exited"),
    [
        (f"{STATUS_RUNNING}\npid 40\n", "RUNNING", "pid 40, uptime 0:00:03", False),
        (f"{STATUS_SPAWN}\npid 0\n", "BACKOFF", "can't find command 'nope'", True),
        ("status kb-blue  FATAL  Exited too quickly\n", "FATAL", "Exited too quickly", True),
        (
            "status kb-blue: ERROR (no such process)\n",
            "UNKNOWN",
            "kb-blue: ERROR (no such process)",
            True,
        ),
        ("status kb-blue  STARTING\npid 41\n", "STARTING", "", False),
    ],
)
def test_the_supervisors_word_on_a_slot_program_is_read(
    stdout: str, state: str, description: str, exited: bool
) -> None:
    found = parse_slot_process(stdout, "kb-blue", "127.0.0.1")

    assert (found.state, found.description, found.exited) == (state, description, exited)


@pytest.mark.parametrize(
    ("listen", "foreign"),
    [
        ("listen 127.0.0.1:9001 40\nholder 40 1 python3\n", []),  # the program itself
        ("listen 127.0.0.1:9001 44\nholder 44 40,1 gunicorn\n", []),  # a process it started
        ("listen 127.0.0.1:9001 77\nholder 77 5,1 nc\n", ["pid 77 (nc)"]),
        ("listen 0.0.0.0:9001 77\nholder 77 5,1 nc\n", ["pid 77 (nc)"]),  # every address
        ("listen 127.0.0.2:9001 77\nholder 77 5,1 nc\n", []),  # another host's address
        ("listen 127.0.0.1:9001 -\n", ["a process this user can't see (another user's)"]),
    ],
)
def test_a_port_held_by_a_process_that_is_not_the_slots_program_is_foreign(
    listen: str, foreign: list[str]
) -> None:
    found = parse_slot_process(f"{STATUS_RUNNING}\npid 40\n{listen}", "kb-blue", "127.0.0.1")

    assert found.foreign() == foreign


def test_a_port_held_while_the_program_is_not_running_is_foreign() -> None:
    assert SlotProcess("BACKOFF", holders=(Holder(40, "python3", (1,)),)).foreign() == [
        "pid 40 (python3)"
    ]


def test_the_slot_process_script_names_the_listener_and_its_ancestors() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        script = slot_process_script("/nonexistent/supervisord.conf", "kb-blue", port)
        done = subprocess.run(script.argv, capture_output=True, text=True, check=True, timeout=30)

    found = parse_slot_process(done.stdout, "kb-blue", "127.0.0.1")
    assert found.listening == 1
    (holder,) = found.holders
    assert holder.pid == os.getpid()
    assert found.pid == 0  # no supervisord there to ask
    assert found.exited
