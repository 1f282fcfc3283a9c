"""The grader (course_utils.grade) on a class of synthetic submissions (tests/grading_corpus.py).

One grading run over the whole corpus is shared by the tests of this module (2 workers, short time limits),
so the module takes a couple of minutes of CPU; the unit tests at the end need no kernel. The run grades a
copy of solutions/ (others may edit the real one meanwhile) and keeps its temporary folders in a folder of its
own, so that two runs of this module on one machine (two CI jobs) never count each other's processes.
tests/test_grade_attacks.py grades a class of dishonest submissions.
"""
from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import torch

from course_utils import grade, sandbox

import grading_corpus as corpus

pytestmark = pytest.mark.slow

LANDLOCK = sandbox.landlock_abi() > 0
ARGS = ["--workers", "2", "--cell-timeout", "20", "--timeout", "400", "--memory-mb", "2048",
        "--max-notebook-mb", "4", "--quiet", "--allow-root"]      # CI runs as root; docs/grading.md says why not to


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _grade(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "course_utils.grade", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=900)


def _rows(out: Path) -> dict[str, dict[str, dict]]:
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    table: dict[str, dict[str, dict]] = {}
    for row in rows:
        table.setdefault(row["student"], {})[row["grade_id"]] = row
    return table


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    if not corpus.SOLUTION.exists():
        pytest.fail(f"{corpus.SOLUTION} is missing: the grader's corpus is built from it")
    root = tmp_path_factory.mktemp("grading")
    subs, out, gtmp = root / "submissions", root / "out", root / "tmp"
    gtmp.mkdir()
    solutions = root / "solutions"
    shutil.copytree(corpus.SOLUTION.parent, solutions, ignore=shutil.ignore_patterns(".*"))
    solution = solutions / corpus.SOLUTION.name
    expected = corpus.build_corpus(subs, solution, source_dir=solutions)
    before_subs, before_solutions = _hashes(subs), _hashes(solutions)
    env = {**os.environ, "TMPDIR": str(gtmp), "COURSE_GRADE_SECRET": "s3cret"}
    start = time.monotonic()
    proc = _grade(solution, subs, "--out", out, *ARGS, env=env)
    seconds = time.monotonic() - start
    print(f"grading {len(expected)} submissions took {seconds:.0f} s")
    return dict(root=root, subs=subs, out=out, tmp=gtmp, env=env, expected=expected, proc=proc, seconds=seconds,
                solution=solution, solutions=solutions, before_subs=before_subs, before_solutions=before_solutions)


