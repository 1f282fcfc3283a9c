"""``python -m course_utils.sandbox JOBDIR``: the child half (``runner``), started the way it used to be."""
import sys

from .runner import run

sys.exit(run(sys.argv[1]))
