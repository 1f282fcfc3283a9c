"""Samplers: DDPM ancestral sampling and DDIM, with guidance, for data of any shape.

- DDPM, Ho et al. 2020, Algorithm 2:
      x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) + sigma_t z,
  z ~ N(0, I) except at the last step (z = 0), with sigma_t^2 = tilde beta_t ("posterior") or beta_t ("beta").
- DDIM, Song, Meng, Ermon 2021, Eq. 12 and 16 (their alpha_t is our alpha_bar):
      x0_pred  = (x_t - sqrt(1 - alpha_bar_t) eps_pred) / sqrt(alpha_bar_t)
      sigma_t  = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev)
      x_prev   = sqrt(alpha_bar_prev) x0_pred + sqrt(1 - alpha_bar_prev - sigma_t^2) eps_pred + sigma_t z
  on a sub-sequence of timesteps; alpha_bar_prev = 1 after the last step. eta = 0 is deterministic;
  eta = 1 on the full grid is DDPM with the posterior variance.

eps_pred is the network's noise prediction eps_theta(x_t, t) (GLOSSARY.md); ``eps`` is only the true noise.
The model is any callable ``model(xt, t)`` or ``model(xt, t, y)`` returning eps_pred shaped like xt: an
``nn.Module`` or a plain function. The samplers run on ``device`` when it is given (it must agree with where
the model's parameters or buffers are), else where they are, else on x_T's device, else on the
CPU (``device.sampling_device``).
Shapes: ``shape`` is (N, ...) for the samples, e.g. (N, 2) points or (N, C, H, W) images; y is int64 (N,).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from .progress import tqdm

from .device import sampling_device
from .forward import _check_args
from .guidance import check_guidance, predict_eps
from .model_inputs import _on_host
from .schedules import NoiseSchedule

VARIANCES = ("posterior", "beta")


def ddim_timesteps(T: int, num_steps: int) -> Tensor:
    """The DDIM sub-sequence tau of ``num_steps`` timesteps, int64, descending.

    Evenly spaced as in the DDIM paper (Appendix D.2, "Linear": tau_i = floor(c i)): c = T // num_steps,
    tau = 0, c, 2c, ... T=1000, num_steps=50 gives 980, 960, ..., 20, 0; num_steps = T gives the full grid T-1, ..., 0.
    The last step goes from t = 0 (alpha_bar ~ 1) to clean data.
    """
    if not isinstance(num_steps, int) or not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be an integer in 1..T = 1..{T}, got {num_steps!r}")
    return (torch.arange(num_steps, dtype=torch.long) * (T // num_steps)).flip(0)


def _setup(model, schedule, shape, device, x_T, generator, y, *, call="sampler(model, schedule, shape)"):
    """The checked arguments of a sampler whose signature is ``call``: (device, schedule on it, x_T on it, y)."""
    _check_args(call, schedule)                         # the schedule first: ddim_sample(schedule, model, shape)
    if not isinstance(shape, (tuple, list, torch.Size)):
        raise TypeError(f"{call}: shape must be a tuple (N, ...), e.g. (16, 1, 28, 28) or x_T.shape, got "
                        f"{type(shape).__name__} {shape!r}")
    if len(shape) < 2:
        raise ValueError(f"{call}: shape must be (N, ...) with a batch dimension, got {tuple(shape)}")
    if x_T is not None and not isinstance(x_T, Tensor):
        raise TypeError(f"{call}: x_T must be a torch.Tensor, got {type(x_T).__name__}")
    device = sampling_device(model, x_T, device)
    if x_T is None:
        x_T = torch.randn(tuple(shape), generator=generator, device=device)
    elif tuple(x_T.shape) != tuple(shape):
        raise ValueError(f"{call}: x_T has shape {tuple(x_T.shape)} but shape={tuple(shape)} was asked for")
    if y is not None:
        y = torch.as_tensor(y, device=device).long()
        if y.shape != (shape[0],):
            raise ValueError(f"{call}: y must hold one class per sample, shape ({shape[0]},), got {tuple(y.shape)}")
    return device, schedule.to(device), x_T.to(device), y


def descending_timesteps(timesteps, T: int) -> list[int]:
    """``timesteps`` as a list of ints, checked: non-empty, strictly descending, within 0..T-1."""
    timesteps = [int(t) for t in timesteps]
    descending = all(a > b for a, b in zip(timesteps, timesteps[1:]))
    if not timesteps or not descending or not 0 <= timesteps[-1] <= timesteps[0] < T:
        raise ValueError(f"timesteps must be a non-empty, strictly descending sequence in 0..T-1 = "
                         f"0..{T - 1}, got {timesteps[:5]}{' ...' if len(timesteps) > 5 else ''}")
    return timesteps


@torch.no_grad()
def ddpm_sample(model: Callable[..., Tensor], schedule: NoiseSchedule, shape: tuple[int, ...], *,
                variance: str = "posterior", y: Tensor | None = None, guidance_scale: float = 1.0,
                classifier: Callable[..., Tensor] | None = None, classifier_scale: float | None = None,
                x_T: Tensor | None = None, generator: torch.Generator | None = None, progress: bool = True,
                device: torch.device | str | None = None, return_trajectory: bool = False):
    """Algorithm 2 of DDPM: T ancestral steps from x_T ~ N(0, I); no noise is added at the last step.

    Returns samples of ``shape``, or ``(samples, trajectory)`` with ``return_trajectory``, where
    trajectory is (T + 1, N, ...) on the CPU: x_T first, x_0 last.
    """
    call = "ddpm_sample(model, schedule, shape)"
    if variance not in VARIANCES:
        raise ValueError(f"{call}: variance must be one of {VARIANCES}, got {variance!r}")
    check_guidance(call, y=y, guidance_scale=guidance_scale, classifier=classifier, classifier_scale=classifier_scale)
    device, schedule, x, y = _setup(model, schedule, shape, device, x_T, generator, y, call=call)
    sigmas = (schedule.posterior_variance if variance == "posterior" else schedule.betas).sqrt()
    trajectory = [x.cpu()] if return_trajectory else None
    for i in tqdm(range(schedule.T - 1, -1, -1), desc="DDPM", disable=not progress, leave=False):
        t = torch.full((shape[0],), i, device=device, dtype=torch.long)
        eps_pred = predict_eps(model, x, t, y=y, guidance_scale=guidance_scale, classifier=classifier,
                               classifier_scale=classifier_scale, schedule=schedule)
        # mean = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta)
        mean = schedule.sqrt_recip_alphas[i] * (x - schedule.betas[i] / schedule.sqrt_one_minus_alpha_bar[i] * eps_pred)
        if i > 0:
            noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)  # z ~ N(0, I)
            x = mean + sigmas[i] * noise
        else:
            x = mean  # last step: return the mean, no noise
        if return_trajectory:
            trajectory.append(x.cpu())
    return (x, torch.stack(trajectory)) if return_trajectory else x


def ddim_step(xt: Tensor, eps_pred: Tensor, alpha_bar_t: Tensor, alpha_bar_prev: Tensor, *, eta: float = 0.0,
              noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One DDIM update from x_t to x_prev (Song et al. Eq. 12); returns ``(x_prev, x0_pred)``.

    xt and eps_pred (the model's prediction eps_theta(x_t, t)) are (B, ...); alpha_bar_t and alpha_bar_prev are
    Python floats, 0-dim tensors or tensors broadcastable to xt with the batch first, (B, 1, ..., 1) (a (B,) tensor
    would broadcast over xt's last dimension: refused); ``noise`` ~ N(0, I) shaped like xt is needed when eta > 0.
    A step goes to less noise, alpha_bar_prev >= alpha_bar_t: with eta > 0 the other way raises; at eta = 0 it
    returns NaN (sigma_t = 0 times the root of a negative number), as it always did: the worksheets' checks read
    that NaN in a student's loop as swapped or wrapped coefficients (``ddim_invert`` runs Eq. 12 backwards itself).
    """
    alpha_bar_t, alpha_bar_prev = _step_rates(xt, alpha_bar_t, alpha_bar_prev, eta)
    x0_pred = (xt - (1 - alpha_bar_t).sqrt() * eps_pred) / alpha_bar_t.sqrt()
    sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)).sqrt()
    direction = (1 - alpha_bar_prev - sigma ** 2).clamp(min=0).sqrt() * eps_pred  # "direction pointing to x_t"
    x_prev = alpha_bar_prev.sqrt() * x0_pred + direction
    if eta > 0:
        if noise is None:
            raise ValueError("eta > 0 needs noise")
        x_prev = x_prev + sigma * noise
    return x_prev, x0_pred


