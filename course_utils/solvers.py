"""Fast deterministic samplers: DDIM as Euler's method on the probability-flow ODE, Heun, and DPM-Solver++(2M).

With eta = 0 every sampler of this module solves one ordinary differential equation from x_T to x_0, the
probability-flow ODE. In the coordinates of DDIM (Song, Meng, Ermon 2021, Sec. 4.3, Eq. 13-14)
      edm_sigma = sqrt(1 - alpha_bar_t) / sqrt(alpha_bar_t),      x_bar = x_t / sqrt(alpha_bar_t)
(Karras et al. 2022, "EDM", call edm_sigma their sigma and x_bar their unscaled x; x_bar = x_0 + edm_sigma eps)
it reads
      d x_bar / d edm_sigma = eps_theta(x_t, t)                                                 (DDIM Eq. 14)
and needs no other term: the data x_0 sits at edm_sigma = 0.

- **Euler = DDIM.** One Euler step from t to t_prev, x_bar_prev = x_bar + (edm_sigma_prev - edm_sigma_t) eps_pred,
  is DDIM's Eq. 12 at eta = 0, written as their Eq. 13. ``ddim_sample`` is this module's first-order solver.
- **Heun** (EDM Algorithm 1, deterministic): an Euler step, a second eps_pred at its end point, and the step
  redone with the average slope (eps_pred + eps_pred_next) / 2. Second order, two network calls per step; the
  last step (to edm_sigma = 0, where the network cannot be asked) stays Euler: N steps cost 2N - 1 calls.
  Averaging the end slopes is poor on a step that spans a wide range of edm_sigma (the slope barely changes
  over most of it and turns near its end): with few steps Heun can land far worse than Euler (lesson 7).
- **DPM-Solver++(2M)** (Lu et al. 2022, "DPM-Solver++", Algorithm 2): in the half log-SNR
  lambda_t = log(sqrt(alpha_bar_t) / sqrt(1 - alpha_bar_t)) = -log(edm_sigma) the linear part of the ODE is
  integrated exactly, and the data prediction x0_pred left inside the integral is extrapolated linearly from the
  current and the previous step. With h = lambda_prev - lambda_t:
      x_prev = (sqrt(1 - alpha_bar_prev) / sqrt(1 - alpha_bar_t)) x_t - sqrt(alpha_bar_prev) (exp(-h) - 1) D
      D = (1 + 1 / (2 r)) x0_pred - 1 / (2 r) x0_pred_last,      r = h_last / h
  D = x0_pred (first order, exactly DDIM) at the first step, which has no x0_pred_last, and at the last step to
  clean data, where lambda_prev = +inf. One network call per step.

Time grid: ``solver_timesteps(schedule, num_steps)``, by default evenly spaced in lambda from t = T-1 (where
x_T ~ N(0, I) is the forward process's endpoint) to t = 0; every sampler then takes a last, first-order step to
clean data (alpha_bar = 1), as ``ddim_sample`` does. Comparisons at equal network calls run all three solvers on
the same grid (``solve``); ``ddim_sample(..., timesteps=solver_timesteps(schedule, N))`` is the DDIM among them.

The model is any callable ``model(xt, t)`` or ``model(xt, t, y)`` returning eps_pred shaped like xt (the
calling convention of ``course_utils.samplers``, with guidance). Shapes: ``shape`` is (N, ...); y is int64 (N,).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor
from .progress import tqdm

from .guidance import check_guidance, predict_eps
from .samplers import _setup, ddim_sample, ddim_timesteps, descending_timesteps
from .schedules import NoiseSchedule

SOLVERS = ("DDIM", "Heun", "DPM-Solver++(2M)")
SPACINGS = ("logsnr", "linspace", "leading")


def solver_timesteps(schedule: NoiseSchedule, num_steps: int, *, spacing: str = "logsnr") -> Tensor:
    """``num_steps`` timesteps of ``schedule``, int64, strictly descending, for any sampler of the course.

    - ``"logsnr"`` (the default): from T-1 to 0, evenly spaced in the half log-SNR lambda (Lu et al. 2022,
      DPM-Solver, Sec. 3.3, "logSNR"), each rounded to the nearest timestep; steps are small near the data,
      where the ODE bends. T = 1000 linear, 5 steps: 999, 722, 302, 30, 0.
    - ``"linspace"``: from T-1 to 0 evenly in t, round(linspace(T-1, 0, num_steps)) (diffusers' DDIMScheduler
      with ``timestep_spacing="linspace"``): 999, 749, 500, 250, 0.
    - ``"leading"``: lesson 5's DDIM grid, ``samplers.ddim_timesteps`` (diffusers' "leading"): 800, ..., 0.

    Every sampler then takes one last step from the last timestep to clean data (alpha_bar = 1); "logsnr" and
    "linspace" start at T-1, where x_T ~ N(0, I) is the forward process's own endpoint. Rounding can make two
    points meet near t = 0; they are then pushed apart by one timestep, so the grid always has num_steps points.
    """
    T = schedule.T
    if not isinstance(num_steps, int) or not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be an integer in 1..T = 1..{T}, got {num_steps!r}")
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    if spacing == "leading":
        return ddim_timesteps(T, num_steps)
    if num_steps == 1:
        return torch.tensor([T - 1])
    if spacing == "linspace":
        grid = np.linspace(T - 1, 0, num_steps).round().astype(np.int64).tolist()
    else:
        lambdas = half_log_snr(schedule.alpha_bar.double().cpu())                      # (T,), falls with t
        targets = torch.linspace(float(lambdas[T - 1]), float(lambdas[0]), num_steps, dtype=torch.float64)
        grid = (lambdas[None, :] - targets[:, None]).abs().argmin(1).tolist()         # nearest timestep
    grid = [min(t, T - 1 - k) for k, t in enumerate(grid)]                            # room for the points after
    for k in range(num_steps - 2, -1, -1):                                            # strictly descending
        grid[k] = max(grid[k], grid[k + 1] + 1)
    return torch.tensor(grid, dtype=torch.long)


def network_calls(solver: str, num_steps: int) -> int:
    """Network calls of one run (per sample batch, without guidance): Heun's last step is Euler, so 2N - 1."""
    _check_solver(solver)
    return 2 * num_steps - 1 if solver == "Heun" else num_steps


