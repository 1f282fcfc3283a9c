"""The ``course_utils`` a sandboxed kernel imports: a copy in which the worksheet's answers are out of reach.

The verdict is computed in the grader, so the kernel never needs a reference. ``build`` copies the package
once per grading run and, in the copy:

- replaces the body of each package function that a graded TODO of the worksheet re-implements
  (``PACKAGE_TARGETS``: ``linear_beta_schedule`` -> ``NoiseSchedule.linear``, ...) by
  ``raise PermissionError("... is hidden while grading ...")``;
- in every module of ``checks/`` but the framework, keeps what a harvest runs (each check's ``call``, and
  what it uses, across modules) and stubs the rest the same way: the ``ref_*`` references, the cases (the
  grader sends them as data: the lab's use the reference ``diffusion_schedule``), the diagnoses, the
  catalogued mistakes (whose variants with every switch off are right answers); ``MISTAKES`` is empty. In the
  kernel, ``verdict`` and ``run_check`` say "judged by the grader" and ``ready`` skips.

The sandbox then puts the copy first on the kernel's ``PYTHONPATH`` and does not let the kernel read the real
package (Landlock), so neither ``import`` nor a path to the real files reaches the originals. A TODO that
calls a hidden function records ``PermissionError: ... hidden while grading``, which the feedback quotes.
Everything else (``NoiseSchedule`` itself, the checkpoints) works as usual, except what is built from a hidden
answer: worksheet 3 hides ``nets.ResBlock`` and ``nets.SinusoidalTimeEmbedding``, so ``nets.UNet`` cannot be
built while grading it (keeping the real classes reachable would hand out the answer: ``type(UNet(1).time_embed)``);
the feedback says that such a cell outside the TODOs costs no points.
"""
from __future__ import annotations

import ast
import compileall
import os
import shutil
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
HIDDEN = "hidden while grading"
# check -> the package's functions that compute the TODO's answer (tests/test_package_matches_checks.py pairs most;
# SmallUNet, training_step, cfg_loss and the lab's have none: the package's UNet is another network, train()
# and the lab's loop are not the TODO)
PACKAGE_TARGETS: dict[str, list[str]] = {
    "linear_beta_schedule": ["schedules.NoiseSchedule.linear"],
    "cosine_beta_schedule": ["schedules.NoiseSchedule.cosine"],
    "diffusion_schedule": ["schedules.diffusion_schedule"],
    "respace": ["schedules.NoiseSchedule.respace"],
    "q_sample": ["forward.q_sample", "forward.q_sample_chain"],
    "q_sample_chain": ["forward.q_sample_chain"],
    "q_posterior": ["forward.q_posterior"],
    "predict_x0": ["samplers.ddim_step", "solvers.dpmpp_2m_step"],    # both return x0_pred
    "sinusoidal_embedding": ["nets.sinusoidal_embedding"],
    "SinusoidalTimeEmbedding": ["nets.SinusoidalTimeEmbedding"],
    "ResBlock": ["nets.ResBlock"],
    "diffusion_loss": ["training.diffusion_loss"],
    "ddpm_step": ["samplers.ddpm_sample"],
    "ddim_step": ["samplers.ddim_step"],
    "cfg_combine": ["guidance.cfg_combine"],
    "EMA": ["training.EMA"],
    "ddim_sample_loop": ["samplers.ddim_sample"],
    "classifier_guided_eps": ["guidance.predict_eps", "guidance.classifier_grad"],   # the gradient is most of it
    "guided_ddim_sample": ["samplers.ddim_sample"],
    "dpmpp_2m_step": ["solvers.dpmpp_2m_step"],
    "dpmpp_2m_sample_loop": ["solvers.dpmpp_2m_sample"],
}
_KEEP_IN_CHECKS = {"__init__.py", "framework.py", "catalogue.py"}     # no reference in these


def _raise(what: str, why: str) -> ast.stmt:
    return ast.parse(f"raise PermissionError({f'{what} is {HIDDEN}: {why}'!r})").body[0]


def _stub_def(node: ast.AST, what: str, why: str) -> None:
    """Replace a function's body, or a class's, by a raise (a class keeps its name and bases)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        node.body = [_raise(what, why)]
    elif isinstance(node, ast.ClassDef):
        init = ast.parse("def __init__(self, *args, **kwargs):\n    pass").body[0]
        init.body = [_raise(what, why)]
        node.body = [init]


def _find(tree: ast.Module, qualname: str) -> ast.AST | None:
    scope: list[ast.stmt] = tree.body
    node = None
    for part in qualname.split("."):
        node = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.name == part), None)
        if node is None:
            return None
        scope = node.body if isinstance(node, ast.ClassDef) else []
    return node


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _defined(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return set()


def _register_calls(tree: ast.Module) -> list[ast.Call]:
    """The ``Check(...)`` of each ``register(Check(name, target, cases, call, diagnose))`` of a module."""
    found = []
    for stmt in tree.body:
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "register"
                and call.args and isinstance(call.args[0], ast.Call) and len(call.args[0].args) >= 5):
            found.append(call.args[0])
    return found


def _needed(trees: dict[str, ast.Module]) -> dict[str, set[str]]:
    """module -> the names the checks' ``call`` functions need, followed across modules (``from .ws04 import``)."""
    defs = {(m, n): stmt for m, t in trees.items() for stmt in t.body for n in _defined(stmt)}
    imports = {(m, a.asname or a.name): (stmt.module, a.name) for m, t in trees.items() for stmt in t.body
               if isinstance(stmt, ast.ImportFrom) and stmt.level == 1 and stmt.module in trees for a in stmt.names}
    todo = [(m, n) for m, t in trees.items() for check in _register_calls(t) for n in _names(check.args[3])]
    needed = set(todo)
    while todo:
        key = todo.pop()
        more = [imports[key]] if key in imports else [(key[0], n) for n in _names(defs[key])] if key in defs else []
        for k in more:
            if k not in needed:
                needed.add(k)
                todo.append(k)
    return {m: {n for mm, n in needed if mm == m} for m in trees}


