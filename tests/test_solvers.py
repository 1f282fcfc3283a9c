"""Fast solvers of the probability-flow ODE (course_utils.solvers), checked against exact answers.

1. Identities: DDIM's step is Euler's in (edm_sigma, x_bar) coordinates (DDIM Eq. 13); DPM-Solver++'s first-order
   step is DDIM's; lambda = log-SNR / 2 = -log(edm_sigma); each solver makes the network calls it says.
2. A single Gaussian N(mu, s^2): the probability-flow ODE has a closed-form solution,
       x_bar(sigma) - mu = (x_bar(sigma') - mu) sqrt(s^2 + sigma^2) / sqrt(s^2 + sigma'^2),
   so each solver's error is known exactly, and its order shows: halving the step size divides DDIM's (Euler's)
   error by about 2 and a second-order solver's by about 4.
3. The 2-D mixture, with the exact noise predictor of ``course_utils.analytic``: each solver reproduces its
   weights, means and spreads, and at equal network calls DPM-Solver++(2M) (from 10 calls) and Heun (from
   about 50) land closer to the exact ODE solution (DDIM on the full grid of 1000 steps, same x_T) than DDIM.
4. diffusers' DPMSolverMultistepScheduler (dpmsolver++, order 2) agrees with ours step for step; its
   DDIMScheduler always steps from t to t - T // N, which is our DDIM on lesson 5's "leading" grid but, with
   timestep_spacing="linspace", not our DDIM on the "linspace" grid (pinned below).
"""
from __future__ import annotations

import math

import pytest
import torch

from course_utils.analytic import GaussianMixtureEps
from course_utils.data import EIGHT_GAUSSIANS, TWO_GAUSSIANS, GaussianMixture
from course_utils.samplers import ddim_sample, ddim_step, ddim_timesteps
from course_utils.schedules import NoiseSchedule
from course_utils.solvers import (SOLVERS, dpmpp_2m_sample, dpmpp_2m_step, edm_sigma, half_log_snr, heun_sample,
                                  heun_step, network_calls, solve, solver_timesteps, steps_for_calls)

SE_MULT = 4.0  # tolerances are 4 standard errors (+ discretisation where stated); seeds are fixed


def _steps(solver: str, calls: int) -> int:
    return steps_for_calls(solver, calls)


# ------------------------------------------------------------------ identities
def test_half_log_snr_and_edm_sigma(linear_schedule):
    """lambda = log-SNR / 2 = -log(edm_sigma); x_t / sqrt(alpha_bar) = x_0 + edm_sigma eps (the ODE's coordinates)."""
    ab = linear_schedule.alpha_bar.double()
    lam, sigma = half_log_snr(ab), edm_sigma(ab)
    assert torch.allclose(lam, linear_schedule.log_snr().double() / 2, rtol=1e-5, atol=1e-6)
    assert torch.allclose(sigma, torch.exp(-lam), rtol=1e-12)
    assert (lam[:-1] > lam[1:]).all(), "lambda falls as t grows"
    assert half_log_snr(torch.tensor(1.0, dtype=torch.float64)) == math.inf and edm_sigma(torch.tensor(1.0)) == 0
    x0, eps = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    for t in (0, 300, 999):
        xt = ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * eps                     # q_sample (DDPM Eq. 4)
        assert torch.allclose(xt / ab[t].sqrt(), x0 + sigma[t] * eps, atol=1e-9)


JUMPS = [(999, 722), (500, 480), (30, 0), (0, -1)]          # (t, t_prev); t_prev = -1: to clean data


@pytest.mark.parametrize("t, t_prev", JUMPS)
def test_euler_in_ode_coordinates_is_the_ddim_step(linear_schedule, t, t_prev):
    """DDIM Eq. 13: x_prev / sqrt(alpha_bar_prev) = x_t / sqrt(alpha_bar_t) + (sigma_prev - sigma_t) eps_pred."""
    ab = linear_schedule.alpha_bar.double()
    a, a_prev = ab[t], (ab[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64))
    xt, eps_pred = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    x_bar_prev = heun_step(xt / a.sqrt(), eps_pred, edm_sigma(a), edm_sigma(a_prev))
    ddim, _ = ddim_step(xt, eps_pred, a, a_prev)
    assert torch.allclose(a_prev.sqrt() * x_bar_prev, ddim, atol=1e-10)


