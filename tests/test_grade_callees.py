"""A TODO that failed beside a failing TODO it calls is graded again with the course's answer in its place
(course_utils/grade_callees.py): which TODOs, the cells around the graded one, and real submissions graded end to
end, among them a student who moves cells to have a TODO graded as the course's and one who tries to read the
course's answer out of the second run."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from course_utils import grade_callees
from course_utils.checks import CHECKS
from course_utils.exercises import CODE_STUB
from course_utils.grade import Graded, load_source

from grading_corpus import REPO

LAB, UNET = REPO / "solutions" / "lab_ddim.ipynb", REPO / "solutions" / "03_unet.ipynb"
WRONG_DENOISE = ("def denoise(network, noisy_images, noise_rates, signal_rates):\n"
                 "    pred_noises = network(noisy_images, noise_rates ** 2)\n"
                 "    return pred_noises, (noisy_images + noise_rates * pred_noises) / signal_rates\n")
COURSE_ONLY = "Predict the noise with the network"     # the course's denoise docstring: in no student's notebook


def _checked(path: Path) -> list[Graded]:
    return load_source(path).checked


def _rows(graded: list[Graded], status: dict[str, str]) -> list[dict]:
    return [{"grade_id": g.grade_id, "status": status.get(g.target, "pass"), "points": 0, "max_points": 3,
             "message": f"❌ {g.target}: wrong"} for g in graded]


def _replace(path: Path, status: dict[str, str], own: dict[str, str] | None = None) -> dict[str, list[str]]:
    source = load_source(path)
    graded = _checked(path)
    calls = {g.check: CHECKS[g.check].calls for g in graded}
    return grade_callees.to_replace(graded, _rows(graded, status), source.answers, calls, own or {})


def test_source_answers_are_the_solution_cells_by_the_names_they_bind():
    answers = load_source(LAB).answers
    assert set(answers) == {"diffusion_schedule", "denoise", "reverse_diffusion"}
    assert answers["denoise"].names == ("denoise",) and COURSE_ONLY in answers["denoise"].code
    found = grade_callees.answers([("a", "import math as m\nX, (Y, Z) = 1, (2, 3)\nclass K: pass\n"),
                                   ("b", "def broken(:\n"), ("c", "def K(): pass\n")])
    assert found["K"].names == ("m", "X", "Y", "Z", "K") and "broken" not in found


def test_which_todos_are_graded_again_and_with_which_answers():
    # the lab: a failing denoise under a failing reverse_diffusion; a passing diffusion_schedule stays the student's
    assert _replace(LAB, {"denoise": "fail", "reverse_diffusion": "fail"}) == {"test_reverse_diffusion": ["denoise"]}
    assert _replace(LAB, {"denoise": "error", "diffusion_schedule": "fail", "reverse_diffusion": "error"}) == {
        "test_reverse_diffusion": ["denoise", "diffusion_schedule"]}
    # worksheet 3: what a replaced TODO calls is replaced too when it fails (SmallUNet -> STE -> sinusoidal)
    failing = {"sinusoidal_embedding": "fail", "SinusoidalTimeEmbedding": "fail", "SmallUNet": "fail"}
    assert _replace(UNET, failing) == {"test_SinusoidalTimeEmbedding": ["sinusoidal_embedding"],
                                       "test_SmallUNet": ["SinusoidalTimeEmbedding", "sinusoidal_embedding"]}
    # nothing to do: the callees pass, the caller passes, or it ran out of time beside a callee that did not (a
    # second run would cost the limit again, with nothing to blame)
    assert _replace(LAB, {"reverse_diffusion": "fail"}) == {}
    assert _replace(LAB, {"denoise": "fail"}) == {}
    assert _replace(LAB, {"denoise": "fail", "reverse_diffusion": "timeout"}) == {}
    assert _replace(LAB, {"reverse_diffusion": "timeout"}) == {}
    # out of time beside a callee out of time: most likely the callee's loop (an instructor's pass of 2026-12-08)
    assert _replace(LAB, {"denoise": "timeout", "reverse_diffusion": "timeout"}) == {
        "test_reverse_diffusion": ["denoise"]}
    assert _replace(LAB, {"denoise": "timeout", "diffusion_schedule": "fail", "reverse_diffusion": "timeout"}) == {
        "test_reverse_diffusion": ["denoise", "diffusion_schedule"]}


def test_a_todo_not_implemented_is_graded_again_only_when_its_stub_is_gone():
    """A callee's NotImplementedError propagates through a finished caller ("not implemented yet" for both); the
    caller whose cell still holds the stub is the student's untouched TODO."""
    status = {"denoise": "not_implemented", "reverse_diffusion": "not_implemented"}
    stub = f"def reverse_diffusion(network, initial_noise, diffusion_steps):\n    {CODE_STUB[0]}\n    {CODE_STUB[1]}\n"
    assert _replace(LAB, status, {"reverse_diffusion": stub}) == {}
    assert _replace(LAB, status, {}) == {}                          # no cell of that name: nothing to tell
    done = "def reverse_diffusion(network, initial_noise, diffusion_steps):\n    return initial_noise\n"
    assert _replace(LAB, status, {"reverse_diffusion": done}) == {"test_reverse_diffusion": ["denoise"]}


