"""course_utils.viz: the fixed [-1, 1] -> [0, 1] map of every image grid, and readable log axes."""
from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib import animation  # noqa: E402

from course_utils.schedules import NoiseSchedule  # noqa: E402
from course_utils.viz import (animate_trajectory, image_grid, label_log_axis, plot_loss, plot_points,  # noqa: E402
                              plot_schedules, plot_trajectory_2d, show_images, to_display)


def test_images_map_by_one_affine_map_never_rescaled_per_image():
    x = torch.tensor([-1.0, 0.0, 1.0, -3.0, 2.0, 0.5]).reshape(1, 1, 2, 3)
    assert to_display(x).flatten().tolist() == [0.0, 0.5, 1.0, 0.0, 1.0, 0.75]
    dim = torch.full((2, 1, 4, 4), -0.5)                       # a dark image stays dark (no min-max stretch)
    assert torch.allclose(image_grid(dim, nrow=2, padding=0), torch.full((4, 8, 3), 0.25))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        image_grid(torch.zeros(3, 4, 4))


def _labels(axis) -> list[str]:
    return [label.get_text() for label in axis.get_majorticklabels()]


def _labels_in_view(ax, axis: str) -> list[str]:
    """The major tick labels inside the axis's limits (a FixedLocator may place some outside)."""
    which, k = (ax.xaxis, 0) if axis == "x" else (ax.yaxis, 1)
    low, high = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    return [label.get_text() for label in which.get_majorticklabels() if low <= label.get_position()[k] <= high]


def test_log_axis_labels_read_as_plain_numbers():
    """Lesson 5's timing panel spans 3 to 300 s: matplotlib alone labels it 10^1, 10^2."""
    fig, ax = plt.subplots()
    ax.plot([10, 20, 50, 100], [3.1, 5.5, 12.6, 26.0])
    ax.axhline(290.0)
    ax.set(xscale="log", yscale="log", ylim=(2.5, 350))
    label_log_axis(ax, "x", [10, 20, 50, 100])
    label_log_axis(ax, "y")
    fig.canvas.draw()
    assert _labels(ax.xaxis) == ["10", "20", "50", "100"]
    assert _labels(ax.yaxis) == ["5", "10", "20", "50", "100", "200"]
    assert all(label.get_text() == "" for label in ax.yaxis.get_minorticklabels())
    ax.set_ylim(0.3, 1500)
    label_log_axis(ax, "y")
    fig.canvas.draw()
    assert _labels(ax.yaxis) == ["0.5", "1", "2", "5", "10", "20", "50", "100", "200", "500", "1,000"]
    plt.close(fig)


def test_loss_plot_step_labels_do_not_run_into_each_other():
    """The lab's 15,625 steps were labelled 0, 2000, ..., 16000 in one run-together row."""
    ax = plot_loss([(step, 1.0 / (1 + step)) for step in range(0, 15_626, 125)])
    ax.figure.canvas.draw()
    labels = _labels_in_view(ax, "x")
    assert 3 <= len(labels) <= 6 and all("," in text for text in labels if len(text) > 3), labels
    plt.close(ax.figure)


