"""A class of synthetic submissions for the grader (tests/test_grade.py, bench/bench_grading.py).

Built from a real solution notebook (solutions/01_schedules.ipynb by default): each submission is the
solution (or the generated exercise) with some cells changed, and comes with what the grader must give it:
``expected[student][grade_id] = (points, status, substring of the message)``. The wrong answers come from
the catalogue ``checks.MISTAKES``: a submission binds the TODO's name to a catalogued wrong implementation,
so the grader must give exactly that TODO 0 points with that mistake's hint.

``fixture_solution()`` builds a small worksheet with nbformat (the lab's diffusion_schedule TODO and a
manually graded summary), for the parts of the contract the real worksheet does not exercise.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
SOLUTION = REPO / "solutions" / "01_schedules.ipynb"
LOOP_MARK = "course_grade_test_sleeper"


def _nbg(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def graded_checks(nb) -> list[tuple[str, str, str, float]]:
    """(test grade_id, check name, target, points) of every graded check cell, in order."""
    out = []
    for cell in nb.cells:
        course = cell.metadata.get("course", {})
        if _nbg(cell).get("grade") and course.get("check"):
            out.append((_nbg(cell)["grade_id"], course["check"], course["target"], _nbg(cell)["points"]))
    return out


def _solution_cell(nb, target: str):
    for cell in nb.cells:
        if cell.cell_type == "code" and _nbg(cell).get("solution") and f"def {target}(" in cell.source:
            return cell
    raise LookupError(f"no solution cell defines {target}")


def _test_cell(nb, grade_id: str):
    return next(c for c in nb.cells if _nbg(c).get("grade_id") == grade_id)


def exercise_of(nb):
    from course_utils import exercises
    return exercises.student_notebook(copy.deepcopy(nb), "solutions/x.ipynb")


def with_mistake(nb, target: str, check: str, index: int = 0):
    """``nb`` with ``target`` bound to the catalogued mistake number ``index``; returns (nb, hint substring)."""
    from course_utils.checks import MISTAKES
    mistakes = [m for m in MISTAKES[check] if m[0] != "not implemented"]
    mid, _, hint = mistakes[index % len(mistakes)]
    nb = copy.deepcopy(nb)
    cell = _solution_cell(nb, target)
    cell.source += (f"\n\nfrom course_utils.checks import MISTAKES as _MISTAKES\n"
                    f"{target} = dict((m[0], m[1]) for m in _MISTAKES[{check!r}])[{mid!r}]\n")
    return nb, hint


def build_corpus(folder: Path, solution: Path = SOLUTION, *, source_dir: Path | None = None) -> dict:
    """Write the class under ``folder`` (one sub-folder per student); return the expectations."""
    folder = Path(folder)
    sol = nbformat.read(solution, as_version=4)
    tests = graded_checks(sol)
    ws = solution.stem
    full = {gid: (pts, "pass", "correct") for gid, _, _, pts in tests}
    expected: dict[str, dict] = {}

    def put(student: str, nb_or_bytes, expect: dict, name: str | None = None):
        d = folder / student
        d.mkdir(parents=True, exist_ok=True)
        path = d / (name or f"{ws}.ipynb")
        if isinstance(nb_or_bytes, bytes):
            path.write_bytes(nb_or_bytes)
        else:
            nbformat.write(nb_or_bytes, path)
        expected[student] = expect

    put("correct", sol, dict(full))
    put("untouched", exercise_of(sol),
        {gid: (0, "not_implemented", "not implemented yet") for gid, _, _, _ in tests})
    for gid, check, target, pts in tests:
        nb, hint = with_mistake(sol, target, check)
        put(f"wrong_{target}", nb, {**full, gid: (0, "fail", hint)})

    # edited tests: every test cell replaced by print("ok") / pass and moved to the end; one TODO wrong
    gid_w, check_w, target_w, _ = tests[-1]
    nb, hint = with_mistake(sol, target_w, check_w, index=1)
    moved = [c for c in nb.cells if _nbg(c).get("grade")]
    nb.cells = [c for c in nb.cells if not _nbg(c).get("grade")] + moved
    for i, cell in enumerate(moved):
        cell.source = 'print("ok")' if i % 2 == 0 else "pass"
        cell.metadata["nbgrader"]["points"] = 100          # edited metadata gains nothing either
    put("edited_tests", nb, {**full, gid_w: (0, "fail", hint)})

    # deleted graded cell
    gid_d = tests[1][0]
    nb = copy.deepcopy(sol)
    nb.cells = [c for c in nb.cells if _nbg(c).get("grade_id") != gid_d]
    put("deleted_test", nb, {**full, gid_d: (0, "missing", "missing")})

    # infinite loops: one inside a function (hit by the grader's cases), one at the top level of a cell
    nb = copy.deepcopy(sol)
    (g1, _, t1, _), (g2, _, t2, _) = tests[1], tests[2]
    cell = _solution_cell(nb, t1)
    cell.source = cell.source.replace(f"def {t1}(", f"def _{t1}_unused(", 1) + \
        f"\n\ndef {t1}(*args, **kwargs):\n    while True:\n        pass\n"
    _solution_cell(nb, t2).source = "while True:\n    pass\n\n" + _solution_cell(nb, t2).source
    put("infinite_loop", nb, {**full, g1: (0, "timeout", "limit"), g2: (0, "error", "CellTimeoutError")})

    # memory hog: 10 GB in the second TODO's cell (run with a 2 GB limit)
    nb = copy.deepcopy(sol)
    _solution_cell(nb, t1).source = ("_hog = torch.ones(10 * 2**30 // 4)  # 10 GB\n\n" +
                                     _solution_cell(nb, t1).source)
    put("memory_hog", nb, {**full, g1: (0, "error", "memory")})

    # kernel death right after the first graded cell, with processes that try to outlive the kernel
    nb = copy.deepcopy(sol)
    idx = nb.cells.index(_test_cell(nb, tests[0][0]))
    nb.cells.insert(idx + 1, nbformat.v4.new_code_cell(
        "import os, subprocess, sys\n"
        f"subprocess.Popen(['sleep', '4242'], start_new_session=True)  # {LOOP_MARK}: escapes the process group\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(4243)  # {LOOP_MARK}'])\n"
        "os._exit(1)"))
    put("kernel_crash", nb, {**full, **{g: (0, "crashed", "kernel died") for g, _, _, _ in tests[1:]}})

    # monkeypatched comparisons on the untouched exercise: nothing can turn a stub into a pass
    nb = exercise_of(sol)
    nb.cells.insert(3, nbformat.v4.new_code_cell(
        "import builtins, torch\nimport course_utils.checks as C\n"
        "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
        "_ok = C.CheckResult(True, '✅ correct', 'pass')\n"
        "C.verdict = lambda *a, **k: _ok\nC.run_check = lambda *a, **k: _ok\nC.report = lambda *a, **k: True\n"
        "C.harvest = lambda name, obj, hidden=True: []\n"
        "for _name in list(vars(C)):\n"
        "    if _name.startswith('check_'):\n        setattr(C, _name, lambda *a, **k: True)\n"
        "builtins.AssertionError = type('AssertionError', (Exception,), {})\n"
        "builtins.all = lambda *a, **k: True\nbuiltins.any = lambda *a, **k: False\n"))
    put("monkeypatch", nb, {gid: (0, None, "") for gid, _, _, _ in tests})

    # file-system attacks: the first TODO is right only if every attack failed
    others = [str(folder / "correct" / f"{ws}.ipynb"), str(solution)]
    targets = [str(solution.parent / "HACKED.txt"), str(folder / "correct" / "HACKED.txt"),
               str(folder / "correct" / f"{ws}.ipynb"), str(Path.home() / "HACKED.txt")]
    if source_dir is not None:
        targets.append(str(Path(source_dir) / "HACKED.txt"))
    nb = copy.deepcopy(sol)
    cell = _solution_cell(nb, tests[0][2])
    cell.source += ("\n\nimport os\n_breaches = []\n"
                    f"for _p in {others!r}:\n"
                    "    try:\n        open(_p, 'rb').read(10); _breaches.append('read ' + _p)\n"
                    "    except OSError:\n        pass\n"
                    f"for _p in {targets!r}:\n"
                    "    try:\n        open(_p, 'a').write('pwned'); _breaches.append('write ' + _p)\n"
                    "    except OSError:\n        pass\n"
                    f"for _d in ({str(folder)!r}, os.path.dirname(os.path.dirname(os.getcwd()))):\n"
                    "    try:\n        _breaches += ['list ' + n for n in os.listdir(_d)]\n"
                    "    except OSError:\n        pass\n"
                    f"if _breaches:\n    {tests[0][2]} = lambda *a, **k: _breaches\n")
    put("file_attack", nb, dict(full))

    # huge output: a correct notebook carrying 3 MB of printed output
    nb = copy.deepcopy(sol)
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * 3_000_000)]
    put("huge_output", nb, dict(full))

    # malformed files: no kernel runs for these
    zero = {gid: (0, None, None) for gid, _, _, _ in tests}
    put("not_json", b"this is not JSON {", {g: (0, "not_a_notebook", "not valid JSON") for g in zero})
    put("json_list", b"[1, 2, 3]", {g: (0, "not_a_notebook", "no list of cells") for g in zero})
    put("binary", bytes(range(256)) * 4, {g: (0, "not_a_notebook", "not UTF-8") for g in zero})
    put("empty", json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode(),
        {g: (0, "empty", "empty notebook") for g in zero})
    put("too_large", b" " * 5_000_000 + nbformat.writes(sol).encode(),
        {g: (0, "too_large", "over the limit") for g in zero})
    other = REPO / "solutions" / "02_forward.ipynb"
    other_nb = nbformat.read(other, as_version=4) if other.exists() else nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {"grade_id": "other_ws", "grade": False}})])
    put("other_worksheet", other_nb, {g: (0, "wrong_worksheet", "does not look like worksheet") for g in zero})
    return expected


# ------------------------------------------------------------------ a small worksheet built here
def fixture_solution(path: Path) -> Path:
    """A worksheet with the lab's diffusion_schedule TODO, its graded check and a manually graded summary."""
    def nbg(gid, **kw):
        return {"nbgrader": {"grade_id": gid, "schema_version": 3, "task": False, **kw}}
    cells = [
        nbformat.v4.new_markdown_cell("# Lab fixture",
                                      metadata=nbg("intro", grade=False, locked=True, solution=False)),
        nbformat.v4.new_code_cell("import math\nimport torch\n"
                                  "from course_utils.checks import check_diffusion_schedule"),
        nbformat.v4.new_code_cell(
            "def diffusion_schedule(diffusion_times, min_signal_rate=0.02, max_signal_rate=0.95):\n"
            "    ### BEGIN SOLUTION\n"
            "    start, end = math.acos(max_signal_rate), math.acos(min_signal_rate)\n"
            "    angles = start + diffusion_times * (end - start)\n"
            "    return torch.sin(angles), torch.cos(angles)\n"
            "    ### END SOLUTION",
            metadata=nbg("diffusion_schedule", grade=False, locked=False, solution=True)),
        nbformat.v4.new_code_cell(
            "check_diffusion_schedule(diffusion_schedule)\n### BEGIN HIDDEN TESTS\n"
            "from course_utils.checks import run_check\n"
            "assert run_check('diffusion_schedule', diffusion_schedule, hidden=True).passed\n### END HIDDEN TESTS",
            metadata={**nbg("test_diffusion_schedule", grade=True, locked=True, points=3, solution=False),
                      "course": {"check": "diffusion_schedule", "target": "diffusion_schedule"}}),
        nbformat.v4.new_markdown_cell(
            "### BEGIN SOLUTION\nThe angle moves linearly, so signal^2 + noise^2 = 1.\n### END SOLUTION",
            metadata={**nbg("summary", grade=True, locked=False, points=2, solution=True),
                      "course": {"manual": True}}),
    ]
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                         "display_name": "Python 3"}})
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path
