"""Set-up, interleaved measurement and ratios (targets: the README, "Benchmarks").

Method: the machine has 2 shared, noisy cores, so nothing here is an absolute time. Each round
runs one batch of every variant, round-robin (the starting variant rotates per round); a batch's
mean is one sample; the result of a variant is the median of its samples. Every ratio is taken
between medians of the same run, in units of the "floor": a raw ``cryptography`` RS256 verify of
the same token. "Added cost" is a variant's median minus the unprotected route's median.
"""

from __future__ import annotations

import asyncio
import gc
import platform
import statistics
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import FastAPI

from fastapi_oidc_guard import OIDCGuard, SessionData, TokenSet
from fastapi_oidc_guard.jose import b64url_decode
from fastapi_oidc_guard.testing import FakeIssuer

from . import apps
from .asgi import AsgiDriver, BadResponse, Headers, request_headers
from .redis_support import redis_server

__all__ = ["Settings", "run", "run_async", "settings_for"]


@dataclass(frozen=True)
class Settings:
    """How much to measure. ``pool_size`` must exceed the guard's token cache (1024)."""

    rounds: int
    batch: int  # requests per variant per round
    floor_batch: int  # raw verifies per round
    warmup: int  # untimed requests per variant before round 1
    pool_size: int  # distinct pre-minted tokens cycled by the new-token variants


FULL = Settings(rounds=100, batch=120, floor_batch=400, warmup=200, pool_size=2048)
QUICK = Settings(rounds=6, batch=30, floor_batch=100, warmup=20, pool_size=1100)


def settings_for(*, quick: bool, rounds: int | None = None) -> Settings:
    base = QUICK if quick else FULL
    if rounds is None:
        return base
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    return Settings(rounds, base.batch, base.floor_batch, base.warmup, base.pool_size)


# -- variants ----------------------------------------------------------------------------------

# (name, label, role); role "target"/"reference"/"baseline"/"info" only drives the report.
VARIANTS: tuple[tuple[str, str, str], ...] = (
    ("floor", "floor: cryptography RS256 verify", "floor"),
    ("unprotected", "unprotected route (baseline request)", "request"),
    ("noop", "async no-op dependency", "reference"),
    ("ideal_new", "hand-written ideal dependency, new token (no cache)", "reference"),
    ("require_user_new", "require_user, new token", "target"),
    ("require_user_hit", "require_user, repeated token (cache hit)", "target"),
    ("require_user_nocache", "require_user, new token, token_cache_size=0", "info"),
    ("unprotected_web", "unprotected route, app with login (routes + middleware)", "info"),
    ("require_user_session", "require_user, encrypted session cookie", "target"),
    ("redis_get", "one raw Redis GET (redis-py asyncio, loopback)", "info"),
    ("unprotected_redis", "unprotected route, app with the Redis backend", "info"),
    ("require_user_redis", "require_user, Redis session (1 GET)", "target"),
    ("pyjwt", "PyJWT + HTTPBearer, key pre-loaded", "baseline"),
    ("jose", "python-jose + HTTPBearer, naive (JWK per call)", "baseline"),
)


class Variant(Protocol):
    name: str

    async def batch(self, n: int) -> float:
        """Mean cost of one operation over ``n`` operations, in seconds."""
        ...


class FloorVariant:
    """``RSAPublicKey.verify`` with PKCS1v15/SHA-256 on the token's signing input."""

    def __init__(self, public: rsa.RSAPublicKey, token: str) -> None:
        self.name = "floor"
        header, payload, signature = token.split(".")
        self._public = public
        self._message = f"{header}.{payload}".encode("ascii")
        self._signature = b64url_decode(signature)
        self._padding = padding.PKCS1v15()
        self._hash = hashes.SHA256()
        self._public.verify(self._signature, self._message, self._padding, self._hash)

    async def batch(self, n: int) -> float:
        verify, sig, msg, pad, alg = (
            self._public.verify, self._signature, self._message, self._padding, self._hash
        )  # fmt: skip
        start = time.perf_counter_ns()
        for _ in range(n):
            verify(sig, msg, pad, alg)
        return (time.perf_counter_ns() - start) / n / 1e9