def test_loss_plot_values_read_as_plain_numbers_even_on_a_narrow_axis():
    """Worksheet 4's and the lab's loss axes read 4x10^-1, 10^-1, 6x10^-2 before plot_loss labelled them."""
    ax = plot_loss([(step, 0.65 * (1 + step) ** -0.3) for step in range(0, 15_626, 125)])   # 0.65 down to 0.036
    ax.figure.canvas.draw()
    labels = _labels_in_view(ax, "y")
    assert labels == ["0.05", "0.1", "0.2", "0.5"], labels
    plt.close(ax.figure)
    ax = plot_loss([(step, 0.45 * 0.06 ** (step / 4000)) for step in range(0, 4001, 50)])   # lesson 4: 0.45 to 0.027
    ax.figure.canvas.draw()
    labels = _labels_in_view(ax, "y")      # 1-2-5 alone gave 0.05, 0.1, 0.2: the curve's lowest third unlabelled
    assert labels == ["0.03", "0.05", "0.1", "0.2", "0.3", "0.5"], labels
    plt.close(ax.figure)
    ax = plot_loss([(step, 0.25 - 0.02 * step / 3000) for step in range(0, 3001, 50)])       # 0.23 to 0.25
    ax.figure.canvas.draw()
    labels = _labels_in_view(ax, "y")
    assert len(labels) >= 2 and all("10^" not in t and "times" not in t for t in labels), labels
    assert [float(t) for t in labels] == sorted(float(t) for t in labels)
    plt.close(ax.figure)


# ---------------------------------------------------------------- image grids


def test_image_grid_separates_images_by_two_white_pixels():
    """Black digits on a black padding run into one another; the default is 2 pixels of white."""
    grid = image_grid(torch.full((2, 1, 2, 2), -1.0))                    # two black 2x2 images
    assert grid.shape == (6, 10, 3)                                      # 2 + 2*2 by 2*2 + 3*2
    assert torch.all(grid[:2] == 1.0) and torch.all(grid[:, :2] == 1.0)   # white border
    assert torch.all(grid[2:4, 2:4] == 0.0) and torch.all(grid[2:4, 6:8] == 0.0)


def test_show_images_uses_nrow_and_shows_the_title():
    """show_images(x, nrow=4) on 8 digits is two rows of four, titled as asked."""
    ax = show_images(torch.zeros(8, 1, 8, 8), nrow=4, title="samples")
    assert ax.images[0].get_array().shape[:2] == (2 * 8 + 3 * 2, 4 * 8 + 5 * 2)
    assert ax.get_title() == "samples"
    plt.close(ax.figure)


# ---------------------------------------------------------------- schedules, points, trajectories


def test_plot_schedules_draws_beta_alpha_bar_and_log_snr_against_t_over_T():
    """Three panels: beta_t on a log axis, alpha_bar_t, log-SNR; x runs over the paper's t/T = (code t + 1) / T in
    (0, 1]."""
    s = NoiseSchedule.linear(T=10)
    axes = plot_schedules({"linear": s})
    expected = [s.betas, s.alpha_bar, s.log_snr()]
    for ax, values in zip(axes, expected):
        line = ax.lines[0]
        assert np.allclose(line.get_xdata(), np.arange(1, 11) / 10)
        assert np.allclose(line.get_ydata(), values.numpy())
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["linear"]
    assert axes[0].get_yscale() == "log"
    plt.close(axes[0].figure)


def test_a_cosine_schedule_is_drawn_on_the_same_curve_whatever_T():
    """Lesson 1's explorer says the cosine alpha_bar does not move when T changes: alpha_bar(t) = f(t)/f(0), f(t) =
    cos^2((t/T + s)/(1 + s) pi/2) (Nichol and Dhariwal Eq. 17). Drawn at code t / T it sat 1/T to the left (0.1 at
    T = 10: a reader's pass of 2026-12-07); at (t + 1) / T every point but the clipped last one is on f/f(0)."""
    def f(x, s=0.008):
        return np.cos((x + s) / (1 + s) * np.pi / 2) ** 2
    for T in (10, 20, 1000):
        ax = plot_schedules({"cosine": NoiseSchedule.cosine(T=T)})[1]
        x, y = ax.lines[0].get_xdata()[:-1], ax.lines[0].get_ydata()[:-1]
        assert np.allclose(y, f(x) / f(0), atol=1e-6), T
        plt.close(ax.figure)


