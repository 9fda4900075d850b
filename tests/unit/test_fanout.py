"""Fan-out over fake executors: bounded concurrency, per-host outcomes, progress."""

from __future__ import annotations

import asyncio

import pytest

from shipyard.errors import ConnectError
from shipyard.executors import CommandFailed, CommandTimeout, fan_out
from shipyard.executors.fake import FakeExecutor


def fleet_of(count: int) -> list[FakeExecutor]:
    executors = [FakeExecutor(f"h{i:03d}") for i in range(1, count + 1)]
    for executor in executors:
        executor.reply(("uname",), stdout=f"{executor.name}-kernel\n")
    return executors


def test_every_host_gets_its_own_result_in_the_order_given():
    executors = fleet_of(5)
    result = asyncio.run(fan_out(executors, lambda ex: ex.run(["uname", "-r"])))
    assert [o.host for o in result.outcomes] == ["h001", "h002", "h003", "h004", "h005"]
    assert result.ok
    assert result.succeeded["h003"].stdout == "h003-kernel\n"
    assert result.failed == {}
    assert all(ex.commands == [("uname", "-r")] for ex in executors)


def test_no_more_than_the_limit_run_at_once():
    running = peak = 0

    async def task(ex: FakeExecutor) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return ex.name

    result = asyncio.run(fan_out(fleet_of(30), task, limit=7))
    assert peak == 7
    assert len(result.succeeded) == 30


def test_the_default_limit_is_two_hundred():
    running = peak = 0

    async def task(ex: FakeExecutor) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1

    asyncio.run(fan_out(fleet_of(250), task))
    assert peak == 200


def test_a_failing_host_fails_alone_with_its_reason():
    executors = fleet_of(3)
    executors[0].unreachable = "cannot connect to 10.0.0.1: Connection refused"
    executors[1].reply(("uname",), exit_status=2, stderr="uname: boom\n")
    result = asyncio.run(fan_out(executors, lambda ex: ex.run(["uname", "-r"])))
    assert list(result.succeeded) == ["h003"]
    assert isinstance(result.failed["h001"], ConnectError)
    assert result["h001"].reason == "cannot connect to 10.0.0.1: Connection refused"
    assert isinstance(result.failed["h002"], CommandFailed)
    assert "exited with status 2" in result["h002"].reason
    assert "uname: boom" in result["h002"].reason
    assert not result.ok


def test_an_unexpected_exception_is_that_hosts_outcome_too():
    async def task(ex: FakeExecutor) -> None:
        if ex.name == "h002":
            raise RuntimeError("bug")

    result = asyncio.run(fan_out(fleet_of(3), task))
    assert list(result.failed) == ["h002"]
    assert result["h002"].reason == "RuntimeError: bug"


def test_progress_is_reported_as_each_host_finishes():
    executors = fleet_of(4)
    for delay, executor in zip([0.04, 0.01, 0.03, 0.02], executors, strict=True):
        executor.reply(("uname",), delay=delay)
    seen: list[str] = []
    asyncio.run(
        fan_out(executors, lambda ex: ex.run(["uname"]), progress=lambda o: seen.append(o.host))
    )
    assert seen == ["h002", "h004", "h003", "h001"]


def test_a_scripted_slow_command_times_out():
    executor = FakeExecutor("slow")
    executor.reply(("sleep",), delay=5)
    with pytest.raises(CommandTimeout, match=r"did not finish within 0\.01 s"):
        asyncio.run(executor.run(["sleep", "5"], timeout=0.01))


def test_the_limit_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        asyncio.run(fan_out(fleet_of(1), lambda ex: ex.run(["true"]), limit=0))
