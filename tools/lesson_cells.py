"""What both lesson builders (tools/build_lessons_01_03.py, build_lessons_04_06.py) share: the Colab/Binder
install cell, cell constructors, the notebook's metadata, and writing the built lessons to notebooks/."""
from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]

COLAB = '''\
# Colab / Binder: install the course package if it is missing (does nothing in the course's own environment).
import importlib.util, subprocess, sys
if importlib.util.find_spec("course_utils") is None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q",
                           "git+https://github.com/diffusion-course/diffusion-course"])'''


def _text(text: str, placeholders: dict[str, str] | None) -> str:
    """Dedented text, with each ``@@KEY@@`` of ``placeholders`` replaced by its value."""
    text = textwrap.dedent(text).strip("\n")
    for key, value in (placeholders or {}).items():
        text = text.replace(f"@@{key}@@", value)
    return text


def md(text: str, placeholders: dict[str, str] | None = None):
    return new_markdown_cell(_text(text, placeholders))


def code(text: str, placeholders: dict[str, str] | None = None):
    return new_code_cell(_text(text, placeholders))


def notebook(cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def write_lessons(builders: dict, names: list[str]) -> None:
    """Build the named lessons (all of ``builders`` if none) and write them to notebooks/NAME.ipynb."""
    for name in names or list(builders):
        nb = builders[name]()
        path = ROOT / "notebooks" / f"{name}.ipynb"
        nbformat.validate(nb)
        nbformat.write(nb, path)
        print(f"wrote {path.relative_to(ROOT)} ({len(nb.cells)} cells)")
