"""Raises before its first request: the job fails to start (exit 1, no FIN)."""

from collections.abc import AsyncIterator
from typing import Any

import scrapy


class BoomSpider(scrapy.Spider):
    name = "boom"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        raise RuntimeError("boom: this spider cannot start")

    async def start(self) -> AsyncIterator[Any]:
        yield scrapy.Request("http://127.0.0.1:9/")