def test_the_run_completes(graded):
    proc = graded["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (graded["out"] / "grades.csv").exists()
    assert f"{len(graded['expected'])} graded" in proc.stdout


def test_every_submission_gets_its_expected_points_and_message(graded):
    table = _rows(graded["out"])
    problems = []
    for student, expect in graded["expected"].items():
        if student == "file_attack":
            continue        # test_file_attacks_fail
        rows = table.get(student)
        if rows is None:
            problems.append(f"{student}: no rows")
            continue
        assert set(rows) == set(expect) | {"TOTAL"}, student
        problems += corpus.row_problems(student, rows, expect)
        total = rows["TOTAL"]
        assert float(total["points"]) == sum(p for p, _, _ in expect.values()), student
        assert float(total["max_points"]) == sum(float(rows[g]["max_points"]) for g in expect), student
    assert not problems, "\n".join(problems)


def test_code_that_changes_the_graders_tools_is_named(graded):
    """The monkeypatching student earns nothing (test_every_submission_gets_its_expected_points_and_message); the
    result names what the code changes, the feedback says so, and the report lists the student for attention."""
    result = json.loads((graded["out"] / "results" / corpus.SOLUTION.stem / "monkeypatch.json").read_text())
    changed = {f["what"] for f in result["monkeypatches"]}
    assert {"torch.allclose", "torch.equal", "course_utils.checks.verdict", "builtins.all"} <= changed, changed
    feedback = (graded["out"] / "feedback" / "monkeypatch.md").read_text(encoding="utf-8")
    assert "this changes no verdict; your instructor will read this code" in feedback
    attention = (graded["out"] / "report.html").read_text(encoding="utf-8").split("<h2>Students who need attention")[1]
    assert "<td>monkeypatch</td>" in attention and "its code changes what the grader relies on" in attention
    honest = json.loads((graded["out"] / "results" / corpus.SOLUTION.stem / "correct.json").read_text())
    assert honest["monkeypatches"] == []


def test_max_points_come_from_the_source(graded):
    points = {gid: float(p) for gid, _, _, p in corpus.graded_checks(
        __import__("nbformat").read(graded["solution"], as_version=4))}
    for student, rows in _rows(graded["out"]).items():
        for gid, p in points.items():
            assert float(rows[gid]["max_points"]) == p, (student, gid)   # edited_tests claimed 100


def test_file_attacks_fail(graded):
    if not LANDLOCK:
        pytest.skip("Landlock is unavailable on this Linux kernel: absolute paths are readable and writable "
                    "by students' code (docs/grading.md, limits)")
    rows = _rows(graded["out"])["file_attack"]
    assert all(r["status"] == "pass" for g, r in rows.items() if g != "TOTAL"), rows
    hacked = [p for p in (graded["solutions"] / "HACKED.txt", Path.home() / "HACKED.txt",
                          graded["subs"] / "correct" / "HACKED.txt") if p.exists()]
    assert not hacked


def test_submissions_and_solutions_are_unchanged(graded):
    assert _hashes(graded["subs"]) == graded["before_subs"]
    assert _hashes(graded["solutions"]) == graded["before_solutions"]


def test_no_process_and_no_temporary_folder_is_left(graded):
    pytest.importorskip("psutil")
    assert not corpus.own_processes(graded["tmp"])
    assert list(graded["tmp"].iterdir()) == []


def test_feedback_per_student(graded):
    fb = graded["out"] / "feedback"
    for student, expect in graded["expected"].items():
        text = (fb / f"{student}.md").read_text()
        assert f"# Feedback for {student}" in text
        for gid, (_, _, needle) in expect.items():
            assert f"**{gid}**" in text
            if needle == "correct":     # a pass reads "passed." alone, not the check's "X: correct" after it
                assert next(line for line in text.splitlines() if f"**{gid}**" in line).endswith(": passed.")
            elif needle and student.startswith("wrong_"):
                assert needle in text
    assert "not passed" in (fb / "untouched.md").read_text()


def test_results_are_small_and_the_environment_is_scrubbed(graded):
    for f in (graded["out"] / "results").rglob("*.json"):
        assert f.stat().st_size < 50_000, f      # the 3 MB output of huge_output is not stored
    assert "s3cret" not in (graded["out"] / "grades.csv").read_text()


def test_rerun_skips_what_was_graded(graded):
    out, subs = graded["out"], graded["subs"]
    csv_before = (out / "grades.csv").read_text()
    proc = _grade(graded["solution"], subs, "--out", out, *ARGS, env=graded["env"])
    assert proc.returncode == 0 and "0 graded" in proc.stdout, proc.stdout + proc.stderr
    assert (out / "grades.csv").read_text() == csv_before
    # an interrupted run: one result missing, one left half-written
    (out / "results" / "01_schedules" / "empty.json").unlink()
    (out / "results" / "01_schedules" / "not_json.json").write_text('{"student": "not_js')
    proc = _grade(graded["solution"], subs, "--out", out, *ARGS, env=graded["env"])
    assert proc.returncode == 0 and "2 graded" in proc.stdout, proc.stdout + proc.stderr
    # the summary line names the submissions that got a row of zeros without being run (an instructor read "2
    # graded" and looked for two grades)
    assert ("2 graded (2 of them could not be graded: empty (empty), not_json (not_a_notebook); grades.csv says "
            "why)") in proc.stdout, proc.stdout
    assert (out / "grades.csv").read_text() == csv_before
    proc = _grade(graded["solution"], subs / "not_json", "--out", out, "--force", *ARGS, env=graded["env"])
    # "0 already graded (use --force to regrade)" was printed to an instructor who had just used --force
    said = ("1 graded (1 of them could not be graded: not_json (not_a_notebook); grades.csv says why), every "
            "submission regraded (--force)")
    assert proc.returncode == 0 and said in proc.stdout, proc.stdout


def test_a_rerun_regrades_what_another_grader_or_other_limits_graded(graded, tmp_path):
    """An instructor who upgrades course_utils (a check fixed) or raises --timeout after a few timeouts and runs
    course-grade again got the old verdicts back: a rerun kept every result of the same SOURCE and submission.
    Now a result graded by another course_utils is graded again, one graded under other limits too unless the
    limits grew and it lost nothing to them, and each kind is named on stderr, with the students whose points
    changed; a result of a student outside the run that another course_utils graded is named as well."""
    out = tmp_path / "out"
    shutil.copytree(graded["out"], out)
    results = out / "results" / "01_schedules"

    def edit(student, **changes):
        path = results / f"{student}.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | changes))
    now = grade.Options(cell_timeout=20, timeout=400, memory_mb=2048, max_notebook_mb=4).graded_under()
    assert json.loads((results / "correct.json").read_text())["limits"] == now
    edit("correct", limits=now | {"timeout": 300})         # more time now, and it lost nothing: kept
    edit("empty", grader_sha256="0" * 64,                   # another version of the package, and of torch
         graded_with=grade.graded_with() | {"torch": "1.0.0"})
    old = json.loads((results / "not_json.json").read_text())["rows"]
    edit("not_json", limits=now | {"timeout": 500},          # less time now; and its points then were others
         rows=[dict(old[0], points=1.5)] + old[1:])
    proc = _grade(graded["solution"], graded["subs"], "--out", out, *ARGS, env=graded["env"])
    assert proc.returncode == 0 and "2 graded" in proc.stdout, proc.stdout + proc.stderr
    assert ("1 result(s) of 01_schedules were graded by another version of course_utils (a check or a hint "
            "changed) or of Python or a library it grades with (torch 1.0.0 -> "
            f"{grade.graded_with()['torch']}): graded again") in proc.stderr, proc.stderr
    assert "1 result(s) of 01_schedules were graded under other limits (--timeout 500 -> 400): graded again" \
        in proc.stderr, proc.stderr
    # whose points moved, so that an instructor who published grades knows whom to tell
    assert ("the automatic points of 1 student(s) graded again changed: not_json 1.5 -> 0 (other limits)"
            in proc.stderr), proc.stderr
    assert {json.loads((results / f"{s}.json").read_text())["grader_sha256"] for s in ("empty", "not_json")} \
        == {grade.grader_sha256()}
    assert json.loads((results / "correct.json").read_text())["limits"]["timeout"] == 300
    # one student given alone: the others' results stay, and one of another course_utils is named
    edit("empty", grader_sha256="0" * 64)
    proc = _grade(graded["solution"], graded["subs"] / "correct", "--out", out, *ARGS, env=graded["env"])
    assert proc.returncode == 0 and "0 graded" in proc.stdout, proc.stdout + proc.stderr
    assert "1 result(s) in" in proc.stderr and "not part of this run were graded by another version of " \
        "course_utils or of Python or a library it grades with (empty): grades.csv shows them as graded then" \
        in proc.stderr, proc.stderr


# ------------------------------------------------------------------ a manually graded summary
def test_manual_answer_is_quoted_for_the_instructor(tmp_path):
    from course_utils import exercises
    import nbformat
    source = corpus.fixture_solution(tmp_path / "lab" / "lab_fixture.ipynb")
    nb = nbformat.read(source, as_version=4)
    nb.cells[-1].source = "My summary: the *angle* is linear in t.\nSecond line."
    (tmp_path / "subs" / "eve").mkdir(parents=True)
    nbformat.write(nb, tmp_path / "subs" / "eve" / "lab_fixture.ipynb")
    nbformat.write(exercises.student_notebook(nbformat.read(source, as_version=4), "x"),
                   tmp_path / "subs" / "tom.ipynb")
    proc = _grade(source, tmp_path / "subs", "--out", tmp_path / "out", *ARGS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = _rows(tmp_path / "out")
    assert rows["eve"]["test_diffusion_schedule"]["points"] == "3"
    assert rows["eve"]["summary"]["status"] == "manual" and rows["eve"]["summary"]["points"] == ""
    assert rows["eve"]["TOTAL"]["points"] == "3" and rows["eve"]["TOTAL"]["max_points"] == "5"
    assert "2 points to grade by hand" in rows["eve"]["TOTAL"]["message"]
    text = (tmp_path / "out" / "feedback" / "eve.md").read_text()
    assert "```text\nMy summary: the *angle* is linear in t.\nSecond line.\n```" in text     # as typed
    assert rows["tom"]["summary"]["status"] == "not_implemented" and rows["tom"]["summary"]["points"] == "0"
    assert rows["tom"]["test_diffusion_schedule"]["status"] == "not_implemented"



def _eve_scales_her_schedule(tmp_path: Path, factor: str) -> Path:
    """The lab fixture's SOURCE, and subs/eve.ipynb: its answer with the angle's span multiplied by the Python
    expression ``factor`` (right when it is 1)."""
    import nbformat
    source = corpus.fixture_solution(tmp_path / "lab" / "lab_fixture.ipynb")
    nb = nbformat.read(source, as_version=4)
    cell = corpus._test_cell(nb, "diffusion_schedule")
    right = "angles = start + diffusion_times * (end - start)"
    assert right in cell.source
    cell.source = cell.source.replace(right, f"{right} * {factor}")
    (tmp_path / "subs").mkdir()
    nbformat.write(nb, tmp_path / "subs" / "eve.ipynb")
    return source


@pytest.mark.parametrize("path", ["zygote", "kernel"])
def test_submissions_run_in_quick_mode(tmp_path, path):
    """docs/grading.md: COURSE_QUICK=1 in the sandbox, whatever the grader's environment (its training cells are
    short). The submission's schedule is right in quick mode only, so full mode costs it the points."""
    source = _eve_scales_her_schedule(tmp_path, "__import__('course_utils.settings').settings.pick(0.0, 1.0)")
    env = {k: v for k, v in os.environ.items() if k != "COURSE_QUICK"}
    proc = _grade(source, tmp_path / "subs", "--out", tmp_path / "out", *ARGS,
                  *(["--no-pool"] if path == "kernel" else []), env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = _rows(tmp_path / "out")["eve"]["test_diffusion_schedule"]
    assert (row["status"], row["points"]) == ("pass", "3"), row


def test_the_data_root_is_readable_unless_it_holds_the_class(tmp_path):
    """The lab trains on MNIST from $COURSE_DATA_DIR: the sandbox reads that folder (read-only), unless it also
    holds the submissions (or SOURCE, the output, the home folder): then it reads nothing there, and a note says
    why. The submission's schedule is right only when it can read scale.txt in the data root."""
    source = _eve_scales_her_schedule(
        tmp_path, "float(open(__import__('course_utils.data').data.data_root() / 'scale.txt').read())")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "scale.txt").write_text("1.0")
    (tmp_path / "scale.txt").write_text("1.0")
    for data, points in ((tmp_path / "data", "3"), (tmp_path, "0")):
        out = tmp_path / f"out-{data.name}"
        proc = _grade(source, tmp_path / "subs", "--out", out, *ARGS, env={**os.environ, "COURSE_DATA_DIR": str(data)})
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert _rows(out)["eve"]["test_diffusion_schedule"]["points"] == points, data
        notes = json.loads((out / "results" / "lab_fixture" / "eve.json").read_text())["notes"]
        assert any("cannot read it" in n for n in notes) == (points == "0"), notes


@pytest.mark.parametrize("path", ["zygote", "kernel"])
def test_cells_that_raise_outside_the_todos_are_reported(tmp_path, path):
    """A cell that raises outside a graded TODO costs no points by itself, but the student and the instructor are
    told: in the result's cell_errors, in the feedback's notes (unless a failed TODO's message already names it)
    and in the report, where the worksheet's own cell failing for the whole class says to check the grader."""
    import nbformat
    source = corpus.fixture_solution(tmp_path / "lab" / "lab_fixture.ipynb")
    nb = nbformat.read(source, as_version=4)
    nb.cells.insert(4, nbformat.v4.new_code_cell(      # the worksheet's own cell, after the graded one
        "weights = open(__import__('course_utils.data').data.data_root() / 'no-such-weights.bin', 'rb').read()",
        metadata={"nbgrader": {"grade_id": "load_weights", "schema_version": 3, "task": False, "grade": False,
                               "locked": True, "solution": False}}))
    nbformat.write(nb, source)
    (tmp_path / "subs").mkdir()
    right = corpus._test_cell(nb, "diffusion_schedule").source
    for student, cell, answer in (
            ("eve", "raise ValueError('eve forgot her data')", right),
            ("fay", "scale = float(open('scale.txt').read())",
             right.replace("(end - start)", "(end - start) * scale")),
            ("tom", "pass", right)):
        mine = nbformat.read(source, as_version=4)
        mine.cells.insert(2, nbformat.v4.new_code_cell(cell))
        corpus._test_cell(mine, "diffusion_schedule").source = answer
        nbformat.write(mine, tmp_path / "subs" / f"{student}.ipynb")
    out = tmp_path / "out"
    proc = _grade(source, tmp_path / "subs", "--out", out, *ARGS, *(["--no-pool"] if path == "kernel" else []),
                  env={**os.environ, "COURSE_DATA_DIR": str(tmp_path / "data")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = _rows(out)
    assert [rows[s]["test_diffusion_schedule"]["points"] for s in ("eve", "fay", "tom")] == ["3", "0", "3"]
    result = {s: json.loads((out / "results" / "lab_fixture" / f"{s}.json").read_text()) for s in ("eve", "fay", "tom")}
    locked = {"role": "locked", "ename": "FileNotFoundError",
              "cell": "the worksheet's locked cell 'load_weights' starting `weights = open(__import__('course_utils."}
    for s, own in (("eve", ("ValueError", "eve forgot her data")), ("fay", ("FileNotFoundError", "scale.txt")),
                   ("tom", None)):
        errors = result[s]["cell_errors"]
        assert [e["role"] for e in errors] == (["student"] if own else []) + ["locked"], errors
        assert errors[-1]["role"] == locked["role"] and errors[-1]["ename"] == locked["ename"], errors
        assert errors[-1]["cell"].startswith(locked["cell"]), errors
        if own:
            assert errors[0]["ename"] == own[0] and own[1] in errors[0]["evalue"], errors
            assert errors[0]["cell"].startswith("your cell starting `"), errors
        notes = [n for n in result[s]["notes"] if " raised " in n]
        assert any(n.startswith(locked["cell"]) and "not yours" in n for n in notes), notes
        # eve's own error is a note; fay's is named by her failed TODO already, so not twice
        assert any("eve forgot her data" in n and "not graded itself" in n for n in notes) == (s == "eve"), notes
    assert "raised FileNotFoundError" in rows["fay"]["test_diffusion_schedule"]["message"]
    feedback = (out / "feedback" / "eve.md").read_text()
    assert "ValueError: eve forgot her data" in feedback and "load_weights" in feedback
    report = (out / "report.html").read_text()
    section = report.split("<h3>Cells that raised outside the graded TODOs</h3>")[1].split("<h2>")[0]
    assert "<b>Check the grader's setup</b>" in section and "for 3 of 3 students" in section, section


# ------------------------------------------------------------------ no kernel needed
def test_bad_arguments_exit_non_zero(tmp_path, capsys):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("not json")
    sub = tmp_path / "alice.ipynb"
    sub.write_text("{}")
    assert grade.main([str(tmp_path / "missing.ipynb"), str(sub), "--out", str(tmp_path / "o"), "--allow-root"]) == 2
    assert grade.main([str(bad), str(sub), "--out", str(tmp_path / "o"), "--allow-root"]) == 2
    assert "cannot read SOURCE" in capsys.readouterr().err
    plain = tmp_path / "plain.ipynb"
    import nbformat
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), plain)
    assert grade.main([str(plain), str(sub), "--out", str(tmp_path / "o"), "--allow-root"]) == 2
    assert "no graded cells" in capsys.readouterr().err
    assert grade.main([str(corpus.SOLUTION), str(tmp_path / "nobody"), "--out", str(tmp_path / "o"),
                       "--allow-root"]) == 2
    with pytest.raises(SystemExit) as exc:
        grade.main([str(corpus.SOLUTION), str(sub), "--out", str(tmp_path / "o"), "--workers", "0", "--allow-root"])
    assert exc.value.code == 2
    # the output folder must not hold the submissions, nor lie inside a folder of them (a student's included)
    assert grade.main([str(corpus.SOLUTION), str(sub), "--out", str(tmp_path), "--allow-root"]) == 2
    (tmp_path / "class" / "bob").mkdir(parents=True)
    (tmp_path / "class" / "bob" / "01_schedules.ipynb").write_text("{}")
    for out in (tmp_path / "class" / "grading", tmp_path / "class" / "bob" / "grading"):
        assert grade.main([str(corpus.SOLUTION), str(tmp_path / "class"), "--out", str(out), "--allow-root"]) == 2
        assert "is inside the folder of submissions" in capsys.readouterr().err
        assert not out.exists()


def test_refuses_to_run_as_root_without_the_flag(tmp_path, capsys):
    if os.geteuid() != 0:
        pytest.skip("not root")
    sub = tmp_path / "alice.ipynb"
    sub.write_text("{}")
    assert grade.main([str(corpus.SOLUTION), str(sub), "--out", str(tmp_path / "o")]) == 2
    assert "refusing to run as root" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_students_copies_of_graded_cells_never_run(tmp_path):
    import nbformat
    source = grade.load_source(corpus.SOLUTION)
    sol = nbformat.read(corpus.SOLUTION, as_version=4)
    for cell in sol.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.source = "STUDENT_TEST_CODE = 1"
    nb = grade.parse_notebook(nbformat.writes(sol).encode())
    run_nb, found = grade.build_run_notebook(source, nb, tmp_path)
    code = "\n".join(c["source"] for c in run_nb["cells"])
    assert "STUDENT_TEST_CODE" not in code
    assert found == {g.grade_id for g in source.graded}
    assert sum(c["metadata"]["course_grade"]["role"] == "harvest" for c in run_nb["cells"]) == len(source.graded)


def test_students_edits_of_locked_cells_never_run(tmp_path):
    """A locked code cell (nbgrader's "read-only": an instructor's set-up, say) runs as SOURCE has it, whatever the
    student's copy says, and a second copy of a graded test cell is dropped: a student cannot rewrite the
    instructor's code. (The course's worksheets lock only markdown, so SOURCE here locks its first code cell.)"""
    import nbformat
    sol = nbformat.read(corpus.SOLUTION, as_version=4)
    setup = next(c for c in sol.cells if c.cell_type == "code" and not c.metadata.get("nbgrader"))
    setup.metadata["nbgrader"] = dict(grade=False, solution=False, locked=True, grade_id="instructors-setup",
                                      schema_version=3)
    nbformat.write(sol, tmp_path / corpus.SOLUTION.name)
    source = grade.load_source(tmp_path / corpus.SOLUTION.name)
    instructors = setup.source
    setup.source = "STUDENT_EDIT_OF_A_LOCKED_CELL = 1"
    test = next(c for c in sol.cells if c.metadata.get("nbgrader", {}).get("grade"))
    copy = nbformat.from_dict(json.loads(json.dumps(test)))
    copy.source, copy.id = "STUDENT_COPY_OF_A_TEST = 1", "a-students-copy"
    sol.cells.append(copy)
    run_nb, _ = grade.build_run_notebook(source, grade.parse_notebook(nbformat.writes(sol).encode()), tmp_path)
    code = "\n".join(c["source"] for c in run_nb["cells"])
    assert "STUDENT_EDIT_OF_A_LOCKED_CELL" not in code and "STUDENT_COPY_OF_A_TEST" not in code
    assert instructors in code


def test_a_graded_cell_without_points_is_worth_nothing(tmp_path):
    """nbgrader's metadata without "points" is worth 0 (as nbgrader reads it), not a point made up by the grader."""
    import nbformat
    sol = nbformat.read(corpus.SOLUTION, as_version=4)
    test = next(c for c in sol.cells if c.metadata.get("nbgrader", {}).get("grade"))
    del test.metadata["nbgrader"]["points"]
    nbformat.write(sol, tmp_path / corpus.SOLUTION.name)
    source = grade.load_source(tmp_path / corpus.SOLUTION.name)
    assert {g.grade_id: g.points for g in source.graded}[test.metadata["nbgrader"]["grade_id"]] == 0


def test_a_rerun_regrades_after_the_source_changed_or_the_grader_failed(tmp_path):
    """What a rerun keeps (``_why_regrade``): a result of the same file, graded by the same SOURCE and the same
    course_utils, that did not end in a grader error, under the same limits, or more generous ones if it lost
    nothing to an error, a timeout or a crash. A fixed solution or hidden test (another SOURCE hash), another
    version of the package (a check fixed) regrade the class; a grader error is retried, as its message
    promises."""
    sub_path = tmp_path / "alice.ipynb"
    sub_path.write_text("{}")
    sub = grade.Submission("alice", sub_path)
    source = grade.load_source(corpus.SOLUTION)
    result = tmp_path / "alice.json"
    opts = grade.Options(max_notebook_mb=16)
    now = opts.graded_under()
    passed = [{"grade_id": "a", "status": "pass"}, {"grade_id": "b", "status": "manual"}]

    def why(**changes):
        record = dict(source_sha256=source.sha256, status="graded", sha256=grade._fingerprint(sub, 16),
                      grader_sha256=grade.grader_sha256(), limits=now, rows=passed) | changes
        result.write_text(json.dumps(record))
        return grade._why_regrade(grade._read_result(result), source, sub, opts)
    assert why() is None
    assert why(source_sha256="0" * 64) == "source"
    assert why(status="grader_error") == "grader_error"
    assert why(sha256=None) == why(sha256="0" * 64) == "submission"
    assert why(grader_sha256="0" * 64) == why(grader_sha256=None) == "grader"     # None: before results had it
    # limits: more generous ones keep a result that lost nothing to them; anything else is graded again
    assert why(limits=now | {"timeout": 300, "memory_mb": 1024}) is None
    for lost in ("timeout", "crashed", "error"):
        assert why(limits=now | {"timeout": 300}, rows=passed + [{"grade_id": "c", "status": lost}]) == "limits"
    assert why(limits=now | {"timeout": 300}, rows=passed + [{"grade_id": "c", "status": "fail"}]) is None
    # a fail whose second run, with the course's answer to a TODO it calls, ran out of time: more time may pass it
    assert why(limits=now | {"timeout": 300}, rows=passed + [{"grade_id": "c", "status": "fail"}],
               second_run_timeouts=["c"]) == "limits"
    assert why(limits=now | {"timeout": 300}, cell_errors=[{"ename": "MemoryError"}]) == "limits"
    assert why(limits=now | {"max_notebook_mb": 4}, status="too_large") == "limits"
    for whole_file in ("not_a_notebook", "empty", "wrong_worksheet", "ambiguous", "unreadable"):
        assert why(limits=now | {"timeout": 300, "max_notebook_mb": 4}, status=whole_file) is None, whole_file
        assert why(limits=now | {"timeout": 1200}, status=whole_file) == "limits"    # (lower: as any other)
    assert why(limits=now | {"timeout": 1200}) == "limits"           # less time now: a pass may time out
    assert why(limits=None) == why(limits={"timeout": "900"}) == "limits"
    result.write_text("[1, 2]")
    assert grade._why_regrade(grade._read_result(result), source, sub, opts) == "new"
    result.unlink()
    assert grade._why_regrade(grade._read_result(result), source, sub, opts) == "new"


def test_the_grader_digest_covers_every_file_of_the_package_but_caches(tmp_path, monkeypatch):
    """grader_sha256 changes with any file of the package (a check, a hint, a model), not with __pycache__."""
    package = tmp_path / "course_utils"
    (package / "checks").mkdir(parents=True)
    (package / "checks" / "ws.py").write_text("HINT = 'a'")
    (package / "model.pt").write_bytes(b"\0" * 10)
    monkeypatch.setattr(grade, "PACKAGE_DIR", package)

    def digest():
        grade.grader_sha256.cache_clear()
        return grade.grader_sha256()
    try:
        first = digest()
        (package / "__pycache__").mkdir()
        (package / "__pycache__" / "ws.cpython-311.pyc").write_bytes(b"cache")
        assert digest() == first
        (package / "checks" / "ws.py").write_text("HINT = 'b'")
        second = digest()
        (package / "model.pt").write_bytes(b"\1" * 10)
        third = digest()
        (package / "checks" / "ws.py").rename(package / "checks" / "ws2.py")
        assert len({first, second, third, digest()}) == 4
    finally:
        grade.grader_sha256.cache_clear()


def test_the_grader_digest_covers_python_and_the_libraries_it_grades_with(monkeypatch):
    """A torch, numpy or Python upgrade can move a value across a check's tolerance: grader_sha256 changes with
    each version that graded_with records (a result records them too), so a rerun grades such results again."""
    versions = grade.graded_with()
    assert set(versions) == {"python", *grade.GRADED_WITH} and versions["torch"] == importlib.metadata.version("torch")

    def digest(**changed):
        grade.grader_sha256.cache_clear()
        monkeypatch.setattr(grade, "graded_with", lambda: versions | changed)
        return grade.grader_sha256()
    try:
        first = digest()
        digests = {first, digest(torch="1.0.0"), digest(numpy="1.0.0"), digest(python="3.99.0 (cpython)"),
                   digest(nbclient=None)}
        assert len(digests) == 5 and digest() == first
    finally:
        grade.grader_sha256.cache_clear()


def test_the_recorded_sha256_is_of_the_bytes_graded(tmp_path, monkeypatch):
    """A file that changes between its fingerprint and its read (a copy still being written) is recorded with the
    digest of what was graded, so that a rerun never keeps a grade of other bytes than the file's."""
    sub_path = tmp_path / "alice.ipynb"
    sub_path.write_text("{}")
    graded = b"not a notebook: the file was swapped after its fingerprint"
    monkeypatch.setattr(grade, "read_submission", lambda path, max_mb: graded)
    result = grade.grade_submission(grade.load_source(corpus.SOLUTION), grade.Submission("alice", sub_path),
                                    grade.Options())
    assert result["status"] != "graded"                  # parse_notebook refused the swapped bytes
    assert result["sha256"] == hashlib.sha256(graded).hexdigest() != grade._sha256(sub_path, 2 ** 20)


def test_a_file_in_a_students_folder_is_graded_under_the_folders_name(tmp_path):
    """subs/alice/01_schedules.ipynb given as a file is alice's (the worksheet's own name says nothing); a loose
    bob.ipynb is bob's."""
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "01_schedules.ipynb").write_text("{}")
    (tmp_path / "bob.ipynb").write_text("{}")
    subs = grade.find_submissions([str(tmp_path / "alice" / "01_schedules.ipynb"), str(tmp_path / "bob.ipynb")],
                                  "01_schedules")
    assert [s.student for s in subs] == ["alice", "bob"]


def test_a_link_to_a_classmates_folder_is_not_followed(tmp_path):
    """mallory/ holding a link to alice/ would hand in alice's notebook as mallory's: links inside a student's
    folder are never followed, so mallory's folder holds no notebook and her row says so."""
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "01_schedules.ipynb").write_text("{}")
    (tmp_path / "mallory").mkdir()
    (tmp_path / "mallory" / "work").symlink_to(tmp_path / "alice", target_is_directory=True)
    subs = {s.student: s for s in grade.find_submissions([str(tmp_path)], "01_schedules")}
    assert subs["alice"].path == tmp_path / "alice" / "01_schedules.ipynb"
    assert subs["mallory"].problem and subs["mallory"].problem[0] == "not_a_notebook", subs["mallory"]