def test_plot_points_draws_x_against_y_in_a_square_box():
    """A point (1, -2) is drawn at x = 1, y = -2 inside [-lim, lim]^2 on both axes."""
    ax = plot_points(torch.tensor([[1.0, -2.0]]), lim=2.5)
    assert np.allclose(ax.collections[0].get_offsets(), [[1.0, -2.0]])
    assert ax.get_xlim() == (-2.5, 2.5) and ax.get_ylim() == (-2.5, 2.5)
    plt.close(ax.figure)


def test_plot_trajectory_2d_shows_the_first_and_last_step():
    """The panels must include x_T (step 0) and the final sample (step S-1), each with its own points."""
    trajectory = torch.arange(11.0).reshape(11, 1, 1).expand(11, 4, 2) / 10   # step i: every point at i/10
    fig = plot_trajectory_2d(trajectory, num_frames=3)
    assert [ax.get_title() for ax in fig.axes] == ["step 0/10", "step 5/10", "step 10/10"]
    for ax, i in zip(fig.axes, (0, 5, 10)):
        assert np.allclose(ax.collections[0].get_offsets(), trajectory[i].numpy())
    plt.close(fig)


def test_plot_trajectory_2d_wraps_eight_frames_into_two_rows_of_four():
    """Eight panels in one row are 2,000 pixels wide (their titles illegible at a laptop's width): two rows of four,
    in order, and no empty panel left drawn."""
    trajectory = torch.arange(8.0).reshape(8, 1, 1).expand(8, 2, 2)
    fig = plot_trajectory_2d(trajectory, num_frames=8)
    drawn = [ax for ax in fig.axes if ax.collections]
    assert [ax.get_title() for ax in drawn] == [f"step {i}/7" for i in range(8)]
    assert sorted({round(ax.get_position().y0, 2) for ax in drawn}, reverse=True).__len__() == 2
    assert fig.get_size_inches()[0] <= 2.6 * 4 + 1e-6
    fig7 = plot_trajectory_2d(torch.zeros(7, 2, 2), num_frames=7)          # 2 rows of 4, the eighth panel blank
    assert sum(ax.axison for ax in fig7.axes) == 7
    plt.close(fig), plt.close(fig7)


def test_show_images_labels_sit_at_the_centres_of_their_tiles():
    """A label names its tile: tick k at the centre of column (row) k of make_grid's layout, padding included (a
    tick 2 pixels off, the padding forgotten, lands on another colour here: each tile has its own)."""
    x = torch.linspace(-1, 0.5, 6)[:, None, None, None].expand(6, 1, 5, 7).clone()   # 2 rows of 3 tiles, 5 x 7
    ax = show_images(x, nrow=3, row_labels=["a", "b"], col_labels=["p", "q", "r"])
    grid = ax.get_images()[0].get_array()[..., 0]                                    # (H', W'), in [0, 1]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["p", "q", "r"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert list(ax.get_xticks()) == [2 + 3, 2 + 9 + 3, 2 + 18 + 3]               # padding 2, tile 7 wide + 2
    assert list(ax.get_yticks()) == [2 + 2, 2 + 7 + 2]                           # tile 5 high + 2
    for i, row in enumerate(ax.get_yticks()):
        for j, col in enumerate(ax.get_xticks()):
            r, c = int(row), int(col)
            tile = grid[r - 2:r + 3, c - 3:c + 4]                                # the 5 x 7 pixels around the tick
            assert np.allclose(tile, (x[3 * i + j, 0, 0, 0].item() + 1) / 2), (i, j)
    one = show_images(x[:1], nrow=1, col_labels=["only"])                         # make_grid: one image, no border
    assert list(one.get_xticks()) == [3.0] and one.get_images()[0].get_array().shape[:2] == (5, 7)
    off = plt.subplots()[1]
    off.set_axis_off()
    assert show_images(x, nrow=3, ax=off, row_labels=np.array(["a", "b"])).axison   # labels on an axes turned off
    figures = plt.get_fignums()
    with pytest.raises(ValueError, match="3 labels for a grid of 2 rows"):
        show_images(x, nrow=3, row_labels=["a", "b", "c"])
    assert plt.get_fignums() == figures                                             # refused before drawing
    plt.close("all")


