"""The lesson explorers that the package adds: they build, redraw on every slider value, and read no globals."""
import matplotlib
import torch

from course_utils.nets import UNet
from course_utils.schedules import NoiseSchedule
from course_utils.widgets import prediction_explorer

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
