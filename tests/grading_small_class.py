"""A small class of real submissions with known mistakes, graded once per test session (tests/conftest.py's
``small_class``): tests/test_grade_shards.py, tests/test_grade_report.py and the report's browser test use it.

Built from solutions/01_schedules.ipynb with grading_corpus's helpers. On the first TODO (linear_beta_schedule)
the ranking is known: "alphas instead of betas" made by 2 students, then 1 student each for "misses the last
value", not implemented (the untouched exercise), and the two unreadable files. One student's second TODO raises
an exception whose message is HTML (``<script>``), and prints it. Eight students, six of them run a kernel; the
names spread over the three shards of ``--shard K/3`` (tests/test_grade_shards.py checks it).
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

import grading_corpus as corpus

ARGS = ["--workers", "2", "--cell-timeout", "60", "--timeout", "400", "--memory-mb", "2048", "--quiet",
        "--allow-root"]      # CI runs as root; docs/grading.md says why not to
SCRIPT = '<script>alert("owned")</script>'
SAME, OTHER = "alphas instead of betas", "misses the last value"      # checks.MISTAKES["linear_beta_schedule"]


def grade(*args, env=None) -> subprocess.CompletedProcess:
    """``python -m course_utils.grade ARGS...`` (the CLI), output captured."""
    return subprocess.run([sys.executable, "-m", "course_utils.grade", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=1800)


def _handed_in(sol):
    """The solution as a student hands in a finished worksheet: the code without nbgrader's marker lines (a copy
    of solutions/ with them is named among the students who need attention)."""
    nb = copy.deepcopy(sol)
    for cell in nb.cells:
        cell.source = "\n".join(line for line in cell.source.split("\n")
                                 if not line.strip().startswith(("### BEGIN ", "### END ")))
    return nb


def build(folder: Path, solution: Path) -> dict:
    """Write the class under ``folder`` (one folder per student); returns what the tests need to know."""
    sol = nbformat.read(solution, as_version=4)
    tests = corpus.graded_checks(sol)
    (gid1, check1, t1, _), (gid2, _, t2, _) = tests[0], tests[1]
    ws = solution.stem

    def put(student: str, nb_or_bytes):
        path = folder / student / f"{ws}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(nb_or_bytes, bytes):
            path.write_bytes(nb_or_bytes)
        else:
            nbformat.write(_handed_in(nb_or_bytes), path)

    put("correct", sol)
    put("untouched", corpus.exercise_of(sol))
    put("wrong_same_1", corpus.with_mistake(sol, t1, check1, 0)[0])
    put("wrong_same_2", corpus.with_mistake(sol, t1, check1, 0)[0])
    put("wrong_other", corpus.with_mistake(sol, t1, check1, 1)[0])
    nb = copy.deepcopy(sol)
    corpus._solution_cell(nb, t2).source += (f"\n\nprint({SCRIPT!r})\n\ndef {t2}(*args, **kwargs):\n"
                                             f"    raise ValueError({SCRIPT!r})\n")
    put("script_error", nb)
    put("not_json", b"this is not JSON {")
    put("empty_notebook", json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode())
    return {"first": gid1, "second": gid2, "worksheet": ws}


def graded_class(root: Path) -> dict:
    """Build the class in ``root`` and grade it in one run (a copy of solutions/, temporary files in root)."""
    solutions, subs, out, tmp = root / "solutions", root / "submissions", root / "single", root / "tmp"
    shutil.copytree(corpus.SOLUTION.parent, solutions, ignore=shutil.ignore_patterns(".*"))
    tmp.mkdir()
    solution = solutions / corpus.SOLUTION.name
    info = build(subs, solution)
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = grade(solution, subs, "--out", out, *ARGS, env=env)
    return dict(info, root=root, solution=solution, subs=subs, out=out, env=env, proc=proc)
