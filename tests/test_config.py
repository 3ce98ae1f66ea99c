"""Configuration: env names, defaults, and failures that name the variable and the fix."""

from __future__ import annotations

import pytest

from fastapi_oidc_guard import ConfigurationError, GuardConfig, OIDCGuard

ISSUER = "https://tenant.example.com/"


def test_from_env_reads_the_fixed_names() -> None:
    config = GuardConfig.from_env(
        {
            "OIDC_ISSUER": ISSUER,
            "OIDC_AUDIENCE": "https://api.example.com",
            "OIDC_CLIENT_ID": "cid",
            "OIDC_CLIENT_SECRET": "secret",
            "OIDC_BASE_URL": "https://app.example.com",
            "OIDC_SESSION_SECRET": "a" * 32 + "," + "b" * 40,
            "OIDC_ALGORITHMS": "RS256, ES256",
            "OIDC_LEEWAY": "10",
        }
    )
    assert config.issuer == ISSUER
    assert config.audience == "https://api.example.com"
    assert (config.client_id, config.client_secret) == ("cid", "secret")
    assert config.base_url == "https://app.example.com"
    assert config.session_secret == ("a" * 32, "b" * 40)
    assert config.algorithms == ("RS256", "ES256")
    assert config.leeway == 10


def test_defaults() -> None:
    config = GuardConfig(issuer=ISSUER)
    assert config.algorithms == ("RS256", "ES256", "PS256", "EdDSA")
    assert config.scope == "openid profile email offline_access"
    assert config.session_backend == "cookie"
    assert (config.leeway, config.http_timeout) == (30, 5)
    assert (config.jwks_max_age, config.jwks_cooldown, config.jwks_stale_limit) == (600, 30, 86400)


def test_keyword_arguments_win_over_environment() -> None:
    config = GuardConfig.from_env({"OIDC_ISSUER": ISSUER, "OIDC_AUDIENCE": "env"}, audience="kw")
    assert config.audience == "kw"


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        pytest.param({}, "OIDC_ISSUER", id="issuer-missing"),
        pytest.param({"OIDC_ISSUER": "http://idp.example.com"}, "https", id="issuer-http"),
        pytest.param({"OIDC_ISSUER": "ftp://idp.example.com"}, "https", id="issuer-ftp"),
        pytest.param(
            {"OIDC_ISSUER": ISSUER, "OIDC_SESSION_SECRET": "short"}, "OIDC_SESSION_SECRET",
            id="secret-too-short",
        ),
        pytest.param({"OIDC_ISSUER": ISSUER, "OIDC_ALGORITHMS": "HS256"}, "OIDC_ALGORITHMS",
                     id="hmac-refused"),
        pytest.param({"OIDC_ISSUER": ISSUER, "OIDC_ALGORITHMS": "none"}, "OIDC_ALGORITHMS",
                     id="none-refused"),
        pytest.param({"OIDC_ISSUER": ISSUER, "OIDC_LEEWAY": "abc"}, "OIDC_LEEWAY",
                     id="leeway-not-number"),
        pytest.param({"OIDC_ISSUER": ISSUER, "OIDC_LEEWAY": "3600"}, "leeway", id="leeway-huge"),
        pytest.param({"OIDC_ISSUER": ISSUER, "OIDC_CLIENT_SECRET": "s"}, "OIDC_CLIENT_ID",
                     id="secret-without-client"),
        pytest.param({"OIDC_ISSUER": ISSUER, "OIDC_SESSION_BACKEND": "redis"}, "OIDC_REDIS_URL",
                     id="redis-without-url"),
        pytest.param({"OIDC_ISSUER": ISSUER, "OIDC_SESSION_BACKEND": "disk"},
                     "OIDC_SESSION_BACKEND", id="unknown-backend"),
        pytest.param({"OIDC_ISSUER": ISSUER, "OIDC_BASE_URL": "http://app.example.com"},
                     "OIDC_BASE_URL", id="base-url-http"),
        pytest.param({"OIDC_ISSUER": ISSUER, "OIDC_JWKS_STALE_LIMIT": "10"}, "stale",
                     id="stale-below-max-age"),
        pytest.param({"OIDC_ISSUER": "http://localhost.evil.example"}, "https",
                     id="issuer-http-localhost-lookalike"),
        pytest.param({"OIDC_ISSUER": "https:///realms/x"}, "https", id="issuer-https-no-host"),
        pytest.param({"OIDC_ISSUER": ISSUER, "OIDC_SESSION_SECRET": "s" * 31},
                     "OIDC_SESSION_SECRET", id="secret-31-bytes"),
        pytest.param({"OIDC_ISSUER": ISSUER, "OIDC_LEEWAY": "301"}, "leeway", id="leeway-301"),
        pytest.param({"OIDC_ISSUER": ISSUER, "OIDC_JWKS_COOLDOWN": "nan"}, "finite",
                     id="cooldown-nan"),
        pytest.param({"OIDC_ISSUER": ISSUER, "OIDC_JWKS_STALE_LIMIT": "nan"}, "finite",
                     id="stale-limit-nan"),
        pytest.param({"OIDC_ISSUER": ISSUER, "OIDC_LEEWAY": "inf"}, "finite", id="leeway-inf"),
    ],
)  # fmt: skip
def test_bad_settings_fail_at_build_time_naming_the_fix(
    settings: dict[str, str], names: str
) -> None:
    with pytest.raises(ConfigurationError, match=names):
        GuardConfig.from_env(settings)


