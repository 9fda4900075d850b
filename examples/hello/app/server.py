"""A tiny HTTP service for Shipyard's examples: /healthz, /version, /slow and /; stdlib only.

Settings come from the environment: BIND (address), PORT, RELEASE (the version it reports),
GREETING; `config.json` beside this file, rendered by Shipyard, is read if present.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

HERE = Path(__file__).resolve().parent
CONFIG = json.loads((HERE / "config.json").read_text()) if (HERE / "config.json").exists() else {}
RELEASE = os.environ.get("RELEASE", CONFIG.get("release", "dev"))
GREETING = os.environ.get("GREETING", CONFIG.get("greeting", "Hello"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/healthz":
            self._send(200, "ok\n")
        elif url.path == "/version":
            self._send(200, RELEASE + "\n")
        elif url.path == "/slow":
            seconds = float(parse_qs(url.query).get("seconds", ["5"])[0])
            time.sleep(min(seconds, 60.0))
            self._send(200, RELEASE + "\n")
        elif url.path == "/":
            self._send(200, f"{GREETING} from {RELEASE}\n")
        else:
            self._send(404, "not found\n")

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Release", RELEASE)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    bind = os.environ.get("BIND", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer((bind, port), Handler)
    server.daemon_threads = False  # let requests in flight finish on shutdown
    # shutdown() waits for serve_forever() to return, so it must not run on serve_forever's thread.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"serving {RELEASE} on {bind}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
