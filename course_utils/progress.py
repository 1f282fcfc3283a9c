"""The course's progress bars: ``tqdm.auto``'s (a widget in a notebook, text in a terminal), ending on their last
count.

A ``leave=False`` bar (the samplers' and solvers', so that a loop of sampling calls leaves no trail of bars)
closes in a notebook without drawing its last update: tqdm draws at most every ``mininterval`` seconds, and its
``close`` hides the widget without redrawing it. A notebook executed and saved with its widgets' state
(``nbconvert --execute``, nbclient) then showed DDPM's bar at "100% ... 999/1000" beside its finished samples.
``tqdm`` here draws the last count before closing; the rest is tqdm's.

Not mended: the plain-text copy of a notebook bar (what GitHub shows of a saved notebook) is the bar as it was
first displayed, "0/1000". Displaying the bar under a display id and updating it at the end mends that in
nbclient, but an update sent when a bar is garbage-collected lands in whatever cell runs then, and executing
lesson 5 with nbclient then stalled on its interact cell until the cell timeout (measured: 120 s of a 120 s
timeout, in both runs with it; the cell took 0.2 s in the run without it).
"""
from __future__ import annotations

from tqdm.auto import tqdm as _tqdm_auto


class tqdm(_tqdm_auto):  # noqa: N801 - the name of what it stands in for
    """``tqdm.auto.tqdm`` whose ``leave=False`` bars draw their last count before they close."""

    def close(self) -> None:
        if not getattr(self, "disable", True) and not self.leave:     # not disabled, not closed already
            self.refresh()
        super().close()
