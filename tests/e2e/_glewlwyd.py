"""Run Glewlwyd (Debian's ``glewlwyd`` 2.7.5) as a second, independently written OpenID Provider.

Install it with ``.ci/install-glewlwyd.sh``. Usable without pytest::

    with GlewlwydProcess(redirect_uris=[f"{app}/auth/callback"]) as op:
        httpx.get(f"{op.issuer}/.well-known/openid-configuration")
        callback = drive_login(browser, f"{app}/auth/login", "alice", "alice-password")

Everything lives in a private temp dir: a config file (bound to 127.0.0.1 on a free port), a
fresh SQLite database built from the shipped ``init.sqlite3.sql.gz`` (admin ``admin`` /
``password``) and the logs. The rest is configured through the admin REST API, as an
administrator would: the client data format (the ``post_logout_redirect_uris`` property its
end-session code reads but the shipped format lacks), an RS256 OIDC plugin instance, scopes,
users and one confidential client.

``drive_login`` logs a user in the way Glewlwyd's login page does (no browser):
``POST /api/auth/`` with the password, ``PUT /api/auth/grant/<client_id>`` with the scopes, then
the authorization URL again with ``g_continue``. ``drive_logout`` does what its end-session page
does: ``GET /api/oidc/session/<sid>/<client_id>`` (the session's clients), ``DELETE
/api/oidc/session/<sid>`` (which sends the back-channel logout tokens) and ``DELETE /api/auth/``.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ._server import JsonDict, ServerProcess, free_port, require

GLEWLWYD = "glewlwyd"
INIT_SQL = Path("/usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz")
WEBAPP = Path("/usr/share/glewlwyd/webapp")
MODULES = Path("/usr/lib/glewlwyd")
ADMIN_USERNAME, ADMIN_PASSWORD = "admin", "password"  # created by init.sqlite3.sql
PLUGIN = "oidc"  # the plugin instance's name: its endpoints are under /api/oidc/

DEFAULT_CLIENT_ID = "glewlwyd-test-client"
DEFAULT_CLIENT_SECRET = "glewlwyd-secret-0123456789abcdef0123456789abcdef"
DEFAULT_API = "https://api.glewlwyd.test"
DEFAULT_API_SCOPE = "api:read"
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")  # openid is in init.sqlite3.sql
DEFAULT_USERS: tuple[dict[str, str], ...] = tuple(
    {"username": name, "password": f"{name}-password", "name": f"{name.title()} Example",
     "email": f"{name}@example.test"}
    for name in ("alice", "bob", "carol", "dave", "erin")
)  # fmt: skip


def missing_prerequisites() -> str | None:
    """Why Glewlwyd cannot run here (not installed), or None."""
    if shutil.which(GLEWLWYD) is None:
        return "`glewlwyd` is not on PATH: run .ci/install-glewlwyd.sh"
    for path in (INIT_SQL, WEBAPP / "login.html", MODULES / "plugin" / "libprotocol_oidc.so"):
        if not path.exists():
            return f"{path} is missing: the Debian package `glewlwyd` is incomplete"
    return None


def require_glewlwyd() -> None:
    """pytest.skip when Glewlwyd is not installed; pytest.fail instead when ``CI`` is set."""
    require("Glewlwyd", missing_prerequisites())


def _rsa_pem_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


class GlewlwydProcess(ServerProcess):
    """A running ``glewlwyd`` on ``http://127.0.0.1:<port>``, owned by this object.

    The client's redirect, post-logout and back-channel URIs are given here (or changed later
    with :meth:`update_client`). ``access_token_ttl`` is the plugin's access token lifetime in
    seconds (short for refresh tests).
    """

    name = "glewlwyd"

    def __init__(
        self,
        *,
        redirect_uris: Sequence[str] = ("http://127.0.0.1:8000/auth/callback",),
        post_logout_redirect_uris: Sequence[str] = ("http://127.0.0.1:8000/",),
        backchannel_logout_uri: str | None = None,
        access_token_ttl: int = 3600,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        api_identifier: str = DEFAULT_API,
        api_scope: str = DEFAULT_API_SCOPE,
        users: Sequence[Mapping[str, str]] = DEFAULT_USERS,
        startup_timeout: float = 15.0,
        stop_timeout: float = 5.0,
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(
            startup_timeout=startup_timeout, stop_timeout=stop_timeout, workdir=workdir,
            workdir_prefix="glewlwyd-",
        )  # fmt: skip
        self.redirect_uris = list(redirect_uris)
        self.post_logout_redirect_uris = list(post_logout_redirect_uris)
        self.backchannel_logout_uri = backchannel_logout_uri
        self.access_token_ttl = int(access_token_ttl)
        self.client_id = client_id
        self.client_secret = client_secret
        self.api_identifier = api_identifier
        self.api_scope = api_scope
        self.users = [dict(u) for u in users]
        self.config_path = self.workdir / "glewlwyd.conf"
        self.db_path = self.workdir / "glewlwyd.sqlite3"
        self.log_path = self.workdir / "glewlwyd.log"
        self.console_path = self.workdir / "console.log"
        self.port = 0
        self._admin: httpx.Client | None = None

    # ----------------------------------------------------------------- properties
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (the config's ``external_url``)."""
        if not self.port:
            raise RuntimeError("glewlwyd is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        """The issuer: ``<external_url>/api/oidc``, exactly (no trailing slash)."""
        return f"{self.base_url}/api/{PLUGIN}"

    def api(self, path: str) -> str:
        """Absolute URL of ``/api/<path>`` (Glewlwyd's own REST API)."""
        return f"{self.base_url}/api/{path.lstrip('/')}"

    def discovery(self) -> JsonDict:
        """The provider's ``/.well-known/openid-configuration`` document."""
        resp = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=5.0)
        resp.raise_for_status()
        return dict(resp.json())

    def user(self, username: str) -> dict[str, str]:
        return next(u for u in self.users if u["username"] == username)

    def log_tail(self, max_chars: int = 4000) -> str:
        """The end of Glewlwyd's log file and console output (for error messages)."""
        parts = []
        for path in (self.log_path, self.console_path):
            with contextlib.suppress(OSError):
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-max_chars:]}")
        return "\n".join(parts)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        """Write the config, build the database, start glewlwyd and configure it."""
        if self.running:
            raise RuntimeError("glewlwyd already running")
        reason = missing_prerequisites()
        if reason is not None:
            raise RuntimeError(reason)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._build_database()
        self.port = free_port()  # glewlwyd binds it itself (the wait below catches a race)
        self.config_path.write_text(self._config_text())
        self._spawn(
            [GLEWLWYD, "--config-file", str(self.config_path)],
            log=self.console_path,
            cwd=self.workdir,
        )
        try:
            self._wait_ready(f"{self.base_url}/config")
            self._configure()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Terminate glewlwyd (kill after ``stop_timeout``) and close the admin session."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        super().stop()

    # ------------------------------------------------------------------ admin API
    def admin(self, method: str, path: str, json: Any = None) -> httpx.Response:
        """An admin REST call (``/api/<path>``); logs in again once when the session lapsed
        (the ``g_admin`` scope asks for the password again after 10 minutes)."""
        for attempt in range(2):
            if self._admin is None:
                self._admin = httpx.Client(timeout=10.0)
                login = self._admin.post(
                    self.api("/auth/"),
                    json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD},
                )
                if login.status_code != 200:
                    raise RuntimeError(
                        f"admin login refused: HTTP {login.status_code}\n{self.log_tail()}"
                    )
            resp = self._admin.request(method, self.api(path), json=json)
            if resp.status_code != 401 or attempt:
                return resp
            self._admin.close()
            self._admin = None
        raise AssertionError("unreachable")

    def _admin_ok(self, method: str, path: str, json: Any = None) -> httpx.Response:
        resp = self.admin(method, path, json)
        if resp.status_code != 200:
            raise RuntimeError(
                f"glewlwyd admin {method} {path}: HTTP {resp.status_code} {resp.text[:1000]}\n"
                f"{self.log_tail()}"
            )
        return resp

    def client_document(self) -> JsonDict:
        """The client as stored (the database client module's properties; booleans of that
        module are strings, e.g. ``backchannel_logout_session_required: "true"``)."""
        doc: JsonDict = {
            "client_id": self.client_id,
            "name": "fastapi_oidc_guard e2e",
            "description": "confidential web client of the e2e tests",
            "enabled": True,
            "confidential": True,
            "client_secret": self.client_secret,
            "scope": [self.api_scope],  # what client_credentials may ask
            "redirect_uri": self.redirect_uris,
            "post_logout_redirect_uris": self.post_logout_redirect_uris,
            "authorization_type": ["code", "refresh_token", "client_credentials"],
            "token_endpoint_auth_method": ["client_secret_basic"],
            "resource": [self.api_identifier],
        }
        if self.backchannel_logout_uri:
            doc["backchannel_logout_uri"] = self.backchannel_logout_uri
            doc["backchannel_logout_session_required"] = "true"  # a string: else no sid
        return doc

    def update_client(
        self,
        *,
        redirect_uris: Sequence[str] | None = None,
        post_logout_redirect_uris: Sequence[str] | None = None,
        backchannel_logout_uri: str | None = None,
    ) -> None:
        """Replace the client's redirect, post-logout and back-channel URIs (applies at once)."""
        if redirect_uris is not None:
            self.redirect_uris = list(redirect_uris)
        if post_logout_redirect_uris is not None:
            self.post_logout_redirect_uris = list(post_logout_redirect_uris)
        if backchannel_logout_uri is not None:
            self.backchannel_logout_uri = backchannel_logout_uri
        self._admin_ok("PUT", f"/client/{self.client_id}", self.client_document())

    def plugin_parameters(self, private_pem: str, public_pem: str) -> JsonDict:
        """The OIDC plugin instance's parameters (names from the plugin's own validation)."""
        return {
            "iss": self.issuer,  # mandatory; the issuer as it appears in tokens and discovery
            "jwt-type": "rsa",
            "jwt-key-size": "256",  # RS256
            "key": private_pem,
            "cert": public_pem,
            "access-token-duration": self.access_token_ttl,
            "refresh-token-duration": 1_209_600,
            "code-duration": 600,
            "refresh-token-rolling": True,
            "refresh-token-one-use": "never",  # the default: refresh tokens are not rotated
            "allow-non-oidc": True,  # without it, client_credentials is "unauthorized"
            "auth-type-code-enabled": True,
            "auth-type-refresh-enabled": True,
            "auth-type-client-enabled": True,
            "auth-type-token-enabled": False,
            "auth-type-password-enabled": False,
            "auth-type-device-enabled": False,
            "pkce-allowed": True,  # without it, any code_challenge is an invalid_request
            "pkce-method-plain-allowed": False,
            "resource-allowed": True,
            "resource-client-property": "resource",
            "resource-scope-and-client-property": False,
            "resource-change-allowed": False,
            "session-management-allowed": True,  # sid in ID tokens, end_session endpoint
            "session-cookie-name": "GLEWLWYD2_OIDC_SID",
            "session-cookie-expiration": 2_419_200,
            "back-channel-logout-allowed": True,
            # Without it GET /api/oidc/session/<sid>/<client_id> answers 400, and the
            # end-session page, which needs that list, cannot complete a logout.
            "front-channel-logout-allowed": True,
            "introspection-revocation-allowed": True,
            "introspection-revocation-allow-target-client": True,  # RFC 7009 with client auth
            "name-claim": "mandatory",  # else ID token and userinfo carry no name/email
            "email-claim": "mandatory",
        }

    # ------------------------------------------------------------------ internals
    def _build_database(self) -> None:
        self.db_path.unlink(missing_ok=True)
        with gzip.open(INIT_SQL, "rt", encoding="utf-8") as sql:
            script = sql.read()
        conn = sqlite3.connect(self.db_path)
        try:
            conn.executescript(script)
            conn.commit()
        finally:
            conn.close()

    def _config_text(self) -> str:
        # No `use_secure_connection` key at all: `use_secure_connection=false` makes 2.7.5 exit
        # with a certificate error. cookie_secure=0, or the session cookie never comes back
        # over plain http.
        return f"""\
port={self.port}
bind_address="127.0.0.1"
external_url="{self.base_url}"
login_url="login.html"
api_prefix="api"
static_files_path="{WEBAPP}/"
allow_origin="*"
log_mode="file"
log_level="DEBUG"
log_file="{self.log_path}"
cookie_domain="127.0.0.1"
cookie_secure=0
session_expiration=2419200
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie"
profile_session_authentication="cookie"
allow_multiple_user_per_session=true
login_api_enabled=true
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="{MODULES}/user"
user_middleware_module_path="{MODULES}/user_middleware"
client_module_path="{MODULES}/client"
user_auth_scheme_module_path="{MODULES}/scheme"
plugin_module_path="{MODULES}/plugin"
hash_algorithm="SHA512"
database =
{{
  type = "sqlite3"
  path = "{self.db_path}"
}};
"""

    def _configure(self) -> None:
        # 1. The client data format: the end-session code reads `post_logout_redirect_uris` (a
        #    list), the shipped format declares only `post_logout_redirect_uri`.
        module = self._admin_ok("GET", "/mod/client/database").json()
        module["parameters"]["data-format"]["post_logout_redirect_uris"] = {
            "multiple": True, "read": True, "write": True,
        }  # fmt: skip
        update = {k: module[k] for k in ("display_name", "parameters", "order_rank", "readonly")}
        self._admin_ok("PUT", "/mod/client/database", update)
        self._admin_ok("PUT", "/mod/client/database/reset")
        # 2. The OIDC plugin. Set everything here: a later PUT of its parameters is stored but
        #    some only apply after PUT /mod/plugin/<name>/disable then /enable.
        private_pem, public_pem = _rsa_pem_pair()
        self._admin_ok("POST", "/mod/plugin/", {
            "module": "oidc", "name": PLUGIN, "display_name": "OpenID Connect", "enabled": True,
            "parameters": self.plugin_parameters(private_pem, public_pem),
        })  # fmt: skip
        # 3. Scopes (openid exists). password_required: the password login grants them.
        for scope in (*OIDC_SCOPES[1:], self.api_scope):
            self._admin_ok("POST", "/scope/", {
                "name": scope, "display_name": scope, "description": f"{scope} (e2e)",
                "password_required": True, "password_max_age": 0, "scheme": {},
            })  # fmt: skip
        # 4. Users, allowed every scope.
        for user in self.users:
            self._admin_ok("POST", "/user/", {
                "username": user["username"], "password": user["password"],
                "name": user.get("name", ""), "email": user.get("email", ""), "enabled": True,
                "scope": [*OIDC_SCOPES, self.api_scope],
            })  # fmt: skip
        # 5. The confidential client.
        self._admin_ok("POST", "/client/", self.client_document())
        metadata = self.discovery()
        if metadata.get("issuer") != self.issuer:
            raise RuntimeError(f"unexpected issuer {metadata.get('issuer')!r}")


