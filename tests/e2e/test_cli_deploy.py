"""Deploying from the CLI on this machine: --force, the audit log's order and pages, and the
progress a CI log sees while a deploy runs."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
import yaml
from cli_runner import shipyard, shipyard_background

pytestmark = pytest.mark.integration  # a real supervisord on this machine

PROGRESS_LINE = re.compile(r"^\d\d:\d\d:\d\d web@local (\S.*)$")


def deployed(project: Path, *args: str) -> dict[str, object]:
    result = shipyard("deploy", "--json", *args, cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def only_outcome(report: dict[str, object]) -> dict[str, object]:
    outcomes = report["outcomes"]
    assert isinstance(outcomes, list)
    assert len(outcomes) == 1
    outcome: dict[str, object] = outcomes[0]
    return outcome


def test_force_redeploys_a_current_instance_and_the_audit_log_says_it_was_forced(
    local_project: Path,
) -> None:
    first = only_outcome(deployed(local_project))
    assert first["result"] == "success"
    assert only_outcome(deployed(local_project))["result"] == "unchanged"

    forced = deployed(local_project, "--force")
    again = only_outcome(forced)
    assert again["result"] == "success"
    assert again["deployment_id"] != first["deployment_id"]
    assert again["revision"] == first["revision"]

    audit = json.loads(shipyard("audit", "--json", cwd=local_project).stdout)
    begun = [e for e in audit if e["target"] == f"rollout:{forced['rollout']}"]
    assert [e["action"] for e in begun] == ["rollout.finish", "rollout.begin"]
    assert "--force" in begun[1]["detail"]["request"].split()


def test_the_no_op_stale_flag_is_gone_and_dry_run_with_force_plans_everything(
    local_project: Path,
) -> None:
    deployed(local_project)
    refused = shipyard("deploy", "--stale", cwd=local_project)
    assert refused.returncode == 2
    assert "--stale" in refused.stderr
    assert only_outcome(deployed(local_project, "--dry-run"))["result"] == "unchanged"
    assert only_outcome(deployed(local_project, "--dry-run", "--force"))["result"] == "planned"


def test_audit_prints_newest_first_as_its_help_says_and_pages_back_with_before(
    local_project: Path,
) -> None:
    deployed(local_project)
    deployed(local_project, "--force")
    assert "newest first" in shipyard("audit", "--help", cwd=local_project).stdout
    everything = json.loads(shipyard("audit", "--json", cwd=local_project).stdout)
    ids = [e["id"] for e in everything]
    assert len(ids) >= 6
    assert ids == sorted(ids, reverse=True)

    pages: list[int] = []
    args = ["audit", "--json", "--limit", "4"]
    while True:
        page = [e["id"] for e in json.loads(shipyard(*args, cwd=local_project).stdout)]
        assert len(page) <= 4
        pages += page
        if len(page) < 4:
            break
        args = ["audit", "--json", "--limit", "4", "--before", str(page[-1])]
    assert pages == ids

    human = shipyard("audit", "--limit", "2", cwd=local_project)
    rows = [line.split()[1] for line in human.stdout.splitlines() if line.startswith("│")]
    assert rows == [str(i) for i in ids[:2]]
    assert f"--before {ids[1]} --limit 2" in human.stdout


def hold_install(project: Path, gate: Path) -> None:
    """Make the service's install wait while `gate` exists (at most 60 s)."""
    file = project / "shipyard.yaml"
    config = yaml.safe_load(file.read_text())
    loop = 'i=0; while [ -e "$1" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done'
    config["templates"]["web"]["commands"]["install"] = ["sh", "-c", loop, "gate", str(gate)]
    file.write_text(yaml.safe_dump(config))


def test_a_deploy_without_a_terminal_prints_each_state_change_while_it_runs(
    local_project: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "hold-install"
    gate.touch()
    hold_install(local_project, gate)
    running = shipyard_background("deploy", cwd=local_project)
    try:
        assert running.stdout is not None
        seen: list[str] = []
        for line in running.stdout:  # stops at "installing": the deploy waits on the gate
            found = PROGRESS_LINE.match(line.rstrip("\n"))
            if found:
                seen.append(found.group(1))
            if seen[-1:] == ["installing"]:
                break
        assert seen[-1:] == ["installing"], seen
        assert running.poll() is None, "the line came before the deploy finished"
        gate.unlink()
        rest, _ = running.communicate(timeout=120)
    finally:
        gate.unlink(missing_ok=True)
        if running.poll() is None:
            running.kill()
            running.communicate()
    later = [m.group(1) for m in map(PROGRESS_LINE.match, rest.splitlines()) if m]
    assert seen[:2] == ["queued", "uploading"]
    assert later[-1] == "success"
    assert len(seen + later) == len(set(seen + later)), "one line per change, not repeats"
    assert running.returncode == 0


def test_a_json_deploy_keeps_stdout_pure_json_and_sends_progress_to_stderr(
    local_project: Path,
) -> None:
    result = shipyard("deploy", "--json", cwd=local_project)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True
    progress = [m.group(1) for m in map(PROGRESS_LINE.match, result.stderr.splitlines()) if m]
    assert progress[0] == "queued"
    assert progress[-1] == "success"


def test_ctrl_c_cancels_the_rollout_and_events_and_logs_tell_what_happened(
    local_project: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "hold-install"
    gate.touch()
    hold_install(local_project, gate)
    running = shipyard_background("deploy", "--json", cwd=local_project)
    seen: list[str] = []
    try:
        assert running.stderr is not None
        for line in running.stderr:  # progress goes to stderr under --json
            seen.append(line)
            found = PROGRESS_LINE.match(line.rstrip("\n"))
            if found and found.group(1) == "installing":
                break
        running.send_signal(signal.SIGINT)
        for line in running.stderr:  # the cancel is in before the install may end
            seen.append(line)
            if "cancelling rollout" in line:
                break
        gate.unlink()
        out, rest = running.communicate(timeout=120)
        err = "".join(seen) + rest
    finally:
        gate.unlink(missing_ok=True)
        if running.poll() is None:
            running.kill()
            running.communicate()
    assert running.returncode == 1, err
    assert "cancelling rollout" in err
    report = json.loads(out)
    assert report["cancelled"] == "interrupted (Ctrl-C)"
    [outcome] = report["outcomes"]
    # The install in flight finished; nothing was switched, so the deployment is skipped.
    assert outcome["result"] == "skipped"
    assert outcome["reason"].startswith("cancelled: interrupted (Ctrl-C)")

    listed = shipyard("events", "--rollout", report["rollout"], "--json", cwd=local_project)
    assert listed.returncode == 0, listed.stderr
    phases = [(e["phase"], e["result"]) for e in json.loads(listed.stdout)]
    assert phases[0] == ("rollout-started", None)
    assert ("rollout-cancelling", None) in phases
    assert phases[-1] == ("rollout-finished", "cancelled")

    log = shipyard("logs", outcome["deployment_id"], "--json", cwd=local_project)
    assert log.returncode == 0, log.stderr
    found = json.loads(log.stdout)
    assert found["status"] == "skipped"
    assert [s["step"] for s in found["steps"]], "the steps that ran have their output"
