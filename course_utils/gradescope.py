"""Grade a worksheet on Gradescope: an autograder bundle that runs ``course-grade`` on each submission.

    course-grade export-gradescope solutions/01_schedules.ipynb --out autograder.zip [--timeout S] ...

The bundle follows Gradescope's "Autograder Specifications" (gradescope-autograders.readthedocs.io/en/latest/specs):
at the root of the zip, ``setup.sh`` (run once, as root, when Gradescope builds the image) and ``run_autograder``
(run for each submission, as root, with the student's files in /autograder/submission; it must leave
/autograder/results/results.json). Gradescope unpacks the zip into /autograder/source. Ours also holds

- ``course/``: the course package's source (``course_utils/``, ``pyproject.toml``, ``README.md``); setup.sh
  installs it with its dependencies into /opt/course-venv (the course has no public index or URL yet);
- ``worksheet/NAME.ipynb``: SOURCE, the solution notebook with its hidden tests;
- ``config.json``: the worksheet's name, the grader's limits and the visibility settings chosen at export.

``run_autograder`` calls ``python -m course_utils.gradescope run``, which finds the notebook, runs ``course-grade``
on it (one worker, ``--allow-root``: Gradescope runs it as root) and writes results.json: one test per graded
cell with its points, the check's verdict and hint as ``output``, the written answers as tests without a score
(graded by hand in Gradescope). No notebook, several notebooks, a file that is not a notebook, or a grader
that fails all give a results.json with score 0 and a message saying why; run_autograder writes one even when
Python itself cannot start. ``COURSE_AUTOGRADER_ROOT`` (default /autograder) and ``COURSE_AUTOGRADER_PYTHON``
(default /opt/course-venv/bin/python) let the same script run in a folder laid out like /autograder
(tests/test_gradescope.py). docs/grading.md says what isolation holds in Gradescope's container.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import grade

VISIBILITY = ("hidden", "after_due_date", "after_published", "visible")   # Gradescope's values
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"    # as the Makefile's TORCH=cpu: no CUDA wheels
VENV = "/opt/course-venv"
DATA = "/opt/course-data"          # COURSE_DATA_DIR in the image: the datasets setup.sh downloads (the lab's MNIST)
SKIP = {"__pycache__", ".ipynb_checkpoints", "__MACOSX"}
MAX_LISTED = 20
# Gradescope's autograder timeout (its default is 10 minutes, at most 40) must leave course-grade its own limit
# and its start: importing torch, the kernel, the pool (10 to 60 s measured here and in Docker-like runs)
START_S = 120
GRADESCOPE_MAX_TIMEOUT_S = 40 * 60
# what course-grade and this waiting process hold besides the submission's own memory (--memory-mb), with some
# room: their peak PSS while course-grade ran was 550 + 11 MB for worksheet 1, 668 + 12 MB for the lab
# (bench/bench_gradescope_memory.py; docs/grading.md, "Gradescope")
GRADER_MB = 800
WHEN = {"hidden": "Your submission was graded; its results are not shown here.",
        "after_due_date": "Your submission was graded; its results are shown after the due date.",
        "after_published": "Your submission was graded; its results are shown when the grades are published."}

SETUP_SH = """\
#!/usr/bin/env bash
# Written by `course-grade export-gradescope`. Gradescope runs it once, as root, when it builds the autograder's
# image (pick an Ubuntu 22.04 or newer base image: the course needs Python 3.10+).
set -euo pipefail
SOURCE_DIR="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"    # /autograder/source
VENV="{venv}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv python3-pip
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {{
  echo "setup.sh: the course needs Python 3.10 or newer; choose a newer Ubuntu base image in Gradescope" >&2; exit 1; }}
python3 -m venv "$VENV"
"$VENV/bin/pip" install --upgrade pip
{torch_line}
"$VENV/bin/pip" install "$SOURCE_DIR/course"
# fail the image's build now rather than at the first submission
"$VENV/bin/python" -c "import course_utils.grade, course_utils.gradescope, nbclient, ipykernel, torch, matplotlib"
# MNIST, which the lab trains on (and lessons' cells read), while the build has the internet: without it the lab's
# data cell raises in every submission and each student reads a note about it (the TODOs' points do not depend on it)
mkdir -p "{data}"
"$VENV/bin/python" -c "import torchvision
for train in (True, False): torchvision.datasets.MNIST('{data}', train=train, download=True)" || \
  echo "setup.sh: MNIST could not be downloaded into {data}: the lab's feedback will say its data was missing" >&2
