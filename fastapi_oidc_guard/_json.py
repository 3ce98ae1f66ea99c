"""The strict JSON decoder for everything that comes from outside (tokens, provider answers).

Pure: no I/O, so ``jose.py`` and the session layer can use it without importing HTTP code.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["loads_strict"]


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key in JSON object")
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


# One decoder for the process: json.loads(..., hooks) would build a new one on every call.
_STRICT_DECODER = json.JSONDecoder(
    object_pairs_hook=_reject_duplicates, parse_constant=_no_constants
)


def loads_strict(data: bytes | str) -> Any:
    """``json.loads`` that rejects duplicate keys and NaN/Infinity; raises ``ValueError``."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return _STRICT_DECODER.decode(text)
