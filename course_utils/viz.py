"""Plots for the course: image grids with a fixed [-1, 1] range, schedules, 2-D trajectories, animations.

Images are always mapped with (x + 1) / 2 and clipped to [0, 1]; never rescaled per image, which would
hide saturation and sign errors. Animations use matplotlib's JavaScript HTML writer (no ffmpeg).
"""
from __future__ import annotations

import math
import re
import warnings

import matplotlib.pyplot as plt
import torch
from matplotlib import animation, ticker
from torch import Tensor
from torchvision.utils import make_grid

from .schedules import NoiseSchedule


def to_display(x: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1] with a fixed affine map, clipped (no per-image rescaling)."""
    return ((x.detach().float().cpu() + 1) / 2).clamp(0, 1)


def image_grid(x: Tensor, nrow: int = 8, padding: int = 2) -> Tensor:
    """(N, C, H, W) in [-1, 1] -> one (H', W', 3) array in [0, 1] for imshow (a grey channel repeated)."""
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(x.shape)}")
    grid = make_grid(to_display(x), nrow=nrow, padding=padding, pad_value=1.0)  # (3, H', W')
    return grid.permute(1, 2, 0)


def show_images(x: Tensor, *, nrow: int = 8, title: str | None = None, ax=None, figsize=None,
                row_labels=None, col_labels=None, padding: int = 2):
    """Show a grid of images (N, C, H, W) in [-1, 1] (a tensor or a numpy array), ``nrow`` to a row; returns the axes.
    Images whose values all lie in [0, 1] (and not all 0) draw a warning: they are in another convention.

    ``row_labels`` (one per row of the grid) are written left of the rows, ``col_labels`` (one per column) under
    the columns: for a grid whose text names its rows or columns ("row k asks for digit k", "from t/T = 0.5 on").
    """
    x = torch.as_tensor(x)
    if x.ndim != 4:
        raise ValueError(f"show_images: expected images of shape (N, C, H, W), got {tuple(x.shape)}")
    n = x.shape[0]
    if n == 0:
        raise ValueError(f"show_images: got 0 images (shape {tuple(x.shape)}): nothing to draw (an empty selection?)")
    low, high = (float(v) for v in torch.aminmax(x.detach()))    # detached: no warning for a tensor with grad
    if 0 <= low and 0 < high <= 1:      # ToTensor's range, or (x + 1) / 2: drawn washed out, black as mid-grey
        warnings.warn("show_images: all values lie in [0, 1], but the course draws [-1, 1] (black = -1), so these "
                      "look grey; pass x * 2 - 1", UserWarning, stacklevel=2)
    cols, rows = min(nrow, n), -(-n // nrow)
    for labels, count, name in ((row_labels, rows, "row_labels"), (col_labels, cols, "col_labels")):
        if labels is not None and len(labels) != count:
            raise ValueError(f"{name}: {len(labels)} labels for a grid of {rows} rows and {cols} columns")
    if ax is None:
        _, ax = plt.subplots(figsize=figsize or (max(2.0, 0.9 * cols), max(2.0, 0.9 * rows)))
    ax.imshow(image_grid(x, nrow=nrow, padding=padding), vmin=0, vmax=1, interpolation="nearest")
    if row_labels is None and col_labels is None:
        ax.set_axis_off()
    else:       # make_grid puts tile k's pixels at pad + k (size + padding) ... + size - 1: ticks at the centres
        pad = padding if n > 1 else 0                   # make_grid returns a single image without a border
        H, W = x.shape[-2:]
        ax.set_axis_on()
        ax.set_xticks([pad + k * (W + padding) + (W - 1) / 2 for k in range(cols)] if col_labels is not None else [])
        ax.set_xticklabels(list(col_labels) if col_labels is not None else [])
        ax.set_yticks([pad + k * (H + padding) + (H - 1) / 2 for k in range(rows)] if row_labels is not None else [])
        ax.set_yticklabels(list(row_labels) if row_labels is not None else [])
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
    if title:
        ax.set_title(title)
    return ax


def plot_schedules(schedules: dict, *, axes=None):
    """beta_t, alpha_bar_t and log-SNR against t/T for {label: NoiseSchedule}; returns the axes. Code index t is
    the paper's step t + 1 (GLOSSARY), drawn at (t + 1) / T: so a cosine schedule's alpha_bar lies on f(t/T)/f(0)
    whatever T is."""
    check_schedule_dict("plot_schedules(schedules)", schedules, example="plot_schedules({'linear': schedule})")
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    for label, schedule in schedules.items():
        frac = schedule.t_over_T().cpu()                                      # the paper's t / T
        axes[0].plot(frac, schedule.betas.cpu(), label=label)
        axes[1].plot(frac, schedule.alpha_bar.cpu(), label=label)
        axes[2].plot(frac, schedule.log_snr().cpu(), label=label)
    for ax, name in zip(axes, [r"$\beta_t$", r"$\bar\alpha_t$", r"log-SNR $\log(\bar\alpha_t / (1-\bar\alpha_t))$"]):
        ax.set_xlabel("t / T")
        ax.set_title(name)
        ax.legend()
    axes[0].set_yscale("log")
    return axes


def plot_points(x: Tensor, *, ax=None, title: str | None = None, lim: float = 3.0, c=None, marker_size: float = 2.0):
    """Scatter 2-D points (N, 2) in a square box [-lim, lim]^2 (``marker_size``: matplotlib's ``s``, which the
    glossary keeps for the cosine schedule's offset)."""
    x = torch.as_tensor(x).detach().cpu()
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"plot_points takes points (N, 2), got {tuple(x.shape)}" + (
            "; for a trajectory (S, N, 2) pass trajectory[k] or use plot_trajectory_2d" if x.ndim == 3 else ""))
    if ax is None:
        _, ax = plt.subplots(figsize=(3.5, 3.5))
    ax.scatter(x[:, 0], x[:, 1], s=marker_size, c=c, alpha=0.6)
    ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def plot_trajectory_2d(trajectory: Tensor, *, num_frames: int = 6, lim: float = 3.0, labels=None,
                       max_per_row: int = 5):
    """Snapshots of a 2-D trajectory (S, N, 2) (x_T first), at most ``max_per_row`` panels to a row (wider rows
    shrink to illegible titles at a laptop's notebook width); returns the figure."""
    S = trajectory.shape[0]
    idx = torch.linspace(0, S - 1, num_frames).round().long().tolist()
    nrows = -(-num_frames // max_per_row)
    ncols = -(-num_frames // nrows)                     # rows as even as they come: 8 frames are 2 rows of 4
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.8 * nrows), squeeze=False)
    for ax, i in zip(axes.flat, idx):
        plot_points(trajectory[i], ax=ax, lim=lim, title=labels[i] if labels else f"step {i}/{S - 1}")
    for ax in list(axes.flat)[len(idx):]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def animate_trajectory(trajectory: Tensor, *, num_frames: int = 40, interval: int = 100, lim: float = 3.0) -> str:
    """An HTML/JavaScript animation of a trajectory: (S, N, 2) points or (S, N, C, H, W) images.

    Returns HTML for ``IPython.display.HTML``; renders in JupyterLab without ffmpeg.
    """
    S = trajectory.shape[0]
    idx = torch.linspace(0, S - 1, min(num_frames, S)).round().long().tolist()
    fig, ax = plt.subplots(figsize=(4, 4))
    if trajectory.ndim == 3:
        scat = ax.scatter(trajectory[0][:, 0], trajectory[0][:, 1], s=2, alpha=0.6)
        ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_aspect("equal")

        def draw(i):
            scat.set_offsets(trajectory[i].numpy())
            ax.set_title(f"step {i}/{S - 1}")
            return (scat,)
    else:
        img = ax.imshow(image_grid(trajectory[0]), vmin=0, vmax=1, interpolation="nearest")
        ax.set_axis_off()

        def draw(i):
            img.set_data(image_grid(trajectory[i]))
            ax.set_title(f"step {i}/{S - 1}")
            return (img,)
    anim = animation.FuncAnimation(fig, draw, frames=idx, interval=interval, blit=False)
    html = offline_player(anim.to_jshtml())
    plt.close(fig)
    return html


