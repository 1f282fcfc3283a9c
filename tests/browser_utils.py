"""Drive the course in a real JupyterLab with Debian's Chromium (Playwright): what tests/test_browser.py and
tools/screenshots.py share.

- ``LabServer`` starts ``jupyter-lab`` of this environment DIRECTLY (``subprocess.Popen``, so its pid is the
  server's) on 127.0.0.1, a free port (bound to port 0 first), a random token and ``--ServerApp.port_retries=0``,
  with temporary Jupyter config/data/runtime/settings directories so a user's own settings cannot interfere,
  and stops it by that pid (terminate, wait, kill).
- ``launch_chromium`` starts /usr/bin/chromium headless (no Playwright browser download).
- ``run_notebook`` opens a notebook, runs Run > Run All Cells, waits for the kernel, collects the error outputs,
  moves every widget and checks that its output changed, and takes a screenshot.

JupyterLab runs with ``--LabApp.expose_app_in_browser=True`` so the test can read the notebook model
(execution counts, outputs) as ``window.jupyterapp``; what a student SEES (error outputs, widgets) is read
from the DOM.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
                 "--disable-dev-shm-usage"]
OVERRIDES = REPO / "tools" / "jupyterlab" / "overrides.json"
# Only for the test: no autosave (the served copies must stay as they are), kernels shut down with their tab.
TEST_OVERRIDES = {
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},
    "@jupyterlab/notebook-extension:tracker": {"kernelShutdown": True},
}
# The one error an untouched worksheet may show: its TODOs raise NotImplementedError.
EXPECTED_WORKSHEET_ERROR = re.compile(r"NotImplementedError|not implemented yet")


def in_ci() -> bool:
    """True under CI (the environment variable CI set and not '0'/'false'), as in tests/conftest.py."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(message: str):
    """A missing browser: a failure in CI, a skip with the reason elsewhere."""
    import pytest

    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def is_worksheet(path: str) -> bool:
    """Worksheets (exercises/*.ipynb) are the notebooks whose TODOs may say 'not implemented yet'."""
    return path.startswith("exercises/") or "/exercises/" in path


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bind port 0, read what the OS gave, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jupyter_lab_executable() -> str:
    """The jupyter-lab of the environment running this Python (the course's venv)."""
    exe = Path(sys.executable).parent / "jupyter-lab"
    if exe.exists():
        return str(exe)
    found = shutil.which("jupyter-lab")
    if found is None:
        raise FileNotFoundError(f"no jupyter-lab next to {sys.executable} nor on PATH")
    return found


class LabServer:
    """A headless JupyterLab on 127.0.0.1 serving ``root_dir``; ``workdir`` holds its private Jupyter dirs."""

    def __init__(self, root_dir: Path, workdir: Path, *, env: dict | None = None, test_settings: bool = True):
        self.root_dir, self.workdir = Path(root_dir), Path(workdir)
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.log_path = self.workdir / "jupyter-lab.log"
        self.proc: subprocess.Popen | None = None
        self.extra_env = dict(env or {})
        self.test_settings = test_settings

    # ---------------------------------------------------------------- start / stop
    def start(self, timeout: float = 180.0) -> "LabServer":
        dirs = {name: self.workdir / name for name in ("config", "data", "runtime", "settings", "user-settings",
                                                       "workspaces", "ipython")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        overrides = json.loads(OVERRIDES.read_text())
        if self.test_settings:
            for plugin, values in TEST_OVERRIDES.items():
                overrides.setdefault(plugin, {}).update(values)
        (dirs["settings"] / "overrides.json").write_text(json.dumps(overrides, indent=2))
        env = dict(os.environ)
        env.update({
            "JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_DATA_DIR": str(dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]), "JUPYTERLAB_SETTINGS_DIR": str(dirs["user-settings"]),
            "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]), "IPYTHONDIR": str(dirs["ipython"]),
            "JUPYTER_PREFER_ENV_PATH": "1", "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        cmd = [jupyter_lab_executable(), "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={self.port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root_dir}", f"--LabApp.app_settings_dir={dirs['settings']}",
               "--LabApp.expose_app_in_browser=True"]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.root_dir, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter-lab exited with {self.proc.returncode} before answering:\n"
                                   f"{self.log_tail()}")
            try:
                status = self.api("GET", "/api/status", timeout=5)
                if "started" in status:
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"jupyter-lab did not answer /api/status within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the server by its pid: terminate (SIGTERM), wait, then kill."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self._log.close()
        self.proc = None

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    # ---------------------------------------------------------------- REST
    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}{path}{sep}token={self.token}"

    def api(self, method: str, path: str, timeout: float = 30):
        req = urllib.request.Request(self.url(path), method=method)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def shutdown_sessions(self, path: str | None = None) -> None:
        """Shut down the kernel sessions (of ``path``, or all) through the REST API."""
        for session in self.api("GET", "/api/sessions") or []:
            if path is None or session.get("path") == path:
                try:
                    self.api("DELETE", f"/api/sessions/{session['id']}")
                except urllib.error.URLError:
                    pass


