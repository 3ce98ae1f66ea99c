"""Every rejection class of the bearer path answers its own fixed description (issue #15).

Attack and debugging in one table: a token is refused for one reason; the 401 says which check
failed (``expired``, ``audience``...) and never echoes a value from the token (the marker below
is planted in every token); the detailed reason (expected vs found) reaches the
``fastapi_oidc_guard`` logger, with the class name.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from fastapi_oidc_guard import OIDCGuard, User, require_user
from fastapi_oidc_guard.testing import FakeClock, FakeIssuer

MARKER = "m4rk3r-from-the-token"
NOW = 1_700_000_000


class StrictUser(User):
    tenant: str | None = None

    def model_post_init(self, context: Any) -> None:
        if self.tenant == "refused":
            raise ValueError("tenant refused")


def _tampered(token: str) -> str:
    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["scope"] = "admin " + MARKER
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


Row = tuple[str, Callable[[FakeIssuer], str], str, str]
ROWS: list[Row] = [
    # (case, how to make the Authorization value, exception class logged, description)
    ("expired", lambda i: "Bearer " + i.mint(sub=MARKER, exp=NOW - 10), "ExpiredToken",
     "The access token has expired"),
    ("not-yet-valid-nbf", lambda i: "Bearer " + i.mint(sub=MARKER, nbf=NOW + 600),
     "TokenNotYetValid", "The access token is not valid yet (nbf or iat in the future: "
     "check the clocks)"),
    ("issued-in-the-future", lambda i: "Bearer " + i.mint(sub=MARKER, iat=NOW + 600),
     "TokenNotYetValid", "The access token is not valid yet (nbf or iat in the future: "
     "check the clocks)"),
    ("audience", lambda i: "Bearer " + i.mint(sub=MARKER, aud=f"https://{MARKER}.example"),
     "InvalidAudience", "The access token was issued for another audience than this API"),
    ("issuer", lambda i: "Bearer " + i.mint(sub=MARKER, iss=f"https://{MARKER}.example/"),
     "InvalidIssuer", "The access token's issuer is missing or not trusted by this API"),
    ("no-issuer", lambda i: "Bearer " + i.mint(sub=MARKER, iss=None),
     "InvalidIssuer", "The access token's issuer is missing or not trusted by this API"),
    ("signature", lambda i: "Bearer " + _tampered(i.mint(sub=MARKER)), "InvalidSignature",
     "The access token's signature does not verify"),
    ("algorithm", lambda i: "Bearer " + i.mint(sub=MARKER, alg="HS256"),
     "UnsupportedAlgorithm", "The access token is signed with an algorithm this API refuses"),
    ("unknown-key", lambda i: "Bearer " + i.mint(sub=MARKER, header={"kid": MARKER}),
     "KeyNotFound", "The access token is signed with a key its issuer does not publish"),
    ("malformed", lambda i: f"Bearer {MARKER}.not-base64!.x", "MalformedToken",
     "The access token is not a well-formed signed JWT (an opaque token? request the token "
     "with this API's audience)"),
    ("opaque", lambda i: f"Bearer {MARKER}opaque0123456789", "MalformedToken",
     "The access token is not a well-formed signed JWT (an opaque token? request the token "
     "with this API's audience)"),
    ("id-token", lambda i: "Bearer " + i.mint_id_token(sub=MARKER, aud=i.audience, nonce="n"),
     "WrongTokenType",
     "This is not an access token (an ID token or a logout token is never a bearer token)"),
    ("authorization-header", lambda i: f"Bearer {MARKER} two", "MalformedAuthorization",
     "The Authorization header must be 'Bearer' (or 'DPoP' with a DPoP proof) and one token"),
    ("other-scheme", lambda i: f"Basic {MARKER}", "MalformedAuthorization",
     "The Authorization header must be 'Bearer' (or 'DPoP' with a DPoP proof) and one token"),
    ("missing-sub", lambda i: "Bearer " + i.mint(sub=None, jti=MARKER), "ClaimError",
     "A required claim of the access token is missing or invalid"),
    ("user-model", lambda i: "Bearer " + i.mint(sub=MARKER, tenant="refused"),
     "InvalidUserClaims", "The access token's claims do not fit this API's user model"),
]  # fmt: skip


@pytest.fixture
def client() -> Iterator[TestClient]:
    clock = FakeClock(NOW)
    issuer = FakeIssuer(clock=clock)
    guard = OIDCGuard(
        issuer=issuer.issuer, audience=issuer.audience, transport=issuer.transport,
        clock=clock, leeway=0, user_model=StrictUser,
    )  # fmt: skip
    app = FastAPI(lifespan=guard.lifespan)
    guard.install(app)

    @app.get("/p")
    async def protected(user: User = Depends(require_user)) -> str:
        return user.sub

    with TestClient(app) as test_client:
        test_client.app_state = {"issuer": issuer}  # type: ignore[attr-defined]
        yield test_client


def test_descriptions_are_distinct_per_reason() -> None:
    by_class: dict[str, str] = {}
    for _, _, cls, description in ROWS:
        assert by_class.setdefault(cls, description) == description
    assert len(set(by_class.values())) == len(by_class)  # one description per class


@pytest.mark.parametrize(("case", "make", "cls", "description"), ROWS, ids=[r[0] for r in ROWS])
def test_each_rejection_says_what_failed_and_echoes_nothing(
    client: TestClient,
    caplog: pytest.LogCaptureFixture,
    case: str,
    make: Callable[[FakeIssuer], str],
    cls: str,
    description: str,
) -> None:
    issuer: FakeIssuer = client.app_state["issuer"]  # type: ignore[attr-defined]
    with caplog.at_level("INFO", logger="fastapi_oidc_guard"):
        response = client.get("/p", headers={"Authorization": make(issuer)})
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_token", "description": description}
    challenge = response.headers["WWW-Authenticate"]
    assert challenge == (
        f'Bearer error="invalid_token", error_description="{description}", '
        'resource_metadata="https://api.example.test/.well-known/oauth-protected-resource"'
    )
    assert MARKER not in response.text and MARKER not in challenge
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("fastapi_oidc_guard")]
    assert any(f"invalid_token ({cls})" in line for line in logged), logged
