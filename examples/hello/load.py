"""A live request counter for the demo: GET a URL in a loop, count answers per release and failures.

    python3 load.py URL SECONDS [RATE]

Prints a status line as it goes and a summary at the end; exits 1 if any request failed.
Standard library only; bounded by SECONDS.
"""

from __future__ import annotations

import sys
import threading
import time
import urllib.request
from collections import Counter


def main() -> None:
    url, seconds = sys.argv[1], float(sys.argv[2])
    rate = float(sys.argv[3]) if len(sys.argv) > 3 else 50.0
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def one() -> None:
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                key = answer.headers.get("X-Release", "?") if answer.status == 200 else "failed"
        except OSError:
            key = "failed"
        with lock:
            counts[key] += 1

    threads: list[threading.Thread] = []
    next_at = time.monotonic()
    last_print = 0.0
    while time.monotonic() < deadline:
        thread = threading.Thread(target=one)
        thread.start()
        threads.append(thread)
        next_at += 1 / rate
        now = time.monotonic()
        if now - last_print > 0.5:
            with lock:
                shown = "  ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
            print(f"\r  requests  {shown}   ", end="", flush=True)
            last_print = now
        time.sleep(max(0.0, next_at - time.monotonic()))
    for thread in threads:
        thread.join()
    shown = "  ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    print(f"\r  requests  {shown}   \n  total {sum(counts.values())}, failed {counts['failed']}")
    sys.exit(1 if counts["failed"] else 0)


if __name__ == "__main__":
    main()
