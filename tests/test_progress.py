"""course_utils.progress: a bar in a notebook saved after running ends on its last count.

Lesson 5, executed with nbconvert, stored DDPM's bar at "100% ... 999/1000": tqdm's notebook bar draws at most
every ``mininterval`` seconds and, with ``leave=False``, closes without drawing again. Here a notebook runs
tqdm.auto's bar and the course's with a ``mininterval`` longer than the loop, and the widgets' state nbclient
saves is read back."""
from __future__ import annotations

import re

import nbformat
import pytest

LOOP = "for _ in {bar}(range(1000), desc='{desc}', leave={leave}, mininterval=60):\n    pass\n"


def _counts(nb) -> dict[str, str]:
    """desc -> the count its bar's saved widget shows ('0/1000', '1000/1000', ...)."""
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    shown = {}
    for model in state.values():
        children = model["state"].get("children", [])
        if model["state"].get("_model_name") != "HBoxModel" or len(children) != 3:
            continue
        left, _, right = (state[c.removeprefix("IPY_MODEL_")]["state"].get("value", "") for c in children)
        shown[left.split(":")[0]] = re.search(r"\d+/\d+", right).group()
    return shown


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
