"""course_utils.progress: a bar in a notebook saved after running ends on its last count.

Lesson 5, executed with nbconvert, stored DDPM's bar at "100% ... 999/1000": tqdm's notebook bar draws at most
every ``mininterval`` seconds and, with ``leave=False``, closes without drawing again. Here a notebook runs
tqdm.auto's bar and the course's with a ``mininterval`` longer than the loop, and the widgets' state nbclient
saves is read back."""
from __future__ import annotations

import datetime
import io
import pathlib
import re

import nbformat
import pytest

from course_utils import progress

LOOP = "for _ in {bar}(range(1000), desc='{desc}', leave={leave}, mininterval=60):\n    pass\n"


def _counts(nb) -> dict[str, str]:
    """desc -> the count its bar's saved widget shows ('0/1000', '1000/1000', ...)."""
    state = nb.metadata["widgets"][progress.WIDGET_STATE]["state"]
    texts = [text for model_id in state if (text := progress.saved_bar_text(state, model_id))]
    return {text.split(":")[0]: re.search(r"\d+/\d+", text.split("|")[-1]).group() for text in texts}


@pytest.mark.slow
def test_a_saved_bar_ends_on_its_last_count(tmp_path):
    from nbclient import NotebookClient
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from tqdm.auto import tqdm as auto\nfrom course_utils.progress import tqdm as course\n"
        + "".join(LOOP.format(bar=bar, desc=f"{bar}-{leave}", leave=leave)
                  for bar in ("auto", "course") for leave in (False, True))
        + "for _ in course(range(3), disable=True):\n    pass\n")])
    NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert _counts(nb) == {"auto-False": "0/1000", "auto-True": "1000/1000",
                           "course-False": "1000/1000", "course-True": "1000/1000"}

    # The plain-text copies (what GitHub shows) are the bars as first displayed, until make generated's
    # saved_bars_as_text writes them from the saved state: the same counts, in tqdm's plain format.
    bars = [o for o in nb.cells[0].outputs if progress.WIDGET_VIEW in o.get("data", {})]
    assert len(bars) == 4 and all("| 0/1000 [" in o.data["text/plain"] for o in bars)
    assert progress.saved_bars_as_text(nb) == 4
    plain = sorted(re.match(r"([\w-]+): +(\d+%)\|([# ]+)\| (\d+/\d+) \[", o.data["text/plain"]).groups() for o in bars)
    # tqdm.auto's leave=False bar: its progress widget got the last count, its text did not (drawn as saved)
    assert plain == [("auto-False", "0%", "#" * 10, "0/1000"), ("auto-True", "100%", "#" * 10, "1000/1000"),
                     ("course-False", "100%", "#" * 10, "1000/1000"), ("course-True", "100%", "#" * 10, "1000/1000")]
    assert progress.saved_bars_as_text(nb) == 0          # written once, then nothing left to change


def _bar_state(value, maximum, left="DDPM:\u2007\u200750%", right="\u20075/10\u2007[00:01&lt;00:01,\u20073.00it/s]"):
    html = {"model_name": "HTMLModel"}
    return {"bar": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]}},
            "l": {**html, "state": {"value": left}}, "r": {**html, "state": {"value": right}},
            "p": {"model_name": "FloatProgressModel", "state": {"value": value, "max": maximum}},
            "slider": {"model_name": "IntSliderModel", "state": {"value": 3}}}


def test_a_saved_bar_reads_as_tqdm_writes_it():
    assert progress.saved_bar_text(_bar_state(5, 10), "bar") == "DDPM:  50%|#####     | 5/10 [00:01<00:01, 3.00it/s]"
    assert progress.saved_bar_text(_bar_state(12, 10), "bar").count("#") == 10      # never past the bar's end
    assert progress.saved_bar_text(_bar_state(0, None), "bar").startswith("DDPM:  50%|          |")   # total unknown
    for not_a_bar in ("slider", "p", "missing"):
        assert progress.saved_bar_text(_bar_state(5, 10), not_a_bar) is None
    state = _bar_state(5, 10)
    state["bar"]["state"]["children"] = ["IPY_MODEL_l", "IPY_MODEL_slider", "IPY_MODEL_r"]   # another HBox
    assert progress.saved_bar_text(state, "bar") is None


# ------------------------------------------------------------------ found by a mutation audit (2026-12-05)
def test_a_leave_false_bar_draws_its_last_count_before_closing():
    """The course's bar with leave=False shows 1000/1000 at the end even when tqdm's mininterval skipped it."""
    out = io.StringIO()
    for _ in progress.tqdm(range(1000), leave=False, mininterval=60, file=out):
        pass
    assert "1000/1000" in out.getvalue(), out.getvalue()