# ------------------------------------------------------------------ login and logout
def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def _is_login_page(url: str) -> bool:
    return urlsplit(url).path.endswith("/login.html")


def drive_login(
    client: httpx.Client,
    authorization_url: str,
    username: str,
    password: str,
    max_steps: int = 10,
) -> str:
    """Follow ``authorization_url`` (the provider's, or an app route redirecting there, e.g.
    ``/auth/login``) through Glewlwyd's login the way its login page does, and return the final
    redirect URL (carrying ``code`` or ``error``) without requesting it.

    At the login page (``/login.html?callback_url=...&scope=...&client_id=...``): ``POST
    /api/auth/`` with the password, ``PUT /api/auth/grant/<client_id>`` with the scopes asked,
    then the ``callback_url`` again with ``g_continue``. Cookies stay in ``client``'s jar.
    """
    url = authorization_url
    logged_in = False
    for _ in range(max_steps):
        resp = client.get(url, follow_redirects=False)
        if not resp.is_redirect:
            raise RuntimeError(f"login stuck at GET {url}: HTTP {resp.status_code}\n{resp.text}")
        location = urljoin(str(resp.url), resp.headers["location"])
        if not _is_login_page(location):
            query = _query(location)
            if "code" in query or "error" in query:
                return location
            url = location
            continue
        if logged_in:
            raise RuntimeError(f"glewlwyd asked for the login page again: {location}")
        params = _query(location)
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(location))
        auth = client.post(f"{origin}/api/auth/", json={"username": username, "password": password})
        if auth.status_code != 200:
            raise RuntimeError(f"glewlwyd refused the password of {username!r}: {auth.status_code}")
        grant = client.put(
            f"{origin}/api/auth/grant/{params['client_id']}", json={"scope": params["scope"]}
        )
        if grant.status_code != 200:
            raise RuntimeError(f"glewlwyd refused the grant: {grant.status_code} {grant.text}")
        logged_in = True
        callback = params["callback_url"]
        url = callback + ("&" if "?" in callback else "?") + "g_continue"
    raise RuntimeError(f"login did not finish within {max_steps} steps (last: {url})")


