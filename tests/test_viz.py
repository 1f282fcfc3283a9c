"""course_utils.viz: the fixed [-1, 1] -> [0, 1] map of every image grid, and readable log axes."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_utils.viz import image_grid, label_log_axis, plot_loss, to_display  # noqa: E402


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
