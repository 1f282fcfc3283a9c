"""Samplers (DDPM Algorithm 2, DDIM Eq. 12/16) and guidance, checked against exact answers.

The noise predictor is ``course_utils.analytic.GaussianMixtureEps``: the exact optimal eps for Gaussian-mixture
data, so whatever the samples get wrong is the sampler's fault (or its own discretisation error).

Two kinds of check:
1. A single Gaussian N(mu, std^2 I): eps* is linear in x_t, so every sampler step is a linear map plus Gaussian
   noise, and the exact mean and spread of the sampler's output (discretisation included) follow from a
   float64 recursion on (mean, variance) written below straight from the papers. The samples must match it
   within sampling error alone: a tight test that tells eta = 0 from eta = 1, and a wrong sqrt from a right one.
2. A two-component mixture: the samples must reproduce the weights, means and spreads of the data within
   sampling error plus the sampler's own discretisation error (sized in each test's comments).
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course_utils.analytic import GaussianMixtureEps
from course_utils.data import TWO_GAUSSIANS, GaussianMixture
from course_utils.guidance import cfg_combine, classifier_grad, predict_eps
from course_utils.samplers import ddim_invert, ddim_sample, ddim_sigma, ddim_step, ddim_timesteps, ddpm_sample
from course_utils.schedules import NoiseSchedule

SE_MULT = 4.0  # tolerances are 4 standard errors (+ discretisation where stated); seeds are fixed


# ------------------------------------------------------------------ identities
@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_ddim_sigma_eta1_full_grid_is_posterior_std(name):
    """DDIM Eq. 16 at eta = 1 on the full grid (t -> t-1) is DDPM's posterior standard deviation sqrt(tilde beta_t)."""
    schedule = getattr(NoiseSchedule, name)(T=1000)
    sigmas = torch.stack([ddim_sigma(schedule, t, t - 1, 1.0) for t in range(schedule.T)])   # t_prev = -1 at t = 0
    # float32 alpha_bar: 1 - alpha_bar_t / alpha_bar_{t-1} (= beta_t) cancels, losing about 2^-24 / beta_t of
    # relative precision (cosine's first betas are 4e-5), and sigma inherits half of it.
    rtol = 1e-5 + 2.0 ** -24 / schedule.betas.double()
    err = (sigmas.double() - schedule.posterior_variance.double().sqrt()).abs()
    assert (err <= rtol * schedule.posterior_variance.double().sqrt() + 1e-8).all(), (err / rtol).max()
    assert sigmas[0].item() == 0.0
    assert torch.equal(torch.stack([ddim_sigma(schedule, t, t - 1, 0.0) for t in range(0, schedule.T, 97)]),
                       torch.zeros(len(range(0, schedule.T, 97))))


@pytest.mark.parametrize("num_steps", [1, 7, 50, 100, 999, 1000])
def test_ddim_timesteps_properties(num_steps):
    tau = ddim_timesteps(1000, num_steps)
    assert tau.dtype == torch.long and tau.shape == (num_steps,)
    assert (tau[:-1] > tau[1:]).all(), "descending, no repeats"
    assert tau[-1].item() == 0 and tau[0].item() <= 999
    assert tau.unique().numel() == num_steps
    # evenly spaced, c = T // num_steps, starting at 0 (the DDIM paper's "uniform" / diffusers' "leading");
    # note: one step gives tau = [0], a single jump from x_T treated as almost-clean data
    assert torch.equal(tau, torch.arange(num_steps - 1, -1, -1) * (1000 // num_steps))
    if num_steps == 1000:
        assert torch.equal(tau, torch.arange(999, -1, -1))
    if num_steps == 50:
        assert tau[:3].tolist() == [980, 960, 940]


def test_ddim_timesteps_errors():
    for bad in (0, 1001, 2.5, "50"):
        with pytest.raises(ValueError, match=r"num_steps must be an integer in 1\.\.T = 1\.\.1000"):
            ddim_timesteps(1000, bad)


def test_ddim_step_eta1_full_grid_is_ddpm_step(linear_schedule):
    """One DDIM step at eta = 1 from t to t-1 equals DDPM's posterior step with the same noise."""
    x, eps_pred, z = torch.randn(5, 3).double(), torch.randn(5, 3).double(), torch.randn(5, 3).double()
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)      # float64 throughout: alpha_bar consistent
    ab = torch.cumprod(1 - betas, 0)                                   # with betas to 1e-16, not float32's 1e-7
    for t in (1, 10, 500, 999):
        x_prev, _ = ddim_step(x, eps_pred, ab[t], ab[t - 1], eta=1.0, noise=z)
        ddpm_mean = (x - betas[t] / (1 - ab[t]).sqrt() * eps_pred) / (1 - betas[t]).sqrt()
        ddpm = ddpm_mean + ((1 - ab[t - 1]) / (1 - ab[t]) * betas[t]).sqrt() * z
        assert torch.allclose(x_prev, ddpm, atol=1e-10), t


# ------------------------------------------------------------------ exact reference for a single Gaussian
def _eps_linear(ab: float, mu: float, std: float) -> tuple[float, float]:
    """eps*(x, t) = e1 x + e0 for data N(mu, std^2): eps* = sqrt(1-ab) (x - sqrt(ab) mu) / (ab std^2 + 1 - ab)."""
    v = ab * std * std + 1 - ab
    return math.sqrt(1 - ab) / v, -math.sqrt(1 - ab) * math.sqrt(ab) * mu / v


def reference_output(schedule: NoiseSchedule, mu: float, std: float, *, sampler: str, num_steps: int = 1000,
                     eta: float = 0.0, variance: str = "posterior") -> tuple[float, float]:
    """Exact (mean, std) per coordinate of a sampler's output from x_T ~ N(0, 1) when eps_pred = eps* of N(mu, std^2).

    Every step is x' = A x + B + sigma z, so mean' = A mean + B and var' = A^2 var + sigma^2 (float64).
    """
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64) if schedule.T == 1000 else schedule.betas.double()
    ab = torch.cumprod(1 - betas, 0).tolist()
    betas = betas.tolist()
    m, var = 0.0, 1.0
    if sampler == "ddpm":
        for t in range(len(ab) - 1, -1, -1):
            e1, e0 = _eps_linear(ab[t], mu, std)
            # x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - ab_t) eps) + sigma_t z   (DDPM Algorithm 2)
            r, k = 1 / math.sqrt(1 - betas[t]), betas[t] / math.sqrt(1 - ab[t])
            A, B = r * (1 - k * e1), -r * k * e0
            ab_prev = ab[t - 1] if t > 0 else 1.0
            posterior = (1 - ab_prev) / (1 - ab[t]) * betas[t]
            sigma2 = 0.0 if t == 0 else (posterior if variance == "posterior" else betas[t])
            m, var = A * m + B, A * A * var + sigma2
    else:
        tau = list(range(0, len(ab), len(ab) // num_steps))[:num_steps][::-1]
        for k, t in enumerate(tau):
            a, a_prev = ab[t], (ab[tau[k + 1]] if k + 1 < len(tau) else 1.0)
            e1, e0 = _eps_linear(a, mu, std)
            sigma = eta * math.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))          # DDIM Eq. 16
            c = math.sqrt(max(1 - a_prev - sigma ** 2, 0.0))
            # x' = sqrt(a_prev) (x - sqrt(1 - a) eps) / sqrt(a) + c eps + sigma z          (DDIM Eq. 12)
            A = math.sqrt(a_prev / a) * (1 - math.sqrt(1 - a) * e1) + c * e1
            B = -math.sqrt(a_prev / a) * math.sqrt(1 - a) * e0 + c * e0
            m, var = A * m + B, A * A * var + sigma ** 2
    return m, math.sqrt(var)


