"""Options shared by the terminal tools that talk HTTP to a server (`jobq push`, `jobq
schedule ...`, `jobq items ...`): one definition of `--url`, `--apikey` and `--json`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

URL = click.option("--url", envvar="JOBQ_URL", show_envvar=True,
                   default="http://127.0.0.1:2424", show_default=True, help="Server URL.")
APIKEY = click.option("--apikey", envvar="JOBQ_APIKEY", show_envvar=True, required=True,
                      help="API key.")
AS_JSON = click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")


def with_options(*options: Callable[[F], F]) -> Callable[[F], F]:
    """A decorator applying `options` in the order given (as they show in --help)."""

    def apply(fn: F) -> F:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


#: `--url`, `--apikey` and `--json`
http_command = with_options(URL, APIKEY, AS_JSON)