def test_a_name_graded_in_an_earlier_run_into_the_same_out_stays_with_its_work(tmp_path, capsys):
    """The third red team: alice/ graded (8/8), then a late run into the same --out with only _alice/ (a blank
    notebook): safe_name made it "alice" again, its result replaced alice's (0/8) and her feedback was _alice's.
    Names are unique across the runs into one --out now: a name is taken again only by the folder or file its
    results were handed in as (``submitted_as``)."""
    for who in ("alice", "_alice", "bob"):
        (tmp_path / who).mkdir()
        (tmp_path / who / "01_schedules.ipynb").write_text("{}")

    def names(*folders, held=None):
        """{folder: the name it is graded under}, the folders' notebooks given as files."""
        return {s.submitted_as: s.student for s in grade.find_submissions(
            [str(tmp_path / f / "01_schedules.ipynb") for f in folders], "01_schedules", held)}
    assert names("_alice") == {"_alice": "alice"}                              # alone in a new --out
    assert names("_alice", held={"alice": {"alice"}}) == {"_alice": "alice-2"}  # alice's name, from an earlier run
    assert "the name 'alice' holds the work handed in as 'alice' in an earlier run" in capsys.readouterr().err
    assert names("alice", held={"alice": {"alice"}}) == {"alice": "alice"}      # her own resubmission
    assert names("_alice", held={"alice": {"alice"}, "alice-2": {"_alice"}}) == {"_alice": "alice-2"}
    assert names("alice", held={"alice": {"_alice"}}) == {"alice": "alice-2"}   # the first to take a name keeps it
    assert names("bob", "alice", held={"ALICE": {"x"}}) == {"bob": "bob", "alice": "alice"}   # keys are case-folded
    assert names("alice", held={"alice": {"Alice"}}) == {"alice": "alice-2"}    # another folder, another student
    # what an --out holds: submitted_as, or, for a result written before it existed, its file's folder or stem
    results = tmp_path / "out" / "results" / "01_schedules"
    results.mkdir(parents=True)
    for student, extra in (("alice", {"submitted_as": "alice"}), ("carol", {"file": "/subs/carol/01_schedules.ipynb"}),
                           ("dave", {"file": "/subs/dave.ipynb"}), ("erin", {"file": "/subs/x/other.ipynb"})):
        (results / f"{student}.json").write_text(json.dumps({"student": student} | extra))
    (results / "broken.json").write_text("{")
    assert grade.held_names(tmp_path / "out") == {"alice": {"alice"}, "carol": {"carol"}, "dave": {"dave"}}


