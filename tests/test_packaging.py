"""Packaging: pyproject.toml and environment.yml agree; README and CI use `make test`; the package map is whole."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import pyproject

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch"}          # conda's package names that differ from PyPI's


def _name(requirement: str) -> str:
    """'scikit-learn>=1.3' -> 'scikit-learn' (lower case, '_' -> '-')."""
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _conda_dependencies(text: str) -> set[str]:
    """The top-level conda packages of environment.yml (not python, pip, or the pip: sub-list)."""
    names, in_deps = set(), False
    for line in text.splitlines():
        if re.match(r"^dependencies:\s*$", line):
            in_deps = True
            continue
        if in_deps and re.match(r"^\S", line):          # the next top-level key ends the list
            break
        m = re.match(r"^  - ([A-Za-z0-9_.\-]+[^#]*?)\s*(#.*)?$", line)   # exactly two spaces: top-level items only
        if in_deps and m and not m.group(1).endswith(":"):
            names.add(_name(m.group(1)))
    return {CONDA_TO_PIP.get(n, n) for n in names} - {"python", "pip"}


def test_make_lint_checks_the_python_that_pyproject_promises():
    """README promises Python 3.10+ and CI runs 3.11: `make lint` runs vermin with requires-python's version as
    its target (a bare `import tomllib` in two tests slipped by it before, 2026-12-07)."""
    oldest = re.fullmatch(r">=\s*(3\.\d+)", pyproject()["project"]["requires-python"]).group(1)
    lint = (ROOT / "Makefile").read_text().split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert f"vermin -q --target={oldest}- --violations" in lint, lint
    words = lint.replace("\\\n", " ").split()
    for folder in ("course_utils", "tests", "bench", "tools", "notebooks/.twins", "solutions/.twins"):
        assert words.count(folder) == 2, (folder, lint)     # ruff's line and vermin's


def test_pyproject_and_environment_yml_agree():
    project = pyproject()["project"]
    pip_names = {_name(r) for r in project["dependencies"]}
    conda_names = _conda_dependencies((ROOT / "environment.yml").read_text())
    assert conda_names, "no dependencies parsed from environment.yml"
    assert pip_names == conda_names, (f"only in pyproject.toml: {sorted(pip_names - conda_names)}; "
                                      f"only in environment.yml: {sorted(conda_names - pip_names)}")
    assert "-e ." in (ROOT / "environment.yml").read_text(), "environment.yml must install the course package"
    pip_bounds = {_name(r): re.search(r">=\s*([\w.]+)", r).group(1) for r in project["dependencies"]}
    conda_bounds = {CONDA_TO_PIP.get(_name(m.group(1)), _name(m.group(1))): m.group(2) for m in
                    re.finditer(r"^  - ([A-Za-z0-9_.\-]+)>=([\w.]+)", (ROOT / "environment.yml").read_text(), re.M)}
    conda_bounds.pop("python", None)
    assert conda_bounds == pip_bounds, "the lower bounds differ: raise them in both files (tools/oldest_deps.py)"


def test_oldest_deps_pins_each_lower_bound_for_this_python(tmp_path):
    """tools/oldest_deps.py: name>=X.Y becomes name==X.Y (the oldest release the bound admits), a requirement for
    another Python is left out, --skip too, and a requirement without one lower bound is refused."""
    import importlib.util
    import sys
    spec = importlib.util.spec_from_file_location("oldest_deps", ROOT / "tools" / "oldest_deps.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    project = {"project": {"dependencies": ["torch>=2.3", "numpy >= 1.24", "jupyterlab[test]>=4.0,<5"],
                           "optional-dependencies": {"dev": [
        "pytest-xdist>=3.6.1", f"tomli>=2; python_version < '{here}'", f"exceptiongroup>=1; python_version == '{here}'",
        "Ruff>=0.5"]}}}
    assert tool.oldest_pins(project, skip={"ruff"}) == ["torch==2.3", "numpy==1.24", "jupyterlab[test]==4.0",
                                                        "pytest-xdist==3.6.1", "exceptiongroup==1"]
    project["project"]["dependencies"].append("scipy")
    with pytest.raises(SystemExit, match="'scipy': expected one lower bound"):
        tool.oldest_pins(project, skip=())
    pins = tool.oldest_pins(pyproject(), skip=tool.DEFAULT_SKIP)
    assert "torch==2.3" in pins and all("==" in pin for pin in pins) and not any("ruff" in pin for pin in pins)


def test_dev_extra_has_the_test_tools():
    project = pyproject()["project"]
    dev = {_name(r) for r in project["optional-dependencies"]["dev"]}
    assert {"pytest", "jupytext", "playwright"} <= dev, dev


def _installed_with(names: set[str]) -> set[str]:
    """The distributions ``names`` bring along when installed: themselves and what they require, recursively
    (as installed here; extras not counted)."""
    from importlib import metadata

    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_name(r) for r in requires if "extra ==" not in r]
    return seen


def _imported_modules(source: str) -> set[str]:
    """Top-level module names of every import statement in ``source`` (relative imports left out)."""
    import ast

    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def test_what_a_student_runs_imports_only_what_the_package_installs():
    """The lessons, the worksheets and the package itself import nothing that `pip install -e .` or
    environment.yml leaves out: a conda or plain-pip student has no dev extra (lesson 7 once needed diffusers
    from it)."""
    import sys
    from importlib import metadata

    project = pyproject()["project"]
    installed = _installed_with({_name(r) for r in project["dependencies"]})
    to_distributions = metadata.packages_distributions()
    sources = [*(ROOT / "course_utils").rglob("*.py"), *(ROOT / "notebooks" / ".twins").glob("*.py"),
               *(ROOT / "solutions" / ".twins").glob("*.py")]
    missing = {}
    for path in sources:
        for module in _imported_modules(path.read_text(encoding="utf-8")) - set(sys.stdlib_module_names) - {
                "course_utils", "__future__"}:
            distributions = {_name(d) for d in to_distributions.get(module, [module])}
            if not distributions & installed:
                missing.setdefault(module, []).append(str(path.relative_to(ROOT)))
    assert not missing, f"imported but not installed by the package's dependencies: {missing}"
    assert "diffusers" in installed and "ipython" in installed, "the closure of the dependencies looks wrong"


def test_readme_quick_start_has_the_two_commands():
    readme = ROOT / "README.md"
    assert readme.exists(), "README.md is missing: the course needs one, with a '## Quick start' section"
    text = readme.read_text()
    start = text.find("## Quick start")
    assert start >= 0, "README.md needs a '## Quick start' section"
    section = text[start:text.find("\n## ", start + 3)]
    assert re.search(r"^make lab\b", section, re.M) and re.search(r"^make test\b", section, re.M), section


def _package_members(package: Path) -> set[str]:
    """The modules (``name.py`` but ``__init__``) and subpackages (folders with an ``__init__.py``) of a package."""
    modules = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    return modules | {p.parent.name for p in package.glob("*/__init__.py")}


def test_package_docstring_maps_every_module():
    """course_utils/__init__.py's docstring names each module and subpackage once, as a list item, and no other."""
    import course_utils

    members = _package_members(ROOT / "course_utils")
    assert {"schedules", "samplers"} <= members, members                # the listing itself works
    listed = re.findall(r"^- ``(\w+)``: ", course_utils.__doc__, re.M)
    assert len(listed) == len(set(listed)), f"named twice: {sorted(n for n in listed if listed.count(n) > 1)}"
    missing, stale = sorted(members - set(listed)), sorted(set(listed) - members)
    assert not missing, f"course_utils/__init__.py's docstring should describe {missing}"
    assert not stale, f"course_utils/__init__.py's docstring describes modules that do not exist: {stale}"


