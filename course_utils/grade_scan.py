"""What a submission's own code changes that is not its own: the grader's static look at a student's cells.

The verdict is computed outside the kernel from the outputs of the student's functions (docs/grading.md), so
monkeypatching torch or the course's checks earns nothing there; but the harvest's own machinery runs in the
kernel, and a notebook that rewrites it (``CHECKS["q_sample"].call = ...``, ``torch.equal = ...``) is code
aimed at the grader that an instructor should read. ``monkeypatches`` finds, without running anything, each
assignment to an attribute or item of a module the grader relies on (torch, numpy, builtins, course_utils, what
is imported from them, a star import's names, plain aliases such as ``t = torch``, and what ``sys.modules[...]``,
``__import__`` and ``importlib.import_module`` hand out), whatever the target's form
(tuple, starred, ``for``, comprehension, ``with ... as``, annotated, augmented, ``del``, ``vars(torch)[...]``), and
each ``setattr``/``delattr``/``__setattr__`` on one, and the class a call returns (``type(torch.zeros(1)).__eq__``,
``np.zeros(1).__class__``). Where the scan cannot follow a value (a module passed to a function, kept in a list, a
loop variable) it names the attributes the harvest and the comparisons rely on (``WATCHED_ATTRS``: allclose,
equal, a check's call, ...; a dunder such as ``__eq__``) set on any object but ``self``/``cls``, and a module's
``__dict__`` changed by a method (``vars(torch).update(...)``). The result lists them and the report names the
student among those who need attention. Also named, with ``"kind": "hook"``: what acts on the
code of later cells, the grader's harvest cells among them (``__builtins__`` assigned, IPython's input and AST
transformers, its events, ``sys.modules``/``sys.meta_path`` changed by a method): the harvest's own names cannot be
shadowed (it runs in a namespace of its own, ``grade.HARVEST``), but its source can be rewritten before it runs.

Not flagged: ``torch.backends.*`` settings (``torch.backends.cudnn.benchmark = True`` is a speed switch; not a
path back to torch through them) and anything on the student's own objects. IPython syntax (``x = !ls``,
``%time``, ``x?``) reads as Python that assigns nothing, a cell magic's body as Python; a cell that still does not
parse (a syntax error) is skipped. This is a reading aid, not a protection: code built from strings (``exec``,
``getattr`` chains, ``globals()["torch"]``, ``setattr`` with a name passed in) passes.
"""
from __future__ import annotations

import ast
import importlib
import re
import sys
import threading

MODULES = ("torch", "numpy", "builtins", "course_utils")     # what the harvest and the verdict's inputs rely on
GATEWAYS = ("sys", "importlib")          # modules that hand out the others: sys.modules["torch"], import_module
ALLOWED = ("torch.backends.",)                              # settings, not functions
MAX_FOUND = 10
# attributes the harvest and the comparisons rely on: set on *any* object (a function's parameter, ``mods[0]``, a
# loop variable, ``inspect.getmodule(...)``), each is named, since the scan cannot follow values; so is a dunder
# but those that only describe (``f.__doc__ = ...``)
WATCHED_ATTRS = frozenset({"allclose", "isclose", "equal", "array_equal", "array_equiv", "assert_close", "testing",
                           "call", "call_case", "CHECKS"})
DESCRIPTIVE_DUNDERS = frozenset({"__doc__", "__name__", "__qualname__", "__module__", "__wrapped__",
                                 "__annotations__"})
DICT_WRITERS = frozenset({"update", "setdefault", "pop", "popitem", "clear", "__setitem__", "__delitem__"})
# IPython's hooks on the code of later cells: an input transformer rewrote the harvest cell's source before it ran
# (the red team's second pass); any use of one in a student's cell is named, on any object but self/cls
IPYTHON_HOOKS = frozenset({"input_transformers_post", "input_transformers_cleanup", "input_transformer_manager",
                           "ast_transformers", "events", "set_custom_exc", "custom_exceptions", "run_cell",
                           "run_code", "run_ast_nodes", "transform_cell", "transform_ast"})