def launch_chromium(playwright):
    """Debian's Chromium, headless, through Playwright (never ``playwright install``)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=120_000)


# -------------------------------------------------------------------- notebook state, read in the page
JS_STATE = """() => {
  const app = window.jupyterapp;
  const w = app && app.shell.currentWidget;
  if (!w || !w.content || !w.content.model || !w.context) return null;
  const sc = w.sessionContext;
  const kernel = sc && sc.session ? sc.session.kernel : null;
  const cells = [];
  const list = w.content.model.cells;
  for (let i = 0; i < list.length; i++) {
    const c = list.get(i);
    const src = c.sharedModel.getSource();
    cells.push({type: c.type, empty: src.trim().length === 0,
                count: c.type === 'code' ? c.executionCount : null,
                state: c.type === 'code' ? (c.executionState || 'idle') : 'idle'});
  }
  return {path: w.context.path, ready: w.context.isReady, kernel: kernel ? kernel.name : null,
          status: kernel ? kernel.status : (sc ? sc.kernelDisplayStatus : null), cells};
}"""

# Every code cell's outputs as a student sees them: text of stderr/error outputs, and its widgets.
JS_OUTPUTS = """() => {
  const cells = Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell'));
  return cells.map((cell, index) => {
    const outs = Array.from(cell.querySelectorAll(".jp-OutputArea-output"));
    const stderr = Array.from(cell.querySelectorAll(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")).map(e => e.innerText);
    const tracebacks = outs.filter(e => /Traceback \\(most recent call last\\)|Error displaying widget|Model not found/
        .test(e.innerText) && !stderr.includes(e.innerText)).map(e => e.innerText);
    return {index, code: cell.classList.contains('jp-CodeCell'), stderr, tracebacks,
            widgets: cell.querySelectorAll('.jp-OutputArea-output .jupyter-widgets').length,
            loading: outs.filter(e => /Loading widget\\.\\.\\./.test(e.innerText)).length,
            text: outs.map(e => e.innerText).join('\\n').slice(0, 4000)};
  });
}"""

# The controls a student can move, in document order: ipywidgets sliders (noUiSlider handles) and dropdowns.
CONTROLS = (".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output .widget-slider .noUi-handle, "
            ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output .widget-dropdown select")

JS_CELL_WIDGET_OUTPUT = """(control) => {
  const cell = control.closest('.jp-Cell');
  const outs = cell.querySelectorAll('.widget-output');
  if (outs.length) return Array.from(outs).map(o => o.innerHTML).join('\\n');
  // interact without an Output widget: everything in the output area except the controls themselves
  return Array.from(cell.querySelectorAll('.jp-OutputArea-output')).map(o => {
    const clone = o.cloneNode(true);
    clone.querySelectorAll('.widget-slider, .widget-dropdown').forEach(e => e.remove());
    return clone.innerHTML; }).join('\\n');
}"""


@dataclass
class NotebookReport:
    path: str
    seconds: float = 0.0
    kernel: str | None = None
    code_cells: int = 0
    executed: int = 0
    widgets_moved: int = 0
    expected_errors: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    screenshot: str | None = None

    def summary(self) -> str:
        return (f"{self.path}: {self.executed}/{self.code_cells} code cells run, {self.widgets_moved} widgets moved, "
                f"{len(self.expected_errors)} expected 'not implemented yet' errors, {self.seconds:.0f} s, "
                f"kernel {self.kernel}")


def notebook_state(page):
    return page.evaluate(JS_STATE)


def wait_until(predicate, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def open_notebook(page, server: LabServer, path: str, timeout: float = 180.0):
    """Open ``path`` (relative to the server's root) and wait for its kernel to be idle."""
    page.goto(server.url(f"/lab/tree/{path}"), timeout=timeout * 1000)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=timeout * 1000)

    def ready():
        s = notebook_state(page)
        return s if s and s["path"] == path and s["ready"] and s["status"] == "idle" else None

    state = wait_until(ready, timeout, f"{path} to open with an idle kernel")
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=timeout * 1000)
    return state


def run_all_from_menu(page) -> None:
    """Run > Run All Cells, through the menu bar as a student would."""
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).first.click()
    page.locator(".lm-Menu-content .lm-Menu-item", has=page.locator(".lm-Menu-itemLabel",
                 has_text=re.compile(r"^Run All Cells$"))).first.click()


