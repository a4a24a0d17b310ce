"""Serving the app: granian (a Rust HTTP server, here in this process, on uvloop) by
default, or uvicorn (httptools, uvloop). Both stop gracefully on SIGTERM or SIGINT:
they stop accepting, let requests in flight finish, close the storage, and exit 0.

granian serves the same app about twice as fast as uvicorn (single-job push, 64
connections; see bench/calls.py and the report of the change). Its in-process ("embedded")
mode is marked experimental upstream, so the version is pinned and `--http-server uvicorn`
stays one flag away."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

SERVERS = ("granian", "uvicorn")


def run(app: Any, host: str, port: int, log_level: str, server: str = "granian",
        on_stop: Callable[[], None] = lambda: None) -> None:
    """Serve `app` until SIGTERM or SIGINT; `on_stop` is called first thing then (from
    the signal handler), before the server waits for the requests in flight."""
    if server == "uvicorn":
        _uvicorn(app, host, port, log_level, on_stop)
    else:
        _granian(app, host, port, log_level, on_stop)


def _granian(app: Any, host: str, port: int, log_level: str,
             on_stop: Callable[[], None]) -> None:
    import uvloop
    from granian.constants import Interfaces
    from granian.errors import FatalError
    from granian.log import LogLevels
    from granian.server.embed import Server

    # granian's own log lines go through jobq's handlers (text or JSON), its access log nowhere
    through_ours = {"loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": False},
    }}

    async def serve() -> None:
        embedded = Server(app, address=host, port=port, interface=Interfaces.ASGI,
                          websockets=False, log_level=LogLevels(log_level.lower()),
                          log_dictconfig=through_ours)
        loop = asyncio.get_running_loop()

        def stop() -> None:
            on_stop()
            embedded.stop()  # type: ignore[no-untyped-call]

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        await embedded.serve()

    try:
        uvloop.run(serve())
    except FatalError:  # the app did not start (its lifespan logged why): as uvicorn does
        sys.exit(3)


def _uvicorn(app: Any, host: str, port: int, log_level: str,
             on_stop: Callable[[], None]) -> None:
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            on_stop()
            super().handle_exit(sig, frame)

    # uvicorn stops gracefully on SIGTERM (in-flight requests finish, storage closes), then
    # raises the signal again with the handler found at start: make that a clean exit 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level.lower(),
                            access_log=False, loop="uvloop", http="httptools",
                            timeout_graceful_shutdown=30, log_config=None)
    server = Server(config)
    server.run()
    if not server.started:  # the app did not start (its lifespan logged why): as uvicorn.run
        sys.exit(3)