def steps_for_calls(solver: str, calls: int) -> int:
    """The most steps a solver can take with at most ``calls`` network calls (Heun: (calls + 1) // 2)."""
    _check_solver(solver)
    return (calls + 1) // 2 if solver == "Heun" else calls


def edm_sigma(alpha_bar: Tensor) -> Tensor:
    """sqrt(1 - alpha_bar) / sqrt(alpha_bar): the ODE's time variable (DDIM Eq. 14's sigma, EDM's sigma); 0 at x_0."""
    return ((1 - alpha_bar) / alpha_bar).sqrt()


def half_log_snr(alpha_bar: Tensor) -> Tensor:
    """lambda = log(sqrt(alpha_bar) / sqrt(1 - alpha_bar)) = log-SNR / 2 = -log(edm_sigma); +inf at clean data."""
    return 0.5 * (torch.log(alpha_bar) - torch.log1p(-alpha_bar))


# ------------------------------------------------------------------ single steps
def heun_step(x_bar: Tensor, eps_pred: Tensor, edm_sigma_t: Tensor, edm_sigma_prev: Tensor,
              eps_pred_next: Tensor | None = None) -> Tensor:
    """One step in ODE coordinates, returns x_bar_prev (B, ...) like x_bar.

    Without ``eps_pred_next`` this is Euler (= DDIM Eq. 13):
        x_bar_prev = x_bar + (edm_sigma_prev - edm_sigma_t) eps_pred.
    With eps_pred_next = eps_theta at the Euler point (EDM Algorithm 1), Heun's trapezoid:
        x_bar_prev = x_bar + (edm_sigma_prev - edm_sigma_t) (eps_pred + eps_pred_next) / 2.
    """
    slope = eps_pred if eps_pred_next is None else 0.5 * (eps_pred + eps_pred_next)    # d x_bar / d sigma
    return x_bar + (edm_sigma_prev - edm_sigma_t) * slope


