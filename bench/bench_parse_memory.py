"""What the grader's own memory pays to parse a submitted notebook (``grade_files.parse_notebook``, run in the
grader's process, not in the sandbox), against the file's size: docs/grading.md quotes it beside
``--max-notebook-mb``.

    python bench/bench_parse_memory.py [--mb 16 60]

Each notebook holds one markdown cell of ASCII with one emoji at its end: Python then keeps the whole text at 4
bytes a character, the worst case of its string storage. Each size is written by one fresh interpreter and
parsed by another (Linux keeps a process's peak resident memory across fork and exec), which prints its peak
before and after the parse; the table's "x the file" is the growth over the file's size.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

WRITE = """import sys, nbformat
text = "x" * int(float(sys.argv[2]) * 2**20) + "\\U0001F600"
nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)]), sys.argv[1])
"""
PARSE = """import resource, sys
from course_utils import grade_files
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
nb = grade_files.parse_notebook(data)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(data), before * 1024, after * 1024)
"""


def measure(mb: float, folder: str) -> tuple[float, float, float]:
    """(file MiB, peak MiB before the parse, peak MiB after) for a notebook of about ``mb`` MiB."""
    path = os.path.join(folder, f"notebook_{mb:g}.ipynb")
    subprocess.run([sys.executable, "-c", WRITE, path, str(mb)], check=True)
    out = subprocess.run([sys.executable, "-c", PARSE, path], check=True, capture_output=True, text=True).stdout
    os.unlink(path)
    size, before, after = (int(v) / 2 ** 20 for v in out.split())
    return size, before, after


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, nargs="+", default=[16, 60],
                        help="notebook sizes in MiB (default: %(default)s; 16 is --max-notebook-mb's default)")
    args = parser.parse_args(argv)
    print(f"# python {sys.version.split()[0]}")
    print("| file MiB | peak MiB before the parse | after | growth MiB | x the file |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for mb in args.mb:
            size, before, after = measure(mb, folder)
            print(f"| {size:.1f} | {before:.0f} | {after:.0f} | {after - before:.0f} | {(after - before) / size:.1f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