@pytest.mark.parametrize(
    "issuer", ["http://127.0.0.1:8080", "http://localhost:9000/realm", "http://[::1]:3000"]
)
def test_loopback_http_issuer_is_allowed(issuer: str) -> None:
    assert GuardConfig(issuer=issuer).issuer == issuer


def test_single_secret_string_is_accepted() -> None:
    guard = OIDCGuard(issuer=ISSUER, session_secret="s" * 32, client_id="c",
                      base_url="https://app.example.com")  # fmt: skip
    assert guard.config.session_secret == ("s" * 32,)


@pytest.mark.parametrize(
    ("settings", "missing"),
    [
        pytest.param({"base_url": "https://app.example.com"}, "OIDC_CLIENT_ID, OIDC_SESSION_SECRET",
                     id="base-url-only"),
        pytest.param({"session_secret": "s" * 32, "client_id": "c"}, "OIDC_BASE_URL",
                     id="no-base-url"),
    ],
)  # fmt: skip
def test_partial_login_settings_name_what_is_missing(
    settings: dict[str, str], missing: str
) -> None:
    with pytest.raises(ConfigurationError, match=missing):
        GuardConfig(issuer=ISSUER, **settings)  # type: ignore[arg-type]


def test_same_site_none_needs_https() -> None:
    with pytest.raises(ConfigurationError, match="Secure"):
        GuardConfig(issuer=ISSUER, client_id="c", session_secret=("s" * 32,),
                    base_url="http://127.0.0.1:8000", cookie_same_site="none")  # fmt: skip


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown"):
        GuardConfig.from_env({"OIDC_ISSUER": ISSUER}, audiance="typo")


def test_missing_audience_warns_loudly(caplog: pytest.LogCaptureFixture) -> None:
    OIDCGuard(issuer=ISSUER)
    assert "OIDC_AUDIENCE is not set" in caplog.text


def test_audience_param_from_the_environment_and_none() -> None:
    from fastapi_oidc_guard.flows import audience_params

    env = {"OIDC_ISSUER": "https://idp.example.test", "OIDC_AUDIENCE_PARAM": "none"}
    config = GuardConfig.from_env(env)
    assert config.audience_param == "none"
    assert audience_params("https://api.example.com", config.audience_param) == {}
    with pytest.raises(ConfigurationError, match="audience_param"):
        GuardConfig.from_env({**env, "OIDC_AUDIENCE_PARAM": "sometimes"})
