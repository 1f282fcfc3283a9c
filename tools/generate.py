"""Rebuild everything in the course that is derived from a source: ``make generated`` (= ``python tools/generate.py``).

| what is written                                   | from                                         |
|---------------------------------------------------|----------------------------------------------|
| the set-up cell that opens every notebook         | ``[project.urls] Repository`` in pyproject.toml |
| the README's Colab/Binder badges                  | the same URL                                 |
| exercises/*.ipynb (the student worksheets)        | solutions/*.ipynb (``course_utils.exercises``) |
| docs/mistakes.md's catalogue                      | ``course_utils.checks.MISTAKES``              |
| docs/checkpoints.md's table of shipped models     | the model cards (``checkpoints.cards_markdown``) |
| the plain text of each stored progress bar         | its saved widget state (``progress.saved_bars_as_text``) |
| notebooks/.twins/*.py, solutions/.twins/*.py      | the notebooks (jupytext, paired in jupytext.toml) |

Each step writes only what changed and prints it. Generated regions inside hand-written markdown sit between
``<!-- BEGIN GENERATED: NAME -->`` and ``<!-- END GENERATED: NAME -->``. CI runs this on a clean clone and fails
when ``git diff --exit-code`` then finds a difference, so a forgotten regeneration cannot land.

    python tools/generate.py            # everything
    python tools/generate.py twins      # one step (setup, bars, badges, exercises, mistakes, cards, twins)
"""
from __future__ import annotations

import argparse
import re
import sys
try:
    import tomllib  # novm (3.11; tomli below)
except ModuleNotFoundError:     # Python 3.10: the same parser, from PyPI (a dev dependency there)
    import tomli as tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIRS = ("notebooks", "solutions")          # the sources; exercises/ is generated from solutions/
SETUP_CELL_ID = "course-setup"
SETUP_MARKER = "# Course set-up"                    # the first line of the set-up cell


# ------------------------------------------------------------------------------------------ the course's home
def repository_url(pyproject: Path = ROOT / "pyproject.toml") -> str | None:
    """The course's public repository (``[project.urls] Repository``), or None while it has none."""
    urls = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("urls", {})
    url = (urls.get("Repository") or "").strip().rstrip("/")
    return url or None


def setup_cell_source(url: str | None) -> str:
    """The first code cell of every notebook: makes sure ``course_utils`` is importable, or says what to do."""
    head = (f"{SETUP_MARKER} (the same cell opens every notebook; written by `make generated`).\n"
            "import importlib.util\n")
    if url:
        return head + (
            "import subprocess\nimport sys\n\n"
            'if importlib.util.find_spec("course_utils") is None:   # Colab, Binder: install the course package\n'
            f'    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "git+{url}"])')
    return head + (
        "\n"
        'if importlib.util.find_spec("course_utils") is None:\n'
        "    raise ModuleNotFoundError(\n"
        '        "This kernel cannot import the course package `course_utils`. In the course folder, run "\n'
        '        "`make lab` (it installs everything and opens JupyterLab with the right kernel), or install the "\n'
        '        "folder into this kernel\'s Python with `pip install -e PATH/TO/THE/COURSE`. On Colab, upload the "\n'
        '        "course folder, run `%pip install -e /content/FOLDER`, then restart the runtime.")')


def badges_markdown(url: str | None) -> str:
    """The README's badges: Colab and Binder when the course has a public home, else where to get it."""
    if not url:
        return ("*The course has no public home yet, so there are no Colab or Binder links: get the folder from "
                "your instructor, then run `make lab` (or see the set-up cell at the top of every notebook).*")
    m = re.match(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?$", url)
    if not m:
        return f"The course lives at <{url}>."
    owner, name = m.groups()
    start = "notebooks/00_start_here.ipynb"
    return (f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{owner}/{name}/blob/main/{start})\n"
            f"[![Binder](https://mybinder.org/badge_logo.svg)]"
            f"(https://mybinder.org/v2/gh/{owner}/{name}/main?labpath={start.replace('/', '%2F')})")


# ------------------------------------------------------------------------------------------------ helpers
def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return True


def replace_region(text: str, name: str, body: str, where: str) -> str:
    """``text`` with the lines between the BEGIN/END GENERATED markers of ``name`` replaced by ``body``."""
    begin, end = f"<!-- BEGIN GENERATED: {name} -->", f"<!-- END GENERATED: {name} -->"
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise SystemExit(f"{where}: needs exactly one '{begin}' followed by one '{end}'")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{body.strip()}\n{end}{tail}"


def source_notebooks(root: Path = ROOT) -> list[Path]:
    """The notebooks that are edited by hand: every lesson (and the start page) and every solution."""
    return sorted(p for d in NOTEBOOK_DIRS for p in (root / d).glob("*.ipynb"))


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _write_notebook(path: Path, nb) -> bool:
    text = nbformat.writes(nb, version=4)
    return _write_if_changed(path, text if text.endswith("\n") else text + "\n")


