"""The notebooks are the source: their twins, their set-up cell, their kernel, and what `make generated` derives.

A lesson (notebooks/*.ipynb) or a worksheet solution (solutions/*.ipynb) is edited in JupyterLab and committed;
its jupytext twin (notebooks/.twins/NAME.py) must say the same, every notebook opens with the same set-up cell
(written from pyproject.toml's [project.urls]), and everything derived is what tools/generate.py writes.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SYNC = ("run `make generated` (it rewrites every twin from its notebook), then commit the twin; if you edited the "
        "twin, carry the edit into the notebook instead: `.venv/bin/jupytext --sync TWIN`")


def _generate():
    spec = importlib.util.spec_from_file_location("course_generate", ROOT / "tools" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _generate()
SOURCES = generate.source_notebooks()
ALL_NOTEBOOKS = SOURCES + sorted((ROOT / "exercises").glob("*.ipynb"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_every_lesson_and_solution_is_a_source():
    names = {_rel(p) for p in SOURCES}
    assert "notebooks/00_start_here.ipynb" in names and "solutions/lab_ddim.ipynb" in names, names
    assert len([n for n in names if n.startswith("notebooks/")]) >= 7
    assert {p.name for p in (ROOT / "exercises").glob("*.ipynb")} == {p.name for p in SOURCES
                                                                      if p.parent.name == "solutions"}


@pytest.mark.parametrize("notebook", SOURCES, ids=_rel)
def test_the_twin_says_what_the_notebook_says(notebook):
    twin = generate.twin_path(notebook)
    assert twin.exists(), f"{_rel(notebook)} has no twin {_rel(twin)}: {SYNC}"
    expected = generate.twin_text(notebook)
    if twin.read_text(encoding="utf-8") != expected:
        got = twin.read_text(encoding="utf-8").splitlines()
        first = next((i for i, (a, b) in enumerate(zip(got, expected.splitlines())) if a != b),
                     min(len(got), len(expected.splitlines())))
        pytest.fail(f"{_rel(twin)} differs from {_rel(notebook)} from its line {first + 1} on: {SYNC}")


def test_the_twin_check_fails_on_an_edited_notebook(tmp_path):
    # the comparison above must be able to fail: edit a copy of a lesson and compare with its twin
    (tmp_path / "notebooks" / ".twins").mkdir(parents=True)
    lesson = ROOT / "notebooks" / "01_noise_schedules.ipynb"
    nb = nbformat.read(lesson, as_version=4)
    nb.cells[0].source += "\n\nA sentence added in JupyterLab."
    copy = tmp_path / "notebooks" / lesson.name
    nbformat.write(nb, copy)
    (tmp_path / "jupytext.toml").write_text((ROOT / "jupytext.toml").read_text())
    assert generate.twin_text(copy) != generate.twin_path(lesson).read_text(encoding="utf-8")
    assert "A sentence added in JupyterLab." in generate.twin_text(copy)


def test_jupytext_pairs_each_source_with_its_twin_as_configured():
    jupytext = pytest.importorskip("jupytext")
    from jupytext.config import load_jupytext_config
    from jupytext.paired_paths import paired_paths

    for notebook in (SOURCES[0], SOURCES[-1]):
        config = load_jupytext_config(str(notebook))
        formats = config.default_formats(str(notebook))
        paths = {Path(p).resolve() for p, _ in paired_paths(str(notebook), "ipynb", formats)}
        assert generate.twin_path(notebook).resolve() in paths, (notebook, formats, jupytext.__version__)


@pytest.mark.parametrize("notebook", ALL_NOTEBOOKS, ids=_rel)
def test_each_notebook_opens_with_the_set_up_cell_and_the_course_kernel(notebook):
    nb = nbformat.read(notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    expected = generate.setup_cell_source(generate.repository_url())
    assert code and code[0].source == expected, (
        f"{_rel(notebook)}: the first code cell must be the course's set-up cell; run `make generated`")
    assert all(c.cell_type == "markdown" for c in nb.cells[:nb.cells.index(code[0])])
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", (
        f"{_rel(notebook)} must use the course kernel (kernelspec python3: the environment's own Python, which "
        "`make lab` puts first)")
    assert nb.metadata["kernelspec"].get("language") == "python"


def test_the_set_up_cell_runs_and_says_what_to_do_without_the_package(tmp_path):
    # no public home: the cell must not install from a URL; without course_utils it names the way to get it
    source = generate.setup_cell_source(None)
    assert "http" not in source and "pip install -e" in source and "make lab" in source
    script = tmp_path / "cell.py"
    script.write_text(source)
    env = {"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}
    run = subprocess.run(["/usr/bin/env", "python3", "-I", "-S", str(script)], capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    assert run.returncode != 0 and "make lab" in run.stderr, run.stderr
    # with a public home, it installs from there and the badges link to it
    url = "https://github.com/someone/diffusion-course"
    assert f"git+{url}" in generate.setup_cell_source(url)
    badges = generate.badges_markdown(url)
    assert "colab.research.google.com/github/someone/diffusion-course/blob/main/notebooks/00_start_here.ipynb" \
        in badges and "mybinder.org/v2/gh/someone/diffusion-course/main" in badges
    assert "colab" not in generate.badges_markdown(None).lower().replace("no colab", "")


def test_the_repository_url_is_read_from_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[project.urls]\n'
                                             'Repository = "https://github.com/a/b/"\n')
    assert generate.repository_url(tmp_path / "pyproject.toml") == "https://github.com/a/b"
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[project.urls]\n')
    assert generate.repository_url(tmp_path / "pyproject.toml") is None


def test_no_link_points_at_a_repository_that_the_course_does_not_name():
    url = generate.repository_url()
    for path in [ROOT / "README.md", *ALL_NOTEBOOKS]:
        text = path.read_text(encoding="utf-8")
        for link in re.findall(r"(?:colab\.research\.google\.com/github|mybinder\.org/v2/gh|git\+https://github\.com)"
                               r"/[\w.-]+/[\w.-]+", text):
            assert url and link.split("/")[-2:] == url.split("/")[-2:], f"{_rel(path)}: {link} is not {url}"


def _accidental_code_block(source: str) -> int | None:
    """The line number of a line that Markdown would render as an indented code block by accident: indented
    four spaces or more after a blank line (or at the start), outside a list item and a fenced block."""
    fenced, in_list = False, False
    lines = source.split("\n")
    for i, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        if re.match(r"^\s{0,3}([-*+]|\d+[.)])\s", line):
            in_list = True
        elif line.strip() and not line.startswith(" "):
            in_list = False
        previous_blank = i == 0 or not lines[i - 1].strip()
        if re.match(r"^ {4,}\S", line) and previous_blank and not in_list:
            return i + 1
    return None


@pytest.mark.parametrize("notebook", ALL_NOTEBOOKS, ids=_rel)
def test_no_markdown_cell_renders_as_a_code_block_by_accident(notebook):
    nb = nbformat.read(notebook, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            line = _accidental_code_block(cell.source)
            assert line is None, (f"{_rel(notebook)} cell {index}, line {line}: indented four spaces after a "
                                  f"blank line, so JupyterLab shows it as code: {cell.source.splitlines()[line - 1]!r}")


def test_the_code_block_detector_can_fail():
    assert _accidental_code_block("    # Worksheet 1\n\nText") == 1
    assert _accidental_code_block("Intro\n\n    **Requirements**") == 3
    assert _accidental_code_block("1. a list item\n\n    continued in the item") is None
    assert _accidental_code_block("```\n    code in a fence\n```") is None


def test_generated_regions_are_replaced_and_malformed_ones_named(tmp_path):
    text = "a\n<!-- BEGIN GENERATED: x -->\nold\n<!-- END GENERATED: x -->\nb\n"
    assert generate.replace_region(text, "x", "new", "f") == ("a\n<!-- BEGIN GENERATED: x -->\nnew\n"
                                                              "<!-- END GENERATED: x -->\nb\n")
    with pytest.raises(SystemExit, match="f: needs exactly one"):
        generate.replace_region("no markers", "x", "new", "f")


def test_the_docs_carry_what_make_generated_writes():
    from course_utils.checkpoints import cards_markdown
    from course_utils.checks import mistakes_markdown

    for doc, name, body in (("docs/mistakes.md", "mistakes", mistakes_markdown()),
                            ("docs/checkpoints.md", "cards", cards_markdown())):
        text = (ROOT / doc).read_text(encoding="utf-8")
        assert generate.replace_region(text, name, body, doc) == text, f"{doc} is out of date: run `make generated`"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert generate.replace_region(readme, "badges", generate.badges_markdown(generate.repository_url()),
                                   "README.md") == readme, "README.md's badges are out of date: run `make generated`"


def test_every_stored_bar_reads_as_its_saved_state():
    """GitHub shows a stored bar's plain text: "0/1000" beside finished samples until make generated writes it."""
    import nbformat

    from course_utils.progress import WIDGET_VIEW, saved_bars_as_text

    stale = [path.name for path in SOURCES if saved_bars_as_text(nbformat.read(path, as_version=4))]
    assert not stale, f"{stale}: stored progress bars say what they showed first: run `make generated`"
    lesson = nbformat.read(ROOT / "notebooks" / "05_ddpm_vs_ddim.ipynb", as_version=4)    # the check can fail
    for output in (o for c in lesson.cells if c.cell_type == "code" for o in c.outputs):
        if WIDGET_VIEW in output.get("data", {}):
            output.data["text/plain"] = "DDPM:   0%|          | 0/1000 [00:00<?, ?it/s]"
    # three DDPM bars, five DDIM bars (one of each on the 2-D check), the interpolations', the features'; not its
    # widgets
    assert saved_bars_as_text(lesson) == 10


