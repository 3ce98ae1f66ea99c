"""The provider guides (docs/providers/) give the settings that are tested.

For every page: its ``python`` snippets run in one namespace (a ```python no-run fence is
skipped) and build ``guard`` and ``app``, whose ``/api/`` routes answer 401 without
credentials; each ``bash`` block of ``OIDC_*`` variables describes one of the page's guards;
each decoded token example is a user or service token of the provider's documented shape
(tests/provider_shapes.py).

For every provider shape: the guard its page builds (with its trusted issuers, if the page
trusts the shape's issuer that way) accepts the provider's user token and reads its scopes,
roles, permissions and principal right, reads its service token as a service's, and refuses
its ID token as a bearer token.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastapi_oidc_guard import (
    ClaimError,
    GuardConfig,
    InvalidToken,
    OIDCGuard,
    TrustedIssuer,
    roles_of,
)
from fastapi_oidc_guard.claim_paths import names_at
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer

from .provider_shapes import NOW, SHAPES, TENANT, Shape, entra_v2

pytestmark = pytest.mark.anyio

PROVIDERS = Path(__file__).resolve().parents[1] / "docs" / "providers"
PAGES = sorted(page for page in PROVIDERS.glob("*.md") if page.name != "README.md")
PAGE_OF = {
    "auth0": "auth0",
    "entra-v2": "entra-id",
    "entra-v1": "entra-id",
    "okta": "okta",
    "keycloak": "keycloak",
    "cognito": "cognito",
    "google": "google",
    "zitadel": "zitadel",
    "glewlwyd": "glewlwyd",
    "lemonldap": "lemonldap-ng",
}
# OIDC_* variable -> GuardConfig field, as GuardConfig.from_env reads them. Secrets are not
# compared (the pages show placeholders).
ENV_FIELDS = {
    "OIDC_ISSUER": "issuer",
    "OIDC_AUDIENCE": "audiences",
    "OIDC_AUDIENCE_CLAIM": "audience_claim",
    "OIDC_ROLES_CLAIM": "roles_claim",
    "OIDC_PERMISSIONS_CLAIM": "permissions_claim",
    "OIDC_CLIENT_ID": "client_id",
    "OIDC_BASE_URL": "base_url",
    "OIDC_SCOPE": "scope",
    "OIDC_ALGORITHMS": "algorithms",
    "OIDC_LEGACY_LOGOUT_TOKENS": "legacy_logout_tokens",
    "OIDC_REQUIRE_AT_JWT": "require_at_jwt",
    "OIDC_USE_PAR": "use_par",
    "OIDC_TOKEN_ENDPOINT_AUTH": "token_endpoint_auth",
    "OIDC_CLIENT_KEY_ID": "client_key_id",
    "OIDC_SESSION_BACKEND": "session_backend",
}
SECRETS = {
    "OIDC_CLIENT_SECRET",
    "OIDC_SESSION_SECRET",
    "OIDC_CLIENT_PRIVATE_KEY",
    "OIDC_CLIENT_PRIVATE_KEY_FILE",
}
Token = tuple[dict[str, Any], dict[str, Any]]


def fences(page: Path, lang: str) -> list[str]:
    """The bodies of the page's top-level ```<lang> fences ("python no-run" is not "python")."""
    return re.findall(rf"^```{lang}\n(.*?)^```", page.read_text(), re.S | re.M)


@functools.cache
def namespace_of(page: Path) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": f"docs_providers_{page.stem.replace('-', '_')}"}
    for code in fences(page, "python"):
        exec(compile(code, str(page), "exec"), namespace)  # noqa: S102
    return namespace


def instances(namespace: dict[str, Any], kind: type) -> list[Any]:
    return [value for value in namespace.values() if isinstance(value, kind)]


def env_blocks(page: Path) -> list[dict[str, str]]:
    """The ``OIDC_*`` assignments of each bash block that has some."""
    blocks = []
    for body in fences(page, "bash"):
        env: dict[str, str] = {}
        for line in body.splitlines():
            if "OIDC_" not in line:
                continue
            for word in shlex.split(line, comments=True):
                name, equals, value = word.partition("=")
                if equals and name.startswith("OIDC_"):
                    env[name] = value
        if env:
            blocks.append(env)
    return blocks


def test_every_provider_shape_has_a_page_and_the_index_lists_them() -> None:
    assert set(PAGE_OF) == {shape.name for shape in SHAPES}
    assert {page.stem for page in PAGES} == set(PAGE_OF.values())
    index = (PROVIDERS / "README.md").read_text()
    for page in PAGES:
        assert f"]({page.name})" in index, page.name


@pytest.mark.parametrize("page", PAGES, ids=[page.stem for page in PAGES])
def test_snippets_run_and_api_routes_need_credentials(page: Path) -> None:
    namespace = namespace_of(page)
    assert isinstance(namespace.get("guard"), OIDCGuard)
    assert isinstance(namespace.get("app"), FastAPI)
    checked: dict[int, int] = {}
    for app in instances(namespace, FastAPI):
        # No lifespan (no start-up fetch): requests without credentials never need the provider.
        client = TestClient(app)
        for route in app.routes:
            path = getattr(route, "path", "")
            if not path.startswith("/api/") or "{" in path:
                continue
            for method in sorted(getattr(route, "methods", None) or {"GET"}):
                response = client.request(method, path, follow_redirects=False)
                assert response.status_code == 401, (path, response.text)
                assert response.json()["error"] == "not_authenticated"
            checked[id(app)] = checked.get(id(app), 0) + 1
        client.close()
    assert checked.get(id(namespace["app"])), "app has no /api/ route"


