"""Scheduling fixtures: the acceptance suite's real servers (one per module and backend),
and helpers to reach their database directly."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from jobq.storage import open_storage
from jobq.storage.base import Storage
from tests.acceptance.conftest import http, project, shared_server

__all__ = ["http", "in_storage", "project", "shared_server"]

T = TypeVar("T")


def in_storage(db: str, action: Callable[[Storage], Coroutine[Any, Any, T]]) -> T:
    """Run `action` on the server's database, opened by this (test) process."""

    async def run() -> T:
        storage = open_storage(db)
        await storage.open()
        try:
            return await action(storage)
        finally:
            await storage.close()

    return asyncio.run(run())
