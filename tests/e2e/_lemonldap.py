"""Run LemonLDAP::NG 2.16 (Debian's packages) as a third real OpenID Provider for e2e tests.

``.ci/install-lemonldap.sh`` installs it. No web server runs: the portal is a PSGI app, served
by ``plackup`` on ``127.0.0.1``, reading a private configuration (``LLNG_DEFAULTCONFFILE`` ->
an ini with a File backend in a temporary folder; sessions there too). The configuration
starts from the shipped ``lmConf-1.json`` (Demo authentication: users ``dwho``/``dwho``,
``rtyler``/``rtyler``, ``msmith``/``msmith``) and is edited with ``lemonldap-ng-cli`` (the
shipped ``reloadUrls`` removed first, then one ``merge``) and ``rotateOidcKeys`` (RS256 keys).
Usable without pytest::

    with LemonLDAPProcess({"client": {"redirect_uris": [f"{base}/auth/callback"]}}) as op:
        httpx.get(f"{op.issuer}/.well-known/openid-configuration")

One confidential relying party (``config["client"]``) with PKCE required, consent bypassed,
RS256 ID tokens with the profile claims, RS256 JWT access tokens whose ``aud`` is ``[client
id, api identifier]``, and refresh tokens (``offline_access`` allowed). LemonLDAP::NG 2.16 has
no back-channel logout and no revocation endpoint.

``drive_login`` posts the portal's login form with ``httpx``; ``drive_logout`` confirms
RP-initiated logout at its end-session page.
"""

from __future__ import annotations

import copy
import grp
import json
import os
import pwd
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Self
from urllib.parse import parse_qs, urljoin, urlsplit, urlunsplit

import httpx

from ._server import JsonDict, ServerProcess, deep_update, free_port, require

LLNG_BIN = Path("/usr/share/lemonldap-ng/bin")
CLI = LLNG_BIN / "lemonldap-ng-cli"
ROTATE_KEYS = LLNG_BIN / "rotateOidcKeys"
PORTAL_PSGI = Path("/usr/share/lemonldap-ng/portal/htdocs/index.psgi")
PORTAL_TEMPLATES = Path("/usr/share/lemonldap-ng/portal/templates")
MANAGER_TEMPLATES = Path("/usr/share/lemonldap-ng/manager/htdocs/templates")
SHIPPED_CONF = Path("/var/lib/lemonldap-ng/conf/lmConf-1.json")
INSTALL_HINT = "run `bash .ci/install-lemonldap.sh`"

RP = "app"  # the relying party's key in LemonLDAP::NG's configuration
DEFAULT_CLIENT_ID = "llng-client"
DEFAULT_CLIENT_SECRET = "llng-secret-0123456789abcdef0123456789abcdef"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8000/auth/callback"
DEFAULT_POST_LOGOUT_REDIRECT_URI = "http://127.0.0.1:8000/"
DEFAULT_API = "https://api.example.test"
DEMO_USERS = {"dwho": "dwho", "rtyler": "rtyler", "msmith": "msmith"}


def missing_prerequisites() -> str | None:
    """Why LemonLDAP::NG cannot run here, or None."""
    for path in (PORTAL_PSGI, CLI, ROTATE_KEYS):
        if not path.exists():
            return f"{path} is missing: {INSTALL_HINT}"
    if not os.access(SHIPPED_CONF.parent, os.R_OK | os.X_OK):
        return f"{SHIPPED_CONF} is readable only by root and the www-data group"
    if not SHIPPED_CONF.exists():
        return f"{SHIPPED_CONF} is missing: {INSTALL_HINT}"
    if shutil.which("plackup") is None:
        return f"`plackup` is not on PATH: {INSTALL_HINT}"
    return None


def require_lemonldap() -> None:
    """Skip when LemonLDAP::NG is not installed; fail instead when ``CI`` is set."""
    require("LemonLDAP::NG", missing_prerequisites())