@pytest.mark.parametrize("t, t_prev", JUMPS)
def test_dpmpp_first_order_step_is_the_ddim_step(linear_schedule, t, t_prev):
    """Without a previous x0_pred (the first step) DPM-Solver++ is DDIM; so is its last step to clean data,
    where h = inf, whatever the history: then x_prev = x0_pred."""
    ab = linear_schedule.alpha_bar.double()
    a, a_prev = ab[t], (ab[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64))
    xt, eps_pred = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    ddim, x0_pred = ddim_step(xt, eps_pred, a, a_prev)
    ours, ours_x0 = dpmpp_2m_step(xt, eps_pred, a, a_prev)
    assert torch.allclose(ours, ddim, atol=1e-10) and torch.allclose(ours_x0, x0_pred, atol=1e-12)
    if t_prev < 0:
        last, _ = dpmpp_2m_step(xt, eps_pred, a, a_prev, x0_pred_last=torch.randn(6, 3, dtype=torch.float64),
                                alpha_bar_last=ab[min(t + 50, 999)])
        assert torch.isfinite(last).all() and torch.allclose(last, x0_pred, atol=1e-10)


def test_dpmpp_second_order_step_extrapolates_x0_pred_linearly_in_lambda(linear_schedule):
    """D = x0_pred + (x0_pred - x0_pred_last) / (2 r), r = h_last / h (Algorithm 2): with x0_pred_last = x0_pred
    the step is DDIM's; changing the previous prediction by delta moves x_prev by
    alpha_prev (exp(-h) - 1) / (2 r) delta."""
    ab = linear_schedule.alpha_bar.double()
    a_last, a, a_prev = ab[700], ab[500], ab[300]
    xt, eps_pred = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    ddim, x0_pred = ddim_step(xt, eps_pred, a, a_prev)
    same, _ = dpmpp_2m_step(xt, eps_pred, a, a_prev, x0_pred_last=x0_pred, alpha_bar_last=a_last)
    assert torch.allclose(same, ddim, atol=1e-10)
    delta = torch.randn(4, 2, dtype=torch.float64)
    moved, _ = dpmpp_2m_step(xt, eps_pred, a, a_prev, x0_pred_last=x0_pred + delta, alpha_bar_last=a_last)
    h, h_last = half_log_snr(a_prev) - half_log_snr(a), half_log_snr(a) - half_log_snr(a_last)
    r = h_last / h
    assert torch.allclose(moved - ddim, a_prev.sqrt() * torch.expm1(-h) / (2 * r) * delta, atol=1e-10)


class _Counter:
    """A plain-function model that counts its calls (and the timesteps it was asked about)."""

    def __init__(self, model):
        self.model, self.calls, self.timesteps = model, 0, []

    def __call__(self, xt, t, y=None):
        self.calls += 1
        self.timesteps.append(int(t[0]))
        return self.model(xt, t, y)


@pytest.mark.parametrize("num_steps", [1, 2, 5, 10])
def test_network_calls_are_counted_honestly(linear_schedule, num_steps):
    """Heun costs 2N - 1 calls (its last step, to clean data, is Euler); DDIM and DPM-Solver++(2M) N. Every call
    is at a grid timestep, so the steps need nothing but the trained t = 0..T-1."""
    grid = solver_timesteps(linear_schedule, num_steps).tolist()
    for solver in SOLVERS:
        model = _Counter(GaussianMixtureEps(TWO_GAUSSIANS, linear_schedule))
        solve(solver, model, linear_schedule, (8, 2), num_steps=num_steps, progress=False)
        assert model.calls == network_calls(solver, num_steps), solver
        assert set(model.timesteps) == set(grid), solver
        assert steps_for_calls(solver, network_calls(solver, num_steps)) == num_steps
    assert network_calls("Heun", num_steps) == 2 * num_steps - 1
    model = _Counter(GaussianMixtureEps(TWO_GAUSSIANS, linear_schedule))
    heun_sample(model, linear_schedule, (8, 2), num_steps=num_steps, y=torch.arange(8) % 2, guidance_scale=3.0,
                progress=False)
    assert model.calls == 2 * num_steps - 1, "classifier-free guidance is one batched call per evaluation"


