"""Client authentication (``client_auth``): private keys loaded from PEM or JWK, the signed
assertion's content, refusals of unusable keys, and the method chosen from discovery."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from fastapi_oidc_guard import ConfigurationError, ProviderMetadata
from fastapi_oidc_guard.client_auth import ClientCredentials, load_private_key
from fastapi_oidc_guard.jose import parse_compact, parse_jwk, verify_signature

NOW = 1_800_000_000.0
META = ProviderMetadata(issuer="https://idp.example.test", jwks_uri="https://idp.example.test/j",
                        token_endpoint="https://idp.example.test/token")  # fmt: skip


def _pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()  # fmt: skip


def _public_jwk(key: Any, alg: str) -> dict[str, Any]:
    from jose import jwk as jose_jwk

    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if alg == "EdDSA":
        raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)  # fmt: skip
        import base64

        return {"kty": "OKP", "crv": "Ed25519",
                "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}  # fmt: skip
    return dict(jose_jwk.construct(public, alg).to_dict())


KEYS: list[Any] = [
    pytest.param(
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256", id="rsa"
    ),
    pytest.param(lambda: ec.generate_private_key(ec.SECP256R1()), "ES256", id="p-256"),
    pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), "ES384", id="p-384"),
    pytest.param(ed25519.Ed25519PrivateKey.generate, "EdDSA", id="ed25519"),
]


@pytest.mark.parametrize(("make", "alg"), KEYS)
def test_the_assertion_is_signed_and_says_what_rfc_7523_asks(make: Any, alg: str) -> None:
    key = make()
    credentials = ClientCredentials(
        "app", None, auth="private_key_jwt", private_key=load_private_key(_pem(key), kid="k1"),
        clock=lambda: NOW,
    )  # fmt: skip
    data: dict[str, str] = {}
    headers: dict[str, str] = {}
    credentials.apply(data, headers, metadata=META)
    assert headers == {}  # no secret, no Basic header
    assert data["client_id"] == "app"
    assert data["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    parsed = parse_compact(data["client_assertion"], max_bytes=8192)
    assert parsed.header == {"alg": alg, "typ": "JWT", "kid": "k1"}
    claims = parsed.claims
    assert claims["iss"] == claims["sub"] == "app"
    assert claims["aud"] == META.token_endpoint
    assert claims["exp"] - claims["iat"] == 60 and claims["iat"] == NOW
    verify_signature(parsed, parse_jwk({**_public_jwk(key, alg), "kid": "k1"}, [alg]),
                     allowed=[alg])  # fmt: skip
    other: dict[str, str] = {}
    credentials.apply(other, {}, metadata=META)
    assert json.dumps(parse_compact(other["client_assertion"], max_bytes=8192).claims["jti"]) != (
        json.dumps(claims["jti"])
    )  # a fresh jti each time


def test_a_private_jwk_is_read_with_its_kid() -> None:
    from .e2e._provider import generate_rsa_jwk

    jwk = generate_rsa_jwk(kid="from-jwk")
    key = load_private_key(json.dumps(jwk))
    assert (key.alg, key.kid) == ("RS256", "from-jwk")
    assert load_private_key(json.dumps(jwk), kid="override").kid == "override"


REFUSED: list[Any] = [
    pytest.param("not a key", id="garbage"),
    pytest.param(
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        id="public-key",
    ),
    pytest.param(
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
        .decode(),
        id="encrypted-pem",
    ),
    pytest.param(
        _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),  # noqa: S505
        id="rsa-1024",
    ),
    pytest.param(_pem(ec.generate_private_key(ec.SECP521R1())), id="p-521"),
    pytest.param('{"kty": "oct", "k": "c2VjcmV0"}', id="symmetric-jwk"),
    pytest.param('{"kty": "RSA", "n": "AQAB", "e": "AQAB"}', id="public-jwk"),
    pytest.param("{not json", id="broken-json"),
]


@pytest.mark.parametrize("text", REFUSED)
def test_unusable_keys_are_a_configuration_error(text: str) -> None:
    with pytest.raises(ConfigurationError):
        load_private_key(text)


def test_private_key_jwt_needs_a_key_and_secret_methods_a_secret() -> None:
    with pytest.raises(ConfigurationError, match="client_private_key"):
        ClientCredentials("app", "s", auth="private_key_jwt")
    with pytest.raises(ConfigurationError, match="SECRET"):
        ClientCredentials("app", None, auth="client_secret_post")


@pytest.mark.parametrize(
    ("secret", "supported", "expected"),
    [("s", None, "client_secret_basic"), ("s", ["client_secret_basic", "client_secret_post"],
      "client_secret_basic"), ("s", ["client_secret_post"], "client_secret_post"),
     ("s", ["private_key_jwt"], "client_secret_basic"), (None, None, "none")],
)  # fmt: skip
def test_auto_picks_from_discovery(secret: str | None, supported: Any, expected: str) -> None:
    metadata = META.model_copy(update={"token_endpoint_auth_methods_supported": supported})
    assert ClientCredentials("app", secret).method(metadata) == expected


def test_auto_with_a_key_is_private_key_jwt() -> None:
    key = load_private_key(_pem(ec.generate_private_key(ec.SECP256R1())))
    assert ClientCredentials("app", "s", private_key=key).method(META) == "private_key_jwt"


def test_the_key_never_shows_in_the_config_repr() -> None:
    from fastapi_oidc_guard import GuardConfig

    pem = _pem(ec.generate_private_key(ec.SECP256R1()))
    assert "PRIVATE KEY" not in repr(GuardConfig(issuer="https://idp.example.test",
                                                 client_private_key=pem))  # fmt: skip


# -- pushed authorization requests -------------------------------------------------------------

ISSUER = "https://idp.example.test"


def _provider(par_answer: tuple[int, dict[str, Any]]) -> Any:
    import httpx

    from fastapi_oidc_guard.discovery import DiscoveryCache
    from fastapi_oidc_guard.provider import Provider

    discovery = {
        "issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks", "authorization_endpoint": f"{ISSUER}/auth",
        "token_endpoint": f"{ISSUER}/token", "require_pushed_authorization_requests": True,
        "pushed_authorization_request_endpoint": f"{ISSUER}/par",
    }  # fmt: skip
    seen: list[dict[str, str]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=discovery)
        from urllib.parse import parse_qsl

        seen.append(dict(parse_qsl(request.content.decode())))
        return httpx.Response(par_answer[0], json=par_answer[1])

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    cache = DiscoveryCache(issuer=ISSUER, client=lambda: client, clock=lambda: NOW, max_age=60)
    return Provider(cache, ClientCredentials("app", "s3cret"), lambda: client), seen


@pytest.mark.anyio
async def test_par_sends_the_parameters_back_channel_and_the_browser_only_the_request_uri() -> None:
    from urllib.parse import parse_qs, urlsplit

    provider, seen = _provider((201, {"request_uri": "urn:ietf:params:oauth:request_uri:abc",
                                      "expires_in": 60}))  # fmt: skip
    url = await provider.authorization_url({"state": "s", "scope": "openid"}, push=None)
    assert set(parse_qs(urlsplit(url).query)) == {"client_id", "request_uri"}
    assert seen == [{"state": "s", "scope": "openid"}]  # the secret went in the Basic header


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("answer", "expected"),
    [((400, {"error": "invalid_request"}), "InvalidRequest"),
     ((401, {"error": "invalid_client"}), "TemporarilyUnavailable"),
     ((500, {}), "TemporarilyUnavailable"),
     ((201, {"request_uri": "https://evil.example/\r\nx"}), "TemporarilyUnavailable"),
     ((201, {"request_uri": 42}), "TemporarilyUnavailable")],
)  # fmt: skip
async def test_par_refusals(answer: tuple[int, dict[str, Any]], expected: str) -> None:
    """A parameter the provider refuses is the browser's 400 (as without PAR); our own
    misconfiguration or an outage is a 503; an unusable request_uri is never sent on."""
    import fastapi_oidc_guard.errors as errors

    provider, _ = _provider(answer)
    with pytest.raises(getattr(errors, expected)):
        await provider.authorization_url({"state": "s"}, push=None)
