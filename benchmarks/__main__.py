"""``python -m benchmarks``: print the ratios table and one OK/MISS line per target.

Exit status 0 even when a target is missed (MISS is printed); 1 only if a response was not 200.
"""

from __future__ import annotations

import argparse
import json
import sys

from .asgi import BadResponse
from .report import render
from .runner import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few seconds (smoke test)")
    parser.add_argument("--rounds", type=int, default=None, help="number of interleaved rounds")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be >= 1")
    try:
        results = run(quick=args.quick, rounds=args.rounds)
    except BadResponse as err:
        print(f"benchmarks: a response was not 200, no numbers: {err}", file=sys.stderr)
        return 1
    print(json.dumps(results, indent=2) if args.json else render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
