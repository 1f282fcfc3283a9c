"""Grade a class's worksheets: points per TODO, feedback per student, students' code kept in a sandbox.

    python -m course_utils.grade SOURCE SUBMISSION... --out DIR [--workers N] [--cell-timeout S]
                                 [--timeout S] [--memory-mb M] [--force]

SOURCE is the instructor's solution notebook (solutions/*.ipynb, with the hidden tests); each SUBMISSION a
student's notebook or a folder of them (``submissions/<student>/<worksheet>.ipynb``: the student is the
folder's name; a loose ``alice.ipynb`` is student ``alice``). Writes DIR/grades.csv, DIR/feedback/<student>.md
and one result file per submission in DIR/results/<worksheet>/ (a rerun skips those unless --force).

How a submission is graded (docs/grading.md has the details and the limits):

1. The graded cells come from SOURCE, matched by nbgrader ``grade_id``. In the notebook that runs, every
   student cell whose grade_id is a graded test cell of SOURCE is replaced by a *harvest* cell: it calls
   ``checks.harvest(check, <target>)`` on the check's fixed cases (hidden ones included) and saves the raw
   outputs with ``torch.save`` in the submission's temporary folder. The student's copy of a test cell never
   runs; a test cell the student deleted scores 0 with a message. Other locked cells run as SOURCE has them.
2. ``course_utils.sandbox`` runs that notebook in a child process (own process group, scrubbed environment,
   fresh temporary folder holding only this submission, memory/CPU limits, Landlock file-system sandbox).
   The grader kills the whole process group at the end, whatever happened.
3. The verdict is computed HERE, in the grader: ``torch.load(weights_only=True)`` (no code runs on load),
   then ``checks.verdict`` recomputes the reference. Monkeypatching anything inside the kernel cannot pass
   a check; a missing or unreadable harvest file is a fail, never a pass.
"""
from __future__ import annotations

import argparse
import concurrent.futures as futures
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ANSWER_STUB = "YOUR ANSWER HERE"
MAX_HARVEST_BYTES = 64 * 2 ** 20     # a harvest file larger than this is not loaded
MAX_TEXT = 4000                      # characters kept of a manual answer
MAX_MESSAGE = 600                    # characters kept of a message
CSV_FIELDS = ["student", "worksheet", "grade_id", "points", "max_points", "status", "message"]


class GradeError(Exception):
    """The grader itself cannot do its job (bad arguments, unreadable SOURCE): exit code 2."""


