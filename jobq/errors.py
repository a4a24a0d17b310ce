"""The errors of jobq. They know nothing of HTTP: `jobq.http.errors` maps each class
to a status code.

    JobqError
    ├── BadRequest          malformed input: a line, a parameter, a key       (400)
    ├── Unauthorized        no or unknown credentials                           (401)
    ├── Forbidden           valid credentials without access to the resource   (403)
    ├── NotFound            no such resource, job or field                      (404)
    ├── Conflict            a state change the rules do not allow               (409)
    ├── RequestTimeout      a request body that came too slowly                 (408)
    ├── PayloadTooLarge     a body or line over the size limit                  (413)
    ├── RateLimited         too many requests for this key                      (429)
    ├── StorageError        the database failed: the server's fault             (500)
    │   └── StorageUnavailable  out of reach, read-only, full: retry later       (503)
    └── StorageFault        a permanent database fault: retrying cannot help    (500)
        ├── StorageCorrupt  the database file is damaged
        ├── WriterStopped   the SQLite writer thread died: restart jobq
        └── DatabaseRefused at start-up: not jobq's database, or a newer schema
                            (nothing was written; the CLI exits with status 2)

A `StorageError` answers a short message with the request id (the database's own words go
to the log); a `StorageFault` answers its message, which is jobq's own and tells the
operator what to do. `/readyz` answers 503 with the message of a `StorageFault` (the server
is not ready and will not become ready by itself).
"""

from __future__ import annotations


class JobqError(Exception):
    """Something went wrong in jobq."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__ or type(self).__name__)

    @property
    def message(self) -> str:
        return str(self.args[0])


class BadRequest(JobqError):
    """The request is malformed."""


class Unauthorized(JobqError):
    """Unauthorized"""


class Forbidden(JobqError):
    """This key has no access to this resource."""


class NotFound(JobqError):
    """Not Found"""


class Conflict(JobqError):
    """The request conflicts with the job's current state."""


class RequestTimeout(JobqError):
    """The request body came too slowly."""


class PayloadTooLarge(JobqError):
    """The request body is too large."""


class RateLimited(JobqError):
    """Too many requests for this key."""

    def __init__(self, message: str | None = None, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageError(JobqError):
    """The database failed."""


class StorageUnavailable(StorageError):
    """The database is out of reach or cannot be written; try again later."""


class StorageFault(JobqError):
    """The database has a permanent fault: retrying will not help."""


class StorageCorrupt(StorageFault):
    """The database file is damaged: restore it from a backup."""


class WriterStopped(StorageFault):
    """The database writer stopped: restart jobq."""


class DatabaseRefused(StorageFault):
    """This database is not one jobq can use (nothing was written to it)."""
