"""Run panva's ``oidc-provider`` (tests/e2e/provider/server.mjs) as a test OpenID Provider.

Usable without pytest::

    with OIDCProviderProcess() as op:
        httpx.get(f"{op.issuer}/.well-known/openid-configuration")
        op.rotate_keys()          # new signing key first, old one kept; same issuer
        op.counters()             # {"token": 1, "token_client_credentials": 1, ...}

``drive_login`` walks an authorization request through devInteractions' login and
consent pages with an ``httpx.Client`` and returns the final redirect URL;
``drive_logout`` does the same for RP-initiated logout.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import threading
import uuid
from html.parser import HTMLParser
from pathlib import Path
from typing import Self
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from ._server import JsonDict, ServerProcess, deep_update

PROVIDER_DIR = Path(__file__).resolve().parent / "provider"
SERVER_SCRIPT = PROVIDER_DIR / "server.mjs"

DEFAULT_CLIENT_ID = "test-client"
DEFAULT_CLIENT_SECRET = "test-secret-0123456789abcdef0123456789abcdef"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8000/auth/callback"
DEFAULT_POST_LOGOUT_REDIRECT_URI = "http://127.0.0.1:8000/"
DEFAULT_API = "https://api.example.test"
OPAQUE_API = "https://opaque-api.example.test"


def missing_prerequisites() -> str | None:
    """Return why the provider cannot run here (no ``node`` / no ``npm ci``), or None."""
    if shutil.which("node") is None:
        return "`node` is not on PATH (Node >= 20 is needed for the e2e OpenID Provider)"
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        return f"oidc-provider is not installed: run `npm ci` in {PROVIDER_DIR}"
    return None


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def generate_rsa_jwk(kid: str | None = None) -> JsonDict:
    """Generate a private RSA-2048 signing JWK (RS256) with a unique ``kid``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv = key.private_numbers()
    pub = priv.public_numbers
    return {
        "kty": "RSA",
        "kid": kid or f"key-{uuid.uuid4().hex[:12]}",
        "use": "sig",
        "alg": "RS256",
        "n": _b64url_uint(pub.n),
        "e": _b64url_uint(pub.e),
        "d": _b64url_uint(priv.d),
        "p": _b64url_uint(priv.p),
        "q": _b64url_uint(priv.q),
        "dp": _b64url_uint(priv.dmp1),
        "dq": _b64url_uint(priv.dmq1),
        "qi": _b64url_uint(priv.iqmp),
    }


def default_config() -> JsonDict:
    """Config written to the server's JSON file (see DEFAULTS in server.mjs)."""
    return {
        "client": {
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "redirect_uris": [DEFAULT_REDIRECT_URI],
            "post_logout_redirect_uris": [DEFAULT_POST_LOGOUT_REDIRECT_URI],
            "backchannel_logout_uri": None,
            "backchannel_logout_session_required": True,
            "scope": None,
            "extra": {},
        },
        "extra_clients": [],
        "api": {"identifier": DEFAULT_API, "scope": "api:read api:write", "access_token_ttl": 300},
        "other_apis": ["https://other-api.example.test"],
        "opaque_apis": [OPAQUE_API],  # opaque access tokens, for introspection
        "ttl": {
            "AccessToken": 3600,
            "AuthorizationCode": 60,
            "ClientCredentials": 600,
            "IdToken": 3600,
            "Interaction": 3600,
            "RefreshToken": 86400,
            "Session": 86400,
            "Grant": 86400,
        },
        "rotate_refresh_token": "always",
        "conform_id_token_claims": True,
        "features": {},
    }


