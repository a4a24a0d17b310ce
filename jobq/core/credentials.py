"""Who is calling: API keys (admin or one project) and job tokens.

API keys are long random strings, stored as their SHA-256 (a slow hash buys nothing
against 192 random bits). Job tokens are JWTs signed with a server secret, whose
audience `job:<jobkey>` makes each good for one job only, and whose `exp` ends them:
a leaked token stops working when it expires or when its job is deleted.

A token also names the run of its job it was issued for (`run`: the run's `running_time`;
`lease`: the lease a worker claimed it with), and works only while that run is the
job's: once the job was put back to pending, claimed again or finished by the reaper
(its worker was declared lost), the token is refused (`jobq.domain.leases.token_refusal`).
The check is made when a token is authenticated and again before each write it makes
(`check_run`): the HTTP layer remembers principals for a moment.

Signing secrets form a list, newest first: the newest signs, every one verifies (the
token's `kid` header names the secret), so rotating the secret leaves the tokens
already handed out working until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import math
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import jwt
import orjson

from jobq import errors
from jobq.domain import leases
from jobq.domain.clock import SYSTEM, Clock
from jobq.domain.jobs import JobKey
from jobq.domain.leases import Claim
from jobq.storage.base import Storage

KEY_PREFIX = "jq_"
#: how long a key lookup is trusted before asking the database again (seconds):
#: a revoked key stops working on every node within this time
KEY_CACHE_SECONDS = 2.0
#: the first signing secret in the database; each rotation adds `job-token-key@<ms>`
TOKEN_SECRET_NAME = "job-token-key"
#: default lifetime of a job token (seconds). A Scrapy Cloud job may run for days and the
#: official client never asks for a new token, so a token must outlive a long crawl. A
#: week bounds what a leaked token of a live job can do; the token of a deleted job, or of
#: a run taken from a lost worker, stops at once anyway.
DEFAULT_TOKEN_LIFETIME = 7 * 24 * 3600
#: how often a server re-reads the stored secrets, so that a rotation made with
#: `jobq keys rotate-token-secret` starts signing on every node (seconds)
SECRET_REFRESH_SECONDS = 60.0
#: shortest acceptable secret given by file or environment (characters): HS256 wants a
#: key of at least 32 bytes (RFC 7518, 3.2)
MIN_SECRET_LENGTH = 32
ADMIN = "admin"


def new_api_key() -> str:
    # not hex: the official client takes a hex string for an encoded job token
    return KEY_PREFIX + secrets.token_urlsafe(24)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


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
    #: the run of that job the token was issued for
    claim: Claim | None = None

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


def _b64(data: bytes) -> bytes:
    """base64url without padding (JWT segments)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _kid(secret: str) -> str:
    """Names a secret in a token header without revealing it."""
    return hashlib.sha256(b"jobq-kid:" + secret.encode()).hexdigest()[:16]


def parse_secrets(text: str, source: str) -> list[str]:
    """Signing secrets given by file or environment: one a line, the newest (the one that
    signs) first."""
    found = [line.strip() for line in text.splitlines() if line.strip()]
    if not found:
        raise errors.JobqError(f"{source} holds no token secret")
    short = [i for i, s in enumerate(found, 1) if len(s) < MIN_SECRET_LENGTH]
    if short:
        raise errors.JobqError(
            f"{source}: token secret on line {short[0]} is shorter than"
            f" {MIN_SECRET_LENGTH} characters"
        )
    return found


SecretSource = Callable[[], Awaitable[list[str]]]


