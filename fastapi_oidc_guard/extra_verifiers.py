"""Other credentials beside OIDC tokens, on the same dependencies (in the spirit of Clerk's
``acceptsToken``): API keys the app looks up, tokens of another kind of issuer.

A :class:`CredentialVerifier` claims a credential by one of:

- ``scheme``: an ``Authorization`` scheme of its own (``Authorization: ApiKey k_123``);
- ``prefix``: ``Bearer`` tokens that start with it (``Authorization: Bearer sk_live_...``);
  such a token never reaches OIDC verification, and a JWT never starts with a prefix that is
  not base64url;
- ``header``: a header of its own (``X-API-Key``), looked at only when the request has no
  ``Authorization`` header.

``verify(credential)`` returns the caller's claims (``sub`` required: they are validated by the
app's user model like a token's) or ``None`` to refuse (401 ``invalid_token``); it may be
``async``. The user's ``authenticated_by`` is the verifier's ``name`` and its ``principal``
the verifier's ``principal``. Scope, role and permission checks read the claims as for a token.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError, InvalidToken
from .principal import Principal

__all__ = ["CredentialVerifier", "VerifierSet"]

Verify = Callable[[str], "Mapping[str, Any] | Awaitable[Mapping[str, Any] | None] | None"]
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,31}")
_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,30}[_-]")
_HEADER = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,63}")
_RESERVED_NAMES = frozenset({"bearer", "dpop", "session"})
_RESERVED_SCHEMES = frozenset({"bearer", "dpop", "basic"})
_RESERVED_HEADERS = frozenset({"authorization", "cookie", "dpop", "host"})
MAX_CREDENTIAL = 4096


@dataclass(frozen=True, slots=True)
class CredentialVerifier:
    """One extra kind of credential (see the module docstring)."""

    name: str
    verify: Verify
    scheme: str | None = None
    prefix: str | None = None
    header: str | None = None
    principal: Principal = "service"

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name) or self.name in _RESERVED_NAMES:
            raise ConfigurationError(
                f"verifier name {self.name!r}: lower case, digits and '_', not bearer/dpop/session"
            )
        if [self.scheme, self.prefix, self.header].count(None) != 2:
            raise ConfigurationError(f"verifier {self.name!r}: give one of scheme, prefix, header")
        if self.scheme is not None and (
            not _SCHEME.fullmatch(self.scheme) or self.scheme.lower() in _RESERVED_SCHEMES
        ):
            raise ConfigurationError(f"verifier {self.name!r}: scheme {self.scheme!r} not allowed")
        if self.prefix is not None and (
            not _PREFIX.fullmatch(self.prefix) or self.prefix.startswith("eyJ")
        ):
            raise ConfigurationError(
                f"verifier {self.name!r}: prefix {self.prefix!r} must be letters, digits, '_' "
                "and '-', ending in '_' or '-' (sk_live_), and not the start of a JWT (eyJ)"
            )
        if self.header is not None and (
            not _HEADER.fullmatch(self.header) or self.header.lower() in _RESERVED_HEADERS
        ):
            raise ConfigurationError(f"verifier {self.name!r}: header {self.header!r} not allowed")
        if not callable(self.verify):
            raise ConfigurationError(f"verifier {self.name!r}: verify must be callable")
        if self.principal not in ("user", "service"):
            raise ConfigurationError(f"verifier {self.name!r}: principal is user or service")

    async def claims(self, credential: str) -> dict[str, Any]:
        """The claims ``verify`` gave for ``credential``; :class:`InvalidToken` when it refused
        (``None``, or anything that is not a mapping)."""
        if not credential or len(credential) > MAX_CREDENTIAL:
            raise InvalidToken(f"{self.name}: empty or oversized credential")
        result = self.verify(credential)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, Mapping):
            raise InvalidToken(f"{self.name}: the verifier refused the credential")
        return dict(result)


class VerifierSet:
    """The configured verifiers, indexed by scheme, prefix and header (no two may overlap)."""

    def __init__(self, verifiers: Iterable[CredentialVerifier]) -> None:
        self.by_scheme: dict[str, CredentialVerifier] = {}
        self.prefixes: list[CredentialVerifier] = []
        self.headers: list[tuple[str, CredentialVerifier]] = []
        names: set[str] = set()
        for verifier in verifiers:
            if verifier.name in names:
                raise ConfigurationError(f"two verifiers named {verifier.name!r}")
            names.add(verifier.name)
            if verifier.scheme is not None:
                if verifier.scheme.lower() in self.by_scheme:
                    raise ConfigurationError(f"two verifiers for scheme {verifier.scheme!r}")
                self.by_scheme[verifier.scheme.lower()] = verifier
            elif verifier.prefix is not None:
                for other in self.prefixes:
                    assert other.prefix is not None
                    if other.prefix.startswith(verifier.prefix) or verifier.prefix.startswith(
                        other.prefix
                    ):
                        raise ConfigurationError(
                            f"verifier prefixes {other.prefix!r} and {verifier.prefix!r} overlap"
                        )
                self.prefixes.append(verifier)
            elif verifier.header is not None:
                self.headers.append((verifier.header.lower(), verifier))

    def __bool__(self) -> bool:
        return bool(self.by_scheme or self.prefixes or self.headers)

    def for_authorization(self, scheme: str, token: str) -> CredentialVerifier | None:
        """The verifier owning ``Authorization: <scheme> <token>`` (scheme in lower case)."""
        found = self.by_scheme.get(scheme)
        if found is None and scheme == "bearer":
            found = next((v for v in self.prefixes if token.startswith(v.prefix or "\0")), None)
        return found

    def for_headers(self, headers: Mapping[str, str]) -> tuple[CredentialVerifier, str] | None:
        """A verifier whose own header the request carries (no ``Authorization`` header)."""
        for name, verifier in self.headers:
            value = headers.get(name)
            if value is not None:
                return verifier, value
        return None
