"""Interactive explorers for the lessons (ipywidgets 8): one function per explorer, each returning a widget.

Each explorer takes its data and device as arguments, reads no notebook globals, and redraws its figure
whenever a control moves. Display the returned widget as the last expression of a cell.
"""
from __future__ import annotations

import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from torch import Tensor

from .forward import q_sample
from .schedules import NoiseSchedule, diffusion_schedule
from .viz import check_schedule_dict, show_images

SCHEDULE_NAMES = ("linear", "cosine", "lab continuous cosine")


def discrete_schedule(name: str, T: int) -> NoiseSchedule:
    """A :class:`NoiseSchedule` of ``T`` steps by name: ``linear``, ``cosine`` or ``lab continuous cosine``.

    The lab's continuous schedule is discretised at diffusion times t_i = (i + 1) / T, i = 0..T-1, with
    alpha_bar_i = signal_rate(t_i)**2 and beta_i = 1 - alpha_bar_i / alpha_bar_{i-1} (alpha_bar_{-1} = 1,
    so its first beta is large: at time 0 the lab's schedule already has noise rate sqrt(1 - 0.95**2) = 0.31).
    """
    if name == "linear":
        return NoiseSchedule.linear(T)
    if name == "cosine":
        return NoiseSchedule.cosine(T)
    if name == "lab continuous cosine":
        _, signal_rates = diffusion_schedule(torch.arange(1, T + 1, dtype=torch.float64) / T)
        alpha_bar = signal_rates.double() ** 2
        alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        return NoiseSchedule.from_betas(1.0 - alpha_bar / alpha_bar_prev)
    raise ValueError(f"unknown schedule {name!r}; choose one of {SCHEDULE_NAMES}")


def schedule_explorer(x0: Tensor | None = None, *, device: torch.device | str = "cpu", seed: int = 0,
                      num_images: int = 8) -> widgets.Widget:
    """Pick a schedule and T; see beta_t, alpha_bar_t and log-SNR, and (given ``x0`` of shape (1, C, H, W) in
    [-1, 1]) that image noised at ``num_images`` evenly spaced t/T with the same noise for every setting."""
    if x0 is not None and not isinstance(x0, Tensor):
        raise TypeError(f"schedule_explorer(x0): x0 must be a tensor (1, C, H, W), got {type(x0).__name__}")
    if x0 is not None and (x0.ndim != 4 or x0.shape[0] != 1):
        got = tuple(x0.shape)
        raise ValueError(f"schedule_explorer(x0): shows one image: x0 must be (1, C, H, W), got {got}"
                         + ("; pass x0[:1]" if isinstance(x0, Tensor) and x0.ndim == 4 else ""))
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn((num_images, *x0.shape[1:]), generator=gen).to(device) if x0 is not None else None
    name = widgets.Dropdown(options=SCHEDULE_NAMES, value="linear", description="schedule")
    T = widgets.IntSlider(value=1000, min=10, max=2000, step=10, description="T", continuous_update=False)
    out = widgets.Output()

    def redraw(*_):
        schedule = discrete_schedule(name.value, T.value)
        out.clear_output(wait=True)
        with out:
            rows = 2 if x0 is not None else 1
            fig = plt.figure(figsize=(13, 3.4 * rows))
            axes = [fig.add_subplot(rows, 3, i + 1) for i in range(3)]
            frac = schedule.t_over_T().cpu()                        # code index t is the paper's step t + 1
            for ax, values, title in zip(axes, [schedule.betas, schedule.alpha_bar, schedule.log_snr()],
                                         [r"$\beta_t$", r"$\bar\alpha_t$", r"log-SNR"]):
                ax.plot(frac, values)
                ax.set_xlabel("t / T"), ax.set_title(f"{title} ({name.value}, T = {schedule.T})")
            axes[0].set_yscale("log"), axes[1].set_ylim(-0.02, 1.02)
            if x0 is not None:
                ts = torch.linspace(0, schedule.T - 1, num_images).round().long()
                xt = q_sample(x0.to(device).expand_as(eps), ts.to(device), eps, schedule.to(device))
                show_images(xt, nrow=num_images, ax=fig.add_subplot(rows, 1, 2),
                            title="x_t at t/T = " + ", ".join(f"{frac[t]:.2f}" for t in ts))
            fig.tight_layout()
            plt.show()
            print(f"alpha_bar at the last step t = T-1: {schedule.alpha_bar[-1].item():.2e} "
                  f"(signal rate {math.sqrt(schedule.alpha_bar[-1].item()):.3f})")

    name.observe(redraw, names="value")
    T.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([name, T]), out])