def test_the_cell_before_the_graded_one_lends_the_course_answers():
    answers = load_source(UNET).answers
    names = ["SinusoidalTimeEmbedding", "sinusoidal_embedding"]
    ns = {"__name__": "__main__"}
    exec("import math, torch\nfrom torch import nn\n"
         "def sinusoidal_embedding(t, dim, max_period=10000.0):\n    return 'mine'\n", ns)
    mine = ns["sinusoidal_embedding"]
    exec(grade_callees.before_cell(names, answers, "SmallUNet"), ns)
    assert ns["sinusoidal_embedding"] is not mine and ns["sinusoidal_embedding"](
        __import__("torch").arange(2), 4).shape == (2, 4)
    assert "SinusoidalTimeEmbedding" in ns and "SmallUNet" not in ns


def test_a_second_run_ends_with_the_graded_cell_it_is_for(tmp_path):
    """Nothing of the student's runs after the one TODO a second run grades (it could use what it kept of the
    course's answers), and no other TODO is harvested."""
    from course_utils.grade import build_run_notebook
    source = load_source(UNET)
    nb = nbformat.read(UNET, as_version=4)
    run_nb, found = build_run_notebook(source, nb, tmp_path, course={"test_SinusoidalTimeEmbedding":
                                                                      ["sinusoidal_embedding"]})
    roles = [(c["metadata"]["course_grade"]["role"], c["metadata"]["course_grade"]["grade_id"])
             for c in run_nb["cells"]]
    assert roles[-2:] == [("course", "test_SinusoidalTimeEmbedding"), ("harvest", "test_SinusoidalTimeEmbedding")]
    assert [r for r in roles if r[0] == "harvest"] == [("harvest", "test_SinusoidalTimeEmbedding")]
    assert not any("class ResBlock" in c["source"] for c in run_nb["cells"])      # a cell after it: not run


def test_a_note_that_did_not_fit_shortens_the_hint_not_the_notes():
    calls = " [it calls your denoise, which fails its own check: fix that first, this verdict may come from it]"
    again = (f"{grade_callees.AGAIN}denoise in place of yours, it did not pass either: look at reverse_diffusion "
             "itself too]")
    message = grade_callees.fit("❌ reverse_diffusion: " + "x" * 700 + calls, again, 600)
    assert len(message) == 600 and message.endswith(calls + again) and "x…" in message
    assert grade_callees.fit("❌ short", again, 600) == "❌ short" + again


# ------------------------------------------------------------------ real submissions, graded end to end
def _notebook(solution: Path, replace: dict[str, str], move_to_end: tuple[str, ...] = ()):
    nb = nbformat.read(solution, as_version=4)
    for gid, code in replace.items():
        cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)
        cell.source = code
    for gid in move_to_end:
        cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)
        nb.cells.remove(cell)
        nb.cells.append(cell)
    return nb