chmod +x "$SOURCE_DIR/run_autograder"
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Written by `course-grade export-gradescope`. Gradescope runs it for each submission, as root, in /autograder.
ROOT="${COURSE_AUTOGRADER_ROOT:-/autograder}"
PY="${COURSE_AUTOGRADER_PYTHON:-/opt/course-venv/bin/python}"
export COURSE_DATA_DIR="${COURSE_DATA_DIR:-/opt/course-data}"     # where setup.sh put MNIST
cd "$ROOT" || exit 1    # Gradescope's working directory; also keeps another checkout off `python -m`'s path
mkdir -p "$ROOT/results"
rm -f "$ROOT/results/results.json"
"$PY" -m course_utils.gradescope run --root "$ROOT" || echo "run_autograder: the grader exited with status $?"
if [ ! -s "$ROOT/results/results.json" ]; then
  # the grader could not even start (a broken image?): Gradescope still gets a result, and says why
  printf '%s\\n' '{"score": 0, "output_format": "text", "output": "The autograder failed before it could grade \
this submission (the autograder output, which your instructor sees, says why). This is not a verdict on your \
work: ask your instructor to rerun it.", "tests": []}' > "$ROOT/results/results.json"
fi
exit 0
"""


# ------------------------------------------------------------------ the bundle
def _package_files(package: Path):
    """(path in the zip, file) for the course package's source and its package data, no caches."""
    for path in sorted(package.rglob("*")):
        if path.is_file() and not (SKIP & set(path.relative_to(package).parts)) and path.suffix != ".pyc":
            yield f"course/course_utils/{path.relative_to(package).as_posix()}", path


def build_bundle(source_path, out, *, opts: "grade.Options | None" = None, visibility: str = "visible",
                 test_visibility: str = "visible", stdout_visibility: str = "hidden",
                 torch_index: str = TORCH_CPU_INDEX) -> Path:
    """Write the autograder zip for SOURCE to ``out``; returns its path. Raises GradeError for a bad SOURCE."""
    from . import grade
    source = grade.load_source(source_path)       # a SOURCE without graded cells fails here, not on Gradescope
    for name, value in (("visibility", visibility), ("test visibility", test_visibility),
                        ("stdout visibility", stdout_visibility)):
        if value not in VISIBILITY:
            raise grade.GradeError(f"{name} {value!r} is not one of Gradescope's: {', '.join(VISIBILITY)}")
    opts = opts or grade.Options()
    root = grade.PACKAGE_DIR.parent
    config = {"worksheet": source.worksheet, "source": f"worksheet/{source.path.name}",
              "source_sha256": source.sha256, "visibility": visibility, "test_visibility": test_visibility,
              "stdout_visibility": stdout_visibility,
              "written": [g.grade_id for g in source.graded if g.kind == "manual"],
              "options": {"cell_timeout": opts.cell_timeout, "timeout": opts.timeout, "memory_mb": opts.memory_mb,
                          "disk_mb": opts.disk_mb, "max_processes": opts.max_processes,
                          "max_notebook_mb": opts.max_notebook_mb}}
    torch_line = (f'"$VENV/bin/pip" install torch torchvision --index-url {torch_index}' if torch_index
                  else "# torch comes from PyPI with the course's other dependencies")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        def add(name: str, data: bytes, mode: int = 0o644):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))   # the same bytes for the same input
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
        add("setup.sh", SETUP_SH.format(venv=VENV, torch_line=torch_line, data=DATA).encode(), 0o755)
        add("run_autograder", RUN_AUTOGRADER.encode(), 0o755)
        add("config.json", (json.dumps(config, indent=1) + "\n").encode())
        add(config["source"], source.path.read_bytes())
        for name in ("pyproject.toml", "README.md", "LICENSE"):     # what pyproject.toml names (readme,
            add(f"course/{name}", (root / name).read_bytes())       # license-files): setuptools needs them
        for name, path in _package_files(grade.PACKAGE_DIR):
            add(name, path.read_bytes())
    out.write_bytes(buf.getvalue())
    return out


