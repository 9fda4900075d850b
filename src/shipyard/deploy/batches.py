"""How a strategy splits a service's instances into batches, and its failure budget. Pure.

Counts may be shares ("25%"): a batch share rounds up (at least one instance), a failure budget
share rounds down. The budget is for the whole rollout of the service, across all its batches,
and it is exceeded when failures are strictly more than it: with a budget of 1, one failure goes
on and a second stops the rollout. Unreachable hosts count as failures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from shipyard.config.models import Strategy


def resolve(value: int | str, total: int, *, round_up: bool) -> int:
    """A count, or a share of `total` rounded up or down."""
    if isinstance(value, int):
        return value
    share = float(value.rstrip("%")) * total / 100
    return math.ceil(share) if round_up else math.floor(share)


@dataclass(frozen=True)
class BatchPlan:
    """The batches of one service's rollout, in order, and how many failures it may absorb."""

    batches: tuple[tuple[str, ...], ...]
    budget: int
    canary: bool  # the first batch is a canary, held for `soak` seconds before the rest

    def exceeded(self, failures: int) -> bool:
        return failures > self.budget

    def describe_stop(self, failures: int) -> str:
        return f"failure budget exceeded: {failures} failed > budget {self.budget}"


def plan_batches(names: Sequence[str], strategy: Strategy) -> BatchPlan:
    """Batches for `strategy`: restart and blue-green in one batch, rolling in batches of
    `batch`, canary a first batch of `canary` then the rest in batches of `batch`."""
    total = len(names)
    budget = resolve(strategy.max_failures, total, round_up=False)
    if total == 0:
        return BatchPlan((), budget, False)
    if strategy.kind in ("restart", "blue-green"):
        return BatchPlan((tuple(names),), budget, False)
    size = max(1, resolve(strategy.batch, total, round_up=True))
    rest = list(names)
    batches: list[tuple[str, ...]] = []
    canary = strategy.kind == "canary"
    if canary:
        first = min(total, max(1, resolve(strategy.canary, total, round_up=True)))
        batches.append(tuple(rest[:first]))
        rest = rest[first:]
    batches += [tuple(rest[i : i + size]) for i in range(0, len(rest), size)]
    return BatchPlan(tuple(batches), budget, canary)
