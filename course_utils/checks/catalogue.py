"""The catalogue of mistakes for people: docs/mistakes.md is generated from ``MISTAKES`` by ``mistakes_markdown``.

    python -c "from course_utils.checks import mistakes_markdown; print(mistakes_markdown())"

prints the tables; the page's introduction above them is written by hand.
"""
from __future__ import annotations

from .framework import CHECKS, MISTAKES


def mistakes_markdown() -> str:
    """The catalogue of mistakes as a markdown table (docs/mistakes.md is generated from it)."""
    lines = []
    for name, mistakes in MISTAKES.items():
        lines += [f"## `{name}` (TODO `{CHECKS[name].target}`)", "", "| mistake | the hint contains |", "|---|---|"]
        lines += [f"| {mid} | {hint} |" for mid, _, hint in mistakes]
        lines.append("")
    return "\n".join(lines)
