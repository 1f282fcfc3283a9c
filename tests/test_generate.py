"""tools/generate.py (``make generated``): each step works on the root it is given (a decoy repository root with
another URL sits where the module lives), writes only what changed, in its order whatever the command line's; the
GENERATED markers' edge cases, the badge URL, the step names on the command line. Every generator here runs on
files in tmp_path, never in the repository."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import nbformat
import pytest

from test_exercises import _toy_solution

ROOT = Path(__file__).resolve().parents[1]

URL = "https://github.com/someone/course"
SETUP_ID = "course-setup"
README = "# Course\n\n<!-- BEGIN GENERATED: badges -->\nold badges\n<!-- END GENERATED: badges -->\n\nHand text.\n"


def _generator(root: Path):
    """tools/generate.py copied into ``root/tools`` and imported from there: its ROOT is ``root``."""
    (root / "tools").mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "tools" / "generate.py", root / "tools" / "generate.py")
    spec = importlib.util.spec_from_file_location(f"generate_at_{abs(hash(root))}", root / "tools" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.ROOT == root.resolve()
    return module


def _pyproject(root: Path, url: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(f'[project]\nname = "x"\n\n[project.urls]\nRepository = "{url}"\n')


@pytest.fixture
def gen(tmp_path):
    """The generator living in a decoy repository with another URL: a step that reads or writes there instead of
    the root it is given fails these tests."""
    home = tmp_path.resolve() / "decoy"
    _pyproject(home, "https://github.com/decoy/elsewhere")
    return _generator(home)


def _notebook(path: Path, *cells) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=list(cells))
    for i, cell in enumerate(nb.cells):
        cell.id = cell.get("id") or f"c{i}"
    nbformat.write(nb, path)


def _code(source: str, cell_id: str | None = None):
    cell = nbformat.v4.new_code_cell(source)
    if cell_id:
        cell.id = cell_id
    return cell


def _course(root: Path) -> Path:
    """A small course: pyproject with URL, README and docs with their regions, one lesson, one solution."""
    _pyproject(root, URL)
    (root / "README.md").write_text(README)
    (root / "docs").mkdir()
    for doc, name in (("mistakes.md", "mistakes"), ("checkpoints.md", "cards")):
        (root / "docs" / doc).write_text(f"# {doc}\n\n<!-- BEGIN GENERATED: {name} -->\n"
                                         f"<!-- END GENERATED: {name} -->\n\nAfter.\n")
    shutil.copy2(ROOT / "jupytext.toml", root / "jupytext.toml")
    _notebook(root / "notebooks" / "01_a.ipynb", nbformat.v4.new_markdown_cell("# A"), _code("x = 1"))
    _notebook(root / "solutions" / "01_s.ipynb", nbformat.v4.new_markdown_cell("# S"), *_toy_solution().cells)
    return root


def _first_code(path: Path):
    return next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


# the badges for URL, written out by hand from the Colab and Binder link formats
BADGES = ("[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
          "(https://colab.research.google.com/github/someone/course/blob/main/notebooks/00_start_here.ipynb)\n"
          "[![Binder](https://mybinder.org/badge_logo.svg)]"
          "(https://mybinder.org/v2/gh/someone/course/main?labpath=notebooks%2F00_start_here.ipynb)")


def test_badges_drop_dot_git_and_fall_back_off_github(gen):
    """A clone URL ending in .git names the same repository; a home off GitHub gets a plain link, no badges."""
    assert gen.badges_markdown(URL) == BADGES and gen.badges_markdown(URL + ".git") == BADGES
    other = "https://gitlab.com/someone/course"
    assert gen.badges_markdown(other) == f"The course lives at <{other}>."


def test_make_generated_builds_everything_in_order_and_then_writes_nothing(tmp_path, capsys):
    """Run with no step: README, docs, set-up cells, exercises (with the set-up cell: setup runs first), twins;
    a second run prints nothing and leaves every file's bytes as they were."""
    from course_utils.checkpoints import cards_markdown
    from course_utils.checks import mistakes_markdown

    root = _course(tmp_path.resolve() / "course")
    gen = _generator(root)
    assert gen.main([]) == 0
    first = capsys.readouterr().out
    assert (root / "README.md").read_text() == README.replace("old badges", BADGES)
    assert "wrote README.md" in first and "wrote exercises/01_s.ipynb" in first, first
    for doc, body in (("mistakes.md", mistakes_markdown()), ("checkpoints.md", cards_markdown())):
        assert f"-->\n{body.strip()}\n<!-- END" in (root / "docs" / doc).read_text() and body.strip()
    for notebook in ("notebooks/01_a.ipynb", "solutions/01_s.ipynb", "exercises/01_s.ipynb"):
        cell = _first_code(root / notebook)
        assert cell.source.startswith("# Course set-up") and f"git+{URL}" in cell.source, notebook
    assert "YOUR CODE HERE" in (root / "exercises" / "01_s.ipynb").read_text()
    assert {p.relative_to(root).as_posix() for p in root.glob("*/.twins/*.py")} == {"notebooks/.twins/01_a.py",
                                                                                  "solutions/.twins/01_s.py"}
    files = sorted(p for p in root.rglob("*") if p.is_file())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    assert gen.main([]) == 0
    assert capsys.readouterr().out == ""
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before


