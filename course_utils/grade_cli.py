"""The ``course-grade`` console script: ``course-grade NAME ...`` hands a subcommand to its module before anything
imports torch; any other command line is a grading run (``course_utils.grade.main``).

    course-grade SOURCE SUBMISSION... --out DIR ...     grade (imports torch: the checks' references need it)
    course-grade merge | export-lms | export-gradescope ...   (docs/grading.md)

``export-lms`` reads and writes CSV and JSON files only: through ``course_utils.grade`` it imported torch first
(``--help`` took 4.6 s here; 0.07 s now). ``merge`` still imports torch (report.html classifies failures by the
checks' catalogue of mistakes), and so does ``export-gradescope`` (it reads the solution's checks).
"""
from __future__ import annotations

import importlib
import sys

# `course-grade NAME ...` hands over to the module's main(argv): name -> module
SUBCOMMANDS = {"merge": "course_utils.grade_shards", "export-lms": "course_utils.grade_lms",
               "export-gradescope": "course_utils.gradescope"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS:
        return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
    from .grade import main as grade_main
    return grade_main(argv)


if __name__ == "__main__":
    sys.exit(main())
