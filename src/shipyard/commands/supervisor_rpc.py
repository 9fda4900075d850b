"""Runs on a host, not in Shipyard: drives the host's supervisord over its XML-RPC socket.

`supervisor.rpc_argv` ships this file's text as `python3 -I -c TEXT conf action names...`, so it
uses the standard library only and nothing of Shipyard. supervisorctl costs about 0.16 s of CPU
per call (its imports); this does the same in a fifth of that, and starts programs without
waiting for them (the health check waits).

`apply`: reloadConfig, then per name add it (new), replace it (its file changed: stopped,
removed, added) or restart it, printing `name: added|updated|restarted`. `status`: a
`name STATE [why]` line per named program it knows, `why` (supervisord's spawn error, else its
description) for a program that is not running. `remove` (its program file unlinked first):
reloadConfig, then each named program still known is stopped and removed, printing
`name: removed` (or `name: absent`). Exit 1, with the reason, when supervisord can't be
reached or refuses.
"""

from __future__ import annotations

import configparser
import http.client
import os
import socket
import sys
import xmlrpc.client
from typing import Any

# States in which `status` says why the program is not running.
ENDED = ("FATAL", "EXITED", "BACKOFF", "STOPPED")
SOCKET_TIMEOUT = 60.0


def _settings(conf: str) -> tuple[str, str | None, str | None]:
    """(server URL, user, password) as supervisorctl would read them from `conf`."""
    ini = configparser.RawConfigParser(strict=False)
    ini.read(conf)
    here = os.path.dirname(os.path.abspath(conf))

    def value(section: str, key: str) -> str | None:
        found = ini.get(section, key, fallback=None)
        return None if found is None else found.replace("%(here)s", here).replace("%%", "%")

    url = value("supervisorctl", "serverurl") or "unix://" + (
        value("unix_http_server", "file") or ""
    )
    return url, value("supervisorctl", "username"), value("supervisorctl", "password")


def _server(url: str, user: str | None, password: str | None) -> Any:
    """The `supervisor` namespace of supervisord's XML-RPC interface at `url`."""

    class Unix(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(SOCKET_TIMEOUT)
            self.sock.connect(url[len("unix://") :])

    class Transport(xmlrpc.client.Transport):
        def make_connection(self, host: Any) -> http.client.HTTPConnection:
            if url.startswith("unix://"):
                return Unix("localhost")
            return super().make_connection(host)

    where = "localhost" if url.startswith("unix://") else url.split("://", 1)[1]
    auth = f"{user}:{password}@" if user else ""
    proxy = xmlrpc.client.ServerProxy(f"http://{auth}{where}/RPC2", transport=Transport())
    return proxy.supervisor


def _apply(rpc: Any, names: list[str]) -> None:
    added, changed, _ = rpc.reloadConfig()[0]
    for name in names:
        if name in changed:
            rpc.stopProcessGroup(name, True)
            rpc.removeProcessGroup(name)
            rpc.addProcessGroup(name)
            print(f"{name}: updated")
        elif name in added:
            rpc.addProcessGroup(name)
            print(f"{name}: added")
        else:
            if rpc.getProcessInfo(name)["statename"] in ("RUNNING", "STARTING", "BACKOFF"):
                rpc.stopProcess(name, True)
            rpc.startProcess(name, False)
            print(f"{name}: restarted")


def _remove(rpc: Any, names: list[str]) -> None:
    rpc.reloadConfig()
    known = {info["group"] for info in rpc.getAllProcessInfo()}
    for name in names:
        if name in known:
            rpc.stopProcessGroup(name, True)
            rpc.removeProcessGroup(name)
            print(f"{name}: removed")
        else:
            print(f"{name}: absent")


def _status(rpc: Any, names: list[str]) -> None:
    for info in rpc.getAllProcessInfo():
        if info["name"] in names:
            ended = info["statename"] in ENDED
            why = (info["spawnerr"] or info["description"]) if ended else ""
            print(info["name"], info["statename"], *str(why).split())


def main(argv: list[str]) -> int:
    conf, action, names = argv[0], argv[1], argv[2:]
    url, user, password = _settings(conf)
    try:
        rpc = _server(url, user, password)
        if action == "apply":
            _apply(rpc, names)
        elif action == "status":
            _status(rpc, names)
        elif action == "remove":
            _remove(rpc, names)
        else:
            print(f"unknown action {action}", file=sys.stderr)
            return 1
    except (OSError, xmlrpc.client.Error) as error:
        print(f"supervisord at {url} ({conf}): {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
