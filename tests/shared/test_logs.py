"""tica's JSON logs go to sys.stderr as it is when a line is written: a log line from a server thread
after the stream it started with was closed (a test runner's capture) is written, not an error."""

from __future__ import annotations

import io
import json
import logging
import sys

from shared import logs


def test_log_lines_follow_sys_stderr_and_survive_a_closed_one(monkeypatch):
    """Configured with one stderr, later lines reach the current one as JSON; a closed former one is never used."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    first, second = io.StringIO(), io.StringIO()
    try:
        monkeypatch.setattr(sys, "stderr", first)
        logs.configure("INFO")
        logging.getLogger("tica.test").info("one %s", 1)
        first.close()
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("tica.test").info("two %s", 2)
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    entry = json.loads(second.getvalue().strip())
    assert entry["message"] == "two 2" and entry["level"] == "info"