# ------------------------------------------------------------------------------------- the Makefile's wiring
def _make(*args: str) -> str:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def test_make_help_lists_every_target_with_one_line():
    targets = re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M)
    listed = re.findall(r"^  make (\S+) +\S", _make("help"), re.M)
    assert set(targets) == set(listed) and {"test-unit", "generated", "lint", "lab", "test"} <= set(listed), (
        targets, listed)


def test_cpu_only_torch_installs_from_the_cpu_index_before_the_course(tmp_path):
    venv = tmp_path / "venv"           # a dry run (-n): prints what `make setup TORCH=cpu` would run
    commands = _make("-n", "setup", "TORCH=cpu", f"VENV={venv}").splitlines()
    cpu = [i for i, c in enumerate(commands) if "pip install torch torchvision" in c]
    course = [i for i, c in enumerate(commands) if 'pip install -e ".[dev]"' in c]
    assert cpu and course and cpu[0] < course[0], commands
    assert "--index-url https://download.pytorch.org/whl/cpu" in commands[cpu[0]]
    default = _make("-n", "setup", f"VENV={venv}")
    assert "download.pytorch.org" not in default and 'pip install -e ".[dev]"' in default


def test_ci_regenerates_and_fails_on_any_difference():
    ci = (ROOT / ".ci" / "run").read_text()
    generated, status = re.search(r"^make generated\b", ci, re.M), ci.index("git status --porcelain")
    test = re.search(r"^make test\b", ci, re.M)
    assert generated and test and generated.start() < status < test.start(), ci
    assert "exit 1" in ci[status:test.start()]


