"""Serving the app: granian (a Rust HTTP server, here in this process, on uvloop) by
default, or uvicorn (httptools, uvloop). Both stop gracefully on SIGTERM or SIGINT:
they stop accepting, let requests in flight finish, close the storage, and exit 0.

granian serves the same app about twice as fast as uvicorn (single-job push, 64
connections; see bench/calls.py and the report of the change). Its in-process ("embedded")
mode is marked experimental upstream, so the version is pinned and `--http-server uvicorn`
stays one flag away."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn

SERVERS = ("granian", "uvicorn")
log = logging.getLogger("jobq.serve")
#: seconds from the app's startup to granian's worker serving it (a few loop steps)
_REGISTERED_AFTER = 0.05
#: logged when a SIGTERM or SIGINT comes while the app starts
_HELD = "stopping once the app has started"


def run(app: Any, host: str, port: int, log_level: str, server: str = "granian",
        on_stop: Callable[[], None] = lambda: None,
        started: asyncio.Event | None = None) -> None:
    """Serve `app` until SIGTERM or SIGINT; `on_stop` is called first thing then, before
    the server waits for the requests in flight. `started` (set once the app's lifespan
    has started it) lets granian hold a stop asked for while the app starts."""
    if server == "uvicorn":
        _uvicorn(app, host, port, log_level, on_stop)
    else:
        _granian(app, host, port, log_level, on_stop, started)


def _granian(app: Any, host: str, port: int, log_level: str,
             on_stop: Callable[[], None], started: asyncio.Event | None) -> None:
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
        stopping: list[asyncio.Task[None]] = []

        async def stop_once_serving() -> None:
            # granian (2.8) loses a stop asked for before its worker registered for it (a
            # WorkerSignal callback added after set() never runs): the process would never
            # exit. So a SIGTERM that comes while the app starts waits until the app has
            # started, and a moment more: granian registers and serves in the steps that
            # follow the app's startup
            if started is not None:
                if not started.is_set():
                    log.info(_HELD)
                await started.wait()
                await asyncio.sleep(_REGISTERED_AFTER)
            on_stop()
            embedded.stop()  # type: ignore[no-untyped-call]

        def stop() -> None:
            if not stopping:  # a second SIGTERM changes nothing
                stopping.append(loop.create_task(stop_once_serving()))

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
            if not self.started:
                log.info(_HELD)
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


# -- several server processes (`jobq serve --workers N`) -----------------------------------
#
# The parent forks N children, each running the embedded granian server above on the same
# address: granian binds its listener with SO_REUSEPORT on Linux, so the kernel spreads
# connections over the children, and each child keeps the graceful SIGTERM stop it has
# alone. granian's own `workers` option is not used: its embedded mode runs one worker in
# this process only, and its multi-process mode would re-import the app from a string.
# Each child opens its own storage (its own PostgreSQL pool and group commit) after the
# fork. A child dies with its parent (PR_SET_PDEATHSIG: SIGTERM, a graceful stop), so a
# `kill -9` of the parent leaves no child serving.

_PR_SET_PDEATHSIG = 1


def run_workers(make_app: Callable[[], Any], workers: int, host: str, port: int,
                log_level: str) -> None:
    """Serve with `workers` child processes (granian only); SIGTERM or SIGINT stops
    them gracefully and exits 0. A child that exits on its own stops the others, and the
    parent exits with its status (a supervisor restarts the whole group)."""
    children: set[int] = set()
    stopping = False

    def stop_all(*_: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    # installed before forking: a signal between two forks still reaches every child
    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    parent = os.getpid()
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            _child(parent, make_app, host, port, log_level)
        children.add(pid)
        if stopping:
            stop_all()
    log.info("serving with %d processes: %s", workers, sorted(children))
    status = 0
    while children:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:  # pragma: no cover - every child is in `children`
            break
        children.discard(pid)
        code = os.waitstatus_to_exitcode(wait_status)
        if not stopping:
            log.error("server process %d exited with status %d: stopping the others",
                      pid, code)
            status = code or 1
            stop_all()
        elif code != 0 and status == 0:
            status = code
    sys.exit(status)


def _child(parent: int, make_app: Callable[[], Any], host: str, port: int,
           log_level: str) -> NoReturn:
    """A child of `run_workers`: serve until SIGTERM, then exit (never returns)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    code = 1
    try:
        _die_with_parent(parent)
        app = make_app()
        run(app, host, port, log_level, "granian", on_stop=app.drain, started=app.started)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("server process %d failed", os.getpid())
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(0)