class Malformed(Exception):
    """A submission that is not a usable notebook: it gets rows and a message."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


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


def _meta(cell: dict) -> tuple[dict, dict]:
    md = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
    nbg = md.get("nbgrader") if isinstance(md.get("nbgrader"), dict) else {}
    course = md.get("course") if isinstance(md.get("course"), dict) else {}
    return nbg, course


def _source_text(cell: dict) -> str:
    src = cell.get("source", "")
    if isinstance(src, list):
        src = "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def load_source(path: str | Path) -> Source:
    from . import checks
    path = Path(path)
    try:
        data = path.read_bytes()
        nb = parse_notebook(data)
    except (OSError, Malformed) as err:
        raise GradeError(f"cannot read SOURCE {path}: {err}") from err
    graded, locked, ids, own = [], {}, set(), set()
    for cell in nb["cells"]:
        nbg, course = _meta(cell)
        gid = nbg.get("grade_id")
        if not isinstance(gid, str):
            continue
        ids.add(gid)
        if nbg.get("grade") or nbg.get("solution"):
            own.add(gid)
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
    return Source(path, path.stem, hashlib.sha256(data).hexdigest(), graded, locked, own)


# ------------------------------------------------------------------ reading a submission
def parse_notebook(data: bytes, max_bytes: int | None = None) -> dict:
    """A notebook as a dict with a list of cells (outputs dropped), or Malformed with a reason."""
    if max_bytes is not None and len(data) > max_bytes:
        raise Malformed("too_large", f"the file is {len(data) / 2 ** 20:.1f} MB, over the limit of "
                                     f"{max_bytes / 2 ** 20:.0f} MB: clear the outputs and submit again")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Malformed("not_a_notebook", "not a notebook: the file is not UTF-8 text") from None
    try:
        nb = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise Malformed("not_a_notebook", f"not a notebook: the file is not valid JSON ({str(err)[:80]})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise Malformed("not_a_notebook", "not a notebook: the JSON has no list of cells (nbformat 4)")
    cells = []
    for cell in nb["cells"]:
        if isinstance(cell, dict) and cell.get("cell_type") in ("code", "markdown", "raw"):
            md = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
            cells.append({"cell_type": cell["cell_type"], "source": _source_text(cell), "metadata": md})
    if not cells:
        raise Malformed("empty", "empty notebook: it has no cells")
    return {"cells": cells}


# ------------------------------------------------------------------ the notebook that runs
HARVEST = '''\
# Added by course-grade in place of the graded cell {gid!r}: it runs your {target!r} on the check's fixed
# cases and saves its raw outputs; the verdict is computed outside this notebook.
def _course_grade_harvest():
    import importlib.util, os, torch
    import sys
    name = "course_utils._grade_checks"
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]
    spec = importlib.util.spec_from_file_location(name, {checks_file!r})
    fresh = importlib.util.module_from_spec(spec)   # a fresh copy: patching course_utils.checks changes nothing
    sys.modules[name] = fresh
    try:
        spec.loader.exec_module(fresh)
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
    obj = globals().get({target!r}, None)
    if obj is None:
        def obj(*args, **kwargs):
            raise NameError("name {target!r} is not defined: did its cell run, or was it renamed?")
    outputs = fresh.harvest({check!r}, obj, hidden=True)
    torch.save(outputs, {path!r} + ".tmp")
    os.replace({path!r} + ".tmp", {path!r})
_course_grade_harvest()
del _course_grade_harvest
'''


PRELUDE = """\
# Added by course-grade: the heavy imports, under a generous time limit (an interrupted import of torch
# would break every later cell); the student's cells follow, each under the per-cell limit.
import torch
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot
import course_utils.checks
"""


def build_run_notebook(source: Source, nb: dict, harvest_dir: Path) -> tuple[dict, set[str]]:
    """The student's code cells, with SOURCE's locked cells and a harvest cell per graded test cell.

    Returns the notebook (a dict, nbformat 4) and the grade_ids of the graded cells that were found.
    """
    import nbformat
    checks_by_id = {g.grade_id: g for g in source.graded if g.kind == "check"}
    found = set()
    cells = [nbformat.v4.new_code_cell(PRELUDE, metadata={"course_grade": {"role": "prelude", "grade_id": None}})]
    for cell in nb["cells"]:
        nbg, _ = _meta(cell)
        gid = nbg.get("grade_id") if isinstance(nbg.get("grade_id"), str) else None
        if gid in checks_by_id and gid not in found:
            g = checks_by_id[gid]
            found.add(gid)
            code = HARVEST.format(gid=gid, target=g.target, check=g.check, path=str(harvest_dir / f"{gid}.pt"),
                                  checks_file=str(PACKAGE_DIR / "checks" / "__init__.py"))
            cells.append(nbformat.v4.new_code_cell(code, metadata={"course_grade": {"role": "harvest",
                                                                                    "grade_id": gid}}))
            continue
        if gid in checks_by_id:         # a second copy of a graded cell: ignored
            continue
        if gid is not None and any(g.grade_id == gid for g in source.graded):
            found.add(gid)              # a manual answer: read, never run
            continue
        if gid in source.locked:
            cell = source.locked[gid]   # the instructor's version of a locked cell
        if cell.get("cell_type") != "code":
            continue
        cells.append(nbformat.v4.new_code_cell(_source_text(cell), metadata={
            "course_grade": {"role": "locked" if gid in source.locked else "student", "grade_id": gid}}))
    run_nb = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    return run_nb, found


# ------------------------------------------------------------------ the sandbox
def _read_only_paths() -> list[str]:
    paths = ["/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev",
             sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
             *site.getsitepackages(), str(PACKAGE_DIR)]
    if os.environ.get("COURSE_DATA_DIR"):
        paths.append(os.environ["COURSE_DATA_DIR"])
    if _needs_pythonpath():
        paths.append(str(PACKAGE_DIR.parent))
    return sorted({os.path.realpath(p) for p in paths if p})


def _needs_pythonpath() -> bool:
    """True when course_utils is importable only from the current folder (an uninstalled checkout)."""
    for sp in site.getsitepackages():
        if (Path(sp) / "course_utils").exists() or list(Path(sp).glob("__editable__*course_utils*")):
            return False
    return True


def _child_env(jobdir: Path, token: str) -> dict:
    """The kernel's environment: none of the instructor's variables except the few it needs."""
    keep = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "COURSE_DATA_DIR", "VIRTUAL_ENV", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    work = str(jobdir / "work")
    env.update(HOME=work, TMPDIR=str(jobdir / "tmp"), JUPYTER_RUNTIME_DIR=str(jobdir / "runtime"),
               JUPYTER_CONFIG_DIR=str(jobdir / "jupyter"), IPYTHONDIR=str(jobdir / "ipython"),
               MPLCONFIGDIR=str(jobdir / "mpl"), MPLBACKEND="Agg", COURSE_QUICK="1", PYTHONDONTWRITEBYTECODE="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYDEVD_DISABLE_FILE_VALIDATION="1",
               COURSE_GRADE_JOB=token)
    if _needs_pythonpath():
        env["PYTHONPATH"] = str(PACKAGE_DIR.parent)
    return env


def _kill_group(pgid: int, token: str) -> None:
    """SIGKILL the sandbox's process group, then any process that escaped it (setsid) but kept our token."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        import psutil
    except ImportError:
        return
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid != os.getpid() and proc.environ().get("COURSE_GRADE_JOB") == token:
                proc.kill()
        except (psutil.Error, OSError):
            continue


