"""The course in a real JupyterLab, driven in Debian's headless Chromium (Playwright), the way a student uses it.

For every lesson (notebooks/*.ipynb) and worksheet (exercises/*.ipynb) found when the tests are collected:
open it, Run > Run All Cells, wait for the kernel to be idle and every code cell to have run; no cell may
show an error or stderr output, except the "not implemented yet" of an untouched worksheet; every slider and
dropdown is moved and its output must change. A screenshot per notebook goes to artifacts/browser/ (not
committed), and one of the failing state on a failure. Set COURSE_BROWSER_SOLUTIONS=1 to add solutions/*.ipynb
(nbval runs them elsewhere).

JupyterLab serves a temporary copy of the notebooks (a run must never write into the repository), with
COURSE_QUICK=1 and COURSE_DATA_DIR passed to the kernels through the environment. The server is stopped by its
pid at the end, also on failure. In CI (CI=true) a Chromium that cannot start is a failure, not a skip.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from browser_utils import CHROMIUM, REPO, LabServer, in_ci, launch_chromium, run_notebook, skip_or_fail

import grading_corpus as corpus

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(os.environ.get("COURSE_BROWSER_ARTIFACTS", REPO / "artifacts" / "browser"))
FOLDERS = ["notebooks", "exercises"] + (["solutions"] if os.environ.get("COURSE_BROWSER_SOLUTIONS") == "1" else [])
NOTEBOOKS = sorted(str(p.relative_to(REPO)) for folder in FOLDERS for p in (REPO / folder).glob("*.ipynb"))
TIMINGS: list[str] = []


def _write_selftest_notebooks(folder: Path) -> None:
    """Two tiny notebooks with known faults, to check that the harness finds what it must find."""
    code, md = nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell
    imports = code("import ipywidgets as widgets\nfrom IPython.display import display\nfrom tqdm.auto import tqdm")
    faulty = nbformat.v4.new_notebook(cells=[
        md("# harness self-test: faults"), imports,
        code("for _ in tqdm(range(3), desc='progress'):\n    pass"),
        code("@widgets.interact(n=widgets.IntSlider(value=3, min=0, max=10))\ndef square(n):\n    print(n * n)"),
        code("out = widgets.Output()\nwith out:\n    print('I never change')\n"
             "display(widgets.IntSlider(value=1), out)"),
        code("widgets.interact(lambda name: print(name.upper()), name=widgets.Dropdown(options=['a', 'b']));"),
        code("raise ValueError('boom: an unexpected error')"),
        code("print('never reached')"),
    ])
    worksheet = nbformat.v4.new_notebook(cells=[
        md("# harness self-test: an untouched worksheet"), imports,
        code("def todo():\n    raise NotImplementedError('not implemented yet')\ntodo()"),
        code("print('the cells below an untouched TODO still run')"),
        code("from course_utils.progress import tqdm as course\nfor _ in course(range(3), desc='kept'):\n    pass\n"
             "for _ in course(range(3), desc='gone', leave=False):\n    pass"),
    ])
    (folder / "exercises").mkdir(parents=True, exist_ok=True)
    nbformat.write(faulty, folder / "faulty.ipynb")
    nbformat.write(worksheet, folder / "exercises" / "worksheet.ipynb")


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """A headless JupyterLab serving a temporary copy of notebooks/, exercises/, solutions/ (and docs/)."""
    root = tmp_path_factory.mktemp("course-root")
    for folder in ("notebooks", "exercises", "solutions", "docs"):
        if (REPO / folder).is_dir():
            shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    _write_selftest_notebooks(root / "selftest")
    env = {"COURSE_QUICK": "1"}
    if os.environ.get("COURSE_DATA_DIR"):
        env["COURSE_DATA_DIR"] = os.environ["COURSE_DATA_DIR"]
    server = LabServer(root, tmp_path_factory.mktemp("jupyter"), env=env)
    try:
        server.start()
        yield server
    finally:
        server.stop()   # by its pid: terminate, wait, kill
        if TIMINGS:
            print("\nbrowser test timings:\n  " + "\n  ".join(TIMINGS))


@pytest.fixture(scope="session")
def chromium():
    try:
        from playwright import sync_api
    except ImportError as err:
        skip_or_fail(f"playwright is not installed (the dev extra installs it): {err}")
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"{CHROMIUM} not found: `apt-get install chromium` (Debian's; CI installs it)")
    pw = sync_api.sync_playwright().start()
    try:
        browser = launch_chromium(pw)
    except Exception as err:  # noqa: BLE001 - any launch failure: fail in CI, skip elsewhere
        pw.stop()
        skip_or_fail(f"Chromium ({CHROMIUM}) could not start: {err}")
    yield browser
    browser.close()
    pw.stop()


def _attempt(chromium, lab, path: str, attempt: int):
    name = Path(path).stem if path.startswith("notebooks/") else path.replace("/", "_").removesuffix(".ipynb")
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        report = run_notebook(page, lab, path, screenshot_path=ARTIFACTS / f"{name}.png")
        if report.problems:
            page.screenshot(path=str(ARTIFACTS / f"{name}-FAILED.png"))
        return report, None
    except Exception as err:  # noqa: BLE001 - timeouts and browser errors: screenshot, maybe retry
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}-FAILED-attempt{attempt}.png"))
        except Exception:  # noqa: BLE001
            pass
        return None, err
    finally:
        lab.shutdown_sessions(path)
        context.close()


@pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks in notebooks/ or exercises/ yet")
@pytest.mark.parametrize("path", NOTEBOOKS)
def test_notebook_in_jupyterlab(chromium, lab, path):
    """Run All in JupyterLab: no unexpected errors, every widget responds (one retry on a timeout)."""
    t0 = time.monotonic()
    report, err = _attempt(chromium, lab, path, 1)
    if err is not None:   # a timeout or a browser hiccup (seen once on a first run): one retry
        report, err2 = _attempt(chromium, lab, path, 2)
        if err2 is not None:
            pytest.fail(f"{path}: failed twice; first: {err!r}; second: {err2!r}\nserver log:\n{lab.log_tail()}")
    TIMINGS.append(f"{time.monotonic() - t0:6.0f} s  {report.summary()}")
    assert not report.problems, (f"{path} in JupyterLab (screenshot in {ARTIFACTS}):\n- "
                                 + "\n- ".join(report.problems))
    if path.startswith(("notebooks/", "solutions/")):
        assert not report.expected_errors, (f"{path}: 'not implemented yet' outside a worksheet: "
                                            f"{report.expected_errors}")


def test_harness_finds_errors_and_dead_widgets(chromium, lab):
    """The checks can fail: an error, a widget whose output never changes and the cells Run All skipped
    are found; a progress bar is a widget; a worksheet's 'not implemented yet' is expected, and the cells
    below it are still run; the course's progress bars (course_utils.progress) end live as tqdm's do."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        report = run_notebook(page, lab, "selftest/faulty.ipynb", run_timeout=300, widget_timeout=20)
        problems = "\n".join(report.problems)
        assert "cell 7: error/stderr output" in problems and "boom: an unexpected error" in problems, problems
        assert "cell 5: widget moved" in problems and "did not change" in problems, problems
        assert "1 code cells never ran (the first: cell 8)" in problems, problems
        assert report.widgets_moved == 2, report.summary()
        progress = page.locator(".jupyter-widgets.widget-hprogress, .jupyter-widgets.widget-progress")
        assert progress.count() >= 1, "tqdm.auto did not draw a progress-bar widget"
        assert len(report.problems) == 3, problems
        lab.shutdown_sessions("selftest/faulty.ipynb")
        report = run_notebook(page, lab, "selftest/exercises/worksheet.ipynb", run_timeout=300)
        assert not report.problems, report.problems
        assert len(report.expected_errors) == 1 and report.executed == report.code_cells == 4, report.summary()
        # the course's bars, live: one that stays ends on its last count, one with leave=False is gone
        outputs = " ".join(page.locator(".jp-OutputArea").all_inner_texts()).replace("\u2007", " ")
        assert "kept: 100%" in outputs and "3/3" in outputs and "gone" not in outputs, outputs
    finally:
        lab.shutdown_sessions()
        context.close()


