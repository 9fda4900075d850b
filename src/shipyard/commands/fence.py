"""Fencing on the host: a step carries its controller's epoch and runs only if no controller
with a larger one has touched the instances it works on there.

Each instance's directory on its host (beside its host record) keeps the largest epoch it has
seen in `.shipyard-epoch`, with the id of the store that gave it. Every fenced script first
compares its epoch with that of each instance it works for, under a lock (`flock`, where the
host has it): a smaller one is refused (exit FENCED, "fenced: ..." on stderr) and the script
does nothing else; an equal one goes on; a larger one is written (atomically) and goes on. So a
controller paused past its lease that wakes up cannot switch a release or restart a program of
an instance that the controller which took over has touched since, while rollouts of other
instances on the same host (each under a lease and epoch of its own) never fence each other.
The store's lease says who may act; the host's epoch makes a late one's steps harmless where
its own lease check came too late.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from shipyard.commands.script import Script, UnsafeValue, check_name, check_path, quote

FENCED = 75  # the exit status of a refused step (EX_TEMPFAIL)
EPOCH_FILE = ".shipyard-epoch"
LOCK_SECONDS = 30  # how long a step waits for another's compare


def epoch_file(directory: str) -> str:
    return f"{check_path(directory, 'instance directory').rstrip('/')}/{EPOCH_FILE}"


def fence_lines(directory: str, epoch: int, store: str) -> list[str]:
    """sh lines that refuse (exit FENCED) unless `epoch` is at least the one `directory` (an
    instance's, on its host) keeps of the same `store`, then keep the larger of the two there
    (`STORE EPOCH`). An epoch of another store (a new database for the same hosts) or a
    damaged file counts as none. Variables are prefixed; positional parameters untouched."""
    if epoch < 1:
        raise UnsafeValue(f"a fencing epoch is 1 or more, not {epoch}")
    check_name(store, "store id")
    path = quote(epoch_file(directory))
    return [
        f"mkdir -p {quote(directory)} 2>/dev/null || :",
        "(",
        f"  _sy_file={path}; _sy_mine={epoch}; _sy_store={store}",
        f"  if command -v flock >/dev/null 2>&1; then flock -w {LOCK_SECONDS} 9; fi",
        '  _sy_line=$(cat "$_sy_file" 2>/dev/null || :)',
        "  _sy_seen=${_sy_line##* }",
        '  if [ "${_sy_line%% *}" != "$_sy_store" ]; then _sy_seen=0; fi',
        "  case $_sy_seen in ''|*[!0-9]*) _sy_seen=0 ;; esac",
        '  if [ "$_sy_seen" -gt "$_sy_mine" ]; then',
        '    echo "fenced: controller epoch $_sy_mine, but epoch $_sy_seen has touched this'
        ' host since (another controller took over)" >&2',
        f"    exit {FENCED}",
        "  fi",
        '  if [ "$_sy_seen" -lt "$_sy_mine" ]; then',
        '    printf "%s %s\\n" "$_sy_store" "$_sy_mine" > "$_sy_file.new"',
        '    mv -f "$_sy_file.new" "$_sy_file"',
        "  fi",
        f") 9>>{quote(epoch_file(directory) + '.lock')} || exit {FENCED}",
    ]


def fenced(script: Script, directories: Sequence[str], epoch: int, store: str) -> Script:
    """`script`, run only after the fence of `epoch` (of `store`) in each of `directories`
    (the directories of the instances it works for)."""
    lines = [line for d in directories for line in fence_lines(d, epoch, store)]
    return replace(script, text="\n".join(lines) + "\n" + script.text)