@dataclass
class Options:
    cell_timeout: float = 120
    timeout: float = 900
    memory_mb: int = 4096
    max_notebook_mb: float = 64
    keep_temp: bool = False
    setup_timeout: float = 600      # the grader's prelude (imports)
    mpl_cache: str | None = None    # a matplotlib font cache built once, copied into each sandbox


def run_sandboxed(run_nb: dict, student_file: Path, jobdir: Path, opts: Options) -> tuple[dict, bool, float]:
    """Execute ``run_nb`` in the sandbox; returns (the runner's log, whether the wall limit hit, seconds)."""
    import nbformat
    for sub in ("work", "tmp", "runtime", "jupyter", "ipython", "mpl", "harvest"):
        (jobdir / sub).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(student_file, jobdir / "work" / student_file.name)   # its own copy, nothing else
    if opts.mpl_cache:
        for f in Path(opts.mpl_cache).glob("*.json"):
            shutil.copyfile(f, jobdir / "mpl" / f.name)
    nbformat.write(nbformat.from_dict(run_nb), jobdir / "run.ipynb")
    (jobdir / "job.json").write_text(json.dumps({
        "memory_mb": opts.memory_mb, "cpu_s": int(opts.timeout * 2 + 60), "cell_timeout": opts.cell_timeout,
        "setup_timeout": max(opts.setup_timeout, opts.cell_timeout),
        "read_only": _read_only_paths()}))
    token = uuid.uuid4().hex
    start = time.monotonic()
    with open(jobdir / "runner.out", "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "course_utils.sandbox", str(jobdir)], cwd=jobdir / "work",
                                env=_child_env(jobdir, token), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=opts.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(proc.pid, token)     # in every case: the kernel and whatever the student started
            proc.wait()
    try:
        log = json.loads((jobdir / "log.json").read_text()[:2_000_000])
        log = log if isinstance(log, dict) else {}
    except (OSError, ValueError):
        tail = (jobdir / "runner.out").read_bytes()[-400:].decode("utf-8", "replace")
        log = {"dead": f"the sandbox failed to start: {tail}"}
    return log, timed_out, time.monotonic() - start


# ------------------------------------------------------------------ verdicts, in the grader
def _load_outputs(path: Path):
    import torch
    if path.stat().st_size > MAX_HARVEST_BYTES:
        raise ValueError(f"the outputs are too large ({path.stat().st_size / 2 ** 20:.0f} MB)")
    return torch.load(path, map_location="cpu", weights_only=True)


def _cell_note(log: dict, run_nb: dict, index) -> str:
    if not isinstance(index, int) or not 0 <= index < len(run_nb["cells"]):
        return "a cell"
    cell = run_nb["cells"][index]
    role = cell["metadata"]["course_grade"]
    if role["role"] == "harvest":
        return f"the graded cell {role['grade_id']!r}"
    if role["role"] == "prelude":
        return "the grader's imports (torch, matplotlib, course_utils)"
    first = next((line for line in cell["source"].splitlines() if line.strip()), "")[:60]
    name = f"your cell {role['grade_id']!r}" if role.get("grade_id") else "your cell"
    return f"{name} starting `{first}`"


def judge(source: Source, run_nb: dict, found: set[str], harvest_dir: Path, log: dict, timed_out: bool,
          opts: Options) -> list[dict]:
    from . import checks
    entries = {e.get("index"): e for e in log.get("cells", []) if isinstance(e, dict)}
    harvest_index = {c["metadata"]["course_grade"]["grade_id"]: i for i, c in enumerate(run_nb["cells"])
                     if c["metadata"]["course_grade"]["role"] == "harvest"}
    errors = [e for e in log.get("cells", []) if isinstance(e, dict) and e.get("status") == "error"
              and e.get("role") != "harvest"]
    rows = []
    for g in source.graded:
        if g.kind != "check":
            continue
        row = {"grade_id": g.grade_id, "points": 0, "max_points": g.points}
        path = harvest_dir / f"{g.grade_id}.pt"
        entry = entries.get(harvest_index.get(g.grade_id))
        if g.grade_id not in found:
            row.update(status="missing", message=f"the graded cell {g.grade_id!r} is missing from the notebook "
                       "(deleted, or its metadata removed): 0 points; copy it back from the worksheet")
        elif path.exists():
            try:
                outputs = _load_outputs(path)
                if not isinstance(outputs, list):
                    raise TypeError(f"expected a list of outputs, got {type(outputs).__name__}")
                result = checks.verdict(g.check, outputs, hidden=True)
                row.update(points=g.points if result.passed else 0, status=result.status, message=result.message)
            except Exception as err:  # noqa: BLE001 - whatever the file holds, it is a fail with a reason
                row.update(status="error", message=f"{checks.FAIL} {g.target}: the outputs of your code could not "
                           f"be read or judged ({type(err).__name__}: {str(err)[:200]})")
        elif entry and entry.get("ename") == "CellTimeoutError":
            row.update(status="timeout", message=f"{checks.FAIL} {g.target}: ran past the limit of "
                       f"{opts.cell_timeout:g} s per cell on the test cases (an infinite loop?)")
        elif entry:
            row.update(status="error", message=f"{checks.FAIL} {g.target}: the grader could not collect its outputs "
                       f"({entry.get('ename')}: {entry.get('evalue')}); did the notebook change torch or builtins?")
        elif timed_out:
            row.update(status="timeout", message=f"{checks.FAIL} {g.target}: not graded: the notebook ran past "
                       f"the limit of {opts.timeout:g} s per submission before reaching this cell "
                       f"(it was running {_cell_note(log, run_nb, log.get('running'))})")
        elif log.get("dead"):
            row.update(status="crashed", message=f"{checks.FAIL} {g.target}: not graded: {log['dead']} while "
                       f"running {_cell_note(log, run_nb, log.get('running'))} (os._exit, a crash, or the "
                       f"memory limit of {opts.memory_mb} MB)")
        else:
            row.update(status="error", message=f"{checks.FAIL} {g.target}: not graded: this cell did not run")
        if row["status"] not in ("pass", "missing") and errors:
            before = [e for e in errors if e.get("index", 0) < harvest_index.get(g.grade_id, 10 ** 9)]
            if before:
                e = before[-1]
                row["message"] += (f" [before it, {_cell_note(log, run_nb, e.get('index'))} raised "
                                   f"{e.get('ename')}: {str(e.get('evalue'))[:160]}]")
        rows.append(row)
    return rows


def manual_rows(source: Source, nb: dict | None) -> tuple[list[dict], dict[str, str]]:
    cells = {}
    for cell in (nb or {}).get("cells", []):
        gid = _meta(cell)[0].get("grade_id")
        if isinstance(gid, str):
            cells.setdefault(gid, cell)
    rows, answers = [], {}
    for g in source.graded:
        if g.kind != "manual":
            continue
        row = {"grade_id": g.grade_id, "points": "", "max_points": g.points, "status": "manual",
               "message": "to be graded by the instructor"}
        cell = cells.get(g.grade_id)
        text = _source_text(cell).strip() if cell else None
        if cell is None:
            row.update(points=0, status="missing", message=f"the answer cell {g.grade_id!r} is missing: 0 points")
        elif not text or text.replace(ANSWER_STUB, "").strip() == "":
            row.update(points=0, status="not_implemented", message="not answered (the cell is still empty)")
        else:
            answers[g.grade_id] = text[:MAX_TEXT] + (" [...]" if len(text) > MAX_TEXT else "")
        rows.append(row)
    return rows, answers


# ------------------------------------------------------------------ one submission
@dataclass
class Submission:
    student: str
    path: Path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2 ** 20), b""):
            h.update(block)
    return h.hexdigest()


