"""The lesson explorers that the package adds: they build, redraw on every slider value, and read no globals."""
import matplotlib
import pytest
import torch
from matplotlib import pyplot as plt

from course_utils.nets import UNet
from course_utils.schedules import NoiseSchedule
from course_utils.widgets import noising_explorer, prediction_explorer

matplotlib.use("Agg")


def test_prediction_explorer_redraws_at_both_ends_of_t():
    torch.manual_seed(0)
    model = UNet(base_channels=8, channel_mults=(1, 2), attention_levels=()).eval()
    schedule = NoiseSchedule.linear(T=20)
    x0 = torch.rand(3, 1, 8, 8) * 2 - 1                                   # (B, C, H, W) in [-1, 1]
    widget = prediction_explorer(model, schedule, x0)
    slider = widget.children[0]
    assert (slider.min, slider.max) == (0, schedule.T - 1)
    for t in (0, schedule.T - 1):
        slider.value = t                                                 # redraws; must not raise


def test_prediction_explorer_passes_the_class_to_a_conditional_model():
    seen = []

    def model(xt, t, y=None):
        seen.append(y)
        return torch.zeros_like(xt)                                      # eps_pred = 0: x0_pred = x_t / sqrt(alpha_bar)

    y = torch.tensor([3, 4])
    prediction_explorer(model, NoiseSchedule.linear(T=10), torch.zeros(2, 1, 4, 4), y=y)
    assert seen and torch.equal(seen[-1], y)


@pytest.mark.parametrize("batch, rows", [(8, 2), (3, 1)])
def test_noising_explorer_redraws_and_shows_eight_digits_in_two_rows(monkeypatch, batch, rows):
    """Lesson 2's explorer: eight digits in one row were 50-pixel strips in the saved figure; now two rows of four."""
    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(plt.gcf()))
    x0 = torch.rand(batch, 1, 8, 8) * 2 - 1
    widget = noising_explorer(x0, {"linear": NoiseSchedule.linear(T=20), "cosine": NoiseSchedule.cosine(T=20)})
    slider = widget.children[0]
    for t in (0, 19):
        slider.value = t
    grid = shown[-1].axes[0].images[0].get_array()                       # the linear panel's grid of digits
    cols = batch // rows
    assert round(grid.shape[1] / grid.shape[0]) == cols // rows, grid.shape  # (rows x cols) tiles of 8x8
    with pytest.raises(ValueError, match="same T"):
        noising_explorer(x0, {"a": NoiseSchedule.linear(T=20), "b": NoiseSchedule.linear(T=10)})
