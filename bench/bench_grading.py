"""How long does grading a class take? Builds N submissions of one worksheet and times ``course-grade``.

    python bench/bench_grading.py [--n 100] [--workers N] [--solution solutions/01_schedules.ipynb]

The class mixes answers the way a real one might: 50% fully correct, 30% with one catalogued mistake
(rotating over the TODOs and over checks.MISTAKES), 20% the untouched exercise. Prints the wall time, the
time per submission, whether the points came out as expected, and the machine's load while it ran (the
machine may be shared: the 1-minute load average and the share of all cores busy, from /proc/stat).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--workers", type=int, default=None, help="default: the grader's (number of cores)")
    parser.add_argument("--solution", default=str(REPO / "solutions" / "01_schedules.ipynb"))
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    solution = Path(args.solution)
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        subs, out = Path(tmp) / "submissions", Path(tmp) / "out"
        expected = build_class(subs, solution, args.n)
        cmd = [sys.executable, "-m", "course_utils.grade", str(solution), str(subs), "--out", str(out)]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        load0, (busy0, total0) = os.getloadavg()[0], _cpu_times()
        start = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.monotonic() - start
        load1, (busy1, total1) = os.getloadavg()[0], _cpu_times()
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        with open(out / "grades.csv", newline="") as f:
            totals = {r["student"]: float(r["points"]) for r in csv.DictReader(f) if r["grade_id"] == "TOTAL"}
        wrong = {s: (totals.get(s), p) for s, p in expected.items() if totals.get(s) != p}
        figures = {
            "submissions": args.n, "workers": args.workers or os.cpu_count(), "cores": os.cpu_count(),
            "wall_s": round(wall, 1), "s_per_submission": round(wall / args.n, 2),
            "points_as_expected": len(expected) - len(wrong), "unexpected": dict(list(wrong.items())[:10]),
            "load_avg_1min_before_after": [round(load0, 1), round(load1, 1)],
            "all_cores_busy_fraction": round((busy1 - busy0) / max(total1 - total0, 1), 2),
            "command": " ".join(["python", "bench/bench_grading.py", f"--n {args.n}"] +
                                ([f"--workers {args.workers}"] if args.workers else [])),
        }
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0 if not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
