"""The worksheets' nbgrader metadata, proved with nbgrader itself (the dev extra installs it).

- ``nbgrader generate_assignment`` on a copy of solutions/ gives the student notebooks that
  ``course_utils.exercises`` generates (exercises/), cell by cell: the same cells, ids and sources; what differs
  is metadata only, listed in ``NBGRADER_ONLY`` (docs/grading.md, "nbgrader").
- ``nbgrader autograde`` gives the three submissions of tests/three_submissions.py the points course-grade gives.
  Where they legitimately differ, the test says so: nbgrader runs the hidden tests inside the student's kernel,
  so a notebook that replaces the course's checks with ones that always pass gets the points there
  (``test_nbgrader_trusts_the_kernel``), and 0 from course-grade (tests/test_grade.py, student ``monkeypatch``).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_utils import exercises, grade

import grading_corpus as corpus
import three_submissions

pytestmark = pytest.mark.slow
SOLUTIONS = corpus.REPO / "solutions"
# What nbgrader's release has and ours has not (ours = course_utils.exercises, without its header cell):
NBGRADER_ONLY = {
    "nbgrader.checksum",        # every nbgrader cell: the checksum autograde compares locked cells with
    "nbgrader.cell_type",       # every nbgrader cell: its type, to notice a changed type
    "deletable",                # solution cells: deletable false (ours lets a student delete them)
    "execution",                # cells run in the solution: nbgrader keeps their timing metadata, we clear it
}
CHEATER = ("# clears every check of the course: nbgrader's hidden tests then pass in this kernel\n"
           "import course_utils.checks as C\n"
           "_ok = C.CheckResult(True, 'correct', 'pass')\n"
           "C.run_check = lambda *a, **k: _ok\n"
           "for _name in list(vars(C)):\n"
           "    if _name.startswith('check_'):\n"
           "        setattr(C, _name, lambda *a, **k: True)\n")


def _nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    # nbgrader runs `alembic` from PATH; its config comes from course/ only (not the user's ~/.jupyter)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "JUPYTER_CONFIG_DIR": str(course / ".jupyter"), "COURSE_QUICK": "1"}
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--force"], cwd=course, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def course(tmp_path_factory, require):
    require("nbgrader", "the dev extra installs it")
    root = tmp_path_factory.mktemp("nbgrader-course")
    (root / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.root = {str(root)!r}\nc.CourseDirectory.course_id = 'course'\n"
        "c.Execute.timeout = 300\n", encoding="utf-8")
    shutil.copytree(SOLUTIONS, root / "source" / "all", ignore=shutil.ignore_patterns(".*"))
    return root


def _differences(ours, theirs) -> set[str]:
    kinds = set()
    for key in set(ours.metadata) | set(theirs.metadata):
        if key == "nbgrader":
            a, b = ours.metadata.get(key, {}), theirs.metadata.get(key, {})
            kinds |= {f"nbgrader.{k}" for k in set(a) | set(b) if a.get(k) != b.get(k)}
        elif ours.metadata.get(key) != theirs.metadata.get(key):
            kinds.add(key)
    return kinds


def test_generate_assignment_gives_our_exercises(course):
    _nbgrader(course, "generate_assignment", "all")
    sources = sorted((course / "source" / "all").glob("*.ipynb"))
    assert len(sources) >= 8
    seen = set()
    for source in sources:
        theirs = nbformat.read(course / "release" / "all" / source.name, as_version=4)
        ours = nbformat.reads(exercises.render(source, source.parent), as_version=4)
        header, cells = ours.cells[0], ours.cells[1:]
        assert header.id == exercises.HEADER_ID and "nbgrader" not in header.metadata, \
            "nbgrader's autograde rejects a notebook with an nbgrader cell its gradebook does not know"
        assert [(c.cell_type, c.id) for c in cells] == [(c.cell_type, c.id) for c in theirs.cells], source.name
        for a, b in zip(cells, theirs.cells):
            assert a.source == b.source, f"{source.name} cell {a.id}: the student versions differ"
            assert not getattr(b, "outputs", None) and getattr(b, "execution_count", None) is None
            kinds = _differences(a, b)
            assert kinds <= NBGRADER_ONLY, f"{source.name} cell {a.id}: new differences {kinds - NBGRADER_ONLY}"
            seen |= kinds
            if "deletable" in kinds:
                assert b.metadata["nbgrader"]["solution"] and b.metadata["deletable"] is False
    assert {"nbgrader.checksum", "deletable"} <= seen


def _gradebook_points(course: Path, assignment: str, notebook: str, students) -> dict[str, dict[str, float]]:
    from nbgrader.api import Gradebook
    points = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in students:
            nb = gb.find_submission_notebook(notebook, assignment, student)
            points[student] = {g.name: float(g.score) for g in nb.grades}
    return points


def test_autograde_gives_course_grade_points(course):
    ref = three_submissions.build()
    name = ref["solution"].stem
    (course / "source" / "ws01").mkdir()
    shutil.copyfile(ref["solution"], course / "source" / "ws01" / ref["solution"].name)
    _nbgrader(course, "generate_assignment", "ws01")
    students = dict(ref["subs"])
    cheater = nbformat.read(students["untouched"], as_version=4)
    cheater.cells.insert(2, nbformat.v4.new_code_cell(CHEATER))
    students["cheater"] = course / "cheater" / ref["solution"].name
    students["cheater"].parent.mkdir()
    nbformat.write(cheater, students["cheater"])
    for student, path in students.items():      # nbgrader's layout: submitted/<student>/<assignment>/<notebook>
        (course / "submitted" / student / "ws01").mkdir(parents=True)
        shutil.copyfile(path, course / "submitted" / student / "ws01" / path.name)
    _nbgrader(course, "autograde", "ws01")
    # course-grade reads that layout as it is: one student per folder of submitted/ (docs/grading.md, nbgrader)
    listed = grade.find_submissions([str(course / "submitted")], name)
    assert sorted((s.student, s.path.name) for s in listed) == sorted((s, f"{name}.ipynb") for s in students)
    points = _gradebook_points(course, "ws01", name, students)
    for student in ref["subs"]:
        assert points[student] == ref["points"][student], student
        assert sum(points[student].values()) == ref["total"][student]
    # the difference, made explicit: the untouched notebook with the checks replaced gets every point from
    # nbgrader (its hidden tests call the patched run_check in the student's kernel); course-grade judges the
    # outputs in its own process and gives the same notebook 0 (tests/test_grade.py, student "monkeypatch")
    assert points["cheater"] == ref["max"], points["cheater"]
    assert ref["total"]["untouched"] == 0
