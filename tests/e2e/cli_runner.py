"""Running the real `shipyard` CLI in a subprocess, as a user or a CI job would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLI_TIMEOUT = 120.0


def cli_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **extra}


def shipyard(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`shipyard ARGS` in `cwd`, stdout and stderr captured (so neither is a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "shipyard", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env or cli_env(),
        check=False,
        timeout=CLI_TIMEOUT,
    )


def shipyard_background(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """`shipyard ARGS` started, its stdout a pipe read line by line while it runs."""
    return subprocess.Popen(
        [sys.executable, "-m", "shipyard", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
