"""The SSH executor against real sshd hosts: commands, files, sudo, timeouts, limits, fan-out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from fleet import Fleet
from shipyard.config.models import Host, SecretSource, SshSettings
from shipyard.errors import ConnectError, TransferError
from shipyard.executors import (
    CommandFailed,
    CommandTimeout,
    Executor,
    ExecutorPool,
    Script,
    fan_out,
)

pytestmark = pytest.mark.integration

T = TypeVar("T")
Scenario = Callable[[Executor], Awaitable[T]]


def on_host(fleet: Fleet, project: Path, scenario: Scenario[T], **options: Any) -> T:
    """Run `scenario` with an executor for the fleet's first host, then close the connection."""

    async def main() -> T:
        ssh = SshSettings(**fleet.ssh_values())  # type: ignore[arg-type]
        async with ExecutorPool(ssh, project, **options) as pool:
            return await scenario(pool.executor(fleet.hosts[0].name, Host()))

    return asyncio.run(main())


@pytest.fixture
def hosts(fleet: Any) -> Fleet:
    found: Fleet = fleet(4)
    return found


def test_a_command_runs_on_the_host_and_its_output_comes_back(hosts: Fleet, tmp_path: Path):
    result = on_host(hosts, tmp_path, lambda ex: ex.run(["sh", "-c", "echo out; echo err >&2"]))
    assert (result.ok, result.stdout, result.stderr) == (True, "out\n", "err\n")
    assert result.host == hosts.hosts[0].name
    assert result.argv == ("sh", "-c", "echo out; echo err >&2")


def test_a_failed_command_names_host_command_status_and_stderr_tail(hosts: Fleet, tmp_path: Path):
    script = "for i in $(seq 1 30); do echo line$i >&2; done; exit 3"
    with pytest.raises(CommandFailed) as failed:
        on_host(hosts, tmp_path, lambda ex: ex.run(["sh", "-c", script]))
    message = str(failed.value)
    assert message.startswith(f"{hosts.hosts[0].name}: `sh -c ")
    assert "exited with status 3" in message
    assert "line30" in message
    assert "line21" in message
    assert "line20" not in message  # only the last ten lines
    assert failed.value.result.exit_status == 3


def test_check_false_returns_the_failure_as_a_result(hosts: Fleet, tmp_path: Path):
    result = on_host(hosts, tmp_path, lambda ex: ex.run(["false"], check=False))
    assert (result.ok, result.exit_status) == (False, 1)


def test_every_command_of_a_run_shares_one_connection(hosts: Fleet, tmp_path: Path):
    async def scenario(ex: Executor) -> list[str]:
        return [(await ex.run(["sh", "-c", "echo $SSH_CLIENT"])).stdout for _ in range(5)]

    assert len(set(on_host(hosts, tmp_path, scenario))) == 1


def test_many_commands_at_once_on_one_host_share_its_connection(hosts: Fleet, tmp_path: Path):
    async def scenario(ex: Executor) -> set[str]:
        results = await asyncio.gather(
            *(ex.run(["sh", "-c", "sleep 0.05; echo $SSH_CLIENT"]) for _ in range(25))
        )
        return {r.stdout for r in results}

    assert len(on_host(hosts, tmp_path, scenario)) == 1


def test_stdin_and_working_directory_reach_the_command(hosts: Fleet, tmp_path: Path):
    async def scenario(ex: Executor) -> tuple[str, str]:
        cat = await ex.run(["cat"], stdin="line one\nline two\n")
        pwd = await ex.run(["pwd"], cwd=hosts.hosts[0].root)
        return cat.stdout, pwd.stdout.strip()

    assert on_host(hosts, tmp_path, scenario) == ("line one\nline two\n", hosts.hosts[0].root)