def wait_for_execution(page, timeout: float) -> dict:
    """Wait until no cell is running or queued and the kernel is idle (stable for 2 s)."""
    stable_since = [None]

    def done():
        s = notebook_state(page)
        busy = s is None or s["status"] != "idle" or any(c["state"] == "running" for c in s["cells"])
        if busy:
            stable_since[0] = None
            return None
        stable_since[0] = stable_since[0] or time.monotonic()
        return s if time.monotonic() - stable_since[0] > 2.0 else None

    return wait_until(done, timeout, "all cells to finish and the kernel to be idle", poll=1.0)


def _unrun(state) -> list[int]:
    return [i for i, c in enumerate(state["cells"]) if c["type"] == "code" and not c["empty"] and c["count"] is None]


def classify_errors(outputs, worksheet: bool):
    """(expected, problems): stderr/error outputs, the worksheets' 'not implemented yet' being the expected ones."""
    expected, problems = [], []
    for cell in outputs:
        for text in cell["stderr"] + cell["tracebacks"]:
            short = text.strip()[-600:]
            if worksheet and EXPECTED_WORKSHEET_ERROR.search(text):
                expected.append((cell["index"], short))
            else:
                problems.append(f"cell {cell['index'] + 1}: error/stderr output:\n{short}")
        if cell["loading"]:
            problems.append(f"cell {cell['index'] + 1}: a widget still shows 'Loading widget...' (did not render)")
    return expected, problems


