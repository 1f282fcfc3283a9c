"""Run-time switches read from the environment, in one place.

- ``COURSE_QUICK=1``: quick mode. CI sets it; lessons shrink training and sampling so each runs in a minute
  or two on 2 CPU cores (the lab also uses at most 5,000 images of 16x16 and never downloads). The grader sets
  it in every sandbox (``sandbox.jobs.child_env``).
- ``COURSE_DATA_DIR``: where datasets live (see ``course_utils.data.data_root``).
"""
from __future__ import annotations

import os
import textwrap

QUICK_ENV = "COURSE_QUICK"
# JupyterLab shows printed text with `word-break: break-all` (.jp-OutputArea-output pre): a line wider than the
# output area is cut mid-word ("ali / gn"). What the course prints for a student (a check's verdict, the quick-mode
# note) is wrapped at spaces to this many columns, which fits the output area of a 1366-pixel screen with the file
# browser open.
PRINT_WIDTH = 100


def quick_mode() -> bool:
    """True when the environment variable COURSE_QUICK is set to 1/true/yes."""
    return os.environ.get(QUICK_ENV, "").strip().lower() in ("1", "true", "yes", "on")


QUICK_NOTE = ("quick mode: shorter training runs and fewer samples than the stored full run the text describes, "
              "so figures and numbers that come from training or sampling differ from those it quotes")


def wrapped(text: str, indent: str = "    ") -> str:
    """``text`` wrapped at spaces to ``PRINT_WIDTH`` columns, each of its lines on its own, the continuation lines
    indented by ``indent``; a word longer than a line (a path, a command) stays whole. For a long printed line:
    ``print(wrapped(f"stored run: {command}; {conditions}"))``."""
    return "\n".join(textwrap.fill(line, PRINT_WIDTH, subsequent_indent=indent, break_long_words=False,
                                   break_on_hyphens=False) if line.strip() else line for line in text.split("\n"))


def say_if_quick() -> None:
    """In quick mode, print ``QUICK_NOTE`` (a lesson's first cell calls it: its text quotes the full run), wrapped at
    spaces to ``PRINT_WIDTH`` columns."""
    if quick_mode():
        print(wrapped(QUICK_NOTE, indent=""))


def pick(full, quick):
    """``quick`` in quick mode, else ``full``: ``steps = pick(2000, 200)``."""
    return quick if quick_mode() else full
