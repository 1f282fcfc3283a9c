"""Progress bars: ``tqdm.auto``'s (a widget in a notebook, text in a terminal), ending on their last count.

A ``leave=False`` bar (the samplers' and solvers', so that a loop of sampling calls leaves no trail of bars)
closes in a notebook without drawing its last update: tqdm draws at most every ``mininterval`` seconds and its
``close`` hides the widget without redrawing it. A notebook executed and saved with its widgets' state
(``nbconvert --execute``, nbclient) then showed DDPM's bar at "100% ... 999/1000" beside its finished samples.
``tqdm`` here draws the last count before closing; everything else is tqdm's.
"""
from __future__ import annotations

from tqdm.auto import tqdm as _tqdm_auto


class tqdm(_tqdm_auto):  # noqa: N801 - the name of what it stands in for
    """``tqdm.auto.tqdm`` whose ``leave=False`` bars draw their last count before they close."""

    def close(self) -> None:
        if not self.disable and not self.leave:
            self.refresh()
        super().close()
