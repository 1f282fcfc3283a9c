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
import time
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
    # what pyproject.toml names must travel with it: setuptools warns of a missing license file today and stops
    # the image's build from 2027-02-18 (an instructor's pass read the warning in a build of the bundle's course/)
    from conftest import pyproject
    project = pyproject(Path(gradescope.__file__).parents[1] / "pyproject.toml")["project"]
    named = [project["readme"], *project.get("license-files", [])]
    assert {f"course/{n}" for n in named} <= names, named
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


def test_the_image_gets_mnist_and_the_autograder_reads_it(bundle, tmp_path):
    """The lab trains on MNIST: a bundle without it made the lab's data cell raise in every submission, and each
    student read a note about 'your cell' (an instructor's test of the lab's bundle). setup.sh downloads MNIST into
    the image while its build has the internet; run_autograder points COURSE_DATA_DIR there. The download command
    runs here on a copy of the course's data (torchvision finds the files and downloads nothing)."""
    import re

    from course_utils.data import data_root
    with zipfile.ZipFile(bundle) as z:
        setup, run = z.read("setup.sh").decode(), z.read("run_autograder").decode()
    assert f'export COURSE_DATA_DIR="${{COURSE_DATA_DIR:-{gradescope.DATA}}}"' in run
    command = re.search(r'"\$VENV/bin/python" -c "(import torchvision\n.*?)" \|\|', setup, re.S).group(1)
    mnist = data_root() / "MNIST"
    if not (mnist / "raw").is_dir():
        pytest.skip(f"no MNIST under {data_root()} (COURSE_DATA_DIR) to stand for the download")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "MNIST").symlink_to(mnist)
    proc = subprocess.run([sys.executable, "-c", command.replace(gradescope.DATA, str(tmp_path / "data"))],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_missing_dataset_is_the_grader_s_setup_in_the_feedback_not_the_student_s_cell():
    """Without MNIST the lab's data cell raises DatasetNotFoundError and the cells after it NameError: the
    feedback said 'your cell ... raised', then a NameError note, and cut the command that fetches the data. It
    now says the grader lacks the data, and counts the NameErrors that follow in one line."""
    from course_utils.grade import cell_error_notes
    errors = [{"cell": "your cell starting `IMAGE_SIZE = ...`", "role": "student", "ename": "DatasetNotFoundError",
               "evalue": "the lab trains on mnist, which is not under /root/data (quick mode never downloads). To get "
                         "MNIST: python -c ..."},
              *[{"cell": f"your cell starting `x{i} = ...`", "role": "student", "ename": "NameError",
                 "evalue": "name 'channels' is not defined"} for i in range(3)]]
    notes = cell_error_notes(errors, [])
    assert len(notes) == 2, notes
    assert "the grader has no copy of it (the lab trains on mnist, which is not under /root/data (quick mode never " \
           "downloads))" in notes[0] and "not your work" in notes[0] and "To get" not in notes[0]
    assert notes[1] == "3 later cell(s) raised NameError for what the data cell would have defined."
    plain = cell_error_notes(errors[1:2], [])                    # a NameError on its own is the student's, as before
    assert len(plain) == 1 and "raised NameError" in plain[0] and "It is not graded itself" in plain[0]


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
    shown = gradescope.to_results(result, {"worksheet": "lab"})       # tests visible: the output has the score
    assert "3 / 5 points" in shown["output"] and "2 more points" in shown["output"]
    assert "Note:" not in shown["output"]
    # a blank written answer is still the hand-graded question's, not the autograder's: it made the lab's
    # automatic maximum 10 where the docs set the autograder to 7 (an instructor's pass of 2026-12-08)
    blank = {**result, "rows": result["rows"][:2] + [
        {"grade_id": "summary", "points": 0, "max_points": 2, "status": "not_implemented",
         "message": "not answered: the answer still reads YOUR ANSWER HERE"}]}
    out = _valid(gradescope.to_results(blank, {"worksheet": "lab"}))
    assert out["score"] == 3 and "3 / 5 points" in out["output"] and "2 more points" in out["output"], out["output"]
    assert out["tests"][2].get("score") is None and "graded by hand" in out["tests"][2]["name"]
    assert out["tests"][2]["output"].startswith("not answered"), out["tests"][2]
    # a bundle's config names SOURCE's written answers: a deleted answer cell, a file not read, are theirs too
    # (a review: "2 / 8" for a deleted summary)
    for status, said in (("missing", "the answer cell 'summary' is missing: 0 points"),
                         ("not_a_notebook", "not a notebook")):
        gone = {**result, "rows": result["rows"][:2] + [
            {"grade_id": "summary", "points": 0, "max_points": 2, "status": status, "message": said}]}
        out = _valid(gradescope.to_results(gone, {"worksheet": "lab", "written": ["summary"]}))
        assert out["score"] == 3 and "3 / 5 points" in out["output"], (status, out["output"])
        assert out["tests"][2].get("score") is None and out["tests"][2]["output"] == said


@pytest.mark.parametrize("visibility", ["after_due_date", "after_published", "hidden"])
def test_tests_hidden_for_now_hide_the_score_in_the_output_too(visibility):
    """Gradescope hides the total score while the tests are hidden; the top-level output, which every student
    sees, said "7 / 8 points graded automatically" and each cell's Note beside tests set after_due_date."""
    result = {"worksheet": "01_schedules", "rows": PASSED + [
        {"grade_id": "test_y", "points": 0, "max_points": 1, "status": "fail", "message": "❌ y: wrong"}],
        "cell_errors": [{"cell": "code cell 3", "role": "student", "ename": "ZeroDivisionError",
                         "evalue": "division by zero"}]}
    config = {"worksheet": "01_schedules", "test_visibility": visibility}
    out = _valid(gradescope.to_results(result, config))
    assert "points" not in out["output"] and "Note" not in out["output"] and "graded" in out["output"], out["output"]
    assert all(t["visibility"] == visibility for t in out["tests"]) and out["score"] == 2
    shown = _valid(gradescope.to_results(result, {**config, "test_visibility": "visible"}))
    assert "2 / 3 points" in shown["output"] and "Note:" in shown["output"], shown["output"]


def test_export_says_what_gradescope_s_settings_need(tmp_path, capsys):
    """The export's defaults fit Gradescope's default autograder timeout (600 s) with the grader's start, and it
    says which timeout and memory to set there (an instructor's pass: a submission at the old default of 600 s was
    killed by Gradescope's own timeout and got no results.json)."""
    assert gradescope.main([str(corpus.SOLUTION), "--out", str(tmp_path / "a.zip")]) == 0
    out = capsys.readouterr().out
    assert "autograder timeout of at least 600 s" in out and "a container of at least 2.8 GB" in out, out
    assert gradescope.main([str(corpus.SOLUTION), "--out", str(tmp_path / "b.zip"), "--timeout", "2400"]) == 0
    assert "leaves no room in Gradescope's longest autograder timeout (40 minutes)" in capsys.readouterr().err


def test_a_passing_todo_worth_no_points_is_shown_passed():
    """A practice TODO worth 0 points that the student got right: its status comes from the check's verdict, not
    from its points, so Gradescope shows it passed (a red "failed" on correct work sends students to the
    instructor), and a failed TODO stays failed."""
    result = {"worksheet": "lab", "status": "graded", "message": "", "rows": [
        {"grade_id": "test_practice", "points": 0, "max_points": 0, "status": "pass", "message": "✅ x: correct"},
        {"grade_id": "test_y", "points": 0, "max_points": 2, "status": "fail", "message": "❌ y: hint"}]}
    out = _valid(gradescope.to_results(result, {"worksheet": "lab"}))
    assert [(t["score"], t["status"]) for t in out["tests"]] == [(0, "passed"), (0, "failed")]


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
                     "whatever it would have defined after that point was missing for the cells after it."], notes
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
    # two copies named like the worksheet: neither is picked at random, the student is told
    ({"a/01_schedules.ipynb": b"", "b/01_schedules.ipynb": b""}, None, "2 of them named 01_schedules.ipynb"),
    # course-grade's rule for a student's folder (grade.pick_notebook), so both graders pick the same notebook:
    # the shallowest one named like the worksheet, any case of .ipynb, at most 4 folder levels down
    ({"01_schedules.ipynb": b"", "old/01_schedules.ipynb": b""}, "01_schedules.ipynb", "old/01_schedules.ipynb"),
    ({"hw/01_schedules.IPYNB": b""}, "hw/01_schedules.IPYNB", ""),
    ({"a/b/c/d/01_schedules.ipynb": b""}, "a/b/c/d/01_schedules.ipynb", ""),
    ({"a/b/c/d/e/01_schedules.ipynb": b"", "notes.txt": b""}, None,
     "nor 4 folder levels below; it holds: a, notes.txt"),
])
def test_find_notebook(tmp_path, files, chosen, message):
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    path, note = gradescope.find_notebook(tmp_path, "01_schedules")
    assert (path.relative_to(tmp_path).as_posix() if path else None) == chosen
    assert message in note


