"""``python -m benchmarks.scale``: does the cost stay flat as sessions and tokens pile up?

1. Sessions in a real Redis (``redis-server`` on loopback, started here): 1k, 100k and 1M
   sessions written through ``RedisSessionBackend.create`` in bounded batches (many share a
   ``sub``, as users with several devices do); at each size, the wall time of a session read
   (``load``), a back-channel logout by ``sid`` and one by ``sub`` (``delete_by``), medians of
   repeated runs, and Redis's memory per session (``used_memory`` over the count).
2. The process's RSS while distinct bearer tokens pass through ``require_user`` (the verified-
   token cache and every other cache are bounded): sampled every 25k tokens.

Sizes are arguments (``--sessions 1000,100000,1000000 --tokens 200000``); a smoke run uses small
ones. Prints one table per part; nothing is asserted (the numbers go in the docs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import time
from typing import Any

from fastapi_oidc_guard import SessionData
from fastapi_oidc_guard.sessions.redis import RedisSessionBackend
from fastapi_oidc_guard.sessions.sealing import Sealer

from .redis_support import redis_server

__all__ = ["main", "measure_rss", "measure_sessions"]

_BATCH = 2000  # creates per batch: bounded memory
_CONCURRENCY = 32  # creates in flight: below the store's connection pool


def _session(n: int, now: float) -> SessionData:
    return SessionData(
        id=f"id-{n}", sub=f"user-{n // 3}", sid=f"sid-{n}", user={"sub": f"user-{n // 3}"},
        id_token="h.p.s", refresh_token="r" * 43, created_at=now, last_active=now,
    )  # fmt: skip


async def _timed(operation: Any, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await operation()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


async def measure_sessions(url: str, sizes: list[int], *, repeat: int = 25) -> list[dict[str, Any]]:
    """One row per size: read, logout by sid, logout by sub (ms) and bytes per session."""
    import redis.asyncio

    raw = redis.asyncio.Redis.from_url(url)
    await raw.flushall()
    base_memory = int((await raw.info("memory"))["used_memory"])
    now = time.time()
    sealer = Sealer(("s" * 48,), clock=time.time, binding="scale")
    store = RedisSessionBackend(sealer=sealer, url=url, clock=time.time)
    keys: list[str] = []
    rows = []
    written = 0
    for size in sorted(sizes):
        while written < size:
            batch = range(written, min(size, written + _BATCH))
            new = [secrets.token_hex(32) for _ in batch]
            gate = asyncio.Semaphore(_CONCURRENCY)

            async def create(key: str, n: int, gate: asyncio.Semaphore = gate) -> None:
                async with gate:
                    await store.create(key, _session(n, now), expires_at=now + 86_400)

            await asyncio.gather(*(create(key, n) for key, n in zip(new, batch, strict=True)))
            keys += new
            written += len(new)
        memory = int((await raw.info("memory"))["used_memory"]) - base_memory
        probe = keys[size // 2]
        read = await _timed(lambda k=probe: store.load(k), repeat)
        # Each logout ends sessions that exist (a fresh sid / sub each time, from the middle).
        victims = iter(range(size // 3, size))

        async def by_sid(victims: Any = victims) -> None:
            n = next(victims)
            await store.delete_by(sid=f"sid-{n}", sub=None, until=now + 86_400)

        async def by_sub(victims: Any = victims) -> None:
            n = next(victims)
            await store.delete_by(sid=None, sub=f"user-{n // 3}", until=now + 86_400)

        rows.append({
            "sessions": size, "read_ms": read, "logout_sid_ms": await _timed(by_sid, repeat),
            "logout_sub_ms": await _timed(by_sub, repeat),
            "bytes_per_session": memory / size,
        })  # fmt: skip
    await store.aclose()
    await raw.aclose()
    return rows


def _rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


async def measure_rss(tokens: int, *, every: int | None = None) -> list[tuple[int, int]]:
    """(tokens verified so far, RSS KiB) while ``tokens`` distinct EdDSA tokens pass through
    ``require_user`` (EdDSA: minting 200k RSA tokens would take minutes)."""
    from fastapi import Depends, FastAPI

    from fastapi_oidc_guard import OIDCGuard, User, require_user
    from fastapi_oidc_guard.testing import FakeIssuer, SigningKey

    from .asgi import AsgiDriver, request_headers

    issuer = FakeIssuer()
    key = SigningKey.generate("EdDSA")
    issuer.keys.append(key)
    guard = OIDCGuard(issuer=issuer.issuer, audience=issuer.audience, transport=issuer.transport)
    app = FastAPI(lifespan=guard.lifespan)
    guard.install(app)

    @app.get("/p")
    async def endpoint(user: User = Depends(require_user)) -> dict[str, str]:
        return {"sub": user.sub}

    await guard.start()
    every = every or max(tokens // 8, 1)
    driver = AsgiDriver(app, "/p")
    samples = [(0, _rss_kib())]
    for n in range(1, tokens + 1):
        token = issuer.mint(key=key, sub=f"u-{n}", jti=f"t-{n}")
        if await driver.get(request_headers(token)) != 200:
            raise RuntimeError("a token was refused")
        if n % every == 0:
            samples.append((n, _rss_kib()))
    await guard.aclose()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    parser.add_argument("--sessions", default="1000,100000,1000000")
    parser.add_argument("--tokens", type=int, default=200_000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sessions.split(",") if s]
    if sizes and shutil.which("redis-server"):
        with redis_server() as url:
            assert url is not None
            rows = asyncio.run(measure_sessions(url, sizes))
        print("sessions  read ms  logout by sid ms  logout by sub ms  Redis bytes/session")
        for row in rows:
            print(f"{row['sessions']:>8}  {row['read_ms']:7.3f}  {row['logout_sid_ms']:16.3f}  "
                  f"{row['logout_sub_ms']:16.3f}  {row['bytes_per_session']:19.0f}")  # fmt: skip
    if args.tokens:
        print("\ntokens verified  RSS KiB")
        for count, rss in asyncio.run(measure_rss(args.tokens)):
            print(f"{count:>15}  {rss:7}")


if __name__ == "__main__":
    main()