def test_environment_arrives_by_stdin_never_in_the_process_list(hosts: Fleet, tmp_path: Path):
    secret = "s3cret 'quoted' \"double\" $(not run)\nsecond line"
    probe = 'printf "%s" "$TOKEN" > "$1"; cat; ps -eo args > "$2"'
    out, procs = tmp_path / "token", tmp_path / "ps"

    async def scenario(ex: Executor) -> str:
        result = await ex.run(
            ["sh", "-c", probe, "sh", str(out), str(procs)],
            env={"TOKEN": secret},
            stdin="and the caller's stdin\n",
        )
        return result.stdout

    assert on_host(hosts, tmp_path, scenario) == "and the caller's stdin\n"
    assert out.read_text() == secret
    assert "s3cret" not in procs.read_text()


def test_a_script_gets_its_arguments_environment_and_directory(hosts: Fleet, tmp_path: Path):
    script = Script('set -e\necho "$1|$2|$GREETING"\npwd\n', args=("two words", "it's"))
    result = on_host(
        hosts, tmp_path, lambda ex: ex.run(script, env={"GREETING": "hi there"}, cwd="/tmp")
    )
    assert result.stdout == "two words|it's|hi there\n/tmp\n"
    assert result.script == script


def test_sudo_runs_the_command_through_sudo(hosts: Fleet, tmp_path: Path):
    result = on_host(hosts, tmp_path, lambda ex: ex.run(["sh", "-c", "echo $SUDO_USER"], sudo=True))
    assert result.stdout == "root\n"


