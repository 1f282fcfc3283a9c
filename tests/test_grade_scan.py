"""The grader's static look at a student's cells (course_utils/grade_scan.py): what they change of torch, numpy,
builtins and course_utils is named, and nothing of the course's own notebooks is."""
from __future__ import annotations

import ast
import tempfile
import types
from pathlib import Path

import pytest

from course_utils import grade, grade_scan
from course_utils.grade_scan import MAX_CELL, monkeypatches

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


LOCKED = ("locked", "import torch\nimport numpy as np\nfrom course_utils.checks import CHECKS", False)


def _named(code: str) -> list[str]:
    """What one student cell, after the course's locked imports, is named for."""
    return [f["what"] for f in monkeypatches([LOCKED, ("c", code, True)])]


# ------------------------------------------------------------------ every form of target
@pytest.mark.parametrize("code, what", [
    ("np.allclose = lambda *a, **k: True", "numpy.allclose"),                                  # numpy is watched
    ("from course_utils import checks as c\nc.CHECKS['q_sample'].call = f",                    # from-import with as
     "course_utils.checks.CHECKS['q_sample'].call"),
    ("setattr(__builtins__, 'print', f)", "builtins.print"),                                 # setattr on builtins
    ("torch.equal, x = f, 1", "torch.equal"),                                                  # tuple unpacking
    ("[x, torch.equal] = 1, f", "torch.equal"),                                                # list unpacking
    ("torch.equal: object = f", "torch.equal"),                                                # annotated assignment
    ("torch.__dict__['equal'] = f", "torch.__dict__['equal']"),                               # an item, not attribute
    ("__builtins__['print'] = f", "builtins['print']"),
])
def test_each_form_of_assignment_is_named(code, what):
    """Every kind of target the scan reads (imports with and without ``as``, tuple, list, annotated, item)."""
    assert _named(code) == [what]


def test_what_the_course_s_own_cells_change_is_not_named():
    """Only the student's own cells are read for changes; a locked cell of the course is not the student's doing
    (tests/test_grade_scan.py's cell locked2 comes 11th, past MAX_FOUND, so it cannot see this)."""
    assert monkeypatches([("locked", "import torch\ntorch.equal = None", False)]) == []


def test_a_target_changed_twice_in_a_cell_is_named_once():
    # "one per cell and target" (monkeypatches' docstring): two assignments make one record, not two
    assert _named("torch.equal = f\ntorch.equal = g") == ["torch.equal"]


def test_a_long_target_is_cut_to_120_characters():
    # the record is a reading aid for a report; a dotted path of 6 + 200 characters is cut to 120
    assert [len(w) for w in _named("torch." + "a" * 200 + " = 1")] == [120]


@pytest.mark.parametrize("code", ["setattr()", "delattr(torch)", "setattr(*args)"])
def test_setattr_with_too_few_arguments_does_not_break_the_scan(code):
    """Valid Python (a TypeError when run): the grader must not crash on it, nor on the next cell."""
    found = monkeypatches([LOCKED, ("c", code, True), ("d", "torch.equal = f", True)])
    assert found[-1] == {"cell": "d", "what": "torch.equal"}


def test_a_cell_of_exactly_max_cell_characters_is_read():
    """The limit is on cells *over* MAX_CELL: a cell of exactly MAX_CELL characters is parsed."""
    line = "torch.equal = f\n"
    cell = line + "#" * (MAX_CELL - len(line))         # len(cell) == MAX_CELL
    assert len(cell) == MAX_CELL
    assert _named(cell) == ["torch.equal"]


