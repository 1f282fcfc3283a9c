"""What one submission's start costs when the grader starts a Jupyter kernel for it (``course-grade --no-pool``,
and what the default's zygote per worker pays once per run): CPU seconds and wall seconds to start a kernel with
nbclient and run the grader's imports (torch, matplotlib with Agg, course_utils), beside those of ``import torch``
alone in a fresh interpreter. docs/grading.md quotes it ("The fast path").

    python bench/bench_kernel_start.py [--runs 3]

CPU is user + system time of the child processes (``resource.getrusage(RUSAGE_CHILDREN)``), so it counts the
kernel and whatever it starts; each run is a fresh process. Prints one row per run and the load average.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

IMPORTS = "import torch, matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot, course_utils"


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def kernel_start() -> tuple[float, float]:
    """(CPU s, wall s) of a kernel started by nbclient that runs IMPORTS, then shut down."""
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(IMPORTS)])
    cpu, t0 = _children_cpu(), time.perf_counter()
    NotebookClient(nb, kernel_name="python3", timeout=600).execute()
    return _children_cpu() - cpu, time.perf_counter() - t0


def torch_import() -> tuple[float, float]:
    """(CPU s, wall s) of ``python -c "import torch"``."""
    cpu, t0 = _children_cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return _children_cpu() - cpu, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each (default: %(default)s)")
    args = parser.parse_args(argv)
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; python {sys.version.split()[0]}")
    print("| what | run | CPU s | wall s |")
    print("|---|---|---|---|")
    for name, measure in (("kernel + grader's imports", kernel_start), ("import torch alone", torch_import)):
        for run in range(1, args.runs + 1):
            cpu, wall = measure()
            print(f"| {name} | {run} | {cpu:.1f} | {wall:.1f} |", flush=True)
    print(f"# at the end: load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
