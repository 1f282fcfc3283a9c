"""course_utils.progress: a bar in a notebook saved after running ends on its last count.

Lesson 5, executed with nbconvert, stored DDPM's bar at "100% ... 999/1000": tqdm's notebook bar draws at most
every ``mininterval`` seconds and, with ``leave=False``, closes without drawing again. Here a notebook runs
tqdm.auto's bar and the course's with a ``mininterval`` longer than the loop, and the widgets' state nbclient
saves is read back."""
from __future__ import annotations

import io
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