class RedisGetVariant:
    """One raw ``GET`` with redis-py's asyncio client: the unit of the Redis target."""

    def __init__(self, url: str) -> None:
        self.name = "redis_get"
        self._url = url
        self._client: Any = None

    async def batch(self, n: int) -> float:
        if self._client is None:
            import redis.asyncio

            self._client = redis.asyncio.Redis.from_url(self._url)
            await self._client.set("bench:key", b"x" * 64)
        get = self._client.get
        start = time.perf_counter_ns()
        for _ in range(n):
            await get("bench:key")
        return (time.perf_counter_ns() - start) / n / 1e9

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class RequestVariant:
    """GET /p on one app, cycling through a list of header sets (one per token)."""

    def __init__(
        self, name: str, app: FastAPI, headers: Sequence[Headers], *, first_sub: str | None
    ) -> None:
        self.name = name
        self.app = app
        self.driver = AsgiDriver(app, "/p")
        self.headers = list(headers)
        #: ``sub`` answered for the first header set; ``None`` for unprotected routes.
        self.first_sub = first_sub
        self._pos = 0

    async def batch(self, n: int) -> float:
        headers, count, get = self.headers, len(self.headers), self.driver.get
        pos, bad = self._pos, 0
        start = time.perf_counter_ns()
        for i in range(pos, pos + n):
            if await get(headers[i % count]) != 200:
                bad += 1
        elapsed = time.perf_counter_ns() - start
        self._pos = (pos + n) % count
        if bad:
            raise BadResponse(f"{self.name}: {bad} of {n} responses were not 200")
        return elapsed / n / 1e9


# -- set-up ------------------------------------------------------------------------------------


def _tamper(token: str) -> str:
    """The same token with one signature character changed (still canonical base64url)."""
    head, body, sig = token.split(".")
    i = len(sig) // 2
    return f"{head}.{body}.{sig[:i]}{'B' if sig[i] == 'A' else 'A'}{sig[i + 1 :]}"


async def _check(
    variant: RequestVariant, headers: Headers, *, status: tuple[int, ...], sub: str | None
) -> None:
    got, body = await variant.driver.get_body(headers)
    if got not in status:
        raise BadResponse(f"{variant.name}: set-up check expected {status}, got {got}: {body!r}")
    if sub is not None and f'"sub":"{sub}"'.encode() not in body:
        raise BadResponse(f"{variant.name}: set-up check expected sub {sub!r}, got {body!r}")


@dataclass
class _Setup:
    variants: list[Variant]
    guards: list[OIDCGuard]
    guard_apps: list[FastAPI]
    notes: dict[str, Any]


