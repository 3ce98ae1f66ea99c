"""Tokens shaped exactly as each provider documents them (tests/provider_shapes.py), signed by
the fake issuer and checked through the whole bearer path with the settings of that provider's
guide (docs/providers/): accepted with them, with the user's roles, permissions, scopes and
principal kind read right; refused with another audience, from another issuer, and when the
provider's own ID token is sent as a bearer token (even where the API audience is the app's
own client id)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fastapi_oidc_guard import (
    ClaimError,
    InvalidAudience,
    InvalidToken,
    OIDCGuard,
    WrongTokenType,
    roles_of,
)
from fastapi_oidc_guard.claim_paths import names_at
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer

from .provider_shapes import NOW, SHAPES, Shape

pytestmark = pytest.mark.anyio

IDS = [shape.name for shape in SHAPES]


def _guard(shape: Shape, fake: FakeIssuer, **settings: Any) -> OIDCGuard:
    options = {"issuer": shape.issuer, "client_id": shape.client_id, "transport": fake.transport,
               "clock": fake.clock, **shape.settings, **settings}  # fmt: skip
    return OIDCGuard(**options)


def _fake(shape: Shape) -> FakeIssuer:
    return FakeIssuer(shape.issuer, client_id=shape.client_id, clock=FakeClock(NOW))


def _signed(fake: FakeIssuer, token: tuple[dict[str, Any], dict[str, Any]]) -> str:
    header, claims = token
    return fake.sign(claims, header={"typ": None, **header})


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
async def test_the_provider_s_user_token_is_accepted_and_read_right(shape: Shape) -> None:
    fake = _fake(shape)
    guard = _guard(shape, fake)
    try:
        user = await guard.user_from_token(_signed(fake, shape.user_token()))
        assert user.principal == "user"
        assert user.scopes == shape.scopes
        assert roles_of(user, guard.config.roles_claim) == shape.roles
        assert names_at(user.claims, guard.config.permissions_claim) == shape.permissions
    finally:
        await guard.aclose()


@pytest.mark.parametrize("shape", [s for s in SHAPES if s.service_token], ids=lambda s: s.name)
async def test_the_provider_s_service_token_is_a_service(shape: Shape) -> None:
    fake = _fake(shape)
    guard = _guard(shape, fake)
    assert shape.service_token is not None
    try:
        user = await guard.user_from_token(_signed(fake, shape.service_token()))
        assert user.principal == "service"
    finally:
        await guard.aclose()


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
async def test_refused_for_another_audience(shape: Shape) -> None:
    fake = _fake(shape)
    guard = _guard(shape, fake, **shape.wrong_settings)
    try:
        with pytest.raises(InvalidAudience):
            await guard.user_from_token(_signed(fake, shape.user_token()))
        assert fake.requests["jwks"] == 0  # refused before any key was fetched
    finally:
        await guard.aclose()


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
async def test_refused_from_another_issuer(shape: Shape) -> None:
    """The same token, signed by a look-alike issuer (another tenant of the same provider)."""
    impostor = FakeIssuer(shape.issuer.rstrip("/") + "-evil", clock=FakeClock(NOW))
    fake = _fake(shape)
    guard = _guard(shape, fake)
    header, claims = shape.user_token()
    forged = impostor.sign({**claims, "iss": impostor.issuer}, header={"typ": None, **header})
    try:
        with pytest.raises(ClaimError):
            await guard.user_from_token(forged)
    finally:
        await guard.aclose()


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
async def test_the_provider_s_id_token_is_never_a_bearer_token(shape: Shape) -> None:
    """Attack: the app's ID token (from the browser, a log, a front end) sent to the API. With
    the provider's settings it is refused; and still refused when the API audience also lists
    the app's own client id (one registration for both), where only its kind gives it away."""
    fake = _fake(shape)
    token = _signed(fake, shape.id_token())
    guard = _guard(shape, fake)
    one_registration = _guard(
        shape, fake, audience=[*_audiences(shape), shape.client_id], audience_claim="aud"
    )
    try:
        with pytest.raises(InvalidToken):
            await guard.user_from_token(token)
        with pytest.raises(WrongTokenType):
            await one_registration.user_from_token(token)
    finally:
        await guard.aclose()
        await one_registration.aclose()


def _audiences(shape: Shape) -> list[str]:
    audience = shape.settings["audience"]
    return [audience] if isinstance(audience, str) else list(audience)


async def test_cognito_access_token_needs_the_client_id_claim_setting() -> None:
    """Cognito access tokens have no ``aud``: without ``audience_claim="client_id"`` they are
    refused (never accepted without an audience check)."""
    from .provider_shapes import cognito

    fake = _fake(cognito)
    guard = _guard(cognito, fake, audience_claim="aud")
    try:
        with pytest.raises(ClaimError, match="aud"):
            await guard.user_from_token(_signed(fake, cognito.user_token()))
    finally:
        await guard.aclose()


@pytest.mark.parametrize("token_use", ["id", "refresh", "", "ACCESS", None])
async def test_cognito_token_use_must_be_access(token_use: str | None) -> None:
    from .provider_shapes import cognito

    fake = _fake(cognito)
    guard = _guard(cognito, fake)
    _header, claims = cognito.user_token()
    claims = {**claims, "token_use": token_use, "typ": "Bearer"}  # markers cannot outvote it
    try:
        with pytest.raises(WrongTokenType):
            await guard.user_from_token(fake.sign(claims, header={"typ": "at+jwt"}))
    finally:
        await guard.aclose()


def test_shapes_are_json() -> None:
    for shape in SHAPES:
        for make in (shape.user_token, shape.id_token, shape.service_token):
            if make is not None:
                json.dumps(make())


# -- found by the adversarial review of issue #13 ------------------------------------------------


async def test_audience_claim_never_widens_what_aud_says() -> None:
    """Attack: with ``audience_claim="client_id"`` (meant for Cognito), a token our client got
    for another API (RFC 9068 shape: ``aud`` = that API, ``client_id`` = ours) must not pass;
    nor a ``client_id`` given as a list holding ours."""
    from .provider_shapes import cognito

    fake = _fake(cognito)
    guard = _guard(cognito, fake)
    header, claims = cognito.user_token()
    other_api = {**claims, "aud": "https://billing.example.com"}
    listed = {**claims, "client_id": ["evil", claims["client_id"]]}
    ours_too = {**claims, "aud": [claims["client_id"], "https://billing.example.com"]}
    try:
        with pytest.raises(InvalidAudience):
            await guard.user_from_token(fake.sign(other_api, header={"typ": None, **header}))
        with pytest.raises(ClaimError):
            await guard.user_from_token(fake.sign(listed, header={"typ": None, **header}))
        user = await guard.user_from_token(fake.sign(ours_too, header={"typ": None, **header}))
        assert user.sub == claims["sub"]
    finally:
        await guard.aclose()


def test_an_audience_with_a_comma_is_one_audience_unless_it_comes_from_the_environment() -> None:
    from fastapi_oidc_guard import GuardConfig

    issuer = "https://idp.example.test"
    assert GuardConfig(issuer=issuer, audience="urn:x:api,v2").audiences == ("urn:x:api,v2",)
    env = {"OIDC_ISSUER": issuer, "OIDC_AUDIENCE": "a, b"}
    assert GuardConfig.from_env(env).audiences == ("a", "b")
