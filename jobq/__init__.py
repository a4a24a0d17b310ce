"""jobq: a self-hosted JobQ, the Scrapy Cloud job queue protocol on SQLite or PostgreSQL."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
