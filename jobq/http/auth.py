"""Credentials of a request: HTTP Basic (`APIKEY:` or `JOBKEY:TOKEN`) or `?apikey=`, and
the principals they were found to be, cached for a moment (a key's lookup and a job
token's signature check cost more than the rest of a small request)."""

from __future__ import annotations

import base64
import binascii

from jobq.core.credentials import KEY_CACHE_SECONDS, Authenticator, Principal
from jobq.domain.clock import Clock
from jobq.http.call import Query

#: most credentials whose principal is remembered at once (least recently used go first)
MAX_CACHED = 10_000

Credentials = tuple[str | None, str | None]


def credentials(authorization: str, query: Query) -> Credentials:
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

    def __init__(self, authenticator: Authenticator, clock: Clock,
                 max_cached: int = MAX_CACHED) -> None:
        self._authenticator = authenticator
        self._clock = clock
        self._max = max_cached
        # a plain dict (in insertion order: the oldest entry goes first when full) costs a
        # request one lookup; a cachetools cache costs it a dozen calls
        self._known: dict[bytes | str, tuple[float, Principal]] = {}

    def cached(self, raw: bytes | str) -> Principal | None:
        """The principal of credentials sent as `raw` (an `Authorization` header's value,
        or an `apikey` parameter's), when they were found good a moment ago."""
        entry = self._known.get(raw)
        if entry is None or entry[0] <= self._clock.monotonic():
            return None
        return entry[1]

    async def look_up(self, raw: bytes | str | None, given: Credentials) -> Principal:
        """The principal of `given` (raises `Unauthorized`), remembered under `raw`."""
        who: Principal = await self._authenticator.authenticate(*given)
        if raw:
            known = self._known
            known.pop(raw, None)
            if len(known) >= self._max:
                del known[next(iter(known))]
            known[raw] = (self._clock.monotonic() + KEY_CACHE_SECONDS, who)
        return who