def _step_rates(xt: Tensor, alpha_bar_t, alpha_bar_prev, eta: float) -> tuple[Tensor, Tensor]:
    """ddim_step's two coefficients as tensors (a Python float as a 0-dim tensor of xt's dtype), checked: none of
    shape (B,) against an xt of more dimensions, and alpha_bar_prev >= alpha_bar_t when eta > 0 (in Python on the
    CPU; elsewhere with ``torch._assert_async``, as ``model_inputs`` does (``_on_host``): a Python test would wait
    for the GPU at every step)."""
    call = "ddim_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, eta, noise)"
    rates = {}
    for name, value in (("alpha_bar_t", alpha_bar_t), ("alpha_bar_prev", alpha_bar_prev)):
        if not isinstance(value, Tensor):
            value = torch.as_tensor(value, dtype=xt.dtype if xt.is_floating_point() else torch.get_default_dtype())
        if 0 < value.ndim < xt.ndim and value.numel() > 1:
            ones = ", 1" * (xt.ndim - 1)
            raise ValueError(f"{call}: {name} has shape {tuple(value.shape)} but xt has shape {tuple(xt.shape)}: "
                             f"its batch lines up with xt's LAST dimensions, not xt's batch; give it "
                             f"shape ({value.shape[0]}{ones}), {name}.reshape(-1{ones}) (schedule.gather(values, t, "
                             "xt.ndim) does it), or pass a 0-dim tensor for one t")
        rates[name] = value
    alpha_bar_t, alpha_bar_prev = rates["alpha_bar_t"], rates["alpha_bar_prev"]
    if eta <= 0:
        return alpha_bar_t, alpha_bar_prev
    if not (_on_host(alpha_bar_t) and _on_host(alpha_bar_prev)):    # a GPU (meta tensors hold no values: skipped)
        if "meta" not in (alpha_bar_t.device.type, alpha_bar_prev.device.type):
            torch._assert_async((alpha_bar_prev >= alpha_bar_t).all(), f"{call}: with eta > 0 a step must go to "
                                "less noise, alpha_bar_prev >= alpha_bar_t (for the last step alpha_bar_prev = 1)")
    elif bool((alpha_bar_prev < alpha_bar_t).any()):
        raise ValueError(f"{call}: alpha_bar_prev ({_values(alpha_bar_prev)}) is below alpha_bar_t "
                         f"({_values(alpha_bar_t)}): this step goes to MORE noise, and with eta = {eta} sigma_t is "
                         "the square root of a negative number (NaN). A sampling step goes from alpha_bar[t] to a "
                         "larger alpha_bar; for the last step use alpha_bar_prev = torch.tensor(1.0): alpha_bar[-1] is "
                         "the LAST entry (step T-1's, the noisiest), not 'before step 0'")
    return alpha_bar_t, alpha_bar_prev