def test_ci_runs_make_test():
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert any(re.match(r"^make test\b", c) for c in commands), "the CI script must call `make test`"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test:", makefile, re.M)
    assert "--nbval-sanitize-with tests/nbval_sanitize.cfg" in makefile
    assert (ROOT / "tests" / "nbval_sanitize.cfg").exists()


def test_sanitize_cfg_masks_volatile_output():
    """Each rule of nbval's sanitize file must mask what it claims to, parsed and applied as nbval does."""
    from nbval.plugin import get_sanitize_patterns

    rules = get_sanitize_patterns((ROOT / "tests" / "nbval_sanitize.cfg").read_text())
    assert len(rules) == 6, rules

    def sanitize(text):
        for regex, replace in rules:
            text = re.sub(regex, replace, text)
        return text

    pairs = [
        ("<Figure at 0x7f3a2b1c9d50>", "<Figure at 0x7f00aa11bb22>"),
        ("trained in 12.3 s", "trained in 4 s"),
        ("took 0.52s", "took 17.0s"),
        ("DDPM: 100%|##########| 1000/1000 [00:05<00:00, 180.12it/s]",
         "DDPM: 100%|##########| 1000/1000 [00:07<00:00, 140.50it/s]"),
        # a bar as make generated stores it (its last count) beside one as a fresh run first draws it, padded
        ("DDIM 1000: 100%|##########| 1000/1000 [00:01<00:00, 1026.16it/s]",
         "DDIM 1000:   0%|          | 0/1000 [00:00<?, ?it/s]"),
        ("  1.54s/it", "  12.10s/it"),
        ("run of 2026-11-22 07:52:52", "run of 2025-01-03 11:02:07"),
        ("elapsed 00:01:23", "elapsed 00:12:09"),
    ]
    for a, b in pairs:
        assert sanitize(a) == sanitize(b), (a, b, sanitize(a), sanitize(b))
    # ...but numbers that matter are left alone
    assert sanitize("1,234,567 parameters") == "1,234,567 parameters"
    assert sanitize("alpha_bar[999] = 4.04e-05") == "alpha_bar[999] = 4.04e-05"
    assert sanitize("shape (64, 1, 28, 28)") == "shape (64, 1, 28, 28)"