async def _build(settings: Settings, redis_url: str | None) -> _Setup:
    issuer = FakeIssuer()
    key = issuer.signing_key
    private = key.private
    if not (key.alg == "RS256" and isinstance(private, rsa.RSAPrivateKey)):
        raise RuntimeError("FakeIssuer's default signing key is expected to be RS256")
    pool = [issuer.mint(sub=f"bench-{i}", jti=f"pool-{i}") for i in range(settings.pool_size)]
    repeated = issuer.mint(sub="bench-repeat", jti="repeat")
    pool_headers = [request_headers(token) for token in pool]

    def new_guard(**overrides: Any) -> OIDCGuard:
        return OIDCGuard(
            issuer=issuer.issuer, audience=issuer.audience, transport=issuer.transport,
            **overrides,
        )  # fmt: skip

    guard, guard_nocache = new_guard(), new_guard(token_cache_size=0)
    cache_size = guard.config.token_cache_size
    if settings.pool_size <= cache_size:
        raise ValueError(f"pool_size {settings.pool_size} must exceed the cache ({cache_size})")
    web_guard, session_headers, session_sub = await _session_setup(issuer)
    jwk, aud, iss = key.public_jwk(), issuer.audience, issuer.issuer
    guarded, guarded_nocache = apps.guarded_app(guard), apps.guarded_app(guard_nocache)
    hit = [request_headers(repeated)]
    pyjwt_app = apps.pyjwt_app(guard, jwk, audience=aud, issuer=iss)
    jose_app = apps.jose_app(guard, jwk, audience=aud, issuer=iss)
    sub0 = "bench-0"
    variants: list[Variant] = [
        FloorVariant(private.public_key(), repeated),
        RequestVariant("unprotected", apps.unprotected_app(guard), pool_headers, first_sub=None),
        RequestVariant("noop", apps.noop_app(guard), pool_headers, first_sub=None),
        RequestVariant(
            "ideal_new",
            apps.ideal_app(guard, private.public_key(), audience=aud, issuer=iss),
            pool_headers,
            first_sub=sub0,
        ),
        RequestVariant("require_user_new", guarded, pool_headers, first_sub=sub0),
        RequestVariant("require_user_hit", apps.guarded_app(guard), hit, first_sub="bench-repeat"),
        RequestVariant("require_user_nocache", guarded_nocache, pool_headers, first_sub=sub0),
        RequestVariant(
            "unprotected_web", apps.unprotected_app(web_guard), session_headers, first_sub=None
        ),
        RequestVariant(
            "require_user_session",
            apps.guarded_app(web_guard),
            session_headers,
            first_sub=session_sub,
        ),
    ]
    extra_guards: list[OIDCGuard] = []
    if redis_url is not None:
        redis_guard, redis_headers, redis_sub = await _session_setup(issuer, redis_url=redis_url)
        extra_guards.append(redis_guard)
        variants += [
            RedisGetVariant(redis_url),
            RequestVariant("unprotected_redis", apps.unprotected_app(redis_guard), redis_headers,
                           first_sub=None),
            RequestVariant("require_user_redis", apps.guarded_app(redis_guard), redis_headers,
                           first_sub=redis_sub),
        ]  # fmt: skip
    variants += [
        RequestVariant("pyjwt", pyjwt_app, pool_headers, first_sub=sub0),
        RequestVariant("jose", jose_app, pool_headers, first_sub=sub0),
    ]
    names = {v.name for v in variants}
    assert [v.name for v in variants] == [name for name, _, _ in VARIANTS if name in names]
    notes = {
        "token_cache_size": cache_size,
        "new_token_method": (
            f"{settings.pool_size} distinct pre-minted tokens cycled in order, guard built with "
            f"the default token_cache_size={cache_size}: every request is a cache miss "
            "(verify + cache put + LRU eviction)"
        ),
        "token_bytes": len(repeated),
        "pyjwt_key": "pre-loaded once with jwt.PyJWK(jwk).key (best case, no PyJWKClient)",
        "session_cookie_bytes": len(session_headers[0][0][1]),
    }
    session_app = variants[7]
    assert isinstance(session_app, RequestVariant)
    notes["redis"] = redis_url is not None or "redis-server not found: Redis variants skipped"
    guard_apps = [guarded, guarded_nocache, session_app.app]
    guard_apps += [v.app for v in variants if v.name == "require_user_redis"]  # type: ignore[attr-defined]
    return _Setup(variants, [guard, guard_nocache, web_guard, *extra_guards], guard_apps, notes)


async def _session_setup(
    issuer: FakeIssuer, *, redis_url: str | None = None
) -> tuple[OIDCGuard, list[Headers], str]:
    """A guard with browser login and one realistic sealed session (ID token, JWT access
    token, refresh token, profile claims) in its cookie."""
    guard = OIDCGuard(
        issuer=issuer.issuer, audience=issuer.audience, transport=issuer.transport,
        client_id=issuer.client_id, client_secret=issuer.client_secret,
        base_url="http://127.0.0.1:8000", session_secret="b" * 48,
        session_touch_interval=86_400,
    )  # fmt: skip
    if redis_url is not None:
        guard = OIDCGuard(
            issuer=issuer.issuer, audience=issuer.audience, transport=issuer.transport,
            client_id=issuer.client_id, client_secret=issuer.client_secret,
            base_url="http://127.0.0.1:8000", session_secret="b" * 48,
            session_touch_interval=86_400, session_backend="redis", redis_url=redis_url,
        )  # fmt: skip
    now = time.time()
    user = {"sub": "bench-session", "name": "Bench User", "email": "bench@example.test",
            "email_verified": True, "picture": "https://example.test/avatar.png",
            "updated_at": int(now), "auth_time": int(now)}  # fmt: skip
    session = SessionData(
        id="bench-session-id", sub="bench-session", sid="sid-1", user=user,
        id_token=issuer.mint_id_token(nonce="n", **user), refresh_token="r" * 43,
        tokens={f"{issuer.audience}|openid profile email offline_access": TokenSet(
            access_token=issuer.mint(sub="bench-session"), expires_at=now + 3600,
            audience=issuer.audience, scope="openid profile email offline_access")},
        created_at=now, last_active=now,
    )  # fmt: skip
    assert guard.sessions is not None
    scope: dict[str, Any] = {"type": "http", "headers": []}
    guard.sessions.start(scope, session)  # what a login stores
    set_cookies = await guard.sessions.commit(guard.sessions.slot(scope))
    cookie = "; ".join(header.decode("latin-1").split(";", 1)[0] for header in set_cookies)
    return guard, [[(b"cookie", cookie.encode())]], "bench-session"


