"""How long does grading a class take? Builds N submissions of one worksheet and times ``course-grade``.

    python bench/bench_grading.py [--n 100] [--workers N] [--solution solutions/01_schedules.ipynb]
                                  [--baseline GIT_REV] [--rounds R] [--no-pool] [--json FILE]

The class mixes answers the way a real one might: 50% fully correct, 30% with one catalogued mistake
(rotating over the TODOs and over checks.MISTAKES), 20% the untouched exercise. Prints the wall time, the
time per submission, whether the points came out as expected, and the machine's load while it ran (the
machine may be shared: the 1-minute load average and the share of all cores busy, from /proc/stat).

``--no-pool`` times the current grader's slow path (a Jupyter kernel per submission) instead of its default
(a pre-imported zygote per worker forks each submission: course_utils/sandbox/pool.py).

``--baseline REV`` also times the grader of git revision REV (``git archive``: the working tree is not
touched) on the same class in the same run, alternating baseline and current run after run (``--rounds``), so
that both see the same machine. As root, both run with ``--allow-root`` where the grader has it. The class is
then built from REV's own copy of the solution (``git show REV:PATH``), since an older grader does not know a
check added since; pass ``--solution`` a file outside the repository to choose another. The run fails (exit 1)
when either grader fails or scores a submission otherwise than expected.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import nbformat  # noqa: E402

import grading_corpus as corpus  # noqa: E402


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot."""
    with open("/proc/stat") as f:
        values = [float(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def build_class(folder: Path, solution: Path, n: int) -> dict[str, float]:
    sol = nbformat.read(solution, as_version=4)
    tests = corpus.graded_checks(sol)
    full = sum(p for _, _, _, p in tests)
    expected, k = {}, 0
    for i in range(n):
        student = f"student{i:03d}"
        d = folder / student
        d.mkdir(parents=True)
        kind = i % 10
        if kind < 5:
            nb, points = sol, full
        elif kind < 8:
            gid, check, target, pts = tests[k % len(tests)]
            nb, _ = corpus.with_mistake(sol, target, check, index=k // len(tests))
            points, k = full - pts, k + 1
        else:
            nb, points = corpus.exercise_of(sol), 0
        nbformat.write(nb, d / f"{solution.stem}.ipynb")
        expected[student] = points
    return expected


BASELINE = """\
# the grader of an older checkout (argv[1]), run with this Python; its kernels import that checkout too
import sys
sys.path.insert(0, sys.argv[1])
import course_utils.grade as g
assert g.__file__.startswith(sys.argv[1]), g.__file__
if hasattr(g, "_needs_pythonpath"):     # before issue 14: the kernel finds the old package on PYTHONPATH
    g._needs_pythonpath = lambda: True
sys.exit(g.main(sys.argv[2:]))
"""


def time_grader(cmd: list[str], out: Path, expected: dict[str, float], cwd: Path | None = None) -> dict:
    load0, (busy0, total0) = os.getloadavg()[0], _cpu_times()
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    wall = time.monotonic() - start
    load1, (busy1, total1) = os.getloadavg()[0], _cpu_times()
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return {"failed": proc.returncode}
    with open(out / "grades.csv", newline="") as f:
        totals = {r["student"]: float(r["points"]) for r in csv.DictReader(f) if r["grade_id"] == "TOTAL"}
    wrong = {s: (totals.get(s), p) for s, p in expected.items() if totals.get(s) != p}
    return {"wall_s": round(wall, 1), "s_per_submission": round(wall / len(expected), 2),
            "points_as_expected": len(expected) - len(wrong), "unexpected": dict(list(wrong.items())[:10]),
            "load_avg_1min_before_after": [round(load0, 1), round(load1, 1)],
            "all_cores_busy_fraction": round((busy1 - busy0) / max(total1 - total0, 1), 2)}


def summary(runs: dict[str, list[dict]]) -> str:
    """Per grader: seconds per submission and the class's total, each round; then baseline / current."""
    lines = []
    for name, rs in runs.items():
        cells = [f"{r['s_per_submission']:.2f} s per submission ({r['wall_s']:.1f} s in all)" if "wall_s" in r
                 else f"failed ({r.get('failed')})" for r in rs]
        lines.append(f"{name:>9}: " + "; ".join(f"round {i + 1}: {c}" for i, c in enumerate(cells)))
    if "baseline" in runs:
        pairs = [(b["wall_s"], c["wall_s"]) for b, c in zip(runs["baseline"], runs["current"])
                 if "wall_s" in b and "wall_s" in c]
        if pairs:
            ratios = ", ".join(f"{b / c:.1f}x" for b, c in pairs)
            total = sum(b for b, _ in pairs) / sum(c for _, c in pairs)
            lines.append(f"  speed-up (baseline / current wall time): {ratios} by round; {total:.1f}x in all")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--workers", type=int, default=None, help="default: the grader's (number of cores)")
    default_solution = str(REPO / "solutions" / "01_schedules.ipynb")
    parser.add_argument("--solution", default=default_solution)
    parser.add_argument("--baseline", default=None, help="also time the grader of this git revision")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each grader (alternating)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--no-pool", action="store_true", help="time the current grader's --no-pool path")
    args = parser.parse_args()
    solution = Path(args.solution).resolve()
    root_flag = ["--allow-root"] if os.geteuid() == 0 else []
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        if args.baseline and solution.is_relative_to(REPO):
            rel = solution.relative_to(REPO).as_posix()
            shown = subprocess.run(["git", "-C", str(REPO), "show", f"{args.baseline}:{rel}"], capture_output=True)
            if shown.returncode != 0:
                sys.exit(f"{rel} does not exist at {args.baseline}: pass --solution a worksheet that both graders "
                         f"know ({shown.stderr.decode().strip()})")
            solution = Path(tmp) / solution.name
            solution.write_bytes(shown.stdout)
            print(f"the class is built from {args.baseline}:{rel}, which both graders know", file=sys.stderr)
        subs = Path(tmp) / "submissions"
        expected = build_class(subs, solution, args.n)
        workers = ["--workers", str(args.workers)] if args.workers else []
        graders = {"current": ([sys.executable, "-m", "course_utils.grade"],
                               root_flag + (["--no-pool"] if args.no_pool else []), None)}
        if args.baseline:
            tree = Path(tmp) / "baseline"
            tree.mkdir()
            archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline, "course_utils"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
            old_flag = root_flag if "--allow-root" in (tree / "course_utils" / "grade.py").read_text() else []
            graders = {"baseline": ([sys.executable, "-c", BASELINE, str(tree)], old_flag, tree), **graders}
        runs: dict[str, list[dict]] = {name: [] for name in graders}
        for r in range(args.rounds):
            for name, (cmd, flags, cwd) in graders.items():
                out = Path(tmp) / f"out-{name}-{r}"
                runs[name].append(time_grader([*cmd, str(solution), str(subs), "--out", str(out), "--quiet",
                                               *workers, *flags], out, expected, cwd))
        figures = {
            "submissions": args.n, "workers": args.workers or os.cpu_count(), "cores": os.cpu_count(),
            "runs": runs,
            "command": shlex.join(["python", "bench/bench_grading.py", "--n", str(args.n)] +
                                  (["--workers", str(args.workers)] if args.workers else []) +
                                  (["--solution", args.solution] if args.solution != default_solution else []) +
                                  (["--baseline", args.baseline] if args.baseline else []) +
                                  (["--rounds", str(args.rounds)] if args.rounds != 1 else []) +
                                  (["--no-pool"] if args.no_pool else [])),
        }
    print(json.dumps(figures, indent=1))
    print(summary(runs))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    failed = [name for name, rs in runs.items() if any(r.get("points_as_expected") != args.n for r in rs)]
    if failed:
        print(f"FAILED: {', '.join(failed)} did not score every submission as expected (see above)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
