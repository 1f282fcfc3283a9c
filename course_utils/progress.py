"""The course's progress bars: ``tqdm.auto``'s (a widget in a notebook, text in a terminal), ending on their last
count.

Two things a notebook saved after running (``nbconvert --execute``, nbclient, JupyterLab) kept of tqdm's
notebook bar, which the course's bar mends:

- a ``leave=False`` bar (the samplers' and solvers', so that a loop of sampling calls leaves no trail of bars)
  closes without drawing its last update (tqdm draws at most every ``mininterval`` seconds, and its ``close``
  hides the widget without redrawing it): executed lesson 5 stored DDPM's bar at "100% ... 999/1000";
- the plain-text copy of the widget, which whatever does not render widgets shows (GitHub, a terminal's
  ``jupyter nbconvert --to markdown``), is the bar as it was displayed, before the first step: "0/1000".

``tqdm`` here draws the last count before closing and, in a notebook, displays the bar under a display id
that it updates once at the end (nbclient and JupyterLab then store the final text); the rest is tqdm's.
"""
from __future__ import annotations

from tqdm.auto import tqdm as _tqdm_auto

try:
    from tqdm.notebook import tqdm_notebook as _tqdm_notebook
except ImportError:         # no ipywidgets: tqdm.auto is the text bar
    _tqdm_notebook = None
_NOTEBOOK = _tqdm_notebook is not None and issubclass(_tqdm_auto, _tqdm_notebook)


class tqdm(_tqdm_auto):  # noqa: N801 - the name of what it stands in for
    """``tqdm.auto.tqdm`` that ends on its last count, in the widget and in its plain-text copy."""

    def __init__(self, *args, **kwargs):
        self._handle = None
        shown_here = _NOTEBOOK and kwargs.get("display", True) and kwargs.get("delay", 0) <= 0
        if shown_here:
            kwargs["display"] = False
        super().__init__(*args, **kwargs)
        if shown_here and not self.disable:
            from IPython.display import display
            self._handle = display(self.container, display_id=True)
            self.displayed = True

    def close(self) -> None:
        if getattr(self, "disable", True):      # disabled, closed, or an __init__ that raised
            return
        if not self.leave:
            self.refresh()
            self._show_last()           # before the widget is closed
        super().close()
        if self.leave:
            self._show_last()

    def _show_last(self) -> None:
        if self._handle is not None:
            self._handle.update(self.container)
