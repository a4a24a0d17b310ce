"""A local web site for the test project's spiders: a book catalogue of a few pages and an
endless chain of pages. Served by `http.server` in a thread of the test process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGES = 3
BOOKS_PER_PAGE = 4
BOOKS = PAGES * BOOKS_PER_PAGE


def _catalogue(page: int) -> str:
    first = (page - 1) * BOOKS_PER_PAGE + 1
    links = "".join(f'<a class="book" href="/catalogue/book-{n}.html">Book {n}</a>'
                    for n in range(first, first + BOOKS_PER_PAGE))
    more = f'<a class="next" href="/catalogue/page-{page + 1}.html">next</a>' \
        if page < PAGES else ""
    return f"<html><body>{links}{more}</body></html>"


def _book(number: int) -> str:
    return (f"<html><body><h1>Book {number}</h1>"
            f'<p class="price">{number}.50</p></body></html>')


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        body: str | None = None
        if len(parts) == 2 and parts[0] == "catalogue":
            name = parts[1].removesuffix(".html")
            kind, _, number = name.partition("-")
            if number.isdigit() and kind == "page" and 1 <= int(number) <= PAGES:
                body = _catalogue(int(number))
            elif number.isdigit() and kind == "book" and 1 <= int(number) <= BOOKS:
                body = _book(int(number))
        elif len(parts) == 2 and parts[0] == "endless" and parts[1].isdigit():
            body = f"<html><body>page {parts[1]}</body></html>"
        data = (body or "not found").encode()
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the spiders' own logs say what they fetched


@contextmanager
def serve() -> Iterator[str]:
    """The site's base URL while the context lasts."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