def default_config() -> JsonDict:
    """What :class:`LemonLDAPProcess` configures (deep-merged with its ``overrides``).

    ``rp_options`` holds more ``oidcRPMetaDataOptions<Name>`` values for the relying party
    (``{"LogoutBypassConfirm": 1}``); ``llng`` top-level LemonLDAP::NG settings, merged last.
    """
    return {
        "client": {
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "redirect_uris": [DEFAULT_REDIRECT_URI],
            "post_logout_redirect_uris": [DEFAULT_POST_LOGOUT_REDIRECT_URI],
        },
        "api": {"identifier": DEFAULT_API, "access_token_ttl": 3600},
        "ttl": {"IdToken": 3600, "AuthorizationCode": 60},
        # OIDC claim -> Demo user attribute (the Demo users have uid, cn and mail).
        "exported_vars": {"name": "cn", "email": "mail", "preferred_username": "uid"},
        "rp_options": {},
        "llng": {},
    }


def _ini(conf_dir: Path, log_level: str) -> str:
    return f"""\
[all]
logLevel = {log_level}
; how often the portal looks for a new configuration (seconds)
checkTime = 1

[configuration]
type = File
dirName = {conf_dir}
prettyPrint = 1

[portal]
staticPrefix = /static
templateDir = {PORTAL_TEMPLATES}
languages = en

[handler]

[manager]
; lemonldap-ng-cli reads this section
protection = none
staticPrefix = /static
templateDir = {MANAGER_TEMPLATES}
languages = en
"""


