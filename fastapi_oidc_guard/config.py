"""Configuration: one frozen object, validated when it is built.

Every setting is a keyword argument of :class:`GuardConfig` (and of ``OIDCGuard``); the fixed
environment variable names are read by :meth:`GuardConfig.from_env`. A missing or contradictory
setting raises :class:`~fastapi_oidc_guard.errors.ConfigurationError` naming the variable and the
fix, so a misconfigured app fails at start-up rather than on the first request.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal
from urllib.parse import urlsplit

from .env_settings import (
    DEFAULT_PREFIX,
    log_unknown,
    read_dotenv,
    settings_from_env,
    split_list,
    unknown_variables,
)
from .errors import ConfigurationError

#: What a path prefix may be (OIDC_BASE_URL's path, an ASGI root_path): segments of unreserved
#: and sub-delimiter characters, no ``//``, ``\\``, ``;`` or control characters: it ends up in
#: ``Location`` and ``Set-Cookie`` headers.
SAFE_PREFIX = re.compile(r"(?:/[A-Za-z0-9._~!$&'()*+=:@%-]+)*")

__all__ = [
    "SAFE_PREFIX", "SUPPORTED_ALGORITHMS", "GuardConfig", "is_loopback_host", "require_safe_url",
]  # fmt: skip

#: Algorithms the verifier can check. HMAC and ``none`` are deliberately absent: a provider's
#: tokens are verified with its public keys, never with a shared secret.
SUPPORTED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
DEFAULT_ALGORITHMS = ("RS256", "ES256", "PS256", "EdDSA")
DEFAULT_SCOPE = "openid profile email offline_access"
SessionBackendName = Literal["cookie", "memory", "redis"]
DPoPMode = Literal["off", "allowed", "required"]
TokenValidation = Literal["local", "introspect_opaque", "introspect_all"]
DEFAULT_DPOP_ALGORITHMS = ("ES256", "PS256", "RS256", "EdDSA")
SameSite = Literal["lax", "strict", "none"]
_SECRETS = frozenset({"client_secret", "session_secret", "client_private_key"})
_PREFIX = re.compile(r"[A-Z][A-Z0-9_]*_")
_PREFIXES: set[str] = set()  # every prefix a guard of this process read (for the warnings)


def _mask_password(url: str) -> str:
    """``redis://user:secret@host`` as ``redis://user:***@host``, and a ``password`` in the
    query (``?password=...``, which redis-py reads too) as ``***``."""
    parts = urlsplit(url)
    if parts.query:
        query = "&".join(
            f"{k}=***" if k.lower() == "password" else f"{k}={v}" if sep else k
            for k, sep, v in (item.partition("=") for item in parts.query.split("&"))
        )
        parts = parts._replace(query=query)
    if parts.password is None:
        return parts.geturl()
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return parts._replace(netloc=f"{user}@{netloc[-1]}").geturl()


def _check_prefix_overlap(prefix: str, known: Iterable[Any]) -> None:
    """Refuse a prefix under which another guard's variables would be read: with ``OIDC_``
    in use, ``OIDC_SWAGGER_`` would read ``OIDC_SWAGGER_CLIENT_ID`` (the first guard's
    ``swagger_client_id``) as its ``client_id``."""
    names = [item.name.upper() + "_" for item in known]
    for other in {DEFAULT_PREFIX, *_PREFIXES} - {prefix}:
        longer, shorter = (prefix, other) if len(prefix) > len(other) else (other, prefix)
        if longer.startswith(shorter) and any(
            name.startswith(longer[len(shorter) :]) for name in names
        ):
            raise ConfigurationError(
                f"prefix {prefix!r} overlaps {other!r}: {longer}* variables are also "
                f"{shorter}'s settings; choose a prefix that is not {shorter} + a setting name"
            )


AudienceParam = Literal["audience", "resource", "both", "none"]
ClientAuth = Literal["auto", "client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
# Only parameters that cannot widen what a session gets: scope, audience and organization pass
# only when the app lists them (scope/audience then within login_scopes/login_audiences).
DEFAULT_LOGIN_PARAMS = (
    "prompt", "login_hint", "screen_hint", "ui_locales", "max_age", "acr_values",
)  # fmt: skip

_LOOPBACK_NAMES = {"localhost"}
_RESERVED_LOGIN_PARAMS = frozenset({
    "client_id", "redirect_uri", "response_type", "response_mode", "state", "nonce",
    "code_challenge", "code_challenge_method", "resource", "request", "request_uri", "claims",
    "registration", "returnTo",
})  # fmt: skip
_DURATIONS = (
    "leeway", "http_timeout", "jwks_max_age", "jwks_min_max_age", "jwks_max_max_age",
    "jwks_cooldown", "jwks_stale_limit", "discovery_max_age", "session_inactivity",
    "session_absolute", "session_touch_interval", "resolver_budget_interval", "dpop_max_age",
    "introspection_cache_ttl", "introspection_inactive_ttl",
)  # fmt: skip


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1``."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_safe_url(url: str, *, what: str) -> str:
    """Return ``url`` if it is https, or http on a loopback host; raise otherwise.

    Loopback http is allowed so that development and tests run against a local provider.
    """
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return url
    raise ConfigurationError(
        f"{what} must be an https URL (http is allowed only for 127.0.0.1, ::1 or localhost); "
        f"got {url!r}"
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return ""
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    try:
        port = f":{parts.port}" if parts.port is not None and parts.port != default else ""
    except ValueError:
        return ""
    return f"{parts.scheme}://{host}{port}"


def as_audiences(audience: str | Iterable[str] | None) -> tuple[str, ...]:
    """An audience setting (one identifier or several) as a tuple, order kept, no repeats."""
    if audience is None:
        return ()
    values = [audience] if isinstance(audience, str) else list(audience)
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True, kw_only=True)
class GuardConfig:
    """Everything the guard needs to know. Times are in seconds.

    ``issuer`` is required. ``audience`` is the API identifier: bearer tokens must carry it in
    ``aud`` (without one, bearer tokens are refused, never accepted unchecked) and it is sent at
    login so that access tokens are JWTs rather than opaque strings. It may be a list (one API
    known by several identifiers): a bearer token is accepted when one of its audiences is one
    of them; the first is the one asked for at login. After construction ``audience`` is that
    first identifier and ``audiences`` all of them. ``audience_claim`` names the claim that
    carries the audience (``aud``; Cognito access tokens: ``client_id``). ``clock`` returns the
    current Unix time and exists so tests can move time without sleeping.
    """

    issuer: str
    audience: str | None = None  # or a list of identifiers: see the class docstring
    audiences: tuple[str, ...] = ()  # filled from ``audience``
    audience_claim: str = "aud"
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    base_url: str | None = None
    session_secret: tuple[str, ...] = field(default=(), repr=False)
    scope: str = DEFAULT_SCOPE
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    session_backend: SessionBackendName = "cookie"
    redis_url: str | None = None
    leeway: float = 30.0
    http_timeout: float = 5.0
    jwks_max_age: float = 600.0
    jwks_min_max_age: float = 60.0
    jwks_max_max_age: float = 86_400.0
    jwks_cooldown: float = 30.0
    jwks_stale_limit: float = 86_400.0
    discovery_max_age: float = 86_400.0
    max_token_bytes: int = 8 * 1024
    max_id_token_bytes: int = 16 * 1024
    token_cache_size: int = 1024
    resolver_fetch_budget: int = 10  # fetches for issuers not yet verified, per interval
    resolver_budget_interval: float = 30.0
    websocket_query_token: bool = False  # ?access_token= on sockets: leaks into logs (opt in)
    require_at_jwt: bool = False  # RFC 9068 strict: bearer tokens must say typ: at+jwt
    # Back-channel logout tokens of the older draft (no exp; Glewlwyd): accepted within two
    # minutes of their iat, jti replay still refused. Off: such tokens are refused (400).
    legacy_logout_tokens: bool = False
    # Browser login and sessions
    routes_prefix: str = "/auth"
    cookie_name: str | None = None  # None: __Host-oidc_session on https, oidc_session on http
    cookie_domain: str | None = None
    cookie_path: str = "/"
    cookie_same_site: SameSite = "lax"
    cookie_secure: bool | None = None  # None: Secure unless base_url is http on a loopback host
    session_inactivity: float = 86_400.0
    session_absolute: float = 3 * 86_400.0
    session_touch_interval: float = 60.0
    max_pending_logins: int = 3
    login_params: tuple[str, ...] = DEFAULT_LOGIN_PARAMS
    login_scopes: tuple[str, ...] = ()  # scopes a login may ask beyond OIDC_SCOPE
    login_audiences: tuple[str, ...] = ()  # audiences a login may ask besides OIDC_AUDIENCE
    audience_param: AudienceParam = "both"
    token_endpoint_auth: ClientAuth = "auto"  # see fastapi_oidc_guard.client_auth
    # private_key_jwt: a PEM or private JWK (or a file holding one), and its key id at the
    # provider (default: the JWK's kid).
    client_private_key: str | None = field(default=None, repr=False)
    client_private_key_file: str | None = None
    client_key_id: str | None = None
    use_par: bool | None = None  # None: pushed authorization requests when the provider requires
    default_return_to: str = "/"
    roles_claim: str = "roles"  # a claim name or a dotted path: realm_access.roles
    permissions_claim: str = "permissions"
    trusted_origins: tuple[str, ...] = ()
    # Swagger UI's Authorize button: the docs page's own client at the provider (public, PKCE,
    # redirect URI <base>/docs/oauth2-redirect); default: client_id.
    swagger_client_id: str | None = None
    # RFC 9728: this API's resource identifier (an https URL); default: the first audience that
    # is one. Set it when the audience is not a URL (an Entra GUID). "off" (or "") turns the
    # metadata off.
    resource: str | None = None
    # DPoP (RFC 9449): "allowed" accepts Authorization: DPoP with a proof beside Bearer;
    # "required" refuses Bearer; "off" refuses the DPoP scheme. A DPoP-bound token (cnf.jkt)
    # is never accepted as Bearer.
    dpop: DPoPMode = "allowed"
    dpop_algorithms: tuple[str, ...] = DEFAULT_DPOP_ALGORITHMS
    dpop_max_age: float = 300.0  # how old a proof's iat may be (plus leeway)
    # RFC 7662: "local" verifies JWTs only; "introspect_opaque" asks the provider's
    # introspection endpoint about tokens that are not JWTs; "introspect_all" about every token.
    token_validation: TokenValidation = "local"
    introspection_cache_ttl: float = 60.0  # active answers: until exp, at most this long
    introspection_inactive_ttl: float = 5.0  # inactive answers
    # With 3 pending logins (<= 1 KB each) and a browser's other headers, what a default uvicorn
    # (h11: 16 KiB request head) accepts.
    max_cookie_bytes: int = 12_000
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ConfigurationError(
                "OIDC_ISSUER is required: set it to your provider's issuer URL, "
                "e.g. https://your-tenant.example.com/"
            )
        require_safe_url(self.issuer, what="OIDC_ISSUER")
        if self.base_url is not None:
            require_safe_url(self.base_url, what="OIDC_BASE_URL")
            path = urlsplit(self.base_url).path.rstrip("/")
            if not SAFE_PREFIX.fullmatch(path) or urlsplit(self.base_url).query:
                raise ConfigurationError(
                    f"OIDC_BASE_URL {self.base_url!r}: its path must be plain segments "
                    "(no '//', '\\', ';', query or control characters), e.g. "
                    "https://example.com/myapp"
                )
        if isinstance(self.session_secret, str):  # one secret or a comma-separated list
            object.__setattr__(self, "session_secret", split_list(self.session_secret))
        if isinstance(self.algorithms, str):
            object.__setattr__(self, "algorithms", split_list(self.algorithms))
        for name in (
            "trusted_origins", "login_params", "login_scopes", "login_audiences", "dpop_algorithms",
        ):  # fmt: skip
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, split_list(getattr(self, name)))
        for secret in self.session_secret:
            if len(secret.encode()) < 32:
                raise ConfigurationError(
                    "OIDC_SESSION_SECRET: each secret must be at least 32 bytes; generate one with "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
                )
        self._check_algorithms()
        self._check_times()
        self._set_audiences()
        if self.client_secret and not self.client_id:
            raise ConfigurationError(
                "OIDC_CLIENT_SECRET is set but OIDC_CLIENT_ID is not: set both"
            )
        if self.token_endpoint_auth not in (
            "auto",
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ):
            raise ConfigurationError(
                "token_endpoint_auth must be auto, client_secret_basic, client_secret_post, "
                f"private_key_jwt or none: {self.token_endpoint_auth!r}"
            )
        if self.audience_param not in ("audience", "resource", "both", "none"):
            raise ConfigurationError(
                f"audience_param must be audience, resource, both or none: {self.audience_param!r}"
            )
        if self.client_private_key and self.client_private_key_file:
            raise ConfigurationError(
                "set OIDC_CLIENT_PRIVATE_KEY or OIDC_CLIENT_PRIVATE_KEY_FILE, not both"
            )
        if self.session_backend not in ("cookie", "memory", "redis"):
            raise ConfigurationError(
                f"OIDC_SESSION_BACKEND must be cookie, memory or redis: {self.session_backend!r}"
            )
        if self.session_backend == "redis" and not self.redis_url:
            raise ConfigurationError("OIDC_SESSION_BACKEND=redis needs OIDC_REDIS_URL")
        if self.session_backend == "memory" and self.redis_url:
            raise ConfigurationError(
                "OIDC_REDIS_URL is set with OIDC_SESSION_BACKEND=memory, which keeps sessions in "
                "one process: use OIDC_SESSION_BACKEND=redis (or cookie, which then shares its "
                "revocations in Redis), or unset OIDC_REDIS_URL"
            )
        self._check_resource()
        self._check_dpop_and_introspection()
        self._check_login()

    def _check_dpop_and_introspection(self) -> None:
        if self.dpop not in ("off", "allowed", "required"):
            raise ConfigurationError(f"OIDC_DPOP must be off, allowed or required: {self.dpop!r}")
        unknown = [alg for alg in self.dpop_algorithms if alg not in SUPPORTED_ALGORITHMS]
        if unknown or (self.dpop != "off" and not self.dpop_algorithms):
            raise ConfigurationError(
                f"OIDC_DPOP_ALGORITHMS: asymmetric algorithms among {sorted(SUPPORTED_ALGORITHMS)}"
                f" (HMAC and 'none' are never accepted); got {list(self.dpop_algorithms)}"
            )
        if not 1 <= self.dpop_max_age <= 3600:
            raise ConfigurationError("dpop_max_age must be between 1 and 3600 seconds")
        if self.token_validation not in ("local", "introspect_opaque", "introspect_all"):
            raise ConfigurationError(
                "OIDC_TOKEN_VALIDATION must be local, introspect_opaque or introspect_all: "
                f"{self.token_validation!r}"
            )
        if self.token_validation != "local" and not self.client_id:
            raise ConfigurationError(
                "introspection authenticates the app at the provider: set OIDC_CLIENT_ID (and "
                "its secret or private key)"
            )
        if not 0 < self.introspection_cache_ttl <= 3600 or not (
            0 <= self.introspection_inactive_ttl <= 60
        ):
            raise ConfigurationError(
                "introspection_cache_ttl must be in (0, 3600] and introspection_inactive_ttl in "
                "[0, 60] seconds"
            )

    def _check_resource(self) -> None:
        if self.resource and self.resource != "off":
            try:
                require_safe_url(self.resource, what="OIDC_RESOURCE")
                parts = urlsplit(self.resource)
            except ValueError as err:
                raise ConfigurationError(f"OIDC_RESOURCE {self.resource!r}: {err}") from err
            if parts.query or parts.fragment or "\\" in self.resource or '"' in self.resource:
                raise ConfigurationError(
                    f"OIDC_RESOURCE {self.resource!r}: an https URL without query or fragment"
                )

    @property
    def resource_identifier(self) -> str | None:
        """The RFC 9728 resource identifier: ``resource``, else the first audience that is an
        https URL (http on a loopback host) without query or fragment; ``None``: no metadata."""
        if self.resource is not None:
            return None if self.resource in ("", "off") else self.resource
        for audience in self.audiences:
            try:
                parts = urlsplit(audience)
                if not (parts.query or parts.fragment or '"' in audience or "\\" in audience):
                    return require_safe_url(audience, what="audience")
            except (ConfigurationError, ValueError):
                continue
        return None

    def _set_audiences(self) -> None:
        given: Any = self.audience
        audiences = as_audiences((*as_audiences(given), *self.audiences))
        if any(not isinstance(a, str) or not a.strip() for a in audiences) or (
            given is not None and not audiences
        ):
            raise ConfigurationError("OIDC_AUDIENCE is empty: unset it or give the API identifier")
        object.__setattr__(self, "audiences", audiences)
        object.__setattr__(self, "audience", audiences[0] if audiences else None)
        for name in ("audience_claim", "roles_claim", "permissions_claim"):
            if not getattr(self, name) or not isinstance(getattr(self, name), str):
                raise ConfigurationError(f"{name} must be a claim name or a dotted path")

    @property
    def login_enabled(self) -> bool:
        """Browser login is on when a base URL or a session secret is configured."""
        return self.base_url is not None or bool(self.session_secret)

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        return not (self.base_url or "").startswith("http://")

    @property
    def app_path(self) -> str:
        """The path of ``base_url`` ('' when the app is at the root of its origin)."""
        return urlsplit(self.base_url).path.rstrip("/") if self.base_url else ""

    @property
    def origin(self) -> str | None:
        """The app's origin (``scheme://host[:port]``), from ``base_url``."""
        return _origin(self.base_url) if self.base_url else None

    @property
    def session_cookie_name(self) -> str:
        """``cookie_name``, or the default: ``__Host-oidc_session`` with Secure cookies and no
        ``cookie_domain`` (a sibling subdomain cannot plant it), ``__Secure-oidc_session`` with a
        domain, ``oidc_session`` on plain http (loopback development)."""
        if self.cookie_name is not None:
            return self.cookie_name
        if not self.secure_cookies:
            return "oidc_session"
        if self.cookie_domain is None and self.cookie_path == "/":
            return "__Host-oidc_session"
        return "__Secure-oidc_session"

    def _check_cookie_name(self) -> None:
        name = self.session_cookie_name
        if name.startswith("__Host-") and not (
            self.secure_cookies and self.cookie_domain is None and self.cookie_path == "/"
        ):
            raise ConfigurationError(
                f"cookie_name {name!r}: __Host- cookies need https (Secure), cookie_path='/' and "
                "no cookie_domain; use a __Secure- name with a domain"
            )
        if name.startswith("__Secure-") and not self.secure_cookies:
            raise ConfigurationError(f"cookie_name {name!r}: __Secure- cookies need https")
        if name.lower().startswith(("__host-", "__secure-")) and not name.startswith(
            ("__Host-", "__Secure-")
        ):
            raise ConfigurationError(f"cookie_name {name!r}: write the prefix as __Host-/__Secure-")

    def _check_origins(self) -> None:
        for origin in self.trusted_origins:
            if origin == "*" or _origin(origin) != origin:
                raise ConfigurationError(
                    f"OIDC_TRUSTED_ORIGINS: {origin!r} is not an origin; give scheme://host[:port] "
                    "without a path or a trailing slash, e.g. https://app.example.com"
                )

    def _check_login(self) -> None:
        self._check_origins()
        if not self.login_enabled:
            return
        missing = [
            var
            for var, value in (
                ("OIDC_CLIENT_ID", self.client_id),
                ("OIDC_BASE_URL", self.base_url),
                ("OIDC_SESSION_SECRET", self.session_secret),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError(
                f"browser login needs {', '.join(missing)} as well (OIDC_BASE_URL and "
                "OIDC_SESSION_SECRET turn it on); set them, or unset both for an API-only app"
            )
        if not self.routes_prefix.startswith("/") or self.routes_prefix.endswith("/"):
            raise ConfigurationError("routes_prefix must start with '/' and not end with it")
        if not 60 <= self.session_inactivity <= self.session_absolute:
            raise ConfigurationError("need 60 <= session_inactivity <= session_absolute seconds")
        if self.cookie_same_site == "none" and not self.secure_cookies:
            raise ConfigurationError("cookie_same_site='none' requires Secure cookies (https)")
        reserved = sorted(set(self.login_params) & _RESERVED_LOGIN_PARAMS)
        if reserved:
            raise ConfigurationError(
                f"login_params {reserved}: the library sets these itself (the browser must not)"
            )
        if self.max_pending_logins < 1:
            raise ConfigurationError("max_pending_logins must be at least 1")
        if not 1024 <= self.max_cookie_bytes <= 20 * 3500:
            raise ConfigurationError("max_cookie_bytes must be between 1024 and 70000")
        self._check_cookie_name()

    def _check_algorithms(self) -> None:
        if not self.algorithms:
            raise ConfigurationError("OIDC_ALGORITHMS is empty: use e.g. RS256,ES256")
        unknown = [alg for alg in self.algorithms if alg not in SUPPORTED_ALGORITHMS]
        if unknown:
            raise ConfigurationError(
                f"OIDC_ALGORITHMS has unsupported algorithms {unknown}; supported: "
                f"{sorted(SUPPORTED_ALGORITHMS)} (HMAC and 'none' are never accepted)"
            )

    def _check_times(self) -> None:
        for name in _DURATIONS:
            if not math.isfinite(getattr(self, name)):
                raise ConfigurationError(f"{name} must be a finite number of seconds")
        if not 0 <= self.leeway <= 300:
            raise ConfigurationError("leeway must be between 0 and 300 seconds")
        if not 0 < self.http_timeout <= 60:
            raise ConfigurationError("http_timeout must be between 0 and 60 seconds")
        if not 0 < self.jwks_min_max_age <= self.jwks_max_age <= self.jwks_max_max_age:
            raise ConfigurationError(
                "JWKS ages must satisfy 0 < jwks_min_max_age <= jwks_max_age <= jwks_max_max_age"
            )
        if self.jwks_cooldown < 0:
            raise ConfigurationError("jwks_cooldown must be >= 0")
        if self.jwks_stale_limit < self.jwks_max_age:
            raise ConfigurationError("jwks_stale_limit must be >= jwks_max_age")
        if self.max_token_bytes < 512 or self.max_id_token_bytes < 512:
            raise ConfigurationError("token size limits must be at least 512 bytes")
        if self.resolver_fetch_budget < 0 or self.resolver_budget_interval <= 0:
            raise ConfigurationError("resolver_fetch_budget >= 0 and resolver_budget_interval > 0")
        if self.token_cache_size < 0:
            raise ConfigurationError("token_cache_size must be >= 0 (0 disables the cache)")

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        env_file: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> GuardConfig:
        """Build from ``<prefix><SETTING>`` variables (``OIDC_ISSUER``, ``OIDC_LEEWAY``: every
        setting but ``clock`` has one); keyword arguments win over the environment.

        ``env_file`` names a ``.env`` file to read as well (the environment wins over it).
        ``prefix`` lets several guards of one process read their own variables
        (``ADMIN_OIDC_ISSUER``). A ``<prefix>*`` variable that names no setting is logged as a
        warning, with the closest setting's name. Lists (``OIDC_AUDIENCE``,
        ``OIDC_SESSION_SECRET``, ``OIDC_ALGORITHMS``...) are comma-separated.
        """
        if not _PREFIX.fullmatch(prefix):
            raise ConfigurationError(
                f"prefix {prefix!r}: upper-case letters, digits and '_', ending with '_'"
            )
        _check_prefix_overlap(prefix, fields(cls))
        env: Mapping[str, str] = os.environ if environ is None else environ
        if env_file is not None:
            env = {**read_dotenv(env_file), **env}
        known_fields = fields(cls)
        values = settings_from_env(known_fields, env, prefix=prefix)
        log_unknown(unknown_variables(known_fields, env, prefix=prefix, other_prefixes=_PREFIXES))
        _PREFIXES.add(prefix)
        values.update(overrides)
        if "issuer" not in values:
            raise ConfigurationError(
                f"{prefix}ISSUER is required: set it to your provider's issuer URL "
                "(or pass issuer=... to OIDCGuard)"
            )
        unknown = sorted(set(values) - {f.name for f in known_fields})
        if unknown:
            raise ConfigurationError(f"unknown settings {unknown}")
        return cls(**values)

    def __repr__(self) -> str:
        """Every setting, secrets masked: ``client_secret=<set>``, never the value."""
        parts = []
        for item in fields(self):
            if item.name == "clock":
                continue
            value = getattr(self, item.name)
            if item.name in _SECRETS:
                shown = "None" if not value else "<set>"
            elif item.name == "redis_url" and value:
                shown = repr(_mask_password(value))
            else:
                shown = repr(value)
            parts.append(f"{item.name}={shown}")
        return f"GuardConfig({', '.join(parts)})"