SAMPLERS = {
    "ddpm-posterior": dict(sampler="ddpm", variance="posterior"),
    "ddpm-beta": dict(sampler="ddpm", variance="beta"),
    "ddim-50-eta0": dict(sampler="ddim", num_steps=50, eta=0.0),
    "ddim-50-eta1": dict(sampler="ddim", num_steps=50, eta=1.0),
}


def run_sampler(model, schedule, shape, generator, sampler, num_steps=1000, eta=0.0, variance="posterior"):
    if sampler == "ddpm":
        return ddpm_sample(model, schedule, shape, variance=variance, generator=generator, progress=False)
    return ddim_sample(model, schedule, shape, num_steps=num_steps, eta=eta, generator=generator, progress=False)


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.slow  # over 10 s: out of `make test-unit`, in `make test`
def test_sampler_matches_exact_recursion_single_gaussian(linear_schedule, name):
    """Samples vs the exact output distribution of the discretised sampler (tolerance: sampling error only).

    n = N * D independent coordinates: the mean has standard error std / sqrt(n), the std about
    std / sqrt(2 n). The recursion's own spreads differ between the samplers by 1-10% (e.g. std = 0.4:
    DDPM posterior 0.396, beta 0.401, DDIM-50 eta 0 0.374, eta 1 0.348), so the DDIM variants are told apart.
    """
    cfg = SAMPLERS[name]
    mu, std, D = 0.5, 0.4, 8
    N = 4000 if cfg["sampler"] == "ddpm" else 16000         # DDIM's 50 steps are cheap: more samples, tighter test
    model = GaussianMixtureEps(GaussianMixture(weights=(1.0,), means=((mu,) * D,), stds=(std,)), linear_schedule)
    x = run_sampler(model, linear_schedule, (N, D), torch.Generator().manual_seed(1), **cfg).double()
    ref_mean, ref_std = reference_output(linear_schedule, mu, std, **cfg)
    n = N * D
    mean_tol = SE_MULT * ref_std / math.sqrt(n)
    std_tol = SE_MULT * ref_std / math.sqrt(2 * n)
    assert abs(x.mean().item() - ref_mean) < mean_tol, (name, x.mean().item(), ref_mean, mean_tol)
    assert abs(x.std().item() - ref_std) < std_tol, (name, x.std().item(), ref_std, std_tol)


def component_stats(x: torch.Tensor, mixture: GaussianMixture):
    """Assign each point to the nearest mean (components are >= 4 stds apart); weight, mean (D,), std per component."""
    means = torch.tensor(mixture.means, dtype=x.dtype)
    comp = torch.cdist(x, means).argmin(1)
    out = []
    for k in range(len(mixture.weights)):
        xk = x[comp == k]
        out.append((xk.shape[0] / x.shape[0], xk.mean(0), xk.std(0).mean().item(), xk.shape[0]))
    return out


