"""The tokens real providers issue, as their documentation shows them, to be signed by the fake
issuer: one :class:`Shape` per provider with the settings its guide (docs/providers/) gives.

Each shape has the user's access token, a service's (client credentials) token, and the ID
token the same provider issues to the app (which must never pass as a bearer token). Claims
that only identify the provider's internals (``uti``, ``rh``, ``xms_*``, ``origin_jti``...) are
kept where they are part of the documented shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NOW = 1_800_000_000
Claims = dict[str, Any]


@dataclass(frozen=True)
class Shape:
    name: str
    issuer: str
    settings: dict[str, Any]  # what the provider's guide says to set (besides the issuer)
    client_id: str  # the app's own client (its ID tokens' audience)
    user_token: Callable[[], tuple[dict[str, Any], Claims]]  # (header, claims)
    service_token: Callable[[], tuple[dict[str, Any], Claims]] | None
    id_token: Callable[[], tuple[dict[str, Any], Claims]]
    roles: frozenset[str] = frozenset()  # what roles_of gives for the user token
    permissions: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    wrong_settings: dict[str, Any] = field(default_factory=dict)  # e.g. another audience


def _times(lifetime: int = 3600) -> Claims:
    return {"iat": NOW - 10, "exp": NOW + lifetime}


# -- Auth0 ---------------------------------------------------------------------------------------

AUTH0 = "https://dev-abc123.us.auth0.com/"
AUTH0_API = "https://api.example.com"
AUTH0_CLIENT = "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja"

auth0 = Shape(
    name="auth0",
    issuer=AUTH0,
    settings={"audience": AUTH0_API, "roles_claim": "https://example.com/roles"},
    client_id=AUTH0_CLIENT,
    user_token=lambda: (
        {"typ": "at+jwt"},
        {
            "iss": AUTH0,
            "sub": "auth0|6553da60a54af58e29493993",
            "aud": [AUTH0_API, f"{AUTH0}userinfo"],
            "azp": AUTH0_CLIENT,
            "client_id": AUTH0_CLIENT,
            "scope": "openid profile email read:items",
            "permissions": ["read:items", "write:items"],
            "https://example.com/roles": ["editor"],
            "jti": "a1",
            **_times(),
        },
    ),
    service_token=lambda: (
        {"typ": "at+jwt"},
        {
            "iss": AUTH0,
            "sub": "awZfdIir8YFdGZWkvCejDoUb7SjTDicx@clients",
            "aud": AUTH0_API,
            "azp": "awZfdIir8YFdGZWkvCejDoUb7SjTDicx",
            "gty": "client-credentials",
            "scope": "read:items",
            "permissions": ["read:items"],
            **_times(),
        },
    ),
    id_token=lambda: (
        {"typ": "JWT"},
        {
            "iss": AUTH0,
            "sub": "auth0|6553da60a54af58e29493993",
            "aud": AUTH0_CLIENT,
            "nonce": "n-1",
            "sid": "s-1",
            "name": "Jane Doe",
            **_times(),
        },
    ),
    roles=frozenset({"editor"}),
    permissions=frozenset({"read:items", "write:items"}),
    scopes=frozenset({"openid", "profile", "email", "read:items"}),
    wrong_settings={"audience": "https://other-api.example.com"},
)

# -- Microsoft Entra ID (v2 and v1 tokens; one app registration exposes the API) ---------------

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ENTRA_V2 = f"https://login.microsoftonline.com/{TENANT}/v2.0"
ENTRA_V1 = f"https://sts.windows.net/{TENANT}/"
ENTRA_API = "6e74172b-be56-4843-9ff4-e66a39bb12e3"  # the API's application (client) id
ENTRA_WEB = "9c4ac8f4-2d6a-4d43-8a2b-bd2d7a1ce2a1"  # the web app's

entra_v2 = Shape(
    name="entra-v2",
    issuer=ENTRA_V2,
    settings={"audience": [ENTRA_API, f"api://{ENTRA_API}"]},
    client_id=ENTRA_WEB,
    user_token=lambda: (
        {"typ": "JWT"},
        {
            "iss": ENTRA_V2,
            "aud": ENTRA_API,
            "azp": ENTRA_WEB,
            "azpacr": "1",
            "ver": "2.0",
            "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
            "oid": "00000000-0000-0000-66f3",
            "tid": TENANT,
            "scp": "access_as_user Items.Read",
            "roles": ["Items.Admin"],
            "name": "Abe Lincoln",
            "preferred_username": "abeli@microsoft.com",
            "uti": "fqiBqXL",
            "rh": "I",
            "nbf": NOW - 10,
            **_times(),
        },
    ),
    service_token=lambda: (
        {"typ": "JWT"},
        {
            "iss": ENTRA_V2,
            "aud": ENTRA_API,
            "azp": "c0ffee00-1111-2222-3333-444455556666",
            "azpacr": "1",
            "ver": "2.0",
            "idtyp": "app",
            "roles": ["Items.ReadWrite.All"],
            "sub": "5d1d8bb0-7c39-4c8e-9e2b-4b9f1e2a1111",
            "oid": "5d1d8bb0-7c39-4c8e-9e2b-4b9f1e2a1111",
            "tid": TENANT,
            **_times(),
        },
    ),
    id_token=lambda: (
        {"typ": "JWT"},
        {
            "iss": ENTRA_V2,
            "aud": ENTRA_WEB,
            "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
            "ver": "2.0",
            "tid": TENANT,
            "nonce": "n-1",
            "name": "Abe Lincoln",
            **_times(),
        },
    ),
    roles=frozenset({"Items.Admin"}),
    scopes=frozenset({"access_as_user", "Items.Read"}),
    wrong_settings={"audience": "00000003-0000-0000-c000-000000000000"},  # Microsoft Graph
)

entra_v1 = Shape(
    name="entra-v1",
    issuer=ENTRA_V1,
    settings={"audience": [f"api://{ENTRA_API}", ENTRA_API]},
    client_id=ENTRA_WEB,
    user_token=lambda: (
        {"typ": "JWT"},
        {
            "iss": ENTRA_V1,
            "aud": f"api://{ENTRA_API}",
            "appid": ENTRA_WEB,
            "appidacr": "1",
            "ver": "1.0",
            "sub": "l3_roISQU222bULS9yi2k0XpqpOiMz5H3ZACo1GeXA",
            "tid": TENANT,
            "scp": "user_impersonation",
            "roles": ["Items.Admin"],
            "upn": "abeli@microsoft.com",
            "unique_name": "abeli@microsoft.com",
            "nbf": NOW - 10,
            **_times(),
        },
    ),
    service_token=None,
    id_token=lambda: (
        {"typ": "JWT"},
        {
            "iss": ENTRA_V1,
            "aud": ENTRA_WEB,
            "sub": "l3_roISQU222bULS9yi2k0XpqpOiMz5H3ZACo1GeXA",
            "ver": "1.0",
            "tid": TENANT,
            "nonce": "n-1",
            "unique_name": "abeli@microsoft.com",
            **_times(),
        },
    ),
    roles=frozenset({"Items.Admin"}),
    scopes=frozenset({"user_impersonation"}),
    wrong_settings={"audience": "https://graph.windows.net"},
)

# -- Okta (a custom authorization server) ---------------------------------------------------------

OKTA = "https://dev-133337.okta.com/oauth2/default"
OKTA_CLIENT = "0oa1g8r0l1cDZ4NcN5d7"

okta = Shape(
    name="okta",
    issuer=OKTA,
    settings={"audience": "api://default", "roles_claim": "groups"},
    client_id=OKTA_CLIENT,
    user_token=lambda: (
        {},
        {
            "ver": 1,
            "jti": "AT.0mP4JKAZX1iACIT4vbEDF7LpvDVjxypPMf0D7uX39RE",
            "iss": OKTA,
            "aud": "api://default",
            "cid": OKTA_CLIENT,
            "uid": "00ujmkLgagxeRrAg20g3",
            "scp": ["openid", "profile", "items:read"],
            "auth_time": NOW - 100,
            "sub": "isaac.brock@example.com",
            "groups": ["Everyone", "Admins"],
            **_times(),
        },
    ),
    service_token=lambda: (
        {},
        {
            "ver": 1,
            "jti": "AT.x1",
            "iss": OKTA,
            "aud": "api://default",
            "cid": "0oa5srv1",
            "scp": ["items:read"],
            "sub": "0oa5srv1",
            **_times(),
        },
    ),
    id_token=lambda: (
        {},
        {
            "ver": 1,
            "iss": OKTA,
            "aud": OKTA_CLIENT,
            "sub": "00ujmkLgagxeRrAg20g3",
            "nonce": "n-1",
            "amr": ["pwd"],
            "idp": "00ok1u7AsAkrwdZL3z0g",
            "auth_time": NOW - 100,
            "at_hash": "abc",
            **_times(),
        },
    ),
    roles=frozenset({"Everyone", "Admins"}),
    scopes=frozenset({"openid", "profile", "items:read"}),
    wrong_settings={"audience": "api://other"},
)

# -- Keycloak --------------------------------------------------------------------------------------

KEYCLOAK = "https://sso.example.com/realms/acme"

keycloak = Shape(
    name="keycloak",
    issuer=KEYCLOAK,
    settings={
        "audience": "items-api",
        "roles_claim": "realm_access.roles,resource_access.items-api.roles",
    },
    client_id="web",
    user_token=lambda: (
        {"typ": "JWT"},
        {
            "exp": NOW + 300,
            "iat": NOW - 10,
            "auth_time": NOW - 20,
            "jti": "onrtac:8f3c",
            "iss": KEYCLOAK,
            "aud": ["items-api", "account"],
            "sub": "2c4a1d3e-7b4b-4f2a-9f52",
            "typ": "Bearer",
            "azp": "web",
            "nonce": "n-1",
            "sid": "a6e3",
            "acr": "1",
            "realm_access": {"roles": ["offline_access", "default-roles-acme"]},
            "resource_access": {
                "items-api": {"roles": ["admin"]},
                "account": {"roles": ["manage-account"]},
            },
            "scope": "openid profile email",
            "preferred_username": "alice",
        },
    ),
    service_token=lambda: (
        {"typ": "JWT"},
        {
            "exp": NOW + 300,
            "iat": NOW - 10,
            "jti": "trrtcc:1",
            "iss": KEYCLOAK,
            "aud": "items-api",
            "sub": "9b1d1a77-service",
            "typ": "Bearer",
            "azp": "worker",
            "client_id": "worker",
            "preferred_username": "service-account-worker",
            "scope": "profile email",
            "realm_access": {"roles": ["default-roles-acme"]},
        },
    ),
    id_token=lambda: (
        {"typ": "JWT"},
        {
            "exp": NOW + 300,
            "iat": NOW - 10,
            "iss": KEYCLOAK,
            "aud": "web",
            "sub": "2c4a1d3e-7b4b-4f2a-9f52",
            "typ": "ID",
            "azp": "web",
            "nonce": "n-1",
            "at_hash": "abc",
            "sid": "a6e3",
        },
    ),
    roles=frozenset({"offline_access", "default-roles-acme", "admin"}),
    scopes=frozenset({"openid", "profile", "email"}),
    wrong_settings={"audience": "billing-api"},
)

# -- AWS Cognito (access tokens have no aud: the app client is in client_id) --------------------

COGNITO = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEfGhI"
COGNITO_CLIENT = "1example23456789"

cognito = Shape(
    name="cognito",
    issuer=COGNITO,
    settings={
        "audience": COGNITO_CLIENT,
        "audience_claim": "client_id",
        "roles_claim": "cognito:groups",
    },
    client_id=COGNITO_CLIENT,
    user_token=lambda: (
        {},
        {
            "sub": "aaaaaaaa-bbbb-cccc-dddd-example",
            "cognito:groups": ["admin"],
            "iss": COGNITO,
            "version": 2,
            "client_id": COGNITO_CLIENT,
            "origin_jti": "o1",
            "event_id": "e1",
            "token_use": "access",
            "scope": "aws.cognito.signin.user.admin openid",
            "jti": "j1",
            "auth_time": NOW - 20,
            "username": "alice",
            **_times(),
        },
    ),
    service_token=lambda: (
        {},
        {
            "sub": COGNITO_CLIENT,
            "iss": COGNITO,
            "version": 2,
            "client_id": COGNITO_CLIENT,
            "token_use": "access",
            "scope": "items/read",
            "jti": "j2",
            **_times(),
        },
    ),
    id_token=lambda: (
        {},
        {
            "sub": "aaaaaaaa-bbbb-cccc-dddd-example",
            "aud": COGNITO_CLIENT,
            "iss": COGNITO,
            "token_use": "id",
            "cognito:username": "alice",
            "email": "alice@example.com",
            "auth_time": NOW - 20,
            **_times(),
        },
    ),
    roles=frozenset({"admin"}),
    scopes=frozenset({"aws.cognito.signin.user.admin", "openid"}),
    wrong_settings={"audience": "9other-app-client"},
)

# -- Google (its access tokens are opaque; services call with Google-signed ID tokens whose
#    audience is the API's URL) --------------------------------------------------------------------

GOOGLE = "https://accounts.google.com"
GOOGLE_CLIENT = "1234567890-abc.apps.googleusercontent.com"
GOOGLE_API = "https://items-api-abc123-ew.a.run.app"

google = Shape(
    name="google",
    issuer=GOOGLE,
    settings={"audience": GOOGLE_API},
    client_id=GOOGLE_CLIENT,
    user_token=lambda: (
        {"typ": "JWT"},
        {  # a user's identity token for the API's URL (gcloud auth print-identity-token)
            "iss": GOOGLE,
            "aud": GOOGLE_API,
            "azp": "32555940559.apps.googleusercontent.com",
            "sub": "10769150350006150715",
            "email": "alice@example.com",
            "email_verified": True,
            **_times(),
        },
    ),
    service_token=lambda: (
        {"typ": "JWT"},
        {  # a service account's token for the API's URL
            "iss": GOOGLE,
            "aud": GOOGLE_API,
            "azp": "112233445566778899000",
            "sub": "112233445566778899000",
            "email": "worker@proj.iam.gserviceaccount.com",
            "email_verified": True,
            **_times(),
        },
    ),
    id_token=lambda: (
        {"typ": "JWT"},
        {  # a user's sign-in ID token for the web client
            "iss": GOOGLE,
            "aud": GOOGLE_CLIENT,
            "azp": GOOGLE_CLIENT,
            "sub": "10769150350006150715",
            "email": "alice@gmail.com",
            "email_verified": True,
            "at_hash": "abc",
            "nonce": "n-1",
            **_times(),
        },
    ),
    wrong_settings={"audience": "https://other-service.a.run.app"},
)

# -- Zitadel (JWT access tokens enabled for the app) ---------------------------------------------

ZITADEL = "https://acme-abc.zitadel.cloud"
ZITADEL_PROJECT = "249703732336418819"
ZITADEL_CLIENT = "249703732336484355@acme"
ZITADEL_ROLES = "urn:zitadel:iam:org:project:roles"

zitadel = Shape(
    name="zitadel",
    issuer=ZITADEL,
    settings={"audience": ZITADEL_PROJECT, "roles_claim": ZITADEL_ROLES},
    client_id=ZITADEL_CLIENT,
    user_token=lambda: (
        {"typ": "JWT"},
        {
            "iss": ZITADEL,
            "aud": [ZITADEL_CLIENT, ZITADEL_PROJECT],
            "client_id": ZITADEL_CLIENT,
            "sub": "249703903938232323",
            "jti": "2497",
            "nbf": NOW - 10,
            ZITADEL_ROLES: {
                "admin": {"249703732336353283": "acme.zitadel.cloud"},
                "viewer": {"249703732336353283": "acme.zitadel.cloud"},
            },
            "scope": "openid profile",
            **_times(),
        },
    ),
    service_token=lambda: (
        {"typ": "JWT"},
        {
            "iss": ZITADEL,
            "aud": [ZITADEL_PROJECT],
            "client_id": "worker",
            "sub": "worker",
            "jti": "2498",
            "scope": "openid",
            **_times(),
        },
    ),
    id_token=lambda: (
        {"typ": "JWT"},
        {
            "iss": ZITADEL,
            "aud": [ZITADEL_CLIENT, ZITADEL_PROJECT],
            "azp": ZITADEL_CLIENT,
            "sub": "249703903938232323",
            "nonce": "n-1",
            "at_hash": "abc",
            "amr": ["pwd"],
            **_times(),
        },
    ),
    roles=frozenset({"admin", "viewer"}),
    scopes=frozenset({"openid", "profile"}),
    wrong_settings={"audience": "111111111111111111"},
)

# -- Glewlwyd and LemonLDAP::NG (the real providers of the e2e tests: shapes seen there) ----------

GLEWLWYD = "http://127.0.0.1:4593/api/oidc"

glewlwyd = Shape(
    name="glewlwyd",
    issuer=GLEWLWYD,
    settings={"audience": "https://items.example.test"},
    client_id="web",
    user_token=lambda: (
        {"typ": "at+jwt"},
        {
            "iss": GLEWLWYD,
            "sub": "dd31c4b2",
            "aud": "https://items.example.test",
            "client_id": "web",
            "scope": "openid items",
            "jti": "g1",
            "type": "access_token",
            "nbf": NOW - 10,
            **_times(),
        },
    ),
    service_token=lambda: (
        {"typ": "at+jwt"},
        {
            "iss": GLEWLWYD,
            "sub": "worker",
            "aud": "https://items.example.test",
            "client_id": "worker",
            "scope": "items",
            "jti": "g2",
            "type": "access_token",
            **_times(),
        },
    ),
    id_token=lambda: (
        {"typ": "JWT"},
        {
            "iss": GLEWLWYD,
            "sub": "dd31c4b2",
            "aud": "web",
            "azp": "web",
            "nonce": "n-1",
            "at_hash": "abc",
            "sid": "s1",
            "auth_time": NOW - 20,
            **_times(),
        },
    ),
    scopes=frozenset({"openid", "items"}),
    wrong_settings={"audience": "https://other.example.test"},
)

LEMONLDAP = "http://127.0.0.1:4594"

lemonldap = Shape(
    name="lemonldap",
    issuer=LEMONLDAP,
    settings={"audience": "https://items.example.test"},
    client_id="web",
    user_token=lambda: (
        {"typ": "JWT"},
        {
            "iss": LEMONLDAP,
            "sub": "dwho",
            "aud": ["web", "https://items.example.test"],
            "client_id": "web",
            "scope": "openid profile email",
            "jti": "l1",
            **_times(),
        },
    ),
    service_token=None,
    id_token=lambda: (
        {"typ": "JWT"},
        {
            "iss": LEMONLDAP,
            "sub": "dwho",
            "aud": ["web", "https://items.example.test"],
            "azp": "web",
            "nonce": "n-1",
            "at_hash": "abc",
            "auth_time": NOW - 20,
            **_times(),
        },
    ),
    scopes=frozenset({"openid", "profile", "email"}),
    wrong_settings={"audience": "https://other.example.test"},
)

SHAPES = [auth0, entra_v2, entra_v1, okta, keycloak, cognito, google, zitadel, glewlwyd,
          lemonldap]  # fmt: skip
