"""The host's process supervisor, as the deploy layer names it: re-exported from commands.control.

The builders live in `shipyard.commands.control`; import them from there. This module keeps the
old import path working while the rest of deploy/ moves over.
"""

from shipyard.commands.control import (
    HEALTH_FILE,
    LAUNCHER_FILE,
    PROGRAM_FILE,
    UNIT_FILE,
    Control,
    Program,
    ReleaseFiles,
    Supervisord,
    Systemd,
    control_for,
    supervisor_paths,
)

__all__ = [
    "HEALTH_FILE",
    "LAUNCHER_FILE",
    "PROGRAM_FILE",
    "UNIT_FILE",
    "Control",
    "Program",
    "ReleaseFiles",
    "Supervisord",
    "Systemd",
    "control_for",
    "supervisor_paths",
]