def test_one_named_step_runs_alone_and_an_unknown_one_is_refused(tmp_path, capsys):
    """`generate.py badges` touches the README only (this course has no docs: another step would fail)."""
    root = tmp_path.resolve() / "course"
    _pyproject(root, URL)
    (root / "README.md").write_text(README)
    _notebook(root / "notebooks" / "01_a.ipynb", _code("x = 1"))
    lesson = (root / "notebooks" / "01_a.ipynb").read_bytes()
    gen = _generator(root)
    assert gen.main(["badges"]) == 0
    assert (root / "README.md").read_text() == README.replace("old badges", BADGES)
    assert (root / "notebooks" / "01_a.ipynb").read_bytes() == lesson and not (root / "notebooks" / ".twins").exists()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        gen.main(["badges", "bagdes"])
    assert exit_info.value.code == 2 and "unknown step(s) ['bagdes']" in capsys.readouterr().err


def test_named_steps_run_in_the_generators_order(tmp_path, capsys):
    """`generate.py exercises setup` runs setup first, as make generated does: the worksheet written gets the
    solution's new set-up cell, not the one before it."""
    root = _course(tmp_path.resolve() / "course")
    gen = _generator(root)
    assert gen.main(["exercises", "setup"]) == 0
    assert _first_code(root / "exercises" / "01_s.ipynb").source.startswith("# Course set-up")
    capsys.readouterr()
    assert gen.main(["setup", "exercises"]) == 0 and capsys.readouterr().out == ""     # nothing left to write


def test_the_setup_step_replaces_an_old_cell_inserts_after_markdown_and_fixes_the_id(gen, tmp_path, capsys):
    root = tmp_path / "course"
    _pyproject(root, URL)
    old = 'import importlib.util\nif importlib.util.find_spec("course_utils") is None:\n    raise SystemExit'
    _notebook(root / "notebooks" / "a.ipynb", nbformat.v4.new_markdown_cell("# A"), _code(old, "old"), _code("x = 1"))
    _notebook(root / "notebooks" / "b.ipynb", nbformat.v4.new_markdown_cell("# B"), _code("y = 2"))
    source = gen.setup_cell_source(URL)
    _notebook(root / "solutions" / "c.ipynb", _code(source, "wrong-id"))
    gen.step_setup(root)
    for name, n_cells in (("notebooks/a.ipynb", 3), ("notebooks/b.ipynb", 3), ("solutions/c.ipynb", 1)):
        text = (root / name).read_text()
        nb = nbformat.reads(text, as_version=4)
        setup = [i for i, c in enumerate(nb.cells) if 'find_spec("course_utils")' in c.source]
        assert len(nb.cells) == n_cells and setup == ([0] if n_cells == 1 else [1]), (name, nb.cells)
        assert nb.cells[setup[0]].source == source and nb.cells[setup[0]].id == SETUP_ID, name
        assert f"git+{URL}" in source and text.endswith("}\n"), name
    capsys.readouterr()
    gen.step_setup(root)
    assert capsys.readouterr().out == ""


