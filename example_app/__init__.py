"""Example FastAPI app protected by fastapi_oidc_guard. Run it with ``python -m example_app``."""
