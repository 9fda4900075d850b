"""A server's stop never hangs: a step that does not finish in its time is logged with where
every task waits, cancelled, and the stop goes on."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shipyard.server.app import stop_within


async def _held_forever() -> None:
    await asyncio.Event().wait()


def test_a_step_past_its_limit_is_logged_with_its_awaits_and_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> bool:
        step = asyncio.ensure_future(_held_forever())
        await stop_within(step, "the held step", 0.1)
        await asyncio.sleep(0)
        return step.cancelled()

    with caplog.at_level(logging.WARNING, logger="shipyard.server"):
        assert asyncio.run(main())
    [record] = caplog.records
    assert "the held step did not finish within 0.1 s" in record.getMessage()
    assert "in _held_forever" in record.getMessage()  # the await it is stuck in


def test_a_failing_step_is_logged_and_the_stop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise RuntimeError("the store went away")

    with caplog.at_level(logging.ERROR, logger="shipyard.server"):
        asyncio.run(stop_within(fails(), "the failing step", 1.0))
    [record] = caplog.records
    assert record.getMessage() == "the failing step failed"
    assert record.exc_info is not None
    assert "the store went away" in str(record.exc_info[1])
