"""The oldest versions pyproject.toml allows, as pip pins: to check that its lower bounds are honest.

    python tools/oldest_deps.py [--skip NAME ...] > oldest.txt

Each dependency ``name>=X.Y`` of ``[project] dependencies`` and of the ``dev`` extra becomes ``name==X.Y`` (pip
reads it as X.Y.0, the oldest release the bound admits); a dependency for another Python than this one is left
out, and so are ``--skip`` (default: the tools no fast test needs, whose own pins would hold back the others:
playwright, ruff, vermin, nbgrader). Then, in a throw-away clone (an editable install points at one checkout):

    python -m venv /tmp/oldest && /tmp/oldest/bin/pip install -r oldest.txt
    /tmp/oldest/bin/pip install --no-deps -e .
    COURSE_DATA_DIR=... /tmp/oldest/bin/python -m pytest tests -m "not slow" -n 2

On 2026-12-07 the bounds of then (torch>=2.2, diffusers>=0.27, pytest-xdist>=3.3, jupytext>=1.16) failed 18 fast
tests and lessons 6 and 7 this way (``torch.compiler.is_compiling`` and ``torch.amp.GradScaler`` are torch 2.3,
``set_timesteps(timesteps=...)`` diffusers 0.28, and diffusers below 0.29 no longer imports beside a current
huggingface_hub); README's "Quick start" has the run of today's bounds.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SKIP = ("playwright", "ruff", "vermin", "nbgrader")


def read_pyproject(path: Path) -> dict:
    try:
        import tomllib  # novm (3.11; tomli below)
    except ModuleNotFoundError:
        import tomli as tomllib
    return tomllib.loads(path.read_text(encoding="utf-8"))


def oldest_pins(project: dict, skip=DEFAULT_SKIP) -> list[str]:
    """``name==X.Y`` for each ``name>=X.Y`` requirement (runtime and dev) that applies to this Python."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    skip = {canonicalize_name(name) for name in skip}
    pins = []
    for line in project["project"]["dependencies"] + project["project"]["optional-dependencies"]["dev"]:
        req = Requirement(line)
        if canonicalize_name(req.name) in skip or (req.marker is not None and not req.marker.evaluate()):
            continue
        lows = [s.version for s in req.specifier if s.operator == ">="]
        if len(lows) != 1:
            raise SystemExit(f"{line!r}: expected one lower bound (>=), found {len(lows)}")
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        pins.append(f"{req.name}{extras}=={lows[0]}")
    return pins


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip", nargs="*", default=list(DEFAULT_SKIP),
                        help="dependencies left out (replaces the default list: " + ", ".join(DEFAULT_SKIP) + ")")
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    args = parser.parse_args(argv)
    print("\n".join(oldest_pins(read_pyproject(args.pyproject), set(args.skip))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