def check_mixture(x, mixture, *, mean_allow, std_target, std_allow):
    """weights within SE_MULT binomial standard errors; means within SE_MULT * s_k / sqrt(n_k) + mean_allow[k];
    per-coordinate std within SE_MULT * s_k / sqrt(2 n_k D) + std_allow[k] of std_target[k]."""
    N, D = x.shape
    for k, (w, mean, std, n_k) in enumerate(component_stats(x.double(), mixture)):
        w_true, s_true = mixture.weights[k], mixture.stds[k]
        w_tol = SE_MULT * math.sqrt(w_true * (1 - w_true) / N)
        assert abs(w - w_true) < w_tol, f"component {k}: weight {w:.4f}, expected {w_true} +- {w_tol:.4f}"
        mu_true = torch.tensor(mixture.means[k], dtype=torch.float64)
        m_tol = SE_MULT * s_true / math.sqrt(n_k) + mean_allow[k]
        assert (mean - mu_true).abs().max().item() < m_tol, \
            f"component {k}: mean {mean.tolist()}, expected {mu_true.tolist()} +- {m_tol:.4f}"
        s_tol = SE_MULT * s_true / math.sqrt(2 * n_k * D) + std_allow[k]
        assert abs(std - std_target[k]) < s_tol, \
            f"component {k}: std {std:.4f}, expected {std_target[k]:.4f} +- {s_tol:.4f} (data: {s_true})"


@pytest.mark.parametrize("variance", ["posterior", "beta"])
@pytest.mark.slow  # over 10 s: out of `make test-unit`, in `make test`
def test_ddpm_1000_steps_reproduces_two_gaussians(linear_schedule, variance):
    """DDPM, 1000 steps, TWO_GAUSSIANS (weights 0.3/0.7, stds 0.3/0.2), 20000 samples.

    Discretisation: by the exact single-Gaussian recursion, 1000 DDPM steps shrink a lone component's std by
    1.2% (posterior variance: 0.3 -> 0.2963, 0.2 -> 0.1963) and leave it within 0.3% (beta). That shrink is
    allowed on top of 4 standard errors; the means are exact in the limit, so only sampling error is allowed.
    """
    mix = TWO_GAUSSIANS
    model = GaussianMixtureEps(mix, linear_schedule)
    x = ddpm_sample(model, linear_schedule, (20000, 2), variance=variance, generator=torch.Generator().manual_seed(2),
                    progress=False)
    allow = [abs(reference_output(linear_schedule, 0.0, std, sampler="ddpm", variance=variance)[1] - std)
             for std in mix.stds]
    check_mixture(x, mix, mean_allow=[0.0, 0.0], std_target=list(mix.stds), std_allow=allow)


# Broader components for the 50-step tests: DDIM's last jump (t = 20 -> 0 -> clean) returns nearly the
# posterior mean E[x0 | x_20], which shrinks a component of std by the factor std / sqrt(std^2 + 0.0063)
# (8% at std = 0.2, 1.2% at std = 0.5): broad components keep that discretisation error small and honest.
BROAD = GaussianMixture(weights=(0.3, 0.7), means=((-2.0, 1.0), (2.0, -1.0)), stds=(0.5, 0.4))


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_50_steps_reproduces_mixture(linear_schedule, eta):
    """DDIM, 50 steps, eta 0 and 1, 20000 samples of BROAD.

    Spreads: the target is the exact 50-step output spread of a lone component (the recursion above; e.g.
    0.5 -> 0.472 at eta 0, 0.444 at eta 1), with a further 3% of std for the interaction of the two components
    at high noise, which the lone-component recursion ignores (measured: up to 2.6%), plus 4 standard errors.
    Means: 50 coarse steps pull each component mean towards the origin by up to 1.6% of |mu| (measured: 1.5%
    at 50 steps, 0.6% at 200, none at 1000 steps), so 2.5% of |mu| is allowed on top of 4 standard errors.
    """
    model = GaussianMixtureEps(BROAD, linear_schedule)
    x = ddim_sample(model, linear_schedule, (20000, 2), num_steps=50, eta=eta,
                    generator=torch.Generator().manual_seed(3), progress=False)
    target = [reference_output(linear_schedule, 0.0, std, sampler="ddim", num_steps=50, eta=eta)[1]
              for std in BROAD.stds]
    mean_allow = [0.025 * max(abs(v) for v in mu) for mu in BROAD.means]
    check_mixture(x, BROAD, mean_allow=mean_allow, std_target=target, std_allow=[0.03 * std for std in BROAD.stds])


@pytest.mark.slow  # over 10 s: out of `make test-unit`, in `make test`
def test_ddim_1000_steps_eta0_is_exact_limit(linear_schedule):
    """The deterministic sampler on the full grid: TWO_GAUSSIANS to within sampling error (recursion: < 0.8%)."""
    mix = TWO_GAUSSIANS
    model = GaussianMixtureEps(mix, linear_schedule)
    x = ddim_sample(model, linear_schedule, (8000, 2), num_steps=1000, generator=torch.Generator().manual_seed(4),
                    progress=False)
    allow = [abs(reference_output(linear_schedule, 0.0, std, sampler="ddim", num_steps=1000)[1] - std)
             for std in mix.stds]
    check_mixture(x, mix, mean_allow=[0.01, 0.01], std_target=list(mix.stds), std_allow=allow)