@pytest.mark.parametrize("spacing", ["logsnr", "linspace"])
def test_solver_timesteps(linear_schedule, cosine_schedule, spacing):
    for schedule in (linear_schedule, cosine_schedule):
        for n in (2, 3, 5, 10, 20, 50, 200, 999, 1000):
            grid = solver_timesteps(schedule, n, spacing=spacing)
            assert grid.dtype == torch.long and grid.shape == (n,)
            assert (grid[:-1] > grid[1:]).all(), "strictly descending"
            assert grid[0].item() == schedule.T - 1 and grid[-1].item() == 0
    assert torch.equal(solver_timesteps(linear_schedule, 1000, spacing=spacing), torch.arange(999, -1, -1))
    assert torch.equal(solver_timesteps(linear_schedule, 50, spacing="leading"), ddim_timesteps(1000, 50))
    assert solver_timesteps(linear_schedule, 5, spacing="linspace").tolist() == [999, 749, 500, 250, 0]


def test_logsnr_grid_is_even_in_lambda(linear_schedule):
    """Away from t = 0 (where one timestep spans more lambda than the grid's step) the points are within half
    a timestep's lambda of the even grid: the rounding is to the nearest timestep."""
    lam = half_log_snr(linear_schedule.alpha_bar.double())
    n = 10
    grid = solver_timesteps(linear_schedule, n)
    ideal = torch.linspace(float(lam[999]), float(lam[0]), n, dtype=torch.float64)
    slope = (lam[:-1] - lam[1:]).abs()                                  # lambda per timestep
    for k, t in enumerate(grid.tolist()):
        assert abs(float(lam[t] - ideal[k])) <= 0.5 * float(slope[max(t - 1, 0):t + 1].max()) + 1e-12, (k, t)


def test_invalid_solver_options(linear_schedule):
    model = GaussianMixtureEps(TWO_GAUSSIANS, linear_schedule)
    with pytest.raises(ValueError, match=r"solver must be one of \('DDIM', 'Heun', 'DPM-Solver\+\+\(2M\)'\), got 'RK"):
        solve("RK4", model, linear_schedule, (2, 2), num_steps=5)
    # the model first and the solver second (an API audit's call) printed the whole network's repr
    with pytest.raises(TypeError, match=r"^solve\(solver, model, schedule, shape\): solver must be one of \(.*\), "
                                        r"got GaussianMixtureEps \(are the arguments in this order\?\)$"):
        solve(model, "Heun", linear_schedule, (2, 2), num_steps=5)
    with pytest.raises(ValueError, match=r"spacing must be one of \('logsnr', 'linspace', 'leading'\), got 'karras'"):
        solver_timesteps(linear_schedule, 5, spacing="karras")
    with pytest.raises(ValueError, match=r"num_steps must be an integer in 1\.\.T = 1\.\.1000, got 0"):
        heun_sample(model, linear_schedule, (2, 2), num_steps=0, progress=False)
    with pytest.raises(ValueError, match=r"timesteps must be a non-empty, strictly descending sequence"):
        dpmpp_2m_sample(model, linear_schedule, (2, 2), timesteps=[10, 10, 0], progress=False)
    with pytest.raises(ValueError, match=r"x_T has shape \(3, 2\) but shape=\(2, 2\)"):
        dpmpp_2m_sample(model, linear_schedule, (2, 2), x_T=torch.zeros(3, 2), progress=False)
    with pytest.raises(ValueError, match=r"y must hold one class per sample, shape \(2,\)"):
        heun_sample(model, linear_schedule, (2, 2), y=torch.tensor([0, 1, 1]), progress=False)


def test_trajectories_and_determinism(linear_schedule):
    model = GaussianMixtureEps(TWO_GAUSSIANS, linear_schedule)
    x_T = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    for run in (heun_sample, dpmpp_2m_sample):
        x, traj = run(model, linear_schedule, (50, 2), num_steps=7, x_T=x_T, progress=False, return_trajectory=True)
        assert traj.shape == (8, 50, 2) and torch.equal(traj[0], x_T) and torch.equal(traj[-1], x)
        assert torch.equal(run(model, linear_schedule, (50, 2), num_steps=7, x_T=x_T, progress=False), x)
    # a plain function runs like the module, and the samplers run where the tensors are ("meta": shapes only)
    assert torch.equal(dpmpp_2m_sample(lambda xt, t: model(xt, t), linear_schedule, (50, 2), x_T=x_T, progress=False),
                       dpmpp_2m_sample(model, linear_schedule, (50, 2), x_T=x_T, progress=False))
    shrink = lambda xt, t: 0.1 * xt  # noqa: E731
    for run in (heun_sample, dpmpp_2m_sample):
        assert run(shrink, linear_schedule, (4, 2), num_steps=3, device="meta", progress=False).device.type == "meta"


