"""DPoP (RFC 9449) on the resource-server side: one row per rule of section 4.3 and 7.1,
rejections first, then what is accepted, the modes, a route that requires DPoP, and replay
across two instances sharing one real Redis.

Every rejection is a 401 with a ``DPoP`` challenge (``algs``), never a 500, never a user."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from fastapi_oidc_guard import OIDCGuard, User, require_dpop, require_user
from fastapi_oidc_guard.dpop import normalize_url, thumbprint
from fastapi_oidc_guard.testing import DPoPKey, FakeClock, FakeIssuer, SigningKey

from .redis_server import RedisServer

URL = "http://testserver/api/me"
ALGS = "ES256 PS256 RS256 EdDSA"


def api(issuer: FakeIssuer, clock: FakeClock, **settings: Any) -> FastAPI:
    guard = OIDCGuard(
        issuer=issuer.issuer, audience=issuer.audience, transport=issuer.transport, clock=clock,
        **settings,
    )  # fmt: skip
    app = FastAPI(lifespan=guard.lifespan)
    guard.install(app)

    @app.api_route("/api/me", methods=["GET", "POST"])
    async def me(user: User = Depends(require_user)) -> dict[str, Any]:
        return {"sub": user.sub, "by": user.authenticated_by}

    @app.get("/api/strict")
    async def strict(user: User = Depends(require_dpop)) -> dict[str, Any]:
        return {"sub": user.sub, "by": user.authenticated_by}

    return app


@pytest.fixture
def key(clock: FakeClock) -> DPoPKey:
    return DPoPKey(clock=clock)


@pytest.fixture
def client(issuer: FakeIssuer, clock: FakeClock) -> Any:
    with TestClient(api(issuer, clock)) as test_client:
        yield test_client


def bound(issuer: FakeIssuer, key: DPoPKey, **claims: Any) -> str:
    return issuer.mint(cnf={"jkt": key.jkt}, **claims)


def b64(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


Case = Callable[[FakeIssuer, DPoPKey, FakeClock], tuple[str, list[tuple[str, str]]]]


def with_proof(make: Callable[[FakeIssuer, DPoPKey, FakeClock, str], str], **token: Any) -> Case:
    """A request with a bound token and the proof ``make`` builds for it."""

    def case(
        issuer: FakeIssuer, key: DPoPKey, clock: FakeClock
    ) -> tuple[str, list[tuple[str, str]]]:
        access = bound(issuer, key, **token)
        return "GET", [
            ("Authorization", f"DPoP {access}"),
            ("DPoP", make(issuer, key, clock, access)),
        ]

    return case


OTHER = DPoPKey()
RSA_KEY = SigningKey.generate("RS256")
HMAC = SigningKey.generate("HS256")

# (case, the request, the error code)
REFUSED: dict[str, tuple[Case, str]] = {
    "no DPoP header": (
        lambda i, k, c: ("GET", [("Authorization", f"DPoP {bound(i, k)}")]),
        "invalid_dpop_proof",
    ),
    "two DPoP headers": (
        lambda i, k, c: (
            "GET",
            [
                ("Authorization", f"DPoP {(t := bound(i, k))}"),
                ("DPoP", k.proof("GET", URL, t)),
                ("DPoP", k.proof("GET", URL, t)),
            ],
        ),
        "invalid_dpop_proof",
    ),
    "not a JWS": (with_proof(lambda i, k, c, t: "not.a-proof"), "invalid_dpop_proof"),
    "JWE shaped": (with_proof(lambda i, k, c, t: "a.b.c.d.e"), "invalid_dpop_proof"),
    "oversized": (
        with_proof(lambda i, k, c, t: k.proof("GET", URL, t, pad="x" * 9000)),
        "invalid_dpop_proof",
    ),
    "typ JWT": (
        with_proof(lambda i, k, c, t: k.proof("GET", URL, t, header={"typ": "JWT"})),
        "invalid_dpop_proof",
    ),
    "typ missing": (
        with_proof(lambda i, k, c, t: k.proof("GET", URL, t, header={"typ": None})),
        "invalid_dpop_proof",
    ),
    "alg none": (
        with_proof(
            lambda i, k, c, t: (
                k.proof("GET", URL, t)
                .rsplit(".", 1)[0]
                .replace(
                    k.proof("GET", URL, t).split(".")[0],
                    b64({"typ": "dpop+jwt", "alg": "none", "jwk": k.public_jwk}),
                )
                + "."
            )
        ),
        "invalid_dpop_proof",
    ),
    "alg HS256 with the jwk as secret": (
        with_proof(
            lambda i, k, c, t: k.proof(
                "GET",
                URL,
                t,
                header={"alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}},
                signing_key=HMAC,
            )
        ),
        "invalid_dpop_proof",
    ),
    "alg outside the allow-list": (
        with_proof(lambda i, k, c, t: DPoPKey("ES384", clock=c).proof("GET", URL, t)),
        "invalid_dpop_proof",
    ),
    "jwk missing": (
        with_proof(lambda i, k, c, t: k.proof("GET", URL, t, header={"jwk": None})),
        "invalid_dpop_proof",
    ),
    "jwk not an object": (
        with_proof(lambda i, k, c, t: k.proof("GET", URL, t, header={"jwk": "x"})),
        "invalid_dpop_proof",
    ),
    "jwk with its private key": (
        with_proof(
            lambda i, k, c, t: k.proof("GET", URL, t, header={"jwk": {**k.public_jwk, "d": "AAAA"}})
        ),
        "invalid_dpop_proof",
    ),
    "jwk of another type than alg": (
        with_proof(
            lambda i, k, c, t: k.proof(
                "GET",
                URL,
                t,
                header={
                    "jwk": {
                        k2: v for k2, v in RSA_KEY.public_jwk().items() if k2 in ("kty", "n", "e")
                    }
                },
            )
        ),
        "invalid_dpop_proof",
    ),
    "signed by another key": (
        with_proof(lambda i, k, c, t: k.proof("GET", URL, t, signing_key=OTHER.key)),
        "invalid_dpop_proof",
    ),
    "crit header": (
        with_proof(lambda i, k, c, t: k.proof("GET", URL, t, header={"crit": ["x"]})),
        "invalid_dpop_proof",
    ),
    "jti missing": (
        with_proof(lambda i, k, c, t: k.proof("GET", URL, t, jti=None)),
        "invalid_dpop_proof",
    ),
    "jti not a string": (
        with_proof(lambda i, k, c, t: k.proof("GET", URL, t, jti=7)),
        "invalid_dpop_proof",
    ),
    "htm of another method": (
        with_proof(lambda i, k, c, t: k.proof("POST", URL, t)),
        "invalid_dpop_proof",
    ),
    "htm in lower case": (
        with_proof(lambda i, k, c, t: k.proof("get", URL, t)),
        "invalid_dpop_proof",
    ),
    "htu of another path": (
        with_proof(lambda i, k, c, t: k.proof("GET", "http://testserver/api/other", t)),
        "invalid_dpop_proof",
    ),
    "htu of another host": (
        with_proof(lambda i, k, c, t: k.proof("GET", "http://evil.example/api/me", t)),
        "invalid_dpop_proof",
    ),
    "htu with userinfo": (
        with_proof(lambda i, k, c, t: k.proof("GET", "http://x@testserver/api/me", t)),
        "invalid_dpop_proof",
    ),
    "htu not a URL": (
        with_proof(lambda i, k, c, t: k.proof("GET", "/api/me", t)),
        "invalid_dpop_proof",
    ),
    "iat too old": (
        with_proof(lambda i, k, c, t: k.proof("GET", URL, t, iat=int(c()) - 331)),
        "invalid_dpop_proof",
    ),
    "iat in the future": (
        with_proof(lambda i, k, c, t: k.proof("GET", URL, t, iat=int(c()) + 31)),
        "invalid_dpop_proof",
    ),
    "iat missing": (
        with_proof(lambda i, k, c, t: k.proof("GET", URL, t, iat=None)),
        "invalid_dpop_proof",
    ),
    "iat a string": (
        with_proof(lambda i, k, c, t: k.proof("GET", URL, t, iat=str(int(c())))),
        "invalid_dpop_proof",
    ),
    "iat huge": (
        with_proof(lambda i, k, c, t: k.proof("GET", URL, t, iat=10**400)),
        "invalid_dpop_proof",
    ),
    "ath missing": (with_proof(lambda i, k, c, t: k.proof("GET", URL, None)), "invalid_dpop_proof"),
    "ath of another token": (
        with_proof(lambda i, k, c, t: k.proof("GET", URL, i.mint())),
        "invalid_dpop_proof",
    ),
    "an unbound token with the DPoP scheme": (
        lambda i, k, c: (
            "GET",
            [("Authorization", f"DPoP {(t := i.mint())}"), ("DPoP", k.proof("GET", URL, t))],
        ),
        "invalid_token",
    ),
    "a token bound to another key": (
        lambda i, k, c: (
            "GET",
            [("Authorization", f"DPoP {(t := bound(i, OTHER))}"), ("DPoP", k.proof("GET", URL, t))],
        ),
        "invalid_token",
    ),
    "a bound token as Bearer": (
        lambda i, k, c: ("GET", [("Authorization", f"Bearer {bound(i, k)}")]),
        "invalid_token",
    ),
    "a token bound by mTLS (cnf x5t#S256) as Bearer": (
        lambda i, k, c: ("GET", [("Authorization", f"Bearer {i.mint(cnf={'x5t#S256': 'abc'})}")]),
        "invalid_token",
    ),
    "an expired bound token with a good proof": (
        with_proof(lambda i, k, c, t: k.proof("GET", URL, t), exp=1),
        "invalid_token",
    ),
    "a bound token of another audience": (
        with_proof(lambda i, k, c, t: k.proof("GET", URL, t), aud="https://other.example"),
        "invalid_token",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_proof_breaking_a_rule_is_refused(
    client: TestClient, issuer: FakeIssuer, key: DPoPKey, clock: FakeClock, case: str
) -> None:
    make, error = REFUSED[case]
    method, headers = make(issuer, key, clock)
    response = client.request(method, "/api/me", headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == error
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(f'DPoP error="{error}", error_description="')
    assert f'algs="{ALGS}"' in challenge


def test_a_replayed_proof_is_refused(client: TestClient, issuer: FakeIssuer, key: DPoPKey) -> None:
    token = bound(issuer, key)
    headers = key.headers("GET", URL, token)
    assert client.get("/api/me", headers=headers).json() == {"sub": "user-1", "by": "dpop"}
    again = client.get("/api/me", headers=headers)
    assert again.status_code == 401 and again.json()["error"] == "invalid_dpop_proof"


def test_a_refused_request_does_not_spend_the_proof(
    client: TestClient, issuer: FakeIssuer, key: DPoPKey
) -> None:
    """The jti is spent last: a request refused for its token leaves the proof unspent, so an
    attacker cannot burn a victim's proof by sending it with junk first."""
    token = bound(issuer, key)
    proof = key.proof("POST", URL, token)
    refused = client.get("/api/me", headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert refused.status_code == 401  # htm is POST: refused before anything is spent
    ok = client.post("/api/me", headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert ok.status_code == 200


@pytest.mark.parametrize("alg", ["ES256", "PS256", "RS256", "EdDSA"])
def test_a_good_proof_authenticates(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock, alg: str
) -> None:
    key = DPoPKey(alg, clock=clock)
    response = client.get("/api/me", headers=key.headers("GET", URL, bound(issuer, key)))
    assert response.json() == {"sub": "user-1", "by": "dpop"}


@pytest.mark.parametrize(
    "htu",
    [
        "HTTP://TESTSERVER/api/me",  # scheme and host are case-insensitive
        "http://testserver:80/api/me",  # the default port
        "http://testserver/api/%6De",  # an escaped unreserved character
        "http://testserver/api/me?q=1#frag",  # query and fragment are not compared
    ],
)
def test_htu_is_compared_normalised(
    client: TestClient, issuer: FakeIssuer, key: DPoPKey, htu: str
) -> None:
    token = bound(issuer, key)
    headers = {"Authorization": f"DPoP {token}", "DPoP": key.proof("GET", htu, token)}
    assert client.get("/api/me?other=2", headers=headers).status_code == 200


def test_a_proof_at_the_edge_of_the_window_is_accepted(
    client: TestClient, issuer: FakeIssuer, key: DPoPKey, clock: FakeClock
) -> None:
    token = bound(issuer, key)
    for iat in (int(clock()) - 300 - 29, int(clock()) + 29):
        headers = {"Authorization": f"DPoP {token}", "DPoP": key.proof("GET", URL, token, iat=iat)}
        assert client.get("/api/me", headers=headers).status_code == 200


def test_unbound_bearer_tokens_keep_working_beside_dpop(
    client: TestClient, issuer: FakeIssuer
) -> None:
    response = client.get("/api/me", headers={"Authorization": f"Bearer {issuer.mint()}"})
    assert response.json() == {"sub": "user-1", "by": "bearer"}


def test_a_route_that_requires_dpop_refuses_bearer(
    client: TestClient, issuer: FakeIssuer, key: DPoPKey
) -> None:
    refused = client.get("/api/strict", headers={"Authorization": f"Bearer {issuer.mint()}"})
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"')
    url = "http://testserver/api/strict"
    ok = client.get("/api/strict", headers=key.headers("GET", url, bound(issuer, key)))
    assert ok.json() == {"sub": "user-1", "by": "dpop"}


def test_dpop_required_refuses_every_bearer_token(
    issuer: FakeIssuer, clock: FakeClock, key: DPoPKey
) -> None:
    with TestClient(api(issuer, clock, dpop="required")) as client:
        refused = client.get("/api/me", headers={"Authorization": f"Bearer {issuer.mint()}"})
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"')
        anonymous = client.get("/api/me")
        assert anonymous.headers["WWW-Authenticate"].startswith(f'DPoP algs="{ALGS}"')
        assert (
            client.get("/api/me", headers=key.headers("GET", URL, bound(issuer, key))).status_code
            == 200
        )
        metadata = client.get("/.well-known/oauth-protected-resource").json()
        assert metadata["dpop_bound_access_tokens_required"] is True


def test_dpop_off_refuses_the_scheme_and_still_refuses_bound_bearer_tokens(
    issuer: FakeIssuer, clock: FakeClock, key: DPoPKey
) -> None:
    with TestClient(api(issuer, clock, dpop="off")) as client:
        token = bound(issuer, key)
        scheme = client.get("/api/me", headers=key.headers("GET", URL, token))
        assert scheme.status_code == 401 and scheme.headers["WWW-Authenticate"].startswith("Bearer")
        as_bearer = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert as_bearer.status_code == 401
        assert (
            "dpop_signing_alg_values_supported"
            not in client.get("/.well-known/oauth-protected-resource").json()
        )


def test_behind_a_proxy_htu_is_the_public_url(issuer: FakeIssuer, clock: FakeClock) -> None:
    """With OIDC_BASE_URL, the proof must name the public URL, not what the app sees."""
    key = DPoPKey(clock=clock)
    app = api(issuer, clock, base_url="https://api.example.com/svc", session_secret="s" * 40,
              client_id=issuer.client_id)  # fmt: skip
    with TestClient(app, base_url="http://internal:8080") as client:
        token = bound(issuer, key)
        public = key.headers("GET", "https://api.example.com/svc/api/me", token)
        assert client.get("/api/me", headers=public).status_code == 200
        internal = key.headers("GET", "http://internal:8080/api/me", token)
        assert client.get("/api/me", headers=internal).status_code == 401


def test_the_thumbprint_is_rfc_7638s() -> None:
    """RFC 7638 section 3.1's example key and thumbprint."""
    jwk = {
        "kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
            "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
            "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO"
            "pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF"
            "Cur-kEgU8awapJzKnqDKgw"
        ),
    }  # fmt: skip
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_normalize_url_refuses_what_is_no_http_url() -> None:
    for url in ("/relative", "ftp://x/", "http:///nohost", "http://h:99999/", "javascript:x"):
        with pytest.raises(ValueError, match=r"URL|[Pp]ort"):
            normalize_url(url)


def raw_status(app: FastAPI, headers: list[tuple[bytes, bytes]]) -> int:
    """The status of a GET /api/me sent with raw header bytes (latin-1), as a server would."""
    import anyio

    sent: list[dict[str, Any]] = []

    async def run() -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": "/api/me", "raw_path": b"/api/me", "query_string": b"",
            "root_path": "", "headers": [(b"host", b"testserver"), *headers],
            "client": ("127.0.0.1", 1), "server": ("testserver", 80),
        }  # fmt: skip

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)

    anyio.run(run)
    return int(sent[0]["status"])


