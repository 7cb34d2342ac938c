"""`python -m konsent.cli` runs the same command line as `konsent`."""

from konsent.cli import app

app()