# what decides the module an import hands out: sys.modules.update({...}), sys.meta_path.insert(0, finder)
IMPORT_STATE = ("sys.modules", "sys.meta_path", "sys.path_hooks")
LIST_WRITERS = frozenset({"append", "insert", "extend", "remove", "__setitem__", "__delitem__", "__iadd__"})
# ast.parse is not thread-safe in CPython 3.11 before 3.11.8 ("SystemError: AST constructor recursion depth
# mismatch", seen in CI with two grading workers): one parse at a time
_PARSE_LOCK = threading.Lock()
# parsing costs the grader ~380 bytes of memory per byte of code (measured: 195 kB of "a.b = 1" -> 74 MB), outside
# every sandbox limit: a cell over MAX_CELL (the largest of the course's is 3.5 kB), or code past MAX_TOTAL, is not
# read but named, which puts the student among those who need attention as well
MAX_CELL = 64 * 1024
MAX_TOTAL = 1024 * 1024


def _imports(tree: ast.AST, names: dict[str, str]) -> None:
    """Add to ``names`` (local name -> dotted origin) what ``tree`` imports from ``MODULES`` (and ``GATEWAYS``),
    what a star import from one brings (its public names, when the grader has that module loaded), and plain
    aliases of those (``t = torch``, ``c = CHECKS["q_sample"]``, ``(t := torch)``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in MODULES + GATEWAYS:
                    names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in MODULES + GATEWAYS:
                for a in node.names:
                    if a.name == "*":
                        module = _star_source(node.module)
                        public = getattr(module, "__all__", None) or [n for n in dir(module) if n[:1] != "_"]
                        names.update({n: f"{node.module}.{n}" for n in public if isinstance(n, str)})
                    else:
                        names[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, (ast.Assign, ast.NamedExpr)):
            origin = _path(node.value, names)
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if origin is not None:
                names.update({t.id: origin for t in targets if isinstance(t, ast.Name)})


def _star_source(name: str):
    """The module a star import names, as the grader knows it: the course's own modules are imported here if no
    verdict has imported them yet (course_utils.analytic is first imported by a ddim_sample_loop verdict, so a star
    import from it was resolved for the students graded after the first such verdict only, and the notes depended
    on the order of the class); torch's and numpy's are taken as loaded, never imported on a student's word."""
    module = sys.modules.get(name)
    if module is None and name.split(".")[0] == "course_utils":
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module that does not exist, or fails to import: nothing to resolve
            module = None
    return module


def _root(node: ast.AST, names: dict[str, str]) -> str | None:
    """The origin of a name (``torch``, ``__builtins__``), of ``vars(x)`` (``x.__dict__``), of
    ``__import__("torch")`` or ``importlib.import_module("torch")``, of ``(t := torch)``; else None."""
    if isinstance(node, ast.Name):
        return names.get(node.id) or ("builtins" if node.id == "__builtins__" else None)
    if isinstance(node, ast.NamedExpr):
        return _path(node.value, names)
    if not (isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords):
        return None
    arg = node.args[0]
    if isinstance(node.func, ast.Name) and node.func.id == "type":     # type(torch.zeros(1)): torch.Tensor
        inner = _path(_called(arg), names)
        return f"{inner}().__class__" if inner else None
    if isinstance(node.func, ast.Name) and node.func.id == "vars":
        inner = _path(arg, names)
        return f"{inner}.__dict__" if inner else None
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        if isinstance(node.func, ast.Name) and node.func.id == "__import__":
            return arg.value.split(".")[0]                  # __import__("torch.nn") is torch
        if _path(node.func, names) == "importlib.import_module":
            return arg.value
    return None


_SYS_MODULES = re.compile(r"""^sys\.modules\[(['"])([\w.]+)\1\]""")


def _called(node: ast.AST) -> ast.AST:
    """What a chain of calls calls: ``torch.zeros(1)`` -> ``torch.zeros``."""
    while isinstance(node, ast.Call):
        node = node.func
    return node


def _path(node: ast.AST, names: dict[str, str]) -> str | None:
    """``a.b[c].d`` as a dotted path from its root's origin (``sys.modules["torch"]`` read as ``torch``), else
    None; a call is followed only to the class of what it returns (``np.zeros(1).__class__`` is
    ``numpy.zeros().__class__``: ``x = torch.zeros(3)`` makes no alias of torch, so ``x[0] = 1`` is no patch)."""
    parts = []
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        if isinstance(node, ast.Call):
            if not (parts and parts[-1] == "__class__"):
                break
            parts[-1] = "()." + parts[-1]
            node = node.func
            continue
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
        else:
            key = node.slice
            parts.append(f"[{key.value!r}]" if isinstance(key, ast.Constant) else "[...]")
        node = node.value
    root = _root(node, names)
    if root is None:
        return None
    return _SYS_MODULES.sub(r"\2", ".".join([root, *reversed(parts)]).replace(".[", "[").replace(".()", "()"))