# ------------------------------------------------------------------ a single Gaussian: the exact ODE solution
MU, S = 0.5, 0.3


def exact_endpoint(x_T: torch.Tensor, schedule: NoiseSchedule, t_start: int = 999) -> torch.Tensor:
    """The ODE's solution from x_T at t_start to t = 0 for data N(MU, S^2), then the samplers' last first-order
    step to clean data (x0_pred at t = 0, the posterior mean): all in closed form, float64."""
    ab = schedule.alpha_bar.double()
    sig_T, sig_0 = edm_sigma(ab[t_start]), edm_sigma(ab[0])
    x_bar_T = x_T.double() / ab[t_start].sqrt()
    x_bar_0 = MU + (x_bar_T - MU) * math.sqrt(S ** 2 + sig_0 ** 2) / math.sqrt(S ** 2 + sig_T ** 2)
    return MU + S ** 2 / (S ** 2 + sig_0 ** 2) * (x_bar_0 - MU)                # E[x_0 | x_bar at t = 0]


@pytest.mark.slow  # over 10 s: out of `make test-unit`, in `make test`
def test_exact_ode_solution_of_a_single_gaussian_and_the_order_of_each_solver(linear_schedule):
    """Mean absolute error against the closed form (2000 x 4 values, float32). Measured at 10, 20, 40, 80 steps:

        DDIM               0.056   0.029   0.014    0.0072    halves with the step: first order
        DPM-Solver++(2M)   0.0064  0.0036  0.00091  0.00022   quarters from 20 steps on: second order
        Heun               0.046   0.0088  0.0020   0.00046   quarters (after an unstable start: 0.33 at 5 steps)

    (From 10 to 20 steps DPM-Solver++ gains less, 1.8x: the logsnr grid changes shape near t = 0, where rounding
    to whole timesteps pushes points apart.) DDIM on the full grid, the reference of the mixture tests below, is
    within 0.001 of the exact solution (0.35% of the data's std)."""
    gaussian = GaussianMixture(weights=(1.0,), means=((MU,) * 4,), stds=(S,))
    model = GaussianMixtureEps(gaussian, linear_schedule)
    x_T = torch.randn(2000, 4, generator=torch.Generator().manual_seed(0))
    exact = exact_endpoint(x_T, linear_schedule)
    full = ddim_sample(model, linear_schedule, x_T.shape, x_T=x_T, num_steps=1000, progress=False).double()
    assert (full - exact).abs().mean() < 0.005 * S
    errors = {}
    for solver in SOLVERS:
        errors[solver] = [(solve(solver, model, linear_schedule, x_T.shape, x_T=x_T, num_steps=n, progress=False)
                           .double() - exact).abs().mean().item() for n in (10, 20, 40, 80)]
    ratios = {k: [e[1] / e[2], e[2] / e[3]] for k, e in errors.items()}          # 20 -> 40 -> 80 steps
    assert all(1.7 < r < 2.4 for r in ratios["DDIM"]), (ratios, errors)
    assert all(r > 3.4 for r in ratios["DPM-Solver++(2M)"] + ratios["Heun"]), (ratios, errors)
    assert errors["DPM-Solver++(2M)"][0] * 5 < errors["DDIM"][0], errors        # 10 steps each: the same calls


# ------------------------------------------------------------------ the 2-D mixture
def component_stats(x: torch.Tensor, mixture: GaussianMixture):
    """Assign each point to the nearest mean (components are >= 4 stds apart); weight, mean (D,), std per component."""
    comp = torch.cdist(x, torch.tensor(mixture.means, dtype=x.dtype)).argmin(1)
    return [((comp == k).float().mean().item(), x[comp == k].mean(0), x[comp == k].std(0).mean().item(),
             int((comp == k).sum())) for k in range(len(mixture.weights))]


BROAD = GaussianMixture(weights=(0.3, 0.7), means=((-2.0, 1.0), (2.0, -1.0)), stds=(0.5, 0.4))