def test_animate_trajectory_plays_every_step_once_when_short(monkeypatch):
    """A 5-step trajectory animates steps 0..4 once each, each frame drawing that step's points."""
    seen = []

    class Recorder:                                                      # stands in for FuncAnimation
        def __init__(self, fig, func, frames, **_):
            self.fig, self.func, self.frames = fig, func, list(frames)

        def to_jshtml(self):
            ax = self.fig.axes[0]
            for i in self.frames:
                self.func(i)
                seen.append((i, ax.get_title(), np.array(ax.collections[0].get_offsets())))
            return "<html>"

    monkeypatch.setattr(animation, "FuncAnimation", Recorder)
    trajectory = torch.arange(5.0).reshape(5, 1, 1).expand(5, 3, 2).clone()
    assert animate_trajectory(trajectory) == "<html>"
    assert [i for i, _, _ in seen] == [0, 1, 2, 3, 4]
    assert [title for _, title, _ in seen] == [f"step {i}/4" for i in range(5)]
    for i, _, offsets in seen:
        assert np.allclose(offsets, trajectory[i].numpy())


# ---------------------------------------------------------------- loss and log axes


def test_plot_loss_draws_every_point_on_a_log_axis():
    """The loss curve is the whole history, on a log y axis."""
    history = [(step, 1.0 / (1 + step)) for step in range(0, 100, 10)]
    ax = plot_loss(history)
    assert ax.get_yscale() == "log"
    assert list(ax.lines[0].get_xdata()) == [s for s, _ in history]
    assert np.allclose(ax.lines[0].get_ydata(), [v for _, v in history])
    plt.close(ax.figure)


@pytest.mark.parametrize("ylim, expected", [
    ((0.45, 3.5), ["0.5", "1", "2", "3"]),      # 1-2-5 leaves 2 to 3.5 (0.27 of the span) unlabelled at the top
    ((0.099, 1.95), ["0.1", "0.2", "0.5", "1"]),  # nothing covers 1 to 1.95: fall back to 1-2-5, not every digit
    ((0.92, 1.5), ["0.97", "1.2", "1.4"]),      # only the value 1 inside: three rounded values
])
def test_log_axis_tick_choice_follows_the_fifth_of_the_span_rule(ylim, expected):
    """label_log_axis's documented rule: 1-2-5, else 1-2-3-5 or every digit when an end has > 0.2 of the log
    span unlabelled (1-2-5 if none covers), three rounded values when fewer than two values lie inside."""
    fig, ax = plt.subplots()
    ax.set(yscale="log", ylim=ylim)
    label_log_axis(ax, "y")
    fig.canvas.draw()
    assert _labels_in_view(ax, "y") == expected
    assert all(t.get_text() == "" for t in ax.yaxis.get_minorticklabels())   # no 4x10^-1 between them
    plt.close(fig)


def test_the_animation_player_needs_no_network():
    """matplotlib's player loads Font Awesome from a CDN for its button icons: offline every button was blank.
    The course's player loads nothing and labels each button with a glyph."""
    html = animate_trajectory(torch.randn(3, 4, 2), num_frames=3)
    assert "http://" not in html and "https://" not in html and "<link" not in html
    assert 'class="fa' not in html
    buttons = re.findall(r'<button title="([^"]+)"[^>]*>\s*([^<]*)</button>', html)
    assert len(buttons) == 9 and all(label.strip() for _, label in buttons), buttons
    assert dict(buttons)["Play"].strip() == "&#9654;"