def grade_submission(source: Source, sub: Submission, opts: Options) -> dict:
    """Grade one submission; never raises for anything the submission holds."""
    result = {"student": sub.student, "worksheet": source.worksheet, "file": str(sub.path),
              "source_sha256": source.sha256, "notes": []}
    rows, nb = [], None
    try:
        result["sha256"] = _sha256(sub.path)
        size = sub.path.stat().st_size
        if size > opts.max_notebook_mb * 2 ** 20:
            raise Malformed("too_large", f"the file is {size / 2 ** 20:.1f} MB, over the limit of "
                                         f"{opts.max_notebook_mb:g} MB: clear the outputs and submit again")
        data = sub.path.read_bytes()
        nb = parse_notebook(data)
        ids = {_meta(c)[0].get("grade_id") for c in nb["cells"]}
        if not ids & source.ids:
            raise Malformed("wrong_worksheet", f"this does not look like worksheet {source.worksheet!r}: none of "
                                               "its cells matches the worksheet's (another worksheet, or a new "
                                               "notebook?)")
    except (Malformed, OSError) as err:
        status = err.status if isinstance(err, Malformed) else "unreadable"
        message = str(err) if isinstance(err, Malformed) else f"cannot read the file: {err}"
        rows = [{"grade_id": g.grade_id, "points": 0, "max_points": g.points, "status": status,
                 "message": message[:MAX_MESSAGE]} for g in source.graded]
        result.update(rows=rows, answers={}, status=status, message=message[:MAX_MESSAGE])
        return result
    jobdir = Path(tempfile.mkdtemp(prefix="course-grade-"))
    try:
        run_nb, found = build_run_notebook(source, nb, jobdir / "harvest")
        log, timed_out, seconds = run_sandboxed(run_nb, sub.path, jobdir, opts)
        rows = judge(source, run_nb, found, jobdir / "harvest", log, timed_out, opts)
        result["seconds"] = round(seconds, 1)
        if not log.get("landlock_abi"):
            result["notes"].append("no file-system sandbox (Landlock unavailable on this Linux kernel)")
    finally:
        if not opts.keep_temp:
            shutil.rmtree(jobdir, ignore_errors=True)
    mrows, answers = manual_rows(source, nb)
    result.update(rows=_in_source_order(source, rows + mrows), answers=answers, status="graded", message="")
    return result


