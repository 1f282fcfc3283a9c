"""How much memory does the Gradescope autograder need besides the submission's own? Runs the bundle's
``run_autograder`` on one submission in a folder laid out like Gradescope's /autograder (as
tests/test_gradescope.py does; ``setup.sh`` is not run: this machine's Python stands in for the image's) and
samples, every 0.2 s while course-grade runs, the PSS of each process of the run (/proc/PID/smaps_rollup through
psutil: shared pages split between their users, so the sum is what the container holds).

    python bench/bench_gradescope_memory.py [--solution solutions/01_schedules.ipynb] [--submission NOTEBOOK]
                                            [--baseline GIT_REV]

The submission defaults to the solution itself (every TODO right). Prints the peak PSS of the process that
waits for course-grade (``course_utils.gradescope run``), of course-grade itself, and of every process of the run
together (the student's kernel included, which ``--memory-mb`` bounds), with the score. ``--baseline REV`` runs
the bundle of git revision REV (``git archive``: the working tree is not touched) on the same submission in the
same run, first, so that both see the same machine. Exit 1 when a run's results.json is missing.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MB = 2 ** 20


def _bundle(repo: Path, solution: Path, out: Path) -> Path:
    """The autograder zip of ``solution``, built by ``repo``'s own course_utils."""
    zip_path = out / "autograder.zip"
    subprocess.run([sys.executable, "-m", "course_utils.gradescope", str(solution), "--out", str(zip_path)],
                   check=True, capture_output=True, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    return zip_path


def _checkout(rev: str, folder: Path) -> Path:
    """Git revision ``rev`` of this repository, unpacked into ``folder`` (the working tree untouched)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev], check=True,
                             capture_output=True).stdout
    folder.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def measure(zip_path: Path, submission: Path, work: Path) -> dict:
    """Run the bundle on ``submission`` in ``work``/root; the peak PSS (MB) of each role while course-grade ran."""
    import psutil

    root = work / "root"
    (root / "results").mkdir(parents=True)
    (root / "submission").mkdir()
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(root / "source")
    worksheet = json.loads((root / "source" / "config.json").read_text())["worksheet"]
    shutil.copy(submission, root / "submission" / f"{worksheet}.ipynb")
    env = {**os.environ, "COURSE_AUTOGRADER_ROOT": str(root), "COURSE_AUTOGRADER_PYTHON": sys.executable,
           "PYTHONPATH": str(root / "source" / "course")}
    proc = subprocess.Popen(["bash", str(root / "source" / "run_autograder")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = {"waiting": 0.0, "course-grade": 0.0, "all": 0.0}
    start = time.monotonic()
    while proc.poll() is None:
        try:
            kids = [(p, " ".join(p.cmdline()) + " ") for p in psutil.Process(proc.pid).children(recursive=True)]
            if any("course_utils.grade " in cmd for _, cmd in kids):        # course-grade runs
                pss = {p.pid: p.memory_full_info().pss for p, _ in kids}
                peak["all"] = max(peak["all"], sum(pss.values()) / MB)
                for p, cmd in kids:
                    role = ("waiting" if "course_utils.gradescope" in cmd else
                            "course-grade" if "course_utils.grade " in cmd else None)
                    if role:
                        peak[role] = max(peak[role], pss[p.pid] / MB)
        except psutil.Error:        # a process ended between the listing and the reading
            pass
        time.sleep(0.2)
    results = root / "results" / "results.json"
    score = json.loads(results.read_text())["score"] if results.exists() else None
    return {**{k: round(v) for k, v in peak.items()}, "score": score, "seconds": round(time.monotonic() - start, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--solution", default="solutions/01_schedules.ipynb", help="the SOURCE of the bundle")
    parser.add_argument("--submission", help="the notebook to grade (default: the solution itself)")
    parser.add_argument("--baseline", metavar="GIT_REV", help="also measure the bundle of this git revision")
    args = parser.parse_args(argv)
    solution = (ROOT / args.solution).resolve()
    submission = Path(args.submission).resolve() if args.submission else solution
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-gs-mem-") as tmp:
        tmp = Path(tmp)
        if args.baseline:
            repo = _checkout(args.baseline, tmp / "baseline-repo")
            runs.append((f"baseline {args.baseline}", repo))
        runs.append(("current", ROOT))
        print(f"peak PSS (MB) while course-grade runs, {solution.name} graded once; {os.cpu_count()} cores")
        print(f"{'run':<22}{'waiting':>9}{'course-grade':>14}{'all':>7}{'score':>7}{'seconds':>9}")
        failed = False
        for label, repo in runs:
            work = tmp / label.replace(" ", "-")
            work.mkdir()
            got = measure(_bundle(repo, repo / solution.relative_to(ROOT), work), submission, work)
            failed = failed or got["score"] is None
            print(f"{label:<22}{got['waiting']:>9}{got['course-grade']:>14}{got['all']:>7}{str(got['score']):>7}"
                  f"{got['seconds']:>9}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
