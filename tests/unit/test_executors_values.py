"""The executors' pure parts: command lines, output caps, errors, ssh_config cuts, manifests."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from shipyard.executors import CommandFailed, CommandResult, Script
from shipyard.executors.base import as_command
from shipyard.executors.command_line import ENV_LAUNCHER, SUDO_WITH_PASSWORD, remote_command
from shipyard.executors.runner import Invocation, TailBuffer, signal_status
from shipyard.executors.sshconfig import SshConfig
from shipyard.executors.tarball import build_manifest


@pytest.mark.parametrize(
    ("invocation", "line", "prelude"),
    [
        (Invocation(("echo", "a b", "$x")), "echo 'a b' '$x'", b""),
        (Invocation(("pwd",), cwd="/srv/it's"), "cd -- '/srv/it'\"'\"'s' && pwd", b""),
        (Invocation(("id",), sudo=True), "sudo -n -- id", b""),
        (
            Invocation(("sleep", "9"), timeout=1.5),
            "timeout -k 1 1.5 sleep 9",
            b"",
        ),
        (
            Invocation(("env",), env={"TOKEN": "s3cr3t"}),
            shlex.join(["sh", "-c", ENV_LAUNCHER, "sh", "1", "env"]),
            b"export TOKEN=s3cr3t\n",
        ),
        (
            Invocation(Script("echo hi", args=("x",)), env={"A": "two\nlines"}),
            "sh -s -- x",
            b"export A='two\nlines'\necho hi\n",
        ),
    ],
)
def test_a_run_becomes_one_line_and_a_stdin_prelude(
    invocation: Invocation, line: str, prelude: bytes
):
    command = remote_command(invocation, sudo_password=None)
    assert (command.line, command.prelude) == (line, prelude)


def test_secrets_travel_in_the_prelude_never_in_the_line():
    invocation = Invocation(("deploy",), env={"TOKEN": "s3cr3t"}, sudo=True)
    command = remote_command(invocation, sudo_password="hunter2")
    assert "s3cr3t" not in command.line
    assert "hunter2" not in command.line
    assert command.prelude == b"hunter2\nexport TOKEN=s3cr3t\n"
    assert command.line.startswith(shlex.join(["sh", "-c", SUDO_WITH_PASSWORD, "sh"]))


def test_environment_names_must_be_names():
    with pytest.raises(ValueError, match="not a valid environment variable name"):
        remote_command(Invocation(("env",), env={"A-B": "x"}), sudo_password=None)


def test_the_tail_buffer_keeps_the_last_bytes_and_says_it_dropped_some():
    buffer = TailBuffer(10)
    for chunk in (b"0123", b"4567", b"89ab", b"cd"):
        buffer.write(chunk)
    assert (buffer.getvalue(), buffer.truncated) == (b"456789abcd", True)
    whole = TailBuffer(10)
    whole.write(b"0123456789")
    assert (whole.getvalue(), whole.truncated) == (b"0123456789", False)
    big = TailBuffer(4)
    big.write(b"0123456789")
    assert (big.getvalue(), big.truncated) == (b"6789", True)


def test_a_failure_names_host_command_status_and_the_last_stderr_lines():
    stderr = "".join(f"problem {i}\n" for i in range(1, 15))
    result = CommandResult("web1", ("systemctl", "restart", "my app"), 5, stderr=stderr)
    message = str(CommandFailed(result))
    assert message.startswith("web1: `systemctl restart 'my app'` exited with status 5;")
    assert "problem 14" in message
    assert "problem 5\n" in message
    assert "problem 4\n" not in message


def test_a_signal_reads_like_a_shell_exit_status():
    assert (signal_status("KILL"), signal_status("TERM"), signal_status("NOPE")) == (137, 143, 255)
    result = CommandResult("h", ("sleep", "9"), 137, exit_signal="KILL")
    assert "was killed by signal KILL" in str(CommandFailed(result))


def test_a_script_is_shown_by_its_name_and_first_line():
    script = Script("\nset -e\nrm -rf old\n", args=("a b",), name="prune")
    assert str(script) == "sh -s <<prune: set -e>> 'a b'"


def test_a_command_is_a_list_not_a_string():
    with pytest.raises(TypeError, match="list of arguments"):
        as_command("ls -l")
    with pytest.raises(ValueError, match="empty command"):
        as_command([])


CONFIG = """\
# global
ServerAliveInterval 5
Host web*
  User deploy
Host db1
  HostName 10.0.0.9
Host !web1 *
  Port 2222
"""


def test_ssh_config_is_cut_to_the_blocks_that_can_apply(tmp_path: Path):
    path = tmp_path / "ssh_config"
    path.write_text(CONFIG)
    config = SshConfig(path)
    try:
        web1 = Path(config.paths_for("web1")[0]).read_text()
        db1 = Path(config.paths_for("db1")[0]).read_text()
    finally:
        config.close()
    assert web1 == "# global\nServerAliveInterval 5\nHost web*\n  User deploy\n"
    assert db1 == (
        "# global\nServerAliveInterval 5\nHost db1\n  HostName 10.0.0.9\nHost !web1 *\n"
        "  Port 2222\n"
    )


def test_ssh_config_with_match_or_proxies_is_passed_whole(tmp_path: Path):
    path = tmp_path / "ssh_config"
    path.write_text(CONFIG + "Host bastioned\n  ProxyJump jump\n")
    assert SshConfig(path).paths_for("web1") == [str(path)]
    assert SshConfig(None).paths_for("web1") == []


def test_equal_trees_have_equal_digests_and_any_change_shows(tmp_path: Path):
    for name in ("a", "b"):
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "sub" / "f").write_text("x")
    a, b = build_manifest(tmp_path / "a"), build_manifest(tmp_path / "b")
    assert a.digest == b.digest
    assert [e.path for e in a.entries] == ["sub", "sub/f"]
    (tmp_path / "b" / "sub" / "f").chmod(0o755)
    assert build_manifest(tmp_path / "b").digest != a.digest
    (tmp_path / "a" / "sub" / "g").write_text("")
    assert build_manifest(tmp_path / "a").digest != a.digest
