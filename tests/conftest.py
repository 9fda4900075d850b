"""The whole suite's set-up."""

from __future__ import annotations

import signal

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C reaches the commands the tests start: a suite run in the background of a
    non-interactive shell (as `nohup make check &` does) inherits SIGINT ignored, and a child
    would inherit that and never see the SIGINT a Ctrl-C test sends it."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