def test_ci_can_start_chromium():
    """In CI the browser test must run: Chromium present (the CI script installs it) and Playwright importable."""
    if not in_ci():
        pytest.skip("only checked in CI (CI=true)")
    import playwright.sync_api  # noqa: F401 - the dev extra installs it
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing in CI; .ci/run installs it with apt"


def test_grading_report_renders(chromium, small_class):
    """DIR/report.html of a graded class (tests/grading_small_class.py) in Chromium: the histogram and the tables
    render, nothing is fetched from anywhere, no console error, no script runs; a screenshot goes to ARTIFACTS."""
    assert small_class["proc"].returncode == 0, small_class["proc"].stderr[-3000:]
    report = small_class["out"] / "report.html"
    context = chromium.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    errors, requests, dialogs = [], [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        box = page.locator("svg.histogram").bounding_box()
        assert box and box["width"] > 300 and box["height"] > 150, box
        todos = corpus.graded_checks(nbformat.read(small_class["solution"], as_version=4))
        max_points = sum(points for _, _, _, points in todos)
        bars = max_points + 1 if max_points <= 20 else 10           # a bar per point up to 20, else 10 bins
        assert page.locator("svg.histogram rect").count() == bars
        assert page.locator("h4").count() == len(todos)             # every TODO lost points (the untouched one)
        assert "<script>" in page.locator("li.ex", has_text="ValueError").first.inner_text()   # shown as text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "grading_report.png"), full_page=True)
    finally:
        context.close()
    assert not errors, errors
    assert not dialogs, f"a submission's script ran: {dialogs}"
    assert requests == [report.as_uri()], requests
