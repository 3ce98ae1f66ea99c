"""Plain-text rendering of the results of :func:`benchmarks.run`."""

from __future__ import annotations

from typing import Any

__all__ = ["render"]


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def render(results: dict[str, Any]) -> str:
    settings, notes = results["settings"], results["notes"]
    versions = " ".join(f"{k} {v}" for k, v in results["versions"].items())
    lines = [
        "fastapi_oidc_guard benchmarks -- ratios to the floor, measured in one run",
        f"  {versions}",
        f"  {settings['rounds']} rounds x {settings['batch']} requests per variant "
        f"({settings['floor_batch']} verifies for the floor), medians of per-round means; "
        f"{results['elapsed_s']:.1f} s in all",
        f"  floor = raw cryptography RS256 verify (PKCS1v15/SHA-256) of the same "
        f"{notes['token_bytes']}-byte token: {results['floor_us']:.1f} us",
        f"  new token: {notes['new_token_method']}",
        f"  PyJWT baseline: key {notes['pyjwt_key']}",
        "",
    ]
    header = ("variant", "median us", "IQR us", "floors", "added floors", "(paired)")
    rows: list[tuple[str, ...]] = [header]
    for v in results["variants"]:
        added = "-" if v["added_floors"] is None else f"{v['added_floors']:.2f}"
        paired = "-" if v["added_floors_paired"] is None else f"{v['added_floors_paired']:.2f}"
        rows.append((
            v["label"],
            f"{v['median_us']:.1f}",
            f"{v['q1_us']:.1f}-{v['q3_us']:.1f}",
            f"{v['floors']:.2f}",
            added,
            paired,
        ))  # fmt: skip
    lines += _table(rows)
    lines += [
        "",
        "added = median of the variant - median of the unprotected route, in floors (used for",
        "  targets and leads); (paired) = median of the same difference taken within each round",
        f"calibration: the unprotected request costs {results['unprotected_floors']:.2f} floors "
        "here (RECIPES.md: ~2 on the reference machine)",
        "lead = baseline's added cost / require_user's added cost (> 1: require_user is cheaper)",
    ]
    names = {"require_user_new": "new token", "require_user_hit": "cache hit",
             "pyjwt": "PyJWT (pre-loaded key)", "jose": "python-jose (naive)"}  # fmt: skip
    added = results["added_floors"]
    for ours, per_baseline in results["leads"].items():
        for baseline, lead in per_baseline.items():
            text = "n/a (require_user added <= 0)" if lead is None else f"{lead:.2f}x"
            lines.append(
                f"lead of require_user {names[ours]} over {names[baseline]}: {text} "
                f"({added[baseline]:.2f} / {added[ours]:.2f} floors added)"
            )
    lines.append("")
    lines += [target["line"] for target in results["targets"]]
    return "\n".join(lines)
