"""The package's own functions pass the worksheets' checks, hidden cases included.

The checks' references (course_utils/checks/) are written out independently of ``course_utils.schedules``,
``forward``, ``nets``, ``training``, ``samplers`` and ``guidance``; running the package through them means the
package and the worksheets cannot disagree unnoticed. Where the package's signature differs from the TODO's,
a thin adapter below reorders arguments or reads a field, and adds no math. Each comparison can fail: the
tests at the bottom break the package's function (with the catalogue's wrong implementations) and watch the
check fail.

No package counterpart, so not here: ``training_step`` (``training.train`` adds AdamW, clipping and EMA),
``cfg_loss`` (label dropout happens inside ``training.train``), the lab's ``denoise`` and ``reverse_diffusion``.
``ddpm_step`` has none either (``samplers.ddpm_sample`` inlines Algorithm 2): the sampler is compared with the
check's reference step, repeated.
"""
from __future__ import annotations

import math
from typing import Callable

import pytest
import torch

from course_utils import forward, guidance, nets, samplers, schedules, solvers, training
from course_utils.checks import MISTAKES, ref_ddpm_step, run_check
from course_utils.checks.framework import close
from course_utils.schedules import NoiseSchedule


def late(owner, attr: str) -> Callable:
    """``owner.attr`` looked up at each call, so that a test can swap the package's function for a broken one."""
    return lambda *args, **kwargs: getattr(owner, attr)(*args, **kwargs)


def predict_x0_from_ddim_step(xt, t, eps, schedule):
    """Adapter: the package computes x0_pred inside ``samplers.ddim_step``; look alpha_bar_t up and take its
    second output (alpha_bar_prev does not enter x0_pred; 1 is the last step's)."""
    alpha_bar_t = schedule.gather(schedule.alpha_bar, t, xt.ndim)                       # (B, 1, ..., 1)
    return samplers.ddim_step(xt, eps, alpha_bar_t, torch.ones(()))[1]


# check -> the package's function with the TODO's signature
PACKAGE: dict[str, Callable] = {
    # adapter: build the schedule, read its betas
    "linear_beta_schedule": lambda T, beta_start=1e-4, beta_end=0.02: NoiseSchedule.linear(T, beta_start,
                                                                                            beta_end).betas,
    "cosine_beta_schedule": lambda T, s=0.008, max_beta=0.999: NoiseSchedule.cosine(T, s, max_beta).betas,
    "diffusion_schedule": late(schedules, "diffusion_schedule"),
    "respace": lambda schedule, timesteps: schedule.respace(timesteps).betas,       # adapter: read the betas
    "q_sample": late(forward, "q_sample"),
    # adapter: the package returns every state on request
    "q_sample_chain": lambda x0, t, schedule, generator=None: forward.q_sample_chain(x0, t, schedule,
                                                                                     generator=generator,
                                                                                     return_all=True),
    "q_posterior": late(forward, "q_posterior"),
    "predict_x0": predict_x0_from_ddim_step,
    "sinusoidal_embedding": late(nets, "sinusoidal_embedding"),
    "SinusoidalTimeEmbedding": late(nets, "SinusoidalTimeEmbedding"),
    "ResBlock": late(nets, "ResBlock"),
    "diffusion_loss": late(training, "diffusion_loss"),
    "ddim_step": late(samplers, "ddim_step"),
    "cfg_combine": late(guidance, "cfg_combine"),
    "dpmpp_2m_step": late(solvers, "dpmpp_2m_step"),
}


@pytest.mark.parametrize("name", sorted(PACKAGE))
def test_package_passes_the_worksheet_check(name):
    result = run_check(name, PACKAGE[name], hidden=True)
    assert result.passed, f"course_utils and the check of {name!r} disagree: {result.message}"


def _as_schedule(wrong_betas: Callable) -> classmethod:
    """A NoiseSchedule constructor whose betas come from a worksheet-shaped wrong implementation."""
    return classmethod(lambda cls, *args, **kwargs: cls.from_betas(wrong_betas(*args, **kwargs)))


# check -> where the package keeps the function, and how a catalogued wrong implementation replaces it
PATCHES = {
    "linear_beta_schedule": (NoiseSchedule, "linear", _as_schedule),
    "cosine_beta_schedule": (NoiseSchedule, "cosine", _as_schedule),
    "diffusion_schedule": (schedules, "diffusion_schedule", None),
    "respace": (NoiseSchedule, "respace", lambda wrong: lambda self, timesteps: NoiseSchedule.from_betas(
        wrong(self, timesteps))),
    "q_sample": (forward, "q_sample", None),
    "q_sample_chain": (forward, "q_sample_chain", lambda wrong: lambda x0, t, schedule, *, generator=None,
                       return_all=False: wrong(x0, t, schedule, generator)),
    "q_posterior": (forward, "q_posterior", None),
    "sinusoidal_embedding": (nets, "sinusoidal_embedding", None),
    "SinusoidalTimeEmbedding": (nets, "SinusoidalTimeEmbedding", None),
    "ResBlock": (nets, "ResBlock", None),
    "diffusion_loss": (training, "diffusion_loss", None),
    "ddim_step": (samplers, "ddim_step", None),
    "cfg_combine": (guidance, "cfg_combine", None),
    "dpmpp_2m_step": (solvers, "dpmpp_2m_step", None),
}
# mistakes that cannot reach the package's output: NoiseSchedule.from_betas stores float32 whatever betas it gets
HARMLESS_IN_THE_PACKAGE = {("linear_beta_schedule", "float64 (numpy's linspace)")}
BROKEN = [(name, mid, wrong) for name in PATCHES for mid, wrong, _ in MISTAKES[name]
          if (name, mid) not in HARMLESS_IN_THE_PACKAGE]