# -------------------------------------------------------------------------------------------------- steps
def step_setup(root: Path = ROOT) -> None:
    """The set-up cell: the first code cell of every source notebook (inserted if a notebook has none)."""
    source = setup_cell_source(repository_url(root / "pyproject.toml"))
    for path in source_notebooks(root):
        nb = _read(path)
        codes = [c for c in nb.cells if c.cell_type == "code"]
        first = codes[0] if codes else None
        if first is not None and (first.source.startswith(SETUP_MARKER) or "find_spec(\"course_utils\")"
                                  in first.source):
            if first.source == source and first.get("id") == SETUP_CELL_ID:
                continue
            first.source, first.id = source, SETUP_CELL_ID
        else:
            cell = nbformat.v4.new_code_cell(source)
            cell.id = SETUP_CELL_ID
            position = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
            nb.cells.insert(position, cell)
        _write_notebook(path, nb)


def step_badges(root: Path = ROOT) -> None:
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    _write_if_changed(readme, replace_region(text, "badges", badges_markdown(repository_url(root / "pyproject.toml")),
                                             "README.md"))


def step_exercises(root: Path = ROOT) -> None:
    from course_utils import exercises

    changed = exercises.generate(root / "solutions", root / "exercises", check=True)
    if changed:
        for path in exercises.generate(root / "solutions", root / "exercises"):
            if path in changed:
                print(f"wrote {path.relative_to(root)}")


def step_mistakes(root: Path = ROOT) -> None:
    from course_utils.checks import mistakes_markdown

    path = root / "docs" / "mistakes.md"
    _write_if_changed(path, replace_region(path.read_text(encoding="utf-8"), "mistakes", mistakes_markdown(),
                                           "docs/mistakes.md"))


def step_cards(root: Path = ROOT) -> None:
    from course_utils.checkpoints import cards_markdown

    path = root / "docs" / "checkpoints.md"
    _write_if_changed(path, replace_region(path.read_text(encoding="utf-8"), "cards", cards_markdown(),
                                           "docs/checkpoints.md"))


def step_bars(root: Path = ROOT) -> None:
    """Each stored progress bar's plain text (what GitHub shows) from its saved widget state: its last drawing."""
    from course_utils.progress import saved_bars_as_text

    for path in source_notebooks(root):
        nb = _read(path)
        if saved_bars_as_text(nb):
            _write_notebook(path, nb)


def twin_path(notebook: Path) -> Path:
    """notebooks/NAME.ipynb -> notebooks/.twins/NAME.py (the pairing of jupytext.toml)."""
    return notebook.parent / ".twins" / f"{notebook.stem}.py"


def twin_text(notebook: Path) -> str:
    """The jupytext twin of ``notebook`` as jupytext.toml configures it (what JupyterLab writes on save)."""
    import jupytext
    from jupytext.config import load_jupytext_config

    config = load_jupytext_config(str(notebook))
    return jupytext.writes(jupytext.read(notebook), fmt="py:percent", config=config)


def edited_twins(root: Path = ROOT) -> list[Path]:
    """Twins that hold an edit their notebook lacks: newer than the notebook, and not what it writes. ``make
    generated`` writes every twin from its notebook, so it would drop that edit (a maintainer edited a twin, ran it
    as the test's message said, and lost the edit without a word): it stops first and names them."""
    edited = []
    for notebook in source_notebooks(root):
        twin = twin_path(notebook)
        if (twin.exists() and twin.stat().st_mtime > notebook.stat().st_mtime
                and twin.read_text(encoding="utf-8") != twin_text(notebook)):
            edited.append(twin)
    return edited


def step_twins(root: Path = ROOT) -> None:
    notebooks = source_notebooks(root)
    for path in notebooks:
        _write_if_changed(twin_path(path), twin_text(path))
    wanted = {twin_path(p) for p in notebooks}
    for d in NOTEBOOK_DIRS:
        for stale in (root / d / ".twins").glob("*.py"):
            if stale not in wanted:
                stale.unlink()
                print(f"removed {stale.relative_to(root)} (its notebook is gone)")


# in this order: exercises copy the set-up cell
STEPS = {"setup": step_setup, "bars": step_bars, "badges": step_badges, "exercises": step_exercises,
         "mistakes": step_mistakes, "cards": step_cards, "twins": step_twins}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("steps", nargs="*", metavar="STEP", help=f"some of {', '.join(STEPS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = [s for s in args.steps if s not in STEPS]
    if unknown:
        parser.error(f"unknown step(s) {unknown}; the steps are {list(STEPS)}")
    edited = edited_twins(ROOT)
    if edited:
        names = " ".join(str(t.relative_to(ROOT)) for t in edited)
        print(f"generate: {names}: newer than the notebook and different, so edited by hand; carry the edit into the "
              f"notebook first (`.venv/bin/jupytext --sync {names}`, which keeps the notebook's outputs), then run "
              "this again (it writes every twin from its notebook and would drop the edit)", file=sys.stderr)
        return 1
    for name in STEPS:                  # in STEPS' order whatever the command line's: exercises copy the set-up cell
        if not args.steps or name in args.steps:
            STEPS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