# matplotlib's player draws its buttons with Font Awesome icons from a CDN: offline (a student's laptop, this
# course's rule) the stylesheet never loads and every button is blank. Each icon becomes a glyph of the page's own
# font (the buttons keep their titles).
_PLAYER_GLYPHS = {"fa-minus": "&minus;", "fa-fast-backward": "|&#9664;&#9664;", "fa-step-backward": "|&#9664;",
                  "fa-play fa-flip-horizontal": "&#9664;", "fa-pause": "||", "fa-play": "&#9654;",
                  "fa-step-forward": "&#9654;|", "fa-fast-forward": "&#9654;&#9654;|", "fa-plus": "+"}


def offline_player(html: str) -> str:
    """``to_jshtml()``'s player without its CDN stylesheet: the icons replaced by text glyphs."""
    html = re.sub(r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">', "", html)
    return re.sub(r'<i class="fa (fa-[a-z-]+(?: fa-flip-horizontal)?)"></i>',
                  lambda m: _PLAYER_GLYPHS.get(m.group(1), m.group(0)), html)


def plot_loss(history, *, ax=None, title: str = "training loss"):
    """Plot a loss history [(step, loss), ...] on a log scale; ``train``'s ``TrainState`` stands for its
    ``.history``."""
    history = getattr(history, "history", history)      # plot_loss(state): what was meant is state.history
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    if history:
        steps, losses = zip(*history)
        ax.plot(steps, losses)
    ax.set_xlabel("step"), ax.set_ylabel("loss"), ax.set_yscale("log"), ax.set_title(title)
    if history:
        label_log_axis(ax, "y")              # 0.1, 0.2, 0.5 rather than 10^-1, 2x10^-1
    # at most 5 step ticks, with thousands separators: 15,625 steps' labels ran into each other at the default
    ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=5, integer=True))
    ax.xaxis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))
    return ax


