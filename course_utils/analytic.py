"""The exact optimal noise predictor for Gaussian-mixture data: a known answer to test samplers against.

If x_0 ~ sum_k w_k N(mu_k, std_k^2 I), then x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps is the mixture
    x_t ~ sum_k w_k N(sqrt(alpha_bar_t) mu_k, v_k I),   v_k = alpha_bar_t std_k^2 + 1 - alpha_bar_t,
whose score is  grad log p(x_t) = sum_k r_k(x_t) (sqrt(alpha_bar_t) mu_k - x_t) / v_k  with responsibilities
r_k proportional to w_k N(x_t; sqrt(alpha_bar_t) mu_k, v_k I). The MSE-optimal noise prediction is
    eps*(x_t, t) = E[eps | x_t] = -sqrt(1 - alpha_bar_t) grad log p(x_t)       (Tweedie's formula)
where eps is the true noise; the module returns eps* as its ``eps_pred``, like a perfectly trained network.
A sampler driven by eps* must reproduce the mixture (weights, means, spreads) up to its own discretisation error.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .data import GaussianMixture
from .model_inputs import check_timesteps
from .schedules import NoiseSchedule


class GaussianMixtureEps(nn.Module):
    """eps_pred = eps*(x_t, t) for ``mixture`` under ``schedule``: ``model(xt, t)`` with xt (B, D) or (B, C, H, W).

    ``model(xt, t, y)`` with y (B,) int64 conditions on mixture component y (-1: unconditional).
    """

    def __init__(self, mixture: GaussianMixture, schedule: NoiseSchedule):
        super().__init__()
        self.register_buffer("log_weights", torch.tensor(mixture.weights, dtype=torch.float64).log())   # (K,)
        self.register_buffer("means", torch.tensor(mixture.means, dtype=torch.float64))                # (K, D)
        self.register_buffer("variances", torch.tensor(mixture.stds, dtype=torch.float64) ** 2)        # (K,)
        self.register_buffer("alpha_bar", schedule.alpha_bar.double())                                  # (T,)

    def forward(self, xt: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        call = f"{type(self).__name__}(xt, t{', y' if y is not None else ''})"
        if not isinstance(xt, Tensor):
            raise TypeError(f"{call}: xt must be a torch.Tensor (B, D) or (B, C, H, W), got {type(xt).__name__}")
        if xt.ndim < 2:
            raise ValueError(f"{call}: xt must be a batch (B, D) or (B, C, H, W), got {tuple(xt.shape)}")
        check_timesteps(call, t, xt.shape[0], per="example", exact=True)
        shape, D = xt.shape, self.means.shape[1]
        x = xt.reshape(shape[0], -1).double()                                           # (B, D)
        if x.shape[1] != D:
            raise ValueError(f"{call}: this mixture lives in {D} dimensions, got x_t of shape {tuple(shape)}")
        alpha_bar_t = self.alpha_bar.to(x.device)[t.long()][:, None]                    # (B, 1)
        v = alpha_bar_t * self.variances[None, :] + (1 - alpha_bar_t)                   # (B, K)
        centred = x[:, None, :] - alpha_bar_t.sqrt()[:, :, None] * self.means[None]     # (B, K, D)
        log_r = (self.log_weights[None] - 0.5 * (centred ** 2).sum(-1) / v - 0.5 * D * torch.log(2 * math.pi * v))
        if y is not None:                                                               # condition on a component
            mask = torch.full_like(log_r, -math.inf)
            mask[torch.arange(x.shape[0]), y.clamp(min=0)] = 0.0
            log_r = torch.where((y >= 0)[:, None], log_r + mask, log_r)
        r = torch.softmax(log_r, dim=-1)                                                # (B, K)
        score = -(r[:, :, None] * centred / v[:, :, None]).sum(1)                       # (B, D)
        eps_pred = -(1 - alpha_bar_t).sqrt() * score                                    # (B, D)
        return eps_pred.reshape(shape).to(xt.dtype)
