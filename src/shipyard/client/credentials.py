"""Tokens `shipyard login` stored, one per server URL, in a file only its owner may read.

The file is `$SHIPYARD_CREDENTIALS`, else `$XDG_CONFIG_HOME/shipyard/credentials.json`, else
`~/.config/shipyard/credentials.json`; it is written 600 in a 700 directory (write aside, then
rename), and a file others may read is refused rather than used.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from shipyard.errors import UsageError

VARIABLE = "SHIPYARD_CREDENTIALS"


def credentials_path(env: Mapping[str, str]) -> Path:
    if env.get(VARIABLE):
        return Path(env[VARIABLE])
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "shipyard" / "credentials.json"


def normal_url(url: str) -> str:
    """The server's URL as a key: no trailing slash; a bare ADDR:PORT gets http://."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"not a server URL: {url!r} (use http://ADDR:PORT or https://...)")
    return url


def read_all(env: Mapping[str, str]) -> dict[str, str]:
    path = credentials_path(env)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(
            f"{path} may be read by others (mode {stat.S_IMODE(mode):o}); chmod 600 it"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the stored tokens in {path}: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected an object of server URL -> token")
    return {str(k): str(v) for k, v in data.items()}


def token_for(url: str, env: Mapping[str, str]) -> str | None:
    """The token for `url`: $SHIPYARD_TOKEN, else the one `shipyard login` stored."""
    if env.get("SHIPYARD_TOKEN"):
        return env["SHIPYARD_TOKEN"]
    return read_all(env).get(normal_url(url))


def store_token(url: str, token: str, env: Mapping[str, str]) -> Path:
    path = credentials_path(env)
    tokens = read_all(env)
    tokens[normal_url(url)] = token
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    aside = path.with_name(path.name + ".new")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(tokens, out, indent=2, sort_keys=True)
    os.chmod(aside, 0o600)
    os.replace(aside, path)
    return path
