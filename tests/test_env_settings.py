"""Every setting from the environment, ``.env`` files, prefixes, near-miss warnings, and secrets
that never print (issue #15)."""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from fastapi_oidc_guard import ConfigurationError, GuardConfig, OIDCGuard
from fastapi_oidc_guard.env_settings import NOT_FROM_ENV

ISSUER = "https://issuer.example.test/"
LOGIN = {
    "OIDC_ISSUER": ISSUER, "OIDC_CLIENT_ID": "app", "OIDC_BASE_URL": "https://app.example.test",
    "OIDC_SESSION_SECRET": "s" * 40,
}  # fmt: skip

# One non-default value per setting: (what the variable says, what the config holds).
SAMPLES: dict[str, tuple[str, Any]] = {
    "issuer": ("https://other-issuer.example.test/", "https://other-issuer.example.test/"),
    "audience": ("https://api.example.test, api://x", "https://api.example.test"),
    "audience_claim": ("client_id", "client_id"),
    "client_id": ("my-app", "my-app"),
    "client_secret": ("a-client-secret", "a-client-secret"),
    "base_url": ("https://app.example.test/sub", "https://app.example.test/sub"),
    "session_secret": ("t" * 40 + "," + "u" * 40, ("t" * 40, "u" * 40)),
    "scope": ("openid email", "openid email"),
    "algorithms": ("RS256,ES384", ("RS256", "ES384")),
    "session_backend": ("memory", "memory"),
    "redis_url": ("redis://127.0.0.1:6390/2", "redis://127.0.0.1:6390/2"),
    "leeway": ("12.5", 12.5),
    "http_timeout": ("7", 7.0),
    "jwks_max_age": ("900", 900.0),
    "jwks_min_max_age": ("30", 30.0),
    "jwks_max_max_age": ("7200", 7200.0),
    "jwks_cooldown": ("10", 10.0),
    "jwks_stale_limit": ("90000", 90000.0),
    "discovery_max_age": ("3600", 3600.0),
    "max_token_bytes": ("4096", 4096),
    "max_id_token_bytes": ("8192", 8192),
    "token_cache_size": ("0", 0),
    "resolver_fetch_budget": ("3", 3),
    "resolver_budget_interval": ("60", 60.0),
    "websocket_query_token": ("yes", True),
    "require_at_jwt": ("1", True),
    "legacy_logout_tokens": ("on", True),
    "routes_prefix": ("/login-routes", "/login-routes"),
    "cookie_name": ("my_session", "my_session"),
    "cookie_domain": ("app.example.test", "app.example.test"),
    "cookie_path": ("/app", "/app"),
    "cookie_same_site": ("strict", "strict"),
    "cookie_secure": ("false", False),
    "session_inactivity": ("3600", 3600.0),
    "session_absolute": ("172800", 172800.0),
    "session_touch_interval": ("5", 5.0),
    "max_pending_logins": ("5", 5),
    "login_params": ("prompt, login_hint", ("prompt", "login_hint")),
    "login_scopes": ("read:a,write:a", ("read:a", "write:a")),
    "login_audiences": ("https://other-api.example.test", ("https://other-api.example.test",)),
    "audience_param": ("resource", "resource"),
    "token_endpoint_auth": ("client_secret_post", "client_secret_post"),
    "client_private_key": ("not-read-here", "not-read-here"),
    "client_private_key_file": ("/run/secrets/key.pem", "/run/secrets/key.pem"),
    "client_key_id": ("key-1", "key-1"),
    "use_par": ("true", True),
    "default_return_to": ("/home", "/home"),
    "roles_claim": ("realm_access.roles", "realm_access.roles"),
    "permissions_claim": ("perms", "perms"),
    "trusted_origins": ("https://admin.example.test", ("https://admin.example.test",)),
    "max_cookie_bytes": ("8000", 8000),
    "swagger_client_id": ("swagger-ui", "swagger-ui"),
    "resource": ("https://api.example.com/v1", "https://api.example.com/v1"),
    "dpop": ("required", "required"),
    "dpop_algorithms": ("ES256,EdDSA", ("ES256", "EdDSA")),
    "dpop_max_age": ("60", 60.0),
    "token_validation": ("introspect_opaque", "introspect_opaque"),
    "introspection_cache_ttl": ("30", 30.0),
    "introspection_inactive_ttl": ("1", 1.0),
}
# Settings that need a partner to be valid alone.
PARTNERS: dict[str, dict[str, str]] = {
    "redis_url": {"OIDC_SESSION_BACKEND": "redis"},
    "client_private_key": {"OIDC_CLIENT_PRIVATE_KEY_FILE": ""},
}


