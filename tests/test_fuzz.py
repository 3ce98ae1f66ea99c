"""Property-based: arbitrary Authorization headers and token strings never produce a 500."""

from __future__ import annotations

import string
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_oidc_guard import OIDCGuard
from fastapi_oidc_guard.testing import DPoPKey, FakeClock, FakeIssuer

from .conftest import build_app

_issuer = FakeIssuer(clock=FakeClock(1_800_000_000.0))
_VALID = _issuer.mint()
HEADER_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
B64 = string.ascii_letters + string.digits + "-_"


@pytest.fixture(scope="module")
def fuzz_client() -> Iterator[TestClient]:
    guard = OIDCGuard(
        issuer=_issuer.issuer, audience=_issuer.audience, transport=_issuer.transport,
        clock=_issuer.clock,
    )  # fmt: skip
    with TestClient(build_app(guard)) as client:
        yield client


def _mutations() -> st.SearchStrategy[str]:
    """Tokens close to a valid one: a segment replaced, characters flipped, parts shuffled."""
    head, body, sig = _VALID.split(".")
    segment = st.text(alphabet=B64, max_size=200)
    return st.one_of(
        st.builds(lambda h: f"{h}.{body}.{sig}", segment),
        st.builds(lambda b: f"{head}.{b}.{sig}", segment),
        st.builds(lambda s: f"{head}.{body}.{s}", segment),
        st.builds(
            lambda i, c: _VALID[:i] + c + _VALID[i + 1 :],
            st.integers(0, len(_VALID) - 1),
            st.sampled_from(B64 + ".=+/ "),
        ),
        st.lists(st.sampled_from([head, body, sig, "", "e30", "bnVsbA"]), max_size=6).map(".".join),
    )


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(header=st.text(alphabet=HEADER_CHARS, max_size=300))
def test_arbitrary_authorization_header(fuzz_client: TestClient, header: str) -> None:
    response = fuzz_client.get("/api/protected", headers={"Authorization": header})
    assert response.status_code in (401, 403)
    assert response.json()["error"] in ("not_authenticated", "invalid_token", "invalid_dpop_proof")


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(token=st.one_of(_mutations(), st.text(alphabet=HEADER_CHARS, min_size=1, max_size=400)))
def test_arbitrary_bearer_token(fuzz_client: TestClient, token: str) -> None:
    response = fuzz_client.get("/api/protected", headers={"Authorization": f"Bearer {token}"})
    if token.strip() == _VALID:
        assert response.status_code == 200
    else:
        assert response.status_code in (401, 403), token


_web_issuer = FakeIssuer(clock=FakeClock(1_800_000_000.0))
_KEY = DPoPKey(clock=_issuer.clock)
_BOUND = _issuer.mint(cnf={"jkt": _KEY.jkt})
_VALID_PROOF = _KEY.proof("GET", "http://testserver/api/protected", _BOUND)


def _proofs() -> st.SearchStrategy[str]:
    """DPoP proofs close to a valid one (for the bound token), and arbitrary text."""
    valid = _VALID_PROOF
    head, body, sig = valid.split(".")
    segment = st.text(alphabet=B64, max_size=300)
    return st.one_of(
        st.builds(lambda h: f"{h}.{body}.{sig}", segment),
        st.builds(lambda b: f"{head}.{b}.{sig}", segment),
        st.builds(lambda s: f"{head}.{body}.{s}", segment),
        st.builds(
            lambda i, c: valid[:i] + c + valid[i + 1 :],
            st.integers(0, len(valid) - 1),
            st.sampled_from(B64 + ".=+/ "),
        ),
        st.text(alphabet=HEADER_CHARS, max_size=400),
    )


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(proof=_proofs())
def test_arbitrary_dpop_proof(fuzz_client: TestClient, proof: str) -> None:
    """A hostile DPoP proof with a valid bound token: 401, never a 500 and never a user."""
    headers = {"Authorization": f"DPoP {_BOUND}", "DPoP": proof}
    response = fuzz_client.get("/api/protected", headers=headers)
    if proof == _VALID_PROOF and response.status_code == 200:
        return  # the untouched proof, its first use
    assert response.status_code == 401, proof
    assert response.json()["error"] in ("invalid_dpop_proof", "invalid_token")


COOKIE_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=";,")


@pytest.fixture(scope="module", params=["cookie", "memory"])
def web_client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    from .web import BASE_URL, web_app, web_guard

    guard = web_guard(_web_issuer, _web_issuer.clock, session_backend=request.param)  # type: ignore[arg-type]
    with TestClient(web_app(guard), base_url=BASE_URL) as client:
        yield client


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cookies=st.dictionaries(
        st.sampled_from(["oidc_session", "oidc_session.0", "oidc_session.1", "oidc_session.7",
                         "oidc_session_txn_0123456789abcdef", "other"]),
        st.one_of(st.text(alphabet=COOKIE_CHARS, max_size=400),
                  st.builds(lambda s: "v1." + s, st.text(alphabet=B64, max_size=400)),
                  st.builds(lambda k, s: f"s1.{k}.{s}", st.text(alphabet=B64 + "=", max_size=8),
                            st.text(alphabet=B64, min_size=40, max_size=46))),
        max_size=5,
    )
)  # fmt: skip
def test_arbitrary_session_cookies(web_client: TestClient, cookies: dict[str, str]) -> None:
    header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    for path in ("/api/protected", "/auth/profile", "/page"):
        response = web_client.get(path, headers={"Cookie": header}, follow_redirects=False)
        assert response.status_code in (302, 401), (path, response.text)
    logout = web_client.post("/auth/logout", headers={"Cookie": header}, follow_redirects=False)
    assert logout.status_code == 302


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    params=st.dictionaries(
        st.sampled_from(["state", "code", "iss", "error", "error_description", "returnTo"]),
        st.text(alphabet=HEADER_CHARS, max_size=200),
        max_size=6,
    )
)
def test_arbitrary_callback_and_login_parameters(
    web_client: TestClient, params: dict[str, str]
) -> None:
    callback = web_client.get("/auth/callback", params=params, follow_redirects=False)
    assert callback.status_code == 400
    login = web_client.get("/auth/login", params=params, follow_redirects=False)
    assert login.status_code in (302, 400)
    if login.status_code == 302:
        assert login.headers["location"].startswith(_web_issuer.issuer + "/authorize?")
    confirm = web_client.get("/auth/logout", params=params, follow_redirects=False)
    assert confirm.status_code == 200  # no same-origin signal: a confirmation page, no logout
    assert "<script" not in confirm.text.lower()
    for logout in (
        web_client.get("/auth/logout", params=params, follow_redirects=False,
                       headers={"Sec-Fetch-Site": "same-origin"}),
        web_client.post("/auth/logout", data=params, follow_redirects=False),
    ):  # fmt: skip
        assert logout.status_code == 302
        assert logout.headers["location"].startswith("/")
        assert not logout.headers["location"].startswith("//")