def _dotted(node: ast.AST, names: dict[str, str]) -> str | None:
    """``a.b[c].d`` as its origin's dotted path when that is in a module the grader relies on, else None."""
    path = _path(node, names)
    return path if path is not None and path.split(".")[0].split("[")[0] in MODULES else None


def _places(target: ast.AST):
    """The places a target assigns: ``a, (b, *c) = ...`` assigns a, b and c."""
    if isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            yield from _places(elt)
    elif isinstance(target, ast.Starred):
        yield from _places(target.value)
    else:
        yield target


def _targets(node: ast.AST):
    """What a statement (or a comprehension's ``for``, or a ``with``'s ``as``) assigns or deletes."""
    if isinstance(node, (ast.Assign, ast.Delete)):
        for t in node.targets:
            yield from _places(t)
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor, ast.comprehension)):
        yield from _places(node.target)
    elif isinstance(node, ast.withitem) and node.optional_vars is not None:
        yield from _places(node.optional_vars)


def _setattr_call(node: ast.AST, names: dict[str, str]) -> str | None:
    """``setattr(x, "a", v)``, ``delattr(x, "a")``, ``object.__setattr__(x, "a", v)`` or ``x.__setattr__("a", v)``
    on a module the grader relies on: "x.a" (``...`` for an attribute built at run time), else None."""
    if not isinstance(node, ast.Call):
        return None
    func, args = node.func, list(node.args)
    if isinstance(func, ast.Name) and func.id in ("setattr", "delattr"):
        pass
    elif isinstance(func, ast.Attribute) and func.attr in ("__setattr__", "__delattr__"):
        if not (isinstance(func.value, ast.Name) and func.value.id in ("object", "type")):
            args = [func.value, *args]             # x.__setattr__("a", v): x is the object
    else:
        return None
    if not args:
        return None
    first = _dotted(args[0], names)
    attr = args[1].value if len(args) > 1 and isinstance(args[1], ast.Constant) else "..."
    return f"{first}.{attr}" if first else None


def _watched(name: str) -> bool:
    """An attribute name the harvest or the comparisons rely on, or a dunder that does more than describe."""
    return name in WATCHED_ATTRS or (name[:2] == name[-2:] == "__" and len(name) > 4
                                     and name not in DESCRIPTIVE_DUNDERS)


def _unresolved(node: ast.AST, names: dict[str, str]) -> str | None:
    """A change the scan cannot trace to a module but names all the same: an attribute ``_watched`` set on
    anything (``m.allclose = ...`` with ``m`` a parameter, ``mods[0].equal``), also by ``setattr``; a module's
    ``__dict__`` changed by a method (``vars(torch).update(...)``); ``.update(allclose=...)`` on anything. Not on
    ``self`` or ``cls`` (a student's own class). The code as written, else None."""
    if isinstance(node, ast.Attribute) and _watched(node.attr):
        return None if _on_own_object(node) else ast.unparse(node)
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    if isinstance(func, ast.Name) and func.id in ("setattr", "delattr") and len(node.args) > 1 and \
            isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str) and \
            _watched(node.args[1].value):
        return f"{ast.unparse(node.args[0])}.{node.args[1].value}"
    if isinstance(func, ast.Attribute) and func.attr in DICT_WRITERS:
        owner = _dotted(func.value, names)
        if owner and owner.endswith("__dict__") or any(k.arg and _watched(k.arg) for k in node.keywords):
            return ast.unparse(node)
    return None


def _import_state(node: ast.Call, names: dict[str, str]) -> str | None:
    """``sys.modules.update({...})``, ``sys.meta_path.insert(0, finder)``: what decides the module an import
    hands out, changed by a method (``sys.modules["torch"] = ...`` is an item, found as a patch of torch)."""
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in DICT_WRITERS | LIST_WRITERS and \
            _path(func.value, names) in IMPORT_STATE:
        return ast.unparse(node)
    return None


