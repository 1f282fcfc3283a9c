"""The Gradescope bundle (course_utils/gradescope.py): its layout, and run_autograder in a folder laid out like
Gradescope's /autograder, run with this machine's Python (setup.sh's installs are skipped; its syntax is checked).

results.json is validated against Gradescope's documented format ("Autograder Specifications", written out as a
JSON schema below), and its scores must equal course-grade's for the same submissions (tests/three_submissions.py).
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import nbformat
import pytest

from course_utils import gradescope

import grading_corpus as corpus
import three_submissions

VIS = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
FMT = {"enum": ["text", "simple_format", "html", "md", "ansi"]}
TEST = {"type": "object", "additionalProperties": False, "properties": {
    "score": {"type": "number"}, "max_score": {"type": "number"}, "status": {"enum": ["passed", "failed"]},
    "name": {"type": "string"}, "name_format": FMT, "number": {"type": "string"}, "output": {"type": "string"},
    "output_format": FMT, "tags": {"type": "array", "items": {"type": "string"}}, "visibility": VIS,
    "extra_data": {"type": "object"}}}
# Gradescope's results.json; "score" is optional at the top when every test has one
SCHEMA = {"type": "object", "additionalProperties": False, "properties": {
    "score": {"type": "number"}, "execution_time": {"type": "number"}, "output": {"type": "string"},
    "output_format": FMT, "test_output_format": FMT, "test_name_format": FMT, "visibility": VIS,
    "stdout_visibility": VIS, "extra_data": {"type": "object"}, "tests": {"type": "array", "items": TEST},
    "leaderboard": {"type": "array"}},
    "anyOf": [{"required": ["score"]},
              {"required": ["tests"], "properties": {"tests": {"items": {"required": ["score"]}}}}]}
ROOT_FILES = {"setup.sh", "run_autograder", "config.json"}


def _valid(results: dict) -> dict:
    jsonschema.validate(results, SCHEMA)
    return results


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("bundle") / "autograder.zip"
    assert gradescope.main([str(corpus.SOLUTION), "--out", str(path), "--timeout", "400"]) == 0
    return path


def _autograder_root(bundle: Path, folder: Path, files: dict[str, bytes]) -> Path:
    """``folder`` laid out like Gradescope's /autograder: source/ (the unzipped bundle), submission/, results/."""
    (folder / "results").mkdir(parents=True)
    with zipfile.ZipFile(bundle) as z:
        z.extractall(folder / "source")
    for name, data in files.items():
        (folder / "submission" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "submission" / name).write_bytes(data)
    (folder / "submission").mkdir(exist_ok=True)
    return folder


def _run_autograder(root: Path, python: str = sys.executable) -> tuple[dict, str]:
    # the bundle's copy of the package goes first, so that what is tested is what Gradescope installs
    env = {**os.environ, "COURSE_AUTOGRADER_ROOT": str(root), "COURSE_AUTOGRADER_PYTHON": python,
           "PYTHONPATH": str(root / "source" / "course")}
    proc = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads((root / "results" / "results.json").read_text(encoding="utf-8")), proc.stdout