# ------------------------------------------------------------------ step-level checks
@pytest.mark.parametrize("variance", ["posterior", "beta"])
def test_ddpm_noise_per_step_and_none_at_the_last_step(linear_schedule, variance):
    """x_{t-1} - mean_theta(x_t) must be sigma_t z with the chosen sigma_t, and exactly 0 at the last step.

    At t = 1..3 the two variances differ by a factor 0.45-0.75 (tilde beta_t / beta_t), so checking the
    residual's std to 4 standard errors (8000 values: 3%) tells them apart.
    """
    schedule = linear_schedule
    model = GaussianMixtureEps(TWO_GAUSSIANS, schedule)
    x, traj = ddpm_sample(model, schedule, (4000, 2), variance=variance, generator=torch.Generator().manual_seed(5),
                          progress=False, return_trajectory=True)
    assert traj.shape == (1001, 4000, 2)
    assert torch.equal(traj[-1], x)
    sigma2 = schedule.posterior_variance if variance == "posterior" else schedule.betas
    for t in (999, 500, 3, 2, 1, 0):
        xt = traj[999 - t]                                                      # x at code step t
        eps = model(xt, torch.full((4000,), t))
        mean = schedule.sqrt_recip_alphas[t] * (xt - schedule.betas[t] / schedule.sqrt_one_minus_alpha_bar[t] * eps)
        residual = traj[1000 - t] - mean
        if t == 0:
            assert residual.abs().max().item() < 1e-6, "no noise may be added at the last step"
        else:
            ratio = residual.std().item() / sigma2[t].sqrt().item()
            assert abs(ratio - 1) < SE_MULT / math.sqrt(2 * residual.numel()), (t, ratio)


def test_ddim_on_given_timesteps_matches_the_default_grid_and_checks_them(linear_schedule):
    model = GaussianMixtureEps(TWO_GAUSSIANS, linear_schedule)
    x_T = torch.randn(500, 2, generator=torch.Generator().manual_seed(8))
    default = ddim_sample(model, linear_schedule, (500, 2), num_steps=50, x_T=x_T, progress=False)
    given = ddim_sample(model, linear_schedule, (500, 2), x_T=x_T, progress=False,
                        timesteps=ddim_timesteps(linear_schedule.T, 50))
    assert torch.equal(given, default)
    full = ddim_sample(model, linear_schedule, (500, 2), x_T=x_T, progress=False, timesteps=range(999, -1, -1))
    assert torch.equal(full, ddim_sample(model, linear_schedule, (500, 2), num_steps=1000, x_T=x_T, progress=False))
    for bad in ([], [0, 20], [1000, 500, 0], [500, 500, 0], [500, -1]):
        with pytest.raises(ValueError, match="strictly descending"):
            ddim_sample(model, linear_schedule, (500, 2), x_T=x_T, progress=False, timesteps=bad)


def test_ddim_eta0_is_deterministic_and_eta1_is_not(linear_schedule):
    model = GaussianMixtureEps(TWO_GAUSSIANS, linear_schedule)
    x_T = torch.randn(256, 2)
    a = ddim_sample(model, linear_schedule, (256, 2), x_T=x_T, num_steps=20, generator=torch.Generator().manual_seed(0),
                    progress=False)
    b = ddim_sample(model, linear_schedule, (256, 2), x_T=x_T.clone(), num_steps=20,
                    generator=torch.Generator().manual_seed(99), progress=False)
    assert torch.equal(a, b)
    c = ddim_sample(model, linear_schedule, (256, 2), x_T=x_T, num_steps=20, eta=1.0,
                    generator=torch.Generator().manual_seed(0), progress=False)
    d = ddim_sample(model, linear_schedule, (256, 2), x_T=x_T, num_steps=20, eta=1.0,
                    generator=torch.Generator().manual_seed(99), progress=False)
    assert not torch.allclose(c, d)
    _, traj = ddim_sample(model, linear_schedule, (256, 2), x_T=x_T, num_steps=20, progress=False,
                          return_trajectory=True)
    assert traj.shape == (21, 256, 2) and torch.equal(traj[0], x_T)


def test_ddim_invert_then_sample_reconstructs(linear_schedule):
    """Invert data points to latents and run DDIM (eta 0) back on the same grid: the input must come back.

    Inversion reuses eps_pred at the lower point of each step (as diffusers' DDIMInverseScheduler does), so it is a
    first-order approximation: the error must shrink about in proportion to the step size. Measured on 500
    TWO_GAUSSIANS points (whose exact eps changes fast near the sharp components): mean |error| 0.032 at 50
    steps, 0.0080 at 200, 0.0016 at 1000; the few points near a boundary between components err most
    (max 0.82 at 50 steps, 0.058 at 200). Bounds: the measured means times 2, and a ratio of at least 2.5
    between 50 and 200 steps (first order predicts 4).
    """
    model = GaussianMixtureEps(TWO_GAUSSIANS, linear_schedule)
    x0, _ = TWO_GAUSSIANS.sample(500, generator=torch.Generator().manual_seed(6))
    mean_err = {}
    for num_steps, bound in ((50, 0.065), (200, 0.016)):
        latents = ddim_invert(model, linear_schedule, x0, num_steps=num_steps)
        assert latents.std().item() == pytest.approx(1.0, abs=0.1)           # latents look like N(0, I)
        recon = ddim_sample(model, linear_schedule, x0.shape, x_T=latents, num_steps=num_steps, progress=False)
        err = (recon - x0).abs()
        mean_err[num_steps] = err.mean().item()
        assert mean_err[num_steps] < bound, (num_steps, mean_err[num_steps])
        assert err.median().item() < bound
    assert mean_err[200] < mean_err[50] / 2.5, mean_err
    latents = ddim_invert(model, linear_schedule, x0, num_steps=200)
    recon = ddim_sample(model, linear_schedule, x0.shape, x_T=latents, num_steps=200, progress=False)
    assert (recon - x0).abs().max().item() < 0.12