class JobTokens:
    """Issues and checks job tokens. `secrets` (one, or a list newest first) sign and
    verify them; `reload`, when given, reads them again (from the database) so that
    rotations reach a running server."""

    def __init__(
        self, secrets: str | Sequence[str], clock: Clock = SYSTEM,
        lifetime: float = DEFAULT_TOKEN_LIFETIME, reload: SecretSource | None = None,
    ) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self._reload = reload
        self._loaded_at = clock.monotonic()
        self.use(secrets)

    def use(self, secrets: str | Sequence[str]) -> None:
        if isinstance(secrets, str):  # one secret, not a list of one-letter ones
            secrets = [secrets]
        if not secrets:
            raise errors.JobqError("no job-token secret")
        self._signing = secrets[0]
        self._by_kid = {_kid(s): s for s in secrets}
        # every token the secret signs has this header (PyJWT's form: keys sorted, compact)
        self._signing_key = self._signing.encode()
        self._header = _b64(orjson.dumps({"alg": "HS256", "kid": _kid(self._signing),
                                          "typ": "JWT"}))

    def issue(
        self, key: JobKey, lifetime: float | None = None, run: int | None = None,
        lease_id: str | None = None,
    ) -> str:
        """A token for `key`'s job, good for `lifetime` seconds (default: the server's),
        and for the run of the job that started at `run` (its `running_time`), claimed
        with the lease `lease_id` (see `jobq.domain.leases.Claim`).

        An HS256 JWT, byte for byte what `jwt.encode` makes, signed here: startjob issues
        one per claim, and PyJWT prepares the key (PEM and SSH checks) and encodes the
        header again for every token, most of a claim's Python time outside the database."""
        now = self.clock.now_ms() // 1000
        seconds = self.lifetime if lifetime is None else lifetime
        claims: dict[str, object] = {
            "aud": f"job:{key}", "sub": str(key), "iat": now, "exp": now + math.ceil(seconds),
            "run": run}  # always there, null too: it tells these tokens from older ones
        if lease_id is not None:
            claims["lease"] = lease_id
        signed = self._header + b"." + _b64(orjson.dumps(claims))
        signature = hmac.new(self._signing_key, signed, hashlib.sha256).digest()
        return (signed + b"." + _b64(signature)).decode()

    def issue_for_run(self, key: JobKey, meta: dict[str, object]) -> str:
        """A token for the run of `key`'s job that `meta` (its metadata, running) shows."""
        run, lease_id = leases.claim_of(meta)
        return self.issue(key, run=run, lease_id=lease_id)

    def verify(self, key: JobKey, token: str) -> bool:
        """True for an unexpired token of `key`'s job signed with a known secret."""
        return self.claim(key, token) is not None

    def claim(self, key: JobKey, token: str) -> Claim | None:
        """The run an unexpired token of `key`'s job signed with a known secret was
        issued for; None for any other token."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            return None
        if kid is None:  # made before tokens named their secret
            candidates = list(self._by_kid.values())
        elif isinstance(kid, str) and kid in self._by_kid:
            candidates = [self._by_kid[kid]]
        else:
            return None
        for secret in candidates:
            try:
                claims = jwt.decode(
                    token, secret, algorithms=["HS256"], audience=f"job:{key}",
                    # expiry is checked below against the injected clock
                    options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
                )
            except jwt.InvalidTokenError:
                continue
            if not self._unexpired(claims):
                return None
            run, lease_id, iat = claims.get("run"), claims.get("lease"), claims.get("iat")
            return Claim(
                run if isinstance(run, int) and not isinstance(run, bool) else None,
                lease_id if isinstance(lease_id, str) else None,
                iat * 1000 if isinstance(iat, int) else 0,
                legacy="run" not in claims,
            )
        return None

    def _unexpired(self, claims: dict[str, object]) -> bool:
        exp = claims.get("exp")
        if not isinstance(exp, int):
            # tokens made before they carried an expiry end a lifetime after they were made
            iat = claims.get("iat")
            if not isinstance(iat, int):
                return False
            exp = iat + math.ceil(self.lifetime)
        return self.clock.now_ms() < exp * 1000

    def knows_signer(self, token: str) -> bool:
        """Whether the secret a token names is one of ours (else a reload may find it)."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            return True
        return kid is None or kid in self._by_kid

    async def refresh(self, force: bool = False) -> None:
        """Read the secrets again when SECRET_REFRESH_SECONDS have passed (or, with
        `force`, a second has: an unknown signer asks for it, and must not make every
        request hit the database)."""
        if self._reload is None:
            return
        age = self.clock.monotonic() - self._loaded_at
        if age < (1.0 if force else SECRET_REFRESH_SECONDS):
            return
        self._loaded_at = self.clock.monotonic()
        self.use(await self._reload())


# -- secrets stored in the database ---------------------------------------------------------


def _created_ms(name: str) -> int:
    """When a stored secret was made: rotations carry it in their name (`NAME@ms`)."""
    _, _, stamp = name.partition("@")
    return int(stamp) if stamp.isdigit() else 0


