"""The failure budget at its boundary: a rolling rollout stops exactly when failures exceed
the budget, and every later batch is skipped with the reason (a property over random sizes)."""

from __future__ import annotations

import asyncio
import math
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.store import RolloutStatus, open_store

from .builders import Fleet, by_instance, flatten, write_project
from .conftest import make_deployer

Count = int | str


def _resolve(value: Count, total: int, *, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    share = int(value.rstrip("%")) * total / 100
    return math.ceil(share) if round_up else math.floor(share)


def expected_outcomes(
    names: list[str], batch: Count, max_failures: Count, failing: set[str]
) -> dict[str, tuple[str, str]]:
    """What the strategy promises, worked out here on its own: (result, reason) by instance."""
    size = max(1, _resolve(batch, len(names), round_up=True))
    budget = _resolve(max_failures, len(names), round_up=False)
    out: dict[str, tuple[str, str]] = {}
    failures, stop = 0, ""
    for start in range(0, len(names), size):
        group = names[start : start + size]
        if stop:
            out.update(dict.fromkeys(group, ("skipped", stop)))
            continue
        out.update({name: ("failed" if name in failing else "success", "") for name in group})
        failures += sum(name in failing for name in group)
        if failures > budget:
            stop = f"failure budget exceeded: {failures} failed > budget {budget}"
    return out


@st.composite
def rollouts(draw: st.DrawFn) -> tuple[int, Count, Count, set[int]]:
    count = draw(st.integers(1, 7))
    batch = draw(st.sampled_from([1, 2, 3, "25%", "50%"]))
    budget = draw(st.sampled_from([0, 1, 2, "25%", "50%"]))
    failing = draw(st.sets(st.integers(0, count - 1)))
    return count, batch, budget, failing


def test_the_model_itself_stops_after_the_batch_that_exceeds_the_budget() -> None:
    names = ["a", "b", "c", "d", "e"]
    found = expected_outcomes(names, 2, 1, {"b", "c"})
    assert [found[n][0] for n in names] == ["success", "failed", "failed", "success", "skipped"]


@settings(max_examples=20, deadline=None)
@given(rollouts())
def test_a_rolling_rollout_stops_exactly_when_its_failure_budget_is_exceeded(
    case: tuple[int, Count, Count, set[int]],
) -> None:
    count, batch, budget, failing_at = case
    hosts = [f"h{index:02d}" for index in range(count)]
    strategy = {"kind": "rolling", "batch": batch, "max_failures": budget}
    with tempfile.TemporaryDirectory(prefix="shipyard-budget-") as temporary:
        directory = Path(temporary)
        path = write_project(
            directory / "project", {"api": {"hosts": hosts, "strategy": strategy}}, hosts=hosts
        )
        flat = flatten(path)
        fleet = Fleet.of(flat)
        for index in failing_at:
            fleet.fail_health(hosts[index], "api")
        with open_store(f"sqlite:///{directory / 'state' / 'state.db'}") as store:
            deployer = make_deployer(flat, store, fleet)
            report = asyncio.run(deployer.deploy(list(flat.instances.values()), request="r"))
            rollout = store.rollout(report.rollout_id)
            began = {d.instance for d in store.deployments(rollout_id=report.rollout_id)}
    names = [f"api@{host}" for host in hosts]
    expected = expected_outcomes(names, batch, budget, {names[i] for i in failing_at})
    found = by_instance(report.outcomes)
    assert {name: found[name].result for name in names} == {
        name: result for name, (result, _) in expected.items()
    }
    for name, (result, reason) in expected.items():
        if result == "skipped":
            assert found[name].reason == reason
            assert name not in began
            assert not fleet[name.partition("@")[2]].calls  # its host was never asked
        else:
            assert name in began
    assert rollout is not None
    assert rollout.status is (RolloutStatus.SUCCESS if report.ok else RolloutStatus.FAILED)
    assert report.ok is (not failing_at)