def test_the_sample_table_covers_every_setting() -> None:
    assert set(SAMPLES) == {f.name for f in fields(GuardConfig)} - NOT_FROM_ENV


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_setting_has_its_variable(name: str) -> None:
    raw, expected = SAMPLES[name]
    env = {**LOGIN, **PARTNERS.get(name, {}), f"OIDC_{name.upper()}": raw}
    config = GuardConfig.from_env(env)
    assert getattr(config, name) == expected
    assert getattr(GuardConfig.from_env(LOGIN), name) != expected  # it changed something


@pytest.mark.parametrize(
    ("var", "raw", "message"),
    [
        ("OIDC_LEEWAY", "soon", "OIDC_LEEWAY must be a number of seconds"),
        ("OIDC_LEEWAY", "nan", "OIDC_LEEWAY must be a finite number"),
        ("OIDC_TOKEN_CACHE_SIZE", "1.5", "OIDC_TOKEN_CACHE_SIZE must be a whole number"),
        ("OIDC_USE_PAR", "maybe", "OIDC_USE_PAR must be true or false"),
        ("OIDC_COOKIE_SECURE", "2", "OIDC_COOKIE_SECURE must be true or false"),
    ],
)
def test_a_bad_value_names_its_variable(var: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        GuardConfig.from_env({**LOGIN, var: raw})


def test_an_empty_variable_is_unset() -> None:
    config = GuardConfig.from_env({**LOGIN, "OIDC_LEEWAY": "", "OIDC_COOKIE_NAME": "  "})
    assert config.leeway == 30.0 and config.cookie_name is None


# -- .env ---------------------------------------------------------------------------------------


def test_a_dotenv_file_is_read_when_asked_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# the app's settings\n"
        f"OIDC_ISSUER={ISSUER}\n"
        "export OIDC_CLIENT_ID=from-file\n"
        "OIDC_AUDIENCE='https://api.example.test'  \n"
        'OIDC_SCOPE="openid profile"\n'
        "OIDC_LEEWAY=10 # seconds\n"
        "\n"
    )
    config = GuardConfig.from_env({"OIDC_CLIENT_ID": "from-env"}, env_file=dotenv)
    assert (config.issuer, config.client_id) == (ISSUER, "from-env")
    assert (config.audience, config.scope, config.leeway) == (
        "https://api.example.test", "openid profile", 10.0,
    )  # fmt: skip
    assert GuardConfig.from_env({}, env_file=dotenv).client_id == "from-file"
    with pytest.raises(ConfigurationError, match="OIDC_ISSUER is required"):
        GuardConfig.from_env({})  # without env_file nothing is read from the file


def test_a_dotenv_file_with_a_bad_line_names_the_line_not_its_content(tmp_path: Path) -> None:
    dotenv = tmp_path / "prod.env"
    dotenv.write_text(f"OIDC_ISSUER={ISSUER}\nthis-is-a-s3cret-without-a-key\n")
    with pytest.raises(ConfigurationError, match=r"line 2: expected KEY=value") as caught:
        GuardConfig.from_env({}, env_file=dotenv)
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ConfigurationError, match=r"cannot read the \.env file"):
        GuardConfig.from_env({}, env_file=tmp_path / "missing.env")


# -- near misses, prefixes -----------------------------------------------------------------------


def test_a_near_miss_variable_is_warned_about_with_did_you_mean(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {"OIDC_ISSUER": ISSUER, "OIDC_ISSUER_URL": "https://x/", "OIDC_AUDIENCES": "a",
           "OIDC_FAVOURITE_COLOUR": "blue", "OTHER_THING": "1"}  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="fastapi_oidc_guard"):
        GuardConfig.from_env(env)
    lines = [r.getMessage() for r in caplog.records]
    assert "OIDC_ISSUER_URL is not a fastapi_oidc_guard setting and is ignored; did you mean " \
           "OIDC_ISSUER?" in lines  # fmt: skip
    assert any(line.startswith("OIDC_AUDIENCES") and "did you mean OIDC_AUDIENCE?" in line
               for line in lines)  # fmt: skip
    assert any(line.startswith("OIDC_FAVOURITE_COLOUR") and "did you mean" not in line
               for line in lines)  # fmt: skip
    assert not any("OTHER_THING" in line or "https://x/" in line for line in lines)


def test_two_guards_in_one_process_read_their_own_prefixes() -> None:
    env = {
        "OIDC_ISSUER": ISSUER, "OIDC_AUDIENCE": "https://public-api.example.test",
        "ADMIN_OIDC_ISSUER": "https://admin-issuer.example.test/",
        "ADMIN_OIDC_AUDIENCE": "https://admin-api.example.test",
    }  # fmt: skip
    public, admin = OIDCGuard.from_env(env), OIDCGuard.from_env(env, prefix="ADMIN_OIDC_")
    assert (public.config.issuer, public.config.audience) == (
        ISSUER, "https://public-api.example.test",
    )  # fmt: skip
    assert (admin.config.issuer, admin.config.audience) == (
        "https://admin-issuer.example.test/", "https://admin-api.example.test",
    )  # fmt: skip
    with pytest.raises(ConfigurationError, match="ADMIN_OIDC_ISSUER is required"):
        GuardConfig.from_env({"OIDC_ISSUER": ISSUER}, prefix="ADMIN_OIDC_")
    with pytest.raises(ConfigurationError, match="prefix"):
        GuardConfig.from_env(env, prefix="oidc")