def _in_source_order(source: Source, rows: list[dict]) -> list[dict]:
    order = {g.grade_id: i for i, g in enumerate(source.graded)}
    for row in rows:
        row["message"] = str(row["message"])[:MAX_MESSAGE]
    return sorted(rows, key=lambda r: order.get(r["grade_id"], 10 ** 6))


# ------------------------------------------------------------------ the class
def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name).strip("._") or "student"


def find_submissions(args: list[str], worksheet: str) -> list[Submission]:
    """Submission files with their students' names (folder's name, or the stem of a loose file)."""
    found: list[tuple[str, Path]] = []
    for arg in args:
        p = Path(arg)
        if p.is_file():
            found.append((p.parent.name if p.stem == worksheet and p.parent.name else p.stem, p))
        elif p.is_dir():
            for f in sorted(p.glob("*.ipynb")):   # loose files: alice.ipynb; or the folder of one student
                found.append((p.resolve().name if f.stem == worksheet else f.stem, f))
            for d in sorted(x for x in p.iterdir() if x.is_dir() and not x.name.startswith(".")):
                files = sorted(f for f in d.rglob("*.ipynb") if ".ipynb_checkpoints" not in f.parts)
                named = [f for f in files if f.stem == worksheet]
                files = named or files
                for f in files:
                    found.append((d.name if len(files) == 1 else f"{d.name}-{f.stem}", f))
        else:
            raise GradeError(f"no such file or folder: {arg}")
    subs, seen = [], {}
    for student, path in found:
        name = _safe(student)
        seen[name] = seen.get(name, 0) + 1
        subs.append(Submission(name if seen[name] == 1 else f"{name}-{seen[name]}", path))
    return subs


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _is_current(path: Path, source: Source, sub: Submission) -> bool:
    try:
        old = json.loads(path.read_text())
        return old.get("source_sha256") == source.sha256 and old.get("sha256") == _sha256(sub.path)
    except (OSError, ValueError, AttributeError):
        return False


