"""Servers for the e2e tests, all on 127.0.0.1, every wait bounded.

- :class:`ServedApp`: an ASGI app served by uvicorn in a background thread of this process.
- :class:`ServerProcess`: the lifecycle shared by the OpenID Provider processes
  (``OIDCProviderProcess``, ``GlewlwydProcess``, ``LemonLDAPProcess``): a private work dir, a
  subprocess whose output goes to a log file there, a bounded readiness poll, a bounded stop
  (terminate, then kill), the log's tail for error messages, a context manager.
- :class:`AppProcess`: ``python -m uvicorn <module>:app`` in a subprocess, with extra
  environment variables, on a given port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx
import uvicorn

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]  # the repository: app modules are tests.e2e.*

JsonDict = dict[str, Any]


def free_socket() -> socket.socket:
    """A listening-ready socket bound to 127.0.0.1 on a free port (no bind race)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    return sock


def free_port() -> int:
    """A port free on 127.0.0.1 just now, for a process that binds it itself (a small race,
    caught by that process's bounded readiness wait)."""
    sock = free_socket()
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def deep_update(base: JsonDict, override: JsonDict) -> JsonDict:
    """Merge ``override`` into ``base`` (nested dicts merged, anything else replaced)."""
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def require(what: str, reason: str | None) -> None:
    """Nothing when ``reason`` is None; else pytest.skip, or pytest.fail when ``CI`` is set
    (so CI never skips silently)."""
    if reason is None:
        return
    import pytest  # lazily: the server classes are usable without pytest

    if os.environ.get("CI", "").strip():
        pytest.fail(f"{what} unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"{what} unavailable: {reason}")


def stop_process(
    proc: subprocess.Popen[bytes], timeout: float, kill_timeout: float | None = None
) -> None:
    """Terminate ``proc`` if it still runs; kill it after ``timeout`` seconds (then wait at most
    ``kill_timeout``, by default ``timeout``, for it to go)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout if kill_timeout is None else kill_timeout)


def read_tail(path: Path, max_chars: int = 4000) -> str:
    """The last ``max_chars`` characters of a log file ("" when it cannot be read)."""
    try:
        return path.read_text(errors="replace")[-max_chars:]
    except OSError:
        return ""


def _ok(resp: httpx.Response) -> bool:
    return resp.status_code == 200


def _never(resp: httpx.Response) -> bool:
    return False


def wait_until_ready(
    url: str,
    *,
    proc: subprocess.Popen[bytes] | None,
    timeout: float,
    what: str,
    log_tail: Callable[[], str],
    ready: Callable[[httpx.Response], bool] = _ok,
    give_up: Callable[[httpx.Response], bool] = _never,
    probe_timeout: float = 2.0,
    interval: float = 0.05,
) -> None:
    """Poll ``GET url`` until ``ready(response)``, for at most ``timeout`` seconds.

    Raises ``RuntimeError`` (with ``log_tail()``) when ``proc`` exits first, when a response
    makes ``give_up`` true (an error no retry will cure) or when time runs out.
    """
    deadline = time.monotonic() + timeout
    last_error = "no attempt"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited early (exit={proc.returncode})\n{log_tail()}")
        try:
            resp = httpx.get(url, timeout=probe_timeout)
        except httpx.HTTPError as exc:
            last_error = repr(exc)
        else:
            if ready(resp):
                return
            last_error = f"HTTP {resp.status_code}: {resp.text[:200]}"
            if give_up(resp):
                break
        time.sleep(interval)
    raise RuntimeError(f"{what} not ready within {timeout}s: {last_error}\n{log_tail()}")


class ServerProcess:
    """A server subprocess on 127.0.0.1, owned by this object (the base of the provider
    processes).

    A subclass sets ``name`` (for messages) and ``log_path`` (read by :meth:`log_tail`), and
    writes :meth:`start`: :meth:`_spawn` the command, then :meth:`_wait_ready`; on failure
    :meth:`stop`. ``with`` starts it and :meth:`close`\\ s it (also when the start fails).
    """

    name = "server"
    log_path: Path

    def __init__(
        self,
        *,
        startup_timeout: float,
        stop_timeout: float,
        workdir: str | os.PathLike[str] | None,
        workdir_prefix: str,
    ) -> None:
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=workdir_prefix))
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        raise NotImplementedError

    def _spawn(
        self,
        command: Sequence[str],
        *,
        log: Path,
        cwd: str | os.PathLike[str],
        env: dict[str, str] | None = None,
        pipe_stdout: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start ``command`` (stdin closed), its stdout and stderr appended to ``log``; with
        ``pipe_stdout`` only stderr, stdout being a pipe for the caller to read."""
        self._log_file = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipe_stdout else self._log_file,
            stderr=self._log_file if pipe_stdout else subprocess.STDOUT,
        )  # fmt: skip
        return self._proc

    def _wait_ready(
        self,
        url: str,
        *,
        ready: Callable[[httpx.Response], bool] = _ok,
        give_up: Callable[[httpx.Response], bool] = _never,
    ) -> None:
        """:func:`wait_until_ready` on ``url``, bounded by ``startup_timeout``."""
        wait_until_ready(
            url, proc=self._proc, timeout=self.startup_timeout, what=self.name,
            log_tail=self.log_tail, ready=ready, give_up=give_up,
        )  # fmt: skip

    def stop(self) -> None:
        """Terminate the server (then kill it after ``stop_timeout``) and close its log."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, self.stop_timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def close(self) -> None:
        """Stop, and remove the work directory if this object created it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, max_chars: int = 4000) -> str:
        """The end of the server's log (for error messages)."""
        return read_tail(self.log_path, max_chars)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AppProcess:
    """``python -m uvicorn <app>`` (``app`` as uvicorn takes it: ``tests.e2e.multi_app:app``)
    on ``127.0.0.1:<port>``, run from the repository root with ``env`` added to this process's
    environment. The constructor waits (bounded) until ``GET <ready_path>`` answers 200; its
    output is kept in a temporary file (:meth:`output`)."""

    def __init__(
        self,
        app: str,
        env: dict[str, str],
        port: int,
        *,
        ready_path: str = "/api/optional",
        startup_timeout: float = 20.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.stop_timeout = stop_timeout
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port),
             "--log-level", "warning"],
            cwd=ROOT, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_until_ready(
                f"{self.url}{ready_path}", proc=self.process, timeout=startup_timeout,
                what=f"app process on port {port}", log_tail=self.output,
                probe_timeout=1.0, interval=0.1,
            )  # fmt: skip
        except BaseException:
            self.stop()
            raise

    def output(self) -> str:
        """The end of the app's output (uvicorn logs at ``warning``)."""
        if self.log.closed:
            return ""
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-4000:]

    def stop(self) -> None:
        """Terminate the app (kill it after ``stop_timeout``) and drop its output."""
        stop_process(self.process, self.stop_timeout, kill_timeout=5.0)
        self.log.close()


class ServedApp:
    """``with ServedApp(app, sock) as base_url:`` serves ``app`` until the block ends."""

    def __init__(self, app: Any, sock: socket.socket, *, start_timeout: float = 15.0) -> None:
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.base_url = f"http://{HOST}:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._timeout = start_timeout

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self.base_url

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self.sock.close()
