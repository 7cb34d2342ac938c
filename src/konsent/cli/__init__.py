"""`konsent` command line, one typer sub-app per area (U4): run, staff, channels, privacy, broadcast."""

from konsent.cli import broadcast, channels, privacy, run, setup, staff
from konsent.cli.common import app

__all__ = ["app", "broadcast", "channels", "privacy", "run", "setup", "staff"]
