"""What every `konsent` command shares: the root Typer app, the console and the context."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup

from konsent.settings import Settings, get_settings

if TYPE_CHECKING:
    from konsent.flows.context import Konsent


class _OneLineErrors(TyperGroup):
    """Bad input of any command prints one line and exits 2, never a traceback (U4, #12)."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click Context
        from konsent.domain.errors import DomainError, NotFound

        try:
            return super().invoke(ctx)
        except DomainError as exc:
            hint = " (check the tenant slug and ids; `konsent tenant list` names the tenants)"
            fail(f"{exc}{hint if isinstance(exc, NotFound) else ''}")
        except ValueError as exc:  # e.g. an unknown role: `'superuser' is not a valid Role`
            fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        except OSError as exc:  # a file named on the command line that cannot be read
            fail(f"{exc.strerror or type(exc).__name__}: {exc.filename or ''}".rstrip(": "))
        return None


def fail(message: str) -> NoReturn:
    """One line on stderr, exit code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


app = typer.Typer(
    help="konsent: messenger conversations and newsletters with a provable legal basis.",
    no_args_is_help=True,
    cls=_OneLineErrors,
)
console = Console()


def _ctx(
    migrate: bool = True, host: str | None = None, port: int | None = None, links: bool = False
) -> Konsent:
    """The installation context; `links`: printed links, deep links and QR codes follow host and port."""
    from konsent.app import build
    from konsent.logs import setup_logging

    settings = get_settings()
    if links:
        settings = settings.model_copy(update={"base_url": link_base(settings, host, port)})
    setup_logging(settings.log_level, settings.log_format)
    return build(settings, run_migrations=migrate)


def link_base(settings: Settings, host: str | None, port: int | None) -> str:
    """The base URL of printed links, deep links and QR codes: KONSENT_BASE_URL when it is set,
    else this process's own host and port (`--port 8101` links to port 8101)."""
    if "base_url" in settings.model_fields_set:
        return settings.base_url
    host = host or settings.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind: links go to this machine
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port or settings.port}"
