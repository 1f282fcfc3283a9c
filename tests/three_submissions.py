"""Three submissions of worksheet 1 and course-grade's grades of them, made once per test process.

tests/test_gradescope.py and tests/test_nbgrader.py grade the same three notebooks with another tool and compare
with these grades: ``correct`` (the solution), ``partial`` (the first TODO replays a catalogued mistake, built as
tests/grading_corpus.py does) and ``untouched`` (the generated exercise). One course-grade run (2 workers) serves
both modules when they run in one pytest process.
"""
from __future__ import annotations

import atexit
import csv
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

import grading_corpus as corpus

ARGS = ["--workers", "2", "--cell-timeout", "60", "--timeout", "400", "--memory-mb", "2048", "--quiet",
        "--allow-root"]      # CI runs as root; docs/grading.md says why not to
_CACHE: dict = {}


def build() -> dict:
    """{"root", "solution", "subs": {student: notebook path}, "hint": the partial's hint,
    "points": {student: {grade_id: points}}, "total": {student: points}, "max": {grade_id: max points}}."""
    if _CACHE:
        return _CACHE
    root = Path(tempfile.mkdtemp(prefix="three-submissions-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    solution = root / "solutions" / corpus.SOLUTION.name
    solution.parent.mkdir()
    shutil.copyfile(corpus.SOLUTION, solution)          # others may edit the real one meanwhile
    sol = nbformat.read(solution, as_version=4)
    gid, check, target, _ = corpus.graded_checks(sol)[0]
    partial, hint = corpus.with_mistake(sol, target, check)
    subs = {}
    for student, nb in (("correct", sol), ("partial", partial), ("untouched", corpus.exercise_of(sol))):
        subs[student] = root / "submissions" / student / solution.name
        subs[student].parent.mkdir(parents=True)
        nbformat.write(nb, subs[student])
    out = root / "course-grade"
    proc = subprocess.run([sys.executable, "-m", "course_utils.grade", str(solution), str(root / "submissions"),
                           "--out", str(out), *ARGS], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    points = {s: {r["grade_id"]: float(r["points"]) for r in rows if r["student"] == s and r["grade_id"] != "TOTAL"}
              for s in subs}
    total = {r["student"]: float(r["points"]) for r in rows if r["grade_id"] == "TOTAL"}
    _CACHE.update(root=root, solution=solution, subs=subs, hint=hint, points=points, total=total,
                  partial_grade_id=gid, max={r["grade_id"]: float(r["max_points"]) for r in rows
                                             if r["grade_id"] != "TOTAL"})
    return _CACHE
