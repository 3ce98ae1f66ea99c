"""``python -m benchmarks.load``: throughput under uvicorn with ``wrk`` on loopback (target 6).

A server process (this module with ``--serve``) runs two apps under uvicorn, one worker each,
on 127.0.0.1:

- the bearer app (no login): ``/public`` (no dependency), ``/ideal`` (the hand-written ideal
  dependency of ``benchmarks.apps``) and ``/guard`` (``Depends(require_user)``);
- the login app (sessions in the encrypted cookie): ``/public`` and ``/guard``.

``wrk`` (Debian's package; one thread, bounded runs of ``--seconds``) loads one route at a time,
interleaved over ``--rounds``; new tokens cycle through 2048 distinct pre-minted tokens (the
guard's cache holds 1024: every request is a miss), repeated tokens send one token. Reported:
requests per second (medians, min-max) and the ratios the target compares, each taken within
a round (the machine drifts between rounds) and their median over the rounds:

- ``require_user`` protected/public over the ideal's protected/public, new and repeated tokens
  (target >= 0.9: the guard keeps at least 90 % of the throughput the ideal keeps);
- the session cookie's ``/guard`` over the same app's ``/public`` (target >= 0.9).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

_POOL = 2048
_LUA = """
local tokens, i = {}, 0
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
local cookie = os.getenv("BENCH_COOKIE")
request = function()
  local headers = {}
  if cookie ~= nil and cookie ~= "" then headers["Cookie"] = cookie
  elseif #tokens > 0 then
    i = i % #tokens + 1
    headers["Authorization"] = "Bearer " .. tokens[i]
  end
  return wrk.format("GET", nil, headers)