def noising_explorer(x0: Tensor, schedules: dict, *, device: torch.device | str = "cpu", seed: int = 0,
                     bins: int = 60) -> widgets.Widget:
    """A slider over t: the images ``x0`` (B, C, H, W) in [-1, 1] noised at t under each of ``schedules``
    ({label: NoiseSchedule}, all with the same T), with the same noise eps for every t, and a histogram of
    the pixel values of x_t against the N(0, 1) density they tend to."""
    check_schedule_dict("noising_explorer(x0, schedules)", schedules,
                        example="noising_explorer(x0, {'linear': schedule})")
    Ts = {schedule.T for schedule in schedules.values()}
    if len(Ts) != 1:
        raise ValueError(f"all schedules must have the same T, got {sorted(Ts)}")
    T = Ts.pop()
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed)).to(device)
    x0 = x0.to(device)
    t_slider = widgets.IntSlider(value=T // 4, min=0, max=T - 1, step=1, description="t",
                                 continuous_update=False)
    out = widgets.Output()

    def redraw(*_):
        t = torch.full((x0.shape[0],), t_slider.value, dtype=torch.long, device=device)
        out.clear_output(wait=True)
        with out:
            n = len(schedules)
            fig, axes = plt.subplots(1, n + 1, figsize=(4.2 * (n + 1), 3.4),
                                     gridspec_kw=dict(width_ratios=[1.6] * n + [1]))
            grid = torch.linspace(-4, 4, 200)
            for ax, (label, schedule) in zip(axes, schedules.items()):
                schedule = schedule.to(device)
                xt = q_sample(x0, t, eps, schedule)
                ab = schedule.alpha_bar[t_slider.value].item()
                show_images(xt, nrow=math.ceil(x0.shape[0] / 2) if x0.shape[0] > 4 else x0.shape[0], ax=ax,  # 2 rows
                            title=f"{label}: t = {t_slider.value}, " + r"$\bar\alpha_t$" + f" = {ab:.3f}")
                axes[-1].hist(xt.flatten().cpu(), bins=bins, range=(-4, 4), density=True, alpha=0.5, label=label)
            axes[-1].plot(grid, torch.exp(-grid ** 2 / 2) / math.sqrt(2 * math.pi), "k--", label="N(0, 1)")
            axes[-1].set_xlabel("pixel value of x_t"), axes[-1].set_ylabel("density")
            axes[-1].set_title("pixel histogram"), axes[-1].legend(fontsize=8)
            fig.tight_layout()
            plt.show()

    t_slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([t_slider, out])


def prediction_explorer(model, schedule: NoiseSchedule, x0: Tensor, *, device: torch.device | str = "cpu",
                        seed: int = 0, y: Tensor | None = None) -> widgets.Widget:
    """A slider over t: what a noise predictor ``model(x_t, t)`` sees and says for the images ``x0`` (B, C, H, W).

    Rows: the clean x_0; x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (one fixed eps for every t);
    the true eps; the prediction eps_pred; and the clean image it implies,
    x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps_pred) / sqrt(alpha_bar_t). The figure's title gives the mean
    squared error of eps_pred and of x0_pred. ``y`` (B,) is passed to a class-conditional model.
    """
    x0 = x0.to(device)
    schedule = schedule.to(device)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed)).to(device)
    t_slider = widgets.IntSlider(value=schedule.T // 2, min=0, max=schedule.T - 1, step=1, description="t",
                                 continuous_update=False)
    out = widgets.Output()

    def redraw(*_):
        t_value = t_slider.value
        t = torch.full((x0.shape[0],), t_value, dtype=torch.long, device=device)
        xt = q_sample(x0, t, eps, schedule)
        with torch.no_grad():
            eps_pred = model(xt, t) if y is None else model(xt, t, y)
        sqrt_ab, sqrt_1m_ab = schedule.sqrt_alpha_bar[t_value], schedule.sqrt_one_minus_alpha_bar[t_value]
        x0_pred = (xt - sqrt_1m_ab * eps_pred) / sqrt_ab
        out.clear_output(wait=True)
        with out:
            rows = [("x_0", x0), ("x_t", xt), ("eps (true, shown / 3)", eps / 3),
                    ("eps_pred (shown / 3)", eps_pred / 3), ("x0_pred (clipped to [-1, 1])", x0_pred)]
            fig, axes = plt.subplots(len(rows), 1, figsize=(1.2 * x0.shape[0] + 1, 1.45 * len(rows)))
            for ax, (label, images) in zip(axes, rows):
                show_images(images, nrow=x0.shape[0], ax=ax, title=label)
            fig.suptitle(f"t = {t_value}, alpha_bar = {(sqrt_ab ** 2).item():.3f}: "
                         f"MSE(eps_pred) = {((eps_pred - eps) ** 2).mean().item():.3f}, "
                         f"MSE(x0_pred) = {((x0_pred - x0) ** 2).mean().item():.3f}")
            fig.tight_layout()
            plt.show()

    t_slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([t_slider, out])
