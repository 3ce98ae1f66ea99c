"""User or service: who a bearer token speaks for, from the grant that issued it (pure).

A token is a **service**'s (no end user: the client credentials grant) when, in this order:

1. ``gty`` is ``client-credentials`` (Auth0);
2. ``idtyp`` is ``app`` (Entra ID, with the optional ``idtyp`` claim);
3. its subject is the client that asked for it: ``sub`` equals ``client_id`` (RFC 9068,
   Cognito, Glewlwyd, Zitadel), ``azp`` (Auth0 with the ``@clients`` suffix removed,
   Keycloak), ``cid`` (Okta) or ``appid`` (Entra ID v1);
4. ``preferred_username`` starts with ``service-account-`` (Keycloak's service accounts, whose
   ``sub`` is a user id of their own).

Every other token, and every browser session, is a **user**'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

__all__ = ["Principal", "principal_kind"]

Principal = Literal["user", "service"]
_CLIENT_CLAIMS = ("client_id", "azp", "cid", "appid")


def principal_kind(claims: Mapping[str, object]) -> Principal:
    if claims.get("gty") == "client-credentials" or claims.get("idtyp") == "app":
        return "service"
    sub = claims.get("sub")
    if isinstance(sub, str) and sub:
        bare = sub.removesuffix("@clients")  # Auth0: "<client id>@clients"
        for name in _CLIENT_CLAIMS:
            client = claims.get(name)
            if isinstance(client, str) and client in (sub, bare):
                return "service"
    username = claims.get("preferred_username")
    if isinstance(username, str) and username.startswith("service-account-"):
        return "service"
    return "user"