end
"""


def _listen() -> socket.socket:
    sock = socket.socket()
    # Accepted sockets inherit it (Linux); asyncio sets it only on sockets it created itself,
    # and without it every response waits out the client's delayed ACK (~40 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))  # loopback only
    sock.listen(512)
    return sock


async def _serve(out: Path) -> None:
    import uvicorn
    from fastapi import Depends, FastAPI

    from fastapi_oidc_guard import OIDCGuard, User, require_user
    from fastapi_oidc_guard.testing import FakeIssuer

    from . import apps
    from .runner import _session_setup

    issuer = FakeIssuer()
    public_key = issuer.signing_key.private.public_key()  # type: ignore[union-attr]
    guard = OIDCGuard(issuer=issuer.issuer, audience=issuer.audience, transport=issuer.transport)
    bearer = FastAPI(lifespan=guard.lifespan)
    guard.install(bearer)
    ideal = apps.ideal_dependency(public_key, audience=issuer.audience, issuer=issuer.issuer)

    @bearer.get("/public")
    async def public() -> dict[str, str]:
        return {"sub": "anonymous"}

    @bearer.get("/ideal")
    async def by_ideal(claims: dict[str, Any] = Depends(ideal)) -> dict[str, str]:
        return {"sub": str(claims["sub"])}

    @bearer.get("/guard")
    async def by_guard(user: User = Depends(require_user)) -> dict[str, str]:
        return {"sub": user.sub}

    web_guard, headers, _ = await _session_setup(issuer)
    web = FastAPI(lifespan=web_guard.lifespan)
    web_guard.install(web)
    web.get("/public")(public)
    web.get("/guard")(by_guard)

    (out / "pool.txt").write_text("".join(issuer.mint(sub=f"u{n}") + "\n" for n in range(_POOL)))
    (out / "repeat.txt").write_text(issuer.mint(sub="repeat") + "\n")
    (out / "cookie.txt").write_text(headers[0][0][1].decode())
    socks = {"bearer": _listen(), "web": _listen()}
    servers = [
        uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
        for app in (bearer, web)
    ]
    ports = {name: sock.getsockname()[1] for name, sock in socks.items()}
    (out / "ports.tmp").write_text(json.dumps(ports))
    (out / "ports.tmp").replace(out / "ports.json")  # the parent never reads half a file
    parent = os.getppid()

    async def orphaned() -> None:  # the parent was killed: stop serving
        while os.getppid() == parent:
            await asyncio.sleep(0.5)

    running = [
        asyncio.ensure_future(server.serve(sockets=[sock]))
        for server, sock in zip(servers, socks.values(), strict=True)
    ]
    watch = asyncio.ensure_future(orphaned())
    await asyncio.wait([*running, watch], return_when=asyncio.FIRST_COMPLETED)
    for server in servers:  # SIGTERM reaches one of them: stop both, lifespans included
        server.should_exit = True
    watch.cancel()
    await asyncio.gather(*running)


def _wrk(url: str, seconds: int, lua: Path, tokens: Path | None, cookie: str | None) -> float:
    env = {**os.environ, "BENCH_TOKENS": str(tokens or os.devnull), "BENCH_COOKIE": cookie or ""}
    wrk = shutil.which("wrk") or "wrk"
    done = subprocess.run(  # noqa: S603 (a fixed local binary)
        [wrk, "-t1", "-c16", f"-d{seconds}s", "--timeout", "5s", "-s", str(lua), url],
        env=env, capture_output=True, text=True, timeout=seconds + 30, check=True,
    )  # fmt: skip
    if "Non-2xx" in done.stdout or "Socket errors" in done.stdout:
        raise RuntimeError(f"wrk saw errors on {url}:\n{done.stdout}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if match is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{done.stdout}")
    return float(match.group(1))


def _wait_for(path: Path, proc: subprocess.Popen[bytes], limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the benchmark server did not start")
        time.sleep(0.05)


def measure(seconds: int, rounds: int, *, warmup: int = 1) -> dict[str, Any]:
    """Requests per second per variant (median over ``rounds``) and the target ratios."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk not found (Debian package wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        lua = out / "bench.lua"
        lua.write_text(_LUA)
        serve = [sys.executable, "-m", "benchmarks.load", "--serve", tmp]
        proc = subprocess.Popen(serve)  # noqa: S603 (this module, as the server)
        try:
            _wait_for(out / "ports.json", proc)
            ports = json.loads((out / "ports.json").read_text())
            bearer, web = (f"http://127.0.0.1:{ports[k]}" for k in ("bearer", "web"))
            pool, repeat = out / "pool.txt", out / "repeat.txt"
            cookie = (out / "cookie.txt").read_text()
            runs = {
                "public": (f"{bearer}/public", None, None),
                "ideal_new": (f"{bearer}/ideal", pool, None),
                "guard_new": (f"{bearer}/guard", pool, None),
                "ideal_repeated": (f"{bearer}/ideal", repeat, None),
                "guard_repeated": (f"{bearer}/guard", repeat, None),
                "web_public": (f"{web}/public", None, None),
                "web_session": (f"{web}/guard", None, cookie),
            }
            for url, tokens, sent in runs.values() if warmup else ():  # untimed
                _wrk(url, warmup, lua, tokens, sent)
            samples: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(rounds):
                for name, (url, tokens, sent) in runs.items():
                    samples[name].append(_wrk(url, seconds, lua, tokens, sent))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
    rps = {name: statistics.median(values) for name, values in samples.items()}
    spread = {name: (min(values), max(values)) for name, values in samples.items()}

    def paired(top: str, bottom: str) -> float:  # within each round: the machine drifts
        return statistics.median(a / b for a, b in zip(samples[top], samples[bottom], strict=True))

    kept = {name: paired(name, "public") for name in runs if name != "public"}
    kept["web_session"] = paired("web_session", "web_public")
    ratios = {
        "new": paired("guard_new", "ideal_new"),  # (guard/public) / (ideal/public)
        "repeated": paired("guard_repeated", "ideal_repeated"),
        "session": kept["web_session"],
    }
    return {"rps": rps, "spread": spread, "kept": kept, "ratios": ratios,
            "seconds": seconds, "rounds": rounds}  # fmt: skip


def render(result: dict[str, Any]) -> str:
    lines = [
        "fastapi_oidc_guard under uvicorn (1 worker) and wrk (1 thread, 16 connections), "
        f"loopback; {result['rounds']} rounds of {result['seconds']} s per variant",
        "",
        f"{'variant':<16} {'req/s median':>12} {'min-max':>17} {'of public':>9}",
    ]
    for name, value in result["rps"].items():
        low, high = result["spread"][name]
        kept = result["kept"].get(name)
        share = "-" if kept is None or name == "web_public" else f"{kept:.2f}"
        lines.append(f"{name:<16} {value:>12.0f} {low:>8.0f}-{high:<8.0f} {share:>9}")
    lines.append("")
    names = {"new": "new token", "repeated": "repeated token"}
    for key, label in names.items():
        ratio = result["ratios"][key]
        verdict = "OK" if ratio >= 0.9 else "MISS"
        lines.append(
            f"target 6 require_user {label}: protected/public over the ideal's >= 0.90: "
            f"{ratio:.2f} {verdict}"
        )
    ratio = result["ratios"]["session"]
    lines.append(
        "target 6 require_user session cookie / the same app's route without auth >= 0.90: "
        f"{ratio:.2f} {'OK' if ratio >= 0.9 else 'MISS'}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__)
    parser.add_argument("--seconds", type=int, default=2, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--serve", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(Path(args.serve)))
        return 0
    if not 1 <= args.seconds <= 60 or not 1 <= args.rounds <= 20:
        parser.error("--seconds must be 1 to 60 and --rounds 1 to 20")
    print(render(measure(args.seconds, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
