"""What every stage script shares: a typer entry point that turns the project's own errors into one
clear line and exit code 1, instead of a traceback from deep inside a library."""

from __future__ import annotations

import functools
from collections.abc import Callable

import typer
from rich.console import Console
from rich.markup import escape

from commentclf.errors import CommentclfError

console = Console(stderr=True)


def user_errors_exit(fn: Callable) -> Callable:
    """Print the project's own errors as `error: ...` and exit 1; anything else is a bug and keeps its traceback."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CommentclfError as err:
            # the message is escaped: rich would read "['a', 'b']" in it as markup and drop it
            console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapped


def run(main: Callable) -> None:
    """Run a stage's `main` as a typer command."""
    typer.run(user_errors_exit(main))