# ------------------------------------------------------------------ run_autograder
def _shown(name: str) -> str:
    """A file name of the submission as its messages show it: one line (a name with line breaks wrote a fake
    "8 / 8 points" paragraph into a 0-point result), valid UTF-8 (a name of other bytes, as a GitHub submission
    can hold, made the results.json unwritable: no feedback, and the same on every rerun), at most 200
    characters."""
    from .grade_files import plain
    return plain(name)[:200]


def find_notebook(submission: Path, worksheet: str) -> tuple[Path | None, str]:
    """The notebook to grade in ``submission``, by course-grade's rule (``grade.pick_notebook``: hidden folders
    skipped, at most 4 folder levels down, the shallowest one named like the worksheet, else the only one), or
    None with a message for the student."""
    from .grade_files import pick_notebook
    path, found, shallow = pick_notebook(submission, worksheet) if submission.is_dir() else (None, [], [])
    rel = [_shown(p.relative_to(submission).as_posix()) for p in found]
    if path is not None:
        others = [r for p, r in zip(found, rel) if p != path]
        return path, (f"Graded {_shown(path.relative_to(submission).as_posix())}; ignored the other notebooks: "
                      + ", ".join(others)[:1000]) if others else ""
    if found:
        why = (f"{len(shallow)} of them named {worksheet}.ipynb in folders of the same depth" if shallow
               else f"none named {worksheet}.ipynb")
        return None, (f"Your submission holds {len(found)} notebooks ({', '.join(rel[:MAX_LISTED])}), {why}: "
                      f"submit only your {worksheet}.ipynb. 0 points.")
    try:
        held = sorted(_shown(e.name) for e in os.scandir(submission) if not e.name.startswith(".")
                      and e.name not in SKIP)
    except OSError:
        held = []
    listed = ", ".join(held[:MAX_LISTED]) or "no files"
    return None, (f"No notebook (.ipynb file) in your submission (nor 4 folder levels below; it holds: {listed}): "
                  f"submit your {worksheet}.ipynb. 0 points.")


def to_results(result: dict, config: dict, names: dict[str, str] | None = None, *, note: str = "",
               seconds: float | None = None) -> dict:
    """Gradescope's results.json (a dict) from one course-grade result (DIR/results/<worksheet>/<student>.json)."""
    from .grade import cell_error_notes, monkeypatch_notes
    from .grade_feedback import plain
    from .grade_report import written_answer
    names = names or {}
    tests, score, auto_max, manual = [], 0.0, 0.0, 0.0
    for number, row in enumerate(result["rows"], 1):
        gid = row["grade_id"]
        test = {"name": names.get(gid, gid), "number": str(number), "output": plain(row["message"]),
                "visibility": config.get("test_visibility", "visible"), "tags": [row["status"]],
                "extra_data": {"grade_id": gid, "status": row["status"]}}
        # a written answer is graded by hand, in Gradescope, whatever its row says (blank, deleted, a file not
        # read): scored here, it made the lab's automatic maximum 10 where the docs set 7 (an instructor's pass)
        written = gid in config["written"] if "written" in config else written_answer(row)
        if row["points"] == "" or written:
            manual += row["max_points"]
            test["name"] += f" (written answer, {row['max_points']:g} points graded by hand)"
            test["output"] = ("Your written answer is graded by the instructor." if row["status"] == "manual"
                              else plain(row["message"]))
        else:
            score += row["points"]
            auto_max += row["max_points"]
            test.update(score=float(row["points"]), max_score=float(row["max_points"]),
                        status="passed" if row["status"] == "pass" else "failed")
        tests.append(test)
    lines = [f"Worksheet {result.get('worksheet', config['worksheet'])}: {score:g} / {auto_max:g} points graded "
             "automatically" + (f"; {manual:g} more points for written answers, graded by hand." if manual else ".")]
    lines += [plain(text) for text in (result.get("message"), note) if text]
    errors = [e for e in result.get("cell_errors") or [] if isinstance(e, dict)]    # about the student's notebook:
    lines += [plain(f"Note: {text}") for text in cell_error_notes(errors, result["rows"])]     # shown as in feedback
    changed = [f for f in result.get("monkeypatches") or [] if isinstance(f, dict) and {"cell", "what"} <= set(f)]
    lines += [plain(f"Note: {text}") for text in monkeypatch_notes(changed)]
    later = WHEN.get(config.get("test_visibility", "visible"))
    if later:       # tests hidden for now: Gradescope hides the score, and so must the output every student sees
        lines = [later]
    out = {"score": score, "output": "\n".join(lines), "output_format": "text", "test_output_format": "text",
           "test_name_format": "text", "visibility": config.get("visibility", "visible"),
           "stdout_visibility": config.get("stdout_visibility", "hidden"), "tests": tests,
           "extra_data": {"course_grade": {k: result.get(k) for k in ("worksheet", "status", "sha256",
                                                                     "protections", "notes", "cell_errors",
                                                                     "monkeypatches")}}}
    if seconds is not None:
        out["execution_time"] = round(seconds)
    return out