@pytest.mark.parametrize("names", [
    [os.fsdecode(b"a\xff.ipynb"), "b.ipynb"],          # two notebooks, one name of bytes that are not UTF-8
    [os.fsdecode(b"notes\xff.txt")],                   # no notebook: the folder's files are listed
    ["a.ipynb", "x), none named it.\n\nWorksheet 01_schedules: 8 \u2215 8 points graded automatically.\n\n(y.ipynb"],
])
def test_odd_file_names_get_results_and_fake_no_line(bundle, tmp_path, names):
    """A file name of bytes that are not UTF-8 (a GitHub submission can hold one) made results.json unwritable:
    Gradescope showed the student "The autograder failed", on every rerun; a name with line breaks wrote a fake
    "8 / 8 points" paragraph into a 0-point result. Both are shown on one line, in valid UTF-8."""
    root = _autograder_root(bundle, tmp_path / "ag", {name: b"" for name in names})
    results = _valid(gradescope.run(root))
    assert results["score"] == 0 and "0 points" in results["output"], results["output"]
    assert "failed" not in results["output"] and len(results["output"].splitlines()) == 1, results["output"]
    json.loads((root / "results" / "results.json").read_bytes().decode("utf-8"))     # strict UTF-8
    assert not list((root / "results").glob(".*.tmp"))


