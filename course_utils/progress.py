"""The course's progress bars: ``tqdm.auto``'s (a widget in a notebook, text in a terminal), ending on their last
count.

A ``leave=False`` bar (the samplers' and solvers', so that a loop of sampling calls leaves no trail of bars)
closes in a notebook without drawing its last update: tqdm draws at most every ``mininterval`` seconds, and its
``close`` hides the widget without redrawing it. A notebook executed and saved with its widgets' state
(``nbconvert --execute``, nbclient) then showed DDPM's bar at "100% ... 999/1000" beside its finished samples.
``tqdm`` here draws the last count before closing; the rest is tqdm's.

The plain-text copy of a notebook bar (what GitHub shows of a saved notebook, and any viewer without widgets)
is the bar as it was first displayed, "0/1000". Displaying the bar under a display id and updating it at the end
mends that in nbclient, but an update sent when a bar is garbage-collected lands in whatever cell runs then, and
executing lesson 5 with nbclient then stalled on its interact cell until the cell timeout (measured: 120 s of a
120 s timeout, in both runs with it; the cell took 0.2 s in the run without it). So the stored notebooks are
mended after they ran instead: ``saved_bars_as_text`` (``make generated``) writes each saved bar's plain text
from the widget state saved with it, which holds the bar's last drawing.
"""
from __future__ import annotations

import html

from tqdm.auto import tqdm as _tqdm_auto

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


class tqdm(_tqdm_auto):  # noqa: N801 - the name of what it stands in for
    """``tqdm.auto.tqdm`` whose ``leave=False`` bars draw their last count before they close."""

    def close(self) -> None:
        if not getattr(self, "disable", True) and not self.leave:     # not disabled, not closed already
            self.refresh()
        super().close()


def saved_bar_text(state: dict, model_id: str, width: int = 10) -> str | None:
    """The plain text of the tqdm bar ``model_id`` as a notebook's saved widget ``state`` last drew it, in tqdm's
    own plain format ("DDPM: 100%|##########| 1000/1000 [04:50<00:00,  3.35it/s]"); None if that model is not a
    tqdm bar (an HBox of an HTML, a FloatProgress and an HTML: ``tqdm.notebook``'s layout)."""
    model = state.get(model_id, {})
    children = model.get("state", {}).get("children", [])
    if model.get("model_name") != "HBoxModel" or len(children) != 3:
        return None
    parts = [state.get(str(child).removeprefix("IPY_MODEL_"), {}) for child in children]
    if [part.get("model_name") for part in parts] != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    left, progress, right = (part.get("state", {}) for part in parts)
    value, maximum = progress.get("value") or 0, progress.get("max") or 0
    filled = min(width, int(width * value / maximum)) if maximum > 0 else 0

    def text(html_value) -> str:   # tqdm writes figure spaces (U+2007) and escapes '<' in its HTML widgets
        return html.unescape(str(html_value or "")).replace("\u2007", " ")

    return f"{text(left.get('value'))}|{'#' * filled}{' ' * (width - filled)}|{text(right.get('value'))}"


def saved_bars_as_text(nb) -> int:
    """Write the plain-text copy of every tqdm bar in notebook ``nb`` (an nbformat v4 node, changed in place)
    from the widget state saved with it; returns how many changed. A notebook without saved widget state, and
    any widget that is not a bar, is left as it is."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    changed = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = output.get("data", {})
            if output.get("output_type") != "display_data" or WIDGET_VIEW not in data:
                continue
            text = saved_bar_text(state, data[WIDGET_VIEW].get("model_id", ""))
            if text is not None and data.get("text/plain") != text:
                data["text/plain"] = text
                changed += 1
    return changed