def test_a_large_cell_of_the_course_is_not_named():
    """Only the student's own cells are named when too large to read; a locked course cell is not theirs."""
    big = "x = 1\n" * (MAX_CELL // len("x = 1\n") + 1)          # just over MAX_CELL
    assert monkeypatches([("locked", big, False), ("c", "import torch\ntorch.equal = f", True)]) == [
        {"cell": "c", "what": "torch.equal"}]


def test_magics_and_shell_lines_are_blanked_not_the_whole_cell():
    """A ``!pip`` line or an indented ``%time`` in a cell must not make the scan skip the cell's other lines."""
    assert _named("!pip install tqdm\ntorch.equal = f") == ["torch.equal"]
    assert _named("if True:\n    x = 1\n    %time y = 2\ntorch.equal = f") == ["torch.equal"]


def test_cells_that_do_not_parse_are_skipped_without_crashing():
    """A 40 kB attribute chain (RecursionError in ast.parse, under MAX_CELL) and a lone surrogate (a
    UnicodeEncodeError, a ValueError) are not Python the scan can read: skipped, the next cell is read."""
    deep = "a" + ".b" * 20_000                      # 40,001 characters < MAX_CELL = 65,536
    surrogate = 'x = "\ud800"'
    for bad in (deep, surrogate):
        assert monkeypatches([LOCKED, ("bad", bad, True), ("d", "torch.equal = f", True)]) == [
            {"cell": "d", "what": "torch.equal"}]


def test_parsing_holds_the_lock_and_retries_once_on_the_race(monkeypatch):
    """CPython 3.11 before 3.11.8 may raise SystemError from ast.parse when two threads parse at once: the scan
    parses under its lock, and retries once when the SystemError comes anyway."""
    held = []

    def racy_parse(code, *args, **kwargs):
        held.append(grade_scan._PARSE_LOCK.locked())
        if len(held) == 1:
            raise SystemError("AST constructor recursion depth mismatch")
        return ast.parse(code, *args, **kwargs)

    scan_ast = types.ModuleType("ast")          # grade_scan's own view of ast: pytest's ast stays the real one
    scan_ast.__dict__.update(vars(ast), parse=racy_parse)
    monkeypatch.setattr(grade_scan, "ast", scan_ast)
    assert monkeypatches([("c", "import torch\ntorch.equal = f", True)]) == [{"cell": "c", "what": "torch.equal"}]
    assert held == [True, True]     # the failed parse and its one retry, both under the lock


# ------------------------------------------------------------------ forms without exec or getattr
@pytest.mark.parametrize("code", [
    "t = torch\nt.equal = lambda a, b: True",                       # an alias by plain assignment
    "for torch.equal in [f]:\n    pass",                            # a for-loop target
    "[0 for torch.equal in [f]]",                                   # a comprehension's target
    "with nullcontext(f) as torch.equal:\n    pass",                # a with ... as target
    "x, *torch.equal = 1, f",                                       # a starred target
    "(x, (torch.equal, y)) = 1, (f, 2)",                            # a nested tuple target
    "torch.equal = f\nfiles = !ls",                                 # IPython syntax elsewhere: cell not parsed
    "torch.equal = f\nhere = %pwd",
    "torch.equal = f\ntorch.equal?",
    "if True:\n    %time x = 1\ntorch.equal = f",                   # a block whose only line is a magic
    "torch.backends.cudnn.torch.equal = f",                         # torch reached through the allowed prefix
    "vars(torch)['equal'] = f",
    "object.__setattr__(torch, 'equal', f)",
    "from torch import *\nTensor.add = f",
    "%%time\ntorch.equal = f",                                      # a cell magic's body runs as Python
    "%%capture out\nimport torch as T\nT.equal = f",
    "torch.__setattr__('equal', f)",
    "c = CHECKS['q_sample']\nc.call = f",                          # an alias of an item
    "(t := torch).equal = f",                                       # an assignment expression
    "if (t := torch):\n    t.equal = f",
    "import sys\nsys.modules['torch'].equal = f",                   # torch handed out by sys or importlib
    "import sys as s\nm = s.modules\nm['torch.nn'].Module = f",
    "__import__('torch').equal = f",
    "import importlib\nimportlib.import_module('course_utils.checks').CHECKS.clear = f",
    "from importlib import import_module\nsetattr(import_module('numpy'), 'allclose', f)",
])
def test_simple_monkeypatches_without_exec_or_getattr_are_named(code):
    """Each cell changes torch in the kernel (IPython runs ``!ls``, ``%pwd`` and ``x?``; torch.backends.cudnn
    imports torch, so ``cudnn.torch`` is torch) with neither exec nor a getattr chain; none was named before
    (the student was not among those who need attention)."""
    assert [f["cell"] for f in monkeypatches([LOCKED, ("c", code, True)])] == ["c"]


# ------------------------------------------------------------------ values the scan cannot follow
@pytest.mark.parametrize("code, what", [
    # a red-team student's cell (2026-12-06): each of these changed torch or numpy in the kernel, none was named
    ("def p(m, v):\n    m.allclose = v\np(torch, f)", "m.allclose"),                     # a function's parameter
    ("(lambda m, n: setattr(m, n, None))(torch, 'allclose')", None),                # built from strings: escapes
    ("type(torch.zeros(1)).__eq__ = f", "torch.zeros().__class__.__eq__"),
    ("np.zeros(1).__class__.__eq__ = f", "numpy.zeros().__class__.__eq__"),
    ("mods = [torch]\nmods[0].allclose = f", "mods[0].allclose"),
    ("for m in (torch,):\n    m.allclose = f", "m.allclose"),
    ("[setattr(m, 'equal', None) for m in [torch]]", "m.equal"),
    ("torch.__dict__.update(allclose=f)", "torch.__dict__.update(allclose=f)"),
    ("vars(np).update(allclose=f)", "vars(np).update(allclose=f)"),
    ("vars(torch).setdefault('new', f)", "vars(torch).setdefault('new', f)"),
    ("d = vars(torch)\nd.update(x=f)", "d.update(x=f)"),
    ("c = list(CHECKS.values())[0]\nc.call = f", "c.call"),
    ("import inspect\ninspect.getmodule(torch.zeros).equal = f", "inspect.getmodule(torch.zeros).equal"),
    ("t = torch.zeros(1)\ntype(t).__bool__ = f", "type(t).__bool__"),
])
def test_changes_through_values_the_scan_cannot_follow_are_named_by_what_they_change(code, what):
    """The scan follows names, not values: a module handed to a function, kept in a list or a loop variable, a
    tensor's class reached through a call. The attributes the harvest and the comparisons rely on (allclose,
    equal, a check's call, a dunder such as __eq__) are named on whatever object they are set; a module's
    __dict__ changed by update or setdefault too. Code built from strings (setattr with a name passed in) still
    escapes, as docs/grading.md says."""
    assert _named(code) == ([what] if what else [])


@pytest.mark.parametrize("code", [
    "x = torch.zeros(3)\nx[0] = 1",                         # a tensor of the student's: no alias of torch
    "x = np.zeros(3)\nx[1:] = 2.0",
    "class Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.equal = 1",
    "def f(x):\n    return x\nf.__doc__ = 'doc'",                # a dunder that only describes
    "model = torch.nn.Linear(2, 2)\nmodel.weight.data = torch.zeros(2, 2)",
    "cfg = {}\ncfg.update(lr=1e-3)",
    "results = {}\nresults.setdefault('a', []).append(1)",
    "class Sim:\n    def __init__(self):\n        self.events = []\n        self.events.append(1)",
    "sum = 0\nmax = 3\ninput = torch.zeros(2)",               # a builtin's name for a variable: no hook now
])
def test_a_student_s_own_objects_are_not_named(code):
    assert _named(code) == []


def test_a_star_import_of_a_course_module_is_resolved_whether_or_not_a_verdict_loaded_it(monkeypatch):
    """course_utils.analytic is first imported by a ddim_sample_loop verdict: a star import from it was resolved
    only for the students graded after the first such verdict, so two identical notebooks got different notes
    (the order of the class decided). The scan now imports the course's module itself."""
    import sys

    import course_utils
    import course_utils.analytic
    monkeypatch.setattr(course_utils, "analytic", course_utils.analytic)   # the import below rebinds it: put back
    cells = [("cell A", "from course_utils.analytic import *\n"
                        "GaussianMixtureEps.forward = lambda self, x, t, y=None: 0 * x\n", True)]
    loaded = monkeypatches(cells)
    monkeypatch.delitem(sys.modules, "course_utils.analytic")
    fresh = monkeypatches(cells)
    assert loaded == fresh and any("course_utils.analytic.GaussianMixtureEps.forward" in str(f) for f in fresh), fresh


@pytest.mark.parametrize("code, what", [
    ("get_ipython().input_transformers_post.append(f)", "get_ipython().input_transformers_post"),
    ("ip = get_ipython()\nip.ast_transformers.insert(0, t)", "ip.ast_transformers"),
    ("get_ipython().events.register('pre_run_cell', f)", "get_ipython().events"),
    ("__builtins__ = dict(vars(__import__('builtins')), exec=f)", "__builtins__"),
    ("import sys\nsys.modules.update({'course_utils.checks': m})", "sys.modules.update({'course_utils.checks': m})"),
    ("import sys\nsys.meta_path.insert(0, finder)", "sys.meta_path.insert(0, finder)"),
])
def test_hooks_on_later_cells_are_named_as_such(code, what):
    """What acts on the code of later cells, the grader's harvest cells among them: an input transformer rewrote
    the harvest cell's source (the red team's second pass: 8/8 for two catalogued mistakes, nothing named). Named
    as a hook, with a note that does not say it changes no verdict."""
    found = monkeypatches([("c", code, True)])
    assert [(f["what"], f.get("kind")) for f in found] == [(what, "hook")]
    notes = grade.monkeypatch_notes(found)
    assert len(notes) == 1 and "acts on the code of every later cell" in notes[0] and "no verdict" not in notes[0]
