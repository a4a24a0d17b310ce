"""Holds more and more memory while it crawls, until Scrapy's memory usage extension
closes it (`memusage_exceeded`). Argument `base` as for `books`."""

from collections.abc import AsyncIterator
from typing import Any

import scrapy


class HogSpider(scrapy.Spider):
    name = "hog"
    hoard: list[bytearray] = []

    async def start(self) -> AsyncIterator[Any]:
        yield scrapy.Request(f"{self.base}/endless/1")

    def parse(self, response: Any) -> Any:
        # 20 MB a page, touched so that it counts in the resident set
        self.hoard.append(bytearray(b"x" * (20 * 1024 * 1024)))
        number = int(response.url.rsplit("/", 1)[1])
        yield scrapy.Request(f"{self.base}/endless/{number + 1}")