def _grade(solution: Path, students: dict, tmp: Path, *options: str) -> tuple[dict, Path]:
    subs, out = tmp / "subs", tmp / "out"
    for student, nb in students.items():
        (subs / student).mkdir(parents=True)
        nbformat.write(nb, subs / student / solution.name)
    proc = subprocess.run([sys.executable, "-m", "course_utils.grade", str(solution), str(subs), "--out", str(out),
                           "--workers", "2", "--quiet", "--allow-root", *options], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        return {(r["student"], r["grade_id"]): r for r in csv.DictReader(f)}, out


@pytest.mark.slow
def test_the_lab_credits_a_right_loop_beside_a_wrong_denoise_and_gives_nothing_away(tmp_path):
    leak = ("import inspect as _inspect\n"
            "def reverse_diffusion(network, initial_noise, diffusion_steps):\n"
            "    print(_inspect.getsource(denoise))\n"
            "    raise RuntimeError('LEAK ' + _inspect.getsource(denoise))\n")
    scaled = (load_source(LAB).answers["reverse_diffusion"].code.replace("### BEGIN SOLUTION", "")
              + "\n_right = reverse_diffusion\n"
              "def reverse_diffusion(network, initial_noise, diffusion_steps):\n"
              "    return 1.01 * _right(network, initial_noise, diffusion_steps)\n")
    rows, out = _grade(LAB, {"wrong_denoise": _notebook(LAB, {"denoise": WRONG_DENOISE}),
                             "both_wrong": _notebook(LAB, {"denoise": WRONG_DENOISE, "reverse_diffusion": scaled}),
                             "leaks": _notebook(LAB, {"denoise": WRONG_DENOISE, "reverse_diffusion": leak}),
                             "honest": nbformat.read(LAB, as_version=4)}, tmp_path)
    credited = rows[("wrong_denoise", "test_reverse_diffusion")]
    assert credited["points"] == "3" and credited["status"] == "pass", credited
    assert "correct with the course's denoise in place of yours" in credited["message"]
    assert rows[("wrong_denoise", "test_denoise")]["points"] == "0"
    for student in ("both_wrong", "leaks"):
        row = rows[(student, "test_reverse_diffusion")]
        assert row["points"] == "0" and "it calls your denoise" in row["message"], row
        assert "with the course's denoise in place of yours, it did not pass either" in row["message"], row
    assert "LEAK def denoise(network, noisy_images" in rows[("leaks", "test_reverse_diffusion")]["message"]
    assert all(rows[("honest", g)]["status"] in ("pass", "manual") for g in
               ("test_diffusion_schedule", "test_denoise", "test_reverse_diffusion", "summary"))
    results = {s: json.loads((out / "results" / "lab_ddim" / f"{s}.json").read_text()) for s, _ in rows}
    assert "second_run_seconds" not in results["honest"] and results["wrong_denoise"]["second_run_seconds"] > 0
    # the second run printed and raised the course's denoise: nothing of it is in anything the grader wrote
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            assert COURSE_ONLY not in text and "_course_grade_yours" not in text, path
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "1 with the course&#x27;s denoise" in report, report.split("Each TODO")[1][:2000]


@pytest.mark.slow
def test_moving_a_graded_cell_after_its_caller_borrows_nothing(tmp_path):
    """Worksheet 3, a wrong sinusoidal_embedding and a wrong time embedding (twice the right one), the embedding's
    graded cell moved after the UNet's: the UNet is graded again with the course's embedding and passes; the
    embedding is graded again in a run of its own, and fails (one run for both had graded it as the course's)."""
    wrong_sin = ("def sinusoidal_embedding(t, dim, max_period=10000.0):\n"
                 "    half = dim // 2\n"
                 "    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)\n"
                 "    args = t.float()[:, None] * freqs[None, :]\n"
                 "    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)\n")
    twice = ("class SinusoidalTimeEmbedding(nn.Module):\n"
             "    def __init__(self, dim, out_dim):\n"
             "        super().__init__()\n"
             "        self.dim = dim\n"
             "        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))\n\n"
             "    def forward(self, t):\n"
             "        return 2 * self.mlp(sinusoidal_embedding(t, self.dim))\n")
    nb = _notebook(UNET, {"sinusoidal_embedding": wrong_sin, "SinusoidalTimeEmbedding": twice},
                   move_to_end=("test_SinusoidalTimeEmbedding",))
    rows, _ = _grade(UNET, {"mover": nb}, tmp_path)
    unet, embedding = rows[("mover", "test_SmallUNet")], rows[("mover", "test_SinusoidalTimeEmbedding")]
    assert unet["points"] == "3" and "course's SinusoidalTimeEmbedding and sinusoidal_embedding" in unet["message"]
    assert embedding["points"] == "0" and "it did not pass either" in embedding["message"], embedding
    assert rows[("mover", "test_sinusoidal_embedding")]["points"] == "0"
    assert rows[("mover", "test_ResBlock")]["points"] == "2"


@pytest.mark.slow
def test_a_right_loop_beside_a_denoise_that_never_returns_is_credited(tmp_path):
    """An instructor's pass (2026-12-08): a right reverse_diffusion beside a ``while True`` in denoise ran out of
    time with it and scored 0, where a wrong value or an error in denoise had it credited; a larger --cell-timeout
    only cost more. A loop that ran out of time beside a callee that did too is graded again; one that loops by
    itself keeps its timeout (its second run runs out of time too)."""
    answers = load_source(LAB).answers
    right = answers["reverse_diffusion"].code.replace("### BEGIN SOLUTION", "")
    endless = ("def denoise(network, noisy_images, noise_rates, signal_rates):\n"
               "    while True:\n"
               "        pass\n")
    own_loop = "def reverse_diffusion(network, initial_noise, diffusion_steps):\n    while True:\n        pass\n"
    students = {"erin": _notebook(LAB, {"denoise": endless, "reverse_diffusion": right}),
                "loops": _notebook(LAB, {"denoise": endless, "reverse_diffusion": own_loop})}
    rows, out = _grade(LAB, students, tmp_path, "--cell-timeout", "6")
    assert rows[("erin", "test_denoise")]["status"] == "timeout"
    credited = rows[("erin", "test_reverse_diffusion")]
    assert credited["points"] == "3" and credited["status"] == "pass", credited
    assert "correct with the course's denoise in place of yours" in credited["message"], credited
    kept = rows[("loops", "test_reverse_diffusion")]
    assert kept["points"] == "0" and kept["status"] == "timeout", kept
    assert "that run ended before its verdict" in kept["message"], kept


@pytest.mark.slow
def test_a_second_run_out_of_time_is_one_more_cpu_could_change(tmp_path):
    """A right loop beside a wrong denoise, whose second run runs out of time (it sleeps when the denoise it calls
    is not the student's own): the row keeps its fail with 'ended before its verdict', and the result names the
    TODO in ``second_run_timeouts``, so that ``ran_out_of_time`` holds: beside another submission, without a
    CPU share of its own, it is graded again alone (tests/test_grade_alone.py). It was not: a neighbour that
    took the CPU during the second run cost a right loop its 3 points for good."""
    from course_utils.grade import ran_out_of_time
    right = load_source(LAB).answers["reverse_diffusion"].code.replace("### BEGIN SOLUTION", "")
    sleepy = (right + "\n_mine, _right = denoise, reverse_diffusion\n"
              "def reverse_diffusion(network, initial_noise, diffusion_steps):\n"
              "    import time\n"
              "    if denoise is not _mine:\n"
              "        time.sleep(600)\n"
              "    return _right(network, initial_noise, diffusion_steps)\n")
    students = {"sleepy": _notebook(LAB, {"denoise": WRONG_DENOISE, "reverse_diffusion": sleepy})}
    rows, out = _grade(LAB, students, tmp_path, "--cell-timeout", "8")
    row = rows[("sleepy", "test_reverse_diffusion")]
    assert row["points"] == "0" and "that run ended before its verdict" in row["message"], row
    result = json.loads((out / "results" / "lab_ddim" / "sleepy.json").read_text())
    assert result["second_run_timeouts"] == ["test_reverse_diffusion"] and ran_out_of_time(result)
    assert not ran_out_of_time({**result, "second_run_timeouts": []})       # (its first run: in time)
    assert "and that run ran out of time (or did not start: the first run left too little of --timeout): " \
        "test_reverse_diffusion" in (out / "report.html").read_text()


def test_the_second_run_has_what_the_first_left_of_the_submissions_time():
    """--timeout bounds a submission's two runs together: a Gradescope autograder's timeout is set from it."""
    from course_utils.grade import MIN_SECOND_RUN_S, Options, second_run_options
    opts = Options(timeout=400, cell_timeout=20)
    second = second_run_options(opts, 150.0)
    assert second.timeout == 250 and second.cell_timeout == 20 and opts.timeout == 400
    assert second_run_options(opts, 400 - MIN_SECOND_RUN_S + 1) is None


def test_what_the_second_run_gives_a_row_is_its_status_alone():
    graded = _checked(LAB)
    rows = [{"grade_id": "test_reverse_diffusion", "points": 0, "max_points": 3, "status": "fail",
             "message": f"❌ reverse_diffusion: wrong{' [it calls your denoise, which fails its own check]'}"}
            for _ in range(3)]
    outcomes = [("pass", "✅ SECRET"), ("fail", "❌ SECRET"), ("timeout", "❌ SECRET")]
    given = [grade_callees.credit(graded, [row], [{"grade_id": "test_reverse_diffusion", "status": st,
                                                   "message": said}], {"test_reverse_diffusion": ["denoise"]}, 600)[0]
             for row, (st, said) in zip(rows, outcomes)]
    assert [(r["points"], r["status"]) for r in given] == [(3, "pass"), (0, "fail"), (0, "fail")]
    assert all("SECRET" not in r["message"] and r["course_answers"] == ["denoise"] for r in given)
    assert given[0]["message"].startswith("✅ reverse_diffusion: correct with the course's denoise in place of yours")
    assert grade_callees.FAILED_TOO in given[1]["message"] and "ended before its verdict" in given[2]["message"]
    # its first hint came from the student's denoise: the instant check gives the one with a right denoise
    assert given[1]["message"].endswith("it did not pass either: look at reverse_diffusion itself too; its check in "
                                        "your notebook gives its hint with a right denoise]"), given[1]["message"]


def test_a_second_run_left_too_little_time_says_it_did_not_start():
    """The first run left under MIN_SECOND_RUN_S of the submission's --timeout: the TODO is not run again, and its
    row said "that run ended before its verdict (out of time, or a crash)" of a run that never started; it says
    so now, and the result still names it among the second runs out of time (more CPU for the first run, graded
    alone, leaves it the time)."""
    from course_utils.grade import MIN_SECOND_RUN_S, Options, Submission, with_course_answers
    source = load_source(LAB)
    rows = [{"grade_id": "test_reverse_diffusion", "points": 0, "max_points": 3, "status": "fail",
             "message": "❌ reverse_diffusion: wrong [it calls your denoise, which fails its own check]"}]
    opts = Options(timeout=300)
    given, seconds, late = with_course_answers(source, Submission("late", LAB), {}, b"", rows,
                                               {"test_reverse_diffusion": ["denoise"]}, opts,
                                               300 - MIN_SECOND_RUN_S + 1)
    assert late == ["test_reverse_diffusion"] and seconds == 0 and given[0]["points"] == 0, given
    assert given[0]["message"].endswith("[graded again with the course's denoise in place of yours, that run did not "
                                        "start: your notebook's first run left too little of its time limit]"), given


@pytest.mark.slow
def test_a_course_answer_stashed_by_one_todo_grades_no_other(tmp_path):
    """The student's UNet runs beside the course's time embedding in the second run and keeps it (in builtins); a
    cell of theirs after the UNet's graded cell binds it as their own embedding, whose graded cell they moved last.
    Each TODO graded again has a second run of its own that ends after its graded cell, so the stash is never
    there when the embedding is graded: it fails with the student's own."""
    answers = load_source(UNET).answers
    stash = ("\nimport builtins as _b\n_honest_init = SmallUNet.__init__\n"
             "def _stashing_init(self, *args, **kwargs):\n"
             "    _b._course_embedding = SinusoidalTimeEmbedding\n"
             "    _honest_init(self, *args, **kwargs)\n"
             "SmallUNet.__init__ = _stashing_init\n")
    wrong_sin = answers["sinusoidal_embedding"].code.replace("torch.sin(args), torch.cos(args)",
                                                               "torch.cos(args), torch.sin(args)")
    assert wrong_sin != answers["sinusoidal_embedding"].code
    nb = _notebook(UNET, {"sinusoidal_embedding": wrong_sin,
                          "SinusoidalTimeEmbedding": answers["SinusoidalTimeEmbedding"].code.replace(
                              "return self.mlp(", "return 2 * self.mlp("),
                          "SmallUNet": answers["SmallUNet"].code + stash},
                   move_to_end=("test_SinusoidalTimeEmbedding",))
    use = nbformat.v4.new_code_cell("import builtins as _b\nSinusoidalTimeEmbedding = getattr(\n"
                                    "    _b, '_course_embedding', SinusoidalTimeEmbedding)")
    nb.cells.insert(len(nb.cells) - 1, use)
    rows, _ = _grade(UNET, {"stasher": nb}, tmp_path)
    embedding = rows[("stasher", "test_SinusoidalTimeEmbedding")]
    assert embedding["points"] == "0" and "it did not pass either" in embedding["message"], embedding
    assert rows[("stasher", "test_SmallUNet")]["points"] == "3"


def test_an_unfinished_todo_is_one_whose_body_still_reaches_the_stub():
    """Every TODO cell of exercises/ is unfinished and every one of solutions/ is not; a red team's honest student
    who left `raise NotImplementedError()` after the body's return, or in a comment, missed the second run."""
    for folder, expected in (("exercises", True), ("solutions", False)):
        for path in sorted((REPO / folder).glob("*.ipynb")):
            for cell in nbformat.read(path, as_version=4).cells:
                if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
                    assert grade_callees.unfinished(cell.source) is expected, (path.name, cell.source)
    done = "def f(x):\n    return x\n"
    assert not grade_callees.unfinished(done + "    raise NotImplementedError()\n")
    assert not grade_callees.unfinished(done.replace("    return", "    # raise NotImplementedError()\n    return"))
    assert grade_callees.unfinished("def f(x):\n    y = x + 1\n    raise NotImplementedError\n")
    assert grade_callees.unfinished(None) and grade_callees.unfinished("def f(:\n")


def test_a_credited_todo_names_as_failing_only_what_still_fails():
    """Worksheet 3: the UNet and the time embedding both credited beside a wrong sinusoidal_embedding; the UNet's
    message named the (credited) embedding as failing its check (the red team)."""
    graded = _checked(UNET)
    rows = _rows(graded, {"sinusoidal_embedding": "fail", "SinusoidalTimeEmbedding": "fail", "SmallUNet": "fail"})
    replaced = {"test_SinusoidalTimeEmbedding": ["sinusoidal_embedding"],
                "test_SmallUNet": ["SinusoidalTimeEmbedding", "sinusoidal_embedding"]}
    again = [{"grade_id": gid, "status": "pass"} for gid in replaced]
    by_id = {r["grade_id"]: r for r in grade_callees.credit(graded, rows, again, replaced, 600)}
    unet = by_id["test_SmallUNet"]["message"]
    assert "course's SinusoidalTimeEmbedding and sinusoidal_embedding in place of yours" in unet, unet
    assert "your sinusoidal_embedding fails its own check: fix that" in unet, unet


# ------------------------------------------------------------------ the instant check does the same
def test_every_todo_that_another_calls_has_a_right_answer_to_lend():
    from course_utils.checks import run_check
    called = {dep for check in CHECKS.values() for dep in check.calls}
    by_target = {c.target: c for c in CHECKS.values()}
    assert called <= set(by_target), called - set(by_target)
    for dep in sorted(called):
        check = by_target[dep]
        assert check.answer is not None, dep
        assert run_check(check.name, check.answer(), hidden=True).passed, dep


def test_no_answer_to_lend_reaches_the_kernel_while_grading():
    """The kernel's copy of the checks keeps what a harvest runs; an answer is no check's ``call``, so it is a stub
    that raises there (a student could call ``CHECKS["denoise"].answer()`` in the graded notebook otherwise)."""
    import ast

    from course_utils.checks import framework
    from course_utils.sandbox import kernel_package
    folder = Path(framework.__file__).parent
    trees = {p.stem: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.py"))
             if p.name not in kernel_package._KEEP_IN_CHECKS}
    needed = kernel_package._needed(trees)
    answers = [c.answer for c in CHECKS.values() if c.answer is not None]
    assert len(answers) == 9
    for answer in answers:
        module = answer.__module__.rsplit(".", 1)[1]
        assert answer.__name__ not in needed[module], answer.__name__
        stripped = kernel_package.strip_checks_module(ast.parse((folder / f"{module}.py").read_text(encoding="utf-8")),
                                                      module, needed[module])
        ns: dict = {}
        body = next(n for n in ast.parse(stripped).body if getattr(n, "name", None) == answer.__name__)
        exec(compile(ast.Module([body], []), "stripped", "exec"), ns)
        with pytest.raises(PermissionError, match="hidden while grading"):
            ns[answer.__name__]()


def _solution_namespace(path: Path) -> dict:
    """The imports cell and every solution cell of a solution notebook, run in one namespace."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    ns: dict = {"__name__": "solution"}
    exec(compile(code[1].source, f"{path.name}:imports", "exec"), ns)
    for cell in code:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            exec(compile(cell.source, f"{path.name}:{cell.id}", "exec"), ns)
    return ns


PAIRS = [(path, caller.name, dep) for path in sorted((REPO / "solutions").glob("*.ipynb"))
         for caller in CHECKS.values() for dep in caller.calls
         if caller.target in load_source(path).answers and dep in load_source(path).answers]


@pytest.mark.parametrize("path, caller, dep", PAIRS, ids=[f"{p.stem}:{c}<-{d}" for p, c, d in PAIRS])
def test_the_instant_check_of_a_right_caller_beside_a_wrong_callee_says_it_passes_with_a_right_one(
        path, caller, dep, capsys):
    """Every pair of the worksheets: the solution's caller beside a catalogued wrong callee (the first that fails
    it: some mistakes of a step never show in its loop's cases) fails, and its instant check says that it passes
    with a right one in its place; the student's callee is back afterwards."""
    from course_utils.checks import MISTAKES, report, run_check
    by_target = {c.target: c for c in CHECKS.values()}
    ns = _solution_namespace(path)
    target = CHECKS[caller].target

    def fails_the_caller(bad) -> bool:
        ns[dep] = bad
        return not run_check(caller, ns[target]).passed
    wrong = next(bad for mid, bad, _ in MISTAKES[by_target[dep].name]
                 if mid != "not implemented" and fails_the_caller(bad))
    ns[dep] = wrong
    assert not report(caller, ns[target])
    said = " ".join(capsys.readouterr().out.split())
    assert f"with a right {dep} in its place it passes" in said, said
    assert ns[dep] is wrong


@pytest.mark.parametrize("path, caller, dep", PAIRS, ids=[f"{p.stem}:{c}<-{d}" for p, c, d in PAIRS])
def test_a_finished_caller_beside_a_stub_callee_is_told_it_waits_for_it(path, caller, dep, capsys):
    """A student who wrote the loop before the step: the step's NotImplementedError made the loop's check say
    "not implemented yet" of a finished loop. It says that the loop waits for the step, and passes with a right
    one; a caller that is still its own stub says "not implemented yet" alone."""
    from course_utils.checks import report

    def stub(*args, **kwargs):
        raise NotImplementedError()
    ns = _solution_namespace(path)
    capsys.readouterr()                                 # what the imports cell printed
    target = CHECKS[caller].target
    ns[dep] = type(dep, (), {"__init__": stub}) if isinstance(ns[dep], type) else stub
    assert not report(caller, ns[target])
    said = " ".join(capsys.readouterr().out.split())
    assert said.startswith(f"⏳ {target}: waits for your {dep} [it calls your {dep}, which fails its own check; "
                           f"with a right {dep} in its place it passes"), said
    ns[target] = type(target, (), {"__init__": stub}) if isinstance(ns[target], type) else stub
    assert not report(caller, ns[target])
    assert " ".join(capsys.readouterr().out.split()) == f"⏳ {target}: not implemented yet"


def test_a_check_of_outputs_that_keep_their_graph_warns_nothing(capsys):
    """A loop whose outputs keep the network's graph (a denoise that returns its input, no torch.no_grad): the
    check measured their difference to the reference with float() on a tensor that requires grad, and torch's
    UserWarning ("Converting a tensor with requires_grad=True to a scalar ...") appeared under the student's
    check in the notebook."""
    import warnings

    from course_utils.checks import report
    ns = _solution_namespace(LAB)
    ns["denoise"] = lambda network, x, noise_rates, signal_rates: (x, x)        # wrong
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not report("reverse_diffusion", ns["reverse_diffusion"])
    assert [str(w.message) for w in caught] == []
    assert "it calls your denoise" in capsys.readouterr().out


def test_a_check_called_while_grading_where_the_answers_are_stubs_says_only_that(monkeypatch, capsys):
    """While grading, a check called in a student's own cell runs the kernel's copy of the checks, whose answers
    raise PermissionError: the check says what it says without one, and raises nothing."""
    import dataclasses

    from course_utils.checks import report

    def hidden():
        raise PermissionError("course_utils.checks.lab_ddim.answer_denoise is hidden while grading")
    ns = _solution_namespace(LAB)
    capsys.readouterr()
    ns["denoise"] = lambda network, x, noise_rates, signal_rates: (x, x)        # wrong
    monkeypatch.setitem(CHECKS, "denoise", dataclasses.replace(CHECKS["denoise"], answer=hidden))
    assert not report("reverse_diffusion", ns["reverse_diffusion"])
    said = " ".join(capsys.readouterr().out.split())
    assert said.endswith("[it calls your denoise, which fails its own check: fix that first, this verdict may come "
                         "from it]"), said


def test_a_wrong_caller_beside_a_wrong_callee_is_told_its_own_mistake(capsys):
    """An instructor's pass (2026-12-08): a loop that returned the noisy images beside a swapped diffusion_schedule
    was told the first run's hint, computed with the swapped schedule ("denoise takes ... the noise rates first",
    of a call that was right), and never its own mistake. The instant check now shows the hint of the run with a
    right diffusion_schedule in place, which names it, as a loop beside a right schedule is told."""
    from course_utils.checks import MISTAKES, report, run_check
    ns = _solution_namespace(LAB)
    source = load_source(LAB).answers["reverse_diffusion"].code
    exec(source.replace("    return pred_images\n", "    return next_noisy_images\n"), ns)
    alone = run_check("reverse_diffusion", ns["reverse_diffusion"])          # beside the right schedule
    swapped = next(bad for mid, bad, _ in MISTAKES["diffusion_schedule"] if mid == "swapped")
    ns["diffusion_schedule"] = swapped
    first = run_check("reverse_diffusion", ns["reverse_diffusion"]).message
    capsys.readouterr()
    assert not report("reverse_diffusion", ns["reverse_diffusion"])
    said = " ".join(capsys.readouterr().out.split())
    assert not alone.passed and " ".join(alone.message.split()) in said, (alone.message, said)
    assert " ".join(first.split()) not in said, said        # (the first run's hint, which differs)
    assert ("[it calls your diffusion_schedule, which fails its own check; with a right diffusion_schedule in its "
            "place it still fails, as said here: its own mistake as well]") in said, said
    assert ns["diffusion_schedule"] is swapped


def _lab_with(loop_edits: dict[str, str], schedule: str | None = None):
    """The lab's solution namespace with the loop's code edited (old -> new) and, if named, a catalogued
    diffusion_schedule mistake in place of the right one."""
    from course_utils.checks import MISTAKES
    ns = _solution_namespace(LAB)
    code = load_source(LAB).answers["reverse_diffusion"].code
    for old, new in loop_edits.items():
        assert old in code, old
        code = code.replace(old, new)
    exec(code, ns)
    if schedule == "stub":
        def stub(*args, **kwargs):
            raise NotImplementedError()
        ns["diffusion_schedule"] = stub
    elif schedule:
        ns["diffusion_schedule"] = next(bad for mid, bad, _ in MISTAKES["diffusion_schedule"] if mid == schedule)
    return ns


def _said(capsys, ns) -> tuple[bool, str]:
    from course_utils.checks import report
    capsys.readouterr()
    passed = bool(report("reverse_diffusion", ns["reverse_diffusion"]))
    return passed, " ".join(capsys.readouterr().out.split())


RETURNS_NOISY = {"    return pred_images\n": "    return next_noisy_images\n"}


def test_a_wrong_loop_beside_a_stub_schedule_is_told_its_own_mistake(capsys):
    """A student's pass of the lab (2026-12-08): "⏳ reverse_diffusion: waits for your diffusion_schedule [...
    it still fails, as said here: its own mistake as well]" said nothing of the mistake. It prints the hint of the
    run with a right schedule."""
    passed, said = _said(capsys, _lab_with(RETURNS_NOISY, "stub"))
    assert not passed and said.startswith("❌ reverse_diffusion: return the last prediction of the clean images"), said
    assert said.endswith("with a right diffusion_schedule in its place it still fails, as said here: its own "
                         "mistake as well]"), said


def test_a_right_loop_beside_a_wrong_schedule_is_not_told_to_change_itself(capsys):
    """A student's pass of the lab: a right loop beside a swapped schedule opened with the first run's hint,
    "denoise takes (network, noisy_images, noise_rates, signal_rates), the noise rates first", which blames the
    loop; a student who followed it made the loop wrong too. It says the loop is right in itself."""
    passed, said = _said(capsys, _lab_with({}, "swapped"))
    assert not passed and said == (
        "❌ reverse_diffusion: right in itself, it fails only with your diffusion_schedule [it calls your "
        "diffusion_schedule, which fails its own check; with a right diffusion_schedule in its place it passes: fix "
        "that and this one passes as it is]"), said


def test_a_loop_right_only_beside_its_own_wrong_schedule_is_told_so(capsys):
    """A student's pass of the lab: a schedule that returns (signal, noise) beside a loop that unpacks it so got
    "✅ reverse_diffusion: correct", and a fail once the schedule was fixed as its check asked. The verdict stays a
    pass (the grader judges a TODO with the student's own callees), and the check says what a right schedule
    does to it."""
    unpacks = {"noise_rates, signal_rates = diffusion_schedule(diffusion_times)":
               "signal_rates, noise_rates = diffusion_schedule(diffusion_times)",
               "next_noise_rates, next_signal_rates = diffusion_schedule(next_diffusion_times)":
               "next_signal_rates, next_noise_rates = diffusion_schedule(next_diffusion_times)"}
    passed, said = _said(capsys, _lab_with(unpacks, "swapped"))
    assert passed and said.startswith("✅ reverse_diffusion: correct [but only beside your diffusion_schedule, which "
                                      "fails its own check: with a right diffusion_schedule in its place this one "
                                      "fails ("), said
    assert said.endswith("): fix both together]") and "the noise rates first" in said, said
    passed, said = _said(capsys, _lab_with(unpacks))        # beside a right schedule: the plain fail
    assert not passed and "the noise rates first" in said and "[" not in said, said
    passed, said = _said(capsys, _lab_with({}))             # all right: nothing more
    assert passed and said == "✅ reverse_diffusion: correct", said


def test_a_loop_that_does_not_finish_with_a_right_schedule_is_not_called_right(capsys):
    """A review (2026-12-08): "right in itself" was said of any caller whose run with right callees existed, also
    one that ended "not implemented yet" there (the stub's raise left in the loop, beside a schedule that raises)."""
    ns = _lab_with({"    return pred_images\n": "    raise NotImplementedError()\n"})

    def raises(diffusion_times, min_signal_rate=0.02, max_signal_rate=0.95):
        return torch.acos(max_signal_rate)
    ns["diffusion_schedule"] = raises
    passed, said = _said(capsys, ns)
    assert not passed and "right in itself" not in said and "it passes" not in said, said
    assert "[it calls your diffusion_schedule, which fails its own check: fix that first" in said, said


@pytest.mark.parametrize("path, caller, dep", PAIRS, ids=[f"{p.stem}:{c}<-{d}" for p, c, d in PAIRS])
def test_checking_a_callers_callees_leaves_the_global_generator_alone(path, caller, dep):
    """A review (2026-12-08): the callees of a caller that passes are checked too since that day, and some checks
    (worksheet 3's SmallUNet, worksheet 4's training_step) moved torch's global generator, which worksheet 4's
    checks measure: what report() adds to the caller's own check leaves it as run_check leaves it."""
    from course_utils.checks import MISTAKES, report, run_check
    by_target = {c.target: c for c in CHECKS.values()}
    ns = _solution_namespace(path)
    target = CHECKS[caller].target
    wrong = next(bad for mid, bad, _ in MISTAKES[by_target[dep].name] if mid != "not implemented")
    ns[dep] = wrong
    states = []
    for check in (run_check, report):
        torch.manual_seed(1234)
        check(caller, ns[target])
        states.append(torch.random.get_rng_state())
    assert torch.equal(*states)
