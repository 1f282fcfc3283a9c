"""Reading what a student submits, with nothing but the standard library: the notebook's JSON within bounds
(``parse_notebook``), the file itself without following links (``read_submission``), and which notebook of a
student's folder is graded (``pick_notebook``). Kept apart from ``grade`` so that the process that only reads
submissions, Gradescope's while course-grade runs, imports no torch (381 MB it held before, measured as PSS).
"""
from __future__ import annotations

import json
import os
import re
import unicodedata
from pathlib import Path

from . import sandbox

MAX_JSON_VALUES = 2_000_000          # values in a submitted notebook's JSON (each costs ~50 bytes parsed: 91 MB)
MAX_CELLS = 2000                     # cells of a submission (the worksheets have about 30)
MAX_NOTEBOOK_MB = 16                 # a larger file is not read (--max-notebook-mb's default)
_SURROGATES = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """``text`` encodable as UTF-8: a lone surrogate (valid JSON, invalid Unicode) becomes U+FFFD."""
    return _SURROGATES.sub("\ufffd", text)


INVISIBLE = {"Cc", "Cf", "Zl", "Zp"}  # controls, line breaks, format characters (zero-width, bidi, soft hyphen, BOM)


def visible(text: str) -> str:
    """``text`` as valid Unicode with every run of invisible characters (``INVISIBLE``) made one space."""
    marked = "".join("\0" if unicodedata.category(ch) in INVISIBLE else ch for ch in valid_text(text))
    return re.sub("\0+", " ", marked)


def plain(message) -> str:
    """One line of plain text: no line breaks, carriage returns, control or invisible characters, no leading mark.
    Here, not in grade_feedback (which imports nbformat: 34 MB and up to 2 s), for the Gradescope process that
    names a submission's files while course-grade runs."""
    return re.sub(r"^[✅❌⏳]\s*", "", visible(str(message))).strip()


class GradeError(Exception):
    """The grader itself cannot do its job (bad arguments, unreadable SOURCE): exit code 2."""