# ------------------------------------------------------------------ any callable as the model; the device
def test_samplers_take_a_plain_function_as_the_model(linear_schedule):
    """model(xt, t[, y]) may be a plain function (no .parameters()): the same samples as the nn.Module it wraps."""
    module = GaussianMixtureEps(TWO_GAUSSIANS, linear_schedule)

    def function(xt, t, y=None):
        return module(xt, t, y)

    runs = {
        "ddpm": lambda model: ddpm_sample(model, linear_schedule, (200, 2), generator=torch.Generator().manual_seed(5),
                                          progress=False),
        "ddim eta 0.5": lambda model: ddim_sample(model, linear_schedule, (200, 2), num_steps=20, eta=0.5,
                                                  generator=torch.Generator().manual_seed(5), progress=False),
        "ddim guided": lambda model: ddim_sample(model, linear_schedule, (200, 2), num_steps=20, guidance_scale=3.0,
                                                 y=torch.arange(200) % 2, generator=torch.Generator().manual_seed(5),
                                                 progress=False),
    }
    for name, run in runs.items():
        assert torch.equal(run(function), run(module)), name
    x0, _ = TWO_GAUSSIANS.sample(200, generator=torch.Generator().manual_seed(6))
    assert torch.equal(ddim_invert(function, linear_schedule, x0, num_steps=20),
                       ddim_invert(module, linear_schedule, x0, num_steps=20))


def test_samplers_honour_the_device_argument(linear_schedule):
    """``device`` first, else the model's tensors, else x_T's, else the CPU. The "meta" device (shapes, no values)
    makes the choice observable on a CPU-only machine."""
    seen = set()

    def shrink(xt, t):
        seen.add(xt.device.type)
        return 0.1 * xt

    meta = [ddpm_sample(shrink, linear_schedule, (4, 2), device="meta", progress=False),
            ddim_sample(shrink, linear_schedule, (4, 2), num_steps=5, device="meta", progress=False),
            ddim_invert(shrink, linear_schedule, torch.zeros(4, 2), num_steps=5, device="meta")]
    assert [x.device.type for x in meta] == ["meta"] * 3 and seen == {"meta"}
    x_T = torch.zeros(4, 2, device="meta")
    assert ddim_sample(shrink, linear_schedule, (4, 2), x_T=x_T, num_steps=5, progress=False).device.type == "meta"
    assert ddim_sample(shrink, linear_schedule, (4, 2), num_steps=5, progress=False).device.type == "cpu"
    # a model with tensors runs where they are: x_T comes to it, and a device that disagrees is an error
    module = GaussianMixtureEps(TWO_GAUSSIANS, linear_schedule)
    with pytest.raises(ValueError, match=r"are on cpu; move the model with model\.to\('meta'\), or leave device out"):
        ddim_sample(module, linear_schedule, (4, 2), num_steps=5, device="meta", progress=False)


# ------------------------------------------------------------------ guidance
def test_cfg_combine_identities():
    u, c = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.allclose(cfg_combine(u, c, 1.0), c, atol=1e-6, rtol=0)   # u + (c - u): c up to rounding
    assert torch.equal(cfg_combine(u, c, 0.0), u)
    assert torch.allclose(cfg_combine(u, c, 3.0), u + 3 * (c - u))


