"""Where providers put roles and permissions, read by one rule (pure).

A setting such as ``roles_claim`` names a claim or a dotted path into nested objects:

- ``roles`` (Entra ID, Auth0 with a rule), ``permissions`` (Auth0 RBAC);
- ``realm_access.roles`` and ``resource_access.<client>.roles`` (Keycloak);
- ``urn:zitadel:iam:org:project:roles`` (Zitadel: an object keyed by role name);
- ``cognito:groups`` (Cognito), ``groups`` (Okta with a groups claim).

At each level a key that contains dots, spelled out whole, wins over the path
(``https://example.com/roles`` is one claim); several paths separated by commas are read
together (``realm_access.roles,resource_access.my-api.roles``). The value found gives the
names: an array's strings, a string split on spaces, an object's keys. Anything else, or a
path that leads nowhere, gives no names: never an error.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["claim_at", "names_at"]

_MAX_SEGMENTS = 16
_MISSING = object()


def claim_at(claims: Mapping[str, object], path: str) -> object:
    """The value at ``path`` in ``claims`` (literal keys first, then the longest prefix that
    leads to an object), or ``None``."""
    parts = path.split(".")
    if len(path) > 1024 or len(parts) > _MAX_SEGMENTS:
        return None
    found = _walk(claims, parts)
    return None if found is _MISSING else found


def _walk(node: Mapping[str, object], parts: list[str]) -> object:
    for cut in range(len(parts), 0, -1):
        key = ".".join(parts[:cut])
        if key not in node:
            continue
        value = node[key]
        if cut == len(parts):
            return value
        if isinstance(value, Mapping):
            found = _walk(value, parts[cut:])
            if found is not _MISSING:
                return found
    return _MISSING


def names_at(claims: Mapping[str, object], paths: str) -> frozenset[str]:
    """The names at each of the comma-separated ``paths``, together."""
    names: set[str] = set()
    for path in paths.split(","):
        path = path.strip()
        if path:
            names |= _names(claim_at(claims, path))
    return frozenset(names)


def _names(value: object) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list | tuple):
        return frozenset(item for item in value if isinstance(item, str) and item)
    if isinstance(value, Mapping):
        return frozenset(key for key in value if isinstance(key, str) and key)
    return frozenset()