def test_a_late_run_into_the_same_out_leaves_a_classmates_result_alone(tmp_path):
    """The red team's two runs, for real: alice keeps her 8/8 and her feedback; _alice is graded as alice-2."""
    sol = nbformat.read(corpus.SOLUTION, as_version=4)
    for folder, nb in (("run1/alice", sol), ("late/_alice", corpus.exercise_of(sol))):
        (tmp_path / folder).mkdir(parents=True)
        nbformat.write(nb, tmp_path / folder / corpus.SOLUTION.name)
    out = tmp_path / "out"
    for run in ("run1", "late"):
        proc = _grade(corpus.SOLUTION, tmp_path / run, "--out", out, *ARGS)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert "is graded as student 'alice-2' (the name 'alice' holds the work handed in as 'alice'" in proc.stderr
    totals = {s: r["TOTAL"] for s, r in _rows(out).items()}
    assert totals["alice"]["points"] == totals["alice"]["max_points"] and float(totals["alice-2"]["points"]) == 0
    result = json.loads((out / "results" / "01_schedules" / "alice.json").read_text())
    assert result["submitted_as"] == "alice" and "run1" in result["file"]


def test_the_command_line_passes_every_limit_on(monkeypatch, tmp_path):
    """Each of course-grade's limits reaches the grading run (an option read and then dropped would leave the
    default, say a 900 s submission timeout where the instructor asked for 60)."""
    seen = {}

    def fake_grade_class(source, submissions, out, **kwargs):
        seen.update(kwargs)
        return dict(graded=0, skipped=0)
    monkeypatch.setattr(grade, "grade_class", fake_grade_class)
    assert grade.main([str(corpus.SOLUTION), str(tmp_path), "--out", str(tmp_path / "o"), "--timeout", "61",
                       "--cell-timeout", "7", "--memory-mb", "1111", "--disk-mb", "222", "--max-processes", "33",
                       "--max-notebook-mb", "3", "--workers", "5", "--no-pool", "--force", "--quiet"]) == 0
    opts = seen["opts"]
    assert (opts.timeout, opts.cell_timeout, opts.memory_mb, opts.disk_mb, opts.max_processes,
            opts.max_notebook_mb, opts.pool) == (61, 7, 1111, 222, 33, 3, False)
    assert seen["workers"] == 5 and seen["force"] is True and seen["progress"] is False