class OIDCProviderProcess(ServerProcess):
    """A running ``oidc-provider`` on ``http://127.0.0.1:<port>``, owned by this object.

    ``config`` is a JSON-able dict (defaults from :func:`default_config`, deep-merged
    with ``overrides``); edit it and call :meth:`restart` to apply changes. Sessions,
    grants and refresh tokens survive restarts when ``persist_state`` is true.
    """

    name = "oidc-provider"

    def __init__(
        self,
        overrides: JsonDict | None = None,
        *,
        port: int = 0,
        persist_state: bool = True,
        startup_timeout: float = 20.0,
        stop_timeout: float = 5.0,
        node: str = "node",
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(
            startup_timeout=startup_timeout, stop_timeout=stop_timeout, workdir=workdir,
            workdir_prefix="oidc-provider-",
        )  # fmt: skip
        self.config: JsonDict = deep_update(default_config(), copy.deepcopy(overrides or {}))
        self.port = port
        self.persist_state = persist_state
        self.node = node
        self.config_path = self.workdir / "config.json"
        self.jwks_path = self.workdir / "jwks.json"
        self.state_path = self.workdir / "state.json"
        self.log_path = self.workdir / "provider.log"
        self.keys: list[JsonDict] = [generate_rsa_jwk()]
        self._issuer: str | None = None

    # ----------------------------------------------------------------- properties
    @property
    def issuer(self) -> str:
        """The issuer URL, ``http://127.0.0.1:<port>`` (stable across restarts)."""
        if self._issuer is None:
            raise RuntimeError("provider is not started")
        return self._issuer

    @property
    def client_id(self) -> str:
        return str(self.config["client"]["client_id"])

    @property
    def client_secret(self) -> str:
        return str(self.config["client"]["client_secret"])

    @property
    def api_identifier(self) -> str:
        return str(self.config["api"]["identifier"])

    @property
    def kids(self) -> list[str]:
        """Key ids in the served JWKS, signing key first."""
        return [str(k["kid"]) for k in self.keys]

    @property
    def current_kid(self) -> str:
        """The ``kid`` new tokens are signed with."""
        return self.kids[0]

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        """Write config + JWKS, spawn node and wait until discovery answers 200."""
        if self.running:
            raise RuntimeError("provider already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_files()
        self._spawn(
            [self.node, str(SERVER_SCRIPT), str(self.config_path)],
            log=self.log_path, cwd=PROVIDER_DIR, pipe_stdout=True,
        )  # fmt: skip
        try:
            issuer = self._read_issuer()
            self._wait_ready(f"{issuer}/.well-known/openid-configuration")
            self._issuer = issuer
            self.port = urlsplit(issuer).port or 0
            self.reset_counters()  # forget the readiness probes; counters live in the process
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self, *, keep_state: bool = True) -> None:
        """Restart on the same port (same issuer), re-reading ``config`` and ``keys``."""
        self.stop()
        if not keep_state:
            self.state_path.unlink(missing_ok=True)
        self.start()

    def rotate_keys(self, *, keep_old: bool = True, keep_state: bool = True) -> str:
        """Add a new signing key in front of the JWKS and restart; return its ``kid``."""
        new_key = generate_rsa_jwk()
        self.keys = [new_key, *(self.keys if keep_old else [])]
        self.restart(keep_state=keep_state)
        return str(new_key["kid"])

    # ------------------------------------------------------------------- helpers
    def url(self, path: str) -> str:
        """Absolute URL for ``path`` on the provider."""
        return f"{self.issuer}/{path.lstrip('/')}"

    def discovery(self) -> JsonDict:
        """The provider's ``/.well-known/openid-configuration`` document."""
        resp = httpx.get(self.url("/.well-known/openid-configuration"), timeout=5.0)
        resp.raise_for_status()
        return dict(resp.json())

    def counters(self) -> dict[str, int]:
        """Request counters since (re)start or reset, e.g. ``{"token": 2, "jwks": 1}``.

        Keys: ``<route>`` and ``<route>_error`` (HTTP status >= 400) for oidc-provider's
        route names (``discovery``, ``jwks``, ``authorization``, ``resume``, ``interaction``,
        ``submit``, ``token``, ``userinfo``, ``introspection``, ``revocation``,
        ``end_session``, ``end_session_confirm``, ``unmatched``...), ``token_<grant_type>``
        and ``token_<grant_type>_error``, and ``backchannel_logout[_error]`` for
        back-channel logout deliveries. Absent keys mean zero.
        """
        resp = httpx.get(self.url("/__test/counters"), timeout=5.0)
        resp.raise_for_status()
        return {str(k): int(v) for k, v in resp.json().items()}

    def reset_counters(self) -> None:
        """Zero all request counters."""
        httpx.post(self.url("/__test/counters/reset"), timeout=5.0).raise_for_status()

    def _write_files(self) -> None:
        self.jwks_path.write_text(json.dumps({"keys": self.keys}))
        server_cfg = {
            **self.config,
            "host": "127.0.0.1",
            "port": self.port,
            "jwks_path": str(self.jwks_path),
            "state_path": str(self.state_path) if self.persist_state else None,
        }
        self.config_path.write_text(json.dumps(server_cfg, indent=2))

    def _read_issuer(self) -> str:
        """Read the first stdout line (the issuer) within ``startup_timeout``."""
        assert self._proc is not None
        stdout = self._proc.stdout
        assert stdout is not None
        result: list[bytes] = []
        got_line = threading.Event()

        def pump() -> None:
            with stdout:
                try:
                    result.append(stdout.readline())
                    got_line.set()
                    while stdout.read(65536):  # keep draining so the server never blocks
                        pass
                except (OSError, ValueError):
                    pass
                finally:
                    got_line.set()

        threading.Thread(target=pump, name="oidc-provider-stdout", daemon=True).start()
        if not got_line.wait(self.startup_timeout):
            raise RuntimeError(
                f"oidc-provider printed no issuer within {self.startup_timeout}s\n{self.log_tail()}"
            )
        issuer = result[0].decode("utf-8", "replace").strip() if result else ""
        if not issuer.startswith("http://127.0.0.1:"):
            raise RuntimeError(
                f"oidc-provider failed to start (exit={self._proc.poll()}, "
                f"first line={issuer!r})\n{self.log_tail()}"
            )
        return issuer


# ------------------------------------------------------------------ login driver
class _Form:
    def __init__(self, action: str, method: str) -> None:
        self.action = action
        self.method = method
        self.fields: dict[str, str] = {}


class _FormParser(HTMLParser):
    """Collects ``<form>`` elements and their named ``<input>``/``<button>`` values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self._current: _Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = _Form(attr.get("action", ""), attr.get("method", "get").lower())
            self.forms.append(self._current)
        elif tag in ("input", "button") and self._current is not None and attr.get("name"):
            self._current.fields[attr["name"]] = attr.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def _is_final_redirect(location: str, stop_prefix: str | None) -> bool:
    if stop_prefix is not None:
        return location.startswith(stop_prefix)
    query = parse_qs(urlsplit(location).query)
    return "code" in query or "error" in query


def drive_login(
    client: httpx.Client,
    authorize_url: str,
    login: str = "alice",
    max_steps: int = 10,
    *,
    password: str = "any-password",
    stop_prefix: str | None = None,
) -> str:
    """Follow ``authorize_url`` through devInteractions' login and consent forms.

    Each HTTP request is one step. Redirects are followed by hand (cookies are kept in
    ``client``'s jar) until a ``Location`` carries ``code`` or ``error`` in its query
    (or starts with ``stop_prefix``); that URL is returned without being requested.
    ``authorize_url`` may be the provider's authorization endpoint or an app route
    that redirects there (e.g. ``/auth/login``).
    """
    method, url, data = "GET", authorize_url, None
    for _ in range(max_steps):
        resp = client.request(method, url, data=data, follow_redirects=False)
        if resp.is_redirect:
            location = urljoin(str(resp.url), resp.headers["location"])
            if _is_final_redirect(location, stop_prefix):
                return location
            method, url, data = "GET", location, None
            continue
        if resp.status_code != 200 or "html" not in resp.headers.get("content-type", ""):
            raise RuntimeError(
                f"login flow stuck at {method} {url}: HTTP {resp.status_code}\n{resp.text[:2000]}"
            )
        parser = _FormParser()
        parser.feed(resp.text)
        form = next(
            (f for f in parser.forms if f.fields.get("prompt") in ("login", "consent")), None
        )
        if form is None:
            raise RuntimeError(f"no login/consent form at {url}:\n{resp.text[:2000]}")
        fields = dict(form.fields)
        if fields.get("prompt") == "login":
            fields["login"] = login
            fields["password"] = password
        method, url, data = form.method.upper(), urljoin(str(resp.url), form.action), fields
    raise RuntimeError(f"login flow did not finish within {max_steps} steps (last: {method} {url})")


def drive_logout(
    client: httpx.Client,
    end_session_url: str,
    max_steps: int = 6,
    *,
    confirm: bool = True,
) -> str:
    """Follow an RP-initiated logout (``end_session_endpoint`` URL) through the OP's prompt.

    Answers the "Do you want to sign-out?" form with ``logout=yes`` (or "no" when
    ``confirm`` is false) and returns the first redirect ``Location`` that leaves the
    provider's origin (the ``post_logout_redirect_uri``) or points at the provider's own
    ``/session/end/success`` page, without requesting it.
    """
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(end_session_url))
    method, url, data = "GET", end_session_url, None
    for _ in range(max_steps):
        resp = client.request(method, url, data=data, follow_redirects=False)
        if resp.is_redirect:
            location = urljoin(str(resp.url), resp.headers["location"])
            if not location.startswith(origin + "/") or "/session/end/success" in location:
                return location
            method, url, data = "GET", location, None
            continue
        if resp.status_code != 200 or "html" not in resp.headers.get("content-type", ""):
            raise RuntimeError(
                f"logout flow stuck at {method} {url}: HTTP {resp.status_code}\n{resp.text[:2000]}"
            )
        parser = _FormParser()
        parser.feed(resp.text)
        form = next((f for f in parser.forms if "/session/end/confirm" in f.action), None)
        if form is None:
            raise RuntimeError(f"no logout form at {url}:\n{resp.text[:2000]}")
        fields = dict(form.fields)
        if confirm:
            fields["logout"] = "yes"
        method, url, data = form.method.upper(), urljoin(str(resp.url), form.action), fields
    raise RuntimeError(
        f"logout flow did not finish within {max_steps} steps (last: {method} {url})"
    )