async def stored_secrets(storage: Storage) -> list[str]:
    """The signing secrets kept in the database, newest first; the first start makes one."""
    found = await storage.secrets_named(TOKEN_SECRET_NAME)
    if not found:
        value = await storage.get_or_create_secret(TOKEN_SECRET_NAME, new_secret())
        return [value]
    return [found[n] for n in sorted(found, key=_created_ms, reverse=True)]


async def rotate_secret(
    storage: Storage, clock: Clock = SYSTEM, lifetime: float = DEFAULT_TOKEN_LIFETIME
) -> tuple[str, list[str]]:
    """Add a new signing secret; forget the old ones no unexpired token can be signed
    with (superseded longer than a token lifetime plus a refresh ago). Returns the new
    secret's name and the names forgotten."""
    await stored_secrets(storage)  # the first secret, if there is none yet
    now = clock.now_ms()
    name = f"{TOKEN_SECRET_NAME}@{now}"
    await storage.get_or_create_secret(name, new_secret())
    by_age = sorted(await storage.secrets_named(TOKEN_SECRET_NAME), key=_created_ms)
    horizon = now - round((lifetime + SECRET_REFRESH_SECONDS) * 1000)
    stale = [old for old, newer in itertools.pairwise(by_age)
             if _created_ms(newer) < horizon]
    if stale:
        await storage.delete_secrets(stale)
    return name, stale


async def job_tokens(
    storage: Storage, given: Sequence[str], lifetime: float, clock: Clock = SYSTEM
) -> JobTokens:
    """Job tokens signed with the secrets given to the server, else with those kept in the
    database (re-read now and then: a rotation reaches every node)."""
    if given:
        return JobTokens(given, clock, lifetime)

    async def reload() -> list[str]:
        return await stored_secrets(storage)

    return JobTokens(await reload(), clock, lifetime, reload)


async def check_run(storage: Storage, who: Principal) -> None:
    """Before a write by a job token: refuse it (`Unauthorized`) when the token's run is
    no longer its job's. Authentication checked that already, but its answer is
    remembered for a moment (`jobq.http.auth`), and a lost worker's job may have been
    requeued or claimed again meanwhile. API keys pass, and so do tokens of a run that no
    lease binds (`startjob` without a worker id, a push of a running job): nothing takes
    such a run away, so their writes cost no read, as before."""
    if who.job is None or who.claim is None or not who.claim.may_be_taken:
        return
    refusal = leases.token_refusal(who.job, await storage.get_job_meta(who.job), who.claim)
    if refusal is not None:
        raise errors.Unauthorized(refusal)


def bound_run(who: Principal) -> int | None:
    """The run a write by `who` must still be its job's when it lands (checked again
    inside the write's transaction, `leases.run_refusal`): a job token's leased run; None
    for API keys and for the runs `check_run` lets pass."""
    if who.claim is None or not who.claim.may_be_taken or who.claim.legacy:
        return None
    return who.claim.run


class Authenticator:
    """Turns the credentials of a request into a `Principal`, or raises `Unauthorized`."""

    def __init__(
        self, storage: Storage, tokens: JobTokens, admin_keys: tuple[str, ...],
        clock: Clock = SYSTEM,
    ) -> None:
        self._storage = storage
        self.tokens = tokens
        self._clock = clock
        self._admin_hashes = tuple(hash_key(k) for k in admin_keys if k)
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def authenticate(self, user: str | None, password: str | None) -> Principal:
        if not user:
            raise errors.Unauthorized()
        if password:
            return await self._job_principal(user, password)
        return await self._key_principal(user)

    async def _job_principal(self, user: str, token: str) -> Principal:
        try:
            key = JobKey.parse(user)
        except errors.BadRequest:
            raise errors.Unauthorized() from None
        await self.tokens.refresh()
        if not self.tokens.knows_signer(token):
            await self.tokens.refresh(force=True)
        claim = self.tokens.claim(key, token)
        if claim is None:
            raise errors.Unauthorized()
        # a token reaches its job only while the job is there and runs the token's run (or
        # finished it): one primary-key read
        refusal = leases.token_refusal(key, await self._storage.get_job_meta(key), claim)
        if refusal is not None:
            raise errors.Unauthorized(refusal)
        return Principal(name=str(key), project=key.project, job=key, claim=claim)

    async def _key_principal(self, secret: str) -> Principal:
        digest = hash_key(secret)
        if any(hmac.compare_digest(digest, admin) for admin in self._admin_hashes):
            return Principal(name=ADMIN, is_admin=True)
        now = self._clock.monotonic()
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