def test_student_names():
    subs = grade.find_submissions([str(corpus.REPO / "solutions")], "01_schedules")
    assert {s.student for s in subs} >= {"solutions", "02_forward"}


def test_a_call_of_a_hidden_answer_says_what_it_costs():
    """A cell stopped by one of the course's answers, hidden while grading: a TODO's cell lost its next lines, any
    other cell (worksheet 3's demo of the package's UNet, in every honest submission) costs no points. Each cell
    is named by its first line of code, not by a comment such as ``# NBVAL_CHECK_OUTPUT``."""
    from course_utils.sandbox import Outcome
    from course_utils.sandbox.kernel_package import HIDDEN

    def cell(source, role, grade_id=None):
        return {"cell_type": "code", "source": source, "metadata": {"course_grade": {"role": role,
                                                                                   "grade_id": grade_id}}}
    run_nb = {"cells": [cell("# NBVAL_CHECK_OUTPUT\nunet = UNet(1)", "student"),
                        cell("# TODO\nx = forward.q_sample(x0, t)\ndef q_sample(): ...", "student", "q_sample"),
                        cell("print(1)", "student"), cell("harvest('q_sample', q_sample)", "harvest", "test_q")]}
    hidden = f"course_utils.nets.ResBlock is {HIDDEN}: worksheet 03 asks you to write ResBlock yourself"
    outcome = Outcome(cells=[{"index": 0, "status": "error", "ename": "PermissionError", "evalue": hidden},
                             {"index": 0, "status": "error", "ename": "PermissionError", "evalue": hidden},
                             {"index": 1, "status": "error", "ename": "PermissionError", "evalue": hidden},
                             {"index": 2, "status": "ok"},
                             {"index": 3, "status": "error", "ename": "PermissionError", "evalue": hidden}])
    demo, todo = grade._hidden_calls(run_nb, outcome)
    assert demo.startswith("your cell starting `unet = UNet(1)` could not run while grading") and hidden in demo
    assert demo.endswith("That cell is not graded, so this costs no points.")
    assert todo.startswith("your cell 'q_sample' starting `x = forward.q_sample(x0, t)` stopped at a call of")
    assert "costs no points" not in todo and todo.endswith("the lines after that call did not run.")


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/course_grade_pwned_by_pickle",))