@pytest.mark.parametrize("page", PAGES, ids=[page.stem for page in PAGES])
def test_each_env_block_is_one_of_the_page_s_guards(page: Path) -> None:
    blocks = env_blocks(page)
    assert blocks, "no OIDC_* block"
    guards = instances(namespace_of(page), OIDCGuard)
    for env in blocks:
        unknown = set(env) - set(ENV_FIELDS) - SECRETS
        assert not unknown, f"add {sorted(unknown)} to ENV_FIELDS"
        settings = {name: value for name, value in env.items() if name not in SECRETS}
        if "OIDC_BASE_URL" in settings:
            settings["OIDC_SESSION_SECRET"] = "s" * 48
        config = GuardConfig.from_env(settings)
        fields = [ENV_FIELDS[name] for name in env if name not in SECRETS]
        matching = [
            guard
            for guard in guards
            if all(getattr(guard.config, f) == getattr(config, f) for f in fields)
        ]
        assert matching, f"no guard of the page has the settings {settings}"


def _bearer_tokens(page: Path) -> list[dict[str, Any]]:
    """The claims of the user and service tokens of the page's shapes."""
    makers = [
        make
        for shape in SHAPES
        if PAGE_OF[shape.name] == page.stem
        for make in (shape.user_token, shape.service_token)
        if make is not None
    ]
    return [make()[1] for make in makers]


@pytest.mark.parametrize("page", PAGES, ids=[page.stem for page in PAGES])
def test_token_examples_are_the_documented_shapes(page: Path) -> None:
    examples = [json.loads(body) for body in fences(page, "json")]
    tokens = [example for example in examples if "iss" in example]
    assert tokens, "no decoded token example"
    for example in tokens:
        assert any(example.items() <= claims.items() for claims in _bearer_tokens(page)), example


def _page_guards(shape: Shape) -> list[tuple[GuardConfig, list[TrustedIssuer]]]:
    """The page's guards that accept bearer tokens from the shape's issuer: as their primary
    issuer, or through one of the page's ``TrustedIssuer``s."""
    namespace = namespace_of(PROVIDERS / f"{PAGE_OF[shape.name]}.md")
    found: list[tuple[GuardConfig, list[TrustedIssuer]]] = []
    trusted = [t for t in instances(namespace, TrustedIssuer) if t.issuer == shape.issuer]
    for guard in instances(namespace, OIDCGuard):
        if guard.config.issuer == shape.issuer and guard.config.audiences:
            found.append((guard.config, []))
        found.extend((guard.config, [t]) for t in trusted if t.issuer in guard.issuers.stacks)
    return found


def _signed(fake: FakeIssuer, token: Token) -> str:
    header, claims = token
    return fake.sign(claims, header={"typ": None, **header})


@pytest.mark.parametrize("shape", SHAPES, ids=[shape.name for shape in SHAPES])
async def test_the_page_s_guard_accepts_the_provider_s_tokens(shape: Shape) -> None:
    setups = _page_guards(shape)
    assert setups, f"no guard on the page accepts bearer tokens of {shape.issuer}"
    for config, trusted in setups:
        client_ids = {config.client_id} if not trusted else {t.client_id for t in trusted}
        assert client_ids <= {None, shape.client_id}
        fake = FakeIssuer(shape.issuer, client_id=shape.client_id, clock=FakeClock(NOW))
        guard = OIDCGuard(
            config=dataclasses.replace(config, clock=fake.clock),
            transport=fake.transport,
            trusted_issuers=trusted,
        )
        try:
            user = await guard.user_from_token(_signed(fake, shape.user_token()))
            assert user.principal == "user"
            assert user.scopes == shape.scopes
            assert roles_of(user, config.roles_claim) == shape.roles
            assert names_at(user.claims, config.permissions_claim) == shape.permissions
            if shape.service_token is not None:
                service = await guard.user_from_token(_signed(fake, shape.service_token()))
                assert service.principal == "service"
            with pytest.raises(InvalidToken):
                await guard.user_from_token(_signed(fake, shape.id_token()))
        finally:
            await guard.aclose()


async def test_the_entra_resolver_trusts_listed_tenants_only() -> None:
    namespace = namespace_of(PROVIDERS / "entra-id.md")
    resolve, multi = namespace["resolve"], namespace["multi_tenant_guard"]
    other = next(tenant for tenant in namespace["ALLOWED_TENANTS"] if tenant != TENANT)
    issuer = f"https://login.microsoftonline.com/{other}/v2.0"
    fake = FakeIssuer(issuer, client_id=entra_v2.client_id, clock=FakeClock(NOW))
    guard = OIDCGuard(
        config=dataclasses.replace(multi.config, clock=fake.clock),
        transport=fake.transport,
        issuer_resolver=resolve,
    )
    header, claims = entra_v2.user_token()
    try:
        user = await guard.user_from_token(
            _signed(fake, (header, {**claims, "iss": issuer, "tid": other}))
        )
        assert user.principal == "user"
        stranger = "https://login.microsoftonline.com/00000000-0000-0000-0000-00000000dead/v2.0"
        impostor = FakeIssuer(stranger, clock=FakeClock(NOW))
        with pytest.raises(ClaimError, match="not trusted"):
            await guard.user_from_token(_signed(impostor, (header, {**claims, "iss": stranger})))
        for iss in (stranger, f"{issuer}/x", f"https://evil.example/{other}/v2.0"):
            assert await resolve(iss) is None
        assert fake.requests["jwks"] == 1
    finally:
        await guard.aclose()