# ------------------------------------------------------------------ found by a mutation audit (2026-12-05)
def _one_notebook_course(tmp_path: Path) -> Path:
    """A course folder with jupytext.toml and one lesson, notebooks/a.ipynb (one code cell, x = 1)."""
    pytest.importorskip("jupytext")
    root = tmp_path / "course"
    (root / "notebooks" / ".twins").mkdir(parents=True)
    (root / "solutions").mkdir()
    shutil.copy(generate.ROOT / "jupytext.toml", root / "jupytext.toml")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]),
                   root / "notebooks" / "a.ipynb")
    return root


def test_make_generated_rewrites_twins_and_removes_only_stale_ones(tmp_path, capsys):
    """`make generated` rewrites each notebook's twin and deletes the twin of a notebook that is gone, never
    the twin of one that is still there; run again, it writes nothing."""
    root = _one_notebook_course(tmp_path)
    (root / "notebooks" / ".twins" / "a.py").write_text("stale\n")
    (root / "notebooks" / ".twins" / "gone.py").write_text("# its notebook was deleted\n")
    past = (root / "notebooks" / "a.ipynb").stat().st_mtime - 60       # older than its notebook: not an edit
    os.utime(root / "notebooks" / ".twins" / "a.py", (past, past))
    assert generate.edited_twins(root) == []
    generate.step_twins(root)
    twins = sorted(p.name for p in (root / "notebooks" / ".twins").glob("*.py"))
    assert twins == ["a.py"], twins
    assert "x = 1" in (root / "notebooks" / ".twins" / "a.py").read_text()
    capsys.readouterr()
    generate.step_twins(root)
    assert capsys.readouterr().out == "", "an up-to-date twin is not rewritten"


