"""The lesson explorers that the package adds: they build, redraw on every slider value, and read no globals."""
import matplotlib
import numpy as np
import pytest
import torch
from matplotlib import pyplot as plt

from course_utils.nets import UNet
from course_utils.schedules import NoiseSchedule, diffusion_schedule
from course_utils.viz import image_grid
from course_utils.widgets import discrete_schedule, noising_explorer, prediction_explorer, schedule_explorer

matplotlib.use("Agg")


@pytest.fixture
def shown(monkeypatch):
    """The figures the explorers show, in order; every figure is closed afterwards."""
    figures = []
    monkeypatch.setattr(plt, "show", lambda: figures.append(plt.gcf()))
    yield figures
    plt.close("all")


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
def test_noising_explorer_redraws_and_shows_eight_digits_in_two_rows(shown, batch, rows):
    """Lesson 2's explorer: eight digits in one row were 50-pixel strips in the saved figure; now two rows of four."""
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


def test_discrete_schedule_names():
    """'cosine' is the cosine schedule; the lab's schedule starts at t_0 = 1/T and ends at t = 1."""
    assert torch.allclose(discrete_schedule("cosine", 10).alpha_bar, NoiseSchedule.cosine(10).alpha_bar)
    assert not torch.allclose(discrete_schedule("cosine", 10).alpha_bar, NoiseSchedule.linear(10).alpha_bar)
    lab = discrete_schedule("lab continuous cosine", 10)
    _, signal_rates = diffusion_schedule(torch.tensor([0.1, 1.0], dtype=torch.float64))
    assert torch.allclose(lab.alpha_bar[[0, -1]].double(), signal_rates ** 2, atol=1e-6)
    with pytest.raises(ValueError, match="unknown schedule"):
        discrete_schedule("quadratic", 10)


def test_schedule_explorer_redraws_on_T_with_the_same_noise_and_last_step(shown):
    """Moving T redraws; the noised images use seeded noise and run from t = 0 to t = T - 1."""
    x0 = torch.zeros(1, 1, 8, 8)
    widget = schedule_explorer(x0, num_images=4)
    schedule_explorer(x0, num_images=4)
    first, second = shown[0].axes[-1].images[0].get_array(), shown[1].axes[-1].images[0].get_array()
    assert np.array_equal(first, second)                                 # same seed: same noise
    widget.children[0].children[1].value = 20
    assert len(shown) == 3 and "T = 20" in shown[-1].axes[0].get_title()
    assert shown[-1].axes[-1].get_title().endswith(", 1.00")             # code t = 19 of T = 20: the paper's 20


def test_noising_explorer_redraws_at_the_slider_t_with_the_given_seed(shown):
    """At t = 0 the panel shows x0 itself; at t = 19 the title gives alpha_bar_19; the seed picks eps."""
    x0 = torch.rand(3, 1, 8, 8) * 2 - 1
    s = NoiseSchedule.linear(T=20)
    widget = noising_explorer(x0, {"linear": s})
    slider = widget.children[0]
    assert (slider.min, slider.max) == (0, 19)
    slider.value = 0
    assert np.allclose(shown[-1].axes[0].images[0].get_array(), image_grid(x0, nrow=3).numpy(), atol=0.02)
    slider.value = 19
    assert len(shown) == 3
    assert shown[-1].axes[0].get_title().endswith(f" = {s.alpha_bar[19].item():.3f}")
    noising_explorer(x0, {"linear": s}, seed=1)
    assert not np.allclose(shown[-1].axes[0].images[0].get_array(), shown[0].axes[0].images[0].get_array())


def test_prediction_explorer_with_a_perfect_model_shows_zero_error(shown):
    """A model that returns the true eps gives x0_pred = x0: both errors read 0.000, at every t."""
    s = NoiseSchedule.linear(T=20)
    x0 = torch.rand(2, 1, 4, 4) * 2 - 1

    def oracle(xt, t):
        return (xt - s.sqrt_alpha_bar[t].view(-1, 1, 1, 1) * x0) / s.sqrt_one_minus_alpha_bar[t].view(-1, 1, 1, 1)

    widget = prediction_explorer(oracle, s, x0)
    assert shown[-1]._suptitle.get_text().endswith("MSE(eps_pred) = 0.000, MSE(x0_pred) = 0.000")
    widget.children[0].value = 7
    assert len(shown) == 2 and shown[-1]._suptitle.get_text().startswith("t = 7,")
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    assert np.allclose(shown[-1].axes[2].images[0].get_array(), image_grid(eps / 3, nrow=2).numpy(), atol=1e-6)
    prediction_explorer(oracle, s, x0, seed=1)
    assert not np.allclose(shown[-1].axes[2].images[0].get_array(), shown[0].axes[2].images[0].get_array())


# ------------------------------------------------------------------ a student's wrong calls (the error audit)
def test_explorers_refuse_a_lone_schedule_and_several_images(shown):
    """noising_explorer(x, schedule) said "'NoiseSchedule' object has no attribute 'values'"; schedule_explorer on
    a batch of images torch's "expanded size of the tensor (8) must match the existing size (4)" from inside."""
    x, linear = torch.zeros(4, 1, 8, 8), NoiseSchedule.linear(T=50)
    with pytest.raises(TypeError, match=r"^noising_explorer\(x0, schedules\): schedules must be a dict \{label: "
                                        r"NoiseSchedule\}, got NoiseSchedule; e\.g\. noising_explorer\(x0, "
                                        r"\{'linear': schedule\}\)"):
        noising_explorer(x, linear)
    with pytest.raises(ValueError, match=r"^schedule_explorer\(x0\): shows one image: x0 must be \(1, C, H, W\), got "
                                         r"\(4, 1, 8, 8\); pass x0\[:1\]"):
        schedule_explorer(x, num_images=4)
    with pytest.raises(ValueError, match=r"x0 must be \(1, C, H, W\), got \(1, 8, 8\)$"):
        schedule_explorer(x[0], num_images=4)
    with pytest.raises(TypeError, match=r"x0 must be a tensor \(1, C, H, W\), got ndarray$"):   # a type: TypeError
        schedule_explorer(x[:1].numpy(), num_images=4)
    assert not shown, "refused before drawing"
    schedule_explorer(x[:1], num_images=4)
    assert shown