def harvest_bytes(outputs) -> bytes:
    """What a harvest cell writes for ``outputs`` (the kernel's half of the format mirrors encode_values)."""
    return grade.encode_values(outputs)


def test_verdict_files_are_read_without_running_code(tmp_path):
    import io
    source = grade.load_source(corpus.SOLUTION)
    buf = io.BytesIO()
    torch.save([_Evil()], buf)
    files = {grade.harvest_name(source, source.graded[0].grade_id): buf.getvalue(),
             grade.harvest_name(source, source.graded[1].grade_id): harvest_bytes({"not": "a list"})}

    def read(name):
        if name not in files:
            raise FileNotFoundError(name)
        return files[name]
    rows = grade.judge(source, {"cells": []}, {x.grade_id for x in source.graded}, read, grade.sandbox.Outcome(),
                       grade.Options())
    assert not Path("/tmp/course_grade_pwned_by_pickle").exists()
    assert [r["points"] for r in rows] == [0] * len(rows)
    assert rows[0]["status"] == "error" and "not a harvest file" in rows[0]["message"]
    assert "expected a list" in rows[1]["message"]
    assert rows[2]["status"] == "error" and "did not run" in rows[2]["message"]   # no file: never a pass


def test_harvest_files_round_trip_and_refuse_what_would_cost_memory():
    out = [torch.arange(6.0).reshape(2, 3), {"a": torch.tensor(True), "b": [torch.zeros(0), 1.5, "x"]},
           torch.ones(2, dtype=torch.bfloat16), {"error": "ValueError", "message": "bad"}]
    back = grade.decode_outputs(harvest_bytes(out))
    assert torch.equal(back[0], out[0]) and back[1]["b"][1:] == [1.5, "x"] and back[1]["a"].item() is True
    assert back[1]["b"][0].shape == (0,) and back[2].dtype == torch.bfloat16 and back[3] == out[3]
    data = harvest_bytes([torch.zeros(4)])
    header = json.loads(data[12:12 + int.from_bytes(data[4:12], "little")])      # {"values": ..., "tensors": ...}
    for shape in ([2 ** 30], [2 ** 16, 2 ** 16], [-1], [True, 4]):   # more numbers than bytes, or invalid
        header["tensors"][0]["shape"] = shape
        h = json.dumps(header).encode()
        with pytest.raises(ValueError):
            grade.decode_outputs(b"CGH1" + len(h).to_bytes(8, "little") + h + data[-16:])
    with pytest.raises(ValueError):
        grade.decode_outputs(b"CGH1" + (10 ** 9).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError):
        grade.decode_outputs(harvest_bytes([10 ** 30]))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_stops_at_once_and_keeps_what_it_graded(tmp_path, signum):
    """Ctrl-C (SIGINT) or a batch system's SIGTERM while a student's infinite loop runs: the queued students are
    dropped, the running sandbox stops at its next poll, nothing is written for the students not graded (the
    next run grades them), the temporary folders are removed, and the run says so in one line with exit code
    130. Before, the pool graded every queued student first, then printed a KeyboardInterrupt traceback, wrote
    no grades.csv, and a SIGTERM left the temporary folders behind."""
    import nbformat
    sol = nbformat.read(corpus.SOLUTION, as_version=4)
    loop = nbformat.read(corpus.SOLUTION, as_version=4)
    loop.cells.append(nbformat.v4.new_code_cell("while True:\n    pass"))
    subs, tmp = tmp_path / "subs", tmp_path / "tmp"
    subs.mkdir(), tmp.mkdir()
    nbformat.write(loop, subs / "a_loop.ipynb")
    for name in ("b", "c", "d"):
        nbformat.write(sol, subs / f"{name}.ipynb")
    out = tmp_path / "out"
    notebooks = [str(subs / f"{n}.ipynb") for n in ("a_loop", "b", "c", "d")]     # graded in this order
    proc = subprocess.Popen([sys.executable, "-m", "course_utils.grade", str(corpus.SOLUTION), *notebooks, "--out",
                             str(out), "--workers", "1", "--cell-timeout", "300", "--timeout", "600", "--quiet",
                             "--allow-root"],
                            env={**os.environ, "TMPDIR": str(tmp)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not any(p.name.startswith("course-grade-") and not p.name.startswith("course-grade-run-")
                  for p in tmp.iterdir()):          # a_loop's sandbox exists: its notebook is running
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    time.sleep(3)
    sent = time.monotonic()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert time.monotonic() - sent < 30, "the interrupt did not stop the run promptly"
    assert proc.returncode == 130, err
    assert "course-grade: interrupted: 0 graded in this run and kept, 4 not graded" in err, err
    assert "Traceback" not in err, err
    assert not list((out / "results").rglob("*.json")), "a student stopped half-way was written as graded"
    assert (out / "grades.csv").exists()
    assert not list(tmp.iterdir()), f"left behind: {sorted(p.name for p in tmp.iterdir())}"


def test_an_empty_file_a_solutions_copy_and_an_output_file_are_named(tmp_path, capsys):
    """A 0-byte notebook read 'not valid JSON (Expecting value: line 1 column 1)'; a copy of the solutions was not
    flagged; --out naming a file gave a NotADirectoryError traceback (an instructor's report)."""
    with pytest.raises(grade.Malformed, match=r"the file is empty \(0 bytes\)") as err:
        grade.parse_notebook(b"")
    assert err.value.status == "empty"
    # a script renamed .ipynb was told it was "cut off while saving" and to save it again in JupyterLab, which
    # cannot open it as a notebook (an instructor's pass of 2026-12-08); a notebook cut off is still told that
    with pytest.raises(grade.Malformed, match=r"plain text \(it begins 'import torch'\), not a notebook saved by "
                                              r"Jupyter: submit the \.ipynb file") as err:
        grade.parse_notebook(b"\n\nimport torch\n\ndef linear_beta_schedule(T):\n    pass\n")
    assert err.value.status == "not_a_notebook"
    for blank in (b"\xef\xbb\xbf", "\u3000\n".encode()):       # a byte-order mark, or Unicode's spaces, alone
        with pytest.raises(grade.Malformed, match="the file holds no text") as err:   # (an IndexError: a review)
            grade.parse_notebook(blank)
        assert err.value.status == "empty"
    with pytest.raises(grade.Malformed, match="cut off while saving"):
        grade.parse_notebook(b'{"cells": [{"cell_type": "code", "sou')
    source = grade.load_source(corpus.SOLUTION)
    marked = tmp_path / "rita.ipynb"                  # the markers, and no cell of this worksheet (graded no further)
    marked.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {}, "source": "### BEGIN SOLUTION\nx = 1\n### END SOLUTION",
         "outputs": [], "execution_count": None}]}))
    result = grade.grade_submission(source, grade.Submission("rita", marked), grade.Options())
    assert result["status"] == "wrong_worksheet" and result["solution_markers"] == ["### BEGIN SOLUTION"]
    (tmp_path / "afile").write_text("")
    assert grade.main([str(corpus.SOLUTION), str(marked), "--out", str(tmp_path / "afile"), "--allow-root"]) == 2
    assert "is a file: choose a folder" in capsys.readouterr().err