def _graded_by_a_fake_course_grade(bundle, tmp_path, monkeypatch, *, returncode: int, rows: list[dict],
                                   status: str = "graded", sleep: float = 0.0, extra: dict | None = None):
    """run() on the solution as a submission, with course-grade replaced by a fake that leaves one result file
    holding ``rows`` and exits with ``returncode``; returns (results.json, course-grade's command, the keyword
    arguments of subprocess.run)."""
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append((cmd, kwargs))
        folder = Path(cmd[cmd.index("--out") + 1]) / "results" / "01_schedules"
        folder.mkdir(parents=True)
        (folder / "student.json").write_text(json.dumps({"worksheet": "01_schedules", "status": status,
                                                          "message": "", "rows": rows, **(extra or {})}),
                                              encoding="utf-8")
        time.sleep(sleep)
        return subprocess.CompletedProcess(cmd, returncode, "", "")

    root = _autograder_root(bundle, tmp_path / "ag", {corpus.SOLUTION.name: corpus.SOLUTION.read_bytes()})
    monkeypatch.setattr(gradescope.subprocess, "run", fake_run)
    results = _valid(gradescope.run(root))
    assert len(calls) == 1, results["output"]
    return (results, *calls[0])


PASSED = [{"grade_id": "test_x", "points": 2, "max_points": 2, "status": "pass", "message": "✅ x: correct"}]


def test_course_grade_gets_the_bundles_limits(bundle, tmp_path, monkeypatch):
    """The limits chosen at export (the bundle's --timeout 400, and --memory-mb 2048 by default) are the ones
    course-grade enforces: its own defaults (900 s, 4096 MB) are larger than a Gradescope container, whose
    kill would leave the student no results.json instead of course-grade's verdict on a greedy submission."""
    from course_utils import grade
    results, cmd, _ = _graded_by_a_fake_course_grade(bundle, tmp_path, monkeypatch, returncode=0, rows=PASSED)
    assert results["score"] == 2
    with zipfile.ZipFile(bundle) as z:
        options = json.loads(z.read("config.json"))["options"]
    assert options["timeout"] == 400 < grade.Options.timeout and options["memory_mb"] == 2048 < grade.Options.memory_mb
    given = {flag: value for flag, value in zip(cmd, cmd[1:]) if flag.startswith("--")}
    assert (given.get("--timeout"), given.get("--memory-mb")) == ("400.0", "2048"), cmd
    for key, value in options.items():          # and the others chosen at export
        assert given.get(f"--{key.replace('_', '-')}") == str(value), (key, cmd)


