"""User or service: who a bearer token speaks for, from the grant that issued it (pure).

A token is a **service**'s (no end user: the client credentials grant) when, in this order:

1. ``gty`` is ``client-credentials`` (Auth0);
2. ``idtyp`` is ``app`` (Entra ID, with the optional ``idtyp`` claim), or an Entra ID access
   token (``azpacr`` / ``appidacr``) has no ``scp``: Microsoft's own test for app-only tokens;
3. its subject is the client that asked for it: ``sub`` equals ``client_id`` (RFC 9068,
   Cognito, Glewlwyd, Zitadel), ``azp`` (Auth0 with the ``@clients`` suffix removed) or ``cid``
   (Okta);
4. Keycloak's service accounts: ``preferred_username`` is exactly ``service-account-`` followed
   by the client (``azp``, lower case) that asked for the token.

Every other token is a **user**'s, and so is every browser session (the guard marks session
users so). "User" is the default: on providers where a person chooses the ``sub`` (LemonLDAP::NG
uses the login name), a user named like a client id looks like that client's service token:
keep client ids out of the user namespace there, or check more than ``principal``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

__all__ = ["Principal", "principal_kind"]

Principal = Literal["user", "service"]
_CLIENT_CLAIMS = ("client_id", "azp", "cid")


def principal_kind(claims: Mapping[str, object]) -> Principal:
    if claims.get("gty") == "client-credentials" or claims.get("idtyp") == "app":
        return "service"
    entra = "azpacr" in claims or "appidacr" in claims
    if entra and "scp" not in claims:
        return "service"
    sub = claims.get("sub")
    if isinstance(sub, str) and sub:
        bare = sub.removesuffix("@clients")  # Auth0: "<client id>@clients"
        for name in _CLIENT_CLAIMS:
            client = claims.get(name)
            if isinstance(client, str) and client in (sub, bare):
                return "service"
    azp, username = claims.get("azp"), claims.get("preferred_username")
    if isinstance(azp, str) and azp and username == f"service-account-{azp.lower()}":
        return "service"
    return "user"