def _no_grade(config: dict, message: str, seconds: float) -> dict:
    return {"score": 0.0, "output": message, "output_format": "text", "execution_time": round(seconds),
            "visibility": config.get("visibility", "visible"),
            "stdout_visibility": config.get("stdout_visibility", "hidden"), "tests": []}


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    from .grade_files import valid_text         # a lone surrogate anywhere must not leave Gradescope without results
    tmp.write_text(valid_text(json.dumps(data, indent=1, ensure_ascii=False)) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def run(root) -> dict:
    """Grade the submission in ``root``/submission (``root`` laid out like Gradescope's /autograder) and write
    ``root``/results/results.json; returns it. Prints, for the instructor only (stdout), what held."""
    start = time.monotonic()
    root = Path(root)
    results = root / "results" / "results.json"
    config = {"worksheet": "?"}
    try:
        config = json.loads((root / "source" / "config.json").read_text(encoding="utf-8"))
        data = _grade(root, config, start)
    except Exception as err:  # noqa: BLE001 - whatever happens, Gradescope gets a results.json that says why
        print(f"course-grade gradescope: internal error: {type(err).__name__}: {err}")
        data = _no_grade(config, "The autograder failed on this submission (an error of the grader, not a verdict "
                         f"on your work: {type(err).__name__}); ask your instructor to rerun it.",
                         time.monotonic() - start)
    _write_json(results, data)
    print(f"results.json: score {data['score']:g}; {len(data['tests'])} tests")
    return data


def _grade(root: Path, config: dict, start: float) -> dict:
    notebook, note = find_notebook(root / "submission", config["worksheet"])
    print(f"worksheet {config['worksheet']}: " + (f"grading {_shown(str(notebook))}" if notebook else note))
    if notebook is None:        # answered without starting course-grade: a few seconds
        return _no_grade(config, note, time.monotonic() - start)
    # this process waits while course-grade runs: it reads the submission with grade_files alone, and imports
    # the grader (and torch, hundreds of MB in a container of Gradescope's size) only once course-grade is done
    from .grade_files import MAX_NOTEBOOK_MB, Malformed, parse_notebook, read_submission
    o = config.get("options", {})
    try:                        # a file that is no notebook: course-grade's message, without starting it
        parse_notebook(read_submission(notebook, float(o.get("max_notebook_mb", MAX_NOTEBOOK_MB))))
    except Malformed as err:
        return _no_grade(config, f"{err} (0 points)", time.monotonic() - start)
    source_path = root / "source" / config["source"]
    print(f"course_utils from {Path(__file__).resolve().parent}")
    out = Path(tempfile.mkdtemp(prefix="course-gradescope-"))
    try:
        cmd = [sys.executable, "-m", "course_utils.grade", str(source_path), str(notebook), "--out", str(out),
               "--workers", "1", "--quiet", "--force"]
        for key, value in o.items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        if os.geteuid() == 0:
            cmd.append("--allow-root")      # Gradescope runs us as root (docs/grading.md: what that means)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=float(o.get("timeout", 900)) + 900)
        # course-grade's log, less the lines naming its output folder, removed below (an instructor looked for it)
        log = "\n".join(line for line in (proc.stdout[-2000:] + proc.stderr[-4000:]).splitlines()
                         if str(out) not in line)
        print(log)
        found = sorted((out / "results").glob("*/*.json"))
        from . import grade
        # (EXIT_NO_VERDICT: the one result is a grader error, which the student reads below)
        if proc.returncode not in (0, grade.EXIT_NO_VERDICT) or len(found) != 1:
            return _no_grade(config, f"The autograder could not grade this submission (course-grade exit status "
                             f"{proc.returncode}): an error of the grader, not a verdict on your work; ask your "
                             "instructor to rerun it.", time.monotonic() - start)
        result = json.loads(found[0].read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if result.get("status") == "grader_error":     # "retried on the next run" does not happen here: no verdict
        return _no_grade(config, "The autograder could not grade this submission (an error of the grader, not a "
                         "verdict on your work); ask your instructor to rerun it.", time.monotonic() - start)
    source = grade.load_source(source_path)
    names = {g.grade_id: f"{g.grade_id}: {g.target}" if g.target else g.grade_id for g in source.graded}
    for key, value in (result.get("protections") or {}).items():
        print(f"held: {key}: {value}")
    for text in result.get("notes") or []:
        print(f"note: {text}")
    # the time shown is without the second run's (grade_callees): its length is the student's code's, beside the
    # course's answer to a TODO it calls
    second = result.get("second_run_seconds")
    second = second if isinstance(second, (int, float)) and not isinstance(second, bool) else 0
    return to_results(result, config, names, note=note, seconds=max(time.monotonic() - start - second, 0))


# ------------------------------------------------------------------ command line
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["run"]:         # what run_autograder calls
        parser = argparse.ArgumentParser(prog="python -m course_utils.gradescope run")
        parser.add_argument("--root", default=os.environ.get("COURSE_AUTOGRADER_ROOT", "/autograder"))
        run(parser.parse_args(argv[1:]).root)
        return 0
    from . import grade
    parser = argparse.ArgumentParser(prog="course-grade export-gradescope", description=__doc__.split("\n")[0])
    parser.add_argument("source", help="the instructor's solution notebook (solutions/*.ipynb)")
    parser.add_argument("--out", required=True, help="the zip to write (autograder.zip), to upload to Gradescope")
    parser.add_argument("--timeout", type=float, default=480, help="seconds per submission (default 480: set the "
                        f"assignment's autograder timeout in Gradescope to at least this + {START_S}, the grader's "
                        "start; Gradescope's default is 600)")
    parser.add_argument("--memory-mb", type=int, default=2048, help="memory of a submission (default 2048: the "
                        f"container needs about {GRADER_MB} MB more, for the grader itself)")
    grade.add_limit_options(parser)
    parser.add_argument("--visibility", default="visible", choices=VISIBILITY,
                        help="when students see the results (Gradescope's top-level visibility)")
    parser.add_argument("--test-visibility", default="visible", choices=VISIBILITY,
                        help="when students see each TODO's verdict and hint")
    parser.add_argument("--stdout-visibility", default="hidden", choices=VISIBILITY,
                        help="the grader's log (what isolation held): instructors only by default")
    parser.add_argument("--torch-index", default=TORCH_CPU_INDEX, help="where setup.sh installs torch from "
                        "(default: PyTorch's CPU-only wheels; '' for PyPI's default)")
    args = parser.parse_args(argv)
    for name in ("cell_timeout", "timeout", "memory_mb", "disk_mb", "max_processes", "max_notebook_mb"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    opts = grade.Options(cell_timeout=args.cell_timeout, timeout=args.timeout, memory_mb=args.memory_mb,
                         disk_mb=args.disk_mb, max_processes=args.max_processes, max_notebook_mb=args.max_notebook_mb)
    try:
        path = build_bundle(args.source, args.out, opts=opts, visibility=args.visibility,
                            test_visibility=args.test_visibility, stdout_visibility=args.stdout_visibility,
                            torch_index=args.torch_index)
    except (grade.GradeError, OSError) as err:
        print(f"course-grade export-gradescope: error: {err}", file=sys.stderr)
        return 2
    print(f"course-grade export-gradescope: wrote {path} ({path.stat().st_size / 2 ** 20:.1f} MB); upload it as "
          "the assignment's autograder (docs/grading.md, 'Gradescope'), and in its settings give it an autograder "
          f"timeout of at least {args.timeout + START_S:g} s and a container of at least "
          f"{(args.memory_mb + GRADER_MB) / 1024:.1f} GB (a submission killed by Gradescope gets no feedback)")
    if args.timeout + START_S > GRADESCOPE_MAX_TIMEOUT_S:
        print(f"course-grade export-gradescope: warning: --timeout {args.timeout:g} leaves no room in Gradescope's "
              f"longest autograder timeout ({GRADESCOPE_MAX_TIMEOUT_S // 60} minutes) for the grader's start: use "
              f"at most {GRADESCOPE_MAX_TIMEOUT_S - START_S}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
