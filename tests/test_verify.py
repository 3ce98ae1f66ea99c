"""The verifier table: every verification rule (docs/architecture.md, "where each rule
lives"), most rows a rejection, run on the verifier itself over a static key set.

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
    GuardConfig,
    InvalidAudience,
    InvalidSignature,
    InvalidToken,
    KeyNotFound,
    MalformedToken,
    OIDCGuard,
    StaticKeySet,
    UnsupportedAlgorithm,
    UnusableKey,
    WrongTokenType,
)
from fastapi_oidc_guard.issuers import build_verifier
from fastapi_oidc_guard.jose import parse_jwks
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer, SigningKey
from fastapi_oidc_guard.testing._keys import b64url, compact
from fastapi_oidc_guard.verify import BACKCHANNEL_LOGOUT_EVENT

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
    return i.mint(at_hash="abc", header={"typ": "JWT"})


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


# -- builders added by the mutation review ---------------------------------------------------


def _sized(i: FakeIssuer, length: int) -> str:
    """A valid RS256 token of exactly ``length`` characters (padding claim and header tuned)."""
    base = len(i.mint(pad=""))
    for extra in range(4):  # an unpadded base64url segment cannot have every length
        header = {"x": "y" * extra} if extra else None
        for n in range(max(0, (length - base) * 3 // 4 - 8), (length - base) * 3 // 4 + 8):
            token = i.mint(pad="x" * n, header=header)
            if len(token) == length:
                return token
    raise AssertionError(f"cannot build a token of {length} characters")


def valid_exactly_at_size_limit(i: FakeIssuer) -> str:
    return _sized(i, 8 * 1024)


def token_one_byte_over_size_limit(i: FakeIssuer) -> str:
    return _sized(i, 8 * 1024 + 1)


def token_with_non_canonical_signature(i: FakeIssuer) -> str:
    # An RS256 signature is 256 bytes: 342 characters, the last one carrying 2 data bits. Setting
    # a spare low bit decodes to the same bytes, so only the canonical check can reject it.
    head, body, sig = _segments(i.mint())
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(sig) % 4 == 2
    return f"{head}.{body}.{sig[:-1]}{alphabet[alphabet.index(sig[-1]) ^ 1]}"


def token_with_nan_in_payload(i: FakeIssuer) -> str:
    return i.sign(json.dumps(i.claims())[:-1].encode() + b', "x": NaN}')


def token_with_huge_integer_exp(i: FakeIssuer) -> str:
    claims = json.dumps(i.claims(exp=None))[:-1]
    return i.sign(claims.encode() + b', "exp": 1' + b"0" * 400 + b"}")


def token_with_alg_not_a_string(i: FakeIssuer) -> str:
    key = i.signing_key
    header = {"alg": ["RS256"], "kid": key.kid, "typ": "at+jwt"}
    return compact(header, i.claims(), key, alg="RS256")


def token_with_typ_null(i: FakeIssuer) -> str:
    key = i.signing_key
    return compact({"alg": "RS256", "kid": key.kid, "typ": None}, i.claims(), key)


def valid_rsa_jwk_without_alg(i: FakeIssuer) -> str:
    i.signing_key.jwk_extra["alg"] = None  # many providers omit the optional JWK "alg"
    return i.mint()


def token_naming_a_key_with_key_ops_string(i: FakeIssuer) -> str:
    return i.mint(key=_with_key("RS256", use=None, key_ops="verify")(i))


def token_signed_by_2047_bit_rsa_key(i: FakeIssuer) -> str:
    weak = SigningKey.generate("RS256", bits=2047)
    i.keys.append(weak)
    return i.mint(key=weak)


def token_naming_a_kid_shared_by_two_keys(i: FakeIssuer) -> str:
    i.keys.append(SigningKey.generate("RS256", kid=i.signing_key.kid))
    return i.mint()


def _tampered(token: str, i: FakeIssuer) -> str:
    head, _, sig = _segments(token)
    return f"{head}.{b64url(json.dumps(i.claims(sub='admin')).encode())}.{sig}"


def token_ps256_with_tampered_payload(i: FakeIssuer) -> str:
    return _tampered(valid_ps256(i), i)


def token_eddsa_with_tampered_payload(i: FakeIssuer) -> str:
    return _tampered(valid_eddsa(i), i)


def token_with_c_hash_marker(i: FakeIssuer) -> str:
    return i.mint(c_hash="abc", header={"typ": "JWT"})


def logout_token_with_typ_jwt_sent_as_bearer(i: FakeIssuer) -> str:
    return i.mint(header={"typ": "JWT"}, events={BACKCHANNEL_LOGOUT_EVENT: {}}, jti="j1")


def token_with_nbf_as_bool(i: FakeIssuer) -> str:
    return i.mint(nbf=True)


def token_with_iat_as_bool(i: FakeIssuer) -> str:
    return i.mint(iat=False)


def token_with_infinite_exp(i: FakeIssuer) -> str:
    claims = json.dumps(i.claims(exp=None))[:-1]
    return i.sign(claims.encode() + b', "exp": 1e400}')  # JSON-valid, parses to float("inf")


def token_for_audience_with_our_prefix(i: FakeIssuer) -> str:
    return i.mint(aud=i.audience + ".evil.example")


def token_with_audience_array_holding_a_number(i: FakeIssuer) -> str:
    return i.mint(aud=[i.audience, 42])


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
    # added by the mutation review
    pytest.param(valid_exactly_at_size_limit, None, id="accept-exactly-8KiB"),
    pytest.param(token_one_byte_over_size_limit, MalformedToken, id="reject-8KiB-plus-1"),
    pytest.param(token_with_non_canonical_signature, MalformedToken, id="reject-sig-noncanonical"),
    pytest.param(token_with_nan_in_payload, MalformedToken, id="reject-json-nan"),
    pytest.param(token_with_huge_integer_exp, ClaimError, id="reject-exp-huge-integer"),
    pytest.param(token_with_alg_not_a_string, MalformedToken, id="reject-alg-not-string"),
    pytest.param(token_with_typ_null, MalformedToken, id="reject-typ-null"),
    pytest.param(valid_rsa_jwk_without_alg, None, id="accept-jwk-without-alg"),
    pytest.param(token_naming_a_key_with_key_ops_string, UnusableKey, id="reject-key-ops-string"),
    pytest.param(token_signed_by_2047_bit_rsa_key, UnusableKey, id="reject-rsa-2047"),
    pytest.param(token_naming_a_kid_shared_by_two_keys, UnusableKey, id="reject-kid-shared"),
    pytest.param(token_ps256_with_tampered_payload, InvalidSignature, id="reject-tampered-ps256"),
    pytest.param(token_eddsa_with_tampered_payload, InvalidSignature, id="reject-tampered-eddsa"),
    pytest.param(token_with_c_hash_marker, WrongTokenType, id="reject-c_hash-marker"),
    pytest.param(
        logout_token_with_typ_jwt_sent_as_bearer, WrongTokenType, id="reject-events-marker"
    ),
    pytest.param(token_with_nbf_as_bool, ClaimError, id="reject-nbf-bool"),
    pytest.param(token_with_iat_as_bool, ClaimError, id="reject-iat-bool"),
    pytest.param(token_with_infinite_exp, ClaimError, id="reject-exp-infinite"),
    pytest.param(token_for_audience_with_our_prefix, InvalidAudience, id="reject-aud-prefix"),
    pytest.param(
        token_with_audience_array_holding_a_number, ClaimError, id="reject-aud-array-number"
    ),
]


class VerifierSeam:
    """The verifier alone on a static key set (the issuer's JWKS as it is when built): the rules
    are tested where they live, without HTTP, discovery or a guard (go-oidc's style). The key
    set's own policy is tested on ``RemoteKeySet`` in test_jwks.py."""

    def __init__(self, issuer: FakeIssuer, clock: FakeClock, **settings: Any) -> None:
        options: dict[str, Any] = {
            "issuer": issuer.issuer, "audience": issuer.audience,
            "client_id": issuer.client_id, "clock": clock, **settings,
        }  # fmt: skip
        cfg = GuardConfig(**options)
        keys = StaticKeySet(parse_jwks(issuer.jwks(), cfg.algorithms))
        self.verifier = build_verifier(
            cfg, issuer=cfg.issuer, audience=cfg.audience, client_id=cfg.client_id, keys=keys
        )

    async def aclose(self) -> None:
        """Nothing to close: no client, no background refresh."""


def make_guard(issuer: FakeIssuer, clock: FakeClock, **settings: Any) -> VerifierSeam:
    return VerifierSeam(issuer, clock, **settings)


def make_app_guard(issuer: FakeIssuer, clock: FakeClock, **settings: Any) -> OIDCGuard:
    """A whole guard, for what crosses the key set's HTTP side or builds the user model."""
    options: dict[str, Any] = {
        "issuer": issuer.issuer,
        "audience": issuer.audience,
        "client_id": issuer.client_id,
        "transport": issuer.transport,
        "clock": clock,
    }
    options.update(settings)
    return OIDCGuard(**options)


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


# -- token kind: ID tokens are never bearer tokens (issue #11, case 1) ------------------------


def _jwt(i: FakeIssuer, **claims: Any) -> str:
    return i.mint(header={"typ": "JWT"}, **claims)


def id_token_from_a_refresh_for_the_api_audience(i: FakeIssuer) -> str:
    """No nonce, no at_hash (Okta, Auth0 at refresh), aud = the client id = the API here."""
    return i.sign(i.claims(aud=i.client_id, scope=None, auth_time=NOW - 60),
                  header={"typ": "JWT"})  # fmt: skip


def id_token_with_nonce_for_the_api_audience(i: FakeIssuer) -> str:
    return i.mint_id_token(nonce="n-1")


def id_token_without_typ_for_the_api_audience(i: FakeIssuer) -> str:
    return i.sign(i.claims(aud=i.client_id, scope=None), header={"typ": None})


def keycloak_id_token(i: FakeIssuer) -> str:
    return _jwt(i, typ="ID", azp=i.client_id)


def cognito_id_token(i: FakeIssuer) -> str:
    return _jwt(i, token_use="id")


def keycloak_access_token_with_nonce(i: FakeIssuer) -> str:
    return _jwt(i, typ="Bearer", nonce="n-1", azp="web", aud=[i.audience, "account"])


def cognito_access_token(i: FakeIssuer) -> str:
    return _jwt(i, token_use="access", scope=None, client_id="web")


def at_jwt_carrying_nonce(i: FakeIssuer) -> str:
    return i.mint(nonce="n-1")


def entra_one_registration_token(i: FakeIssuer) -> str:
    """Entra ID v2: one app registration is both client and API: aud = client id, scp."""
    return _jwt(i, aud=i.client_id, scope=None, scp="access_as_user", azp=i.client_id)


def lemonldap_access_token(i: FakeIssuer) -> str:
    return _jwt(i, aud=[i.client_id, i.audience], client_id=i.client_id, jti="j-1")


def at_jwt_for_the_client_id_without_scope(i: FakeIssuer) -> str:
    return i.mint(aud=i.client_id, scope=None)


def token_with_scope_array(i: FakeIssuer) -> str:
    return i.mint(scope=["read:a", "write:b"])


# The app's API audience is its own client id here (one registration: Entra, Google, Keycloak).
ONE_REGISTRATION_CASES: list[Any] = [
    pytest.param(id_token_from_a_refresh_for_the_api_audience, WrongTokenType,
                 id="reject-id-token-from-refresh"),
    pytest.param(id_token_with_nonce_for_the_api_audience, WrongTokenType,
                 id="reject-id-token-with-nonce"),
    pytest.param(id_token_without_typ_for_the_api_audience, WrongTokenType,
                 id="reject-id-token-no-typ"),
    pytest.param(keycloak_id_token, WrongTokenType, id="reject-keycloak-typ-ID"),
    pytest.param(cognito_id_token, WrongTokenType, id="reject-cognito-token_use-id"),
    pytest.param(entra_one_registration_token, None, id="accept-entra-scp"),
    pytest.param(lemonldap_access_token, None, id="accept-lemonldap"),
    pytest.param(at_jwt_for_the_client_id_without_scope, None, id="accept-at+jwt-marker"),
]  # fmt: skip

KIND_CASES: list[Any] = [
    pytest.param(keycloak_id_token, WrongTokenType, id="reject-keycloak-typ-ID"),
    pytest.param(cognito_id_token, WrongTokenType, id="reject-cognito-token_use-id"),
    *(pytest.param(lambda i, p=p: i.mint(header={p: "x"}), MalformedToken, id=f"reject-jwe-{p}")
      for p in ("zip", "enc", "epk", "apu", "apv", "iv", "tag", "p2s", "p2c")),
    pytest.param(keycloak_access_token_with_nonce, None, id="accept-keycloak-Bearer-with-nonce"),
    pytest.param(cognito_access_token, None, id="accept-cognito-token_use-access"),
    pytest.param(at_jwt_carrying_nonce, None, id="accept-at+jwt-wins-over-nonce"),
    pytest.param(lemonldap_access_token, None, id="accept-lemonldap"),
    pytest.param(token_with_scope_array, None, id="accept-scope-array"),
    pytest.param(lambda i: i.mint(exp=10**15), ClaimError, id="reject-exp-year-31-million"),
    pytest.param(lambda i: i.mint(iat=-1), ClaimError, id="reject-iat-negative"),
    pytest.param(lambda i: i.mint(nbf=-5.5), ClaimError, id="reject-nbf-negative"),
]  # fmt: skip


async def _expect(guard: VerifierSeam, token: str, expected: type[InvalidToken] | None) -> None:
    """Verify ``token`` as a bearer token: accepted when ``expected`` is None, else refused."""
    try:
        if expected is None:
            assert (await guard.verifier.verify_access_token(token))["sub"] == "user-1"
        else:
            with pytest.raises(expected):
                await guard.verifier.verify_access_token(token)
    finally:
        await guard.aclose()


@pytest.mark.parametrize(("build", "expected"), KIND_CASES)
async def test_token_kind(
    build: Builder, expected: type[InvalidToken] | None, issuer: FakeIssuer, clock: FakeClock
) -> None:
    token = build(issuer)  # before the static key set is taken: a builder may add keys
    await _expect(make_guard(issuer, clock), token, expected)


@pytest.mark.parametrize(("build", "expected"), ONE_REGISTRATION_CASES)
async def test_one_registration_token_kind(
    build: Builder, expected: type[InvalidToken] | None, issuer: FakeIssuer, clock: FakeClock
) -> None:
    """Attack: with ``audience`` = the client id, an ID token (from a refresh: no nonce, no
    at_hash) is presented as a bearer token. Real one-registration access tokens still pass."""
    issuer.audience = issuer.client_id
    token = build(issuer)
    await _expect(make_guard(issuer, clock, audience=issuer.client_id), token, expected)


@pytest.mark.parametrize(
    ("build", "expected"),
    [pytest.param(valid_typ_jwt, WrongTokenType, id="reject-typ-JWT"),
     pytest.param(keycloak_access_token_with_nonce, WrongTokenType, id="reject-keycloak-Bearer"),
     pytest.param(valid_typ_absent, WrongTokenType, id="reject-typ-absent"),
     pytest.param(valid_rs256, None, id="accept-at+jwt")],
)  # fmt: skip
async def test_strict_rfc9068_accepts_only_at_jwt(
    build: Builder, expected: type[InvalidToken] | None, issuer: FakeIssuer, clock: FakeClock
) -> None:
    guard = make_guard(issuer, clock, require_at_jwt=True)
    try:
        if expected is None:
            await guard.verifier.verify_access_token(build(issuer))
        else:
            with pytest.raises(expected):
                await guard.verifier.verify_access_token(build(issuer))
    finally:
        await guard.aclose()


async def test_scope_array_is_read_like_scp(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard = make_app_guard(issuer, clock)
    try:
        user = await guard.user_from_token(token_with_scope_array(issuer))
        assert user.scopes == {"read:a", "write:b"}
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


async def test_verified_claims_handed_out_are_a_copy(issuer: FakeIssuer, clock: FakeClock) -> None:
    """Attack: a caller of ``verify_access_token`` edits the claims it got (``aud``, ``scope``,
    ``exp``); the cache serves the next verification of the same token unchanged."""
    guard = make_guard(issuer, clock)
    token = issuer.mint(scope="read", exp=NOW + 60)
    claims = await guard.verifier.verify_access_token(token)
    claims.update(scope="read admin", aud="someone-else", exp=NOW + 10**6)
    again = await guard.verifier.verify_access_token(token)
    assert (again["scope"], again["aud"], again["exp"]) == ("read", issuer.audience, NOW + 60)
    clock.advance(120)
    with pytest.raises(ExpiredToken):
        await guard.verifier.verify_access_token(token)
    await guard.aclose()


async def test_cache_purged_when_key_is_removed(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard = make_app_guard(issuer, clock, jwks_max_age=60, jwks_min_max_age=60)
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


async def test_at_hash_uses_the_hash_of_the_signing_alg(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    import hashlib

    eddsa = _with_key("EdDSA")(issuer)
    digest = hashlib.sha512(b"access-1").digest()  # EdDSA (Ed25519): SHA-512, left half
    at_hash = base64.urlsafe_b64encode(digest[:32]).rstrip(b"=").decode()
    claims = issuer.claims(aud=issuer.client_id, scope=None, at_hash=at_hash)
    token = issuer.sign(claims, key=eddsa, header={"typ": "JWT"})
    guard = make_guard(issuer, clock)
    verified = await guard.verifier.verify_id_token(token, nonce=None, access_token="access-1")
    assert verified["at_hash"] == at_hash
    await guard.aclose()


async def test_non_ascii_at_hash_is_an_invalid_token(issuer: FakeIssuer, clock: FakeClock) -> None:
    claims = issuer.claims(aud=issuer.client_id, scope=None, at_hash="\u00e9t\u00e9")
    token = issuer.sign(claims, header={"typ": "JWT"})
    guard = make_guard(issuer, clock)
    with pytest.raises(ClaimError):
        await guard.verifier.verify_id_token(token, nonce=None, access_token="access-1")
    await guard.aclose()


LOGOUT_CASES: list[Any] = [
    pytest.param({}, None, id="accept-logout-token"),
    pytest.param({"sub": None}, None, id="accept-sid-only"),
    pytest.param({"sid": None}, None, id="accept-sub-only"),
    pytest.param({"jti": None}, ClaimError, id="reject-jti-missing"),
    pytest.param({"events": None}, ClaimError, id="reject-events-missing"),
    pytest.param(
        {"events": {BACKCHANNEL_LOGOUT_EVENT: "yes"}}, ClaimError, id="reject-event-not-object"
    ),
    pytest.param({"events": {"http://other/event": {}}}, ClaimError, id="reject-other-event"),
    pytest.param({"nonce": "n-1"}, ClaimError, id="reject-nonce-present"),
    pytest.param({"sid": None, "sub": None}, ClaimError, id="reject-neither-sid-nor-sub"),
    pytest.param({"iat": None}, ClaimError, id="reject-logout-iat-missing"),
    pytest.param({"aud": "https://api.example.test"}, InvalidAudience, id="reject-logout-aud"),
    pytest.param({"header": {"typ": "at+jwt"}}, WrongTokenType, id="reject-access-token-as-logout"),
]


@pytest.mark.parametrize(("overrides", "expected"), LOGOUT_CASES)
async def test_logout_token(
    overrides: dict[str, Any],
    expected: type[InvalidToken] | None,
    issuer: FakeIssuer,
    clock: FakeClock,
) -> None:
    header = overrides.pop("header", {"typ": "logout+jwt"})
    claims = issuer.claims(
        aud=issuer.client_id, scope=None, jti="logout-1", sid="session-1",
        events={BACKCHANNEL_LOGOUT_EVENT: {}},
    )  # fmt: skip
    claims.update(overrides)
    token = issuer.sign({k: v for k, v in claims.items() if v is not None}, header=header)
    guard = make_guard(issuer, clock)
    try:
        if expected is None:
            verified = await guard.verifier.verify_logout_token(token)
            assert verified["jti"] == "logout-1"
        else:
            with pytest.raises(expected):
                await guard.verifier.verify_logout_token(token)
    finally:
        await guard.aclose()


async def test_cache_hit_needs_the_whole_token(issuer: FakeIssuer, clock: FakeClock) -> None:
    guard = make_guard(issuer, clock)
    token = issuer.mint(sub="alice")
    await guard.verifier.verify_access_token(token)  # now cached
    with pytest.raises(InvalidSignature):  # same header and signature, other payload
        await guard.verifier.verify_access_token(_tampered(token, issuer))
    await guard.aclose()


def test_verified_token_cache_is_bounded() -> None:
    from fastapi_oidc_guard._cache import CacheEntry, VerifiedTokenCache, token_digest

    cache = VerifiedTokenCache(2)
    for n in range(3):
        cache.put(token_digest(f"token-{n}"), CacheEntry(0, {"n": n}, (0.0, None, None)))
    assert len(cache) == 2
    assert cache.get(token_digest("token-0"), generation=0) is None  # least recently used
    entry = cache.get(token_digest("token-2"), generation=0)
    assert entry is not None and entry.claims == {"n": 2}
