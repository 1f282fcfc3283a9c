"""exercises/ is generated from solutions/: the generator, the sync, the nbgrader metadata, and the untouched
worksheets (they run to the end, say "not implemented yet" at each check and raise nothing)."""
from __future__ import annotations

import copy
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from course_utils import exercises
from course_utils.checks import CHECKS, run_check

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
EXERCISES = ROOT / "exercises"
WORKSHEETS = ["01_schedules", "02_forward", "03_unet", "04_training", "05_samplers", "06_guidance", "07_fast_samplers",
              "lab_ddim"]


def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _graded(nb):
    return [c for c in nb.cells if c.cell_type == "code" and _nbgrader(c).get("grade")]


def test_every_worksheet_has_a_solution():
    assert [p.stem for p in SOLUTIONS] == WORKSHEETS


def test_exercises_are_in_sync(tmp_path):
    exercises.generate(ROOT / "solutions", tmp_path)
    generated = sorted(p.name for p in tmp_path.glob("*.ipynb"))
    assert generated == sorted(p.name for p in EXERCISES.glob("*.ipynb")), "exercises/ has extra or missing files"
    for name in generated:
        assert (tmp_path / name).read_bytes() == (EXERCISES / name).read_bytes(), (
            f"exercises/{name} is out of date: run `make generated` (or `make exercises`)")
    assert exercises.generate(ROOT / "solutions", EXERCISES, check=True) == []


def _toy_solution():
    nb = nbformat.v4.new_notebook()
    sol = nbformat.v4.new_code_cell("def f(x):\n    \"\"\"doc\"\"\"\n    ### BEGIN SOLUTION\n    return x + 1\n"
                                    "    ### END SOLUTION")
    sol.metadata = {"nbgrader": {"grade": False, "grade_id": "f", "locked": False, "schema_version": 3,
                                 "solution": True, "task": False}}
    sol.outputs = [nbformat.v4.new_output("stream", text="hi")]
    sol.execution_count = 3
    test = nbformat.v4.new_code_cell("check_f(f)\n### BEGIN HIDDEN TESTS\nassert f(1) == 2\n### END HIDDEN TESTS")
    test.metadata = {"nbgrader": {"grade": True, "grade_id": "test_f", "locked": True, "points": 1,
                                  "schema_version": 3, "solution": False, "task": False}}
    answer = nbformat.v4.new_markdown_cell("My summary.")
    answer.metadata = {"nbgrader": {"grade": True, "grade_id": "summary", "locked": False, "points": 2,
                                    "schema_version": 3, "solution": True, "task": False}, "course": {"manual": True}}
    nb.cells = [sol, test, answer]
    for i, c in enumerate(nb.cells):
        c.id = f"c{i}"
    return nb


def test_generator_transforms_one_notebook(tmp_path):
    src = tmp_path / "solutions"
    src.mkdir()
    nbformat.write(_toy_solution(), src / "toy.ipynb", version=4)
    exercises.generate(src, tmp_path / "out")
    text = (tmp_path / "out" / "toy.ipynb").read_bytes()
    exercises.generate(src, tmp_path / "again")
    assert (tmp_path / "again" / "toy.ipynb").read_bytes() == text, "the output must be deterministic"
    nb = nbformat.read(tmp_path / "out" / "toy.ipynb", as_version=4)
    header, sol, test, answer = nb.cells
    assert "generated from solutions/toy.ipynb" in header.source and "do not edit" in header.source
    assert sol.source == 'def f(x):\n    """doc"""\n    # YOUR CODE HERE\n    raise NotImplementedError()'
    assert sol.outputs == [] and sol.execution_count is None
    assert test.source == "check_f(f)" and test.metadata == _toy_solution().cells[1].metadata
    assert answer.source == "YOUR ANSWER HERE"


@pytest.mark.parametrize("source", ["### BEGIN SOLUTION\nx = 1", "### END SOLUTION", "### BEGIN SOLUTION\n"
                                    "### BEGIN SOLUTION\n### END SOLUTION"])