class _ToyConditional(nn.Module):
    """A deterministic conditional 'noise predictor': a different affine map per class, the null class -1 too."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, 4))            # classes 0, 1, 2 and the null class
        self.calls = 0

    def forward(self, xt, t, y=None):
        self.calls += 1
        y = torch.full((xt.shape[0],), -1) if y is None else y
        idx = torch.where(y < 0, torch.full_like(y, 3), y)
        return self.scale[idx][:, None] * xt + 0.001 * t[:, None].float()


def test_predict_eps_batched_cfg_equals_two_calls():
    model = _ToyConditional()
    xt, t, y = torch.randn(6, 3), torch.randint(0, 1000, (6,)), torch.tensor([0, 1, 2, 0, 1, -1])
    for w in (0.0, 1.0, 2.5, 7.5):
        model.calls = 0
        got = predict_eps(model, xt, t, y=y, guidance_scale=w)
        expected = cfg_combine(model(xt, t, None), model(xt, t, y), w)
        assert torch.allclose(got, expected, atol=1e-6), w
    assert torch.allclose(predict_eps(model, xt, t, y=y, guidance_scale=1.0), model(xt, t, y))
    assert torch.allclose(predict_eps(model, xt, t), model(xt, t))
    model.calls = 0
    predict_eps(model, xt, t, y=y, guidance_scale=3.0)
    assert model.calls == 1, "CFG must use one batched call"


class _ToyClassifier(nn.Module):
    """logits = [x_0, -x_0]: class 0 is likelier where the first coordinate is large."""

    def forward(self, x, t):
        return torch.stack([x[:, 0], -x[:, 0]], dim=1)


def test_classifier_guidance_gradient_sign(linear_schedule):
    clf = _ToyClassifier()
    xt, t = torch.randn(8, 2), torch.full((8,), 500)
    grad = classifier_grad(clf, xt, t, torch.zeros(8, dtype=torch.long))
    assert (grad[:, 0] > 0).all() and (grad[:, 1] == 0).all()         # log p(y=0|x) grows with x_0
    grad1 = classifier_grad(clf, xt, t, torch.ones(8, dtype=torch.long))
    assert (grad1[:, 0] < 0).all()
    # eps_hat = eps_pred - classifier_scale sqrt(1 - alpha_bar) grad: guiding towards class 0 lowers eps_0,
    # so x0_pred moves to +x_0
    zero_model = lambda x, t, y=None: torch.zeros_like(x)  # noqa: E731
    y = torch.zeros(8, dtype=torch.long)
    eps_pred = predict_eps(zero_model, xt, t, y=y, classifier=clf, classifier_scale=2.0, schedule=linear_schedule)
    expected = -2.0 * linear_schedule.sqrt_one_minus_alpha_bar[500] * grad
    assert torch.allclose(eps_pred, expected, atol=1e-6)
    assert (eps_pred[:, 0] < 0).all()
    with pytest.raises(ValueError, match=r"classifier guidance \(classifier_scale=1\.0\) needs the target classes y"):
        predict_eps(zero_model, xt, t, classifier=clf, classifier_scale=1.0)
    with pytest.raises(ValueError, match="classifier guidance needs the target classes y and the schedule"):
        predict_eps(zero_model, xt, t, y=y, classifier=clf, classifier_scale=1.0)


def test_conditional_sampling_with_analytic_model_picks_the_component(linear_schedule):
    """GaussianMixtureEps conditioned on y = component k: DDIM samples land in component k."""
    model = GaussianMixtureEps(TWO_GAUSSIANS, linear_schedule)
    y = torch.tensor([0] * 100 + [1] * 100)
    x = ddim_sample(model, linear_schedule, (200, 2), y=y, num_steps=50, progress=False)
    comp = torch.cdist(x, torch.tensor(TWO_GAUSSIANS.means)).argmin(1)
    assert torch.equal(comp, y)


# ------------------------------------------------------------------ bad input
class _NaNModel(nn.Module):
    def __init__(self, bad_from: int):
        super().__init__()
        self.bad_from = bad_from

    def forward(self, xt, t, y=None):
        out = torch.zeros_like(xt)
        return out + float("nan") if int(t.max()) <= self.bad_from else out


def test_nan_from_model_names_the_timestep(linear_schedule):
    with pytest.raises(FloatingPointError, match=r"NaN or inf at timestep t = 500"):
        ddpm_sample(_NaNModel(500), linear_schedule, (2, 3), progress=False)
    with pytest.raises(FloatingPointError, match=r"NaN or inf at timestep t = 480"):
        ddim_sample(_NaNModel(490), linear_schedule, (2, 3), num_steps=50, progress=False)


def test_wrong_eps_shape_is_reported(linear_schedule):
    bad = lambda x, t, y=None: x[:, :1]  # noqa: E731
    with pytest.raises(ValueError, match=r"returned shape \(2, 1\) for x_t of shape \(2, 3\)"):
        ddim_sample(bad, linear_schedule, (2, 3), num_steps=5, progress=False, device="cpu")


def test_invalid_sampler_options(linear_schedule):
    model = GaussianMixtureEps(TWO_GAUSSIANS, linear_schedule)
    with pytest.raises(ValueError, match=r"variance must be one of \('posterior', 'beta'\), got 'fixed_small'"):
        ddpm_sample(model, linear_schedule, (2, 2), variance="fixed_small", progress=False)
    for eta in (-0.5, 1.5):     # above 1, 1 - alpha_bar_prev - sigma^2 can be negative (clamped to 0 before)
        with pytest.raises(ValueError, match=rf"eta must lie in \[0, 1\] .*, got {eta}"):
            ddim_sample(model, linear_schedule, (2, 2), eta=eta, progress=False)
    with pytest.raises(ValueError, match=r"num_steps must be an integer in 1\.\.T"):
        ddim_sample(model, linear_schedule, (2, 2), num_steps=0, progress=False)
    with pytest.raises(ValueError, match=r"x_T has shape \(3, 2\) but shape=\(2, 2\)"):
        ddim_sample(model, linear_schedule, (2, 2), x_T=torch.zeros(3, 2), progress=False)
    with pytest.raises(ValueError, match=r"shape must be \(N, \.\.\.\)"):
        ddim_sample(model, linear_schedule, (2,), progress=False)
    with pytest.raises(ValueError, match=r"y must hold one class per sample, shape \(2,\)"):
        ddim_sample(model, linear_schedule, (2, 2), y=torch.tensor([0, 1, 1]), progress=False)
    with pytest.raises(ValueError, match="eta > 0 needs noise"):
        ddim_step(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor(0.5), torch.tensor(0.9), eta=0.5)


# ------------------------------------------------------------------ a student's wrong calls (the error audit)
T_SMALL = 50


@pytest.fixture
def small_schedule() -> NoiseSchedule:
    return NoiseSchedule.linear(T=T_SMALL)


def test_mixture_eps_refuses_one_t_for_the_batch(small_schedule):
    """exact_eps(x, 30) said "'int' object has no attribute 'long'"; t of batch 3 for x of batch 8 gave torch's
    broadcast error. The nets' message now, with the call's signature."""
    exact, x = GaussianMixtureEps(TWO_GAUSSIANS, small_schedule), torch.randn(8, 2)
    with pytest.raises(TypeError, match=r"^GaussianMixtureEps\(xt, t\): t must be a tensor of shape \(8,\), one "
                                        r"timestep per example, got int 30; .*torch\.full\(\(xt\.shape\[0\],\), 30\)"):
        exact(x, 30)
    with pytest.raises(ValueError, match=r"GaussianMixtureEps\(xt, t\): .*got a 0-dim tensor \(30\)"):
        exact(x, torch.tensor(30))
    with pytest.raises(ValueError, match=r"GaussianMixtureEps\(xt, t\): t must have shape \(8,\), one timestep per "
                                         r"example, got \(3,\)"):
        exact(x, torch.tensor([1, 2, 3]))
    assert exact(x, torch.full((8,), 30)).shape == x.shape


def test_guidance_asked_for_without_its_inputs_raises(small_schedule):
    """guidance_scale=3 without y, and a classifier without classifier_scale (its default was 0.0), were ignored
    silently: the samples equalled plain sampling. Now a ValueError naming the sampler; an explicit
    classifier_scale=0.0 with a classifier still runs (lesson 6 sweeps it from 0.0), and so does
    guidance_scale=0 without y (the unconditional model, which is what y = None gives)."""
    model, shape = GaussianMixtureEps(TWO_GAUSSIANS, small_schedule), (8, 2)
    y = torch.arange(8) % 2
    kwargs = dict(num_steps=5, progress=False)
    with pytest.raises(ValueError, match=r"^ddim_sample\(model, schedule, shape\): guidance_scale=3\.0 needs the "
                                         r"target classes y \(one per sample, shape \(N,\)\); without y"):
        ddim_sample(model, small_schedule, shape, guidance_scale=3.0, **kwargs)
    with pytest.raises(ValueError, match=r"^ddpm_sample\(model, schedule, shape\): guidance_scale=2"):
        ddpm_sample(model, small_schedule, shape, guidance_scale=2, progress=False)
    with pytest.raises(ValueError, match=r"^predict_eps\(model, xt, t\): guidance_scale=3\.0 needs"):
        predict_eps(model, torch.randn(shape), torch.full((8,), 10), guidance_scale=3.0)
    with pytest.raises(ValueError, match=r"ddim_sample\(model, schedule, shape\): a classifier was given but no "
                                         r"classifier_scale, so it would not be used; pass classifier_scale="):
        ddim_sample(model, small_schedule, shape, y=y, classifier=_ToyClassifier(), **kwargs)
    with pytest.raises(ValueError, match=r"^ddim_sample\(model, schedule, shape\): classifier guidance "
                                         r"\(classifier_scale=3\.0\) needs the target classes y"):   # from a review
        ddim_sample(model, small_schedule, shape, classifier=_ToyClassifier(), classifier_scale=3.0, **kwargs)
    with pytest.raises(ValueError, match=r"classifier_scale=2\.0 was given without a classifier"):
        ddim_sample(model, small_schedule, shape, y=y, classifier_scale=2.0, **kwargs)
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    plain = ddim_sample(model, small_schedule, shape, x_T=x_T, y=y, **kwargs)
    swept = ddim_sample(model, small_schedule, shape, x_T=x_T, y=y, classifier=_ToyClassifier(),
                        classifier_scale=0.0, **kwargs)
    assert torch.equal(plain, swept)
    unconditional = ddim_sample(model, small_schedule, shape, x_T=x_T, **kwargs)
    assert torch.equal(ddim_sample(model, small_schedule, shape, x_T=x_T, guidance_scale=0.0, **kwargs), unconditional)


def test_samplers_check_the_order_of_their_arguments(small_schedule):
    """ddim_sample(schedule, model, shape) said "'MLPDenoiser' object has no attribute 'T'"; an int shape
    "object of type 'int' has no len()"; ddim_invert with a numpy x0 "... has no attribute 'to'"."""
    from course_utils.solvers import dpmpp_2m_sample, heun_sample
    model = GaussianMixtureEps(TWO_GAUSSIANS, small_schedule)
    for sampler in (ddpm_sample, ddim_sample, heun_sample, dpmpp_2m_sample):
        with pytest.raises(TypeError, match=rf"^{sampler.__name__}\(model, schedule, shape\): schedule must be a "
                                            r"NoiseSchedule, got GaussianMixtureEps \(are the arguments in this "
                                            r"order\?\)"):
            sampler(small_schedule, model, (8, 2), progress=False)
        with pytest.raises(TypeError, match=rf"^{sampler.__name__}\(model, schedule, shape\): shape must be a tuple "
                                            r"\(N, \.\.\.\), e\.g\. \(16, 1, 28, 28\) or x_T\.shape, got int 16"):
            sampler(model, small_schedule, 16, progress=False)
    assert ddim_sample(model, small_schedule, [4, 2], num_steps=3, progress=False).shape == (4, 2)   # a list is fine
    with pytest.raises(TypeError, match=r"^ddim_invert\(model, schedule, x0\): x0 must be a torch\.Tensor, got "
                                        r"ndarray"):
        ddim_invert(model, small_schedule, torch.zeros(4, 2).numpy(), num_steps=3)


def test_sampling_on_a_missing_gpu_says_so(small_schedule, monkeypatch):
    """device="cuda" on a machine without a GPU said "move the model with model.to('cuda')", which then fails:
    now get_device's message. A device name torch does not know ("gpu") says which names it takes."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model = GaussianMixtureEps(TWO_GAUSSIANS, small_schedule)
    with pytest.raises(RuntimeError, match=r"device 'cuda' asked for, but torch\.cuda\.is_available\(\) is False; "
                                           r"use get_device\(\)"):
        ddim_sample(model, small_schedule, (4, 2), num_steps=3, device="cuda", progress=False)
    with pytest.raises(RuntimeError, match=r"unknown device 'gpu': use 'cuda' \(an NVIDIA GPU\), 'mps' \(Apple\), "
                                           r"'cpu', or get_device\(\)"):
        ddim_sample(model, small_schedule, (4, 2), num_steps=3, device="gpu", progress=False)


