"""The grader's fast path (course_utils/sandbox/pool.py, zygote.py): one pre-imported interpreter per worker
forks every job. What one submission does must never reach the next one graded by the same zygote.

One CLI run with ``--workers 1`` (so one zygote grades everything, in name order): ``a_traps`` leaves every trap
we could think of (monkeypatched torch, numpy and course_utils, files in /tmp, its box and HOME, threads that
keep patching, globals, sys.modules, sys.path, os.environ, signal handlers and an interval timer, random seeds,
the default dtype, a process in its own session); ``b_clean`` is the solution plus a probe cell that looks for
each trap and, where it finds one, breaks a TODO with the list (so a leak costs points and says what leaked);
``c_stuck`` ignores interrupts in an endless loop (killed by the grader's wall clock); ``d_clean`` is ``b_clean``
again, after that kill; ``e_features`` uses what notebooks use (``%matplotlib inline``, ``display``, widgets)
and raises an exception whose message cannot be printed, after patching ``os.write`` and ``os._exit``.
The probe also runs in ``a_traps`` right after the traps: it must find them there (the probe works).

Then: a cell deaf to interrupts and a dead zygote (``sandbox.Pool`` used directly), and the same part of the
corpus graded by both paths (the zygote, and ``--no-pool``: a Jupyter kernel per submission) with the same
grades.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

import grading_corpus as corpus

# c_stuck's cell outlives --timeout (the grader's wall clock) before --cell-timeout and its grace period
ARGS = ["--workers", "1", "--cell-timeout", "60", "--timeout", "25", "--memory-mb", "2048", "--quiet",
        "--allow-root"]

TRAPS = '''
# every trap: what a later submission graded by the same zygote must not see
import builtins, os, random, signal, subprocess, sys, threading, time, types
import numpy as np, torch
import course_utils, course_utils.checks as C, course_utils.schedules as S
random.seed(666); np.random.seed(666); torch.manual_seed(666)
torch.set_default_dtype(torch.float64)
_bad = lambda *a, **k: torch.zeros(3)
torch.linspace = _bad
torch.Tensor.__add__ = lambda self, other: self
np.linspace = lambda *a, **k: np.zeros(3)
torch.manual_seed = lambda *a, **k: None
C.CHECKS.clear()
S.NoiseSchedule.__init__ = lambda self, *a, **k: None
_real_len = len
builtins.len = lambda x: 0 if x == [1, 2] else _real_len(x)     # lies on one value only: IPython keeps working
sys.modules["math"] = types.ModuleType("math")
sys.path.insert(0, "/tmp/course_trap")
os.environ["COURSE_TRAP"] = "1"
os.environ["PYTHONPATH"] = "/tmp/course_trap"
trap_global = True
for _p in ["/tmp/course_trap.py", os.path.expanduser("~/course_trap.py"), "course_trap.py", "math.py",
           os.path.join(os.environ.get("TMPDIR", "/tmp"), "course_trap.py")]:
    try:
        with open(_p, "w") as _f:
            _f.write("raise SystemExit('trap')\\n")
    except OSError:
        pass

def _patcher():
    while True:
        torch.linspace = _bad
        time.sleep(0.01)
threading.Thread(target=_patcher, name="course_trap", daemon=True).start()
signal.signal(signal.SIGALRM, lambda *a: None)
signal.setitimer(signal.ITIMER_REAL, 0.5, 0.5)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen(["sleep", "600"], start_new_session=True)
os.chdir("/")
'''

PROBE = '''
# looks for every trap of a_traps; a leak breaks the first TODO, with the list in its message
import builtins, os, random, signal, sys, threading
import numpy as np, torch
import course_utils.checks as _C, course_utils.schedules as _S
_leaks = []
def _check(name, ok):
    try:
        if not ok():
            _leaks.append(name)
    except Exception as err:
        _leaks.append(f"{name} ({type(err).__name__})")
_check("torch.linspace", lambda: torch.linspace(0, 1, 3).tolist() == [0.0, 0.5, 1.0])
_check("Tensor.__add__", lambda: (torch.ones(2) + torch.ones(2)).tolist() == [2.0, 2.0])
_check("default dtype", lambda: torch.get_default_dtype() == torch.float32)
_check("np.linspace", lambda: np.linspace(0, 1, 3).tolist() == [0.0, 0.5, 1.0])
_check("torch seed", lambda: torch.initial_seed() != 666)
_check("random seed", lambda: random.random() != __import__("random").Random(666).random())
_check("numpy seed", lambda: np.random.random() != np.random.RandomState(666).random_sample())
_check("checks.CHECKS", lambda: len(_C.CHECKS) > 0)
_check("NoiseSchedule", lambda: _S.NoiseSchedule.from_betas(torch.full((4,), 0.1)).betas.shape == (4,))
_check("builtins.len", lambda: builtins.len([1, 2]) == 2)
_check("sys.modules", lambda: hasattr(sys.modules["math"], "cos"))
_check("sys.path", lambda: "/tmp/course_trap" not in sys.path)
_check("os.environ", lambda: "COURSE_TRAP" not in os.environ and "course_trap" not in os.environ.get("PYTHONPATH", ""))
_check("globals", lambda: "trap_global" not in globals())
_check("threads", lambda: not any(t.name == "course_trap" for t in threading.enumerate()))
_check("SIGALRM", lambda: signal.getsignal(signal.SIGALRM) == signal.SIG_DFL)
_check("timer", lambda: signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0))
_check("SIGTERM", lambda: signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
_check("SIGINT", lambda: signal.getsignal(signal.SIGINT) is signal.default_int_handler)
_check("cwd", lambda: os.getcwd().endswith(os.path.join("box", "work")))
_check("files", lambda: not any(os.path.exists(p) for p in [
    "/tmp/course_trap.py", os.path.expanduser("~/course_trap.py"), "course_trap.py", "math.py",
    os.path.join(os.environ.get("TMPDIR", "/tmp"), "course_trap.py")]))
def _processes():
    mine = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                mine.append(open(f"/proc/{pid}/cmdline", "rb").read())
            except OSError:
                pass
    return not any(b"sleep" in c and b"600" in c for c in mine) and len(mine) < 10
_check("processes", _processes)
def _descriptors():      # the kernel holds its pipe to process 1, /dev/null, and nothing of the zygote's
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:") or not (target.startswith(("pipe:", "/dev/null", "anon_inode:"))
                                                 or "/box/" in target or target == "/proc/self/fd"
                                                 or target.startswith("/proc/")):
            _leaks.append("descriptor " + target)
    return True
_check("descriptors", _descriptors)
if _leaks:
    def linear_beta_schedule(*args, **kwargs):
        raise RuntimeError("LEAKED: " + ", ".join(_leaks))
    raise RuntimeError("LEAKED: " + ", ".join(_leaks))     # quoted in every row that did not pass
'''

ODD = '''
# an exception whose message cannot be printed, and the primitives the kernel reports with, patched
import os as _os
class _Odd(Exception):
    def __str__(self):
        raise RuntimeError("no message")
_os.write = _os._exit = None
raise _Odd()
'''

STUCK = '''
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    pass
'''

FEATURES = '''
# what lessons and worksheets use; any failure breaks the first TODO, with the list
_broken = []
def _try(name, f):
    try:
        f()
    except BaseException as err:
        _broken.append(f"{name}: {type(err).__name__}: {err}")
_try("%matplotlib inline", lambda: get_ipython().run_line_magic("matplotlib", "inline"))
import matplotlib.pyplot as plt
def _plot():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    plt.show()
_try("plt.show", _plot)
_try("display", lambda: display("text", {"a": 1}))
from IPython.display import HTML, Markdown
_try("HTML", lambda: display(HTML("<b>x</b>"), Markdown("*y*")))
_try("print", lambda: print("x" * 100_000))
def _widgets():
    import ipywidgets as widgets
    slider = widgets.IntSlider(value=3, min=0, max=10)
    display(slider)
    out = widgets.interactive(lambda k: k * 2, k=slider)
    assert out.result == 6, out.result
_try("ipywidgets", _widgets)
def _input():
    try:
        input("a question? ")
    except Exception:
        return      # no stdin while grading: an error, as in a Jupyter kernel without stdin
    raise AssertionError("input() returned")
_try("input", _input)
def _assert(ok, what):
    if not ok:
        raise AssertionError(what)
_try("In/Out", lambda: _assert(len(In) > 1 and "_try" in In[-1], In[-3:]))
_try("course_utils is the grader's copy",
     lambda: _assert("course-grade-run-" in __import__("course_utils").__file__, __import__("course_utils").__file__))
if _broken:
    def linear_beta_schedule(*args, **kwargs):
        raise RuntimeError("BROKEN: " + " | ".join(_broken))
'''


def _solution_copy(root: Path) -> Path:
    """A copy of the worksheet's solution (others may edit the real one meanwhile; attacks aim at its folder)."""
    shutil.copytree(corpus.SOLUTION.parent, root / "solutions", ignore=shutil.ignore_patterns(".*"))
    return root / "solutions" / corpus.SOLUTION.name