def test_make_generated_stops_before_dropping_an_edit_made_in_a_twin(tmp_path, monkeypatch, capsys):
    """A maintainer edited a twin and ran `make generated`, as the twin test's message said: the twin was written
    again from its notebook and the edit lost without a word. A twin newer than its notebook and different from
    what it writes stops the command first, naming it and the jupytext --sync that carries the edit."""
    root = _one_notebook_course(tmp_path)
    generate.step_twins(root)
    twin = root / "notebooks" / ".twins" / "a.py"
    twin.write_text(twin.read_text().replace("x = 1", "x = 2"))
    future = (root / "notebooks" / "a.ipynb").stat().st_mtime + 60
    os.utime(twin, (future, future))
    assert generate.edited_twins(root) == [twin]
    monkeypatch.setattr(generate, "ROOT", root)
    calls = []
    monkeypatch.setattr(generate, "STEPS", {"twins": lambda: calls.append("twins")})
    assert generate.main([]) == 1 and calls == []
    err = capsys.readouterr().err
    assert "notebooks/.twins/a.py: newer than the notebook and different" in err and "jupytext --sync" in err, err
    assert "x = 2" in twin.read_text()


def test_a_generated_region_with_its_markers_reversed_is_named():
    """END before BEGIN in a hand-written doc is named as a malformed region, not a bare unpacking error."""
    text = "a\n<!-- END GENERATED: x -->\nold\n<!-- BEGIN GENERATED: x -->\nb\n"
    with pytest.raises(SystemExit, match="docs/x.md: needs exactly one"):
        generate.replace_region(text, "x", "new", "docs/x.md")


def test_saving_a_worksheet_in_jupyterlab_writes_no_twin(tmp_path):
    """JupyterLab saves through jupytext's contents manager (the dev extra installs jupytext): a worksheet saved by
    a student must stay a plain notebook (no exercises/.twins/, no "jupytext" metadata), while a lesson keeps
    its twin up to date. The server runs as `make lab` starts it, with hidden paths allowed."""
    pytest.importorskip("jupytext")
    from jupyter_server.services.contents.largefilemanager import LargeFileManager
    from jupytext.sync_contentsmanager import build_sync_jupytext_contents_manager_class

    shutil.copy(ROOT / "jupytext.toml", tmp_path)
    for folder, name in (("exercises", "01_schedules"), ("notebooks", "01_noise_schedules")):
        (tmp_path / folder / ".twins").mkdir(parents=True)
        shutil.copy(ROOT / folder / f"{name}.ipynb", tmp_path / folder)
        for extra in ("jupytext.toml", f".twins/{name}.py"):
            if (ROOT / folder / extra).exists():
                shutil.copy(ROOT / folder / extra, tmp_path / folder / extra)
    manager = build_sync_jupytext_contents_manager_class(LargeFileManager)(root_dir=str(tmp_path), allow_hidden=True)
    for path in ("exercises/01_schedules.ipynb", "notebooks/01_noise_schedules.ipynb"):
        manager.save(manager.get(path), path)
    assert not list((tmp_path / "exercises" / ".twins").iterdir())
    assert "jupytext" not in nbformat.read(tmp_path / "exercises" / "01_schedules.ipynb", 4).metadata
    assert (tmp_path / "notebooks" / ".twins" / "01_noise_schedules.py").read_text() == (
        ROOT / "notebooks" / ".twins" / "01_noise_schedules.py").read_text()