def _values(x: Tensor) -> str:
    """A coefficient for a message: its value, or its range when it holds several."""
    return f"{x.item():.4g}" if x.numel() == 1 else f"{x.min().item():.4g} to {x.max().item():.4g}"


def ddim_sigma(schedule: NoiseSchedule, t: int, t_prev: int, eta: float) -> Tensor:
    """sigma_t(eta) of DDIM Eq. 16 for a step from t to t_prev (t_prev = -1 means alpha_bar_prev = 1)."""
    alpha_bar_t, alpha_bar_prev = schedule.alpha_bar[t], _alpha_bar_at(schedule, t_prev)
    return eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)).sqrt()


def _alpha_bar_at(schedule: NoiseSchedule, t: int) -> Tensor:
    return schedule.alpha_bar[t] if t >= 0 else torch.ones((), device=schedule.device)


@torch.no_grad()
def ddim_sample(model: Callable[..., Tensor], schedule: NoiseSchedule, shape: tuple[int, ...], *, num_steps: int = 50,
                eta: float = 0.0, x_T: Tensor | None = None, y: Tensor | None = None, guidance_scale: float = 1.0,
                classifier: Callable[..., Tensor] | None = None, classifier_scale: float | None = None,
                generator: torch.Generator | None = None, progress: bool = True,
                device: torch.device | str | None = None, return_trajectory: bool = False,
                timesteps: list[int] | Tensor | None = None):
    """DDIM sampling on ``ddim_timesteps(T, num_steps)``; eta = 0 is deterministic given x_T.

    ``timesteps`` replaces that grid by any strictly descending sub-sequence of 0..T-1 (then ``num_steps`` is
    its length); the last step always goes to alpha_bar = 1 (clean data).
    Returns samples of ``shape``, or ``(samples, trajectory)`` with trajectory (num_steps + 1, N, ...) on the CPU.
    """
    call = "ddim_sample(model, schedule, shape)"
    if not 0 <= eta <= 1:   # above 1, sigma_t^2 can pass 1 - alpha_bar_prev: the direction term has no real root
        raise ValueError(f"{call}: eta must lie in [0, 1] (0: deterministic DDIM; 1: DDPM's posterior variance on "
                         f"the full grid), got {eta}")
    check_guidance(call, y=y, guidance_scale=guidance_scale, classifier=classifier, classifier_scale=classifier_scale)
    device, schedule, x, y = _setup(model, schedule, shape, device, x_T, generator, y, call=call)
    if timesteps is None:
        timesteps = ddim_timesteps(schedule.T, num_steps).tolist()
    else:
        timesteps = descending_timesteps(timesteps, schedule.T)
        num_steps = len(timesteps)
    trajectory = [x.cpu()] if return_trajectory else None
    for k, i in enumerate(tqdm(timesteps, desc=f"DDIM {num_steps}", disable=not progress, leave=False)):
        i_prev = timesteps[k + 1] if k + 1 < len(timesteps) else -1
        t = torch.full((shape[0],), i, device=device, dtype=torch.long)
        eps_pred = predict_eps(model, x, t, y=y, guidance_scale=guidance_scale, classifier=classifier,
                               classifier_scale=classifier_scale, schedule=schedule)
        noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype) if eta > 0 else None
        x, _ = ddim_step(x, eps_pred, schedule.alpha_bar[i], _alpha_bar_at(schedule, i_prev), eta=eta, noise=noise)
        if return_trajectory:
            trajectory.append(x.cpu())
    return (x, torch.stack(trajectory)) if return_trajectory else x