def test_generator_rejects_unbalanced_markers(tmp_path, source):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    (tmp_path / "s").mkdir()
    nbformat.write(nb, tmp_path / "s" / "bad.ipynb", version=4)
    with pytest.raises(exercises.MarkerError):
        exercises.generate(tmp_path / "s", tmp_path / "o")
    assert exercises.main([str(tmp_path / "s"), str(tmp_path / "o")]) == 2


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_metadata(path):
    nb = nbformat.read(path, as_version=4)
    ids = [_nbgrader(c)["grade_id"] for c in nb.cells if "grade_id" in _nbgrader(c)]
    assert len(ids) == len(set(ids)), "grade_ids must be unique"
    graded = _graded(nb)
    assert len(graded) >= 2, "each worksheet has several TODOs"
    for cell in graded:
        meta = _nbgrader(cell)
        check, target = cell.metadata["course"]["check"], cell.metadata["course"]["target"]
        assert check in CHECKS and CHECKS[check].target == target
        assert meta == {"grade": True, "grade_id": f"test_{check}", "locked": True, "points": meta["points"],
                        "schema_version": 3, "solution": False, "task": False}
        assert isinstance(meta["points"], int) and meta["points"] > 0
        lines = cell.source.split("\n")
        assert f"check_{check}({target})" in lines
        assert lines[-3:] == ["### BEGIN HIDDEN TESTS",
                              f'assert run_check("{check}", {target}, hidden=True).passed, "hidden tests failed"',
                              "### END HIDDEN TESTS"]
    solutions = [c for c in nb.cells if c.cell_type == "code" and _nbgrader(c).get("solution")]
    assert {_nbgrader(c)["grade_id"] for c in solutions} == {c.metadata["course"]["target"] for c in graded}
    for cell in solutions:
        assert _nbgrader(cell) == {"grade": False, "grade_id": _nbgrader(cell)["grade_id"], "locked": False,
                                   "schema_version": 3, "solution": True, "task": False}
        assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
        assert re.search(r"^\s*(def|class) ", cell.source, re.M), "the signature stays for the students"
    manual = [c for c in nb.cells if c.metadata.get("course", {}).get("manual")]
    if path.stem == "lab_ddim":
        assert len(manual) == 1 and manual[0].cell_type == "markdown"
        assert _nbgrader(manual[0]) == {"grade": True, "solution": True, "grade_id": "summary",
                                        "points": _nbgrader(manual[0])["points"], "locked": False,
                                        "schema_version": 3, "task": False}
        assert len(manual[0].source) > 200, "the solution's summary is a real answer"
    for cell in nb.cells:   # committed executed, without errors
        if cell.cell_type == "code":
            assert cell.execution_count is not None, f"{path.name}: cell {cell.id} was not executed"
            assert not [o for o in cell.outputs if o.output_type == "error"], f"{path.name}: cell {cell.id} failed"


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_code_passes_the_hidden_tests(path):
    """The imports cell plus every solution cell, executed alone, pass their checks (hidden cases included)."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    namespace: dict = {}
    exec(compile(code[1].source, f"{path.name}:imports", "exec"), namespace)     # code[0] is the Colab cell
    for cell in code:
        if _nbgrader(cell).get("solution"):
            exec(compile(cell.source, f"{path.name}:{cell.id}", "exec"), namespace)
    for cell in _graded(nb):
        check, target = cell.metadata["course"]["check"], cell.metadata["course"]["target"]
        result = run_check(check, namespace[target], hidden=True)
        assert result.passed, f"{path.name}: {result.message}"


def test_every_todo_that_calls_another_todo_names_it_in_its_check():
    """Check.calls must name each TODO that a TODO of the solutions calls by name (read from its code), so that its
    failure can say when the TODO it calls fails its own check (the lab's reverse_diffusion calls denoise)."""
    import ast

    from course_utils.checks.framework import CHECKS
    missing = []
    for path in SOLUTIONS:
        nb = nbformat.read(path, as_version=4)
        todos = {cell.metadata["course"]["target"]: cell.metadata["course"]["check"] for cell in _graded(nb)}
        for cell in (c for c in nb.cells if c.cell_type == "code" and _nbgrader(c).get("solution")):
            for node in ast.parse(cell.source).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in todos:
                    called = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} & set(todos) - {node.name}
                    missing += [f"{path.stem}: {node.name} calls {name}"
                                for name in sorted(called - set(CHECKS[todos[node.name]].calls))]
    assert not missing, missing