class LemonLDAPProcess(ServerProcess):
    """A LemonLDAP::NG portal on ``http://127.0.0.1:<port>``, owned by this object.

    ``overrides`` are deep-merged into :func:`default_config`; ``client`` takes the same keys
    as ``OIDCProviderProcess``'s (``client_id``, ``client_secret``, ``redirect_uris``,
    ``post_logout_redirect_uris``) and ``api`` its ``identifier`` and ``access_token_ttl``
    (seconds; short for refresh tests). A ``backchannel_logout_uri`` is refused: LemonLDAP::NG
    2.16 has no back-channel logout.
    """

    name = "LemonLDAP::NG (plackup)"

    def __init__(
        self,
        overrides: JsonDict | None = None,
        *,
        port: int = 0,
        startup_timeout: float = 20.0,
        stop_timeout: float = 5.0,
        command_timeout: float = 30.0,
        log_level: str = "notice",
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(
            startup_timeout=startup_timeout, stop_timeout=stop_timeout, workdir=workdir,
            workdir_prefix="lemonldap-",
        )  # fmt: skip
        self.config: JsonDict = deep_update(default_config(), copy.deepcopy(overrides or {}))
        if self.config["client"].get("backchannel_logout_uri"):
            raise ValueError("LemonLDAP::NG 2.16 has no back-channel logout (front-channel only)")
        self.port = port
        self.command_timeout = command_timeout
        self.log_level = log_level
        self.conf_dir = self.workdir / "conf"
        self.ini_path = self.workdir / "lemonldap-ng.ini"
        self.log_path = self.workdir / "portal.log"
        self._issuer: str | None = None

    # ----------------------------------------------------------------- properties
    @property
    def issuer(self) -> str:
        """``http://127.0.0.1:<port>`` (LemonLDAP::NG's issuer has no trailing slash)."""
        if self._issuer is None:
            raise RuntimeError("LemonLDAP::NG is not started")
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

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        """Configure (first start only), spawn plackup and wait until discovery answers."""
        require_lemonldap()
        if self.running:
            raise RuntimeError("LemonLDAP::NG already running")
        if not self.port:
            self.port = free_port()  # plackup binds it itself: a tiny race, as for the apps
        issuer = f"http://127.0.0.1:{self.port}"
        try:
            if not self.conf_dir.is_dir():
                self._configure(issuer)
            self._spawn(
                ["plackup", "-s", "HTTP::Server::PSGI", "--host", "127.0.0.1",
                 "--port", str(self.port), str(PORTAL_PSGI)],
                log=self.log_path, cwd=self.workdir, env=self._env(),
            )  # fmt: skip
            # Ready when discovery names the issuer; a 5xx ("Initialization failed": a missing
            # Perl module, an unreadable configuration...) is not worth waiting on.
            self._wait_ready(
                f"{issuer}/.well-known/openid-configuration",
                ready=lambda resp: resp.status_code == 200 and resp.json().get("issuer") == issuer,
                give_up=lambda resp: resp.status_code >= 500,
            )
            self._issuer = issuer
        except BaseException:
            self.stop()
            raise
        return self

    # ------------------------------------------------------------------- helpers
    def url(self, path: str) -> str:
        return f"{self.issuer}/{path.lstrip('/')}"

    def discovery(self) -> JsonDict:
        """The provider's ``/.well-known/openid-configuration`` document."""
        resp = httpx.get(self.url("/.well-known/openid-configuration"), timeout=5.0)
        resp.raise_for_status()
        return dict(resp.json())

    def drive_login(
        self, http_client: httpx.Client, authorization_url: str, user: str = "dwho",
        password: str | None = None,
    ) -> str:  # fmt: skip
        """:func:`drive_login` with the Demo user's password by default."""
        secret = DEMO_USERS.get(user, "") if password is None else password
        return drive_login(http_client, authorization_url, user, secret)

    def drive_logout(self, http_client: httpx.Client, end_session_url: str) -> str:
        return drive_logout(http_client, end_session_url)

    def current_config(self) -> JsonDict:
        """The newest saved configuration (``lmConf-<n>.json`` with the highest ``n``)."""
        files = sorted(self.conf_dir.glob("lmConf-*.json"), key=lambda p: int(p.stem[7:]))
        return dict(json.loads(files[-1].read_text()))

    # ------------------------------------------------------------------ internals
    def _env(self) -> dict[str, str]:
        return {**os.environ, "LLNG_DEFAULTCONFFILE": str(self.ini_path)}

    def _run(self, command: list[str]) -> None:
        """Run a LemonLDAP::NG tool against the private configuration (bounded)."""
        try:
            done = subprocess.run(
                command, env=self._env(), cwd=self.workdir, stdin=subprocess.DEVNULL,
                capture_output=True, timeout=self.command_timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"{command[0]} timed out after {self.command_timeout}s") from exc
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")[-4000:]
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{output}")

    def _cli(self, *args: str) -> None:
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        self._run([str(CLI), f"--user={user}", f"--group={group}", "-yes", "1", *args])

    def _configure(self, issuer: str) -> None:
        """The private ini and File configuration (removed again if this fails)."""
        try:
            self._write_configuration(issuer)
        except BaseException:
            shutil.rmtree(self.conf_dir, ignore_errors=True)
            raise

    def _write_configuration(self, issuer: str) -> None:
        """The shipped conf, its reloadUrls removed, new RS256 keys, then our settings."""
        self.conf_dir.mkdir(parents=True)
        for sub in ("sessions/lock", "psessions/lock", "cache", "notifications"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self.ini_path.write_text(_ini(self.conf_dir, self.log_level))
        shutil.copyfile(SHIPPED_CONF, self.conf_dir / "lmConf-1.json")
        # The shipped reloadUrls makes every save call http://localhost/reload: remove it first.
        self._cli("delKey", "reloadUrls", "localhost")
        self._run([str(ROTATE_KEYS)])  # a new RSA key pair and key id
        merge = self.workdir / "merge.json"
        merge.write_text(json.dumps(self._settings(issuer), indent=1))
        # The CLI's check calls the IP in "domain" a bad domain name; -yes 1 saves all the same.
        self._cli("merge", str(merge))
        saved = self.current_config()
        options = saved.get("oidcRPMetaDataOptions", {}).get(RP, {})
        if (
            saved.get("portal") != f"{issuer}/"
            or options.get("oidcRPMetaDataOptionsClientID") != self.client_id
        ):
            raise RuntimeError(f"lemonldap-ng-cli did not save the configuration: {merge}")

    def _settings(self, issuer: str) -> JsonDict:
        client, api, ttl = self.config["client"], self.config["api"], self.config["ttl"]
        options: JsonDict = {
            "ClientID": client["client_id"],
            "ClientSecret": client["client_secret"],
            "RedirectUris": " ".join(client["redirect_uris"]),
            "PostLogoutRedirectUris": " ".join(client["post_logout_redirect_uris"]),
            "BypassConsent": 1,
            "RequirePKCE": 1,  # without it 2.16 never checks the code verifier
            "IDTokenSignAlg": "RS256",  # the default is HS512 (the client secret as key)
            "IDTokenForceClaims": 1,  # else the ID token has no profile claims
            "IDTokenExpiration": ttl["IdToken"],
            "AccessTokenJWT": 1,
            "AccessTokenSignAlg": "RS256",
            "AccessTokenClaims": 1,
            "AccessTokenExpiration": api["access_token_ttl"],
            "AdditionalAudiences": api["identifier"],
            "AuthorizationCodeExpiration": ttl["AuthorizationCode"],
            "RefreshToken": 1,
            "AllowOffline": 1,
        }
        options.update(self.config["rp_options"])
        work = self.workdir
        settings: JsonDict = {
            "portal": f"{issuer}/",
            "domain": "127.0.0.1",
            "issuerDBOpenIDConnectActivation": 1,
            "oidcServiceMetaDataIssuer": issuer,
            "globalStorageOptions": {
                "Directory": str(work / "sessions"),
                "LockDirectory": str(work / "sessions/lock"),
            },
            "persistentStorageOptions": {
                "Directory": str(work / "psessions"),
                "LockDirectory": str(work / "psessions/lock"),
            },
            "localSessionStorageOptions": {"cache_root": str(work / "cache")},
            "notificationStorageOptions": {"dirName": str(work / "notifications")},
            "loginHistoryEnabled": 0,
            "oidcRPMetaDataOptions": {
                RP: {f"oidcRPMetaDataOptions{name}": value for name, value in options.items()}
            },
            "oidcRPMetaDataExportedVars": {RP: dict(self.config["exported_vars"])},
        }
        return deep_update(settings, copy.deepcopy(self.config["llng"]))


# --------------------------------------------------------------- login and logout
class _Form:
    def __init__(self, action: str, method: str) -> None:
        self.action = action
        self.method = method
        self.fields: dict[str, str] = {}


_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                   "source", "track", "wbr"})  # fmt: skip


