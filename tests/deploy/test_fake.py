"""The fake executor answers a batch part by part, as `commands.batch` frames and parses it."""

from __future__ import annotations

import asyncio

import pytest

from shipyard.commands.batch import Batch, batch
from shipyard.commands.script import script
from shipyard.deploy.hostops import parts_of, run_parts
from shipyard.errors import ConnectError, ExecutionError
from shipyard.executors.base import CommandTimeout, Script
from shipyard.executors.fake import FakeExecutor, Journal
from shipyard.executors.fake_batch import decode_batch

BOUNDARY = "B0undary0123456789ab"


def three_parts(*, parallel: bool = False, limit: float = 30.0) -> Batch:
    return batch(
        [
            script(["echo one", "printf '%s\\n' \"it's (quoted)\""]),
            script(["(", "echo nested", ")", "echo two"]),
            script(["echo three"]),
        ],
        BOUNDARY,
        parallel=parallel,
        limit=limit,
        guards=["/srv/t/api/.shipyard-steps", None, None],
    )


@pytest.mark.parametrize("parallel", [False, True], ids=["one-by-one", "parallel"])
def test_a_batch_is_read_back_into_its_parts(parallel: bool) -> None:
    built = three_parts(parallel=parallel, limit=12.5)
    decoded = decode_batch(built.script.text)
    assert decoded is not None
    assert decoded.parts == tuple(part.text for part in built.parts)
    assert (decoded.boundary, decoded.limit, decoded.parallel) == (BOUNDARY, 12.5, parallel)


def test_a_plain_script_is_no_batch() -> None:
    assert decode_batch(script(["echo hi"]).text) is None


def test_each_part_gets_its_own_answer_framed_as_the_host_frames_it() -> None:
    fake = FakeExecutor("h1")
    fake.reply_part("echo two", step="step", exit_status=3, stdout="out\n", stderr="bad\n")
    fake.reply_part("echo three", stdout="3")
    built = three_parts()
    result = asyncio.run(fake.run(Script(built.script.text, name="step"), check=False))
    first, second, third = parts_of(built, result, "step", built.limit)
    assert (first.exit_status, first.stdout, first.stderr) == (0, "", "")
    assert (second.exit_status, second.stdout, second.stderr) == (3, "out\n", "bad\n")
    assert (third.exit_status, third.stdout) == (0, "3")
    assert [p.step for p in fake.parts] == ["step"] * 3
    assert "echo nested" in fake.parts[1].text


def test_a_part_reply_for_another_step_does_not_answer() -> None:
    fake = FakeExecutor("h1")
    fake.reply_part("echo one", step="other", exit_status=1)
    parts = asyncio.run(run_parts(fake, list(three_parts().parts), "step"))
    assert [p.exit_status for p in parts] == [0, 0, 0]


@pytest.mark.parametrize(
    ("parallel", "delays", "limit", "stopped"),
    [
        (False, (0.02, 0.02, 0.02), 0.05, True),  # one after another: 0.06 s > 0.05 s
        (True, (0.02, 0.02, 0.02), 0.05, False),  # at once: 0.02 s
        (True, (0.08, 0.0, 0.0), 0.05, True),
    ],
)
def test_the_host_stops_a_batch_past_its_time_limit(
    parallel: bool, delays: tuple[float, ...], limit: float, stopped: bool
) -> None:
    fake = FakeExecutor("h1")
    for word, delay in zip(("one", "two", "three"), delays, strict=True):
        fake.reply_part(f"echo {word}", delay=delay)
    built = three_parts(parallel=parallel, limit=limit)
    result = asyncio.run(fake.run(Script(built.script.text, name="step"), check=False))
    assert (result.exit_status == 124) is stopped
    if stopped:
        with pytest.raises(ExecutionError, match=r"did not finish within 0\.05 s"):
            parts_of(built, result, "step", limit)


def test_a_reply_to_the_step_answers_the_whole_batch() -> None:
    fake = FakeExecutor("h1")
    fake.reply("step", exit_status=127, stderr="timeout: not found")
    result = asyncio.run(fake.run(Script(three_parts().script.text, name="step"), check=False))
    assert (result.exit_status, result.stderr, result.stdout) == (127, "timeout: not found", "")
    assert fake.parts == []  # not read as a batch: answered whole


def test_words_anywhere_in_an_argv_choose_a_reply() -> None:
    fake = FakeExecutor("h1")
    fake.reply_containing(["check-api"], exit_status=1, stdout="down")
    failed = asyncio.run(fake.run(["timeout", "-k", "1", "5", "check-api"], check=False))
    passed = asyncio.run(fake.run(["timeout", "-k", "1", "5", "check-web"], check=False))
    assert (failed.exit_status, failed.stdout, passed.exit_status) == (1, "down", 0)


def test_fakes_sharing_a_journal_record_calls_across_hosts_in_order() -> None:
    journal: Journal = []
    one, two = FakeExecutor("h1", journal=journal), FakeExecutor("h2", journal=journal)

    async def calls() -> None:
        await one.run(["a"])
        await two.run(["b"])
        await one.put(b"x", "/tmp/x")

    asyncio.run(calls())
    assert [(host, call.method, call.command) for host, call in journal] == [
        ("h1", "run", ("a",)),
        ("h2", "run", ("b",)),
        ("h1", "put", None),
    ]


def test_an_unreachable_host_refuses_every_call_with_its_reason() -> None:
    fake = FakeExecutor("h1", unreachable="no route to host")
    with pytest.raises(ConnectError, match="no route to host"):
        asyncio.run(fake.run(["true"]))


def test_a_gated_step_is_held_until_the_test_opens_it() -> None:
    fake = FakeExecutor("h1")
    gate = asyncio.Event()
    fake.reply_part("echo two", gate=gate)
    built = three_parts()

    async def hold() -> tuple[bool, bool]:
        step = asyncio.create_task(fake.run(Script(built.script.text, name="step")))
        await asyncio.sleep(0.02)
        held = not step.done()
        gate.set()
        await step
        return held, step.done()

    assert asyncio.run(hold()) == (True, True)


def test_a_gate_left_shut_runs_into_the_timeout() -> None:
    fake = FakeExecutor("h1")
    fake.reply(["sleep"], gate=asyncio.Event())
    with pytest.raises(CommandTimeout):
        asyncio.run(fake.run(["sleep", "9"], timeout=0.02))