@pytest.mark.parametrize("solver, calls", [("DPM-Solver++(2M)", 30), ("Heun", 49)])
def test_solver_reproduces_the_mixture(linear_schedule, solver, calls):
    """20000 samples of BROAD: weights within 4 binomial standard errors, means and per-coordinate spreads within
    4 standard errors plus a discretisation allowance of 1.5% of |mu| and 2% of the std. Measured deviations
    (means in % of |mu|, spreads in % of the std, components 0 / 1):

        DPM-Solver++(2M), 10 / 20 / 30 / 50 calls   means 7.0 / 0.9 / 0.6 / 0.5,   spreads +15 / +5.1 / +2.8 / +1.2
        Heun, 39 / 49 / 99 calls                    means 1.7 / 1.1 / 0.6,         spreads +3.4 / +2.3 / +0.8
        DDIM (same grid), 20 / 50 / 100 calls       means 9.2 / 3.9 / 2.1,         spreads  0.0 / +0.4 / +0.2

    (spreads of component 0, the broader one, whose 4 standard errors are 2.6% of its std). With few calls the
    second-order solvers widen the components before they shift them; DDIM shifts the means first."""
    model = GaussianMixtureEps(BROAD, linear_schedule)
    x = solve(solver, model, linear_schedule, (20000, 2), num_steps=_steps(solver, calls),
              generator=torch.Generator().manual_seed(3), progress=False).double()
    for k, (w, mean, std, n_k) in enumerate(component_stats(x, BROAD)):
        w_true, s_true = BROAD.weights[k], BROAD.stds[k]
        mu_true = torch.tensor(BROAD.means[k], dtype=torch.float64)
        assert abs(w - w_true) < SE_MULT * math.sqrt(w_true * (1 - w_true) / x.shape[0]), (k, w)
        m_tol = SE_MULT * s_true / math.sqrt(n_k) + 0.015 * mu_true.abs().max().item()
        assert (mean - mu_true).abs().max().item() < m_tol, (k, mean.tolist(), m_tol)
        s_tol = SE_MULT * s_true / math.sqrt(2 * n_k * 2) + 0.02 * s_true
        assert abs(std - s_true) < s_tol, (k, std, s_tol)


@pytest.mark.parametrize("mixture", [TWO_GAUSSIANS, EIGHT_GAUSSIANS], ids=["two", "eight"])
@pytest.mark.slow  # over 10 s: out of `make test-unit`, in `make test`
def test_second_order_lands_closer_to_the_exact_ode_solution_at_equal_calls(linear_schedule, mixture):
    """Mean distance to DDIM on the full grid (1000 steps, same x_T; within 0.35% of the exact solution above) at
    equal network calls, all three on the same logsnr grid. Measured distances (two / eight Gaussians):

        calls              10               20               50 (Heun 49)
        DDIM               0.164 / 0.108    0.078 / 0.048    0.029 / 0.017
        DPM-Solver++(2M)   0.068 / 0.083    0.016 / 0.013    0.004 / 0.003
        Heun (2N-1 calls)  1.12  / 1.14     0.126 / 0.097    0.015 / 0.009

    DPM-Solver++(2M) is >= 2.4x closer from 10 calls on for two Gaussians and from 20 for eight (3.7x); Heun,
    which pays two calls per step and overshoots near the data with big steps, wins only from about 50 calls
    (1.9x). The assertions keep margins below those factors.
    """
    model = GaussianMixtureEps(mixture, linear_schedule)
    x_T = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    exact = ddim_sample(model, linear_schedule, x_T.shape, x_T=x_T, num_steps=1000, progress=False)

    def distance(solver, calls):
        x = solve(solver, model, linear_schedule, x_T.shape, x_T=x_T, num_steps=_steps(solver, calls), progress=False)
        return (x - exact).norm(dim=1).mean().item()

    ddim = {c: distance("DDIM", c) for c in (10, 20, 50)}
    dpm = {c: distance("DPM-Solver++(2M)", c) for c in (10, 20, 50)}
    heun = distance("Heun", 50)
    assert dpm[20] * 3 < ddim[20] and dpm[50] * 3 < ddim[50], (dpm, ddim)
    if mixture is TWO_GAUSSIANS:
        assert dpm[10] * 2 < ddim[10], (dpm, ddim)
    assert heun * 1.5 < ddim[50], (heun, ddim)
    assert dpm[20] < ddim[50], "DPM-Solver++(2M) with 20 calls beats DDIM with 50"


# ------------------------------------------------------------------ diffusers, an independent reference
@pytest.fixture(scope="module")
def diffusers(require):
    return require("diffusers", "the reference implementation, in the dev extra")


def _dpm_scheduler(diffusers, **kw):
    return diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                                 beta_schedule="linear", algorithm_type="dpmsolver++", solver_order=2,
                                                 solver_type="midpoint", prediction_type="epsilon",
                                                 final_sigmas_type="zero", lower_order_final=True, **kw)


