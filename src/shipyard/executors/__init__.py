"""Executors: the only code that touches a host (local processes or SSH), and fan-out over many."""

from shipyard.executors.base import (
    DEFAULT_OUTPUT_LIMIT,
    Command,
    CommandFailed,
    CommandResult,
    CommandTimeout,
    Executor,
    Script,
)
from shipyard.executors.factory import ExecutorPool, executor_for, is_local
from shipyard.executors.fanout import DEFAULT_IN_FLIGHT, FanoutResult, HostOutcome, fan_out

__all__ = [
    "DEFAULT_IN_FLIGHT",
    "DEFAULT_OUTPUT_LIMIT",
    "Command",
    "CommandFailed",
    "CommandResult",
    "CommandTimeout",
    "Executor",
    "ExecutorPool",
    "FanoutResult",
    "HostOutcome",
    "Script",
    "executor_for",
    "fan_out",
    "is_local",
]