def test_every_notebook_stores_the_kernel_s_full_language_info():
    """JupyterLab writes the kernel's language_info into a notebook when the kernel starts: a notebook stored with
    less (the start page had only {"name": "python"}) opens already marked unsaved, and closing it untouched asks
    "Save changes?"."""
    keys = {"codemirror_mode", "file_extension", "mimetype", "name", "nbconvert_exporter", "pygments_lexer", "version"}
    for path in sorted(ROOT.glob("*/*.ipynb")):
        info = nbformat.read(path, as_version=4).metadata.get("language_info", {})
        assert keys <= set(info), f"{path.relative_to(ROOT)}: language_info {info}"


def test_every_relative_link_in_a_notebook_points_at_a_file():
    """A lesson's "Next" and "Exercises" links open the notebook they name in JupyterLab (relative to the
    notebook's folder): a renamed file must not leave a dead link behind."""
    dead = []
    for path in sorted(ROOT.glob("*/*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "markdown":
                continue
            for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", cell.source):
                if "://" not in target and not target.startswith("mailto:") and not (path.parent / target).exists():
                    dead.append(f"{path.relative_to(ROOT)}: {target}")
    assert not dead, dead


def _printed_lines(notebook) -> list[str]:
    """The lines a student reads as printed text in a notebook's stored outputs: streams, and the plain text of a
    result that has no richer view (a widget, HTML or a figure is drawn, its text/plain never shown)."""
    rich = {"application/vnd.jupyter.widget-view+json", "text/html", "image/png", "image/svg+xml"}
    lines = []
    for cell in (c for c in notebook.cells if c.cell_type == "code"):
        for output in cell.outputs:
            if output.output_type == "stream":
                lines += output.text.split("\n")
            elif "text/plain" in output.get("data", {}) and not rich & set(output.data):
                lines += output.data["text/plain"].split("\n")
    return lines


def test_no_stored_printed_line_is_wider_than_the_output_area():
    """JupyterLab shows printed text with `word-break: break-all`: a stored line wider than settings.PRINT_WIDTH
    (a config, a stored run's command, a benchmark's conditions: 21 lines of 121-265 characters) is cut mid-word
    on a 1366-pixel screen. The lessons print long lines through settings.wrapped."""
    from course_utils.settings import PRINT_WIDTH

    wide = [f"{path.relative_to(ROOT)}: {len(line)} characters: {line[:60]}..."
            for path in sorted(ROOT.glob("*/*.ipynb"))
            for line in _printed_lines(nbformat.read(path, as_version=4)) if len(line) > PRINT_WIDTH]
    assert not wide, "\n".join(wide)
    printed = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[           # the scan can fail
        nbformat.v4.new_output("stream", name="stdout", text="x" * (PRINT_WIDTH + 1) + "\nshort\n")])])
    assert max(map(len, _printed_lines(printed))) == PRINT_WIDTH + 1


def _markdown_after(notebook, index: int) -> str:
    """The markdown cells that follow code cell ``index``, up to the next code cell, as one text."""
    text = []
    for cell in notebook.cells[index + 1:]:
        if cell.cell_type == "code":
            break
        text.append(cell.source)
    return " ".join(" ".join(text).split())


