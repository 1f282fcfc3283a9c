"""Noise schedules: known values and the identities of the math (DDPM Eq. 4, 7; Improved DDPM Eq. 17)."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from course_utils.schedules import NoiseSchedule, diffusion_schedule


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_alpha_bar_strictly_decreasing_in_0_1(name):
    schedule = getattr(NoiseSchedule, name)(T=1000)
    alpha_bar = schedule.alpha_bar.double()
    assert alpha_bar.shape == (1000,)
    assert (alpha_bar > 0).all() and (alpha_bar <= 1).all()
    assert (alpha_bar[1:] < alpha_bar[:-1]).all(), "alpha_bar must decrease strictly"
    assert ((schedule.betas > 0) & (schedule.betas <= 0.999)).all()


def test_linear_known_values(linear_schedule):
    schedule = linear_schedule
    assert schedule.T == 1000
    assert schedule.betas[0].item() == pytest.approx(1e-4, rel=1e-6)
    assert schedule.betas[-1].item() == pytest.approx(0.02, rel=1e-6)
    # evenly spaced: constant first differences
    diffs = schedule.betas.double().diff()
    assert torch.allclose(diffs, torch.full_like(diffs, (0.02 - 1e-4) / 999), rtol=1e-3)
    # alpha_bar is the running product of alphas (computed here in float64)
    betas64 = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    assert torch.allclose(schedule.alpha_bar.double(), torch.cumprod(1 - betas64, 0), rtol=1e-5, atol=0)


def test_cosine_alpha_bar_matches_hand_computation(cosine_schedule):
    """alpha_bar[t] (code index t = paper step t+1) = f(t+1)/f(0), f(u) = cos^2((u/T + s)/(1 + s) pi/2)."""
    T, s = 1000, 0.008

    def f(u):
        return math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2

    for t in (0, 1, 100, 500, 900, 990):
        expected = f(t + 1) / f(0)
        assert cosine_schedule.alpha_bar[t].item() == pytest.approx(expected, rel=1e-5), t


def test_cosine_betas_clipped_at_0999(cosine_schedule):
    # f(T) = cos^2(pi/2) = 0, so the unclipped last beta is 1: the clip must hold it at 0.999
    assert cosine_schedule.betas.max().item() == pytest.approx(0.999, abs=1e-7)
    assert cosine_schedule.betas[-1].item() == pytest.approx(0.999, abs=1e-7)
    assert (cosine_schedule.betas[:-1] < 0.999).all()
    custom = NoiseSchedule.cosine(T=50, max_beta=0.5)
    assert custom.betas.max().item() == pytest.approx(0.5)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_derived_quantities(name):
    schedule = getattr(NoiseSchedule, name)(T=200)
    assert schedule.alpha_bar_prev[0].item() == 1.0
    assert torch.equal(schedule.alpha_bar_prev[1:], schedule.alpha_bar[:-1])
    assert torch.allclose(schedule.alphas, 1 - schedule.betas)
    one = schedule.sqrt_alpha_bar ** 2 + schedule.sqrt_one_minus_alpha_bar ** 2
    assert torch.allclose(one, torch.ones(200), atol=1e-6)
    assert schedule.posterior_variance[0].item() == 0.0              # no noise left to remove at the first step
    assert (schedule.posterior_variance[1:] > 0).all()
    assert (schedule.posterior_variance <= schedule.betas + 1e-7).all()      # tilde beta_t <= beta_t
    snr = schedule.log_snr()
    assert (snr[1:] < snr[:-1]).all()


def test_from_betas_rejects_bad_betas():
    with pytest.raises(ValueError, match=r"1-D tensor of length T"):
        NoiseSchedule.from_betas(torch.ones(3, 2) * 0.1)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        NoiseSchedule.from_betas(torch.tensor([0.1, 0.0, 0.2]))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        NoiseSchedule.from_betas(torch.tensor([0.1, float("nan")]))
    with pytest.raises(ValueError, match="T must be a positive integer"):
        NoiseSchedule.linear(T=0)
    with pytest.raises(ValueError, match="beta_start <= beta_end"):
        NoiseSchedule.linear(beta_start=0.02, beta_end=1e-4)


def test_check_t_and_gather_errors(linear_schedule):
    schedule = linear_schedule
    with pytest.raises(TypeError, match="integer tensor"):
        schedule.check_t(torch.tensor([0.5, 1.0]))
    with pytest.raises(TypeError, match="torch.Tensor"):
        schedule.check_t([1, 2])
    with pytest.raises(ValueError, match=r"t must lie in 0\.\.999 \(T = 1000\), got values from 0 to 1000"):
        schedule.check_t(torch.tensor([0, 1000]))
    with pytest.raises(ValueError, match=r"got values from -1"):
        schedule.check_t(torch.tensor([-1, 3]))
    with pytest.raises(ValueError, match=r"t must have shape \(3,\)"):
        schedule.check_t(torch.tensor([1, 2]), batch_size=3)
    # a schedule tensor of the wrong length (from another schedule, say)
    with pytest.raises(ValueError, match="length 500 does not match T = 1000"):
        schedule.gather(NoiseSchedule.linear(T=500).alpha_bar, torch.tensor([1, 2]), ndim=4)
    out = schedule.gather(schedule.alpha_bar, torch.tensor([0, 999]), ndim=4)
    assert out.shape == (2, 1, 1, 1)
    assert out.flatten().tolist() == [schedule.alpha_bar[0].item(), schedule.alpha_bar[999].item()]


@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 1, 1, 1), ()])
def test_diffusion_schedule_any_shape_unit_norm(shape):
    t = torch.rand(shape)
    noise, signal = diffusion_schedule(t)
    assert noise.shape == shape and signal.shape == shape
    assert torch.allclose(noise ** 2 + signal ** 2, torch.ones(shape), atol=1e-6)


def test_diffusion_schedule_endpoints_and_linear_angle():
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    noise, signal = diffusion_schedule(t)
    assert signal[0].item() == pytest.approx(0.95, abs=1e-9)
    assert signal[-1].item() == pytest.approx(0.02, abs=1e-9)
    angle = torch.atan2(noise, signal)
    expected = math.acos(0.95) + t * (math.acos(0.02) - math.acos(0.95))
    assert torch.allclose(angle, expected, atol=1e-9)            # theta linear in t
    assert (signal[1:] < signal[:-1]).all()
    n2, s2 = diffusion_schedule(torch.tensor([0.0, 1.0]), min_signal_rate=0.1, max_signal_rate=0.9)
    assert s2.tolist() == pytest.approx([0.9, 0.1], abs=1e-6)
    with pytest.raises(ValueError, match="min_signal_rate < max_signal_rate"):
        diffusion_schedule(t, min_signal_rate=0.9, max_signal_rate=0.1)


def test_schedule_to_device_moves_every_tensor(linear_schedule):
    # the "meta" device holds shapes and dtypes but no data: a move to it is observable on a CPU-only machine
    moved = linear_schedule.to("meta")
    assert moved.device.type == "meta" and moved.T == linear_schedule.T
    for f in dataclasses.fields(NoiseSchedule):
        before, after = getattr(linear_schedule, f.name), getattr(moved, f.name)
        assert after.device.type == "meta", f"{f.name} was left on {after.device}"
        assert (after.shape, after.dtype) == (before.shape, before.dtype), f.name
    assert linear_schedule.device.type == "cpu", "to() returns a copy; the original stays where it was"


def test_respace_keeps_alpha_bar_at_the_kept_steps():
    """Nichol and Dhariwal 2021, Sec. 4: the short chain's cumulative alpha_bar equals the long one's there."""
    long_chain = NoiseSchedule.cosine(1000)
    kept = torch.tensor([0, 3, 250, 251, 700, 999])
    short = long_chain.respace(kept)
    assert short.T == 6
    assert torch.allclose(short.alpha_bar.double(), long_chain.alpha_bar.double()[kept], rtol=1e-5, atol=1e-7)
    assert torch.allclose(short.betas[3], long_chain.betas[251], rtol=1e-4)   # neighbours: one step of the long chain
    assert torch.allclose(NoiseSchedule.linear(50).respace(torch.arange(50)).betas, NoiseSchedule.linear(50).betas,
                          rtol=1e-4)
    # the tempting answer, betas[kept], is a different (much less noisy) chain
    assert torch.cumprod(1 - long_chain.betas[kept].double(), 0)[-1] > 100 * short.alpha_bar[-1]


@pytest.mark.parametrize("kept", [[3, 2], [0, 1000], [-1, 5], [[1, 2]], []])
def test_respace_rejects_a_grid_that_is_not_increasing_steps(kept):
    with pytest.raises(ValueError, match="timesteps"):
        NoiseSchedule.linear(1000).respace(torch.tensor(kept, dtype=torch.long))


@pytest.mark.parametrize("T", [10, 1000])
def test_t_over_T_puts_the_cosine_schedule_on_its_formula(T):
    """Code index t is the paper's step t + 1: at t_over_T() the cosine schedule's alpha_bar is f(t/T) / f(0)
    (Nichol and Dhariwal Eq. 17) for any T, and the last step is at 1."""
    schedule = NoiseSchedule.cosine(T=T)
    frac = schedule.t_over_T()
    assert frac.shape == (T,) and frac.dtype == torch.float32
    assert frac[0].item() == pytest.approx(1 / T) and frac[-1].item() == 1.0
    f = torch.cos((frac.double() + 0.008) / 1.008 * math.pi / 2) ** 2
    f0 = math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    unclipped = schedule.betas < 0.999                  # the clip at max_beta changes alpha_bar after it
    assert torch.allclose(schedule.alpha_bar.double()[unclipped], (f / f0)[unclipped], atol=1e-6)


def test_respace_of_a_descending_sampler_grid_says_flip_it():
    """respace(ddim_timesteps(50, 10)) was refused without saying that a sampler's grid runs downwards."""
    from course_utils.samplers import ddim_timesteps
    schedule = NoiseSchedule.linear(50)
    with pytest.raises(ValueError, match=r"timesteps must increase strictly within 0\.\.49, got \[45, 40, .*\] \(a "
                                         r"sampler's grid such as ddim_timesteps runs downwards: pass "
                                         r"timesteps\.flip\(0\)\)$"):
        schedule.respace(ddim_timesteps(50, 10))
    with pytest.raises(ValueError, match=r"got \[3, 3\]$"):                       # not descending: no such hint
        schedule.respace(torch.tensor([3, 3]))
    assert schedule.respace(ddim_timesteps(50, 10).flip(0)).T == 10


def test_the_constructor_called_with_t_says_how_a_schedule_is_built():
    """NoiseSchedule(1000) said "missing 9 required positional arguments: 'alphas', ..." (an API audit's OK-rated
    call): it names the three ways in. Built the usual ways, copied, pickled and moved, a schedule is unchanged."""
    import copy
    import pickle
    ways = r"a schedule is built with NoiseSchedule\.linear\(T=1000\), NoiseSchedule\.cosine\(T=1000\) or " \
           r"NoiseSchedule\.from_betas\(betas\); the constructor itself takes all 10 per-step tensors"
    for args, kwargs, shown in (((1000,), {}, "1000"), (("cosine", 1000), {}, "'cosine', 1000"),
                                ((), {"betas": torch.rand(5)}, "betas=...")):
        with pytest.raises(TypeError, match=rf"^NoiseSchedule\({shown}\): {ways}$"):
            NoiseSchedule(*args, **kwargs)
    schedule = NoiseSchedule.cosine(T=10)
    for same in (copy.deepcopy(schedule), pickle.loads(pickle.dumps(schedule)), schedule.to("cpu"),
                 NoiseSchedule(**vars(schedule))):
        assert all(torch.equal(getattr(same, k), v) for k, v in vars(schedule).items())
