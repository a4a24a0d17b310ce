"""Credentials of a request: HTTP Basic (`APIKEY:` or `JOBKEY:TOKEN`) or `?apikey=`, and
the principals they were found to be, cached for a moment (a key's lookup and a job
token's signature check cost more than the rest of a small request)."""

from __future__ import annotations

import base64
import binascii

from cachetools import TTLCache
from starlette.datastructures import QueryParams

from jobq.core.credentials import KEY_CACHE_SECONDS, Authenticator, Principal
from jobq.domain.clock import Clock

#: most credentials whose principal is remembered at once (least recently used go first)
MAX_CACHED = 10_000

Credentials = tuple[str | None, str | None]


def credentials(authorization: str, query: QueryParams) -> Credentials:
    """(user, password) of the `Authorization` header, else (`apikey`, None)."""
    if authorization:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(encoded.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None, None
            user, _, password = decoded.partition(":")
            return user, password
    return query.get("apikey"), None


class Principals:
    """Credentials to principals: the authenticator's answers, remembered for as long as
    it trusts a key lookup (a revoked key or token stops working within that time)."""

    def __init__(self, authenticator: Authenticator, clock: Clock) -> None:
        self._authenticator = authenticator
        self._known: TTLCache[Credentials, Principal] = TTLCache(
            MAX_CACHED, KEY_CACHE_SECONDS, timer=clock.monotonic)

    def cached(self, given: Credentials) -> Principal | None:
        return self._known.get(given)

    async def look_up(self, given: Credentials) -> Principal:
        """The principal of `given` (raises `Unauthorized`); remembered when found."""
        who: Principal = await self._authenticator.authenticate(*given)
        self._known[given] = who
        return who