# ------------------------------------------------------------------ progress bars on anything slow (2026-12-07)
ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))
STORED = [path for path in NOTEBOOKS if '"execution_count": null' not in path.read_text()]   # executed, saved


def test_only_the_start_page_is_stored_unexecuted():
    """The check below reads executed notebooks only: a lesson or solution saved unexecuted would drop out of it."""
    assert [path.name for path in NOTEBOOKS if path not in STORED] == ["00_start_here.ipynb"]


# Seconds of a stored run (2 cores). A cell that ran 5-7 s here could pass 10 s on a slower laptop; the cell that
# first imports torch is the one that may take longer without a bar (`import torch` alone takes about 3 s here).
SLOW_S = 5.0


def _seconds(cell) -> float | None:
    """How long ``cell`` ran when its notebook was executed and saved (nbclient's timing metadata)."""
    timing = cell.get("metadata", {}).get("execution", {})
    if "iopub.execute_input" not in timing or "shell.execute_reply" not in timing:
        return None
    start, end = (datetime.datetime.fromisoformat(timing[key].replace("Z", "+00:00"))
                  for key in ("iopub.execute_input", "shell.execute_reply"))
    return (end - start).total_seconds()


def silent_slow_cells(nb, slow_s: float = SLOW_S) -> list[str]:
    """The code cells of a stored notebook that ran longer than ``slow_s`` seconds and showed no progress bar (but
    the cell that first imports torch)."""
    state = nb.metadata.get("widgets", {}).get(progress.WIDGET_STATE, {}).get("state", {})
    silent = []
    imports_torch = next((i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
                          and re.search(r"^import torch$", cell.source, re.MULTILINE)), None)
    for index, cell in enumerate(nb.cells):
        seconds = _seconds(cell) if cell.cell_type == "code" else None
        if seconds is None or seconds <= slow_s or index == imports_torch:
            continue
        views = [o.data[progress.WIDGET_VIEW].get("model_id", "") for o in cell.outputs
                 if o.get("output_type") == "display_data" and progress.WIDGET_VIEW in o.get("data", {})]
        if not any(progress.saved_bar_text(state, model_id) is not None for model_id in views):
            silent.append(f"cell {index} ran {seconds:.0f} s without a bar: {cell.source.splitlines()[0][:70]}")
    return silent


@pytest.mark.parametrize("path", STORED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_slow_cell_shows_a_progress_bar(path):
    """A student waits on a cell that runs for long: its stored run shows a bar (the course's tqdm), or the cell
    needs one. A cell that is slow only because its notebook was executed on a busy machine: re-execute it idle."""
    nb = nbformat.read(path, as_version=4)
    timed = [cell for cell in nb.cells if cell.cell_type == "code" and _seconds(cell) is not None]
    assert timed, f"{path.name}: the stored run kept no timings (re-execute it with nbconvert or nbclient)"
    assert silent_slow_cells(nb) == []


def test_a_slow_cell_without_a_bar_is_found():
    """The check above on cells made for it: a slow cell with a bar, one with printed lines only, a fast one."""
    def cell(seconds, outputs):
        return nbformat.v4.new_code_cell("work()", outputs=outputs, metadata={"execution": {
            "iopub.execute_input": "2026-12-07T10:00:00.000000Z",
            "shell.execute_reply": f"2026-12-07T10:00:{seconds:02d}.500000Z"}})
    bar = nbformat.v4.new_output("display_data", data={progress.WIDGET_VIEW: {"model_id": "bar"}, "text/plain": ""})
    printed = nbformat.v4.new_output("stream", name="stdout", text="w = 0: accuracy 5%\n")
    imports = cell(8, [])
    imports.source = "import math\nimport torch\n"
    nb = nbformat.v4.new_notebook(cells=[imports, cell(40, [bar]), cell(40, [printed]), cell(4, [printed]),
                                         cell(6, [printed])],
                                  metadata={"widgets": {progress.WIDGET_STATE: {"state": _bar_state(5, 10)}}})
    assert silent_slow_cells(nb) == ["cell 2 ran 40 s without a bar: work()", "cell 4 ran 6 s without a bar: work()"]
    nb.metadata.widgets[progress.WIDGET_STATE]["state"].pop("bar")      # a widget view that is no bar
    assert len(silent_slow_cells(nb)) == 3
    imports.source = "import math\n"                                     # no torch: 8 s of imports is slow
    assert len(silent_slow_cells(nb)) == 4