def write_reports(out: Path) -> tuple[int, int]:
    """DIR/grades.csv and DIR/feedback/<student>.md from every result in DIR/results."""
    results = []
    for f in sorted((out / "results").glob("*/*.json")):
        try:
            results.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            continue
    results.sort(key=lambda r: (r.get("student", ""), r.get("worksheet", "")))
    import io
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    by_student: dict[str, list[dict]] = {}
    for r in results:
        by_student.setdefault(r["student"], []).append(r)
        for row in r["rows"]:
            writer.writerow({"student": r["student"], "worksheet": r["worksheet"], **row,
                             "message": _plain(row["message"])})
        auto = sum(row["points"] for row in r["rows"] if isinstance(row["points"], (int, float)))
        total = sum(row["max_points"] for row in r["rows"])
        pending = sum(row["max_points"] for row in r["rows"] if row["points"] == "")
        message = r.get("message") or (f"{pending:g} points to grade by hand" if pending else "")
        writer.writerow({"student": r["student"], "worksheet": r["worksheet"], "grade_id": "TOTAL",
                         "points": auto, "max_points": total, "status": r.get("status", "graded"),
                         "message": _plain(message)})
    _write_atomic(out / "grades.csv", buf.getvalue())
    for student, rs in by_student.items():
        _write_atomic(out / "feedback" / f"{student}.md", feedback_markdown(student, rs))
    return len(results), len(by_student)


def _plain(message: str) -> str:
    return re.sub(r"^[✅❌⏳]\s*", "", str(message)).replace("\n", " ")


def feedback_markdown(student: str, results: list[dict]) -> str:
    lines = [f"# Feedback for {student}", ""]
    for r in results:
        auto = sum(row["points"] for row in r["rows"] if isinstance(row["points"], (int, float)))
        total = sum(row["max_points"] for row in r["rows"])
        lines += [f"## Worksheet `{r['worksheet']}`: {auto:g} / {total:g} points", "",
                  f"File: `{Path(r['file']).name}`", ""]
        if r.get("message"):
            lines += [f"**{r['message']}**", ""]
        for row in r["rows"]:
            mark = {"pass": "passed", "manual": "to be graded by hand"}.get(row["status"], "not passed")
            pts = "?" if row["points"] == "" else f"{row['points']:g}"
            lines.append(f"- **{row['grade_id']}** ({pts} / {row['max_points']:g}): {mark}. {_plain(row['message'])}")
        for gid, text in r.get("answers", {}).items():
            lines += ["", f"### Written answer `{gid}` (for the instructor)", ""]
            lines += ["> " + line for line in text.splitlines()]
        if r.get("notes"):
            lines += ["", *[f"_Note: {n}_" for n in r["notes"]]]
        lines.append("")
    return "\n".join(lines)


