"""Apply text-only changes of the lesson builders to the executed lessons, keeping their outputs.

    python tools/refresh_lesson_text.py [NAME ...]      # default: every lesson of both builders

Rebuilds each lesson from tools/build_lessons_01_03.py / build_lessons_04_06.py and compares it with the
executed notebook in notebooks/: when every code cell's source is unchanged (only markdown changed), the new
markdown is written into the executed notebook and the code cells keep their outputs, execution counts and
ids. When a code cell changed, nothing is written for that lesson and the script says which cell: that lesson
must be rebuilt and executed again (`python tools/build_lessons_04_06.py NAME`, then
`jupyter nbconvert --to notebook --execute --inplace notebooks/NAME.ipynb`). Exit code 1 if any lesson needs
that.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def _builders() -> dict:
    sys.path.insert(0, str(ROOT / "tools"))      # the builders import tools/lesson_cells.py
    builders = {}
    for script in ("build_lessons_01_03.py", "build_lessons_04_06.py"):
        spec = importlib.util.spec_from_file_location(script[:-3], ROOT / "tools" / script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        builders.update(module.BUILDERS)
    return builders


def refresh(name: str, build) -> str | None:
    """Write the rebuilt markdown into notebooks/NAME.ipynb; returns why it could not, or None."""
    path = ROOT / "notebooks" / f"{name}.ipynb"
    new, old = build(), nbformat.read(path, as_version=4)
    kinds = lambda nb: [c.cell_type for c in nb.cells]  # noqa: E731
    if kinds(new) != kinds(old):
        return "the cells were added, removed or reordered"
    for i, (a, b) in enumerate(zip(new.cells, old.cells)):
        if a.cell_type == "code" and a.source != b.source:
            return f"code cell {i} changed:\n{a.source[:200]}"
    for a, b in zip(new.cells, old.cells):
        if a.cell_type == "markdown":
            b.source = a.source
    nbformat.validate(old)
    nbformat.write(old, path)
    return None


def main(argv: list[str]) -> int:
    builders = _builders()
    status = 0
    for name in argv or list(builders):
        why = refresh(name, builders[name])
        print(f"{name}: " + ("markdown refreshed, outputs kept" if why is None else f"NOT refreshed: {why}"))
        status |= why is not None
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
