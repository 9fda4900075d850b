"""The host-side record: a JSON file beside the releases saying what the host runs, since when."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from shipyard.commands.inspect import sums_lines
from shipyard.commands.release import ReleaseLayout
from shipyard.commands.script import Argv, Script, UnsafeValue, quote, script

FORMAT = 1


@dataclass(frozen=True)
class HostRecord:
    """What the last successful deployment put on the host (`slot`: the live blue/green slot)."""

    service: str
    instance: str
    revision: str
    deployment_id: str
    deployed_at: datetime
    slot: str | None = None

    def __post_init__(self) -> None:
        if self.deployed_at.tzinfo is None:
            raise UnsafeValue("deployed_at must carry a time zone")


def render_record(record: HostRecord) -> str:
    """The record as the file's content: stable, sorted JSON."""
    document = {
        "format": FORMAT,
        "service": record.service,
        "instance": record.instance,
        "revision": record.revision,
        "deployment_id": record.deployment_id,
        "deployed_at": record.deployed_at.isoformat(),
        "slot": record.slot,
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def parse_record(text: str) -> HostRecord:
    """The record in a file's content; UnsafeValue names what is wrong with it."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise UnsafeValue(f"host record is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise UnsafeValue("host record must be a JSON object")
    if document.get("format") != FORMAT:
        raise UnsafeValue(f"host record has format {document.get('format')!r}, expected {FORMAT}")
    fields = {}
    for key in ("service", "instance", "revision", "deployment_id", "deployed_at"):
        value = document.get(key)
        if not isinstance(value, str) or not value:
            raise UnsafeValue(f"host record: {key} must be a non-empty string, not {value!r}")
        fields[key] = value
    slot = document.get("slot")
    if slot is not None and not isinstance(slot, str):
        raise UnsafeValue(f"host record: slot must be a string or null, not {slot!r}")
    try:
        deployed_at = datetime.fromisoformat(fields.pop("deployed_at"))
    except ValueError:
        raise UnsafeValue(f"host record: deployed_at is not an ISO 8601 time: {text!r}") from None
    return HostRecord(deployed_at=deployed_at, slot=slot, **fields)


def write_record_script(layout: ReleaseLayout, record: HostRecord) -> Script:
    """Replaces the host-side record atomically (mode 0644), beside the service's releases,
    and the checksums of the recorded release's files (what drift is measured against)."""
    target, directory = quote(layout.record), quote(layout.service_dir)
    return script(
        [
            f"[ -d {directory} ] || mkdir -p -- {directory}",
            # Without checksums drift says "no checksums recorded": never a failed record.
            "(",
            *sums_lines(layout, record.revision),
            ") || true",
            "umask 022",
            f"printf '%s' {quote(render_record(record))} > {target}.tmp-$$",
            f"mv -f -- {target}.tmp-$$ {target}",
        ]
    )


def read_record_argv(layout: ReleaseLayout) -> Argv:
    """Prints the host-side record; exits 1 when there is none (run with check=False)."""
    return ("cat", "--", layout.record)