def test_every_comparison_can_be_broken():
    assert set(PATCHES) | {"predict_x0"} == set(PACKAGE)


@pytest.mark.parametrize("name,mistake,wrong", BROKEN, ids=[f"{n}-{m}" for n, m, _ in BROKEN])
def test_a_broken_package_function_fails_the_check(monkeypatch, name, mistake, wrong):
    owner, attr, wrap = PATCHES[name]
    monkeypatch.setattr(owner, attr, wrap(wrong) if wrap else wrong)
    assert not run_check(name, PACKAGE[name], hidden=True).passed, f"{name}: the check missed {mistake!r}"


def test_a_broken_x0_pred_in_ddim_step_fails_predict_x0(monkeypatch):
    no_sqrt = dict((mid, wrong) for mid, wrong, _ in MISTAKES["ddim_step"])["no sqrt"]
    monkeypatch.setattr(samplers, "ddim_step", no_sqrt)
    result = run_check("predict_x0", PACKAGE["predict_x0"], hidden=True)
    assert not result.passed and "square root" in result.message, result.message


# ------------------------------------------------------------------ DDPM: the sampler against the check's step
def _toy_eps_model(xt, t):
    """A fixed stand-in for a noise predictor on (B, 2) points."""
    return 0.5 * torch.tanh(xt) + t.to(xt.dtype)[:, None] / 20


@pytest.mark.parametrize("variance,agrees", [("beta", True), ("posterior", False)])
def test_ddpm_sample_repeats_the_checks_ddpm_step(variance, agrees):
    """samplers.ddpm_sample(variance="beta") is worksheet 5's step (sigma_t^2 = beta_t, no noise at t = 0)
    repeated; the posterior variance, the package's default, is not, which shows the comparison can fail."""
    schedule = NoiseSchedule.linear(T=20, beta_start=1e-3, beta_end=0.2)
    x_T = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    package = samplers.ddpm_sample(_toy_eps_model, schedule, (4, 2), variance=variance, x_T=x_T, device="cpu",
                                   generator=torch.Generator().manual_seed(1), progress=False)
    noises = torch.Generator().manual_seed(1)     # the sampler draws z for t = T-1..1, in that order
    x = x_T.double()
    for t in range(schedule.T - 1, -1, -1):
        eps_pred = _toy_eps_model(x.float(), torch.full((4,), t))
        noise = torch.randn(x.shape, generator=noises) if t > 0 else torch.zeros(x.shape)
        x = ref_ddpm_step(x, t, eps_pred, schedule, noise)
    assert close(package, x) == agrees


# ------------------------------------------------------------------ loop references against the package
# The answer key of these TODOs is built from the checks' references, so without these tests a wrong reference
# (the mutation audit: guidance centred on eps_cond, the history of DPM-Solver++ dropped, the lab's remix with the
# current noise rate) was caught only by the solution notebooks.
def test_the_guided_ddim_reference_is_the_packages_sampler():
    from course_utils.checks.ws06_guidance import _sampler_cases, mixture_model, ref_guided_ddim
    for c in _sampler_cases(hidden=True):
        ours = samplers.ddim_sample(mixture_model(c["schedule"]), c["schedule"], tuple(c["x_T"].shape),
                                    num_steps=c["num_steps"], x_T=c["x_T"], y=c["y"],
                                    guidance_scale=c["guidance_scale"], progress=False)
        assert torch.allclose(ours.double(), ref_guided_ddim(c), atol=1e-4), (c["guidance_scale"], c["num_steps"])


def test_the_dpmpp_loop_reference_is_the_packages_solver():
    from course_utils.checks.ws07_fast_samplers import _loop_cases, mixture_model, ref_dpmpp_loop
    for c in _loop_cases(hidden=True):
        model = mixture_model(c["schedule"])
        ours = solvers.dpmpp_2m_sample(model, c["schedule"], tuple(c["x_T"].shape), x_T=c["x_T"],
                                       timesteps=c["timesteps"], progress=False)
        ref = ref_dpmpp_loop(model, c["schedule"], c["x_T"], c["timesteps"])
        assert torch.allclose(ours.double(), ref, atol=1e-4), c["timesteps"]


def test_the_labs_ddim_reference_gives_gaussian_data_its_known_spread():
    """The lab's reference loop with the exact noise predictor of x0 ~ N(0, s^2 I) (noisy = signal x0 + noise eps,
    signal^2 + noise^2 = 1: E[eps | x] = noise x / (signal^2 s^2 + noise^2)) follows the probability-flow ODE, so
    its last x has variance signal^2 s^2 + noise^2 at t = 1/steps, and its last prediction of the clean images,
    E[x0 | x], the standard deviation s^2 signal / sqrt(signal^2 s^2 + noise^2) (0.418 for s = 0.5)."""
    from course_utils.checks import ref_diffusion_schedule
    from course_utils.checks.lab_ddim import ref_reverse_diffusion
    s, steps = 0.5, 200

    def exact(x, variance):             # the lab's network(noisy_images, noise_rates ** 2)
        variance = variance.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        return variance.sqrt() * x / ((1 - variance) * s ** 2 + variance)
    x_T = torch.randn(20_000, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    pred = ref_reverse_diffusion(exact, x_T, steps)
    noise, signal = (r.item() for r in ref_diffusion_schedule(torch.tensor([1 / steps])))
    expected = s ** 2 * signal / math.sqrt(signal ** 2 * s ** 2 + noise ** 2)
    assert abs(pred.std().item() / expected - 1) < 0.02, (pred.std().item(), expected)      # sampling SE 0.25%