@torch.no_grad()
def ddim_invert(model: Callable[..., Tensor], schedule: NoiseSchedule, x0: Tensor, *, num_steps: int = 50,
                y: Tensor | None = None, progress: bool = False,
                device: torch.device | str | None = None) -> Tensor:
    """Run the deterministic DDIM update backwards: clean x0 (N, ...) -> its latent x_T (N, ...).

    Each step from t_prev to t reuses eps_theta(x_{t_prev}, t) in place of eps_theta(x_t, t);
    ``ddim_sample(..., x_T=ddim_invert(...), num_steps=same)`` then reconstructs x0 closely.
    Runs (and returns x_T) on the device that ``ddim_sample`` would pick, with x0 in the place of x_T.
    """
    call = "ddim_invert(model, schedule, x0)"
    _check_args(call, schedule, x0=x0)
    device, schedule, x, y = _setup(model, schedule, x0.shape, device, x0, None, y, call=call)
    timesteps = ddim_timesteps(schedule.T, num_steps).flip(0).tolist()  # ascending
    previous = [-1] + timesteps[:-1]
    for i_prev, i in tqdm(list(zip(previous, timesteps)), desc="DDIM inversion", disable=not progress, leave=False):
        t = torch.full((x.shape[0],), i, device=x.device, dtype=torch.long)
        eps_pred = predict_eps(model, x, t, y=y)
        alpha_bar_prev, alpha_bar_t = _alpha_bar_at(schedule, i_prev), schedule.alpha_bar[i]
        x0_pred = (x - (1 - alpha_bar_prev).sqrt() * eps_pred) / alpha_bar_prev.sqrt()   # Eq. 12 run backwards:
        x = alpha_bar_t.sqrt() * x0_pred + (1 - alpha_bar_t).sqrt() * eps_pred          # x_{t_prev} -> x_t
    return x