def test_the_doc_and_readme_steps_write_into_the_root_they_are_given(gen, tmp_path, capsys):
    from course_utils.checkpoints import cards_markdown
    from course_utils.checks import mistakes_markdown

    root = _course(tmp_path / "course")
    gen.step_badges(root)
    gen.step_mistakes(root)
    gen.step_cards(root)
    assert (root / "README.md").read_text() == README.replace("old badges", BADGES)
    for doc, name, body in (("mistakes.md", "mistakes", mistakes_markdown()), ("checkpoints.md", "cards",
                                                                                 cards_markdown())):
        assert (root / "docs" / doc).read_text() == (f"# {doc}\n\n<!-- BEGIN GENERATED: {name} -->\n{body.strip()}\n"
                                                     f"<!-- END GENERATED: {name} -->\n\nAfter.\n")
    assert "wrote" in capsys.readouterr().out
    assert not (gen.ROOT / "README.md").exists() and not (gen.ROOT / "docs").exists()


def test_the_exercises_step_writes_the_worksheet_once(gen, tmp_path, capsys):
    root = _course(tmp_path / "course")
    gen.step_exercises(root)
    assert "wrote exercises/01_s.ipynb" in capsys.readouterr().out
    assert "YOUR CODE HERE" in (root / "exercises" / "01_s.ipynb").read_text()
    gen.step_exercises(root)
    assert capsys.readouterr().out == ""


def test_the_bars_step_rewrites_stale_bar_text(gen, tmp_path):
    """Lesson 05 with its bars' text reset to the first drawing: the step writes each bar's last drawing."""
    from course_utils.progress import WIDGET_VIEW, saved_bars_as_text

    root = tmp_path / "course"
    lesson = nbformat.read(ROOT / "notebooks" / "05_ddpm_vs_ddim.ipynb", as_version=4)
    for output in (o for c in lesson.cells if c.cell_type == "code" for o in c.outputs):
        if WIDGET_VIEW in output.get("data", {}):
            output.data["text/plain"] = "DDPM:   0%|          | 0/1000 [00:00<?, ?it/s]"
    (root / "notebooks").mkdir(parents=True)
    nbformat.write(lesson, root / "notebooks" / "05.ipynb")
    gen.step_bars(root)
    assert saved_bars_as_text(nbformat.read(root / "notebooks" / "05.ipynb", as_version=4)) == 0


def test_the_twins_step_creates_the_twins_folder(gen, tmp_path):
    root = tmp_path / "course"
    _notebook(root / "notebooks" / "a.ipynb", _code("x = 1"))                  # no notebooks/.twins yet
    shutil.copy2(ROOT / "jupytext.toml", root / "jupytext.toml")
    gen.step_twins(root)
    assert "x = 1" in (root / "notebooks" / ".twins" / "a.py").read_text()


def test_a_region_appears_once_and_a_prefix_name_is_another_region(gen):
    b, e = "<!-- BEGIN GENERATED: {} -->", "<!-- END GENERATED: {} -->"
    one = f"{b.format('x')}\nold\n{e.format('x')}\n"
    for malformed in (b.format("x") + "\n" + one, one + e.format("x") + "\n", b.format("x") + "\nno end\n"):
        with pytest.raises(SystemExit, match="f: needs exactly one"):
            gen.replace_region(malformed, "x", "new", "f")
    both = f"{b.format('xy')}\nkeep\n{e.format('xy')}\n" + one
    assert gen.replace_region(both, "x", "new\n\n", "f") == both.replace("old", "new")    # the body stripped
