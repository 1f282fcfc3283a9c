"""Noise schedules: the betas of the forward process and everything derived from them.

Papers and equations:
- Ho, Jain, Abbeel 2020, "Denoising Diffusion Probabilistic Models" (DDPM): linear betas from
  1e-4 to 0.02 over T = 1000 steps (Sec. 4); alpha_t = 1 - beta_t, alpha_bar_t = prod_{i<=t} alpha_i
  (Eq. 4); the posterior variance tilde beta_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t (Eq. 7).
- Nichol, Dhariwal 2021, "Improved DDPM": the cosine schedule
  alpha_bar(t) = f(t) / f(0), f(t) = cos^2(((t/T + s) / (1 + s)) pi/2), betas clipped at 0.999 (Eq. 17).
- The lab's continuous cosine schedule (Keras DDIM example): diffusion time in [0, 1], an angle
  linear in time from arccos(max_signal_rate) to arccos(min_signal_rate), signal = cos, noise = sin.

Indexing (see GLOSSARY.md): code index t runs 0..T-1 and stands for the paper's t+1, so
``alpha_bar[t]`` is the paper's alpha_bar_{t+1} and ``alpha_bar_prev[0] = 1`` (alpha_bar_0 of the paper).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor


@dataclass
class NoiseSchedule:
    """All per-step quantities of a discrete schedule, each a float32 tensor of shape (T,).

    Build one with :meth:`linear`, :meth:`cosine` or :meth:`from_betas`; move it with :meth:`to`.
    """

    betas: Tensor                       # beta_t
    alphas: Tensor                      # alpha_t = 1 - beta_t
    alpha_bar: Tensor                   # alpha_bar_t = prod_{i<=t} alpha_i
    alpha_bar_prev: Tensor              # alpha_bar_{t-1}, with alpha_bar_prev[0] = 1
    sqrt_alpha_bar: Tensor              # sqrt(alpha_bar_t): the signal rate
    sqrt_one_minus_alpha_bar: Tensor    # sqrt(1 - alpha_bar_t): the noise rate
    sqrt_recip_alphas: Tensor           # 1 / sqrt(alpha_t), used by Algorithm 2
    posterior_variance: Tensor          # tilde beta_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t
    posterior_mean_coef_x0: Tensor      # sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t)       (DDPM Eq. 7)
    posterior_mean_coef_xt: Tensor      # sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) (DDPM Eq. 7)

    def __new__(cls, *args, **kwargs):
        """``NoiseSchedule(1000)`` or ``NoiseSchedule("cosine")``, a natural first try, got the dataclass's "missing
        9 required positional arguments": say how a schedule is built instead."""
        if (args or kwargs) and len(args) + len(kwargs) < len(fields(cls)):
            given = ", ".join([repr(a) if not isinstance(a, Tensor) else "a tensor" for a in args]
                              + [f"{k}=..." for k in kwargs])
            raise TypeError(f"NoiseSchedule({given}): a schedule is built with NoiseSchedule.linear(T=1000), "
                            "NoiseSchedule.cosine(T=1000) or NoiseSchedule.from_betas(betas); the constructor "
                            f"itself takes all {len(fields(cls))} per-step tensors")
        return super().__new__(cls)

    @classmethod
    def from_betas(cls, betas: Tensor) -> "NoiseSchedule":
        """Derive every quantity from betas of shape (T,), each in (0, 1]."""
        betas = torch.as_tensor(betas, dtype=torch.float64).cpu()
        if betas.ndim != 1 or betas.numel() < 1:
            raise ValueError(f"betas must be a 1-D tensor of length T >= 1, got shape {tuple(betas.shape)}")
        if not torch.isfinite(betas).all() or (betas <= 0).any() or (betas > 1).any():
            raise ValueError("every beta must lie in (0, 1]; got min "
                             f"{betas.min().item():.3g}, max {betas.max().item():.3g}")
        alphas = 1.0 - betas
        alpha_bar = torch.cumprod(alphas, dim=0)
        alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        one_minus = 1.0 - alpha_bar
        values = dict(
            betas=betas,
            alphas=alphas,
            alpha_bar=alpha_bar,
            alpha_bar_prev=alpha_bar_prev,
            sqrt_alpha_bar=alpha_bar.sqrt(),
            sqrt_one_minus_alpha_bar=one_minus.sqrt(),
            sqrt_recip_alphas=alphas.rsqrt(),
            posterior_variance=(1.0 - alpha_bar_prev) / one_minus * betas,
            posterior_mean_coef_x0=alpha_bar_prev.sqrt() * betas / one_minus,
            posterior_mean_coef_xt=alphas.sqrt() * (1.0 - alpha_bar_prev) / one_minus,
        )
        return cls(**{k: v.to(torch.float32) for k, v in values.items()})

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "NoiseSchedule":
        """Ho et al.'s schedule: betas evenly spaced from ``beta_start`` to ``beta_end``."""
        _check_T(T)
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
        return cls.from_betas(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> "NoiseSchedule":
        """Nichol and Dhariwal's schedule: alpha_bar(t) = f(t)/f(0), f(t) = cos^2((t/T + s)/(1 + s) * pi/2).

        beta_t = 1 - alpha_bar(t+1) / alpha_bar(t) for t = 0..T-1, clipped at ``max_beta`` (Eq. 17).
        ``s`` is the paper's small offset that keeps beta_t from being tiny near t = 0 (the only meaning of
        ``s`` in the course; see GLOSSARY.md).
        """
        _check_T(T)
        steps = torch.arange(T + 1, dtype=torch.float64)
        f = torch.cos(((steps / T + s) / (1 + s)) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        betas = (1.0 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)
        return cls.from_betas(betas)

    @property
    def T(self) -> int:
        """The number of diffusion steps."""
        return self.betas.shape[0]

    @property
    def device(self) -> torch.device:
        return self.betas.device

    def to(self, device: torch.device | str) -> "NoiseSchedule":
        """A copy with every tensor on ``device``."""
        return NoiseSchedule(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def respace(self, timesteps: Tensor) -> "NoiseSchedule":
        """The K-step chain that visits only ``timesteps`` (int64 (K,), increasing, in 0..T-1) and has this
        schedule's alpha_bar at each of them (Nichol and Dhariwal 2021, Sec. 4, "respacing"; what a DDIM or
        DPM-Solver grid of K steps uses):

            beta_k = 1 - alpha_bar[t_k] / alpha_bar[t_{k-1}],  with alpha_bar before the first kept step = 1.

        Picking ``betas[timesteps]`` instead would drop the steps in between (worksheet 1 shows what that does).
        """
        timesteps = torch.as_tensor(timesteps).long().cpu()
        if timesteps.ndim != 1 or timesteps.numel() < 1:
            raise ValueError(f"timesteps must be a 1-D tensor of K >= 1 steps, got shape {tuple(timesteps.shape)}")
        if int(timesteps.min()) < 0 or int(timesteps.max()) >= self.T or (timesteps.diff() <= 0).any():
            descending = timesteps.numel() > 1 and bool((timesteps.diff() < 0).all())
            raise ValueError(f"timesteps must increase strictly within 0..{self.T - 1}, got {timesteps.tolist()}" + (
                " (a sampler's grid such as ddim_timesteps runs downwards: pass timesteps.flip(0))" if descending
                else ""))
        alpha_bar = self.alpha_bar.double().cpu()[timesteps]                          # (K,)
        alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        return NoiseSchedule.from_betas(1.0 - alpha_bar / alpha_bar_prev)

    def t_over_T(self) -> Tensor:
        """The paper's t / T at each code index, (t + 1) / T for t = 0..T-1, float32 (T,) on this device: code
        index t is the paper's step t + 1 (GLOSSARY), so the last step sits at 1 and a cosine schedule's
        ``alpha_bar`` at f(t/T) / f(0) whatever T is. The x-axis of every schedule plot."""
        return (torch.arange(self.T, device=self.device) + 1).float() / self.T

    def log_snr(self) -> Tensor:
        """log(alpha_bar_t / (1 - alpha_bar_t)), shape (T,): the log signal-to-noise ratio."""
        return torch.log(self.alpha_bar) - torch.log1p(-self.alpha_bar)

    def check_t(self, t: Tensor, batch_size: int | None = None) -> Tensor:
        """Check that ``t`` is an integer tensor of shape (B,) in 0..T-1; return it on this device."""
        if not isinstance(t, Tensor):
            raise TypeError(f"t must be a torch.Tensor of dtype int64 and shape (B,), got {type(t).__name__}")
        if t.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"t must be an integer tensor (int64) of timesteps 0..T-1, got dtype {t.dtype}")
        if t.ndim != 1 or (batch_size is not None and t.shape[0] != batch_size):
            want = f"({batch_size},)" if batch_size is not None else "(B,)"
            raise ValueError(f"t must have shape {want}, one timestep per example, got {tuple(t.shape)}")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.T):
            raise ValueError(f"t must lie in 0..{self.T - 1} (T = {self.T}), got values from "
                             f"{int(t.min())} to {int(t.max())}")
        return t.to(self.device).long()

    def gather(self, values: Tensor, t: Tensor, ndim: int) -> Tensor:
        """``values[t]`` reshaped to (B, 1, ..., 1) with ``ndim`` dimensions, to broadcast over x of shape (B, ...)."""
        if values.shape[0] != self.T:
            raise ValueError(f"a schedule tensor of length {values.shape[0]} does not match T = {self.T}")
        t = self.check_t(t)
        return values[t].reshape(t.shape[0], *([1] * (ndim - 1)))


def _check_T(T: int) -> None:
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")


def diffusion_schedule(diffusion_times: Tensor, min_signal_rate: float = 0.02,
                       max_signal_rate: float = 0.95) -> tuple[Tensor, Tensor]:
    """The lab's continuous cosine schedule, for diffusion times in [0, 1] of any shape.

    theta(t) = (1 - t) * arccos(max_signal_rate) + t * arccos(min_signal_rate)
    signal_rate = cos(theta) (plays sqrt(alpha_bar)), noise_rate = sin(theta) (plays sqrt(1 - alpha_bar)),
    so noise_rate**2 + signal_rate**2 = 1 for every t.

    Returns ``(noise_rates, signal_rates)``, each shaped like ``diffusion_times``.
    """
    diffusion_times = torch.as_tensor(diffusion_times)
    if not diffusion_times.is_floating_point():
        diffusion_times = diffusion_times.float()
    if not 0 < min_signal_rate < max_signal_rate <= 1:
        raise ValueError(f"need 0 < min_signal_rate < max_signal_rate <= 1, got {min_signal_rate}, {max_signal_rate}")
    start_angle = math.acos(max_signal_rate)  # theta at t = 0: almost all signal
    end_angle = math.acos(min_signal_rate)    # theta at t = 1: almost all noise
    diffusion_angles = start_angle + diffusion_times * (end_angle - start_angle)
    signal_rates = torch.cos(diffusion_angles)
    noise_rates = torch.sin(diffusion_angles)
    return noise_rates, signal_rates