class Malformed(Exception):
    """A submission that is not a usable notebook: it gets rows and a message."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


def _meta(cell: dict) -> tuple[dict, dict]:
    md = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
    nbg = md.get("nbgrader") if isinstance(md.get("nbgrader"), dict) else {}
    course = md.get("course") if isinstance(md.get("course"), dict) else {}
    return nbg, course


def _source_text(cell: dict) -> str:
    src = cell.get("source", "")
    if isinstance(src, list):
        src = "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""



def parse_notebook(data: bytes, max_bytes: int | None = None, all_metadata: bool = False) -> dict:
    """A notebook as a dict with a list of cells (outputs dropped), or Malformed with a reason.

    Of a cell's metadata only a text grade_id is kept (a submission's), unless ``all_metadata`` (SOURCE's)."""
    if max_bytes is not None and len(data) > max_bytes:
        raise Malformed("too_large", f"the file is {sandbox.over_limit(len(data), max_bytes)}: clear the outputs "
                                     "and submit again")
    if not data.strip():
        raise Malformed("empty", f"the file is empty ({len(data)} bytes): save the notebook in Jupyter (File > "
                                 "Save) and submit it again")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Malformed("not_a_notebook", "not a notebook: the file is not UTF-8 text") from None
    if not text.strip():        # a byte-order mark, or Unicode's spaces, alone (a review: an IndexError below)
        raise Malformed("empty", f"the file holds no text ({len(data)} bytes): save the notebook in Jupyter (File > "
                                 "Save) and submit it again")
    # bounds the grader's memory while parsing: a value follows a ',' or a ':' or opens a list or an object
    # ('[[[...]]]' nested 900 deep needs no separator and costs ~56 bytes per byte pair)
    if sum(data.count(c) for c in (b",", b":", b"[", b"{")) > MAX_JSON_VALUES:
        raise Malformed("too_large", f"the notebook holds more than {MAX_JSON_VALUES:,} JSON values: clear the "
                                     "outputs and submit again")
    try:
        nb = json.loads(text)
    except (ValueError, RecursionError) as err:     # ValueError: bad JSON, or an integer of 5,000 digits
        if not text.lstrip().startswith("{"):   # a script or a page renamed .ipynb: no save in JupyterLab mends it
            begins = valid_text(text.strip().splitlines()[0])[:40]
            raise Malformed("not_a_notebook", f"not a notebook: the file is plain text (it begins {begins!r}), not "
                                              "a notebook saved by Jupyter: submit the .ipynb file that JupyterLab "
                                              "saves (File > Save Notebook), not a script or another file renamed"
                            ) from None
        raise Malformed("not_a_notebook", "not a notebook: the file is not valid JSON, as when it was cut off "
                                          "while saving or uploading: open it in JupyterLab, save it and submit it "
                                          f"again ({valid_text(str(err))[:80]})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise Malformed("not_a_notebook", "not a notebook: the JSON has no list of cells (nbformat 4)")
    if len(nb["cells"]) > MAX_CELLS:
        raise Malformed("too_large", f"the notebook has {len(nb['cells'])} cells, over the limit of {MAX_CELLS}")
    cells = []
    for cell in nb["cells"]:
        if isinstance(cell, dict) and cell.get("cell_type") in ("code", "markdown", "raw"):
            # of a submitted cell's metadata only its grade_id matters, and only as text (a list is valid JSON)
            if all_metadata:
                md = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
            else:
                gid = _meta(cell)[0].get("grade_id")
                md = {"nbgrader": {"grade_id": valid_text(gid)}} if isinstance(gid, str) else {}
            cells.append({"cell_type": cell["cell_type"], "source": valid_text(_source_text(cell)), "metadata": md})
    if not cells:
        raise Malformed("empty", "empty notebook: it has no cells")
    return {"cells": cells}


def read_submission(path: Path, max_mb: float) -> bytes:
    """The submitted file's bytes: a regular file (no link, no FIFO), at most ``max_mb``."""
    try:
        return sandbox.read_regular(path, int(max_mb * 2 ** 20))
    except sandbox.UnsafeFile as err:
        if "too large" in str(err.strerror):
            raise Malformed("too_large", f"the file is {err.strerror}: clear the outputs and submit again") from None
        raise Malformed("unreadable", f"not graded: the submission is {err.strerror}") from None
    except OSError as err:
        raise Malformed("unreadable", f"cannot read the file: {err.strerror or err}") from None


def _notebooks_in(folder: str, depth: int = 0) -> list[Path]:
    """``*.ipynb`` entries under ``folder`` that are not folders, never following links (a linked file is
    listed, so that its student gets a row saying why it was not read)."""
    found = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return found
    for e in entries:
        if e.name.startswith(".") or e.name == "__MACOSX":
            continue
        if e.is_dir(follow_symlinks=False):
            if depth < 4:
                found += _notebooks_in(e.path, depth + 1)
        elif e.name.lower().endswith(".ipynb"):
            found.append(Path(e.path))
    return found


def pick_notebook(folder: Path, worksheet: str) -> tuple[Path | None, list[Path], list[Path]]:
    """The notebook to grade in one student's folder, by the rule course-grade and the Gradescope bundle share:
    the one named like the worksheet (the shallowest; several at that depth: none), else the folder's only
    notebook. Returns (that notebook or None, every notebook found at most 4 folder levels down, the ones named
    like the worksheet at the shallowest depth)."""
    files = _notebooks_in(str(folder))
    named = sorted((f for f in files if f.stem == worksheet), key=lambda f: (len(f.parts), str(f)))
    shallow = [f for f in named if len(f.parts) == len(named[0].parts)] if named else []
    if len(shallow) == 1 or (not named and len(files) == 1):
        return (shallow[0] if shallow else files[0]), files, shallow
    return None, files, shallow