def _cell_printing(notebook, pattern: str) -> tuple[int, str]:
    """The index and printed text of the one code cell whose stored output matches ``pattern``."""
    found = [(i, "".join(o.get("text", "") for o in c.outputs if o.output_type == "stream"))
             for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    found = [(i, text) for i, text in found if re.search(pattern, text, re.M)]
    assert len(found) == 1, f"{len(found)} cells print {pattern!r}"
    return found[0]


def test_lesson_7s_live_seconds_are_what_its_text_says():
    """Lesson 7's text reads its live figure's seconds ("time follows calls: A-B s for 16 images at about 10 calls,
    C s for DDIM 50"). A re-execution on a busy machine once stored 41.0 s for DDIM 50 and 2.4 to 23.1 s for three
    samplers of 10 calls beside that sentence (the seconds were only in the figure's titles). The cell prints them;
    this holds the stored run to the text, and to the claim itself (re-execute on an idle machine). The stored run
    is a full one: 16 images, as the text says."""
    nb = nbformat.read(ROOT / "notebooks" / "07_fast_samplers.ipynb", as_version=4)
    index, printed = _cell_printing(nb, r"^DDIM, 50 calls, .*: +[\d.]+ s for \d+ images$")
    runs = [(int(calls), float(s)) for calls, s in
            re.findall(r"^[^,\n]+, (\d+) calls, [^:\n]+: +([\d.]+) s for 16 images$", printed, re.M)]
    assert len(runs) == 5, printed
    ddim50 = next(s for calls, s in runs if calls == 50)
    few = sorted(s for calls, s in runs if calls <= 10)
    assert few[-1] <= 2 * few[0] + 0.1, f"{few}: the 10-call samplers' seconds should agree (time follows calls)"
    assert ddim50 >= 3 * few[-1], f"DDIM 50 took {ddim50} s, against {few} for 10 calls: not 5 times the calls"
    text = _markdown_after(nb, index)
    quoted = re.search(r"time follows calls: ([\d.]+)-([\d.]+) s for \d+ images at about 10 calls "
                       r"\(Heun's 9\), ([\d.]+) s for DDIM 50", text)
    assert quoted, "the text no longer quotes the live seconds in the form this test reads"
    assert [float(v) for v in quoted.groups()] == [round(few[0], 1), round(few[-1], 1), round(ddim50, 1)], (
        f"the text quotes {quoted.group(0)!r}; the stored run printed {runs}")


def test_lesson_5s_quoted_sampling_times_are_its_stored_run():
    """Lesson 5 quotes its own run's seconds for DDIM 50 and DDPM 1000 ("in this notebook's run A s against B s
    (N times)"); a re-execution changes them, and the sentence must follow. The stored run is a full one (48
    samples per sampler)."""
    nb = nbformat.read(ROOT / "notebooks" / "05_ddpm_vs_ddim.ipynb", as_version=4)
    _, printed = _cell_printing(nb, r"^sampler +network calls +wall time \(s\)")         # the live table
    ddpm = float(re.search(r"^DDPM 1000 +1000 +([\d.]+) ", printed, re.M).group(1))
    ddim = float(re.search(r"^DDIM 50 +50 +([\d.]+) ", printed, re.M).group(1))
    assert "(48 samples per sampler" in printed, "the stored run is not the full one the text describes"
    text = " ".join(" ".join(c.source for c in nb.cells if c.cell_type == "markdown").split())
    quoted = re.search(r"in this notebook's run ([\d.]+) s against ([\d.]+) s \((\d+) times\)", text)
    assert quoted, "the text no longer quotes the stored run's seconds in the form this test reads"
    said_ddim, said_ddpm, said_ratio = float(quoted.group(1)), float(quoted.group(2)), int(quoted.group(3))
    assert said_ddim == ddim and abs(said_ddpm - ddpm) <= 0.5 and abs(said_ratio - ddpm / ddim) <= 0.5, (
        f"the text quotes {quoted.group(0)!r}; the stored run printed DDIM 50 {ddim} s, DDPM 1000 {ddpm} s")


def test_lesson_4s_quoted_training_minutes_are_its_stored_run():
    """Lesson 4 quotes the minutes its stored run trained the image model ("M in the stored run below", one
    decimal): a re-execution changes them, and the sentence must follow."""
    nb = nbformat.read(ROOT / "notebooks" / "04_training.ipynb", as_version=4)
    _, printed = _cell_printing(nb, r"^resumed at step \d+, now at step \d+; total training time \d+ s$")
    seconds = int(re.search(r"total training time (\d+) s", printed).group(1))
    text = " ".join(" ".join(c.source for c in nb.cells if c.cell_type == "markdown").split())
    quoted = re.search(r"([\d.]+) in the stored run below", text)
    assert quoted, "the text no longer quotes the stored run's minutes in the form this test reads"
    assert abs(float(quoted.group(1)) - seconds / 60) <= 0.05 + 1e-9, (
        f"the text says {quoted.group(0)!r} minutes; the stored run printed {seconds} s ({seconds / 60:.2f} min)")
