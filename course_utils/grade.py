"""Grade a class's worksheets: points per TODO, feedback per student, students' code kept in a sandbox.

    python -m course_utils.grade SOURCE SUBMISSION... --out DIR [--workers N] [--cell-timeout S] [--timeout S]
                                 [--memory-mb M] [--disk-mb M] [--max-processes N] [--max-notebook-mb M]
                                 [--force] [--keep-temp] [--quiet] [--no-pool] [--allow-root] [--shard K/N]
    python -m course_utils.grade merge | export-lms | export-gradescope ...   (docs/grading.md)

SOURCE is the instructor's solution notebook (solutions/*.ipynb, with the hidden tests); each SUBMISSION a
student's notebook or a folder of them (``submissions/<student>/<worksheet>.ipynb``: the student is the
folder's name; a loose ``alice.ipynb`` is student ``alice``). Writes DIR/grades.csv, DIR/feedback/<student>.md,
DIR/report.html and one result file per submission in DIR/results/<worksheet>/ (a rerun skips those unless --force).

How a submission is graded (docs/grading.md has the details and the limits):

1. The graded cells come from SOURCE, matched by nbgrader ``grade_id``. In the notebook that runs, every
   student cell whose grade_id is a graded test cell of SOURCE is replaced by a *harvest* cell: it calls
   ``checks.harvest(check, <target>)`` on the check's fixed cases (hidden ones included) and writes the raw
   outputs (a JSON header and the tensors' bytes: no pickle) in the sandbox's harvest folder. The student's
   copy of a test cell never runs; a deleted test cell scores 0 with a message. Other locked cells run as
   SOURCE has them.
2. ``course_utils.sandbox`` runs that notebook, confined (its docstring and docs/grading.md list how); the
   kernel imports a copy of ``course_utils`` in which this worksheet's references are stubs.
3. The verdict is computed HERE, in the grader: each harvest file is read without following links, bounded,
   decoded with strict checks, then ``checks.verdict`` recomputes the reference. Monkeypatching anything
   inside the kernel cannot pass a check; a missing or unreadable harvest file is a fail, never a pass.
"""
from __future__ import annotations

import argparse
import concurrent.futures as futures
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import grade_callees, grade_shards, sandbox
from .exercises import ANSWER_STUB
from .grade_cli import SUBCOMMANDS
from .grade_feedback import plain, safe_name, write_atomic, write_reports
from .grade_report import ANSWER_CELL_MISSING, NOT_ANSWERED, waiting_alone
from .grade_scan import monkeypatches
from .grade_files import (MAX_JSON_VALUES, MAX_NOTEBOOK_MB, GradeError, Malformed, _meta, _source_text,  # noqa: F401 (grade.X)
                          parse_notebook, pick_notebook, read_submission)
from .grade_files import valid_text as _valid_text
from .sandbox.values import HARVEST_CODE, decode_outputs, encode_values

PACKAGE_DIR = Path(__file__).resolve().parent
MAX_HARVEST_BYTES = 16 * 2 ** 20     # a harvest file larger than this is not read (the largest real one: 40 kB)
MAX_TEXT = 4000                      # characters kept of a manual answer
MAX_MESSAGE = 600                    # characters kept of a message
MAX_CELL_ERRORS = 20                 # cells that raised outside the graded TODOs, kept per submission
MAX_ERROR_NOTES = 3                  # of which the feedback names this many
MIN_SECOND_RUN_S = 30                # a second run (grade_callees) with less of the submission's time left: none


# ------------------------------------------------------------------ SOURCE: the graded cells
@dataclass
class Graded:
    grade_id: str
    points: float
    kind: str                       # "check" (graded by a check), "manual" (by hand)
    check: str | None = None
    target: str | None = None


@dataclass
class Source:
    path: Path
    worksheet: str
    sha256: str
    graded: list[Graded]
    locked: dict[str, dict]         # grade_id -> SOURCE's locked cell (run instead of the student's copy)
    ids: set[str] = field(default_factory=set)    # grade_ids of graded and solution cells
    answers: dict[str, grade_callees.Answer] = field(default_factory=dict)   # name -> its solution cell's code

    @property
    def checked(self) -> list[Graded]:
        """The graded cells a check grades (not the manual ones), in SOURCE's order."""
        return [g for g in self.graded if g.kind == "check"]


def load_source(path: str | Path) -> Source:
    from . import checks
    path = Path(path)
    try:
        data = path.read_bytes()
        nb = parse_notebook(data, all_metadata=True)
    except (OSError, Malformed) as err:
        raise GradeError(f"cannot read SOURCE {path}: {err}") from err
    graded, locked, ids, own, solved = [], {}, set(), set(), []
    for cell in nb["cells"]:
        nbg, course = _meta(cell)
        gid = nbg.get("grade_id")
        if not isinstance(gid, str):
            continue
        ids.add(gid)
        if nbg.get("grade") or nbg.get("solution"):
            own.add(gid)
        if nbg.get("solution") and cell.get("cell_type") == "code":
            solved.append((gid, _source_text(cell)))
        if nbg.get("locked") and not nbg.get("grade"):
            locked[gid] = cell
        if not nbg.get("grade"):
            continue
        points = nbg.get("points", 0)
        if not isinstance(points, (int, float)):
            raise GradeError(f"SOURCE {path}: graded cell {gid!r} has non-numeric points {points!r}")
        if course.get("check"):
            if course["check"] not in checks.CHECKS:
                raise GradeError(f"SOURCE {path}: cell {gid!r} names check {course['check']!r}, which "
                                 f"course_utils.checks does not have (known: {', '.join(sorted(checks.CHECKS))})")
            graded.append(Graded(gid, points, "check", course["check"],
                                 course.get("target") or checks.CHECKS[course["check"]].target))
        else:   # a written answer (course.manual), or a test without a check: graded by hand
            graded.append(Graded(gid, points, "manual"))
    if not graded:
        raise GradeError(f"SOURCE {path} has no graded cells (nbgrader metadata grade: true); is it a solution "
                         "notebook from solutions/?")
    return Source(path, path.stem, hashlib.sha256(data).hexdigest(), graded, locked, own,
                  grade_callees.answers(solved))


# ------------------------------------------------------------------ the notebook that runs
# The harvest's code runs in a namespace of its own whose builtins are Python's (``{code!r}`` executed there), so
# that a name of the notebook's globals cannot stand in for one it calls: a ``def exec(...)`` or ``open = ...``
# in a student's cell rewrote its outputs, unseen by grade_scan (the red team's second pass of 2026-12-07).
HARVEST = """\
# Added by course-grade in place of the graded cell {gid!r}: it runs your {target!r} on the check's cases
# (sent by the grader) and writes the raw outputs; the verdict is computed outside this notebook.
import builtins as _course_grade_builtins
_course_grade_builtins.exec({code!r}, _course_grade_ns := {{"__builtins__": _course_grade_builtins}})
_course_grade_ns["_course_grade_harvest"]({check!r}, {target!r}, _course_grade_builtins.globals().get({target!r}),
                                          {cases!r}, {path!r})
del _course_grade_builtins, _course_grade_ns
"""

PRELUDE = """\
# Added by course-grade: the heavy imports, under a generous time limit (an interrupted import of torch
# would break every later cell); the student's cells follow, each under the per-cell limit.
import torch
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot
import course_utils.checks
get_ipython().ask_exit = lambda: None   # exit() or quit() in a cell: ignored, on both paths (ipykernel stopped
                                        # 0.1 s later, a race with the next cells; the zygote's shell raised)
"""


def harvest_name(source: Source, grade_id: str) -> str:
    """The harvest file of a graded cell: named by its position in SOURCE, never by text from a notebook."""
    return f"{[g.grade_id for g in source.graded].index(grade_id)}.out"


def cases_name(source: Source, grade_id: str) -> str:
    """The file of a graded cell's cases (hidden ones included), written by the grader into the job."""
    return f"{[g.grade_id for g in source.graded].index(grade_id)}.in"


def cases_files(source: Source) -> dict[str, bytes]:
    """name -> the encoded cases of every graded check of SOURCE: the kernel needs no code that makes them
    (some use a reference: the lab's cases call the reference diffusion_schedule)."""
    from . import checks
    return {cases_name(source, g.grade_id): encode_values(checks.CHECKS[g.check].cases(True))
            for g in source.checked}


def _code_cell(source: str, role: str, grade_id: str | None) -> dict:
    return {"cell_type": "code", "execution_count": None, "outputs": [], "source": source,
            "metadata": {"course_grade": {"role": role, "grade_id": grade_id}}}


