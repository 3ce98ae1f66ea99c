"""``jose.py`` primitives used directly: rules that the verifier's earlier checks would mask."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fastapi_oidc_guard import UnsupportedAlgorithm
from fastapi_oidc_guard._json import loads_strict
from fastapi_oidc_guard.jose import parse_compact, parse_jwk, verify_signature
from fastapi_oidc_guard.testing import FakeIssuer


def test_verify_signature_enforces_its_own_allow_list(issuer: FakeIssuer) -> None:
    parsed = parse_compact(issuer.mint(), max_bytes=8192)
    key = parse_jwk(issuer.signing_key.public_jwk(), ["RS256"])
    verify_signature(parsed, key, allowed={"RS256"})  # the control: it verifies
    with pytest.raises(UnsupportedAlgorithm):
        verify_signature(parsed, key, allowed={"ES256"})


def test_import_refuses_a_non_cryptography_jose_backend() -> None:
    code = "import jose.backends as b\nb.RSAKey = object\nimport fastapi_oidc_guard.jose\n"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "cryptography backend" in result.stderr


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-8-sig"])
def test_json_must_be_plain_utf8(encoding: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        loads_strict('{"alg":"RS256"}'.encode(encoding))