def test_bundle_layout(bundle, tmp_path):
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in z.infolist()}
        config = json.loads(z.read("config.json"))
    assert ROOT_FILES <= names and f"worksheet/{corpus.SOLUTION.name}" in names
    assert {"course/pyproject.toml", "course/README.md", "course/course_utils/grade.py",
            "course/course_utils/gradescope.py", "course/course_utils/sandbox/runner.py"} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert modes["run_autograder"] & stat.S_IXUSR and modes["setup.sh"] & stat.S_IXUSR
    assert config["worksheet"] == "01_schedules" and config["options"]["timeout"] == 400
    for script in ("setup.sh", "run_autograder"):        # setup.sh's installs are not run here: syntax only
        with zipfile.ZipFile(bundle) as z:
            (tmp_path / script).write_bytes(z.read(script))
        proc = subprocess.run(["bash", "-n", str(tmp_path / script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    again = tmp_path / "again.zip"
    assert gradescope.main([str(corpus.SOLUTION), "--out", str(again), "--timeout", "400"]) == 0
    assert again.read_bytes() == bundle.read_bytes(), "the same SOURCE must give the same bundle"


def test_export_refuses_a_notebook_without_graded_cells(tmp_path, capsys):
    nb = tmp_path / "plain.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), nb)
    assert gradescope.main([str(nb), "--out", str(tmp_path / "a.zip")]) == 2
    assert "no graded cells" in capsys.readouterr().err and not (tmp_path / "a.zip").exists()


def test_results_of_a_result_with_a_written_answer():
    result = {"worksheet": "lab", "status": "graded", "message": "", "rows": [
        {"grade_id": "test_x", "points": 3, "max_points": 3, "status": "pass", "message": "✅ x: correct"},
        {"grade_id": "test_y", "points": 0, "max_points": 2, "status": "fail", "message": "❌ y: hint\nline"},
        {"grade_id": "summary", "points": "", "max_points": 2, "status": "manual", "message": "by hand"}]}
    out = _valid(gradescope.to_results(result, {"worksheet": "lab", "test_visibility": "after_due_date"},
                                       seconds=12.3))
    assert out["score"] == 3 and [t.get("score") for t in out["tests"]] == [3, 0, None]
    assert [t.get("status") for t in out["tests"]] == ["passed", "failed", None]
    assert out["tests"][1]["output"] == "y: hint line" and "graded by hand" in out["tests"][2]["name"]
    assert all(t["visibility"] == "after_due_date" for t in out["tests"]) and out["execution_time"] == 12
    assert "3 / 5 points" in out["output"] and "2 more points" in out["output"]
    assert "Note:" not in out["output"]


def test_results_say_which_cells_raised_outside_the_todos():
    """As in course-grade's feedback: the student reads which of their cells raised (not twice when a failed TODO's
    message names it already), on one line each."""
    named = "your cell starting `scale = load()`"
    result = {"worksheet": "lab", "status": "graded", "message": "", "rows": [
        {"grade_id": "test_x", "points": 0, "max_points": 3, "status": "error",
         "message": f"❌ x: NameError [before it, {named} raised OSError: gone]"}],
        "cell_errors": [{"cell": named, "role": "student", "ename": "OSError", "evalue": "gone"},
                        {"cell": "your cell starting `plot()`", "role": "student", "ename": "ValueError",
                         "evalue": "bad\nshape"}, "junk"]}
    out = _valid(gradescope.to_results(result, {"worksheet": "lab"}))
    notes = [line for line in out["output"].splitlines() if line.startswith("Note:")]
    assert notes == ["Note: your cell starting `plot()` raised ValueError: bad shape. It is not graded itself, but "
                     "the cells after it ran without what it should have defined."], notes
    assert out["extra_data"]["course_grade"]["cell_errors"] == result["cell_errors"]
    # and what the code changes of torch or the course (grade_scan), as in the feedback
    result["monkeypatches"] = [{"cell": "your cell starting `import torch`", "what": "torch.equal"}, "junk"]
    out = _valid(gradescope.to_results(result, {"worksheet": "lab"}))
    assert ("Note: your cell starting `import torch` changes `torch.equal`, which the course's tools rely on. The "
            "grader judges your functions' outputs in its own process, so this changes no verdict; your instructor "
            "will read this code.") in out["output"].splitlines()


@pytest.mark.parametrize("files, chosen, message", [
    ({}, None, "No notebook"),
    ({"a.py": b""}, None, "it holds: a.py"),
    ({"x/01_schedules.ipynb": b"", ".ipynb_checkpoints/01_schedules-checkpoint.ipynb": b""}, "x/01_schedules.ipynb",
     ""),
    ({"a.ipynb": b"", "b.ipynb": b""}, None, "holds 2 notebooks"),
    ({"01_schedules.ipynb": b"", "scratch.ipynb": b""}, "01_schedules.ipynb", "ignored the other notebooks"),
])
def test_find_notebook(tmp_path, files, chosen, message):
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    path, note = gradescope.find_notebook(tmp_path, "01_schedules")
    assert (path.relative_to(tmp_path).as_posix() if path else None) == chosen
    assert message in note


@pytest.mark.slow
def test_scores_equal_course_grade(bundle, tmp_path):
    """Correct, partial and untouched submissions: the same points as course-grade, TODO by TODO."""
    ref = three_submissions.build()
    roots = {student: _autograder_root(bundle, tmp_path / student, {path.name: path.read_bytes()})
             for student, path in ref["subs"].items()}
    with ThreadPoolExecutor(len(roots)) as pool:      # three containers at once, as on Gradescope
        runs = dict(zip(roots, pool.map(_run_autograder, roots.values())))
    for student, root in roots.items():
        results, stdout = runs[student]
        _valid(results)
        assert results["score"] == ref["total"][student], (student, results, stdout)
        by_id = {t["extra_data"]["grade_id"]: t for t in results["tests"]}
        assert {gid: t["score"] for gid, t in by_id.items()} == ref["points"][student], student
        assert {gid: t["max_score"] for gid, t in by_id.items()} == ref["max"]
        assert str(root / "source" / "course") in stdout, "the bundle's copy of the package must be the one run"
        assert "held: files" in stdout or "no file-system sandbox" in stdout    # the instructor sees what held
        if student == "partial":
            assert ref["hint"] in by_id[ref["partial_grade_id"]]["output"]
            assert by_id[ref["partial_grade_id"]]["status"] == "failed"
        if student == "untouched":
            assert all("not implemented" in t["output"] for t in results["tests"])


@pytest.mark.slow
@pytest.mark.parametrize("files, message", [
    ({"notes.txt": b"hello"}, "No notebook"),
    ({"a.ipynb": b"{}", "b.ipynb": b"{}"}, "holds 2 notebooks"),
    ({"01_schedules.ipynb": b"this is not JSON {"}, "not valid JSON"),
])
def test_unusable_submissions_score_zero_with_a_reason(bundle, tmp_path, files, message):
    results, _ = _run_autograder(_autograder_root(bundle, tmp_path / "ag", files))
    _valid(results)
    assert results["score"] == 0 and message in results["output"]


@pytest.mark.slow
def test_a_grader_that_cannot_start_still_leaves_results(bundle, tmp_path):
    root = _autograder_root(bundle, tmp_path / "ag", {"01_schedules.ipynb": b"{}"})
    results, stdout = _run_autograder(root, python=str(tmp_path / "no-such-python"))
    _valid(results)
    assert results["score"] == 0 and "failed before it could grade" in results["output"], stdout