def test_a_hung_course_grade_is_stopped(bundle, tmp_path, monkeypatch):
    """course-grade stops a submission at its --timeout; should course-grade itself hang, the autograder stops
    waiting 900 s later and still writes a results.json (run() turns the TimeoutExpired into a 0 that asks for a
    rerun), rather than sitting until Gradescope kills the container with no result for the student."""
    _, _, kwargs = _graded_by_a_fake_course_grade(bundle, tmp_path, monkeypatch, returncode=0, rows=PASSED)
    assert kwargs.get("timeout") == 400 + 900, kwargs


def test_a_failed_course_grade_scores_nothing_even_with_a_result(bundle, tmp_path, monkeypatch):
    """course-grade exiting non-zero after it wrote the student's result (a crash while writing the report, a kill
    at the end) is a run that did not finish: the student gets 0 points and the message that it is the grader's
    error, to be rerun, never a score from that run's file."""
    results, _, _ = _graded_by_a_fake_course_grade(bundle, tmp_path, monkeypatch, returncode=1, rows=PASSED)
    assert results["score"] == 0 and results["tests"] == []
    assert "could not grade this submission (course-grade exit status 1)" in results["output"], results["output"]


def test_a_grader_error_is_no_verdict_on_gradescope(bundle, tmp_path, monkeypatch):
    """course-grade's grader error (a bug, or a sandbox it could not set up) says "it will be graded again on the
    next run", which never comes on Gradescope: the student gets the message to ask for a rerun, no test rows.
    course-grade exits EXIT_NO_VERDICT then (its one submission has no verdict): that status alone read as "could
    not grade (exit status 3)" until a review of 2026-12-07."""
    from course_utils import grade
    rows = [{"grade_id": "test_x", "points": 0, "max_points": 2, "status": "grader_error",
             "message": grade.NOT_SET_UP}]
    results, _, _ = _graded_by_a_fake_course_grade(bundle, tmp_path, monkeypatch, returncode=grade.EXIT_NO_VERDICT,
                                                   rows=rows, status="grader_error")
    assert results["score"] == 0 and results["tests"] == []
    assert results["output"] == ("The autograder could not grade this submission (an error of the grader, not a "
                                 "verdict on your work); ask your instructor to rerun it."), results["output"]


def test_the_time_shown_leaves_the_second_run_out(bundle, tmp_path, monkeypatch):
    """A second run (grade_callees) runs the student's code beside the course's answer to a TODO it calls: how
    long it took is the student's code's doing, so the execution time Gradescope shows leaves it out."""
    results, _, _ = _graded_by_a_fake_course_grade(bundle, tmp_path, monkeypatch, returncode=0, rows=PASSED,
                                                   sleep=3.0, extra={"second_run_seconds": 3.0})
    assert results["execution_time"] <= 1, results["execution_time"]
    results, _, _ = _graded_by_a_fake_course_grade(bundle, tmp_path / "b", monkeypatch, returncode=0, rows=PASSED,
                                                   sleep=3.0)
    assert results["execution_time"] >= 3, results["execution_time"]


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
        assert "course-gradescope-" not in stdout       # no path of the temporary output, deleted by then
        if student == "partial":
            assert ref["hint"] in by_id[ref["partial_grade_id"]]["output"]
            assert by_id[ref["partial_grade_id"]]["status"] == "failed"
        if student == "untouched":
            assert all("not implemented" in t["output"] for t in results["tests"])


@pytest.mark.slow
@pytest.mark.parametrize("files, message", [
    ({"notes.txt": b"hello"}, "No notebook"),
    ({"a.ipynb": b"{}", "b.ipynb": b"{}"}, "holds 2 notebooks"),
    ({"01_schedules.ipynb": b"this is not JSON {"}, "the file is plain text"),
    ({"01_schedules.ipynb": b'{"cells": [{"cell'}, "not valid JSON"),
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
