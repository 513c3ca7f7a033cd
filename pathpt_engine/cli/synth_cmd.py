"""CLI commands: placeholder until the owning area registers its commands."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to `sub`."""