def build_run_notebook(source: Source, nb: dict, box: Path, course: dict[str, list[str]] | None = None
                       ) -> tuple[dict, set[str]]:
    """The student's code cells, with SOURCE's locked cells and a harvest cell per graded test cell.

    ``course`` makes a second run's notebook (``grade_callees``): {grade_id: the TODOs whose course answers stand
    in for the student's}, one entry; only that graded cell is harvested, the course's answers just before it,
    and the notebook ends with it. Returns the notebook (a dict, nbformat 4) and the grade_ids of the graded cells
    that were found.
    """
    checks_by_id = {g.grade_id: g for g in source.checked}
    graded_ids = {g.grade_id for g in source.graded}
    found = set()
    cells = [_code_cell(PRELUDE, "prelude", None)]
    for cell in nb["cells"]:
        nbg, _ = _meta(cell)
        gid = nbg.get("grade_id") if isinstance(nbg.get("grade_id"), str) else None
        gid = gid if gid in source.ids or gid in source.locked else None     # text of SOURCE's, or nothing
        if gid in checks_by_id and gid not in found:
            g = checks_by_id[gid]
            found.add(gid)
            if course is not None and gid not in course:
                continue
            if course is not None:
                cells.append(_code_cell(grade_callees.before_cell(course[gid], source.answers, g.target),
                                        "course", gid))
            code = HARVEST.format(gid=gid, target=g.target, check=g.check, code=HARVEST_CODE,
                                  cases=str(box / "cases" / cases_name(source, gid)),
                                  path=str(box / "harvest" / harvest_name(source, gid)))
            cells.append(_code_cell(code, "harvest", gid))
            cells[-1]["metadata"]["course_grade"]["file"] = harvest_name(source, gid)
            if course is not None:
                break                   # the run ends with the one graded cell it is for
            continue
        if gid in checks_by_id:         # a second copy of a graded cell: ignored
            continue
        if gid in graded_ids:
            found.add(gid)              # a manual answer: read, never run
            continue
        if gid in source.locked:
            cell = source.locked[gid]   # the instructor's version of a locked cell
        text = _source_text(cell)
        if cell.get("cell_type") != "code" or not text.strip():
            continue
        cells.append(_code_cell(text, "locked" if gid in source.locked else "student", gid))
    run_nb = {"cells": cells, "nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}
    return run_nb, found


# ------------------------------------------------------------------ verdicts, in the grader
def judge_harvest(check: str, data: bytes):
    """The verdict (a ``checks.CheckResult``) on a harvest file's bytes: decoded with bounds, inputs checked
    against the grader's own cases (``checks.judge_inputs``), outputs against the reference."""
    from . import checks
    return checks.verdict(check, checks.judge_inputs(check, decode_outputs(data)), hidden=True)


def _role(run_nb: dict, index) -> dict:
    """The course_grade metadata (role, grade_id) of the cell a kernel record names, or {} when ``index`` names none."""
    if not isinstance(index, int) or not 0 <= index < len(run_nb["cells"]):
        return {}
    return run_nb["cells"][index]["metadata"]["course_grade"]


def _cell_note(run_nb: dict, index) -> str:
    role = _role(run_nb, index)
    if not role:
        return "a cell"
    cell = run_nb["cells"][index]
    if role["role"] == "harvest":
        return f"the graded cell {role['grade_id']!r}"
    if role["role"] == "prelude":
        return "the grader's imports (torch, matplotlib, course_utils)"
    if role["role"] == "course":
        return f"the grader's cell that puts the course's answers before {role['grade_id']!r} (a second run)"
    lines = [line.strip() for line in cell["source"].splitlines() if line.strip()]
    first = next((line for line in lines if not line.startswith("#")), lines[0] if lines else "")[:60]
    whose = "the worksheet's locked cell" if role["role"] == "locked" else "your cell"
    name = f"{whose} {role['grade_id']!r}" if role.get("grade_id") else whose
    return f"{name} starting `{first}`"


def _raised(cell: str, ename) -> str:
    """How a message says that a cell raised: a failed TODO's "[before it, ...]" and the notes' check for it."""
    return f"{cell} raised {ename}"


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def cell_errors(run_nb: dict, outcome: sandbox.Outcome) -> list[dict]:
    """Each cell outside the graded TODOs that raised, in notebook order (at most ``MAX_CELL_ERRORS``).

    A graded cell's error is its row's verdict, and a call of a hidden answer has a note of its own
    (``_hidden_calls``), so neither is here. ``role`` says whose code raised: "student", "locked" (SOURCE's
    text) or "prelude" (the grader's imports); ``cell`` is how the messages name it.
    """
    from .sandbox.kernel_package import HIDDEN
    found = []
    for e in outcome.cells:
        if not isinstance(e, dict) or e.get("status") != "error":
            continue
        index = e.get("index")
        role = _role(run_nb, index).get("role")
        if role is None or role == "harvest" or HIDDEN in str(e.get("evalue", "")):
            continue
        found.append({"cell": _cell_note(run_nb, index), "role": role,
                      "ename": _valid_text(str(e.get("ename", "")))[:100],
                      "evalue": _short(_valid_text(str(e.get("evalue", ""))), 160),
                      "last": isinstance(index, int) and not any(      # no cell ran after it
                          c.get("cell_type") == "code" for c in run_nb["cells"][index + 1:])})
    return found[:MAX_CELL_ERRORS]


def cell_error_notes(errors: list[dict], rows: list[dict]) -> list[str]:
    """The feedback's notes for ``cell_errors``: those that no failed TODO's message names already."""
    said = "\n".join(str(r.get("message", "")) for r in rows)
    notes, missing_data, consequences = [], False, 0
    for e in errors:
        last = e.get("last") is True
        e = {k: str(e.get(k, "")) for k in ("cell", "role", "ename", "evalue")}
        if _raised(e["cell"], e["ename"]) in said:          # a failed TODO's "[before it, ...]" names it
            continue
        if e["ename"] == "DatasetNotFoundError":            # the grader's machine lacks a dataset: nobody's code
            first = e["evalue"].split(". ")[0]
            notes.append(f"{e['cell']} could not load its dataset: the grader has no copy of it ({first}). "
                         "That is the grader's setup, not your work (tell your instructor); your TODOs' checks do "
                         "not need the data, and the cells after it that use it could not run.")
            missing_data = True
            continue
        if missing_data and e["ename"] == "NameError":      # what the data cell would have defined
            consequences += 1
            continue
        what = (f"ran past the limit per cell and was interrupted ({e['evalue']})" if e["ename"] == "CellTimeoutError"
                else f"raised {e['ename']}: {e['evalue']}")
        if e["role"] == "student" and last:     # the notebook's last cell: nothing ran without its definitions
            notes.append(f"{e['cell']} {what}. It is not graded itself, and no cell comes after it: it cost you no "
                         "points.")
        elif e["role"] == "student":
            notes.append(f"{e['cell']} {what}. It is not graded itself, but whatever it would have defined after "
                         "that point was missing for the cells after it.")
        else:
            whose = "the worksheet's" if e["role"] == "locked" else "the grader's"
            notes.append(f"{e['cell']} {what}. That code is {whose}, not yours: if it failed for everyone, the "
                         "grader's setup is at fault (tell your instructor).")
    if len(notes) > MAX_ERROR_NOTES:
        notes[MAX_ERROR_NOTES:] = [f"{len(notes) - MAX_ERROR_NOTES} more cell(s) raised an error as well."]
    if consequences:
        notes.append(f"{consequences} later cell(s) raised NameError for what the data cell would have defined.")
    return notes


def judge(source: Source, run_nb: dict, found: set[str], read, outcome: sandbox.Outcome, opts: Options) -> list[dict]:
    """One row per graded check. ``read(name)`` returns the bytes of harvest file ``name`` (or raises OSError)."""
    from . import checks
    entries = {e.get("index"): e for e in outcome.cells if isinstance(e, dict)}
    harvest_index = {c["metadata"]["course_grade"]["grade_id"]: i for i, c in enumerate(run_nb["cells"])
                     if c["metadata"]["course_grade"]["role"] == "harvest"}
    errors = [e for e in outcome.cells if isinstance(e, dict) and e.get("status") == "error"
              and _role(run_nb, e.get("index")).get("role") != "harvest"]
    oom = (outcome.protections.get("oom_kills") or 0) > 0
    rows = []
    for g in source.graded:
        if g.kind != "check":
            continue
        row = {"grade_id": g.grade_id, "points": 0, "max_points": g.points}
        entry = entries.get(harvest_index.get(g.grade_id))
        data, problem = None, None
        if g.grade_id in found:
            try:
                data = read(harvest_name(source, g.grade_id))
            except FileNotFoundError:
                pass
            except sandbox.UnsafeFile as err:
                problem = (f"its outputs, with its inputs as it left them, were {err.strerror.removeprefix('a file ')} "
                           f"to judge (the limit is {MAX_HARVEST_BYTES / 2 ** 20:g} MB): does it return a huge tensor, "
                           "or make an input grow in place?" if "too large" in err.strerror
                           else f"its harvest file was replaced by {err.strerror}")
            except OSError as err:
                problem = f"its harvest file could not be read ({err.strerror or err})"
        if g.grade_id not in found:
            row.update(status="missing", message=f"the graded cell {g.grade_id!r} is missing from the notebook "
                       "(deleted, or its metadata removed): 0 points; copy it back from the worksheet")
        elif problem:
            row.update(status="error", message=f"{checks.FAIL} {g.target}: not graded: {problem}")
        elif data is not None:
            try:
                result = judge_harvest(g.check, data)
                row.update(points=g.points if result.passed else 0, status=result.status, message=result.message)
            except Exception as err:  # noqa: BLE001 - whatever the file holds, it is a fail with a reason
                row.update(status="error", message=f"{checks.FAIL} {g.target}: the outputs of your code could not "
                           f"be read or judged ({type(err).__name__}: {str(err)[:200]})")
        elif entry and entry.get("ename") == "CellTimeoutError":
            row.update(status="timeout", message=f"{checks.FAIL} {g.target}: ran past the limit of "
                       f"{opts.cell_timeout:g} s per cell on the test cases (an infinite loop?)")
        elif entry and entry.get("ename") == "KeyboardInterrupt":   # the student's own: the grader's is a timeout
            row.update(status="error", message=f"{checks.FAIL} {g.target}: interrupted on the test cases "
                       f"(KeyboardInterrupt: {entry.get('evalue')}): does your function raise KeyboardInterrupt?")
        elif entry:
            row.update(status="error", message=f"{checks.FAIL} {g.target}: the grader could not collect its outputs "
                       f"({entry.get('ename')}: {entry.get('evalue')}); did the notebook change torch or builtins?")
        elif outcome.timed_out:
            row.update(status="timeout", message=f"{checks.FAIL} {g.target}: not graded: the notebook ran past "
                       f"the limit of {opts.timeout:g} s per submission before reaching this cell "
                       f"(it was running {_cell_note(run_nb, outcome.running)})")
        elif outcome.stopped:
            row.update(status="crashed", message=f"{checks.FAIL} {g.target}: not graded: stopped because "
                       f"{outcome.stopped}, while running {_cell_note(run_nb, outcome.running)}")
        elif outcome.dead:
            cause = (f"the memory limit of {opts.memory_mb} MB for the whole submission was hit" if oom else
                     f"os._exit, a crash, or the memory limit of {opts.memory_mb} MB")
            row.update(status="crashed", message=f"{checks.FAIL} {g.target}: not graded: {outcome.dead} while "
                       f"running {_cell_note(run_nb, outcome.running)} ({cause})")
        else:
            row.update(status="error", message=f"{checks.FAIL} {g.target}: not graded: this cell did not run")
        if row["status"] not in ("pass", "missing") and errors:
            before = [e for e in errors if isinstance(e.get("index"), int)
                      and e["index"] < harvest_index.get(g.grade_id, 10 ** 9)]
            if before:
                e = before[-1]
                row["message"] += (f" [before it, {_raised(_cell_note(run_nb, e.get('index')), e.get('ename'))}: "
                                   f"{str(e.get('evalue'))[:160]}]")
        rows.append(row)
    return with_failing_calls(source, rows)


def with_failing_calls(source: Source, rows: list[dict]) -> list[dict]:
    """A failed TODO that calls other TODOs of the worksheet by name (``Check.calls``: the lab's reverse_diffusion
    calls denoise) runs with the student's own; where one of those failed too, its message says so (a right
    reverse_diffusion scored 0 beside a wrong denoise, told to fix its time grid: an instructor's pass). The points
    stay the grader's: the instructor can set them in overrides.csv (docs/grading.md)."""
    from .checks import CHECKS
    from .checks.framework import depends_note
    checked = source.checked        # judge's rows, in its order
    status = {g.target: row["status"] for g, row in zip(checked, rows)}
    for g, row in zip(checked, rows):
        if row["status"] in ("pass", "missing", "not_implemented") or g.check not in CHECKS:
            continue
        failing = [dep for dep in CHECKS[g.check].calls if status.get(dep, "pass") != "pass"]
        if failing:
            row["message"] += depends_note(failing)
    return rows


def protections(p: dict, opts: Options) -> tuple[dict, list[str]]:
    """What held for one submission (from the runner's first record and the grader's cgroups), and what did not."""
    held, missing = {}, []
    ll = p.get("landlock") if isinstance(p.get("landlock"), dict) else {}
    ns = p.get("namespaces") if isinstance(p.get("namespaces"), list) else []
    if ll.get("abi"):
        held["files"] = f"Landlock ABI {ll['abi']}: read-only system and packages, read-write own folder only"
    else:
        missing.append("no file-system sandbox (Landlock unavailable): the code could read and write every file "
                       "the grader's user can")
    if p.get("private_proc"):
        held["processes"] = "own pid namespace and /proc: no other process visible, all killed with the job"
    elif ll.get("abi"):
        held["processes"] = "/proc of other processes unreadable (Landlock); no pid namespace"
        missing.append("no pid namespace: other processes' ids are visible")
    else:
        missing.append("other processes visible in /proc")
    if "network" in ns:
        held["network"] = "own network namespace: no network, not even localhost"
    elif ll.get("tcp_denied"):
        held["network"] = "TCP denied (Landlock ABI 4+)"
        missing.append("no network namespace: UDP and DNS are open")
    else:
        missing.append("network open (no network namespace, no Landlock TCP rules)")
    limits = set(p.get("cgroup_limits") or [])
    if "memory" in limits:
        held["memory"] = f"{p['cgroup']}: {opts.memory_mb} MB for the whole submission"
    elif p.get("memory_polled"):
        held["memory"] = (f"{opts.memory_mb} MB for all its processes together, polled every 0.5 s (PSS); "
                          "RLIMIT_DATA per process")
        missing.append("no memory cgroup: the memory limit of the whole submission is polled, so shared memory "
                       "can exceed --memory-mb for up to half a second")
    else:
        held["memory"] = f"RLIMIT_DATA: {opts.memory_mb} MB per process"
        missing.append("memory bounded per process only (no cgroup): shared memory and many processes can use "
                       "more than --memory-mb")
    if "pids" in limits:
        held["process_count"] = f"{p['cgroup']}: {opts.max_processes} processes and threads"
    elif "user" in ns:
        held["process_count"] = f"RLIMIT_NPROC in its own user namespace: {opts.max_processes}"
    elif str(p.get("identity", "")).startswith("root"):
        missing.append("no limit on the number of processes (no cgroup; RLIMIT_NPROC does not bind root)")
    else:       # unprivileged, no user namespace: RLIMIT_NPROC counts every process of the grader's user
        held["process_count"] = f"RLIMIT_NPROC: {opts.max_processes} processes of the grader's user together"
        missing.append("no limit on this submission's processes alone (no cgroup, no user namespace): the limit "
                       "counts every process of the grader's user, so many processes here could keep the "
                       "submissions graded at once from starting theirs")
    if "cpu" in limits:
        held["cpu"] = f"{p['cgroup']}: the same share of the CPU as each other submission graded at once"
    if p.get("box_tmpfs"):
        held["disk"] = f"its folder is a tmpfs of {opts.disk_mb} MB (a hard limit)"
    else:
        held["disk"] = f"{opts.disk_mb} MB in its folder (polled every 0.5 s) and per file (RLIMIT_FSIZE)"
        missing.append("no mount namespace: the disk limit is polled, so a fast writer may exceed it briefly")
    if isinstance(p.get("identity"), str):
        held["identity"] = p["identity"]
    if p.get("seccomp"):
        held["namespaces_locked"] = ("seccomp: no namespace of its own (unshare and clone with a namespace flag, "
                                     "setns refused), nor the kernel's keyrings")
    if ll.get("scoped"):
        held["signals"] = "no signal to, nor abstract socket of, a process outside the sandbox (Landlock ABI 6+)"
    return held, missing


def _cells_by_id(nb: dict | None) -> dict[str, dict]:
    """grade_id -> the student's first cell of that grade_id."""
    cells: dict[str, dict] = {}
    for cell in (nb or {}).get("cells", []):
        gid = _meta(cell)[0].get("grade_id")
        if isinstance(gid, str):
            cells.setdefault(gid, cell)
    return cells


def manual_rows(source: Source, nb: dict | None) -> tuple[list[dict], dict[str, str]]:
    cells = _cells_by_id(nb)
    rows, answers = [], {}
    for g in source.graded:
        if g.kind != "manual":
            continue
        row = {"grade_id": g.grade_id, "points": "", "max_points": g.points, "status": "manual",
               "message": "to be graded by the instructor"}
        cell = cells.get(g.grade_id)
        text = _source_text(cell).strip() if cell else None
        if cell is None:
            row.update(points=0, status="missing", message=f"{ANSWER_CELL_MISSING}{g.grade_id!r} is missing: 0 points")
        elif not text or text.replace(ANSWER_STUB, "").strip() == "":
            row.update(points=0, status="not_implemented",
                       message=f"{NOT_ANSWERED} (the cell is empty or still reads {ANSWER_STUB})")
        else:
            answers[g.grade_id] = text[:MAX_TEXT] + (" [...]" if len(text) > MAX_TEXT else "")
        rows.append(row)
    return rows, answers


# ------------------------------------------------------------------ one submission
class SandboxNotSetUp(RuntimeError):
    """A job that ended before any of the student's code ran (``not_set_up``: a sandbox not set up, a kernel that
    did not start, a runner killed): the grader's trouble, not the student's (the message: the runner's own
    words)."""


NOT_SET_UP = ("not graded: the grader could not set up its sandbox for this notebook (the grader's machine, not "
              "your work), so it has no verdict; it will be graded again")


@dataclass
class Options:
    cell_timeout: float = 120
    timeout: float = 900
    memory_mb: int = 4096
    max_notebook_mb: float = MAX_NOTEBOOK_MB    # parsed in the grader's memory: up to ~8x the file (one wide char)
    keep_temp: bool = False
    setup_timeout: float = 600      # the grader's prelude (imports)
    disk_mb: int = 1024
    max_processes: int = 256
    mpl_cache: str | None = None    # a matplotlib font cache built once, copied into each sandbox
    kernel: "KernelPackage | None" = None   # what the kernel imports course_utils from
    cases: dict[str, bytes] | None = None   # the encoded cases of SOURCE's checks, made once
    pool: bool = True               # fork each kernel from a pre-imported zygote (sandbox/pool.py), else nbclient
    zygotes: "sandbox.Pool | None" = None   # the zygotes of this run (grade_class starts them)
    cancel: "threading.Event | None" = None  # set when the run is interrupted: running sandboxes stop (grade_class)

    def graded_under(self) -> dict[str, float]:
        """The limits a verdict may depend on, as a result records them (``limits``): a rerun under other ones
        regrades what they could have changed (``_why_regrade``)."""
        return {name: getattr(self, name) for name in GRADED_UNDER}

    def limits(self) -> sandbox.Limits:
        return sandbox.Limits(cell_timeout=self.cell_timeout, timeout=self.timeout, memory_mb=self.memory_mb,
                              disk_mb=self.disk_mb, max_processes=self.max_processes,
                              setup_timeout=self.setup_timeout)


GRADED_UNDER = {"cell_timeout": "--cell-timeout", "timeout": "--timeout", "memory_mb": "--memory-mb",
                "disk_mb": "--disk-mb", "max_processes": "--max-processes", "max_notebook_mb": "--max-notebook-mb"}
LIMIT_STATUSES = {"error", "timeout", "crashed"}    # a TODO's verdicts that more time, memory or disk could change


# What else a verdict depends on: the libraries that compute (torch, numpy, scipy), draw (matplotlib) and run the
# notebook (ipykernel, IPython, jupyter_client, nbclient, nbformat), beside the interpreter (``graded_with``)
GRADED_WITH = ("torch", "numpy", "scipy", "matplotlib", "ipykernel", "ipython", "jupyter_client", "nbclient",
               "nbformat")


@functools.lru_cache(maxsize=1)
def graded_with() -> dict[str, str | None]:
    """The versions of Python and of ``GRADED_WITH`` that grade (None: not installed), as a result records them:
    the kernel runs this interpreter (``sys.executable``), so these are the kernel's too."""
    versions: dict[str, str | None] = {"python": f"{platform.python_version()} ({sys.implementation.name})"}
    for name in GRADED_WITH:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@functools.lru_cache(maxsize=1)
def grader_sha256() -> str:
    """The digest of what grades: every file of the ``course_utils`` package (its checks, hints, sandbox, models)
    but Python's caches, and the versions of Python and the libraries it grades with (``graded_with``). A result
    records it, and a rerun regrades a result graded by another version (a check fixed, a hint added, after
    ``pip install -U``; a torch or Python upgrade, whose numerics a check's tolerance may feel) instead of keeping
    its verdict."""
    h = hashlib.sha256(json.dumps(graded_with(), sort_keys=True).encode() + b"\0")
    for path in sorted(p for p in PACKAGE_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(path.relative_to(PACKAGE_DIR).as_posix().encode("utf-8", "surrogateescape") + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


@dataclass
class KernelPackage:
    """Where the kernel finds ``course_utils``: ``pythonpath`` (or None), and what it may and may not read."""
    pythonpath: str | None
    read_only: list[str]
    hide: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Submission:
    student: str
    path: Path
    problem: tuple[str, str] | None = None      # (status, message): a folder with no notebook, or several
    notes: list[str] = field(default_factory=list)
    submitted_as: str = ""      # the folder's or file's own name, before find_submissions made it a unique name


def held_names(out: Path) -> dict[str, set[str]]:
    """The names graded in ``out`` (any worksheet), case-folded, each with the folder or file names its results
    were handed in as: ``submitted_as``, or for a result written before 2026-12-07, which lacks it, the name of
    its file's folder or the file's own stem, whichever gives the student's name."""
    held: dict[str, set[str]] = {}
    for path in (out / "results").glob("*/*.json"):
        r = _read_result(path)
        if r is None or not isinstance(r.get("student"), str):
            continue
        raw = r.get("submitted_as")
        if not isinstance(raw, str) and isinstance(r.get("file"), str):
            file = Path(r["file"])
            raw = next((n for n in (file.parent.name, file.name[:-6] if file.name.lower().endswith(".ipynb")
                                    else file.name) if n and safe_name(n) == r["student"]), None)
        if isinstance(raw, str):
            held.setdefault(r["student"].casefold(), set()).add(raw)
    return held


def _sha256(path: Path, max_bytes: int) -> str | None:
    """The submitted file's sha256 (a regular file's, read in blocks), so that a rerun knows it graded it; for a
    link or a FIFO, a digest of what it is (never opened); for a file over ``max_bytes`` (never read: hashing a
    sparse 20 GB file took 16 s of every run), a digest of its size, time and inode; None when it cannot be
    read."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            what = os.readlink(path) if stat.S_ISLNK(st.st_mode) else f"mode {st.st_mode:o}"
            return "not-a-file-" + hashlib.sha256(what.encode("utf-8", "replace")).hexdigest()
        if st.st_size > max_bytes:
            what = f"{st.st_size} {st.st_mtime_ns} {st.st_ino}"
            return "too-large-" + hashlib.sha256(what.encode()).hexdigest()
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        h = hashlib.sha256()
        for block in iter(lambda: f.read(2 ** 20), b""):
            h.update(block)
        return h.hexdigest()


def _fingerprint(sub: Submission, max_notebook_mb: float) -> str | None:
    """What a rerun compares: the file's sha256, or for a folder with a problem, a digest of the problem (which
    lists what the folder holds)."""
    if sub.problem:
        return "folder-" + hashlib.sha256(repr(sub.problem).encode("utf-8", "replace")).hexdigest()
    return _sha256(sub.path, int(max_notebook_mb * 2 ** 20))


# what only the instructor's notebooks hold (solutions/: nbgrader's markers; exercises/ are made without them)
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS")


def wrong_worksheet(source: Source, ids: set) -> None:
    """Raise ``Malformed("wrong_worksheet")`` unless most of a submission's grade_ids (nbgrader's cell ids) are
    SOURCE's: none in common is a new notebook; a few is another worksheet that shares a TODO and some headings
    with it (worksheet 1 and the lab both hold diffusion_schedule, md-01, ...: 6 of the lab's 17 ids, and every
    lab notebook got worksheet 1's points for diffusion_schedule when the instructor named the wrong SOURCE)."""
    shared = ids & (source.ids | set(source.locked))            # its TODOs, tests and locked text
    if not shared & source.ids:
        raise Malformed("wrong_worksheet", f"this does not look like worksheet {source.worksheet!r}: none of its "
                                           "cells matches the worksheet's (another worksheet, or a new notebook?)")
    if 2 * len(shared) < len(ids):
        raise Malformed("wrong_worksheet", f"this does not look like worksheet {source.worksheet!r}: only "
                                           f"{len(shared)} of its {len(ids)} nbgrader grade_ids are the worksheet's "
                                           "(another worksheet that shares a TODO with it?)")


def grade_submission(source: Source, sub: Submission, opts: Options) -> dict:
    """Grade one submission; never raises for anything the submission holds."""
    result = {"student": sub.student, "submitted_as": sub.submitted_as or sub.student,
              "worksheet": source.worksheet, "file": str(sub.path), "source_sha256": source.sha256,
              "grader_sha256": grader_sha256(), "graded_with": graded_with(), "limits": opts.graded_under(),
              "notes": []}
    rows, nb = [], None
    result["notes"] += sub.notes
    try:
        result["sha256"] = _fingerprint(sub, opts.max_notebook_mb)
        if sub.problem:
            raise Malformed(*sub.problem)
        data = read_submission(sub.path, opts.max_notebook_mb)
        result["sha256"] = hashlib.sha256(data).hexdigest()   # what is graded, even if the file changed since
        nb = parse_notebook(data)
        markers = [m for m in SOLUTION_MARKERS if any(m in str(c.get("source", "")) for c in nb["cells"])]
        if markers:         # the instructor's copy (solutions/, hidden tests included) handed in as the student's:
            result["solution_markers"] = markers        # for report.html's attention list, not the student's feedback
        wrong_worksheet(source, {_meta(c)[0].get("grade_id") for c in nb["cells"]} - {None, ""})   # text only
    except Malformed as err:
        rows = [{"grade_id": g.grade_id, "points": 0, "max_points": g.points, "status": err.status,
                 "message": str(err)[:MAX_MESSAGE]} for g in source.graded]
        result.update(rows=rows, answers={}, status=err.status, message=str(err)[:MAX_MESSAGE])
        return result
    kernel = opts.kernel
    if kernel is None:
        raise GradeError("grade_submission needs opts.kernel (grade_class builds it: kernel_package)")
    job = _job(opts)
    try:
        run_nb, found = build_run_notebook(source, nb, job.box)
        result["monkeypatches"] = monkeypatches([(_cell_note(run_nb, i), c["source"],
                                                  c["metadata"]["course_grade"]["role"] == "student")
                                                 for i, c in enumerate(run_nb["cells"])])
        result["notes"] += monkeypatch_notes(result["monkeypatches"])
        outcome = _run(job, run_nb, source, sub, data, opts)
        rows = judge(source, run_nb, found, job.read_harvest, outcome, opts)
        result["seconds"] = round(outcome.seconds, 1)
        result["protections"], missing = protections(outcome.protections, opts)
        result["cell_errors"] = cell_errors(run_nb, outcome)
        result["notes"] += (missing + kernel.notes + _hidden_calls(run_nb, outcome)
                            + cell_error_notes(result["cell_errors"], rows))
    finally:
        job.close(keep=opts.keep_temp)
    own = {gid: _source_text(cell) for gid, cell in _cells_by_id(nb).items()}
    replaced = grade_callees.to_replace(source.checked, rows, source.answers, _calls(source), own)
    if replaced:
        rows, result["second_run_seconds"], late = with_course_answers(source, sub, nb, data, rows, replaced,
                                                                       opts, result["seconds"])
        if late:        # (ran_out_of_time reads them: beside others without a CPU share, graded again alone)
            result["second_run_timeouts"] = late
    mrows, answers = manual_rows(source, nb)
    result.update(rows=_in_source_order(source, rows + mrows), answers=answers, status="graded", message="")
    return result


def _job(opts: Options) -> sandbox.Job:
    """A sandbox for one run of a submission, as ``opts.kernel`` says what the kernel reads."""
    kernel = opts.kernel
    read_only = sandbox.system_read_only(kernel.read_only, kernel.hide)
    env = {**kernel.env, **({"PYTHONPATH": kernel.pythonpath} if kernel.pythonpath else {})}
    return sandbox.Job(opts.limits(), read_only=read_only, env=env, mpl_cache=opts.mpl_cache,
                       max_harvest_bytes=MAX_HARVEST_BYTES, cancel=opts.cancel)


def _run(job: sandbox.Job, run_nb: dict, source: Source, sub: Submission, data: bytes, opts: Options,
         second: bool = False) -> sandbox.Outcome:
    """Run ``run_nb`` in ``job``; raises SandboxNotSetUp when nothing of the student's ran (``not_set_up``).
    ``second``: a second run (``with_course_answers``), whose time is what the first run left: running out of it
    is a timeout of the TODO it grades, not a setup that failed."""
    outcome = job.run(run_nb, _file_name(sub.path.name), data, opts.cases or cases_files(source), pool=opts.zygotes)
    interrupted = opts.cancel is not None and opts.cancel.is_set()     # (Ctrl-C: the class run keeps no verdict)
    why = not_set_up(outcome, run_nb, opts.zygotes is not None, opts.timeout)
    if why and not interrupted and not (second and outcome.timed_out):
        raise SandboxNotSetUp(why)
    return outcome


def not_set_up(outcome: sandbox.Outcome, run_nb: dict, zygote: bool, timeout: float) -> str | None:
    """Why none of the student's code ran in ``outcome`` (None when some may have): the job ended before any cell
    started, or before any but the grader's imports (the prelude) where the kernel cannot have started the next
    cell meanwhile. The sandbox was not set up, its process 1 could not start the kernel, the runner itself was
    killed, or the prelude did not end. No verdict of the student's: a grader error, graded again (the fourth red
    team spent the machine's open files, and 14 classmates were graded crashed, for good; the fifth spent the
    user's epoll watches, and a classmate's runner ended before its first cell without a record: 0/8 "this cell
    did not run", for good).

    The log is read as proof only where process 1 logs a cell's start before the kernel can run it: nbclient
    (``--no-pool``) does, and a kernel in a pid namespace cannot end or stop process 1. A zygote's kernel without
    one starts the next cell as soon as it has sent the prelude's record, and a first cell that kills process 1
    before it logged that record left a log that stops in the prelude (a review of 2026-12-07: 4 of 12 such
    jobs, a student's 0 turned into a grader error). There only process 1's own word that it could not start
    counts: a "dead" record before any cell, not a silence (``jobs.NO_RECORD``), a timeout or a stop."""
    if outcome.finished:
        return None
    started = [c.get("index") for c in outcome.cells] + [outcome.running]
    roles = [run_nb["cells"][i]["metadata"]["course_grade"]["role"] if isinstance(i, int) and 0 <= i < len(
        run_nb["cells"]) else "student" for i in started if i is not None]
    held = outcome.protections.get("namespaces")
    sure = not zygote or (isinstance(held, list) and "pid" in held)
    said = outcome.dead is not None and not outcome.dead.startswith(sandbox.jobs.NO_RECORD)
    if not (sure and all(role == "prelude" for role in roles) or said and not roles):
        return None
    return outcome.dead or outcome.stopped or (
        f"the kernel and the grader's imports did not finish within {timeout:g} s" if outcome.timed_out else
        sandbox.jobs.NO_RECORD)


def _calls(source: Source) -> dict[str, tuple[str, ...]]:
    """check -> the TODOs its target calls by name (``Check.calls``), for SOURCE's checks."""
    from .checks import CHECKS
    return {g.check: CHECKS[g.check].calls for g in source.checked if g.check in CHECKS}


def second_run_options(opts: Options, spent: float) -> Options | None:
    """The options of a second run (``with_course_answers``): the submission's ``--timeout`` bounds all its runs
    together (a Gradescope autograder's timeout is set from it), so a second run has what the runs before it
    (``spent`` seconds) left; None when that is under ``MIN_SECOND_RUN_S``."""
    left = opts.timeout - spent
    return dataclasses.replace(opts, timeout=left) if left >= MIN_SECOND_RUN_S else None


def with_course_answers(source: Source, sub: Submission, nb: dict, data: bytes, rows: list[dict],
                        replaced: dict[str, list[str]], opts: Options, spent: float
                        ) -> tuple[list[dict], float, list[str]]:
    """The second runs (``grade_callees``), one per TODO of ``replaced``, each ending with its graded cell:
    ``rows`` with each TODO that passed beside the course's answers to the TODOs it calls given its points, the
    runs' seconds, and the grade_ids whose second run ran out of time (more CPU could change their verdicts:
    ``ran_out_of_time``). Only each run's one TODO's status is read. The runs share what the first (``spent``
    seconds) left of the submission's ``--timeout``; a TODO left less than ``MIN_SECOND_RUN_S`` is not run again
    (its row says that run did not start; out of time too)."""
    again, seconds = [], 0.0
    for gid, names in replaced.items():
        second = second_run_options(opts, spent + seconds)
        if second is None:      # (out of time as well: more CPU for the first run leaves it more)
            again.append({"grade_id": gid, "status": "timeout", "started": False})
            continue
        job = _job(second)
        try:
            run_nb, found = build_run_notebook(source, nb, job.box, course={gid: names})
            outcome = _run(job, run_nb, source, sub, data, second, second=True)
            again += [r for r in judge(source, run_nb, found & {gid}, job.read_harvest, outcome, second)
                      if r["grade_id"] == gid]
            seconds += outcome.seconds
        finally:
            job.close(keep=opts.keep_temp)
    late = [r["grade_id"] for r in again if r.get("status") == "timeout"]
    return grade_callees.credit(source.checked, rows, again, replaced, MAX_MESSAGE), round(seconds, 1), late


def monkeypatch_notes(found: list[dict]) -> list[str]:
    """The feedback's note for ``grade_scan.monkeypatches``: what the code changes, and that it changes no verdict
    (a patch: the verdict is computed in the grader), or that it acts on later cells' code (a hook)."""
    changes = [f for f in found if not f["what"].startswith("(not read")]
    unread = [f for f in found if f["what"].startswith("(not read")]
    notes = [f"{f['cell']} was not read by the grader's check of what the code changes "
             f"({f['what'].removeprefix('(not read: ').removesuffix(')')}); your instructor will read it."
             for f in unread[:1]]
    patches = [f for f in changes if f.get("kind") != "hook"]
    hooks = [f for f in changes if f.get("kind") == "hook"]
    if patches:
        what = ", ".join(dict.fromkeys(f"`{f['what']}`" for f in patches))
        notes.append(f"{patches[0]['cell']} changes {what}, which the course's tools rely on. The grader judges "
                     "your functions' outputs in its own process, so this changes no verdict; your instructor will "
                     "read this code.")
    if hooks:
        what = ", ".join(dict.fromkeys(f"`{f['what']}`" for f in hooks))
        notes.append(f"{hooks[0]['cell']} changes {what}, which {'acts' if len(hooks) == 1 else 'act'} on the "
                     "code of every later cell, the grader's own among them; your instructor will read this code.")
    return notes


def _hidden_calls(run_nb: dict, outcome: sandbox.Outcome) -> list[str]:
    """A note for each cell (at most 3) that stopped at one of the course's answers, hidden while grading: which
    cell, and what it costs. A TODO's cell lost the lines after the call; any other cell is not graded (worksheet
    3's demo of ``nets.UNet`` builds the hidden ``nets.ResBlock``), so it costs no points."""
    from .sandbox.kernel_package import HIDDEN
    notes: dict[str, None] = {}
    for e in outcome.cells:
        if not isinstance(e, dict) or HIDDEN not in str(e.get("evalue", "")):
            continue
        index, what = e.get("index"), _short(_valid_text(str(e.get("evalue", ""))), 200)
        cell, role = _cell_note(run_nb, index), _role(run_nb, index)
        if role.get("role") == "harvest":       # a graded cell: its row's verdict says what happened
            continue
        if role.get("role") == "student" and role.get("grade_id"):
            notes[f"{cell} stopped at a call of the course's own answer, which the grader hides ({what}): the "
                  "lines after that call did not run."] = None
        else:
            notes[f"{cell} could not run while grading: it uses the course's own answer, which the grader hides "
                  f"({what}). That cell is not graded, so this costs no points."] = None
    return list(notes)[:3]


def _file_name(name: str) -> str:
    """The submission's name for the copy in the sandbox: safe, and short enough for any file system."""
    stem = safe_name(Path(name).stem)
    return f"{stem}.ipynb"


def _in_source_order(source: Source, rows: list[dict]) -> list[dict]:
    order = {g.grade_id: i for i, g in enumerate(source.graded)}
    for row in rows:
        row["message"] = _valid_text(str(row["message"]))[:MAX_MESSAGE]
    return sorted(rows, key=lambda r: order.get(r["grade_id"], 10 ** 6))


# ------------------------------------------------------------------ the class
def _folder_submission(folder: Path, worksheet: str) -> Submission:
    """One student's folder: one submission, whatever the folder holds (its contents never make a name).

    The notebook ``pick_notebook`` picks; a folder with none, or with several and none named like the worksheet,
    gets a row that says so.
    """
    path, files, shallow = pick_notebook(folder, worksheet)
    named = bool(shallow)
    rel = [str(f.relative_to(folder)) for f in files]
    listed = ", ".join(rel[:5]) + (f" and {len(rel) - 5} more" if len(rel) > 5 else "")
    if path is not None:
        others = [str(f.relative_to(folder)) for f in files if f != path]
        notes = [f"graded {path.relative_to(folder)}; not graded: {', '.join(others[:5])}"
                 + (f" and {len(others) - 5} more" if len(others) > 5 else "")] if others else []
        return Submission(folder.name, path, notes=notes)
    if not files:
        try:
            held = sorted(e.name for e in os.scandir(folder))
        except OSError:
            held = []
        what = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "") if held else "nothing"
        return Submission(folder.name, folder, ("not_a_notebook", f"no notebook (.ipynb) in the folder (nor 4 levels "
                                                                  f"below), which holds {what}: submit "
                                                                  f"{worksheet}.ipynb"))
    return Submission(folder.name, folder, ("ambiguous", f"{len(files)} notebooks ({listed}) and "
                                            + (f"{len(shallow)} of them named {worksheet}.ipynb at the same depth"
                                               if named else f"none named {worksheet}.ipynb")
                                            + f": submit one notebook, {worksheet}.ipynb"))


# folders beside the students' that are no one's work (Jupyter's, git's, a desktop's): skipped without a word;
# "._name" are macOS's AppleDouble files that come with an archive made there
HIDDEN_LITTER = {".ipynb_checkpoints", ".git", ".Trash", ".Trashes", ".Spotlight-V100", ".fseventsd",
                 ".TemporaryItems", ".DocumentRevisions-V100", ".virtual_documents", ".jupyter", ".cache",
                 ".vscode", ".idea", ".venv", ".config", ".local", ".ipython", ".pytest_cache", ".mypy_cache",
                 ".ruff_cache", ".nbgrader"}
ARCHIVES = (".zip", ".tar.gz", ".tgz", ".tar", ".7z", ".rar")


def _archive_stem(name: str) -> str:
    """"Grace.zip" -> "Grace"; "" for a name that is no archive's."""
    suffix = next((a for a in ARCHIVES if name.lower().endswith(a)), "")
    return name[:-len(suffix)] if suffix and len(name) > len(suffix) else ""


def find_submissions(args: list[str], worksheet: str, held: dict[str, set[str]] | None = None) -> list[Submission]:
    """Submission files with their students' names (folder's name, or the stem of a loose file); every student
    once, under a name no other student has, in this run and in the earlier runs into the same --out: ``held``
    maps a name already graded there (case-folded) to the folder or file names its results were handed in as
    (``held_names``), and only those may take it again."""
    found: list[Submission] = []
    for arg in args:
        p = Path(arg)
        if p.is_file():
            found.append(Submission(p.parent.name if p.stem == worksheet and p.parent.name else p.stem, p))
        elif p.is_dir():
            for e in sorted(os.scandir(p), key=lambda e: e.name):
                if e.name.startswith("."):     # skipped; named on stderr unless an editor's or a system's own
                    if not (e.name in HIDDEN_LITTER or e.name.startswith("._")
                            or not (e.is_dir(follow_symlinks=False) or e.name.lower().endswith(".ipynb"))):
                        print(f"course-grade: not graded, a hidden name (it starts with '.'): {e.path}; rename it "
                              "if it is a student's work", file=sys.stderr)
                    continue
                if e.is_dir(follow_symlinks=False) and not e.name.endswith(".ipynb"):   # one student's folder
                    found.append(_folder_submission(Path(e.path), worksheet))
                elif not e.is_dir(follow_symlinks=False) and (e.name.lower().endswith(".ipynb") or e.is_symlink()):
                    # a loose file, or a link (read as nothing: its student gets a row that says why)
                    stem = e.name[:-6] if e.name.lower().endswith(".ipynb") else e.name
                    found.append(Submission(p.resolve().name if stem == worksheet else stem, Path(e.path)))
                elif e.is_file(follow_symlinks=False) and (stem := _archive_stem(e.name)):
                    # a student's archive among the notebooks (Grace.zip): a row that says so, not a line on stderr
                    # that no grades.csv, report or export shows
                    found.append(Submission(stem, Path(e.path), (
                        "not_a_notebook", f"an archive ({e.name}), not a notebook: the grader does not unpack "
                                          f"archives; submit {worksheet}.ipynb (or unpack it into a folder named "
                                          "after the student and grade again)")))
                else:       # a loose file that is no notebook, or a folder named like one (whose is it?)
                    print(f"course-grade: not graded, not a notebook nor a student's folder: {e.path}",
                          file=sys.stderr)
        else:
            raise GradeError(f"no such file or folder: {arg}")
    # a name as it is keeps it: "alice/" stays alice whatever sorts first ("_alice", " alice.ipynb", "Alice", an NFD
    # spelling), and no suffix takes a name that exists ("erin" is not made "erin-2" beside a real "erin-2")
    bases = [safe_name(sub.student) for sub in found]
    reserved = {base.casefold() for sub, base in zip(found, bases) if sub.student == base}
    used: set[str] = set()
    held = held or {}

    def elsewhere(name: str, sub: Submission) -> bool:
        """An earlier run into --out graded other work (another folder's or file's) under this name."""
        return name.casefold() in held and sub.submitted_as not in held[name.casefold()]
    # (stable: sorted order among equals; of two that differ only in case, the lower-case one, as logins are)
    for sub, base in sorted(zip(found, bases), key=lambda p: (p[0].student != p[1], p[1] != p[1].lower())):
        sub.submitted_as = sub.student
        name, n = base, 1
        while (name.casefold() in used or (name != sub.student and name.casefold() in reserved)
               or elsewhere(name, sub)):
            n += 1
            name = f"{base}-{n}"
        if name != sub.student:
            why = (f"the name {base!r} holds the work handed in as "
                   f"{', '.join(sorted(map(repr, held[base.casefold()]))[:3])} in an earlier run into this --out"
                   if elsewhere(base, sub) else f"the name {base!r} was taken")
            print(f"course-grade: {sub.path} is graded as student {name!r}" + (
                  f" ({why}: check whose work it is)" if n > 1 else ""), file=sys.stderr)
        used.add(name.casefold())
        sub.student = name
    return found


def _read_result(path: Path) -> dict | None:
    """The result file at ``path``, or None when there is none to read (missing, half-written, not an object)."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return old if isinstance(old, dict) else None


def _why_regrade(old: dict | None, source: Source, sub: Submission, opts: Options) -> str | None:
    """None when the earlier result ``old`` (``_read_result``) still holds: the same submission (its
    fingerprint), graded by the same SOURCE and the same ``course_utils``, Python and libraries (``grader_sha256``),
    not a grader error, and under the same limits, or more generous ones for a result that lost nothing to an
    error, a timeout (a second run's too: ``second_run_timeouts``) or a crash (more time or memory cannot change a
    pass or a wrong value). Else why it is
    graded again: "new", "submission", "source", "grader_error", "grader" or "limits"; or "alone" for a result
    still ``waiting_alone`` (an earlier run stopped before grading it alone)."""
    if old is None:
        return "new"
    if old.get("status") == "grader_error":     # (such a result may have no fingerprint: not a resubmission)
        return "grader_error"
    if old.get("sha256") is None or old.get("sha256") != _fingerprint(sub, opts.max_notebook_mb):
        return "submission"
    if old.get("source_sha256") != source.sha256:
        return "source"
    if old.get("grader_sha256") != grader_sha256():
        return "grader"
    then, now = old.get("limits"), opts.graded_under()
    rows = old.get("rows") if isinstance(old.get("rows"), list) else [None]
    generous = isinstance(then, dict) and all(isinstance(then.get(k), (int, float)) and now[k] >= then[k]
                                              for k in now)
    untouched = (old.get("status") == "graded" and not old.get("cell_errors") and not old.get("second_run_timeouts")
                 and all(isinstance(r, dict) and r.get("status") not in LIMIT_STATUSES for r in rows)
                 # a file that was not read as a notebook (not JSON, empty, another worksheet, ...): only the size
                 # limit could change that (an instructor's pass: raising --cell-timeout regraded a script)
                 or old.get("status") not in ("graded", "too_large", None))
    if then != now and not (generous and untouched):
        return "limits"
    return "alone" if waiting_alone(old) else None


REGRADED = {"submission": "resubmitted", "source": "SOURCE changed", "grader_error": "after a grader error",
            "grader": "another course_utils or library", "limits": "other limits", "force": "--force", "new": "new",
            "alone": "graded alone"}


def ran_out_of_time(result: dict) -> bool:
    """Whether a verdict of ``result`` is one that more CPU could change: a graded TODO ran past a time limit
    (its row's status "timeout"), another cell was interrupted at the limit per cell, or a TODO's second run
    (``with_course_answers``) ran out of time (``second_run_timeouts``: its row keeps the first run's fail)."""
    rows = result.get("rows") if isinstance(result.get("rows"), list) else []
    errors = result.get("cell_errors") if isinstance(result.get("cell_errors"), list) else []
    return (any(isinstance(r, dict) and r.get("status") == "timeout" for r in rows)
            or bool(result.get("second_run_timeouts"))
            or any(isinstance(e, dict) and e.get("ename") == "CellTimeoutError" for e in errors))


def beside_without_cpu(result: dict, beside: bool) -> bool:
    """Whether ``result`` is one to grade again with no other submission beside it: it ran out of time while
    another job was graded at once (``beside``), and nothing gave it its own share of the CPU (no ``cpu`` among
    its protections: a grader without a cgroup cpu controller, where a classmate's busy processes could take the
    cores from it; the third red team's setsid hog left two honest classmates 0/7 that way). Such a result is
    written with ``beside_others``, which ``grade_report.waiting_alone`` reads (until ``graded_alone``)."""
    held = result.get("protections")
    return (beside and result.get("status") == "graded" and isinstance(held, dict) and "cpu" not in held
            and ran_out_of_time(result))


ALONE_NOTE = ("This notebook ran past a time limit while another submission was graded beside it, on a machine "
              "that could not give each submission its own share of the CPU; it was graded again with nothing "
              "beside it, and these are that run's verdicts{was}.")


def _points(result: dict | None) -> float | None:
    """The automatic points of a result: None when it has none to read."""
    rows = result.get("rows") if isinstance(result, dict) else None
    if not isinstance(rows, list):
        return None
    points = [r.get("points") for r in rows if isinstance(r, dict)]
    return float(sum(points)) if all(isinstance(x, (int, float)) for x in points) else None


def _graded_otherwise(results_dir: Path, students: set[str]) -> list[str]:
    """The students of the results in ``results_dir`` outside ``students`` (not given to this run) that another
    ``course_utils`` (or Python, or library: ``grader_sha256``) graded: grades.csv mixes their verdicts with this
    run's."""
    others = []
    for path in sorted(results_dir.glob("*.json")):
        old = _read_result(path)
        if old is not None and old.get("student") not in students and old.get("grader_sha256") != grader_sha256():
            others.append(str(old.get("student")))
    return others


def _limits_changed(olds: list[dict | None], now: dict) -> str:
    """How the limits of the first of the earlier results ``olds`` that records them differ from ``now``:
    "--timeout 400 -> 900"."""
    for old in olds:
        then = old.get("limits") if old else None
        if isinstance(then, dict):
            return ", ".join(f"{flag} {then[k]:g} -> {now[k]:g}" if isinstance(then.get(k), (int, float))
                             else f"{flag} {now[k]:g}" for k, flag in GRADED_UNDER.items() if then.get(k) != now[k])
    return ""


def _graded_with_changed(olds: list[dict | None], now: dict) -> str:
    """How the versions that graded the earlier results ``olds`` (those that record them) differ from ``now``:
    "torch 2.14.1 -> 2.15.0"; empty where none differs (the package changed, or the results predate the record)."""
    changes = {}
    for old in olds:
        then = old.get("graded_with") if old else None
        if isinstance(then, dict):
            changes |= {k: f"{k} {then.get(k)} -> {now[k]}" for k in now if then.get(k) != now[k]}
    return ", ".join(changes[k] for k in now if k in changes)


# ------------------------------------------------------------------ the class
def kernel_package(source: Source, scratch: Path, private: list[Path]) -> KernelPackage:
    """The copy of ``course_utils`` the kernels import (in ``scratch``), with SOURCE's answers hidden, and the
    real package kept out of their reach (sandbox/kernel_package.py); the data root as ``data_for_sandbox`` says,
    given the paths no submission may read (``private``)."""
    from .sandbox import kernel_package as kp
    copy, notes = kp.build(scratch, [g.check for g in source.checked], source.worksheet)
    hide = [str(PACKAGE_DIR)] + [str(Path(sp) / "course_utils") for sp in __import__("site").getsitepackages()
                                 if (Path(sp) / "course_utils").exists()]
    read_only = [str(copy.parent)] + ([str(PACKAGE_DIR / "checkpoints")] if (PACKAGE_DIR / "checkpoints").is_dir()
                                      else [])
    data, env, data_notes = data_for_sandbox([*private, PACKAGE_DIR])
    return KernelPackage(str(copy.parent), read_only + data, hide, notes + data_notes, env)


def data_for_sandbox(private: list[Path]) -> tuple[list[str], dict[str, str], list[str]]:
    """The datasets a submission may read (the lab trains on MNIST): the grader's data root (``$COURSE_DATA_DIR``,
    else ``course_utils.data``'s default), read-only, and COURSE_DATA_DIR pointing at it (the kernel's HOME is
    its own). Not when that folder holds one of ``private`` (SOURCE, a submission, the output, the package) or
    the home folder: then nothing, and a note that says why. Returns (read-only paths, environment, notes)."""
    from .data import data_root
    root = data_root().resolve()
    if not root.is_dir():
        return [], {}, []
    held = [p for p in [*private, Path.home().resolve()] if root == (where := _location(p)) or root in where.parents]
    if held:
        return [], {}, [f"the data root {root} also holds {held[0]}, so the sandbox cannot read it: set "
                        "COURSE_DATA_DIR to a folder of datasets only"]
    return [str(root)], {"COURSE_DATA_DIR": str(root)}, []


def _location(path: Path) -> Path:
    """Where ``path`` itself lies: its folder resolved, its own name kept. A student's submission that is a link
    is never read (``read_submission``); its target (the data root, itself: a loop raises in ``resolve``) must
    not change what the class's sandboxes may read either. The grader's own paths come resolved."""
    return path.parent.resolve() / path.name


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: what taskset or a Slurm job's --cpus-per-task leave
    it), else os.cpu_count(): the default number of workers. os.cpu_count() counts the machine's, and more
    workers than cores push honest notebooks towards the wall-clock timeouts."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):      # macOS and Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def grade_class(source_path, submissions: list[str], out, *, workers: int | None = None, force: bool = False,
                opts: Options | None = None, progress: bool = True, allow_root: bool = False,
                shard: tuple[int, int] | None = None) -> dict:
    """Grade every submission (in parallel), write the reports; returns counts. ``shard=(K, N)`` grades the K-th
    of N slices of the class only (grade_shards.py)."""
    from tqdm.auto import tqdm
    if os.geteuid() == 0 and not allow_root:
        raise GradeError("refusing to run as root: students' code would run as root as well (without capabilities, "
                         "but owning every root file the sandbox shows). Run course-grade as an unprivileged user "
                         "(docs/grading.md, 'Running as an unprivileged user'), or pass --allow-root to accept it")
    opts = opts or Options()
    source = load_source(source_path)
    subs = find_submissions(submissions, source.worksheet, held_names(Path(out)))
    if not subs:
        raise GradeError("no submissions found (give notebook files or folders of them)")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GradeError(f"--out {out} is a file: choose a folder (it will hold grades.csv, feedback/, results/)")
    out_resolved = out.resolve()
    for sub in subs:
        folder = sub.path.parent.resolve()
        if out_resolved == folder or out_resolved in folder.parents:
            raise GradeError(f"--out {out} contains the submission {sub.path}: the grader never writes next to "
                             "submissions; choose another folder")
    for arg in map(Path, submissions):      # nor inside a folder of submissions (the next run would read it)
        if arg.is_dir() and arg.resolve() in out_resolved.parents:
            raise GradeError(f"--out {out} is inside the folder of submissions {arg}: the grader never writes "
                             "next to submissions; choose another folder")
    results_dir = out / "results" / safe_name(source.worksheet)
    results_dir.mkdir(parents=True, exist_ok=True)
    if shard:       # one job of an array: its slice of the class, and what `course-grade merge` checks
        everyone, subs = [s.student for s in subs], grade_shards.select(subs, shard)
        try:
            grade_shards.write_manifest(out, worksheet=source.worksheet, source_sha256=source.sha256, shard=shard,
                                        grader_sha256=grader_sha256(), limits=opts.graded_under(),
                                        everyone=everyone, mine=[s.student for s in subs])
        except ValueError as err:
            raise GradeError(str(err)) from None
    olds = {s.student: _read_result(results_dir / f"{s.student}.json") for s in subs}     # each read once
    why = {s.student: "force" if force else _why_regrade(olds[s.student], source, s, opts) for s in subs}
    todo = [s for s in subs if why[s.student]]
    before = {s.student: _points(olds[s.student]) for s in todo}    # to name what changed
    for reason, what in (("grader", "were graded by another version of course_utils (a check or a hint changed) "
                                    "or of Python or a library it grades with"),
                         ("limits", "were graded under other limits")):
        again = [student for student, r in why.items() if r == reason]
        if again:
            changed = (_limits_changed([olds[a] for a in again], opts.graded_under()) if reason == "limits"
                       else _graded_with_changed([olds[a] for a in again], graded_with()))
            changed = f" ({changed})" if changed else ""
            print(f"course-grade: {len(again)} result(s) of {source.worksheet} {what}{changed}: graded again",
                  file=sys.stderr)
    workers = max(1, workers or usable_cores())
    stats = {"submissions": len(subs), "graded": 0, "skipped": len(subs) - len(todo)}

    cancel = opts.cancel = threading.Event()
    running: dict[str, float] = {}          # student -> when their grading started: the bar names a slow one
    beside: set[str] = set()                # the students graded while another one was
    started = threading.Lock()

    def work(sub: Submission, first: dict | None = None, last_try: bool = False) -> dict | None:
        """Grade one submission and write its result; None when the run was interrupted (nothing written, so
        that the next run grades it). ``first``: the result it replaces, graded beside others (``waiting_alone``);
        ``last_try``: a sandbox not set up before, tried once more at the end of the run."""
        if cancel.is_set():
            return None
        with started:
            beside.discard(sub.student)     # (graded once before in this run: that time's company)
            if running:
                beside.update([sub.student, *running])
            running[sub.student] = time.monotonic()
        try:
            result = grade_submission(source, sub, opts)
        except Exception as err:  # noqa: BLE001 - a bug of the grader must not stop the class
            if isinstance(err, SandboxNotSetUp):    # the student reads this one: the runner's words go to stderr
                tqdm.write(f"course-grade: {plain(sub.student)[:40]}: the sandbox could not be set up ({err}): graded "
                           + ("again by the next run" if last_try or first is not None else
                              "again at the end of this run (if it grades others) or by the next"),
                           file=sys.stderr)
            message = NOT_SET_UP if isinstance(err, SandboxNotSetUp) else _valid_text(
                f"internal grader error (it will be retried on the next run): {type(err).__name__}: {err}"
            )[:MAX_MESSAGE]
            result = {"student": sub.student, "submitted_as": sub.submitted_as or sub.student,
                      "worksheet": source.worksheet, "file": str(sub.path), "sha256": None,
                      "source_sha256": source.sha256, "status": "grader_error", "message": message, "answers": {},
                      "notes": [],
                      "rows": [{"grade_id": g.grade_id, "points": 0, "max_points": g.points, "status": "grader_error",
                                "message": message} for g in source.graded]}
        finally:
            with started:
                running.pop(sub.student, None)
        if cancel.is_set():         # stopped half-way by the interrupt: not a verdict
            return None
        if first is not None and result.get("status") == "grader_error":    # graded alone, but not graded: the
            tqdm.write(f"course-grade: {plain(sub.student)[:40]}: not graded alone ({result['message']}); the verdict "
                       "graded beside others stays, to be graded alone by the next run", file=sys.stderr)
            return first            # (still waiting_alone)
        if beside_without_cpu(result, sub.student in beside):
            result["beside_others"] = True      # (only then: else a result does not depend on its company)
        if first is not None:
            before = _points(first)
            result["graded_alone"] = {"points_beside_others": before, "seconds_beside_others": first.get("seconds")}
            result["notes"] = [ALONE_NOTE.format(was="" if before is None else f" (beside others: {before:g} "
                                                 "points)"), *result.get("notes", [])]
        write_atomic(results_dir / f"{sub.student}.json", json.dumps(result, indent=1))
        return result

    scratch = Path(tempfile.mkdtemp(prefix="course-grade-run-"))
    try:
        if todo:
            opts.mpl_cache = str(scratch / "mpl")     # matplotlib builds its font cache once here, not per sandbox
            if opts.pool:   # one pre-imported interpreter per worker (it builds the font cache), importing meanwhile
                opts.zygotes = sandbox.Pool(min(workers, len(todo)), scratch=scratch / "zygotes",
                                            mpl_cache=opts.mpl_cache, package_ready=False)
            else:
                subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env={
                    **os.environ, "MPLCONFIGDIR": opts.mpl_cache}, capture_output=True, timeout=600, check=False)
            opts.kernel = kernel_package(source, scratch / "kernel", [source.path.resolve(), out.resolve(),
                                                                      *(s.path for s in subs)])
            opts.cases = cases_files(source)
            if opts.zygotes is not None:
                opts.zygotes.package_ready(opts.kernel.pythonpath)
        with futures.ThreadPoolExecutor(workers) as pool, tqdm(total=len(todo), desc=f"grading {source.worksheet}",
                                                                unit="notebook", disable=not progress) as bar:
            finals: dict[str, dict] = {}        # student -> the result written for them in this run

            def count(r: dict) -> None:
                finals[r["student"]] = r        # (a later try replaces an earlier: the stats read the last)
                if r.get("status") == "grader_error" and r.get("message") != NOT_SET_UP:   # (that one: said)
                    tqdm.write(f"course-grade: {r['student']}: {r['message']}", file=sys.stderr)
                bar.update(1)

            def by_itself(*args) -> dict | None:
                """``work(*args)`` in the pool's thread, as the others, with nothing beside it."""
                fut = pool.submit(work, *args)
                while not futures.wait([fut], timeout=SLOW_POLL_S).done:
                    pass        # (a wait with a timeout: Ctrl-C caught by another thread still stops it)
                return fut.result()

            try:
                pending = {pool.submit(work, s) for s in todo if why[s.student] != "alone"}
                while pending:
                    done, pending = futures.wait(pending, timeout=SLOW_POLL_S, return_when=futures.FIRST_COMPLETED)
                    bar.set_postfix_str(slow_students(running, time.monotonic()), refresh=not done)
                    for fut in done:
                        if (r := fut.result()) is not None:
                            count(r)
                # a sandbox not set up (a count of the machine's or the user's spent meanwhile, by a classmate's
                # job or another program: open files, epoll watches): once more, one at a time, if the run graded
                # a notebook (else the machine is at fault, and the class would wait for nothing)
                unset = [s for s in todo if (finals.get(s.student) or {}).get("message") == NOT_SET_UP]
                if unset and any(r.get("status") == "graded" for r in finals.values()):
                    tqdm.write(f"course-grade: {len(unset)} sandbox(es) of {source.worksheet} could not be set up: "
                               f"graded again one at a time: {', '.join(plain(s.student)[:40] for s in unset[:10])}"
                               f"{' and more' if len(unset) > 10 else ''}", file=sys.stderr)
                    bar.total += len(unset)
                    for sub in unset:
                        if (r := by_itself(sub, None, True)) is None:
                            break
                        count(r)
                        if r.get("status") != "grader_error":
                            stats.setdefault("set_up_again", []).append(plain(sub.student)[:40])
                # what ran out of time beside another without a share of the CPU of its own: once more, alone
                again = [s for s in todo if waiting_alone(finals.get(s.student) or (
                    olds[s.student] if why[s.student] == "alone" else None))]
                if again:
                    tqdm.write(f"course-grade: {len(again)} submission(s) of {source.worksheet} ran past a time limit "
                               "while graded beside another, and the grader could not give each its own share of the "
                               "CPU (no cgroup cpu controller): graded again one at a time, at most "
                               f"{len(again) * opts.timeout / 60:.0f} min (--timeout each; Ctrl-C leaves them to the "
                               f"next run): {', '.join(plain(s.student)[:40] for s in again[:10])}"
                               f"{' and more' if len(again) > 10 else ''}", file=sys.stderr)
                    bar.total += sum(s.student in finals for s in again)
                    for sub in again:       # in the pool's thread, as the others: Ctrl-C stops it as them
                        first = finals.get(sub.student) or olds[sub.student]
                        bar.set_postfix_str(f"graded alone: {plain(sub.student)[:40]}")
                        if (r := by_itself(sub, first)) is None:
                            break
                        if r is first:      # a grader error alone: the first stays (named on stderr)
                            continue
                        count(r)
                        moved = stats.setdefault("alone", {})
                        p0, p1 = _points(first), _points(r)
                        moved[r["student"]] = f"{plain(sub.student)[:40]} {p0:g} -> {p1:g}" if (
                            None not in (p0, p1) and p0 != p1) else ""
            except KeyboardInterrupt:   # Ctrl-C (or SIGTERM, see main): queued jobs are dropped, running ones
                cancel.set()            # stop at their next poll (0.5 s), and leaving the pool waits for them only
                pool.shutdown(wait=False, cancel_futures=True)
                stats["interrupted"] = True
            stats["graded"] = len(finals)
            # each student's last result in this run: a row of 0 points, named in the summary line; grader errors
            stats["not_gradable"] = [f"{who} ({r.get('status')})" for who, r in finals.items()
                                     if r.get("status") != "graded"]
            errors = [str(r.get("message")) for r in finals.values() if r.get("status") == "grader_error"]
            if errors:
                stats["grader_errors"] = errors
            stats["left_alone"] = sorted(s for s, r in finals.items() if waiting_alone(r))   # (interrupted)
            for r in finals.values():
                old, new = before.get(r["student"]), _points(r)
                if old is not None and new != old and why[r["student"]] != "alone":   # (said by the alone line)
                    stats.setdefault("changed", []).append(
                        f"{plain(r['student'])[:40]} {old:g} -> {new:g} ({REGRADED[why[r['student']]]})")
    finally:
        cancel.set()
        if opts.zygotes is not None:
            opts.zygotes.close()
        opts.mpl_cache = opts.kernel = opts.cases = opts.zygotes = opts.cancel = None
        shutil.rmtree(scratch, ignore_errors=True)
    if stats.get("set_up_again"):
        print(f"course-grade: graded at the second try, once their sandboxes could be set up: "
              f"{len(stats['set_up_again'])} ({', '.join(stats['set_up_again'][:10])}"
              f"{' and more' if len(stats['set_up_again']) > 10 else ''})", file=sys.stderr)
    if stats.get("alone"):
        moved = [m for m in stats["alone"].values() if m]
        print(f"course-grade: graded alone: {len(stats['alone'])}, of whom {len(moved)} with other automatic points"
              f"{': ' if moved else ''}{', '.join(moved[:10])}{' and more' if len(moved) > 10 else ''}",
              file=sys.stderr)
    if stats.get("changed"):
        changed = sorted(stats["changed"], key=str.lower)
        print(f"course-grade: the automatic points of {len(changed)} student(s) graded again changed: "
              f"{', '.join(changed[:10])}{' and more' if len(changed) > 10 else ''}", file=sys.stderr)
    others = _graded_otherwise(results_dir, {s.student for s in subs})
    if others:
        print(f"course-grade: {len(others)} result(s) in {results_dir} not part of this run were graded by another "
              f"version of course_utils or of Python or a library it grades with "
              f"({', '.join(plain(o)[:40] for o in others[:5])}"
              f"{' ...' if len(others) > 5 else ''}): grades.csv shows them as graded then; give their notebooks to "
              "grade them again", file=sys.stderr)
    stats["results"], stats["students"] = write_reports(out)
    if stats.get("grader_errors"):      # (rare: then DIR's results, not the run's, are read once more for a verdict)
        stats["verdicts"] = sum(r is not None and r.get("status") != "grader_error"
                                for r in map(_read_result, sorted(results_dir.glob("*.json"))))
    if stats.get("interrupted"):
        raise Interrupted(stats)
    return stats


