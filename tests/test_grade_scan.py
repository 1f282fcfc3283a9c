"""The grader's static look at a student's cells (course_utils/grade_scan.py): what they change of torch, numpy,
builtins and course_utils is named, and nothing of the course's own notebooks is."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from course_utils import grade
from course_utils.grade_scan import monkeypatches

REPO = Path(__file__).resolve().parents[1]


def test_changes_of_the_graders_tools_are_named():
    cells = [
        ("locked", "import torch\nfrom course_utils.checks import check_q_sample\nimport numpy as np", False),
        ("c1", "import course_utils.checks.framework as fw\nfw.changed_input = lambda *a: None\n"
               "torch.equal = lambda a, b: True", True),
        ("c2", "from course_utils.checks import CHECKS\nCHECKS['q_sample'].call = f\n"
               "setattr(torch.Tensor, 'mul_', g)\n__builtins__.print = p", True),
        ("c3", "torch.backends.cudnn.benchmark = True\nx = torch.zeros(3)\nx[0] = 1\n%matplotlib inline\n"
               "np.random.seed(0)\nplt.rcParams['a'] = 1\nself.w = torch.nn.Parameter(x)", True),
        ("c4", "import builtins\nbuiltins.open = None\ndel torch.nn.functional.mse_loss\ncheck_q_sample.x = 1",
         True),
        ("c5", "def f(:\n", True),                                                  # does not parse: skipped
        ("c6", "import course_utils.checks.ws01_schedules\ncourse_utils.checks.ws01_schedules.BETA_ATOL *= 1e6\n"
               "delattr(torch, 'equal')", True),                      # a tolerance widened in place; a removal
        ("locked2", "torch.equal = None", False),                                   # not the student's
    ]
    assert [(f["cell"], f["what"]) for f in monkeypatches(cells)] == [
        ("c1", "course_utils.checks.framework.changed_input"), ("c1", "torch.equal"),
        ("c2", "course_utils.checks.CHECKS['q_sample'].call"), ("c2", "builtins.print"),
        ("c2", "torch.Tensor.mul_"),
        ("c4", "builtins.open"), ("c4", "torch.nn.functional.mse_loss"), ("c4", "course_utils.checks.check_q_sample.x"),
        ("c6", "course_utils.checks.ws01_schedules.BETA_ATOL"), ("c6", "torch.equal")]


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in (REPO / "solutions").glob("*.ipynb")))
def test_the_solutions_change_nothing_they_should_not(path):
    """No false alarm on honest work: every solution, graded as a submission, changes nothing of the grader's."""
    source = grade.load_source(REPO / path)
    nb = grade.parse_notebook((REPO / path).read_bytes())
    run_nb, _ = grade.build_run_notebook(source, nb, Path(tempfile.mkdtemp()))
    assert monkeypatches([(str(i), c["source"], c["metadata"]["course_grade"]["role"] == "student")
                          for i, c in enumerate(run_nb["cells"])]) == []


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in (REPO / "notebooks").glob("*.ipynb")))
def test_the_lessons_code_changes_nothing_it_should_not(path):
    """The lessons' cells, read as a student's: none is flagged (a student copies from them)."""
    nb = grade.parse_notebook((REPO / path).read_bytes())
    assert monkeypatches([(str(i), c["source"], True) for i, c in enumerate(nb["cells"])
                          if c["cell_type"] == "code"]) == []


def test_a_cell_too_large_to_read_is_named_not_parsed():
    """Parsing costs ~380 bytes per byte of code in the grader's own memory: a 64 MB notebook of one-line
    assignments would take 24 GB. A cell over 64 kB, or code past 1 MB, is named instead of read."""
    import resource
    huge = "a.b = 1\n" * 1_000_000                  # 7.6 MB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    found = monkeypatches([("big", huge, True), ("next", "import torch\ntorch.equal = None", True)])
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024       # kB: parsed nothing big
    assert found[0]["cell"] == "big" and found[0]["what"].startswith("(not read: a cell of 7812 kB")
    assert found[1] == {"cell": "next", "what": "torch.equal"}
    notes = grade.monkeypatch_notes(found)
    assert notes[0].startswith("big was not read by the grader's check of what the code changes (a cell of 7812 kB")
    assert notes[1].startswith("next changes `torch.equal`, which the course's tools rely on")
    many = [(f"c{i}", "x = 1\n" * 10_000, True) for i in range(30)]         # 60 kB each, 1.8 MB in all
    assert [f["cell"] for f in monkeypatches(many)] == [f"c{i}" for i in range(17, 27)]   # past 1 MB; 10 at most
