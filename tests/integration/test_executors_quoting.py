"""Shell metacharacters go through every way of running a command and arrive literally."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet import Fleet
from shipyard.config.models import Host, SshSettings
from shipyard.executors import Executor, ExecutorPool, Script

pytestmark = pytest.mark.integration

METACHARACTERS = [*";|&$()`'\"\n\t *?[]{}<>\\~#!=%^", "$(", "${", "&&", "||", ">>", "-"]
ATTACKS = [
    "; touch {s}",
    "$(touch {s})",
    "`touch {s}`",
    "| touch {s}",
    "&& touch {s}",
    "'; touch {s}; '",
    '"; touch {s}; "',
    "\ntouch {s}\n",
    "$(touch${{IFS}}{s})",
    "*",
    "$HOME",
    "",
]


def values(sentinel: Path) -> st.SearchStrategy[str]:
    pieces = st.sampled_from(METACHARACTERS) | st.characters(
        codec="utf-8", exclude_characters="\0", exclude_categories=["Cs"]
    )
    texts = st.lists(pieces, max_size=16).map("".join)
    return texts | st.sampled_from([attack.format(s=sentinel) for attack in ATTACKS])


def split_nul(output: str) -> list[str]:
    return output.split("\0")[:-1]


async def round_trips(ex: Executor, args: list[str], scratch: str) -> None:
    """Every builder path carries `args` to the host unchanged."""
    printf = ["printf", "%s\\0"]
    plain = await ex.run([*printf, *args])
    assert split_nul(plain.stdout) == args
    as_root = await ex.run([*printf, *args], sudo=True)
    assert split_nul(as_root.stdout) == args
    env = {f"V{i}": arg for i, arg in enumerate(args)}
    names = " ".join(f'"$V{i}"' for i in range(len(args)))
    via_env = await ex.run(["sh", "-c", f"printf '%s\\0' {names}"], env=env, sudo=True)
    assert split_nul(via_env.stdout) == args
    script = await ex.run(Script('printf "%s\\0" "$@"\n', args=tuple(args)), env=env)
    assert split_nul(script.stdout) == args
    name = "".join(args).replace("/", "_").replace("\0", "")[:100] or "empty"
    directory = f"{scratch}/d-{name}"
    await ex.run(["mkdir", "-p", directory])
    pwd = await ex.run(["pwd", "-P"], cwd=directory)
    assert pwd.stdout == f"{directory}\n"
    await ex.put("\n".join(args).encode(), f"{directory}/f-{name}")
    back = await ex.run(["cat", f"{directory}/f-{name}"])
    assert back.stdout == "\n".join(args)


@pytest.mark.parametrize("kind", ["ssh", "local"])
def test_metacharacters_reach_the_host_literally_and_never_run(
    fleet: Any, tmp_path: Path, kind: str
):
    hosts: Fleet = fleet(4)
    sentinel = tmp_path / "SENTINEL"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    ssh = SshSettings(**hosts.ssh_values())  # type: ignore[arg-type]
    with asyncio.Runner() as loop:
        pool = ExecutorPool(ssh, tmp_path)
        name, host = (hosts.hosts[0].name, Host()) if kind == "ssh" else ("local", Host())
        executor = pool.executor(name, host)

        @settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,
        )
        @given(args=st.lists(values(sentinel), min_size=1, max_size=4))
        def check(args: list[str]) -> None:
            loop.run(round_trips(executor, args, str(scratch)))
            assert not sentinel.exists()

        try:
            check()
        finally:
            loop.run(pool.close())