def test_make_test_keeps_each_notebook_on_one_worker_and_spreads_the_browser_notebooks():
    """`make test` runs two pytest-xdist workers with tests/conftest.py's scheduler: a notebook's nbval cells
    and a test file stay on one worker (in order, module fixtures once); each notebook of the browser test is a
    unit of its own (in one unit that file kept one worker busy while the other ran dry)."""
    import conftest

    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"pytest tests notebooks solutions \$\(NBVAL\) -n \$\(TEST_WORKERS\) --dist loadfile", make)

    class Config:
        def __init__(self, dist):
            self.values = {"dist": dist, "tx": ["2*popen"]}

        def getvalue(self, name):
            return self.values[name]

    assert conftest.pytest_xdist_make_scheduler(Config("load"), None) is None     # other modes: xdist's own
    split = conftest.pytest_xdist_make_scheduler(Config("loadfile"), None)._split_scope
    lesson = "notebooks/05_ddpm_vs_ddim.ipynb"
    assert split(f"{lesson}::Cell 7") == split(f"{lesson}::Cell 30") == lesson
    assert split("tests/test_grade.py::test_a[x]") == split("tests/test_grade.py::test_b") == "tests/test_grade.py"
    browser = "tests/test_browser.py::test_notebook_in_jupyterlab"
    assert split(f"{browser}[{lesson}]") != split(f"{browser}[notebooks/06_guidance.ipynb]")
    assert split("tests/test_browser.py::test_harness_finds_errors_and_dead_widgets") == "tests/test_browser.py"


@pytest.mark.slow
def test_make_lab_s_server_opens_the_lessons_paired_with_hidden_twins(tmp_path):
    """A student's report: with jupytext installed (the dev extra `make lab` installs), JupyterLab opens a paired
    notebook through its text twin in notebooks/.twins/, and Jupyter Server refuses hidden paths: the start page
    and every lesson and solution were a 404 ('Cannot open'); the browser test serves copies without
    jupytext.toml, so it never saw it. The server started with `make lab`'s config path serves them."""
    import urllib.error

    from browser_utils import LabServer

    pytest.importorskip("jupytext")
    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert 'JUPYTER_CONFIG_PATH="$(CURDIR)/tools/jupyterlab"' in make       # what `make lab` starts the server with
    for config, expect in ((ROOT / "tools" / "jupyterlab", 200), (tmp_path / "empty", 404)):
        config.mkdir(exist_ok=True)
        server = LabServer(ROOT, tmp_path / f"lab-{expect}", env={"JUPYTER_CONFIG_PATH": str(config)}).start()
        try:
            for path in ("notebooks/00_start_here.ipynb", "notebooks/03_unet.ipynb", "solutions/02_forward.ipynb"):
                try:
                    cells = len(server.api("GET", f"/api/contents/{path}")["content"]["cells"])
                    status = 200
                except urllib.error.HTTPError as err:
                    status, cells = err.code, 0
                assert status == expect, (path, status, server.log_tail())
                assert cells > 3 or expect == 404
        finally:
            server.stop()


# The repository's top level, as README's layout describes it. A stray file (a pid file a background run wrote, a
# scratch notebook) committed by accident fails here; a new top-level entry belongs in README and in this set.
TOP_LEVEL = {".ci", ".gitignore", "GLOSSARY.md", "LICENSE", "Makefile", "README.md", "bench", "course_utils", "docs",
             "environment.yml", "exercises", "jupytext.toml", "notebooks", "pyproject.toml", "solutions", "tests",
             "tools"}


def test_the_top_level_holds_only_what_the_readme_describes():
    import shutil
    import subprocess
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout (an unpacked sdist): nothing tracked to list")
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    tracked = {line.split("/", 1)[0] for line in listed.splitlines() if line}
    assert tracked - TOP_LEVEL == set(), f"tracked at the top level but not part of the layout: {tracked - TOP_LEVEL}"