def label_log_axis(ax, axis: str = "y", ticks=None):
    """Plain labels on a log axis: ``ticks`` where given, else 1-2-5 values inside the axis's limits; 1-2-3-5
    values, or every digit, when 1-2-5 leaves more than a fifth of the axis (in log length) unlabelled at either
    end or gives fewer than two labels; three rounded values when even every digit gives fewer than two.

    Matplotlib labels a log axis only at powers of ten, so an axis from 3 to 300 reads "10^1, 10^2"; and 1-2-5
    alone labels lesson 4's loss axis (0.024 to 0.5) at 0.05, 0.1, 0.2, the lowest third of its curve unread.
    """
    which = ax.xaxis if axis == "x" else ax.yaxis
    if ticks is None:
        low, high = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
        span = math.log(high / low)
        decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
        candidates = [[m * 10.0 ** d for d in decades for m in mantissas if low <= m * 10.0 ** d <= high]
                      for mantissas in ((1, 2, 5), (1, 2, 3, 5), range(1, 10))]
        candidates = [c for c in candidates if len(c) >= 2]

        def covers(c):      # neither end of the axis has more than a fifth of its log length without a label
            return math.log(c[0] / low) <= 0.2 * span and math.log(high / c[-1]) <= 0.2 * span
        ticks = next((c for c in candidates if covers(c)), candidates[0] if candidates else None)
        if ticks is None:                                # narrower still: three values, two significant digits
            ticks = [float(f"{low * (high / low) ** q:.2g}") for q in (0.1, 0.5, 0.9)]
    which.set_major_locator(ticker.FixedLocator(list(ticks)))
    which.set_major_formatter(ticker.StrMethodFormatter("{x:,g}"))
    which.set_minor_formatter(ticker.NullFormatter())
    return ax


def check_schedule_dict(call: str, schedules, *, example: str) -> None:
    """``schedules`` is a dict {label: NoiseSchedule}, or a TypeError with the right call: one schedule given
    alone is the usual mistake."""
    if not isinstance(schedules, dict):
        raise TypeError(f"{call}: schedules must be a dict {{label: NoiseSchedule}}, got {type(schedules).__name__}; "
                        f"e.g. {example}")
    wrong = {label: type(s).__name__ for label, s in schedules.items() if not isinstance(s, NoiseSchedule)}
    if wrong:
        raise TypeError(f"{call}: every value of schedules must be a NoiseSchedule, got {wrong}; e.g. {example}")