def test_a_sudo_password_goes_to_sudo_never_to_the_command(
    hosts: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("FLEET_SUDO_PASSWORD", "pa$$ word")
    values = hosts.ssh_values(sudo_password=SecretSource(env="FLEET_SUDO_PASSWORD"))

    async def main() -> tuple[str, str]:
        async with ExecutorPool(SshSettings(**values), tmp_path) as pool:  # type: ignore[arg-type]
            ex = pool.executor(hosts.hosts[0].name, Host(sudo=True))
            cat = await ex.run(["cat"], stdin="only this\n")
            ps = await ex.run(["sh", "-c", "echo $SUDO_USER; ps -eo args"], env={"A": "b"})
            return cat.stdout, ps.stdout

    cat, ps = asyncio.run(main())
    assert cat == "only this\n"
    assert ps.startswith("root\n")
    assert "pa$$ word" not in ps


def test_a_timed_out_command_is_stopped_on_the_host(hosts: Fleet, tmp_path: Path):
    marker = "sleep 31.25"

    async def scenario(ex: Executor) -> tuple[float, CommandTimeout, str]:
        start = time.monotonic()
        with pytest.raises(CommandTimeout) as timed_out:
            await ex.run(["sh", "-c", f"echo started; {marker}; echo never"], timeout=0.5)
        elapsed = time.monotonic() - start
        left = await ex.run(["pgrep", "-f", marker], check=False)
        return elapsed, timed_out.value, left.stdout

    elapsed, error, left = on_host(hosts, tmp_path, scenario)
    assert elapsed < 3.4  # the host stopped it: our own backstop comes at 0.5 + 3 s
    assert "did not finish within 0.5 s" in str(error)
    assert error.result.stdout == "started\n"
    assert left == ""


def test_output_beyond_the_cap_keeps_the_tail(hosts: Fleet, tmp_path: Path):
    script = "seq 1 100000; seq 1 50000 >&2"
    result = on_host(hosts, tmp_path, lambda ex: ex.run(["sh", "-c", script]), output_limit=10_000)
    assert len(result.stdout) == 10_000
    assert result.stdout.endswith("99999\n100000\n")
    assert (result.stdout_truncated, result.stderr_truncated) == (True, True)
    assert result.stderr.endswith("50000\n")


def test_the_default_cap_is_one_mebibyte_per_stream(hosts: Fleet, tmp_path: Path):
    result = on_host(hosts, tmp_path, lambda ex: ex.run(["head", "-c", "3000000", "/dev/zero"]))
    assert (len(result.stdout), result.stdout_truncated) == (1024 * 1024, True)


def test_put_writes_atomically_with_the_mode_asked_and_get_reads_back(hosts: Fleet, tmp_path: Path):
    big = bytes(range(256)) * 12_000  # 3 MB: several windows of flow control
    source = tmp_path / "big.bin"
    source.write_bytes(big)
    # The simulated hosts share this machine's disk: each test writes into its own directory.
    host_dir = tmp_path / "on-host"
    host_dir.mkdir()
    remote = f"{host_dir}/big.bin"
    back = tmp_path / "back.bin"

    async def scenario(ex: Executor) -> str:
        await ex.put(source, remote)
        await ex.get(remote, back)
        await ex.put(b"secret\n", f"{host_dir}/secret", mode=0o600)
        await ex.put(b"#!/bin/sh\n", f"{host_dir}/tool", mode=0o750)
        modes = ["big.bin", "secret", "tool"]
        stat = ["stat", "-c", "%a", *(f"{host_dir}/{m}" for m in modes)]
        return (await ex.run(stat)).stdout

    assert on_host(hosts, tmp_path, scenario) == "644\n600\n750\n"
    assert back.read_bytes() == big
    assert not list(host_dir.glob("*shipyard-tmp*"))


def test_transfer_errors_name_the_path_and_the_reason(hosts: Fleet, tmp_path: Path):
    with pytest.raises(TransferError, match=r"upload to /nonexistent/dir/file failed"):
        on_host(hosts, tmp_path, lambda ex: ex.put(b"x", "/nonexistent/dir/file"))
    with pytest.raises(TransferError, match=r"download of /nonexistent/file failed"):
        on_host(hosts, tmp_path, lambda ex: ex.get("/nonexistent/file", tmp_path / "f"))
    assert not (tmp_path / "f").exists()


def test_a_directory_goes_up_as_one_tar_and_identical_content_is_not_sent_again(
    hosts: Fleet, tmp_path: Path
):
    local = tmp_path / "release"
    (local / "bin").mkdir(parents=True)
    (local / "bin" / "run").write_text("#!/bin/sh\necho run\n")
    (local / "bin" / "run").chmod(0o755)
    (local / "conf.ini").write_text("a = 1\n")
    (local / "link").symlink_to("conf.ini")
    remote = f"{tmp_path}/on-host/release"

    async def scenario(ex: Executor) -> list[Any]:
        first = await ex.put_dir(local, remote)
        again = await ex.put_dir(local, remote)
        (local / "conf.ini").write_text("a = 2\n")
        (local / "bin" / "run").unlink()
        changed = await ex.put_dir(local, remote)
        listing = await ex.run(["sh", "-c", f"cd {remote} && find . | sort && cat link"])
        return [first, again, changed, listing.stdout]

    first, again, changed, listing = on_host(hosts, tmp_path, scenario)
    assert (first, again, changed) == (True, False, True)
    assert listing == "./n./.shipyard-manifest\n./bin\n./conf.ini\n./link\na = 2\n".replace(
        "./n", ".\n"
    )


def test_fan_out_reaches_every_host_and_isolates_the_unreachable_one(hosts: Fleet, tmp_path: Path):
    ssh = SshSettings(**hosts.ssh_values(connect_timeout=2.0))  # type: ignore[arg-type]
    seen: list[str] = []

    async def main() -> Any:
        async with ExecutorPool(ssh, tmp_path) as pool:
            executors = [pool.executor(h.name, Host()) for h in hosts.hosts]
            executors.append(pool.executor("ghost", Host(address=hosts.silent_address())))
            return await fan_out(
                executors,
                lambda ex: ex.run(["cat", "/proc/sys/kernel/osrelease"]),
                limit=2,
                progress=lambda outcome: seen.append(outcome.host),
            )

    result = asyncio.run(main())
    assert sorted(result.succeeded) == sorted(h.name for h in hosts.hosts)
    assert list(result.failed) == ["ghost"]
    assert isinstance(result.failed["ghost"], ConnectError)
    assert "cannot connect to 127." in result["ghost"].reason
    assert sorted(seen) == sorted([*result.succeeded, "ghost"])