# -- secrets -------------------------------------------------------------------------------------

SECRET_MARKERS = ("client-s3cret-marker", "session-s3cret-marker", "redis-s3cret-marker")


def secret_config() -> GuardConfig:
    return GuardConfig.from_env({
        **LOGIN, "OIDC_CLIENT_SECRET": "client-s3cret-marker",
        "OIDC_SESSION_SECRET": "session-s3cret-marker" + "x" * 20,
        "OIDC_SESSION_BACKEND": "redis",
        "OIDC_REDIS_URL": "redis://default:redis-s3cret-marker@127.0.0.1:6379/0",
    })  # fmt: skip


def test_secrets_never_print_in_repr_str_or_format() -> None:
    config = secret_config()
    for shown in (repr(config), str(config), f"{config}", f"{config!r}"):
        assert not any(marker in shown for marker in SECRET_MARKERS), shown
    assert "client_secret=<set>" in repr(config) and "session_secret=<set>" in repr(config)
    assert "redis://default:***@127.0.0.1:6379/0" in repr(config)
    assert config.client_secret == "client-s3cret-marker"  # the value itself is unchanged


def test_secrets_stay_out_of_the_start_up_summary_and_of_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = OIDCGuard(config=secret_config())
    assert not any(marker in guard.summary() for marker in SECRET_MARKERS)
    with pytest.raises(ConfigurationError) as short:
        GuardConfig.from_env({**LOGIN, "OIDC_SESSION_SECRET": "short-s3cret-marker"})
    assert "s3cret" not in str(short.value)
    with pytest.raises(ConfigurationError) as orphan:
        GuardConfig.from_env({"OIDC_ISSUER": ISSUER, "OIDC_CLIENT_SECRET": "client-s3cret-marker"})
    assert "s3cret" not in str(orphan.value)


def test_the_configuration_page_lists_every_variable() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    missing = [name for name in SAMPLES if f"| `OIDC_{name.upper()}` | `{name}` |" not in page]
    assert missing == []


def test_a_quoted_dotenv_value_with_a_comment_loses_its_quotes(tmp_path: Path) -> None:
    """Review of #15: ``OIDC_CLIENT_SECRET="s3cr3t" # prod`` kept its quotes (a wrong secret,
    silently); an unterminated quote is an error that never shows the value."""
    dotenv = tmp_path / ".env"
    dotenv.write_text("OIDC_ISSUER=\"https://idp.example.test\" # prod\nOIDC_CLIENT_ID='app'\n")
    config = GuardConfig.from_env({}, env_file=dotenv)
    assert config.issuer == "https://idp.example.test" and config.client_id == "app"
    dotenv.write_text('OIDC_ISSUER=https://idp.example.test\nOIDC_CLIENT_SECRET="s3cr3t-marker\n')
    with pytest.raises(ConfigurationError, match="line 2") as raised:
        GuardConfig.from_env({}, env_file=dotenv)
    assert "s3cr3t" not in str(raised.value)
    dotenv.write_text('OIDC_CLIENT_SECRET="s3cr3t-marker" trailing\n')
    with pytest.raises(ConfigurationError, match="line 1") as raised:
        GuardConfig.from_env({}, env_file=dotenv)
    assert "s3cr3t" not in str(raised.value)


def test_a_redis_password_in_the_query_never_prints() -> None:
    config = GuardConfig(
        issuer=ISSUER, redis_url="redis://cache:6379/0?password=s3cr3t-marker&db=1"
    )
    assert "s3cr3t" not in repr(config) and "password=***" in repr(config)


@pytest.mark.parametrize("prefix", ["OIDC_SWAGGER_", "OIDC_DPOP_", "OIDC_CLIENT_"])
def test_a_prefix_that_reads_another_guards_settings_is_refused(prefix: str) -> None:
    """Review of #15: a guard with prefix OIDC_SWAGGER_ read OIDC_SWAGGER_CLIENT_ID (the
    default guard's swagger_client_id) as its own client_id."""
    with pytest.raises(ConfigurationError, match="overlaps"):
        GuardConfig.from_env({f"{prefix}ISSUER": ISSUER}, prefix=prefix)


def test_a_prefix_of_its_own_is_fine() -> None:
    config = GuardConfig.from_env({"OIDC_ADMIN_ISSUER": ISSUER}, prefix="OIDC_ADMIN_")
    assert config.issuer == ISSUER
