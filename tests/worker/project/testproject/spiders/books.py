"""Crawls the catalogue of the local book server: listing pages, then each book.

Spider arguments: `base` (the server's URL, required), `category` (echoed into items).
The job setting `BOOKS_TAG` and the memory limit (`MEMUSAGE_LIMIT_MB`, from the job's
units) are echoed into items too, so tests see that they reach the spider."""

from collections.abc import AsyncIterator
from typing import Any

import scrapy


class BooksSpider(scrapy.Spider):
    name = "books"

    async def start(self) -> AsyncIterator[Any]:
        yield scrapy.Request(f"{self.base}/catalogue/page-1.html")

    def parse(self, response: Any) -> Any:
        for href in response.css("a.book::attr(href)").getall():
            yield response.follow(href, self.parse_book)
        next_page = response.css("a.next::attr(href)").get()
        if next_page:
            yield response.follow(next_page, self.parse)

    def parse_book(self, response: Any) -> Any:
        yield {
            "title": response.css("h1::text").get(),
            "price": float(response.css(".price::text").get()),
            "category": getattr(self, "category", None),
            "tag": self.settings.get("BOOKS_TAG"),
            "memory_limit_mb": self.settings.getint("MEMUSAGE_LIMIT_MB"),
            "url": response.url,
        }