def _ipython_hook(node: ast.AST) -> str | None:
    """``get_ipython().input_transformers_post`` and IPython's other hooks on later cells' code (``IPYTHON_HOOKS``),
    used in any way (appended to, assigned, called) on anything but ``self``/``cls``: the code as written."""
    if not (isinstance(node, ast.Attribute) and node.attr in IPYTHON_HOOKS):
        return None
    return None if _on_own_object(node) else ast.unparse(node)


def _on_own_object(node: ast.Attribute) -> bool:
    """An attribute of ``self`` or ``cls`` (``self.events``, ``self.w.equal``): a student's own class."""
    root = node.value
    while isinstance(root, (ast.Attribute, ast.Subscript, ast.Call)):
        root = root.func if isinstance(root, ast.Call) else root.value
    return isinstance(root, ast.Name) and root.id in ("self", "cls")


def _allowed(what: str) -> bool:
    """A ``torch.backends`` setting, not a path back into a module the grader relies on through it
    (``torch.backends.cudnn.torch.equal`` is torch.equal) nor a private attribute."""
    if not what.startswith(ALLOWED):
        return False
    rest = what.split(".")[2:]
    return not any(part.split("[")[0] in MODULES or part.startswith("_") for part in rest)


# IPython syntax the grader's kernel accepts and Python does not, line by line: an assignment from a magic or a
# shell escape (files = !ls, here = %pwd), a magic or escape alone (%time ..., !pip ...), a help request (x?, ?x)
_MAGIC_VALUE = re.compile(r"^(\s*[\w.\[\]'\",*()][\w.\[\]'\", *()]*?=\s*)[%!].*$")
_MAGIC_ALONE = re.compile(r"^(\s*)(?:[%!?].*|[\w.\[\]'\"]+\?\??)\s*$")


def _without_ipython_syntax(source: str) -> str:
    """The cell with each line of IPython syntax made Python that assigns nothing (``x = !ls`` -> ``x = None``,
    ``%time f()`` -> ``pass``, indentation kept, so the cell's other lines are still read). Line by line, in
    linear time: IPython's own TransformerManager re-tokenizes the whole cell once per magic (400 lines of
    ``%time x = 1`` took it 3.3 s, and more than 500 make it give up), which a notebook could turn against the
    grader."""
    lines = []
    for line in source.splitlines():
        value, alone = _MAGIC_VALUE.match(line), _MAGIC_ALONE.match(line)
        lines.append(value.group(1) + "None" if value else alone.group(1) + "pass" if alone else line)
    return "\n".join(lines)


def _parse(source: str) -> ast.AST | None:
    """The cell's syntax tree; a cell magic's body (``%%time``, ``%%capture``) runs as Python, so it is read
    alone; a cell that is not Python is read again without its IPython syntax. None for what is not Python."""
    stripped = source.lstrip()
    if stripped.startswith("%%"):
        return _parse(stripped.split("\n", 1)[1]) if "\n" in stripped else None
    for _ in range(2):          # a SystemError of that race (another thread compiling meanwhile): once more
        try:
            with _PARSE_LOCK:
                try:
                    return ast.parse(source)
                except SyntaxError:
                    return ast.parse(_without_ipython_syntax(source))
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
        hits, hooks = [], []
        for node in ast.walk(tree):
            for t in _targets(node):
                if isinstance(t, (ast.Attribute, ast.Subscript)):
                    hits.append(_dotted(t, names) or _unresolved(t, names))
                elif isinstance(t, ast.Name) and t.id == "__builtins__":     # every builtin of later cells
                    hooks.append("__builtins__")
            hooks.append(_ipython_hook(node) or (_import_state(node, names) if isinstance(node, ast.Call) else None))
            hits.append(_setattr_call(node, names) or _unresolved(node, names) if isinstance(node, ast.Call)
                        else None)
        kinds = {h: "hook" for h in hooks if h} | {h: "patch" for h in hits if h and not _allowed(h)}
        found += [{"cell": cell, "what": what[:120]} | ({"kind": "hook"} if kind == "hook" else {})
                  for what, kind in kinds.items()]
    return found[:MAX_FOUND]
