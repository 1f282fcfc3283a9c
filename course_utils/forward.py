"""The forward (noising) process of DDPM (Ho et al. 2020).

- One step of the Markov chain:  q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I)       (Eq. 2)
- The closed form:               q(x_t | x_0)     = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I) (Eq. 4)
- The true posterior:            q(x_{t-1} | x_t, x_0) = N(tilde mu_t, tilde beta_t I)           (Eq. 6-7)

``eps`` is always the true noise drawn from N(0, I); a network's prediction of it is ``eps_pred`` (GLOSSARY.md).
Shapes: x0, xt, eps are (B, ...) (images (B, C, H, W) or points (B, D)); t is int64 of shape (B,) in 0..T-1.
"""
from __future__ import annotations

import operator

import torch
from torch import Tensor

from .progress import tqdm
from .schedules import NoiseSchedule


def _check_args(call: str, schedule: NoiseSchedule, **tensors: Tensor) -> None:
    """Arguments of the right kinds, or a TypeError that names the call's signature (``call``): arguments given in
    another order (``q_sample(x0, eps, t, schedule)``, the schedule first) are the usual cause."""
    for name, x in tensors.items():
        if not isinstance(x, Tensor):
            raise TypeError(f"{call}: {name} must be a torch.Tensor, got {type(x).__name__} "
                            "(are the arguments in this order?)")
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"{call}: schedule must be a NoiseSchedule, got {type(schedule).__name__} "
                        "(are the arguments in this order?)")


def _check_same_shape(call: str, **tensors: Tensor) -> None:
    shapes = {name: tuple(x.shape) for name, x in tensors.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"{call}: these tensors must have the same shape: " +
                         ", ".join(f"{k} {v}" for k, v in shapes.items()) + " (are the arguments in this order?)")
    first = next(iter(tensors.values()))
    if first.ndim < 2:
        raise ValueError(f"{call}: expected a batch of shape (B, ...), got shape {tuple(first.shape)}")


def _check_float(call: str, **tensors: Tensor) -> None:
    """Float data, or a TypeError: raw uint8 pixels 0..255 would be noised at the wrong scale, silently."""
    for name, x in tensors.items():
        if not x.is_floating_point():
            raise TypeError(f"{call}: {name} must be float data (images in [-1, 1]), got {x.dtype} "
                            f"(raw pixels 0..255? use {name}.float() / 127.5 - 1)")


def _check_t(call: str, schedule: NoiseSchedule, t: Tensor, batch_size: int, x0_shape: tuple | None = None) -> Tensor:
    """``schedule.check_t``, its error naming the call's signature (and, for a t of the wrong length, x0's shape:
    an image without its batch dimension, (H, W), reads as a batch of H rows)."""
    try:
        return schedule.check_t(t, batch_size)
    except (TypeError, ValueError) as err:
        shape = (f" (x0 has shape {tuple(x0_shape)}: the batch is its first dimension; a single image needs "
                 "x0[None], (1, C, H, W))" if x0_shape is not None and isinstance(t, Tensor) and t.ndim == 1
                 and t.shape[0] != batch_size else "")
        raise type(err)(f"{call}: {err}{shape}") from None


def q_sample(x0: Tensor, t: Tensor, eps: Tensor, schedule: NoiseSchedule) -> Tensor:
    """Sample x_t ~ q(x_t | x_0) in closed form: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps."""
    call = "q_sample(x0, t, eps, schedule)"
    _check_args(call, schedule, x0=x0, eps=eps)
    _check_same_shape(call, x0=x0, eps=eps)
    _check_float(call, x0=x0, eps=eps)
    t = _check_t(call, schedule, t, x0.shape[0], x0.shape)
    sqrt_alpha_bar = schedule.gather(schedule.sqrt_alpha_bar, t, x0.ndim)                     # (B, 1, ...)
    sqrt_one_minus_alpha_bar = schedule.gather(schedule.sqrt_one_minus_alpha_bar, t, x0.ndim)  # (B, 1, ...)
    return sqrt_alpha_bar * x0 + sqrt_one_minus_alpha_bar * eps


def q_posterior(x0: Tensor, xt: Tensor, t: Tensor, schedule: NoiseSchedule) -> tuple[Tensor, Tensor]:
    """Mean and variance of q(x_{t-1} | x_t, x_0) (DDPM Eq. 7).

    tilde mu_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
               + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t
    tilde beta_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t

    Returns ``mean`` shaped like x0 and ``variance`` of shape (B, 1, ...), broadcastable to x0.
    At t = 0 the variance is 0 and the mean is x0.
    """
    call = "q_posterior(x0, xt, t, schedule)"
    _check_args(call, schedule, x0=x0, xt=xt)
    _check_same_shape(call, x0=x0, xt=xt)
    _check_float(call, x0=x0, xt=xt)
    t = _check_t(call, schedule, t, x0.shape[0])
    coef_x0 = schedule.gather(schedule.posterior_mean_coef_x0, t, x0.ndim)
    coef_xt = schedule.gather(schedule.posterior_mean_coef_xt, t, x0.ndim)
    mean = coef_x0 * x0 + coef_xt * xt
    variance = schedule.gather(schedule.posterior_variance, t, x0.ndim)
    return mean, variance


def q_sample_chain(x0: Tensor, t: int, schedule: NoiseSchedule, *, generator: torch.Generator | None = None,
                   return_all: bool = False, progress: bool = False) -> Tensor:
    """Run the Markov chain one step at a time: from the clean x0, code steps k = 0..t each apply
    x <- sqrt(alphas[k]) x + sqrt(betas[k]) eps_k (DDPM Eq. 2; code step k is the paper's step k + 1), giving x_t.

    Agrees in distribution with ``q_sample`` at the same t. Returns x_t of x0's shape, or, with
    ``return_all``, every state stacked as (t + 2, B, ...): x0 first, x_t last.
    ``t`` is one step for the whole batch: an int (or a 0-dim integer tensor), not q_sample's (B,) tensor.
    ``progress`` shows a bar over the t + 1 steps.
    """
    call = "q_sample_chain(x0, t, schedule)"
    _check_args(call, schedule, x0=x0)
    _check_float(call, x0=x0)
    t = _one_step(call, t, schedule.T)
    if not 0 <= t < schedule.T:
        raise ValueError(f"{call}: t must lie in 0..{schedule.T - 1}, got {t}")
    x = x0
    states = [x0]
    for i in tqdm(range(t + 1), desc="forward chain", disable=not progress, leave=False):
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)  # the true noise of step i
        x = schedule.alphas[i].sqrt() * x + schedule.betas[i].sqrt() * eps  # Eq. 2
        if return_all:
            states.append(x)
    return torch.stack(states) if return_all else x


def _one_step(call: str, t, T: int) -> int:
    """``t`` as a Python int: an int, or a 0-dim integer tensor; a TypeError for anything else (q_sample's
    per-example t of shape (B,), a float t / T)."""
    if isinstance(t, Tensor):
        if t.ndim == 0 and not t.is_floating_point() and t.dtype != torch.bool:
            return int(t)
        raise TypeError(f"{call}: t is one step for the whole batch, an int in 0..{T - 1}, got a tensor of shape "
                        f"{tuple(t.shape)} and dtype {t.dtype} (q_sample takes one t per example; this chain steps "
                        "every example to the same t)")
    try:
        if isinstance(t, bool):
            raise TypeError
        return operator.index(t)
    except TypeError:
        raise TypeError(f"{call}: t is one step for the whole batch, an int in 0..{T - 1}, got "
                        f"{type(t).__name__} {t!r}") from None