@pytest.mark.slow
@pytest.mark.parametrize("name", WORKSHEETS)
def test_untouched_exercise_runs_and_says_not_implemented(name, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("COURSE_QUICK", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    nb = nbformat.read(EXERCISES / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=False,
                   resources={"metadata": {"path": str(EXERCISES)}}).execute()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert not [o for o in cell.outputs if o.output_type == "error"]
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        if _nbgrader(cell).get("grade"):
            target = cell.metadata["course"]["target"]
            assert text == f"⏳ {target}: not implemented yet\n", text
        elif re.search(r"\b(ready|trained)\b", cell.source):   # a cell that waits for a TODO says it skips
            assert "⏳ skipped" in text, f"{name}: a cell that waits for a TODO printed nothing:\n{cell.source[:300]}"
        assert "❌" not in text and "Traceback" not in text


# ------------------------------------------------------------------ found by a mutation audit (2026-12-05)
def _solution_folder(tmp_path, *cells):
    src = tmp_path / "solutions"
    src.mkdir()
    nb = nbformat.v4.new_notebook(cells=list(cells))
    for i, cell in enumerate(nb.cells):
        cell.id = f"c{i}"
    nbformat.write(nb, src / "toy.ipynb", version=4)
    return src


def test_a_written_answer_leaves_its_attachments_behind(tmp_path):
    """A solution's summary may carry pasted images (cell attachments): the worksheet must not ship them."""
    answer = _toy_solution().cells[2]                                    # the toy's written answer
    answer.source = "My summary: ![plot](attachment:plot.png)"
    answer.attachments = {"plot.png": {"image/png": "iVBORw0KGgo="}}
    exercises.generate(_solution_folder(tmp_path, answer), tmp_path / "out")
    cell = nbformat.read(tmp_path / "out" / "toy.ipynb", as_version=4).cells[1]
    assert cell.source == "YOUR ANSWER HERE" and "attachments" not in cell, cell


def test_a_written_answer_is_replaced_by_its_solution_flag_alone(tmp_path):
    """The module's rule: a markdown cell with ``solution: true`` becomes "YOUR ANSWER HERE", whatever its grade
    flag; a graded markdown cell that is not a solution (instructions) stays as written."""
    answer = nbformat.v4.new_markdown_cell("The written answer.")
    answer.metadata = {"nbgrader": {"grade": False, "grade_id": "a", "locked": False, "schema_version": 3,
                                    "solution": True, "task": False}}
    prompt = nbformat.v4.new_markdown_cell("Explain what you see.")
    prompt.metadata = {"nbgrader": {"grade": True, "grade_id": "p", "locked": True, "points": 1,
                                    "schema_version": 3, "solution": False, "task": False}}
    exercises.generate(_solution_folder(tmp_path, answer, prompt), tmp_path / "out")
    cells = nbformat.read(tmp_path / "out" / "toy.ipynb", as_version=4).cells
    assert [c.source for c in cells[1:]] == ["YOUR ANSWER HERE", "Explain what you see."]


def test_a_stray_end_of_hidden_tests_is_an_error(tmp_path):
    """An '### END HIDDEN TESTS' without its BEGIN means the hidden region was mis-edited: the generator must stop,
    not copy the marker (and whatever the author meant to hide) into the worksheet."""
    cell = nbformat.v4.new_code_cell("check_f(f)\nassert f(1) == 2\n### END HIDDEN TESTS")
    src = _solution_folder(tmp_path, cell)
    with pytest.raises(exercises.MarkerError, match="END HIDDEN TESTS"):
        exercises.generate(src, tmp_path / "out")


def test_a_cell_with_an_answer_and_hidden_tests_leaks_neither(tmp_path):
    """One cell may hold both an answer and hidden tests: the worksheet gets the stub and loses the hidden tests,
    with no blank line left where they were."""
    cell = nbformat.v4.new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n\n"
                                     "check_f(f)\n\n### BEGIN HIDDEN TESTS\nassert f(1) == 2\n### END HIDDEN TESTS")
    cell.metadata = {"nbgrader": {"grade": True, "grade_id": "f", "locked": False, "points": 1,
                                  "schema_version": 3, "solution": True, "task": False}}
    exercises.generate(_solution_folder(tmp_path, cell), tmp_path / "out")
    source = nbformat.read(tmp_path / "out" / "toy.ipynb", as_version=4).cells[1].source
    assert "assert f(1) == 2" not in source and "return x + 1" not in source, source
    assert source == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\ncheck_f(f)", source


def test_jupyter_checkpoint_copies_do_not_become_worksheets(tmp_path):
    """JupyterLab's autosave copies (.ipynb_checkpoints/) of a solution are not solutions to publish."""
    src = _solution_folder(tmp_path, nbformat.v4.new_code_cell("x = 1"))
    (src / ".ipynb_checkpoints").mkdir()
    shutil.copy(src / "toy.ipynb", src / ".ipynb_checkpoints" / "toy-checkpoint.ipynb")
    written = exercises.generate(src, tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in written] == ["toy.ipynb"]


def test_check_mode_exits_1_when_a_worksheet_is_out_of_date(tmp_path, capsys):
    """`python -m course_utils.exercises solutions exercises --check` is how a script learns that exercises/ is
    stale: exit 1 and name the file, exit 0 once regenerated."""
    src = _solution_folder(tmp_path, nbformat.v4.new_code_cell("x = 1"))
    out = tmp_path / "out"
    assert exercises.main([str(src), str(out), "--check"]) == 1
    assert "out of date" in capsys.readouterr().out
    assert exercises.main([str(src), str(out)]) == 0
    assert exercises.main([str(src), str(out), "--check"]) == 0


def test_a_folder_without_solutions_is_an_error(tmp_path, capsys):
    """A mistyped solutions folder must not pass as 'nothing to do': generating or checking exits 2 and says
    where it looked (a silent 0 would let `--check` pass in CI)."""
    (tmp_path / "empty").mkdir()
    assert exercises.main([str(tmp_path / "empty"), str(tmp_path / "out"), "--check"]) == 2
    assert "no solution notebooks" in capsys.readouterr().err
    assert exercises.main([str(tmp_path / "empty"), str(tmp_path / "out")]) == 2


def test_student_notebook_leaves_the_solution_untouched():
    """student_notebook() returns a new notebook: a caller that goes on to use the solution (the grader's corpus,
    a script that writes both) must still have the answers and outputs."""
    nb = _toy_solution()
    before = copy.deepcopy(nb)
    student = exercises.student_notebook(nb, "solutions/toy.ipynb")
    assert "raise NotImplementedError()" in student.cells[1].source
    assert nb == before, "the solution notebook was changed"
