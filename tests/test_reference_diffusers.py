"""An independent reference: Hugging Face diffusers' DDPMScheduler and DDIMScheduler on the same betas.

Conventions checked here (diffusers 0.2x-0.4x): timesteps are 0..T-1 as ours; ``alphas_cumprod[t]`` is our
``alpha_bar[t]``; "fixed_small" is our posterior variance tilde beta_t; DDIM with ``set_alpha_to_one=True``
uses alpha_bar_prev = 1 after the last step, as we do, and ``timestep_spacing="leading"`` with
``steps_offset=0`` gives our grid 980, 960, ..., 0. Their schedulers draw the same random numbers in the
same order as our samplers when fed the same generator (or explicit noise), so whole trajectories compare.
diffusers comes with the dev extra: a missing diffusers fails under CI and skips elsewhere.
"""
from __future__ import annotations

import pytest
import torch

from course_utils.analytic import GaussianMixtureEps
from course_utils.data import TWO_GAUSSIANS
from course_utils.samplers import ddim_sample, ddim_step, ddpm_sample


@pytest.fixture(scope="module")
def diffusers(require):
    return require("diffusers", "the reference implementation, in the dev extra")


def _ddpm(diffusers, **kw):
    return diffusers.DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, clip_sample=False,
                                   variance_type="fixed_small", prediction_type="epsilon", **kw)


def _ddim(diffusers):
    return diffusers.DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                                   clip_sample=False, set_alpha_to_one=True, steps_offset=0,
                                   timestep_spacing="leading", prediction_type="epsilon")


def test_linear_schedule_matches(diffusers, linear_schedule):
    ref = _ddpm(diffusers, beta_schedule="linear")
    assert torch.allclose(linear_schedule.betas, ref.betas.float(), rtol=1e-6, atol=0)
    assert torch.allclose(linear_schedule.alpha_bar, ref.alphas_cumprod.float(), rtol=1e-5, atol=0)


def test_cosine_schedule_matches_squaredcos_cap_v2(diffusers, cosine_schedule):
    ref = _ddpm(diffusers, beta_schedule="squaredcos_cap_v2")
    assert torch.allclose(cosine_schedule.betas, ref.betas.float(), rtol=1e-5, atol=1e-9)
    assert torch.allclose(cosine_schedule.alpha_bar, ref.alphas_cumprod.float(), rtol=1e-4, atol=1e-9)


def test_one_ddpm_step_matches(diffusers, linear_schedule):
    """x_{t-1} = 1/sqrt(alpha_t)(x_t - beta_t/sqrt(1-alpha_bar_t) eps_pred) + sqrt(tilde beta_t) z, all fixed."""
    schedule, ref = linear_schedule, _ddpm(diffusers, beta_schedule="linear")
    ref.set_timesteps(1000)
    x, eps_pred = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    for t in (999, 500, 10, 1, 0):
        gen_ref = torch.Generator().manual_seed(t)
        theirs = ref.step(eps_pred, t, x, generator=gen_ref).prev_sample
        z = torch.randn(x.shape, generator=torch.Generator().manual_seed(t))     # the noise they drew
        mean = schedule.sqrt_recip_alphas[t] * (x - schedule.betas[t] / schedule.sqrt_one_minus_alpha_bar[t] * eps_pred)
        ours = mean + schedule.posterior_variance[t].sqrt() * z if t > 0 else mean
        assert torch.allclose(ours, theirs, atol=2e-5, rtol=1e-4), (t, (ours - theirs).abs().max())


@pytest.mark.slow  # over 10 s: out of `make test-unit`, in `make test`
def test_ddpm_sample_trajectory_matches(diffusers, linear_schedule):
    """A whole 1000-step run driven by the exact mixture eps, same generator: the same samples."""
    model = GaussianMixtureEps(TWO_GAUSSIANS, linear_schedule)
    ours = ddpm_sample(model, linear_schedule, (64, 2), generator=torch.Generator().manual_seed(7), progress=False)
    ref = _ddpm(diffusers, beta_schedule="linear")
    ref.set_timesteps(1000)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(64, 2, generator=gen)
    for t in ref.timesteps:
        eps_pred = model(x, torch.full((64,), int(t)))
        x = ref.step(eps_pred, t, x, generator=gen).prev_sample
    assert torch.allclose(ours, x, atol=1e-3), (ours - x).abs().max()


def test_ddim_timesteps_and_step_match(diffusers, linear_schedule):
    ref = _ddim(diffusers)
    ref.set_timesteps(50)
    from course_utils.samplers import ddim_timesteps

    assert ref.timesteps.tolist() == ddim_timesteps(1000, 50).tolist()
    x, eps_pred, noise = torch.randn(4, 2), torch.randn(4, 2), torch.randn(4, 2)
    alpha_bar = linear_schedule.alpha_bar
    for t in (980, 500, 20, 0):
        alpha_bar_prev = alpha_bar[t - 20] if t >= 20 else torch.tensor(1.0)
        for eta in (0.0, 0.5, 1.0):
            theirs = ref.step(eps_pred, t, x, eta=eta, variance_noise=noise).prev_sample
            ours, _ = ddim_step(x, eps_pred, alpha_bar[t], alpha_bar_prev, eta=eta, noise=noise if eta > 0 else None)
            assert torch.allclose(ours, theirs, atol=1e-5, rtol=1e-4), (t, eta, (ours - theirs).abs().max())


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_ddim_sample_matches(diffusers, linear_schedule, eta):
    model = GaussianMixtureEps(TWO_GAUSSIANS, linear_schedule)
    ours = ddim_sample(model, linear_schedule, (64, 2), num_steps=50, eta=eta,
                       generator=torch.Generator().manual_seed(8), progress=False)
    ref = _ddim(diffusers)
    ref.set_timesteps(50)
    gen = torch.Generator().manual_seed(8)                 # our sampler draws x_T, then one noise per step
    x = torch.randn(64, 2, generator=gen)
    for t in ref.timesteps:
        eps_pred = model(x, torch.full((64,), int(t)))
        noise = torch.randn(x.shape, generator=gen) if eta > 0 else None
        x = ref.step(eps_pred, t, x, eta=eta, variance_noise=noise).prev_sample
    assert torch.allclose(ours, x, atol=1e-4), (ours - x).abs().max()


def test_unet_has_as_many_parameters_as_diffusers_unet2dmodel_of_the_same_layout(diffusers):
    """Our default UNet and diffusers' UNet2DModel with channels (32, 64, 64), one ResBlock per level, attention
    at the lowest resolution and GroupNorm(8) (the pair bench/bench_train.py times) count the same parameters."""
    from course_utils.nets import UNet, count_parameters

    theirs = diffusers.UNet2DModel(sample_size=32, in_channels=1, out_channels=1, block_out_channels=(32, 64, 64),
                                   layers_per_block=1, norm_num_groups=8,
                                   down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                                   up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"))
    ours = UNet(base_channels=32, channel_mults=(1, 2, 2), attention_levels=(2,))
    assert count_parameters(ours) == count_parameters(theirs) == 1_112_801