def test_a_non_ascii_token_with_a_self_made_proof_is_401(
    issuer: FakeIssuer, clock: FakeClock, key: DPoPKey
) -> None:
    """Review of #16: no valid token needed, a latin-1 byte in the token made the ath hash
    raise (a 500 for anyone)."""
    app = api(issuer, clock)
    with TestClient(app):
        proof = key.proof("GET", URL, None, ath="x").encode()
        token = "DPoP abc\u00e9def".encode("latin-1")
        status = raw_status(app, [(b"authorization", token), (b"dpop", proof)])
    assert status == 401


def test_a_jti_that_is_no_utf8_is_401(client: TestClient, issuer: FakeIssuer, key: DPoPKey) -> None:
    headers = key.headers("GET", URL, bound(issuer, key), jti="\ud800")
    assert client.get("/api/me", headers=headers).status_code == 401


def test_a_proof_from_a_fast_clock_cannot_be_replayed_after_its_record(
    issuer: FakeIssuer, clock: FakeClock, key: DPoPKey
) -> None:
    """Review of #16: with leeway 300 a proof dated 300 s ahead stays valid for max_age +
    2 x leeway; its jti must be remembered at least that long."""
    with TestClient(api(issuer, clock, leeway=300)) as client:
        token = bound(issuer, key, exp=int(clock()) + 7200)
        headers = key.headers("GET", URL, token, iat=int(clock()) + 300)
        assert client.get("/api/me", headers=headers).status_code == 200
        clock.advance(430)
        assert client.get("/api/me", headers=headers).status_code == 401
        clock.advance(470)  # 900 s: the proof itself is too old now
        assert client.get("/api/me", headers=headers).status_code == 401