def test_ddim_step_by_hand_takes_floats_and_refuses_a_batch_vector_and_a_step_to_more_noise(small_schedule):
    """Lessons 5 and 7 and the DDIM lab call ddim_step by hand. A Python float for the last alpha_bar_prev said
    "'float' object has no attribute 'sqrt'"; coefficients of shape (B,) against x (B, D) broadcast over the
    coordinates (a torch error, or silently wrong when B == D); alpha_bar[-1] as the last alpha_bar_prev returned
    NaN at eta > 0, which now raises (at eta = 0 it is still NaN: the next test)."""
    ab = small_schedule.alpha_bar
    xt, eps_pred, noise = torch.randn(2, 2), torch.randn(2, 2), torch.randn(2, 2)
    for eta in (0.0, 0.5):
        as_float = ddim_step(xt, eps_pred, float(ab[3]), 1.0, eta=eta, noise=noise)
        as_tensor = ddim_step(xt, eps_pred, ab[3], torch.tensor(1.0), eta=eta, noise=noise)
        for got, right in zip(as_float, as_tensor):
            assert got.dtype == torch.float32 and torch.allclose(got, right, atol=1e-6), eta
    t = torch.tensor([10, 20])                                  # B = 2 = D: the silent case
    with pytest.raises(ValueError, match=r"^ddim_step\(xt, eps_pred, alpha_bar_t, alpha_bar_prev, \*, eta, noise\): "
                                         r"alpha_bar_t has shape \(2,\) but xt has shape \(2, 2\): its batch lines "
                                         r"up with xt's LAST dimensions, not xt's batch; give it shape \(2, 1\)"):
        ddim_step(xt, eps_pred, ab[t], ab[t - 5])
    with pytest.raises(ValueError, match=r"alpha_bar_prev has shape \(8,\) but xt has shape \(8, 1, 4, 4\).*"
                                         r"shape \(8, 1, 1, 1\)"):
        ddim_step(torch.zeros(8, 1, 4, 4), torch.zeros(8, 1, 4, 4), torch.tensor(0.5), torch.full((8,), 0.9))
    per_example = ddim_step(xt, eps_pred, ab[t][:, None], ab[t - 5][:, None])[0]          # (B, 1): right
    assert torch.allclose(per_example[0], ddim_step(xt[:1], eps_pred[:1], ab[10], ab[5])[0][0], atol=1e-6)
    assert ddim_step(xt[:1], eps_pred[:1], ab[10][None], ab[5][None])[0].shape == (1, 2)     # (1,) broadcasts fine
    with pytest.raises(ValueError, match=r"alpha_bar_prev \(0\.6\d+\) is below alpha_bar_t \(0\.99\d+\): this step "
                                         r"goes to MORE noise, and with eta = 0\.5 sigma_t is the square root of a "
                                         r"negative number \(NaN\).*torch\.tensor\(1\.0\): alpha_bar\[-1\] is the "
                                         r"LAST entry"):
        ddim_step(xt, eps_pred, ab[0], ab[-1], eta=0.5, noise=noise)
    x64 = xt.double()                                            # a float coefficient takes xt's dtype (a review)
    assert torch.equal(ddim_step(x64, x64, 0.99990001, 1.0)[0], ddim_step(x64, x64, torch.tensor(0.99990001,
                       dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))[0])


def test_ddim_step_to_more_noise_at_eta_0_is_nan_as_its_docstring_says():
    """The checks of worksheets 5 and 6 read the NaN of a step to more noise (rates swapped, alpha_bar[-1] at the
    end) in a student's loop; a docstring had said such a step was computed as given."""
    x = torch.randn(4, 2)
    assert torch.isnan(ddim_step(x, x, torch.tensor(0.9999), torch.tensor(0.6), eta=0.0)[0]).all()
    assert "returns NaN" in ddim_step.__doc__