def test_slow_students_are_named_longest_first():
    running = {"ann": 100.0, "bob": 5.0, "cy": 60.0, "dee": 90.0, "eve\nx": 20.0}
    assert grade.slow_students(running, 130.0, after=30) == "running: bob 125 s, eve x 110 s, cy 70 s and 1 more"
    assert grade.slow_students(running, 130.0, after=200) == ""


def test_the_progress_bar_names_the_student_a_slow_notebook_holds(tmp_path, capsys, monkeypatch):
    """An instructor's report: a student's infinite loop froze the bar at 9/17 for two minutes (the default
    per-cell limit) without saying whose notebook it was. The bar now names each student graded for more than
    SLOW_AFTER_S seconds (3 here), with the seconds."""
    import nbformat
    monkeypatch.setattr(grade, "SLOW_AFTER_S", 3)
    monkeypatch.setattr(grade, "SLOW_POLL_S", 0.5)
    loop = nbformat.read(corpus.SOLUTION, as_version=4)
    loop.cells.append(nbformat.v4.new_code_cell("while True:\n    pass"))
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(loop, subs / "zoe_loops.ipynb")
    stats = grade.grade_class(corpus.SOLUTION, [str(subs)], tmp_path / "out", workers=1, progress=True,
                              opts=grade.Options(cell_timeout=12), allow_root=True)
    assert stats["graded"] == 1
    err = capsys.readouterr().err
    assert "running: zoe_loops " in err, err[-2000:]