def grade_class(source_path, submissions: list[str], out, *, workers: int | None = None, force: bool = False,
                opts: Options | None = None, progress: bool = True) -> dict:
    """Grade every submission (in parallel), write the reports; returns counts."""
    from tqdm.auto import tqdm
    opts = opts or Options()
    source = load_source(source_path)
    subs = find_submissions(submissions, source.worksheet)
    if not subs:
        raise GradeError("no submissions found (give notebook files or folders of them)")
    out = Path(out)
    out_resolved = out.resolve()
    for sub in subs:
        if out_resolved == sub.path.resolve().parent or out_resolved in sub.path.resolve().parents:
            raise GradeError(f"--out {out} contains the submission {sub.path}: the grader never writes next to "
                             "submissions; choose another folder")
    results_dir = out / "results" / _safe(source.worksheet)
    results_dir.mkdir(parents=True, exist_ok=True)
    todo = [s for s in subs if force or not _is_current(results_dir / f"{s.student}.json", source, s)]
    workers = max(1, workers or os.cpu_count() or 1)
    stats = {"submissions": len(subs), "graded": 0, "skipped": len(subs) - len(todo)}

    def work(sub: Submission) -> dict:
        try:
            result = grade_submission(source, sub, opts)
        except Exception as err:  # noqa: BLE001 - a bug of the grader must not stop the class
            message = f"internal grader error (it will be retried on the next run): {type(err).__name__}: {err}"
            result = {"student": sub.student, "worksheet": source.worksheet, "file": str(sub.path), "sha256": None,
                      "status": "grader_error", "message": message[:MAX_MESSAGE], "answers": {}, "notes": [],
                      "rows": [{"grade_id": g.grade_id, "points": 0, "max_points": g.points, "status": "grader_error",
                                "message": message[:MAX_MESSAGE]} for g in source.graded]}
        _write_atomic(results_dir / f"{sub.student}.json", json.dumps(result, indent=1))
        return result

    mpl_dir = tempfile.mkdtemp(prefix="course-grade-mpl-")
    opts.mpl_cache = mpl_dir if todo else None
    if todo:     # matplotlib builds its font cache once here, not in every sandbox
        subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env={**os.environ,
                       "MPLCONFIGDIR": mpl_dir}, capture_output=True, timeout=600, check=False)
    with futures.ThreadPoolExecutor(workers) as pool, \
            tqdm(total=len(todo), desc=f"grading {source.worksheet}", unit="notebook", disable=not progress) as bar:
        for fut in futures.as_completed([pool.submit(work, s) for s in todo]):
            r = fut.result()
            if r.get("status") == "grader_error":
                print(f"course-grade: {r['student']}: {r['message']}", file=sys.stderr)
            stats["graded"] += 1
            bar.update(1)
    shutil.rmtree(mpl_dir, ignore_errors=True)
    stats["results"], stats["students"] = write_reports(out)
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course-grade", description=__doc__.split("\n")[0])
    parser.add_argument("source", help="the instructor's solution notebook (solutions/*.ipynb)")
    parser.add_argument("submissions", nargs="+", help="students' notebooks, or folders of them")
    parser.add_argument("--out", required=True, help="folder for grades.csv, feedback/ and results/")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="submissions graded at once "
                        "(default: the number of cores)")
    parser.add_argument("--cell-timeout", type=float, default=Options.cell_timeout, help="seconds per cell")
    parser.add_argument("--timeout", type=float, default=Options.timeout, help="seconds per submission")
    parser.add_argument("--memory-mb", type=int, default=Options.memory_mb, help="memory limit of a kernel")
    parser.add_argument("--max-notebook-mb", type=float, default=Options.max_notebook_mb,
                        help="larger submitted files are not read")
    parser.add_argument("--force", action="store_true", help="regrade submissions already graded")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temporary folders (debugging)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    for name in ("cell_timeout", "timeout", "memory_mb", "max_notebook_mb", "workers"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    opts = Options(args.cell_timeout, args.timeout, args.memory_mb, args.max_notebook_mb, args.keep_temp)
    try:
        stats = grade_class(args.source, args.submissions, args.out, workers=args.workers, force=args.force,
                            opts=opts, progress=not args.quiet)
    except GradeError as err:
        print(f"course-grade: error: {err}", file=sys.stderr)
        return 2
    print(f"course-grade: {stats['graded']} graded, {stats['skipped']} already graded (use --force to regrade); "
          f"{args.out}/grades.csv, {args.out}/feedback/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
