"""The verifier table: every rule of DESIGN.md section 5, most rows a rejection.

Each row builds a token against a fresh fake issuer (named by intent) and says which error the
bearer path must raise, or ``None`` when the token must be accepted. Removing any rule from
``jose.py`` or ``verify.py`` makes at least one row fail.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from fastapi_oidc_guard import (
    ClaimError,
    ExpiredToken,
    InvalidAudience,
    InvalidSignature,
    InvalidToken,
    KeyNotFound,
    MalformedToken,
    OIDCGuard,
    UnsupportedAlgorithm,
    UnusableKey,
    WrongTokenType,
)
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer, SigningKey
from fastapi_oidc_guard.testing._keys import b64url, compact

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000
Builder = Callable[[FakeIssuer], str]


def _segments(token: str) -> list[str]:
    return token.split(".")


def _with_key(key_alg: str, **jwk_extra: Any) -> Callable[[FakeIssuer], SigningKey]:
    def add(issuer: FakeIssuer) -> SigningKey:
        key = SigningKey.generate(key_alg)
        key.jwk_extra.update(jwk_extra)
        issuer.keys.append(key)
        return key

    return add


# -- token builders, named by intent -----------------------------------------------------------


def valid_rs256(i: FakeIssuer) -> str:
    return i.mint()


def valid_es256(i: FakeIssuer) -> str:
    return i.mint(key=i.key_for("ES256"))


def valid_ps256(i: FakeIssuer) -> str:
    return i.mint(key=_with_key("PS256")(i))


def valid_eddsa(i: FakeIssuer) -> str:
    return i.mint(key=_with_key("EdDSA")(i))


def valid_typ_jwt(i: FakeIssuer) -> str:
    return i.mint(header={"typ": "JWT"})


def valid_typ_absent(i: FakeIssuer) -> str:
    return i.mint(header={"typ": None})


def valid_typ_application_at_jwt(i: FakeIssuer) -> str:
    return i.mint(header={"typ": "application/at+jwt"})


def valid_audience_in_array(i: FakeIssuer) -> str:
    return i.mint(aud=["https://other.example", i.audience])


def valid_expiring_within_leeway(i: FakeIssuer) -> str:
    return i.mint(exp=NOW - 29)


def valid_nbf_within_leeway(i: FakeIssuer) -> str:
    return i.mint(nbf=NOW + 29)


def valid_iat_within_leeway(i: FakeIssuer) -> str:
    return i.mint(iat=NOW + 29)


def valid_without_kid_single_key(i: FakeIssuer) -> str:
    i.keys = [i.signing_key]
    return i.mint(header={"kid": None})


def valid_just_under_size_limit(i: FakeIssuer) -> str:
    token = i.mint(pad="")
    return i.mint(pad="x" * ((8 * 1024 - len(token)) * 3 // 4 - 4))


def token_over_size_limit(i: FakeIssuer) -> str:
    return i.mint(pad="x" * 8 * 1024)


def token_with_two_segments(i: FakeIssuer) -> str:
    return ".".join(_segments(i.mint())[:2])


def token_with_four_segments(i: FakeIssuer) -> str:
    return i.mint() + ".AAAA"


def token_shaped_like_jwe(i: FakeIssuer) -> str:
    return "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d"


def token_with_padded_base64(i: FakeIssuer) -> str:
    head, body, sig = _segments(i.mint())
    return f"{head}.{body}==.{sig}" if len(body) % 4 == 2 else f"{head}.{body}=.{sig}"


def token_with_standard_base64_alphabet(i: FakeIssuer) -> str:
    head, body, sig = _segments(i.mint())
    return f"{head}.{body}.{sig.replace('-', '+').replace('_', '/')}+/"


def token_with_non_canonical_base64(i: FakeIssuer) -> str:
    head, body, sig = _segments(i.mint())
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # With len % 4 == 2, only the top 2 bits of the last character carry data; set a low bit.
    while len(body) % 4 != 2:
        body = body[:-1]
    last = alphabet.index(body[-1])
    return f"{head}.{body[:-1]}{alphabet[last | 1]}.{sig}"


def token_with_whitespace(i: FakeIssuer) -> str:
    head, body, sig = _segments(i.mint())
    return f"{head}.{body[:10]} {body[10:]}.{sig}"


def token_with_header_array(i: FakeIssuer) -> str:
    _, body, sig = _segments(i.mint())
    return f"{b64url(b'[1,2]')}.{body}.{sig}"


def token_with_header_not_json(i: FakeIssuer) -> str:
    _, body, sig = _segments(i.mint())
    return f"{b64url(b'not json')}.{body}.{sig}"


def token_with_duplicate_alg_in_header(i: FakeIssuer) -> str:
    key = i.signing_key
    head = b64url(f'{{"alg":"RS256","kid":"{key.kid}","alg":"none"}}'.encode())
    body = b64url(json.dumps(i.claims()).encode())
    signature = key.sign(f"{head}.{body}".encode())
    return f"{head}.{body}.{b64url(signature)}"


def token_with_duplicate_sub_in_payload(i: FakeIssuer) -> str:
    claims = json.dumps(i.claims())[:-1] + ', "sub": "admin"}'
    return i.sign(claims.encode())


def token_with_payload_array(i: FakeIssuer) -> str:
    return i.sign(b"[1,2,3]")


def token_with_crit_header(i: FakeIssuer) -> str:
    return i.mint(header={"crit": ["exp"], "exp": 1})


def token_with_kid_not_a_string(i: FakeIssuer) -> str:
    return i.mint(header={"kid": 7})


def token_with_alg_none(i: FakeIssuer) -> str:
    return compact({"alg": "none", "typ": "at+jwt"}, i.claims(), None) + "AAAA"


def token_with_alg_missing(i: FakeIssuer) -> str:
    return i.mint(header={"alg": None})


def token_signed_with_public_key_as_hmac_secret(i: FakeIssuer) -> str:
    return i.mint(alg="HS256")


def token_with_alg_outside_allow_list(i: FakeIssuer) -> str:
    return i.mint(alg="RS512")


def token_with_empty_signature(i: FakeIssuer) -> str:
    head, body, _ = _segments(i.mint())
    return f"{head}.{body}."


def token_with_tampered_payload(i: FakeIssuer) -> str:
    head, _, sig = _segments(i.mint(sub="alice"))
    return f"{head}.{b64url(json.dumps(i.claims(sub='admin')).encode())}.{sig}"


def token_with_truncated_signature(i: FakeIssuer) -> str:
    head, body, sig = _segments(i.mint())
    signature = base64.urlsafe_b64decode(sig + "==")
    return f"{head}.{body}.{b64url(signature[:-5])}"


def token_signed_by_unpublished_key_with_published_kid(i: FakeIssuer) -> str:
    impostor = SigningKey.generate("RS256", kid=i.signing_key.kid)
    return i.mint(key=impostor)


def token_with_unknown_kid(i: FakeIssuer) -> str:
    return i.mint(key=SigningKey.generate("RS256"))


def token_without_kid_several_keys_fit(i: FakeIssuer) -> str:
    i.keys.append(SigningKey.generate("RS256"))
    return i.mint(header={"kid": None})


def token_naming_an_encryption_key(i: FakeIssuer) -> str:
    return i.mint(key=_with_key("RS256", use="enc")(i))


def token_naming_a_key_without_verify_op(i: FakeIssuer) -> str:
    return i.mint(key=_with_key("RS256", use=None, key_ops=["sign"])(i))


def token_es256_header_on_rsa_key(i: FakeIssuer) -> str:
    rsa_key = i.signing_key
    return i.sign(i.claims(), key=i.key_for("ES256"), header={"kid": rsa_key.kid})


def token_es256_on_p384_key(i: FakeIssuer) -> str:
    p384 = _with_key("ES384", alg=None)(i)
    return i.sign(i.claims(), key=p384, header={"alg": "ES256"})


def token_ps256_on_key_declared_rs256(i: FakeIssuer) -> str:
    return i.mint(alg="PS256")


def token_signed_by_1024_bit_rsa_key(i: FakeIssuer) -> str:
    weak = SigningKey.generate("RS256", bits=1024)
    i.keys.append(weak)
    return i.mint(key=weak)


def id_token_sent_as_bearer(i: FakeIssuer) -> str:
    return i.mint_id_token(nonce="n-1", aud=i.audience)


def token_with_typ_id_token_marker(i: FakeIssuer) -> str:
    return i.mint(at_hash="abc")


def logout_token_sent_as_bearer(i: FakeIssuer) -> str:
    return i.mint(header={"typ": "logout+jwt"})


def token_with_unknown_typ(i: FakeIssuer) -> str:
    return i.mint(header={"typ": "dpop+jwt"})


def token_without_exp(i: FakeIssuer) -> str:
    return i.mint(exp=None)


def token_with_exp_as_string(i: FakeIssuer) -> str:
    return i.mint(exp=str(NOW + 3600))


def token_with_exp_as_bool(i: FakeIssuer) -> str:
    return i.mint(exp=True)


def token_expired_beyond_leeway(i: FakeIssuer) -> str:
    return i.mint(exp=NOW - 31)


def token_expiring_exactly_at_leeway(i: FakeIssuer) -> str:
    return i.mint(exp=NOW - 30)


def token_not_yet_valid(i: FakeIssuer) -> str:
    return i.mint(nbf=NOW + 31)


def token_issued_in_the_future(i: FakeIssuer) -> str:
    return i.mint(iat=NOW + 31)


def token_with_nbf_as_string(i: FakeIssuer) -> str:
    return i.mint(nbf="yesterday")


def token_from_another_issuer(i: FakeIssuer) -> str:
    return i.mint(iss="https://evil.example")


def token_with_issuer_trailing_slash(i: FakeIssuer) -> str:
    return i.mint(iss=i.issuer + "/")


def token_without_issuer(i: FakeIssuer) -> str:
    return i.mint(iss=None)


def token_without_audience(i: FakeIssuer) -> str:
    return i.mint(aud=None)


def token_for_another_audience(i: FakeIssuer) -> str:
    return i.mint(aud="https://other-api.example")


def token_with_audience_array_without_ours(i: FakeIssuer) -> str:
    return i.mint(aud=["https://a.example", "https://b.example"])


def token_with_empty_audience_array(i: FakeIssuer) -> str:
    return i.mint(aud=[])


def token_with_numeric_audience(i: FakeIssuer) -> str:
    return i.mint(aud=42)


def token_without_sub(i: FakeIssuer) -> str:
    return i.mint(sub=None)


def token_with_empty_sub(i: FakeIssuer) -> str:
    return i.mint(sub="")


def token_with_numeric_sub(i: FakeIssuer) -> str:
    return i.mint(sub=12345)


BEARER_CASES: list[Any] = [
    # accepted
    pytest.param(valid_rs256, None, id="accept-rs256"),
    pytest.param(valid_es256, None, id="accept-es256"),
    pytest.param(valid_ps256, None, id="accept-ps256"),
    pytest.param(valid_eddsa, None, id="accept-eddsa"),
    pytest.param(valid_typ_jwt, None, id="accept-typ-JWT"),
    pytest.param(valid_typ_absent, None, id="accept-typ-absent"),
    pytest.param(valid_typ_application_at_jwt, None, id="accept-typ-application-at+jwt"),
    pytest.param(valid_audience_in_array, None, id="accept-aud-array"),
    pytest.param(valid_expiring_within_leeway, None, id="accept-exp-within-leeway"),
    pytest.param(valid_nbf_within_leeway, None, id="accept-nbf-within-leeway"),
    pytest.param(valid_iat_within_leeway, None, id="accept-iat-within-leeway"),
    pytest.param(valid_without_kid_single_key, None, id="accept-no-kid-one-key"),
    pytest.param(valid_just_under_size_limit, None, id="accept-just-under-8KiB"),
    # shape and size
    pytest.param(token_over_size_limit, MalformedToken, id="reject-over-8KiB"),
    pytest.param(token_with_two_segments, MalformedToken, id="reject-two-segments"),
    pytest.param(token_with_four_segments, MalformedToken, id="reject-four-segments"),
    pytest.param(token_shaped_like_jwe, MalformedToken, id="reject-jwe"),
    pytest.param(token_with_padded_base64, MalformedToken, id="reject-base64-padding"),
    pytest.param(token_with_standard_base64_alphabet, MalformedToken, id="reject-base64-alphabet"),
    pytest.param(token_with_non_canonical_base64, MalformedToken, id="reject-base64-noncanonical"),
    pytest.param(token_with_whitespace, MalformedToken, id="reject-whitespace"),
    pytest.param(token_with_header_array, MalformedToken, id="reject-header-array"),
    pytest.param(token_with_header_not_json, MalformedToken, id="reject-header-not-json"),
    pytest.param(token_with_duplicate_alg_in_header, MalformedToken, id="reject-duplicate-alg"),
    pytest.param(token_with_duplicate_sub_in_payload, MalformedToken, id="reject-duplicate-sub"),
    pytest.param(token_with_payload_array, MalformedToken, id="reject-payload-array"),
    pytest.param(token_with_crit_header, MalformedToken, id="reject-crit"),
    pytest.param(token_with_kid_not_a_string, MalformedToken, id="reject-kid-not-string"),
    # algorithm
    pytest.param(token_with_alg_none, UnsupportedAlgorithm, id="reject-alg-none"),
    pytest.param(token_with_alg_missing, MalformedToken, id="reject-alg-missing"),
    pytest.param(
        token_signed_with_public_key_as_hmac_secret, UnsupportedAlgorithm, id="reject-hs256-pubkey"
    ),
    pytest.param(token_with_alg_outside_allow_list, UnsupportedAlgorithm, id="reject-alg-rs512"),
    # key selection
    pytest.param(token_with_unknown_kid, KeyNotFound, id="reject-unknown-kid"),
    pytest.param(token_without_kid_several_keys_fit, UnusableKey, id="reject-no-kid-ambiguous"),
    pytest.param(token_naming_an_encryption_key, UnusableKey, id="reject-key-use-enc"),
    pytest.param(token_naming_a_key_without_verify_op, UnusableKey, id="reject-key-ops"),
    pytest.param(token_es256_header_on_rsa_key, UnusableKey, id="reject-kty-mismatch"),
    pytest.param(token_es256_on_p384_key, UnusableKey, id="reject-crv-mismatch"),
    pytest.param(token_ps256_on_key_declared_rs256, UnusableKey, id="reject-jwk-alg-mismatch"),
    pytest.param(token_signed_by_1024_bit_rsa_key, UnusableKey, id="reject-rsa-1024"),
    # signature
    pytest.param(token_with_empty_signature, MalformedToken, id="reject-empty-signature"),
    pytest.param(token_with_tampered_payload, InvalidSignature, id="reject-tampered-payload"),
    pytest.param(token_with_truncated_signature, InvalidSignature, id="reject-truncated-sig"),
    pytest.param(
        token_signed_by_unpublished_key_with_published_kid, InvalidSignature, id="reject-impostor"
    ),
    # token kind
    pytest.param(id_token_sent_as_bearer, WrongTokenType, id="reject-id-token-as-bearer"),
    pytest.param(token_with_typ_id_token_marker, WrongTokenType, id="reject-at_hash-marker"),
    pytest.param(logout_token_sent_as_bearer, WrongTokenType, id="reject-logout+jwt"),
    pytest.param(token_with_unknown_typ, WrongTokenType, id="reject-typ-dpop"),
    # claims
    pytest.param(token_without_exp, ClaimError, id="reject-exp-missing"),
    pytest.param(token_with_exp_as_string, ClaimError, id="reject-exp-string"),
    pytest.param(token_with_exp_as_bool, ClaimError, id="reject-exp-bool"),
    pytest.param(token_expired_beyond_leeway, ExpiredToken, id="reject-expired"),
    pytest.param(token_expiring_exactly_at_leeway, ExpiredToken, id="reject-exp-boundary"),
    pytest.param(token_not_yet_valid, ClaimError, id="reject-nbf-future"),
    pytest.param(token_with_nbf_as_string, ClaimError, id="reject-nbf-string"),
    pytest.param(token_issued_in_the_future, ClaimError, id="reject-iat-future"),
    pytest.param(token_from_another_issuer, ClaimError, id="reject-iss-foreign"),
    pytest.param(token_with_issuer_trailing_slash, ClaimError, id="reject-iss-trailing-slash"),
    pytest.param(token_without_issuer, ClaimError, id="reject-iss-missing"),
    pytest.param(token_without_audience, ClaimError, id="reject-aud-missing"),
    pytest.param(token_for_another_audience, InvalidAudience, id="reject-aud-other"),
    pytest.param(token_with_audience_array_without_ours, InvalidAudience, id="reject-aud-array"),
    pytest.param(token_with_empty_audience_array, ClaimError, id="reject-aud-empty-array"),
    pytest.param(token_with_numeric_audience, ClaimError, id="reject-aud-number"),
    pytest.param(token_without_sub, ClaimError, id="reject-sub-missing"),
    pytest.param(token_with_empty_sub, ClaimError, id="reject-sub-empty"),
    pytest.param(token_with_numeric_sub, ClaimError, id="reject-sub-number"),
]


def make_guard(issuer: FakeIssuer, clock: FakeClock, **settings: Any) -> OIDCGuard:
    return OIDCGuard(
        issuer=issuer.issuer,
        audience=issuer.audience,
        client_id=issuer.client_id,
        transport=issuer.transport,
        clock=clock,
        **settings,
    )


def test_table_is_mostly_rejections() -> None:
    rejections = sum(1 for case in BEARER_CASES if case.values[1] is not None)
    assert rejections * 2 >= len(BEARER_CASES)


@pytest.mark.parametrize(("build", "expected"), BEARER_CASES)
async def test_bearer_token(
    build: Builder, expected: type[InvalidToken] | None, issuer: FakeIssuer, clock: FakeClock
) -> None:
    token = build(issuer)
    guard = make_guard(issuer, clock)
    try:
        if expected is None:
            claims = await guard.verifier.verify_access_token(token)
            assert claims["iss"] == issuer.issuer
        else:
            with pytest.raises(expected):
                await guard.verifier.verify_access_token(token)
    finally:
        await guard.aclose()


# -- ID tokens (login) -------------------------------------------------------------------------


def _at_hash(access_token: str) -> str:
    import hashlib

    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


ID_CASES: list[Any] = [
    pytest.param({}, None, id="accept-id-token"),
    pytest.param({"at_hash": _at_hash("access-1")}, None, id="accept-at_hash"),
    pytest.param({"aud": ["test-client", "x"], "azp": "test-client"}, None, id="accept-azp"),
    pytest.param({"nonce": "other"}, ClaimError, id="reject-nonce-mismatch"),
    pytest.param({"nonce": None}, ClaimError, id="reject-nonce-missing"),
    pytest.param({"at_hash": _at_hash("access-2")}, ClaimError, id="reject-at_hash-mismatch"),
    pytest.param({"aud": ["test-client", "x"]}, ClaimError, id="reject-multi-aud-without-azp"),
    pytest.param({"azp": "someone-else"}, ClaimError, id="reject-azp-mismatch"),
    pytest.param({"aud": "https://api.example.test"}, InvalidAudience, id="reject-aud-not-client"),
    pytest.param({"iat": None}, ClaimError, id="reject-iat-missing"),
    pytest.param({"header": {"typ": "at+jwt"}}, WrongTokenType, id="reject-access-token-as-id"),
    pytest.param({"pad": "x" * 17 * 1024}, MalformedToken, id="reject-over-16KiB"),
]


@pytest.mark.parametrize(("overrides", "expected"), ID_CASES)
async def test_id_token(
    overrides: dict[str, Any],
    expected: type[InvalidToken] | None,
    issuer: FakeIssuer,
    clock: FakeClock,
) -> None:
    header = overrides.pop("header", {"typ": "JWT"})
    claims = issuer.claims(aud=issuer.client_id, scope=None, nonce="nonce-1")
    claims.update(overrides)
    token = issuer.sign({k: v for k, v in claims.items() if v is not None}, header=header)
    guard = make_guard(issuer, clock)
    try:
        if expected is None:
            verified = await guard.verifier.verify_id_token(
                token, nonce="nonce-1", access_token="access-1"
            )
            assert verified["sub"] == "user-1"
        else:
            with pytest.raises(expected):
                await guard.verifier.verify_id_token(
                    token, nonce="nonce-1", access_token="access-1"
                )
    finally:
        await guard.aclose()


async def test_id_token_accepts_up_to_16kib(issuer: FakeIssuer, clock: FakeClock) -> None:
    token = issuer.sign(
        issuer.claims(aud=issuer.client_id, pad="x" * 10_000), header={"typ": "JWT"}
    )
    guard = make_guard(issuer, clock)
    assert len(token) > 8 * 1024
    assert (await guard.verifier.verify_id_token(token, nonce=None))["sub"] == "user-1"
    await guard.aclose()


async def test_bearer_refused_when_no_audience_configured(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = OIDCGuard(issuer=issuer.issuer, transport=issuer.transport, clock=clock)
    with pytest.raises(InvalidToken, match="no audience"):
        await guard.verifier.verify_access_token(issuer.mint())
    assert issuer.requests["jwks"] == 0


# -- the verified-token cache ------------------------------------------------------------------


async def test_cached_token_still_expires(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard = make_guard(issuer, clock)
    token = issuer.mint(exp=NOW + 60)
    await guard.verifier.verify_access_token(token)
    await guard.verifier.verify_access_token(token)  # served from the cache
    clock.advance(120)
    with pytest.raises(ExpiredToken):
        await guard.verifier.verify_access_token(token)
    await guard.aclose()


async def test_cache_purged_when_key_is_removed(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard = make_guard(issuer, clock, jwks_max_age=60, jwks_min_max_age=60)
    old = issuer.signing_key
    token = issuer.mint(exp=NOW + 7200)
    await guard.verifier.verify_access_token(token)
    issuer.rotate()
    issuer.retire(old.kid)
    clock.advance(61)
    await guard.verifier.verify_access_token(token)  # still cached; starts a background refresh
    await guard.keys.get_key(kid=issuer.signing_key.kid, alg="RS256")  # joins the refresh
    with pytest.raises(KeyNotFound):
        await guard.verifier.verify_access_token(token)
    await guard.aclose()
