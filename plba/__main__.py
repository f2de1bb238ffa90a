"""`python -m plba` runs the `plba` command line."""

from plba.cli import app

app(prog_name="plba")
