"""`create_app`: the one place where settings, storage and the HTTP app meet."""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Any

import orjson

from jobq.config import Settings
from jobq.core import credentials
from jobq.core.app_api import AppApi
from jobq.core.jobdata import JobData
from jobq.core.queue import JobQueue
from jobq.core.schedules import Scheduler, Schedules
from jobq.core.workers import NotifyingStorage, Reaper, Wakeups, Workers
from jobq.domain.clock import SYSTEM, Clock
from jobq.domain.leases import Timeouts
from jobq.http import openapi
from jobq.http.auth import Principals
from jobq.http.call import Services
from jobq.http.dispatch import Router
from jobq.http.ratelimit import TokenBuckets
from jobq.http.server import Receive, RequestHandler, Send
from jobq.http.table import ROUTES
from jobq.storage.base import Storage
from jobq.storage.instrumented import InstrumentedStorage

log = logging.getLogger(__name__)


async def bootstrap_admin_key(storage: Storage, settings: Settings) -> str | None:
    """On the first start without JOBQ_ADMIN_KEY, make an admin key: returned once, stored
    only as its hash."""
    if settings.admin_keys:
        return None
    if any(k.project is None for k in await storage.list_api_keys()):
        return None
    secret = credentials.new_api_key()
    await storage.create_api_key(credentials.hash_key(secret), credentials.ADMIN, None)
    return secret


class JobqApp:
    """The ASGI app: the lifespan opens the storage and starts the background tasks (the
    job-data janitor, the scheduler of periodic jobs, the lease reaper, the other nodes'
    notifications), then stops them and closes the storage; requests go to the
    `RequestHandler` built at start-up."""

    def __init__(self, settings: Settings, storage: Storage, clock: Clock = SYSTEM) -> None:
        self.settings = settings
        self.storage = storage
        self.clock = clock
        # compiled now: a mistake in the table stops the server before it listens
        self.router = Router(ROUTES)
        self.openapi = orjson.dumps(openapi.document(ROUTES))
        self.handler: RequestHandler | None = None
        #: tasks that run as long as the server (job-data janitor, scheduler, lease reaper,
        #: notifications): cancelled at shutdown before the storage closes
        self.tasks: list[asyncio.Task[None]] = []
        self._wakeups: Wakeups | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: set once the lifespan has started the app (the server serves it from then on)
        self.started = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            assert self.handler is not None, "a request before the lifespan started"
            await self.handler(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:  # websockets: not served
            await send({"type": "websocket.close", "code": 1000})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._start()
                except BaseException:
                    await send({"type": "lifespan.startup.failed",
                                "message": traceback.format_exc()})
                    raise
                await send({"type": "lifespan.startup.complete"})
                self.started.set()
            elif message["type"] == "lifespan.shutdown":
                await self._stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self) -> None:
        storage, settings = self.storage, self.settings
        await storage.open()
        try:
            new_admin_key = await bootstrap_admin_key(storage, settings)
            if new_admin_key is not None:
                print(f"jobq: created the admin key {new_admin_key} (shown only this once)",
                      flush=True)
            tokens = await credentials.job_tokens(
                storage, settings.token_secrets, settings.token_lifetime, self.clock
            )
        except BaseException:
            await storage.close()
            raise
        authenticator = credentials.Authenticator(
            storage, tokens, settings.admin_keys, self.clock
        )
        instrumented: Storage = InstrumentedStorage(storage)  # type: ignore[assignment]
        wakeups = self._wakeups = Wakeups()
        self._loop = asyncio.get_running_loop()
        # pushes, updates, cancels and scheduled runs wake the claims that long-poll their
        # project
        waking: Storage = NotifyingStorage(instrumented, wakeups)  # type: ignore[assignment]
        queue = JobQueue(waking, tokens, settings.max_count, self.clock)
        timeouts = Timeouts.of_seconds(settings.worker_timeout, settings.cancel_timeout)
        workers = Workers(instrumented, queue, self.clock, timeouts, wakeups)
        # a batch may inflate (gzip) to 4 bodies' worth, no more
        jobdata = JobData(instrumented, storage.chunk_store(), 4 * settings.max_body,
                          self.clock)
        services = Services(settings, queue, self.openapi, jobdata, AppApi(queue),
                            Schedules(waking, self.clock), workers)
        buckets = None
        if settings.rate_limit:
            buckets = TokenBuckets(settings.rate_limit, settings.rate_burst, self.clock)
        self.handler = RequestHandler(self.router, services,
                                      Principals(authenticator, self.clock), buckets)
        self.tasks = [
            asyncio.create_task(jobdata.run_janitor(settings.data_janitor_seconds),
                                name="jobdata-janitor"),
            # one scheduler per server process: the storage lets one node fire each tick
            # (the task's name is its own: psycopg's pool names a task "<pool>-scheduler")
            asyncio.create_task(Scheduler(waking, self.clock).run_forever(),
                                name="jobq-periodic-jobs"),
            asyncio.create_task(Reaper(instrumented, self.clock, timeouts, wakeups).run(),
                                name="jobq-lease-reaper"),
            asyncio.create_task(storage.watch_pending(wakeups.notify), name="jobq-notifications"),
        ]

    def drain(self) -> None:
        """The server is about to stop: long-polling claims answer now (204) rather than
        hold up the graceful stop. Safe to call from a signal handler or another thread."""
        loop, wakeups = self._loop, self._wakeups
        if loop is not None and wakeups is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wakeups.close)

    async def _stop(self) -> None:
        """Cancel the background tasks (each stops at its next await), then close."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []
        await self.storage.close()


def create_app(settings: Settings, storage: Storage, clock: Clock = SYSTEM) -> JobqApp:
    return JobqApp(settings, storage, clock)
