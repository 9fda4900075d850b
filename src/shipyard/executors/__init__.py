"""Executors: the only code that touches a host (local processes or SSH), and fan-out over many."""

import warnings

# cryptography 51 deprecates DSA, and asyncssh (which still offers ssh-dss keys) touches it as it
# is imported: a warning on every command's stderr that no user can act on. Shipyard never
# offers DSA keys (executors/ssh.py), so this one warning is dropped, before the first import.
warnings.filterwarnings("ignore", message="DSA is deprecated", module="asyncssh")

from shipyard.executors.base import (  # noqa: E402 (after the filter above)
    DEFAULT_OUTPUT_LIMIT,
    Command,
    CommandFailed,
    CommandResult,
    CommandTimeout,
    Executor,
    Script,
)
from shipyard.executors.factory import ExecutorPool, executor_for, is_local  # noqa: E402
from shipyard.executors.fanout import DEFAULT_IN_FLIGHT, FanoutResult, HostOutcome, fan_out  # noqa: E402

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
