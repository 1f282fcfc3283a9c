"""What a submission's own code changes that is not its own: the grader's static look at a student's cells.

The verdict is computed outside the kernel from the outputs of the student's functions (docs/grading.md), so
monkeypatching torch or the course's checks earns nothing there; but the harvest's own machinery runs in the
kernel, and a notebook that rewrites it (``CHECKS["q_sample"].call = ...``, ``torch.equal = ...``) is code
aimed at the grader that an instructor should read. ``monkeypatches`` finds, without running anything, each
assignment to an attribute or item of a module the grader relies on (torch, numpy, builtins, course_utils and
what is imported from them) and each ``setattr``/``delattr`` on one; the result lists them and the report names
the student among those who need attention.

Not flagged: ``torch.backends.*`` settings (``torch.backends.cudnn.benchmark = True`` is a speed switch) and
anything on the student's own objects. A cell that does not parse as Python (a magic, a syntax error) is
skipped. This is a reading aid, not a protection: code built from strings (``exec``, ``getattr`` chains) passes.
"""
from __future__ import annotations

import ast
import threading

MODULES = ("torch", "numpy", "builtins", "course_utils")     # what the harvest and the verdict's inputs rely on
ALLOWED = ("torch.backends.",)                              # settings, not functions
MAX_FOUND = 10
# ast.parse is not thread-safe in CPython 3.11 before 3.11.8 ("SystemError: AST constructor recursion depth
# mismatch", seen in CI with two grading workers): one parse at a time
_PARSE_LOCK = threading.Lock()
# parsing costs the grader ~380 bytes of memory per byte of code (measured: 195 kB of "a.b = 1" -> 74 MB), outside
# every sandbox limit: a cell over MAX_CELL (the largest of the course's is 3.5 kB), or code past MAX_TOTAL, is not
# read but named, which puts the student among those who need attention as well
MAX_CELL = 64 * 1024
MAX_TOTAL = 1024 * 1024


def _imports(tree: ast.AST, names: dict[str, str]) -> None:
    """Add to ``names`` (local name -> dotted origin) what ``tree`` imports from ``MODULES``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in MODULES:
                    names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in MODULES:
                for a in node.names:
                    names[a.asname or a.name] = f"{node.module}.{a.name}"


def _dotted(node: ast.AST, names: dict[str, str]) -> str | None:
    """``a.b[c].d`` as its origin's dotted path when its root is an imported name, else None."""
    parts = []
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
        else:
            key = node.slice
            parts.append(f"[{key.value!r}]" if isinstance(key, ast.Constant) else "[...]")
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    root = names.get(node.id) or ("builtins" if node.id == "__builtins__" else None)
    if root is None:
        return None
    return ".".join([root, *reversed(parts)]).replace(".[", "[")


def _targets(node: ast.AST):
    if isinstance(node, ast.Assign):
        for t in node.targets:
            yield from (t.elts if isinstance(t, (ast.Tuple, ast.List)) else [t])
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        yield node.target
    elif isinstance(node, ast.Delete):
        yield from node.targets


def _parse(source: str) -> ast.AST | None:
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    for _ in range(2):          # a SystemError of that race (another thread compiling meanwhile): once more
        try:
            with _PARSE_LOCK:
                return ast.parse(code)
        except SystemError:
            continue
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
    return None


def monkeypatches(cells: list[tuple[str, str, bool]]) -> list[dict]:
    """``cells``: (how messages name the cell, its source, whether it is the student's own) in notebook order; the
    imports of every cell count, the changes of the student's own. Returns at most ``MAX_FOUND`` records
    ``{"cell": ..., "what": "torch.equal"}``, one per cell and target."""
    names: dict[str, str] = {}
    found, total = [], 0
    for cell, source, own in cells:
        if len(source) > MAX_CELL or total + len(source) > MAX_TOTAL:
            if own:
                found.append({"cell": cell, "what": f"(not read: a cell of {len(source) / 1024:.0f} kB, over the "
                                                    f"{MAX_CELL // 1024} kB read per cell or "
                                                    f"{MAX_TOTAL // 1024} kB per notebook)"})
            continue
        total += len(source)
        tree = _parse(source)
        if tree is None:
            continue
        _imports(tree, names)
        if not own:
            continue
        hits = []
        for node in ast.walk(tree):
            for target in _targets(node):
                if isinstance(target, (ast.Attribute, ast.Subscript)):
                    hits.append(_dotted(target, names))
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("setattr", "delattr") and node.args):
                first = _dotted(node.args[0], names) if not isinstance(node.args[0], ast.Name) else \
                    (names.get(node.args[0].id) or ("builtins" if node.args[0].id == "__builtins__" else None))
                attr = node.args[1].value if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) else "..."
                hits.append(f"{first}.{attr}" if first else None)
        for what in dict.fromkeys(h for h in hits if h and not h.startswith(ALLOWED)):
            found.append({"cell": cell, "what": what[:120]})
    return found[:MAX_FOUND]
