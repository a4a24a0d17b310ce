"""Yields items from the local server's endless pages until stopped: by
CLOSESPIDER_ITEMCOUNT, a cancel (SIGTERM) or a kill. Argument `base` as for `books`."""

from collections.abc import AsyncIterator
from typing import Any

import scrapy


class EndlessSpider(scrapy.Spider):
    name = "endless"

    async def start(self) -> AsyncIterator[Any]:
        yield scrapy.Request(f"{self.base}/endless/1")

    def parse(self, response: Any) -> Any:
        number = int(response.url.rsplit("/", 1)[1])
        yield {"n": number}
        yield scrapy.Request(f"{self.base}/endless/{number + 1}")