def strip_checks_module(tree: ast.Module, module: str, needed: set[str]) -> str:
    """A worksheet's checks module with only what a harvest runs in the kernel (see the module's docstring)."""
    why = "the checks' references are not available to the notebook during grading"
    registers = _register_calls(tree)
    for check in registers:     # the cases come from the grader; the verdict is the grader's
        check.args[2] = ast.parse(f"lambda hidden: (_ for _ in ()).throw(PermissionError("
                                  f"'the cases are {HIDDEN}'))").body[0].value
        check.args[4] = ast.parse("lambda out, case: 'not judged in this notebook: the grader judges the "
                                  "outputs'").body[0].value
    body = []
    for stmt in tree.body:
        names = _defined(stmt)
        if isinstance(stmt, (ast.Import, ast.ImportFrom)) or (isinstance(stmt, ast.Expr) and (
                isinstance(stmt.value, ast.Constant) or any(stmt.value is r for r in registers)
                or (isinstance(stmt.value, ast.Call) and stmt.value.args and stmt.value.args[0] in registers))):
            body.append(stmt)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if stmt.name not in needed:
                _stub_def(stmt, f"course_utils.checks.{module}.{stmt.name}", why)
            body.append(stmt)
        elif names and (names & needed or _is_visible(stmt)):
            body.append(stmt)
        elif names:
            body += [ast.parse(f"{n} = None").body[0] for n in sorted(names)]
    tree.body = body
    return ast.unparse(ast.fix_missing_locations(tree))


def strip_framework(source: str) -> str:
    """The framework in the kernel: ``verdict`` and ``run_check`` say the grader judges; ``harvest`` is the
    grader's (it needs the cases, which the kernel does not have)."""
    tree = ast.parse(source)
    for name in ("verdict", "run_check"):
        node = _find(tree, name)
        if node is not None:
            node.body = ast.parse("return CheckResult(False, f'{TODO} {CHECKS[name].target}: judged by the grader, "
                                  "not in this notebook', 'not_implemented')").body
    node = _find(tree, "harvest")
    if node is not None:
        _stub_def(node, "course_utils.checks.harvest", "the grader runs the harvest")
    return ast.unparse(ast.fix_missing_locations(tree))


def _is_visible(stmt: ast.stmt) -> bool:
    """``check_x = visible("x")``: a visible check, kept (it prints that the grader judges)."""
    value = getattr(stmt, "value", None)
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "visible"


def build(dest: Path, checks: list[str], worksheet: str) -> tuple[Path, list[str]]:
    """Copy the package to ``dest/course_utils`` with the answers of ``checks`` hidden; returns (the package's
    folder in the copy, notes on what could not be hidden)."""
    pkg = Path(dest) / "course_utils"
    shutil.copytree(PACKAGE_DIR, pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "checkpoints"))
    if (PACKAGE_DIR / "checkpoints").is_dir():
        os.symlink(PACKAGE_DIR / "checkpoints", pkg / "checkpoints")    # weights, no code: read in place
    notes = []
    by_module: dict[str, list[tuple[str, str]]] = {}
    for check in checks:
        for target in PACKAGE_TARGETS.get(check, []):
            module, _, qualname = target.partition(".")
            by_module.setdefault(module, []).append((qualname, check))
    for module, items in by_module.items():
        path = pkg / f"{module}.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for qualname, check in items:
            node = _find(tree, qualname)
            if node is None:
                notes.append(f"course_utils.{module}.{qualname} (the package's {check}) was not found, so not hidden")
                continue
            _stub_def(node, f"course_utils.{module}.{qualname}",
                      f"worksheet {worksheet} asks you to write {check} yourself")
        path.write_text(ast.unparse(ast.fix_missing_locations(tree)), encoding="utf-8")
    checks_dir = pkg / "checks"
    if checks_dir.is_dir():
        trees = {p.stem: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(checks_dir.glob("*.py"))
                 if p.name not in _KEEP_IN_CHECKS}
        for module, needed in _needed(trees).items():
            (checks_dir / f"{module}.py").write_text(strip_checks_module(trees[module], module, needed),
                                                     encoding="utf-8")
        if (checks_dir / "framework.py").exists():
            (checks_dir / "framework.py").write_text(strip_framework((checks_dir / "framework.py").read_text(
                encoding="utf-8")), encoding="utf-8")
    elif (pkg / "checks.py").exists():
        notes.append("course_utils/checks.py is one module: its references could not be hidden from the kernel")
    compileall.compile_dir(str(pkg), quiet=2, workers=1)
    return pkg, notes