def drive_logout(client: httpx.Client, end_session_url: str) -> str | None:
    """Follow an RP-initiated logout (an ``end_session_endpoint`` URL) and do what Glewlwyd's
    end-session page (``/login.html?prompt=end_session&sid=...``) does when the user confirms:

    1. ``GET /api/<plugin>/session/<sid>/<client_id>[?post_redirect_to=...]``: the clients to
       notify by front channel, and ``post_redirect_to`` when there is somewhere to go back to;
    2. ``DELETE /api/<plugin>/session/<sid>``: ends the OIDC session, disables its tokens and
       sends the back-channel logout tokens (in the background: they may arrive after it answers);
    3. ``DELETE /api/auth/``: ends the login session.

    Returns where the page then goes: its ``callback_url`` (the ``post_logout_redirect_uri``,
    with ``?state=``) when the list had ``post_redirect_to``, else None (the page stays, showing
    "session closed"). Glewlwyd 2.7.5 sets ``post_redirect_to`` only when the end-session request
    carried a ``state``.
    """
    resp = client.get(end_session_url, follow_redirects=False)
    if not resp.is_redirect:
        raise RuntimeError(f"end_session answered HTTP {resp.status_code}: {resp.text[:2000]}")
    location = urljoin(str(resp.url), resp.headers["location"])
    if not _is_login_page(location):
        return location  # e.g. an error redirect: nothing to confirm
    params = _query(location)
    if params.get("prompt") != "end_session" or not params.get("sid"):
        raise RuntimeError(f"unexpected end-session page: {location}")
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(location))
    session_api = f"{origin}/api/{params['plugin']}/session/{params['sid']}"
    listed = client.get(
        f"{session_api}/{params['client_id']}",
        params={"post_redirect_to": params["post_redirect_to"]}
        if params.get("post_redirect_to")
        else None,
    )
    if listed.status_code != 200:
        raise RuntimeError(f"GET {listed.url}: HTTP {listed.status_code} (the page fails here)")
    ended = client.delete(session_api)
    if ended.status_code != 200:
        raise RuntimeError(f"DELETE {session_api}: HTTP {ended.status_code}")
    client.delete(f"{origin}/api/auth/")  # the page ignores its outcome too
    return params["callback_url"] if listed.json().get("post_redirect_to") else None