def test_another_worksheet_that_shares_a_todo_is_the_wrong_worksheet():
    """Worksheet 1 and the lab share diffusion_schedule and some headings' ids: graded against the other's SOURCE,
    every lab notebook got worksheet 1's points for diffusion_schedule (an instructor who named the wrong SOURCE).
    Each is now wrong_worksheet before any kernel runs; the worksheet's own solution, even with every markdown cell
    deleted, is not."""
    import nbformat
    ws01, lab = corpus.REPO / "solutions" / "01_schedules.ipynb", corpus.REPO / "solutions" / "lab_ddim.ipynb"
    for source_path, sub_path in ((ws01, lab), (lab, ws01)):
        result = grade.grade_submission(grade.load_source(source_path), grade.Submission("kim", sub_path),
                                        grade.Options())
        assert result["status"] == "wrong_worksheet" and "another worksheet that shares a TODO" in result["message"]
        assert {row["points"] for row in result["rows"]} == {0}
    cells = nbformat.read(ws01, as_version=4).cells
    ids = {c.metadata.get("nbgrader", {}).get("grade_id") for c in cells} - {None}
    grade.wrong_worksheet(grade.load_source(ws01), ids)                             # raises nothing: all its cells
    grade.wrong_worksheet(grade.load_source(ws01), {c.metadata.get("nbgrader", {}).get("grade_id") for c in cells
                                                    if c.cell_type == "code"} - {None})   # nor its code cells alone


def test_the_default_workers_are_the_cores_this_process_may_use(monkeypatch):
    """os.cpu_count() counts the machine's cores: under taskset or a Slurm job's --cpus-per-task the grader ran
    more students at once than it had cores, and the wall-clock timeouts came closer for honest notebooks."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert grade.usable_cores() == 3
    monkeypatch.delattr(os, "sched_getaffinity")
    assert grade.usable_cores() == 64


def test_a_student_cell_that_raised_last_is_told_it_cost_nothing():
    """An instructor's report: a student's last cell raised, and the feedback said "whatever it would have defined
    ... was missing for the cells after it" where no cell came after it."""
    from types import SimpleNamespace
    cell = lambda text: {"cell_type": "code", "source": text,  # noqa: E731
                         "metadata": {"course_grade": {"role": "student", "grade_id": None}}}
    run_nb = {"cells": [cell("x = 1"), cell("y = x / 0"), cell("print(y)"), cell("1 / 0")]}
    outcome = SimpleNamespace(cells=[{"index": 1, "status": "error", "ename": "ZeroDivisionError", "evalue": "div"},
                                     {"index": 3, "status": "error", "ename": "ZeroDivisionError", "evalue": "div"}])
    errors = grade.cell_errors(run_nb, outcome)
    assert [e["last"] for e in errors] == [False, True]
    notes = grade.cell_error_notes(errors, [])
    assert notes[0].endswith("whatever it would have defined after that point was missing for the cells after it.")
    assert notes[1] == ("your cell starting `1 / 0` raised ZeroDivisionError: div. It is not graded itself, and no "
                        "cell comes after it: it cost you no points."), notes


def test_grading_elsewhere_than_linux_stops_with_a_message(tmp_path, monkeypatch, capsys):
    """The sandbox is made of Linux's parts (Landlock, namespaces, cgroups, prctl): on macOS or Windows
    course-grade says where to grade instead of starting kernels it cannot confine (the pool's zygote calls
    prctl, which macOS has not)."""
    monkeypatch.setattr(grade.sys, "platform", "darwin")
    sub = tmp_path / "alice.ipynb"
    sub.write_text("{}")
    assert grade.main([str(corpus.SOLUTION), str(sub), "--out", str(tmp_path / "o"), "--allow-root"]) == 2
    err = capsys.readouterr().err
    assert "this is darwin" in err and "Linux VM or container" in err and not (tmp_path / "o").exists()