def _with_cell(nb, code: str, before_grade_id: str):
    """``nb`` with a code cell inserted before the graded test cell ``before_grade_id``."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    idx = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == before_grade_id)
    nb.cells.insert(idx, nbformat.v4.new_code_cell(code))
    return nb


@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    subs, out, gtmp = root / "submissions", root / "out", root / "tmp"
    gtmp.mkdir()
    solution = _solution_copy(root)
    sol = nbformat.read(solution, as_version=4)
    tests = corpus.graded_checks(sol)
    first = tests[0][0]
    ws = corpus.SOLUTION.stem
    notebooks = {
        "a_traps": _with_cell(_with_cell(sol, TRAPS, first), PROBE, first),
        "b_clean": _with_cell(sol, PROBE, first),
        "c_stuck": _with_cell(sol, STUCK, first),
        "d_clean": _with_cell(sol, PROBE, first),
        "e_features": _with_cell(_with_cell(sol, FEATURES, first), ODD, first),
    }
    for student, nb in notebooks.items():
        (subs / student).mkdir(parents=True)
        nbformat.write(nb, subs / student / f"{ws}.ipynb")
    env = {**os.environ, "TMPDIR": str(gtmp)}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "course_utils.grade", str(solution), str(subs), "--out",
                           str(out), *ARGS], capture_output=True, text=True, env=env, timeout=900)
    seconds = time.monotonic() - start
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows: dict[str, dict[str, dict]] = {}
        for row in csv.DictReader(f):
            rows.setdefault(row["student"], {})[row["grade_id"]] = row
    results = {s: json.loads((out / "results" / ws / f"{s}.json").read_text()) for s in notebooks}
    return dict(proc=proc, rows=rows, results=results, tests=tests, tmp=gtmp, seconds=seconds)


@pytest.mark.slow
def test_the_run_completes(pooled):
    assert pooled["proc"].returncode == 0, pooled["proc"].stderr[-3000:]


@pytest.mark.slow
def test_the_probe_finds_the_traps_where_they_were_laid(pooled):
    message = pooled["rows"]["a_traps"][pooled["tests"][0][0]]["message"]     # the error's first 160 characters
    assert "LEAKED: " in message, message
    for trap in ("torch.linspace", "Tensor.__add__", "default dtype", "np.linspace", "torch seed", "random seed",
                 "numpy seed", "checks.CHECKS", "NoiseSchedule"):
        assert trap in message, message


@pytest.mark.slow
@pytest.mark.parametrize("student", ["b_clean", "d_clean"])
def test_the_next_submission_on_the_same_zygote_starts_clean(pooled, student):
    rows = pooled["rows"][student]
    assert rows["TOTAL"]["points"] == rows["TOTAL"]["max_points"], {k: r["message"] for k, r in rows.items()}
    assert "LEAKED" not in json.dumps(rows)


@pytest.mark.slow
def test_a_kernel_that_ignores_interrupts_is_stopped_by_the_wall_clock(pooled):
    rows = pooled["rows"]["c_stuck"]
    assert rows["TOTAL"]["points"] == "0"
    assert all(rows[g]["status"] == "timeout" for g, _, _, _ in pooled["tests"]), rows
    assert pooled["results"]["c_stuck"]["seconds"] < 60


@pytest.mark.slow
def test_what_notebooks_use_works_in_the_pool(pooled):
    rows = pooled["rows"]["e_features"]
    assert rows["TOTAL"]["points"] == rows["TOTAL"]["max_points"], {k: r["message"] for k, r in rows.items()}


@pytest.mark.slow
def test_every_protection_holds_as_on_the_slow_path(pooled):
    held = pooled["results"]["b_clean"]["protections"]
    for what in ("files", "processes", "network", "memory", "disk", "identity"):
        assert what in held, held
    if os.uname().machine in ("x86_64", "aarch64"):
        assert "namespaces_locked" in held, held
    assert pooled["results"]["b_clean"]["seconds"] < 10


@pytest.mark.slow
def test_no_process_and_no_temporary_folder_is_left(pooled):
    pytest.importorskip("psutil")
    assert not corpus.own_processes(pooled["tmp"])
    assert list(pooled["tmp"].iterdir()) == []


@pytest.mark.slow
def test_the_pool_stops_a_deaf_cell_and_replaces_a_dead_zygote(tmp_path):
    """A cell that ignores the interrupt is killed after the grace period (the notebook ends there); a zygote
    that died (nothing in a job can kill it) is replaced before the next job."""
    from course_utils import sandbox
    from course_utils.sandbox import zygote
    pool = sandbox.Pool(1, scratch=tmp_path / "zygotes")      # the real course_utils: no student code here
    read_only = sandbox.system_read_only()

    def run(*sources, cell_timeout=60):
        nb = {"cells": [{"cell_type": "code", "source": src, "metadata": {}, "outputs": [], "execution_count": None}
                        for src in sources], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}
        with sandbox.Job(sandbox.Limits(timeout=60, cell_timeout=cell_timeout), read_only=read_only) as job:
            return job.run(nb, "x.ipynb", b"{}", pool=pool)
    try:
        start = time.monotonic()
        deaf = run("x = 1", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
                   "y = 2", cell_timeout=2)
        assert time.monotonic() - start < 2 + zygote.GRACE_S + 15
        assert [c["status"] for c in deaf.cells] == ["ok", "error"] and deaf.cells[1]["ename"] == "CellTimeoutError"
        assert "did not stop" in deaf.dead and not deaf.finished
        assert run("x = 1").finished
        first = pool._free.queue[0]
        first.proc.kill()
        first.proc.wait()
        outcome = run("x = 1")      # acquire() replaced it before the job
        assert outcome.finished and pool._free.queue[0] is not first
    finally:
        pool.close()


@pytest.mark.slow
def test_a_runner_killed_on_the_zygote_path_is_named_dead_with_its_exit_status(tmp_path):
    """Without a pid namespace (Gradescope's containers, Ubuntu's userns restriction) a student's cell can kill
    the zygote's runner, its parent, which then writes no last record: the outcome names it dead with the exit
    status the zygote reports (-9), as the nbclient path does (tests/test_grade_attacks.py), not a notebook that
    merely stopped. grade.not_set_up reads what ran before (here the student's first cell: a verdict)."""
    from course_utils import sandbox
    pool = sandbox.Pool(1, scratch=tmp_path / "zygotes")
    cells = ["x = 1", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", "y = 2"]
    nb = {"cells": [{"cell_type": "code", "source": src, "metadata": {}, "outputs": [], "execution_count": None}
                    for src in cells], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}
    try:
        with sandbox.Job(sandbox.Limits(timeout=60, cell_timeout=30), read_only=sandbox.system_read_only(),
                         namespaces=False) as job:
            outcome = job.run(nb, "x.ipynb", b"{}", pool=pool)
    finally:
        pool.close()
    assert outcome.exit_status == -9 and not outcome.finished, outcome
    assert outcome.dead == "the sandbox's runner ended without a record (exit status -9)", outcome.dead
    assert 2 not in [c.get("index") for c in outcome.cells]         # nothing after the kill ran


PARITY = ["correct", "untouched", "wrong_linear_beta_schedule", "edited_tests", "infinite_loop", "memory_hog",
          "kernel_crash", "monkeypatch", "file_attack", "exit_call"]


@pytest.mark.slow
def test_both_paths_give_the_same_grades(tmp_path):
    """The zygote and a Jupyter kernel per submission (--no-pool) agree on points and statuses, and on the
    messages of what ran to the end, over the part of tests/grading_corpus.py that runs code."""
    subs, solution = tmp_path / "submissions", _solution_copy(tmp_path)
    corpus.build_corpus(subs, solution, source_dir=solution.parent)
    tables = {}
    for name, extra in (("pool", []), ("nbclient", ["--no-pool"])):
        out = tmp_path / name
        proc = subprocess.run([sys.executable, "-m", "course_utils.grade", str(solution),
                               *[str(subs / s) for s in PARITY], "--out", str(out), "--workers", "2",
                               "--cell-timeout", "10", "--timeout", "120", "--memory-mb", "2048", "--quiet",
                               "--allow-root", *extra], capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        with open(out / "grades.csv", newline="", encoding="utf-8") as f:
            tables[name] = {(r["student"], r["grade_id"]): r for r in csv.DictReader(f)}
    assert tables["pool"].keys() == tables["nbclient"].keys()
    assert {s for s, _ in tables["pool"]} == set(PARITY)
    for key, row in tables["pool"].items():
        old = tables["nbclient"][key]
        assert (row["points"], row["status"]) == (old["points"], old["status"]), (key, row, old)
        if row["status"] in ("pass", "fail", "not_implemented"):
            assert row["message"] == old["message"], (key, row, old)


_SUPERVISE = r'''
import json, os, select, sys, time
sys.path.insert(0, os.path.join(os.getcwd(), "course_utils", "sandbox"))
import zygote

_select = select.select
def late_select(*args):       # the kernel is a zombie, and is reaped, before its pipe's end is read
    ready = _select(*args)
    time.sleep(0.3)
    return ready
zygote.select.select = late_select

box = sys.argv[1]
os.makedirs(os.path.join(box, "work"), exist_ok=True)
events = []
job = {"box": box, "cell_timeout": 30, "setup_timeout": 30, "log_fd": os.open(os.devnull, os.O_WRONLY),
       "harvest_fd": os.open(os.devnull, os.O_WRONLY),
       "max_harvest_bytes": 0}
cells = [{"cell_type": "code", "source": "x = 1"}, {"cell_type": "code", "source": "import os; os._exit(7)"},
         {"cell_type": "code", "source": "y = 2"}]
zygote._supervise(job, cells, lambda **e: events.append(e))
print(json.dumps(events))
'''


def test_a_kernel_reaped_before_its_pipe_closes_is_reported_as_dead(tmp_path):
    """The race that CI hit: the supervisor reaps the dead kernel, then reads the end of its pipe; signalling
    the reaped pid raised ProcessLookupError, and the student read that instead of 'the kernel died'."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", _SUPERVISE, str(tmp_path)], cwd=root, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = json.loads(proc.stdout.strip().splitlines()[-1])
    cells = [e["cell"] for e in events if "cell" in e]
    assert [c["index"] for c in cells] == [0] and cells[0]["status"] == "ok"
    dead = [e["dead"] for e in events if "dead" in e]
    assert dead == ["the kernel died (exit code 7)"], events
