"""Batches and the failure budget: shares round as documented, the budget is exact."""

from __future__ import annotations

import pytest

from shipyard.config.models import Strategy
from shipyard.deploy.batches import plan_batches

NAMES = [f"i{n}" for n in range(1, 11)]


@pytest.mark.parametrize(
    ("strategy", "sizes", "budget"),
    [
        (Strategy(), [10], 0),
        (Strategy(kind="rolling", batch=3), [3, 3, 3, 1], 0),
        (Strategy(kind="rolling", batch="25%", max_failures="25%"), [3, 3, 3, 1], 2),
        (Strategy(kind="rolling", batch="1%"), [1] * 10, 0),
        (Strategy(kind="rolling", batch=20, max_failures=2), [10], 2),
        (Strategy(kind="canary", canary=1, batch=5), [1, 5, 4], 0),
        (Strategy(kind="canary", canary="20%", batch="50%"), [2, 5, 3], 0),
        (Strategy(kind="blue-green", max_failures=1), [10], 1),
    ],
)
def test_batches_and_budget(strategy: Strategy, sizes: list[int], budget: int) -> None:
    plan = plan_batches(NAMES, strategy)
    assert [len(b) for b in plan.batches] == sizes
    assert [n for b in plan.batches for n in b] == NAMES
    assert plan.budget == budget


def test_the_budget_is_exceeded_only_by_strictly_more_failures() -> None:
    plan = plan_batches(NAMES[:4], Strategy(kind="rolling", max_failures=1))
    assert not plan.exceeded(1)
    assert plan.exceeded(2)
    assert plan.describe_stop(2) == "failure budget exceeded: 2 failed > budget 1"
