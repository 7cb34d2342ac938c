"""What every `konsent` command shares: the root Typer app, the console and the context."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console

from konsent.settings import get_settings

if TYPE_CHECKING:
    from konsent.flows.context import Konsent

app = typer.Typer(
    help="konsent: messenger conversations and newsletters with a provable legal basis.", no_args_is_help=True
)
console = Console()


def _ctx(migrate: bool = True) -> Konsent:
    from konsent.app import build
    from konsent.logs import setup_logging

    settings = get_settings()
    setup_logging(settings.log_level)
    return build(settings, run_migrations=migrate)