# ------------------------------------------------------------------ a student's wrong calls (the error audit)
def test_show_images_takes_numpy_and_refuses_an_empty_batch():
    """A numpy array said "'numpy.ndarray' object has no attribute 'detach'"; an empty batch (a class filter that
    matched nothing) matplotlib's "float division by zero"."""
    x = torch.linspace(-1, 1, 2 * 8 * 8).reshape(2, 1, 8, 8)
    drawn = show_images(x.numpy()).images[0].get_array()
    assert np.array_equal(drawn, show_images(x).images[0].get_array())
    with pytest.raises(ValueError, match=r"^show_images: got 0 images \(shape \(0, 1, 16, 16\)\): nothing to draw"):
        show_images(torch.zeros(0, 1, 16, 16))
    with pytest.raises(ValueError, match=r"^show_images: expected images of shape \(N, C, H, W\), got \(1, 16, 16\)"):
        show_images(torch.zeros(1, 16, 16))
    plt.close("all")


def test_plot_points_refuses_a_trajectory_and_plot_loss_takes_the_train_state():
    """plot_points on a trajectory (S, N, 2) drew 12 of its 48 points without a word; plot_loss(state) said "zip()
    argument after * must be an iterable, not TrainState": the state's history is what was meant."""
    from course_utils.training import TrainState
    with pytest.raises(ValueError, match=r"^plot_points takes points \(N, 2\), got \(6, 8, 2\); for a trajectory "
                                         r"\(S, N, 2\) pass trajectory\[k\] or use plot_trajectory_2d"):
        plot_points(torch.zeros(6, 8, 2))
    with pytest.raises(ValueError, match=r"^plot_points takes points \(N, 2\), got \(8, 3\)$"):
        plot_points(torch.zeros(8, 3))
    assert len(plot_points(np.zeros((5, 2))).collections[0].get_offsets()) == 5     # numpy points are fine
    history = [(step, 1.0 / (1 + step)) for step in range(0, 1000, 50)]
    state = TrainState(model=torch.nn.Linear(1, 1), ema_model=torch.nn.Linear(1, 1), optimizer=None, history=history)
    from_state, from_history = plot_loss(state).lines[0], plot_loss(history).lines[0]
    assert np.array_equal(from_state.get_xydata(), from_history.get_xydata())
    plt.close("all")


def test_plot_schedules_wants_a_dict_of_schedules():
    """plot_schedules(schedule) said "'NoiseSchedule' object has no attribute 'items'"."""
    linear = NoiseSchedule.linear(T=50)
    with pytest.raises(TypeError, match=r"^plot_schedules\(schedules\): schedules must be a dict \{label: "
                                        r"NoiseSchedule\}, got NoiseSchedule; e\.g\. plot_schedules\(\{'linear': "
                                        r"schedule\}\)"):
        plot_schedules(linear)
    with pytest.raises(TypeError, match=r"every value of schedules must be a NoiseSchedule, got "
                                        r"\{'linear': 'Tensor'\}"):
        plot_schedules({"linear": linear.betas})
    plt.close("all")


def test_show_images_warns_about_images_in_zero_one():
    """Images in [0, 1] (torchvision's ToTensor, (x + 1) / 2) were drawn washed out, black as mid-grey, without a
    word. A warning now (not an error: the picture is still drawn); [-1, 1] images and an all-zero grey do not warn.
    Every show_images call of the lessons and solutions draws data with values below 0 (digits on a -1 background,
    noise, latents / 3, feature maps scaled to [-1, 1] by their largest magnitude)."""
    import warnings
    x = torch.linspace(-1, 1, 2 * 8 * 8).reshape(2, 1, 8, 8)
    with pytest.warns(UserWarning, match=r"^show_images: all values lie in \[0, 1\], but the course draws \[-1, 1\] "
                                         r"\(black = -1\), so these look grey; pass x \* 2 - 1$"):
        show_images((x + 1) / 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        show_images(x), show_images(torch.zeros(2, 1, 8, 8))
        show_images(x.clone().requires_grad_(True))        # torch warned of a scalar taken from a tensor with grad
    plt.close("all")
