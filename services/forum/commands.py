"""The forum's `tica` subcommands (accounts); added to the parser by services/cli.py."""

from __future__ import annotations

from typing import Any


def add_commands(sub: Any) -> None:
    """Register the forum's subcommands on the `tica` parser."""
    return None