class _PortalParser(HTMLParser):
    """The portal's ``<form>``s (named inputs; unchecked checkboxes left out, as a browser
    does) and its messages: ``<div class="message ...">``, whose text the page's JavaScript
    fills from a code (``<span trmsg="5">``: 5 is "bad credentials")."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self.messages: list[str] = []
        self._form: _Form | None = None
        self._depth = 0  # inside a message div

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = _Form(attr.get("action", ""), attr.get("method", "get").lower())
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and attr.get("name"):
            if attr.get("type") in ("checkbox", "radio") and "checked" not in attr:
                return
            self._form.fields[attr["name"]] = attr.get("value", "")
        if self._depth:
            self._depth += tag not in _VOID
            if attr.get("trmsg"):
                self._add(f"[portal message {attr['trmsg']}]")
        elif tag == "div" and "message" in attr.get("class", "").split():
            self._depth = 1
            self.messages.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        if self._depth:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth and data.strip():
            self._add(data.strip())

    def _add(self, text: str) -> None:
        self.messages[-1] = f"{self.messages[-1]} {text}".strip()


def _parse(resp: httpx.Response) -> _PortalParser:
    parser = _PortalParser()
    parser.feed(resp.text)
    return parser


def _target(resp: httpx.Response, form: _Form) -> str:
    """The form's action (the portal's are ``#``: the same URL), without a fragment."""
    parts = urlsplit(urljoin(str(resp.url), form.action))
    return urlunsplit(parts._replace(fragment=""))


