"""`create_app`: the one place where settings, storage and the HTTP app meet."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware

from jobq.config import Settings
from jobq.core import credentials
from jobq.core.queue import JobQueue
from jobq.core.workers import NotifyingStorage, Reaper, Wakeups, Workers
from jobq.domain.clock import SYSTEM
from jobq.domain.leases import Timeouts
from jobq.http import errors as http_errors
from jobq.http.middleware import RequestContext
from jobq.http.routes import ROUTES
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


def create_app(settings: Settings, storage: Storage) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await storage.open()
        try:
            new_admin_key = await bootstrap_admin_key(storage, settings)
            if new_admin_key is not None:
                print(f"jobq: created the admin key {new_admin_key} (shown only this once)",
                      flush=True)
            signing_key = await storage.get_or_create_secret(
                credentials.TOKEN_SECRET_NAME, secrets.token_urlsafe(32)
            )
            tokens = credentials.JobTokens(signing_key)
            app.state.settings = settings
            app.state.authenticator = credentials.Authenticator(
                storage, tokens, settings.admin_keys
            )
            instrumented: Storage = InstrumentedStorage(storage)  # type: ignore[assignment]
            wakeups = Wakeups()
            waking: Storage = NotifyingStorage(instrumented, wakeups)  # type: ignore[assignment]
            app.state.queue = JobQueue(waking, tokens, settings.max_count)
            timeouts = Timeouts.of_seconds(settings.worker_timeout, settings.cancel_timeout)
            app.state.workers = Workers(instrumented, app.state.queue, SYSTEM, timeouts, wakeups)
            # the reaper and the other nodes' notifications run as long as the server
            background = [
                asyncio.create_task(Reaper(instrumented, SYSTEM, timeouts, wakeups).run()),
                asyncio.create_task(storage.watch_pending(wakeups.notify)),
            ]
            try:
                yield
            finally:
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
        finally:
            await storage.close()

    return Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(RequestContext, settings=settings),
        ],
        exception_handlers=http_errors.HANDLERS,
        lifespan=lifespan,
    )
