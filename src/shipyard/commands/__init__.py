"""Pure command builders: argv tuples, scripts and file contents for hosts, never executed here.

Modules: `script` (Script values, value checks), `release` (layout, install, atomic switch),
`inventory` (links, listing, prune), `supervisor`, `systemd`, `nginx`, `health`, `record`.
A builder returns an argv tuple, a `Script` (run as `script.argv`, or its `text` sent unmodified
on the stdin of `Script.stdin_argv`), or a file's content as `str`; what a command prints is read
by a pure `parse_*` function beside it. Values it can't write safely raise `script.UnsafeValue`.
"""
