"""Test helpers: an in-process fake OpenID Provider, token minting and a movable clock.

from fastapi_oidc_guard.testing import FakeIssuer

issuer = FakeIssuer()
guard = OIDCGuard(issuer=issuer.issuer, audience=issuer.audience, transport=issuer.transport)
headers = {"Authorization": f"Bearer {issuer.mint(sub='alice')}"}
"""

from ._keys import SigningKey
from .clock import FakeClock
from .dpop import DPoPKey
from .helpers import make_session, override_user, session_cookies
from .issuer import FakeIssuer, IssuerMode, combined_transport
from .login import alogin, login

__all__ = [
    "DPoPKey",
    "FakeClock",
    "FakeIssuer",
    "IssuerMode",
    "SigningKey",
    "alogin",
    "combined_transport",
    "login",
    "make_session",
    "override_user",
    "session_cookies",
]