EXIT_NO_VERDICT = 3     # course-grade's exit status when no result in --out has a verdict, only grader errors
SLOW_AFTER_S = 30       # a submission graded for longer is named on the progress bar, with its seconds
SLOW_POLL_S = 2


def slow_students(running: dict[str, float], now: float, *, after: float | None = None) -> str:
    """The progress bar's note on what holds it up: the students graded for more than ``after`` seconds
    (SLOW_AFTER_S by default; started at ``running[student]``), longest first, at most three named, e.g.
    "running: bob 95 s, carol 41 s"; "" when none."""
    after = SLOW_AFTER_S if after is None else after
    slow = sorted(((now - t0, who) for who, t0 in list(running.items()) if now - t0 > after), reverse=True)
    if not slow:
        return ""
    shown = ", ".join(f"{plain(who)[:40]} {seconds:.0f} s" for seconds, who in slow[:3])   # a name: one line
    return f"running: {shown}" + (f" and {len(slow) - 3} more" if len(slow) > 3 else "")


class Interrupted(GradeError):
    """The run was interrupted (Ctrl-C, SIGTERM): what was graded is kept and reported; ``stats`` as returned."""

    def __init__(self, stats: dict):
        super().__init__("interrupted")
        self.stats = stats



def add_limit_options(parser: argparse.ArgumentParser) -> None:
    """The limits of a submission that course-grade and export-gradescope both take, with Options' defaults (each
    adds its own --timeout and --memory-mb: a Gradescope container sets other bounds)."""
    d = Options()
    parser.add_argument("--cell-timeout", type=float, default=d.cell_timeout,
                        help="seconds per cell (default: %(default)g)")
    parser.add_argument("--disk-mb", type=int, default=d.disk_mb,
                        help="MB a submission may write (default: %(default)s)")
    parser.add_argument("--max-processes", type=int, default=d.max_processes,
                        help="processes and threads of a submission (default: %(default)s)")
    parser.add_argument("--max-notebook-mb", type=float, default=d.max_notebook_mb,
                        help="larger submitted files are not read (default: %(default)g)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS:            # `python -m course_utils.grade export-lms ...`
        from .grade_cli import main as subcommand
        return subcommand(argv)
    parser = argparse.ArgumentParser(prog="course-grade", description=__doc__.split("\n")[0], epilog="Also: "
                                     + "; ".join(f"course-grade {name} --help" for name in SUBCOMMANDS))
    parser.add_argument("source", help="the instructor's solution notebook (solutions/*.ipynb)")
    parser.add_argument("submissions", nargs="+", help="students' notebooks, or folders of them")
    parser.add_argument("--out", required=True, help="folder for grades.csv, feedback/ and results/")
    parser.add_argument("--workers", type=int, default=usable_cores(), help="submissions graded at once "
                        "(default: the cores this process may use, %(default)s here: its CPU affinity, as a Slurm "
                        "job or taskset sets it)")
    parser.add_argument("--timeout", type=float, default=Options.timeout,
                        help="seconds per submission (default: %(default)g)")
    parser.add_argument("--memory-mb", type=int, default=Options.memory_mb,
                        help="memory of a submission as a whole (a cgroup, else its processes' sum polled every "
                        "0.5 s); also RLIMIT_DATA per process (default: %(default)s)")
    add_limit_options(parser)
    parser.add_argument("--force", action="store_true", help="regrade submissions already graded")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temporary folders (debugging)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--no-pool", action="store_true", help="start a Jupyter kernel (nbclient) per submission "
                        "instead of forking it from a pre-imported interpreter (slower; same isolation)")
    parser.add_argument("--allow-root", action="store_true",
                        help="grade as root anyway: students' code then runs as root without capabilities")
    parser.add_argument("--shard", metavar="K/N", help="grade only the K-th of N slices of the class (a job array; "
                        "then `course-grade merge`)")
    args = parser.parse_args(argv)
    try:
        shard = grade_shards.parse_shard(args.shard) if args.shard else None
    except ValueError as err:
        parser.error(str(err))
    for name in ("cell_timeout", "timeout", "memory_mb", "disk_mb", "max_processes", "max_notebook_mb", "workers"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    opts = Options(cell_timeout=args.cell_timeout, timeout=args.timeout, memory_mb=args.memory_mb,
                   max_notebook_mb=args.max_notebook_mb, keep_temp=args.keep_temp, disk_mb=args.disk_mb,
                   max_processes=args.max_processes, pool=not args.no_pool)
    if not sys.platform.startswith("linux"):
        print(f"course-grade: error: grading runs students' code in a sandbox made of Linux's own parts (Landlock, "
              f"namespaces, cgroups, prctl), and this is {sys.platform}: grade on a Linux machine, in a Linux VM or "
              "container, or on Gradescope (course-grade export-gradescope); docs/grading.md, 'Which way to grade'. "
              "export-lms and merge work here", file=sys.stderr)
        return 2
    if os.geteuid() == 0 and args.allow_root:
        print("course-grade: WARNING: running as root (--allow-root): students' code runs as root without "
              "capabilities; see docs/grading.md", file=sys.stderr)
    def terminated(signum, frame):      # SIGTERM (a batch system's time limit, kill): stop as Ctrl-C does
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        stats = grade_class(args.source, args.submissions, args.out, workers=args.workers, force=args.force,
                            opts=opts, progress=not args.quiet, allow_root=args.allow_root, shard=shard)
    except Interrupted as err:
        s = err.stats
        alone = s.get("left_alone", [])
        left = s["submissions"] - s["skipped"] - s["graded"] + len(alone)
        print(f"course-grade: interrupted: {s['graded'] - len(alone)} graded in this run and kept, {left} not "
              "graded" + (f" ({len(alone)} of them still to be graded alone: {', '.join(alone[:5])}"
                          f"{' ...' if len(alone) > 5 else ''})" if alone else "")
              + f"; run the same command again to grade them ({args.out}/grades.csv and report.html show what is "
              "graded so far)", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("course-grade: interrupted; the results already written are kept: run the same command again to "
              "continue", file=sys.stderr)
        return 130
    except GradeError as err:
        print(f"course-grade: error: {err}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    again = ("every submission regraded (--force)" if args.force else
             f"{stats['skipped']} already graded (use --force to regrade)")
    bad = sorted(stats.get("not_gradable", []), key=str.lower)
    unread = (f" ({len(bad)} of them could not be graded: {', '.join(bad[:10])}"
              f"{', ...' if len(bad) > 10 else ''}; grades.csv says why)") if bad else ""
    print(f"course-grade: {stats['graded']} graded{unread}, {again}; "
          f"{args.out}/grades.csv, {args.out}/feedback/, {args.out}/report.html")
    errors = stats.get("grader_errors", [])
    if errors and not stats.get("verdicts"):     # the grader's fault, not the class's: a script must not go on
        print(f"course-grade: error: no submission in {args.out} has a verdict: each one graded so far ended in a "
              f"grader error ({len(errors)} in this run; the first: {errors[0][:300]}): the grader or this machine "
              "is at fault, not the students' work (free memory, fs.file-max, ulimit -n, a container's Landlock or "
              "seccomp policy: docs/grading.md, grader_error); mend it, then run the same command again, which "
              "grades them again", file=sys.stderr)
        return EXIT_NO_VERDICT
    return 0


if __name__ == "__main__":
    sys.exit(main())
