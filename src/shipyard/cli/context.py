"""What every command shares: the project file path, and loading the project from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class CliState:
    project_file: Path