def move_widgets(page, report: NotebookReport, timeout: float) -> None:
    """Move each slider (focus + ArrowRight, or ArrowLeft at the end) and dropdown (another option); the
    widget's output (its cell's .widget-output, else its output area) must change within ``timeout``."""
    controls = page.locator(CONTROLS)
    n = controls.count()
    for k in range(n):
        control = controls.nth(k)
        control.scroll_into_view_if_needed(timeout=30_000)
        cell_index = control.evaluate("c => Array.from(c.closest('.jp-Notebook').querySelectorAll('.jp-Cell'))"
                                      ".indexOf(c.closest('.jp-Cell')) + 1")
        before = control.evaluate(JS_CELL_WIDGET_OUTPUT)
        tag = control.evaluate("c => c.tagName.toLowerCase()")
        if tag == "select":
            options = control.evaluate("s => Array.from(s.options).map(o => o.value)")
            current = control.evaluate("s => s.value")
            if len(options) < 2:
                continue
            new = options[(options.index(current) + 1) % len(options)]
            control.select_option(new)
            what = f"dropdown {current!r} -> {new!r}"
        else:
            old = control.get_attribute("aria-valuenow")
            control.focus()
            control.press("ArrowRight")
            if control.get_attribute("aria-valuenow") == old:
                control.press("ArrowLeft")
            what = f"slider {old} -> {control.get_attribute('aria-valuenow')}"
            if control.get_attribute("aria-valuenow") == old:
                report.problems.append(f"cell {cell_index}: slider did not move with the arrow keys ({what})")
                continue

        def changed():
            s = notebook_state(page)
            if s is None or s["status"] != "idle":
                return None
            return control.evaluate(JS_CELL_WIDGET_OUTPUT) != before

        try:
            wait_until(changed, timeout, f"the output of cell {cell_index} to change ({what})", poll=1.0)
            report.widgets_moved += 1
        except TimeoutError as err:
            report.problems.append(f"cell {cell_index}: widget moved ({what}) but its output did not change: {err}")


def screenshot(page, path: Path, scroll_to_widget: bool = True) -> str:
    """A screenshot of the notebook, scrolled to its first widget when it has one."""
    controls = page.locator(CONTROLS)
    if scroll_to_widget and controls.count():
        controls.first.evaluate("c => c.closest('.jp-Cell').scrollIntoView({block: 'start'})")
        page.wait_for_timeout(500)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    return str(path)


def run_notebook(page, server: LabServer, path: str, *, screenshot_path: Path | None = None,
                 run_timeout: float = 900.0, widget_timeout: float = 180.0) -> NotebookReport:
    """Open ``path``, Run All Cells, wait, check the error outputs, move every widget, take a screenshot.

    In a worksheet, a cell whose only error is the expected NotImplementedError of an untouched TODO does not
    stop the check: the cells below it are run (Run Selected Cell and All Below) as a student would.
    """
    worksheet = is_worksheet(path)
    report = NotebookReport(path)
    t0 = time.monotonic()
    state = open_notebook(page, server, path)
    report.kernel = state["kernel"]
    run_all_from_menu(page)
    page.wait_for_timeout(1000)
    for _ in range(50):   # at most one resume per expected error
        state = wait_for_execution(page, run_timeout - (time.monotonic() - t0))
        unrun = _unrun(state)
        if not unrun:
            break
        outputs = page.evaluate(JS_OUTPUTS)
        expected, problems = classify_errors(outputs, worksheet)
        stopped_at = max((i for i, _ in expected), default=-1)
        if problems or stopped_at < 0 or stopped_at + 1 > unrun[0]:
            break
        page.evaluate(f"""() => {{ const w = window.jupyterapp.shell.currentWidget;
            w.content.activeCellIndex = {unrun[0]};
            return window.jupyterapp.commands.execute('notebook:run-all-below'); }}""")
        page.wait_for_timeout(1000)
    code = [c for c in state["cells"] if c["type"] == "code" and not c["empty"]]
    report.code_cells, report.executed = len(code), sum(c["count"] is not None for c in code)
    outputs = page.evaluate(JS_OUTPUTS)
    report.expected_errors, problems = classify_errors(outputs, worksheet)
    report.problems += problems
    unrun = _unrun(state)
    if unrun:
        report.problems.append(f"{len(unrun)} code cells never ran (the first: cell {unrun[0] + 1}); "
                               "Run All stopped at an error")
    if report.kernel != "python3":
        report.problems.append(f"kernel is {report.kernel!r}, expected 'python3' (the course's environment)")
    move_widgets(page, report, widget_timeout)
    report.seconds = time.monotonic() - t0
    if screenshot_path is not None:
        report.screenshot = screenshot(page, screenshot_path)
    return report