def _origin(url: str) -> str:
    return "{0.scheme}://{0.netloc}".format(urlsplit(url))


def drive_login(
    client: httpx.Client,
    authorize_url: str,
    user: str = "dwho",
    password: str = "dwho",
    max_steps: int = 10,
    *,
    stop_prefix: str | None = None,
) -> str:
    """Log ``user`` in at the portal's form, following ``authorize_url``'s redirects by hand.

    ``authorize_url`` is the authorization endpoint or an app route that redirects there
    (``/auth/login``). Each HTTP request is one step; cookies stay in ``client``'s jar. Returns,
    without requesting it, the first ``Location`` whose query carries ``code`` or ``error``
    (or that starts with ``stop_prefix``): the app's callback. A refused login (the form comes
    back) raises ``RuntimeError`` with the portal's message.
    """
    method, url, data = "GET", authorize_url, None
    posted = False
    for _ in range(max_steps):
        resp = client.request(method, url, data=data, follow_redirects=False)
        if resp.is_redirect:
            location = urljoin(str(resp.url), resp.headers["location"])
            query = parse_qs(urlsplit(location).query)
            if stop_prefix is not None:
                done = location.startswith(stop_prefix)
            else:
                done = "code" in query or "error" in query
            if done:
                return location
            method, url, data = "GET", location, None
            continue
        if resp.status_code != 200 or "html" not in resp.headers.get("content-type", ""):
            raise RuntimeError(
                f"login stuck at {method} {url}: HTTP {resp.status_code}\n{resp.text[:2000]}"
            )
        page = _parse(resp)
        form = next((f for f in page.forms if "password" in f.fields), None)
        if form is None:
            raise RuntimeError(f"no login form at {url}: {page.messages}\n{resp.text[:2000]}")
        if posted:
            raise RuntimeError(f"LemonLDAP::NG refused the login of {user!r}: {page.messages}")
        fields = {**form.fields, "user": user, "password": password}
        method, url, data = "POST", _target(resp, form), fields
        posted = True
    raise RuntimeError(f"login did not finish within {max_steps} steps (last: {method} {url})")


def drive_logout(
    client: httpx.Client, end_session_url: str, max_steps: int = 6, *, confirm: bool = True
) -> str:
    """Follow an RP-initiated logout through the portal's confirmation form.

    Posts the form (``confirm`` false answers no, as its refuse button does) and returns,
    without requesting it, the first redirect ``Location`` that leaves the portal's origin
    (``post_logout_redirect_uri?state=...``), or the URL of the portal page that ends the
    flow (no ``post_logout_redirect_uri``).
    """
    origin = _origin(end_session_url)
    method, url, data = "GET", end_session_url, None
    posted = False
    for _ in range(max_steps):
        resp = client.request(method, url, data=data, follow_redirects=False)
        if resp.is_redirect:
            location = urljoin(str(resp.url), resp.headers["location"])
            if _origin(location) != origin:
                return location
            method, url, data = "GET", location, None
            continue
        if resp.status_code != 200 or "html" not in resp.headers.get("content-type", ""):
            raise RuntimeError(
                f"logout stuck at {method} {url}: HTTP {resp.status_code}\n{resp.text[:2000]}"
            )
        page = _parse(resp)
        if posted:
            return str(resp.url)  # the portal's own "you are logged out" page
        form = next((f for f in page.forms if "confirm" in f.fields), None)
        if form is None:
            raise RuntimeError(f"no logout form at {url}: {page.messages}\n{resp.text[:2000]}")
        fields = dict(form.fields)
        if not confirm:
            fields["confirm"] = f"-{fields['confirm']}"
        method, url, data = "POST", _target(resp, form), fields
        posted = True
    raise RuntimeError(f"logout did not finish within {max_steps} steps (last: {method} {url})")
