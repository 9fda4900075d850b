"""Commands about the project itself: init, validate, show, plan, schema."""

from __future__ import annotations

import json

import typer

from shipyard.cli.app import app
from shipyard.config.models import Project


@app.command()
def schema() -> None:
    """Print the JSON Schema of shipyard.yaml, for editors to complete and check it."""
    typer.echo(json.dumps(Project.model_json_schema(), indent=2, sort_keys=True))
