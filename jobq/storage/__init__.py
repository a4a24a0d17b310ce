"""Storage backends behind one interface (`jobq.storage.base.Storage`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from jobq import errors
from jobq.storage.base import Storage

DEFAULT_URL = "sqlite:///./jobq-data/jobq.sqlite3"


def open_storage(url: str, **options: object) -> Storage:
    """The backend for a database URL (not yet opened: call `await storage.open()`).

    `sqlite:///relative/path`, `sqlite:////absolute/path` or `postgresql://user@host/db`.
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from jobq.storage.sqlite import SqliteStorage

        # as in SQLAlchemy: sqlite:///relative/path, sqlite:////absolute/path
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ""
        if not path:
            raise errors.JobqError(f"no file in database URL {url!r}: use sqlite:///PATH")
        return SqliteStorage(path, **options)  # type: ignore[arg-type]
    if scheme in ("postgresql", "postgres"):
        from jobq.storage.postgres import PostgresStorage

        return PostgresStorage(url, **options)  # type: ignore[arg-type]
    raise errors.JobqError(
        f"unknown database URL {url!r}: use sqlite:///PATH or postgresql://USER@HOST/DB"
    )