@pytest.mark.parametrize("num_steps", [2, 5, 10, 25])
def test_dpmpp_2m_matches_diffusers_step_for_step(diffusers, linear_schedule, num_steps):
    """Same betas, same timesteps (ours, passed to set_timesteps), same model and x_T: every intermediate x agrees
    to float32 round-off. Measured: 3.8e-5 with 2 steps, 1.5e-5 with 5, < 3e-6 from 10 on (values up to 1.7): the
    first step divides x_T - sqrt(1 - alpha_bar) eps_pred, two nearly equal numbers, by sqrt(alpha_bar_999) = 0.006,
    which turns float32's relative 6e-8 into about 1e-5 in x0_pred, in both implementations."""
    model = GaussianMixtureEps(TWO_GAUSSIANS, linear_schedule)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(8))
    grid = solver_timesteps(linear_schedule, num_steps)
    _, ours = dpmpp_2m_sample(model, linear_schedule, x_T.shape, x_T=x_T, num_steps=num_steps, progress=False,
                              return_trajectory=True)
    scheduler = _dpm_scheduler(diffusers)
    scheduler.set_timesteps(timesteps=grid.tolist())
    assert scheduler.timesteps.tolist() == grid.tolist()
    x = x_T.clone()
    for k, t in enumerate(scheduler.timesteps):
        x = scheduler.step(model(x, t.repeat(64)), t, x).prev_sample
        assert torch.allclose(x, ours[k + 1], atol=1e-4, rtol=0), (k, (x - ours[k + 1]).abs().max())


def test_dpmpp_2m_matches_diffusers_on_its_own_default_grid(diffusers, linear_schedule):
    """diffusers' default grid for this scheduler (timestep_spacing="linspace": 999, 799, 599, 400, 200, then
    clean data) passed to ours as ``timesteps``: the same samples. (Its last step jumps from t = 200 to the data
    in one first-order step, which is why the course's default grid ends at t = 0.)"""
    model = GaussianMixtureEps(EIGHT_GAUSSIANS, linear_schedule)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(9))
    scheduler = _dpm_scheduler(diffusers)
    scheduler.set_timesteps(5)
    assert scheduler.timesteps.tolist() == [999, 799, 599, 400, 200]
    x = x_T.clone()
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, t.repeat(64)), t, x).prev_sample
    ours = dpmpp_2m_sample(model, linear_schedule, x_T.shape, x_T=x_T, timesteps=scheduler.timesteps, progress=False)
    assert torch.allclose(ours, x, atol=1e-5), (ours - x).abs().max()


def test_diffusers_ddim_steps_by_t_minus_T_over_N_whatever_the_spacing(diffusers, linear_schedule):
    """DDIMScheduler visits the grid of its ``timestep_spacing`` but always steps from t to t - T // N. With
    "leading" (lesson 5's grid) that is the next grid point: our ``ddim_sample`` (tests/test_reference_diffusers.py).
    With "linspace" it is not: from 999 it steps to the noise level of 899, then asks the model at 888. So the
    course compares DDIM with the other solvers through ``ddim_sample`` on the very same grid."""
    model = GaussianMixtureEps(TWO_GAUSSIANS, linear_schedule)
    scheduler = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                        beta_schedule="linear", clip_sample=False, set_alpha_to_one=True,
                                        steps_offset=0, timestep_spacing="linspace", prediction_type="epsilon")
    scheduler.set_timesteps(10)
    assert scheduler.timesteps.tolist() == solver_timesteps(linear_schedule, 10, spacing="linspace").tolist()
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(11))
    for t, t_next in zip(scheduler.timesteps.tolist(), scheduler.timesteps.tolist()[1:] + [-1]):
        eps_pred = model(x, torch.full((64,), t))
        theirs = scheduler.step(eps_pred, t, x).prev_sample                    # the step is stateless: any x
        ab = linear_schedule.alpha_bar
        to = lambda i: ddim_step(x, eps_pred, ab[t], ab[i] if i >= 0 else torch.tensor(1.0))[0]  # noqa: E731
        assert torch.allclose(theirs, to(t - 100), atol=1e-5), t                 # t - T // N, T // N = 100
        if t == 111:
            assert t_next == 0 and (theirs - to(t_next)).abs().max() > 0.01      # not the next grid point
