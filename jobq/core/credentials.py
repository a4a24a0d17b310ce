"""Who is calling: API keys (admin or one project) and job tokens.

API keys are long random strings, stored as their SHA-256 (a slow hash buys nothing
against 192 random bits). Job tokens are JWTs signed with a server secret, whose
audience `job:<jobkey>` makes each good for one job only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import jwt

from jobq import errors
from jobq.domain.jobs import JobKey
from jobq.storage.base import Storage

KEY_PREFIX = "jq_"
#: how long a key lookup is trusted before asking the database again (seconds):
#: a revoked key stops working on every node within this time
KEY_CACHE_SECONDS = 2.0
TOKEN_SECRET_NAME = "job-token-key"
ADMIN = "admin"


def new_api_key() -> str:
    # not hex: the official client takes a hex string for an encoded job token
    return KEY_PREFIX + secrets.token_urlsafe(24)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    #: shown as `scheduled_by`, `started_by`, ... in job metadata
    name: str
    is_admin: bool = False
    #: the one project a project key reaches
    project: int | None = None
    #: the one job a job token reaches
    job: JobKey | None = None

    def check_project(self, project: int) -> None:
        if self.is_admin or (self.job is None and self.project == project):
            return
        raise errors.Forbidden(f"this key has no access to project {project}")

    def check_job(self, key: JobKey) -> None:
        if self.job is not None:
            if self.job != key:
                raise errors.Forbidden(f"this job token is for job {self.job}, not {key}")
            return
        self.check_project(key.project)

    def check_admin(self) -> None:
        if not self.is_admin:
            raise errors.Forbidden("this needs an admin key")

    def can_see(self, project: int) -> bool:
        return self.is_admin or (self.job is None and self.project == project)


class JobTokens:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    def issue(self, key: JobKey) -> str:
        return jwt.encode(
            {"aud": f"job:{key}", "sub": str(key), "iat": int(time.time())},
            self._secret,
            algorithm="HS256",
        )

    def verify(self, key: JobKey, token: str) -> bool:
        try:
            jwt.decode(token, self._secret, algorithms=["HS256"], audience=f"job:{key}")
        except jwt.InvalidTokenError:
            return False
        return True


class Authenticator:
    """Turns the credentials of a request into a `Principal`, or raises `Unauthorized`."""

    def __init__(self, storage: Storage, tokens: JobTokens, admin_keys: tuple[str, ...]) -> None:
        self._storage = storage
        self.tokens = tokens
        self._admin_hashes = tuple(hash_key(k) for k in admin_keys if k)
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def authenticate(self, user: str | None, password: str | None) -> Principal:
        if not user:
            raise errors.Unauthorized()
        if password:
            return self._job_principal(user, password)
        return await self._key_principal(user)

    def _job_principal(self, user: str, token: str) -> Principal:
        try:
            key = JobKey.parse(user)
        except errors.BadRequest:
            raise errors.Unauthorized() from None
        if not self.tokens.verify(key, token):
            raise errors.Unauthorized()
        return Principal(name=str(key), project=key.project, job=key)

    async def _key_principal(self, secret: str) -> Principal:
        digest = hash_key(secret)
        if any(hmac.compare_digest(digest, admin) for admin in self._admin_hashes):
            return Principal(name=ADMIN, is_admin=True)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            found = await self._storage.find_api_key(digest)
            principal = None
            if found is not None:
                principal = Principal(
                    name=found.name, is_admin=found.project is None, project=found.project
                )
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + KEY_CACHE_SECONDS, principal)
        if principal is None:
            raise errors.Unauthorized()
        return principal
