"""Settings: one value object, built by the CLI from flags, `JOBQ_*` variables and
defaults, then passed down. No other module reads the environment."""

from __future__ import annotations

from dataclasses import dataclass

from jobq.core.credentials import DEFAULT_TOKEN_LIFETIME
from jobq.storage import DEFAULT_URL


@dataclass(frozen=True, slots=True)
class Settings:
    db: str = DEFAULT_URL
    host: str = "127.0.0.1"
    port: int = 2424
    #: extra admin keys (JOBQ_ADMIN_KEY); never shown in reprs
    admin_keys: tuple[str, ...] = ()
    #: largest request body (bytes) and JSON line (bytes)
    max_body: int = 64 * 1024 * 1024
    max_line: int = 1024 * 1024
    #: most rows one list may ask for with `count`
    max_count: int = 100_000
    #: SQLite `synchronous` pragma: FULL survives a power cut, NORMAL only a crash
    sqlite_synchronous: str = "FULL"
    #: PostgreSQL connection pool size
    pool_size: int = 10
    #: requests a second allowed per key (0: no limit) and burst size
    rate_limit: float = 0.0
    rate_burst: int = 100
    #: seconds to wait for each part of a request body before answering 408
    body_timeout: float = 30.0
    #: job-token signing secrets, newest first, from --token-secret-file or
    #: JOBQ_TOKEN_SECRET (empty: kept in the database); never shown in reprs
    token_secrets: tuple[str, ...] = ()
    #: seconds a job token is good for (workers' heartbeats renew it)
    token_lifetime: float = DEFAULT_TOKEN_LIFETIME
    #: when set, /metrics asks for it (bearer token, or as the API key)
    metrics_key: str | None = None
    #: seconds between passes of the job-data janitor (deleted jobs, retention)
    data_janitor_seconds: float = 30.0
    #: seconds without a heartbeat before a worker's jobs are lost (issue 10)
    worker_timeout: float = 60.0
    #: seconds a cancelled leased job may keep running before `cancel_timeout`
    cancel_timeout: float = 300.0

    def __repr__(self) -> str:
        return f"Settings(db={self.db!r}, host={self.host!r}, port={self.port})"
