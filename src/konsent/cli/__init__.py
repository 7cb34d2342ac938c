"""`konsent` command line, one typer sub-app per area (U4): run, staff, channels, privacy, broadcast, ops."""

from konsent.cli import broadcast, channels, ops, prices, privacy, run, setup, staff
from konsent.cli.common import app

__all__ = ["app", "broadcast", "channels", "ops", "prices", "privacy", "run", "setup", "staff"]