def dpmpp_2m_step(xt: Tensor, eps_pred: Tensor, alpha_bar_t: Tensor, alpha_bar_prev: Tensor, *,
                  x0_pred_last: Tensor | None = None, alpha_bar_last: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One DPM-Solver++(2M) step from x_t to x_prev (Lu et al. 2022, Algorithm 2); returns ``(x_prev, x0_pred)``.

    xt, eps_pred (B, ...); alpha_bar_t, alpha_bar_prev, alpha_bar_last: 0-dim tensors or tensors broadcastable to
    xt. ``x0_pred_last``
    and ``alpha_bar_last`` are the data prediction and alpha_bar of the step before (larger t); without them, or
    when alpha_bar_prev = 1 (the last step, h = inf), the step is first order and equals DDIM at eta = 0.
    """
    sqrt_alpha_bar_t, sqrt_alpha_bar_prev = alpha_bar_t.sqrt(), alpha_bar_prev.sqrt()
    sqrt_one_minus_alpha_bar_t, sqrt_one_minus_alpha_bar_prev = (1 - alpha_bar_t).sqrt(), (1 - alpha_bar_prev).sqrt()
    x0_pred = (xt - sqrt_one_minus_alpha_bar_t * eps_pred) / sqrt_alpha_bar_t      # data prediction, DDIM Eq. 12
    lambda_t, lambda_prev = half_log_snr(alpha_bar_t), half_log_snr(alpha_bar_prev)
    h = lambda_prev - lambda_t                                                        # > 0: towards the data
    if x0_pred_last is None or bool((alpha_bar_prev >= 1).all()):
        D = x0_pred                                                                   # first order (DPM-Solver++1)
    else:
        h_last = lambda_t - half_log_snr(alpha_bar_last)                              # the step before, in lambda
        r = h_last / h
        D = (1 + 1 / (2 * r)) * x0_pred - 1 / (2 * r) * x0_pred_last                  # linear extrapolation in lambda
    # x_prev = (sigma_prev / sigma_t) x_t - alpha_prev (exp(-h) - 1) D, with DPM-Solver's alpha = sqrt(alpha_bar),
    # sigma = sqrt(1 - alpha_bar); expm1 keeps exp(-h) - 1 accurate for small h
    x_prev = (sqrt_one_minus_alpha_bar_prev / sqrt_one_minus_alpha_bar_t) * xt \
        - sqrt_alpha_bar_prev * torch.expm1(-h) * D
    return x_prev, x0_pred


# ------------------------------------------------------------------ samplers
def _prepare(model, schedule, shape, device, x_T, generator, y, num_steps, timesteps, spacing, *, call):
    """Device, schedule, x_T and y where the sampler runs, the descending timesteps (a list of ints) and
    ``_alpha_bars`` of them; ``call`` is the sampler's signature, for the messages."""
    device, on_device, x_T, y = _setup(model, schedule, shape, device, x_T, generator, y, call=call)
    if timesteps is None:
        timesteps = solver_timesteps(schedule, num_steps, spacing=spacing).tolist()
    else:
        timesteps = descending_timesteps(timesteps, schedule.T)
    return device, on_device, x_T, y, timesteps, _alpha_bars(schedule, timesteps)


def _alpha_bars(schedule: NoiseSchedule, timesteps: list[int]) -> Tensor:
    """alpha_bar at each timestep, then 1 (clean data): shape (len(timesteps) + 1,), float64 on the CPU.

    The steps' coefficients are 0-dim CPU tensors: they combine with x on any device, without a GPU sync."""
    one = torch.ones(1, dtype=torch.float64)
    return torch.cat([schedule.alpha_bar.detach().cpu().double()[timesteps], one])


@torch.no_grad()
def heun_sample(model: Callable[..., Tensor], schedule: NoiseSchedule, shape: tuple[int, ...], *, num_steps: int = 10,
                x_T: Tensor | None = None, y: Tensor | None = None, guidance_scale: float = 1.0,
                classifier: Callable[..., Tensor] | None = None, classifier_scale: float | None = None,
                generator: torch.Generator | None = None, progress: bool = True,
                device: torch.device | str | None = None, return_trajectory: bool = False,
                timesteps: list[int] | Tensor | None = None, spacing: str = "logsnr"):
    """Heun's method on the probability-flow ODE (EDM Algorithm 1) over ``solver_timesteps(schedule, num_steps)``.

    2 * num_steps - 1 network calls: the last step, to clean data, is Euler. ``spacing`` picks the grid (see
    ``solver_timesteps``); ``timesteps`` replaces it by any strictly descending sub-sequence of 0..T-1.
    Returns samples of ``shape``, or ``(samples, trajectory)`` with trajectory (num_steps + 1, N, ...) on the
    CPU (the grid points: x_T first, x_0 last).
    """
    call = "heun_sample(model, schedule, shape)"
    check_guidance(call, y=y, guidance_scale=guidance_scale, classifier=classifier, classifier_scale=classifier_scale)
    device, schedule, x, y, timesteps, alpha_bars = _prepare(model, schedule, shape, device, x_T, generator, y,
                                                             num_steps, timesteps, spacing, call=call)  # (S + 1,)
    edm_sigmas = edm_sigma(alpha_bars)                                              # (S + 1,), 0 at the end

    def eps_at(xt, i):
        t = torch.full((shape[0],), i, device=device, dtype=torch.long)
        return predict_eps(model, xt, t, y=y, guidance_scale=guidance_scale, classifier=classifier,
                           classifier_scale=classifier_scale, schedule=schedule)

    trajectory = [x.cpu()] if return_trajectory else None
    for k, i in enumerate(tqdm(timesteps, desc=f"Heun {len(timesteps)}", disable=not progress, leave=False)):
        eps_pred = eps_at(x, i)
        x_bar = x / alpha_bars[k].sqrt()                                            # x_bar = x_t / sqrt(alpha_bar_t)
        x_bar_prev = heun_step(x_bar, eps_pred, edm_sigmas[k], edm_sigmas[k + 1])   # Euler (= DDIM)
        if k + 1 < len(timesteps):                                                  # Heun's correction
            eps_pred_next = eps_at((alpha_bars[k + 1].sqrt() * x_bar_prev).to(x.dtype), timesteps[k + 1])
            x_bar_prev = heun_step(x_bar, eps_pred, edm_sigmas[k], edm_sigmas[k + 1], eps_pred_next)
        x = (alpha_bars[k + 1].sqrt() * x_bar_prev).to(x.dtype)                     # x_prev = sqrt(ab_prev) x_bar
        if return_trajectory:
            trajectory.append(x.cpu())
    return (x, torch.stack(trajectory)) if return_trajectory else x


@torch.no_grad()
def dpmpp_2m_sample(model: Callable[..., Tensor], schedule: NoiseSchedule, shape: tuple[int, ...], *,
                    num_steps: int = 10, x_T: Tensor | None = None, y: Tensor | None = None,
                    guidance_scale: float = 1.0, classifier: Callable[..., Tensor] | None = None,
                    classifier_scale: float | None = None, generator: torch.Generator | None = None,
                    progress: bool = True, device: torch.device | str | None = None, return_trajectory: bool = False,
                    timesteps: list[int] | Tensor | None = None, spacing: str = "logsnr"):
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) over ``solver_timesteps(schedule, num_steps)``: num_steps calls.

    First order at the first and at the last step (to clean data), second order in between: step for step what
    diffusers' ``DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2,
    final_sigmas_type="zero")`` does on the same timesteps. ``spacing`` and ``timesteps`` as in ``heun_sample``.
    Returns samples of ``shape``, or ``(samples, trajectory)`` with trajectory (num_steps + 1, N, ...) on the CPU.
    """
    call = "dpmpp_2m_sample(model, schedule, shape)"
    check_guidance(call, y=y, guidance_scale=guidance_scale, classifier=classifier, classifier_scale=classifier_scale)
    device, schedule, x, y, timesteps, alpha_bars = _prepare(model, schedule, shape, device, x_T, generator, y,
                                                             num_steps, timesteps, spacing, call=call)  # (S + 1,)
    trajectory = [x.cpu()] if return_trajectory else None
    x0_pred_last = None
    for k, i in enumerate(tqdm(timesteps, desc=f"DPM-Solver++(2M) {len(timesteps)}", disable=not progress,
                               leave=False)):
        t = torch.full((shape[0],), i, device=device, dtype=torch.long)
        eps_pred = predict_eps(model, x, t, y=y, guidance_scale=guidance_scale, classifier=classifier,
                               classifier_scale=classifier_scale, schedule=schedule)
        x, x0_pred_last = dpmpp_2m_step(x, eps_pred, alpha_bars[k], alpha_bars[k + 1], x0_pred_last=x0_pred_last,
                                        alpha_bar_last=alpha_bars[k - 1] if k > 0 else None)
        if return_trajectory:
            trajectory.append(x.cpu())
    return (x, torch.stack(trajectory)) if return_trajectory else x


def solve(solver: str, model: Callable[..., Tensor], schedule: NoiseSchedule, shape: tuple[int, ...], *,
          num_steps: int, spacing: str = "logsnr", timesteps: list[int] | Tensor | None = None, **kwargs):
    """Run ``solver`` ("DDIM", "Heun" or "DPM-Solver++(2M)") with ``num_steps`` steps on one grid.

    DDIM is ``samplers.ddim_sample`` at eta = 0 on the same ``solver_timesteps(schedule, num_steps, spacing)``
    (or ``timesteps``), so the three differ only in the solver. Other keyword arguments are the samplers' own
    (x_T, y, guidance_scale, generator, progress, device, return_trajectory, ...).
    """
    _check_solver(solver)
    if timesteps is None:
        timesteps = solver_timesteps(schedule, num_steps, spacing=spacing)
    if solver == "DDIM":
        return ddim_sample(model, schedule, shape, num_steps=len(timesteps), timesteps=timesteps, **kwargs)
    run = heun_sample if solver == "Heun" else dpmpp_2m_sample
    return run(model, schedule, shape, num_steps=len(timesteps), timesteps=timesteps, **kwargs)


def _check_solver(solver: str) -> None:
    if not isinstance(solver, str):     # solve(model, "Heun", ...) printed the whole network's repr
        raise TypeError(f"solve(solver, model, schedule, shape): solver must be one of {SOLVERS}, got "
                        f"{type(solver).__name__} (are the arguments in this order?)")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