def test_a_flood_of_fresh_proofs_never_evicts_a_spent_one(
    issuer: FakeIssuer, clock: FakeClock
) -> None:
    """Review of #16: an attacker with a bound token of their own sends more valid proofs than
    the in-memory store holds, to push out a victim's spent jti and replay the victim's proof.
    The store refuses new proofs while it is full of live ones (fail closed)."""
    from fastapi_oidc_guard._cache import SeenIds

    seen = SeenIds(clock=clock, size=3, fail_closed=True)
    assert seen.first_use("victim", until=clock() + 300)
    for n in range(5):
        seen.first_use(f"attacker-{n}", until=clock() + 300)
    assert not seen.first_use("victim", until=clock() + 300)  # still remembered
    assert seen.refused_full >= 3
    clock.advance(400)  # every entry expired: room again
    assert seen.first_use("attacker-new", until=clock() + 300)


def test_a_huge_rsa_proof_key_is_refused_before_any_signature_check(
    client: TestClient, issuer: FakeIssuer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Review of #16: a caller-chosen 8192-bit key (or a huge e) would make each check costly."""
    import base64 as b64

    big = b64.urlsafe_b64encode(b"\xff" * 1024).rstrip(b"=").decode()
    key = DPoPKey("RS256", clock=clock)
    for jwk in ({**key.public_jwk, "n": big}, {**key.public_jwk, "e": big[:40]}):
        token = issuer.mint(cnf={"jkt": thumbprint(jwk)})
        headers = {"Authorization": f"DPoP {token}",
                   "DPoP": key.proof("GET", URL, token, header={"jwk": jwk})}  # fmt: skip
        with caplog.at_level("INFO", logger="fastapi_oidc_guard"):
            response = client.get("/api/me", headers=headers)
        assert response.status_code == 401 and response.json()["error"] == "invalid_dpop_proof"
        assert "more than 4096 bits" in caplog.text  # refused for its size, not its signature
        caplog.clear()


def test_a_full_replay_store_refuses_without_scanning(clock: FakeClock) -> None:
    """Second review of #16: a full store scanned all its entries for every refused id (40 ms
    each at 100 000): a flood then stalled the whole process. Expired ids leave from the
    front, each once; a refused id looks at one entry."""
    from collections import OrderedDict

    from fastapi_oidc_guard._cache import SeenIds

    looked = [0]

    class Counting(OrderedDict[str, float]):
        def items(self) -> Any:
            def each() -> Any:
                for item in super(Counting, self).items():
                    looked[0] += 1
                    yield item

            return each()

    seen = SeenIds(clock=clock, size=1000, fail_closed=True)
    seen._live = Counting()
    for n in range(1000):
        assert seen.first_use(f"id-{n}", until=clock() + 300)
    looked[0] = 0
    for n in range(200):
        assert not seen.first_use(f"flood-{n}", until=clock() + 300)
    assert looked[0] <= 200  # one look per refused id, not 1000
    clock.advance(400)
    assert seen.first_use("after", until=clock() + 300)  # the expired ones left, once


async def test_user_from_token_refuses_a_bound_token(
    issuer: FakeIssuer, clock: FakeClock, key: DPoPKey
) -> None:
    """Review of #16: the public verb has no proof to check: a bound token is refused."""
    from fastapi_oidc_guard import TokenBindingMismatch

    guard = OIDCGuard(issuer=issuer.issuer, audience=issuer.audience, transport=issuer.transport,
                      clock=clock)  # fmt: skip
    with pytest.raises(TokenBindingMismatch):
        await guard.user_from_token(bound(issuer, key))
    assert (await guard.user_from_token(issuer.mint())).sub == "user-1"
    await guard.aclose()
    strict = OIDCGuard(issuer=issuer.issuer, audience=issuer.audience, transport=issuer.transport,
                       clock=clock, dpop="required")  # fmt: skip
    with pytest.raises(TokenBindingMismatch):  # no proof here: not even an unbound token
        await strict.user_from_token(issuer.mint())
    await strict.aclose()


pytestmark = pytest.mark.anyio


async def test_a_proof_is_spent_once_across_two_instances(
    redis_server: RedisServer, issuer: FakeIssuer, clock: FakeClock
) -> None:
    """Two processes share one Redis: a proof accepted by A is a replay on B."""
    apps = [api(issuer, clock, redis_url=redis_server.url) for _ in range(2)]
    clients = [httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
               for app in apps]  # fmt: skip
    try:
        key = DPoPKey(clock=clock)
        headers = key.headers("GET", URL, bound(issuer, key))
        first = await clients[0].get("/api/me", headers=headers)
        assert first.status_code == 200
        replay = await clients[1].get("/api/me", headers=headers)
        assert replay.status_code == 401 and replay.json()["error"] == "invalid_dpop_proof"
    finally:
        for c in clients:
            await c.aclose()
        for app in apps:
            await app.state.oidc_guard.aclose()
