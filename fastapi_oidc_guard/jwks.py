"""Key sets: the ``KeySet`` seam and ``RemoteKeySet``, the issuer's JWKS with a cache policy.

Policy of :class:`RemoteKeySet` (docs/architecture.md, "where each rule lives"):

- keys are parsed once per fetch into ready verifiers;
- max age 10 minutes by default, ``Cache-Control: max-age`` honoured within [1 min, 24 h]; a
  background refresh starts at 3/4 of the age so requests do not wait for routine refreshes;
- an unknown ``kid`` causes one refetch, then a rejection; such refetches are rate-limited by a
  cooldown (30 s), so a flood of random kids costs at most one fetch per cooldown; routine
  fetches (start-up, expiry) do not start the cooldown, so a freshly rotated key is accepted on
  first sight;
- single flight: concurrent misses share one HTTP fetch;
- stale if error: a failed fetch never replaces the keys; the last good set is served up to
  ``stale_limit`` after it was fetched; with no usable keys at all, requests get 503, never accept.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

import httpx

from ._flight import SingleFlight
from ._http import fetch_json
from .errors import KeyNotFound, KeySetUnavailable, TemporarilyUnavailable
from .jose import VerificationKey, parse_jwks, select_key

__all__ = ["KeySet", "RemoteKeySet", "StaticKeySet"]

logger = logging.getLogger("fastapi_oidc_guard.jwks")

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*(\d{1,10})", re.IGNORECASE)
_REFRESH_AT_FRACTION = 0.75


class KeySet(Protocol):
    """Where verification keys come from. The verifier knows nothing else about keys."""

    @property
    def generation(self) -> int:
        """Changes whenever the set of keys changes (verified-token caches are purged on it)."""
        ...

    async def get_key(self, *, kid: str | None, alg: str) -> VerificationKey:
        """Exactly one key for ``kid``/``alg``, or raise an ``InvalidToken``/503 error."""
        ...


class StaticKeySet:
    """A fixed key set, e.g. for tests or keys pinned in configuration."""

    def __init__(self, keys: Iterable[VerificationKey]) -> None:
        self._keys = tuple(keys)

    @property
    def generation(self) -> int:
        return 0

    async def get_key(self, *, kid: str | None, alg: str) -> VerificationKey:
        return select_key(self._keys, kid=kid, alg=alg)


class RemoteKeySet:
    """An issuer's JWKS fetched over HTTP and cached with the policy in the module docstring."""

    def __init__(
        self,
        *,
        jwks_uri: Callable[[], Awaitable[str]],
        client: Callable[[], httpx.AsyncClient],
        clock: Callable[[], float],
        algorithms: Iterable[str],
        max_age: float,
        min_max_age: float,
        max_max_age: float,
        cooldown: float,
        stale_limit: float,
    ) -> None:
        self._jwks_uri = jwks_uri
        self._client = client
        self._clock = clock
        self._algorithms = tuple(algorithms)
        self._default_max_age = max_age
        self._age_bounds = (min_max_age, max_max_age)
        self._cooldown = cooldown
        self._stale_limit = stale_limit
        self._keys: tuple[VerificationKey, ...] | None = None
        self._raw_keys: object = None
        self._fetched_at = 0.0
        self._max_age = max_age
        self._retry_at = 0.0  # no routine fetch before this, after a failure
        self._last_kid_refetch: float | None = None
        self._flight: SingleFlight[tuple[VerificationKey, ...]] = SingleFlight(self._fetch)
        self._generation = 0
        #: Number of HTTP fetches of the JWKS (for tests and metrics).
        self.fetch_count = 0

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def keys(self) -> tuple[VerificationKey, ...]:
        return self._keys or ()

    async def get_key(self, *, kid: str | None, alg: str) -> VerificationKey:
        keys = await self._usable_keys()
        try:
            return select_key(keys, kid=kid, alg=alg)
        except KeyNotFound:
            if not await self._refetch_for_unknown_kid():
                raise
        return select_key(self._keys or (), kid=kid, alg=alg)

    async def warm(self) -> None:
        """Fetch now (start-up); a failure is logged and left for the first request to retry."""
        try:
            await self._flight.run()
        except TemporarilyUnavailable as err:
            logger.warning("could not load the issuer's keys at start-up: %s", err)

    def close(self) -> None:
        self._flight.cancel()

    async def _usable_keys(self) -> tuple[VerificationKey, ...]:
        now = self._clock()
        keys = self._keys
        if keys is None:
            if now < self._retry_at and not self._flight.in_flight:
                raise KeySetUnavailable("no keys yet; last fetch failed recently")
            return await self._flight.run()
        if now >= self._fetched_at + self._stale_limit:
            # Too stale to trust: wait for a fetch; if it fails, answer 503 rather than accept.
            if now < self._retry_at and not self._flight.in_flight:
                raise KeySetUnavailable("keys are stale beyond the limit and the provider failed")
            return await self._flight.run()
        if now >= self._fetched_at + self._max_age * _REFRESH_AT_FRACTION and now >= self._retry_at:
            self._flight.start()  # background refresh; this request uses the current keys
        return keys

    async def _refetch_for_unknown_kid(self) -> bool:
        if self._flight.in_flight:
            return await self._join()
        now = self._clock()
        last = self._last_kid_refetch
        if last is not None and now - last < self._cooldown:
            return False
        self._last_kid_refetch = now
        return await self._join()

    async def _join(self) -> bool:
        try:
            await self._flight.run()
        except TemporarilyUnavailable:
            return False
        return True

    async def _fetch(self) -> tuple[VerificationKey, ...]:
        try:
            uri = await self._jwks_uri()
            self.fetch_count += 1
            document, headers = await fetch_json(self._client(), uri, error=KeySetUnavailable)
            keys = parse_jwks(document, self._algorithms)
            if not any(key.verifiers for key in keys):
                raise KeySetUnavailable("JWKS has no usable signing key")
        except ValueError as err:
            self._failed()
            raise KeySetUnavailable(f"JWKS is not acceptable: {err}") from err
        except TemporarilyUnavailable:
            self._failed()
            raise
        if document["keys"] != self._raw_keys:
            self._generation += 1
            self._raw_keys = document["keys"]
        self._keys = keys
        self._fetched_at = self._clock()
        self._max_age = self._parse_max_age(headers.get("cache-control"))
        self._retry_at = 0.0
        return keys

    def _failed(self) -> None:
        self._retry_at = self._clock() + self._cooldown
        if self._keys is not None:
            logger.warning("JWKS refresh failed; serving the last good key set")

    def _parse_max_age(self, cache_control: str | None) -> float:
        if cache_control:
            match = _MAX_AGE.search(cache_control)
            if match:
                low, high = self._age_bounds
                return min(max(float(match.group(1)), low), high)
        return self._default_max_age