async def _sanity_checks(variants: Sequence[Variant], settings: Settings) -> None:
    """Untimed: right body for a good token, 401 for a tampered one, then warm-up batches."""
    for variant in variants:
        if not isinstance(variant, RequestVariant):
            continue
        headers = variant.headers[0]
        await _check(variant, headers, status=(200,), sub=variant.first_sub or "anonymous")
        if variant.first_sub is not None:  # a protected route must refuse bad credentials
            sent = dict(headers)
            if b"authorization" in sent:
                token = sent[b"authorization"].decode("ascii").removeprefix("Bearer ")
                bad = request_headers(_tamper(token))
            else:  # a session cookie with one character changed
                cookie = sent[b"cookie"].decode("ascii")
                bad = [(b"cookie", (cookie[:-5] + ("A" if cookie[-5] != "A" else "B")
                                    + cookie[-4:]).encode())]  # fmt: skip
            await _check(variant, bad, status=(401,), sub=None)
            # (HTTPBearer answered 403 without credentials before FastAPI 0.122)
            await _check(variant, request_headers(None), status=(401, 403), sub=None)
    for variant in variants:
        await variant.batch(settings.warmup)


# -- measurement -------------------------------------------------------------------------------


async def _measure(variants: Sequence[Variant], settings: Settings) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {v.name: [] for v in variants}
    count = len(variants)
    for r in range(settings.rounds):
        shift = r % count
        for variant in [*variants[shift:], *variants[:shift]]:
            n = settings.floor_batch if variant.name == "floor" else settings.batch
            samples[variant.name].append(await variant.batch(n))
    return samples


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("fastapi", "starlette", "pydantic", "PyJWT", "python-jose", "cryptography"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "?"
    return versions


def _results(samples: dict[str, list[float]], settings: Settings, notes: dict[str, Any],
             elapsed: float) -> dict[str, Any]:  # fmt: skip
    median = {name: statistics.median(values) for name, values in samples.items()}
    floor = median["floor"]
    base = median["unprotected"]
    variants = []
    added: dict[str, float] = {}
    paired: dict[str, float] = {}
    for name, label, role in [v for v in VARIANTS if v[0] in samples]:
        values = samples[name]
        q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
        entry: dict[str, Any] = {
            "name": name,
            "label": label,
            "role": role,
            "median_us": median[name] * 1e6,
            "q1_us": q1 * 1e6,
            "q3_us": q3 * 1e6,
            "floors": median[name] / floor,
            "added_floors": None,
            "added_floors_paired": None,
        }
        if role not in ("floor", "request"):
            added[name] = (median[name] - base) / floor
            # Cross-check: the same difference taken within each round, then the median.
            diffs = [v - b for v, b in zip(values, samples["unprotected"], strict=True)]
            paired[name] = statistics.median(diffs) / floor
            entry["added_floors"], entry["added_floors_paired"] = added[name], paired[name]
        variants.append(entry)
    leads: dict[str, dict[str, float | None]] = {}
    for ours in ("require_user_new", "require_user_hit"):
        leads[ours] = {}
        for baseline in ("pyjwt", "jose"):
            leads[ours][baseline] = added[baseline] / added[ours] if added[ours] > 0 else None
    ideal, noop = added["ideal_new"], added["noop"]
    targets = [
        _target(
            "require_user new token / the hand-written ideal",
            added["require_user_new"] / ideal,
            1.15,
            " (every check on)",
            unit="x",
        ),
        _target(
            "require_user cache miss / cache off",
            added["require_user_new"] / added["require_user_nocache"],
            1.0,
            "",
            unit="x",
        ),
        _target(
            "require_user cache hit / async no-op dependency",
            added["require_user_hit"] / noop,
            1.5,
            "",
            unit="x",
        ),
        _target(
            "unprotected route, app with login, over the plain app",
            added["unprotected_web"],
            0.1,
            " (the session read lazily)",
        ),
        *(
            [
                _target(
                    "require_user Redis session, in raw Redis GETs (1.0 = one round trip)",
                    (added["require_user_redis"] - added["unprotected_redis"])
                    / (median["redis_get"] / floor),
                    1.3,
                    "; the tests count exactly one GET per request",
                    unit="GETs",
                )
            ]
            if "require_user_redis" in added
            else []
        ),
        _target(
            "require_user session cookie (over the same app's unprotected route)",
            added["require_user_session"] - added["unprotected_web"],
            0.8,
            "",
        ),
    ]
    return {
        "settings": asdict(settings),
        "versions": _versions(),
        "notes": notes,
        "method": (
            "in-process ASGI calls (no client, no socket) in one asyncio loop; round-robin over "
            "variants with a rotating start, one batch per variant per round; median per variant "
            "of per-round means; added = variant median - unprotected median (targets and leads "
            "use this); added_paired = median over rounds of (variant - unprotected) in the same "
            "round, a cross-check; all in floors"
        ),
        "elapsed_s": elapsed,
        "floor_us": floor * 1e6,
        "unprotected_floors": base / floor,
        "variants": variants,
        "added_floors": added,
        "added_floors_paired": paired,
        "leads": leads,
        "targets": targets,
        "all_ok": all(t["ok"] for t in targets),
    }


def _target(
    name: str, value: float, limit: float, hint: str, *, unit: str = "floors"
) -> dict[str, Any]:
    ok = value <= limit
    shown = f"{limit:.2f}x" if unit == "x" else f"{limit:.1f} {unit}"
    return {
        "name": name,
        "limit_floors": limit,
        "value_floors": value,
        "unit": unit,
        "ok": ok,
        "line": f"target {name} <= {shown}{hint}: {value:.2f} {'OK' if ok else 'MISS'}",
    }


async def run_async(settings: Settings) -> dict[str, Any]:
    """Measure everything in the running loop; raises :class:`BadResponse` on any non-200."""
    started = time.perf_counter()
    with redis_server() as redis_url:
        return await _run_with(settings, redis_url, started)


async def _run_with(settings: Settings, redis_url: str | None, started: float) -> dict[str, Any]:
    setup = await _build(settings, redis_url)
    async with AsyncExitStack() as stack:
        for app in setup.guard_apps:  # starts each guard: discovery + JWKS warm before timing
            await stack.enter_async_context(app.router.lifespan_context(app))
        for guard in setup.guards:
            if not guard.keys.keys:
                raise BadResponse("the guard has no keys after start-up")
        await _sanity_checks(setup.variants, settings)
        gc.collect()
        gc.freeze()
        try:
            samples = await _measure(setup.variants, settings)
        finally:
            gc.unfreeze()
            for variant in setup.variants:
                if isinstance(variant, RedisGetVariant):
                    await variant.aclose()
    return _results(samples, settings, setup.notes, time.perf_counter() - started)


def run(quick: bool = True, rounds: int | None = None) -> dict[str, Any]:
    """Run the benchmark in a fresh event loop and return the results (see ``--json``).

    Raises :class:`benchmarks.asgi.BadResponse` if any measured response was not a 200.
    Never asserts on absolute times: ``results["targets"]`` carry ratios and OK/MISS.
    """
    return asyncio.run(run_async(settings_for(quick=quick, rounds=rounds)))
