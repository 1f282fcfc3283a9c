"""Guidance: steering a diffusion model towards a class y.

- Classifier-free guidance (Ho and Salimans 2022, Eq. 6), written with the guidance scale w as
      eps_pred = eps_pred_uncond + w * (eps_pred_cond - eps_pred_uncond)
  so w = 1 is the plain conditional model and w = 0 the unconditional one. The unconditional
  prediction comes from the same network with the null class (label dropout during training).
  (Their Eq. 6 writes (1 + w) for our w.)
- Classifier guidance (Dhariwal and Nichol 2021, Algorithm 2 / Eq. 14), in eps form:
      eps_hat = eps_pred - classifier_scale * sqrt(1 - alpha_bar_t) * grad_{x_t} log p_phi(y | x_t, t)
  with a classifier p_phi trained on noisy images (the paper calls classifier_scale s).

Every eps here is a prediction of the network (eps_pred in GLOSSARY.md), never the true noise.
The model is any callable ``model(xt, t)`` / ``model(xt, t, y)``: an ``nn.Module`` or a plain function.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .schedules import NoiseSchedule


def cfg_combine(eps_pred_uncond: Tensor, eps_pred_cond: Tensor, guidance_scale: float) -> Tensor:
    """eps_pred = eps_pred_uncond + w * (eps_pred_cond - eps_pred_uncond), shaped like the inputs (B, ...)."""
    return eps_pred_uncond + guidance_scale * (eps_pred_cond - eps_pred_uncond)


def classifier_grad(classifier: Callable[..., Tensor], xt: Tensor, t: Tensor, y: Tensor) -> Tensor:
    """grad_{x_t} log p_phi(y | x_t, t), shaped like xt; ``classifier(xt, t)`` returns logits (B, K)."""
    with torch.enable_grad():
        x = xt.detach().requires_grad_(True)
        log_probs = F.log_softmax(classifier(x, t).float(), dim=-1)     # (B, K)
        selected = log_probs[torch.arange(x.shape[0], device=x.device), y]  # (B,)
        (grad,) = torch.autograd.grad(selected.sum(), x)
    return grad


def predict_eps(model: Callable[..., Tensor], xt: Tensor, t: Tensor, *, y: Tensor | None = None,
                guidance_scale: float = 1.0, classifier: Callable[..., Tensor] | None = None,
                classifier_scale: float | None = None, schedule: NoiseSchedule | None = None) -> Tensor:
    """The (guided) noise prediction eps_pred = eps_theta(x_t, t[, y]) shaped like xt, checked for shape and NaN.

    - ``y is None``: the model's own prediction (unconditional, or the null class of a conditional model).
    - ``y`` given: classifier-free guidance with scale ``guidance_scale`` (1 = plain conditional).
    - ``classifier`` given with ``classifier_scale`` != 0: classifier guidance towards ``y`` on top (a negative
      scale pushes away from ``y``; 0.0 turns it off).

    Guidance asked for but impossible raises (``check_guidance``) rather than being silently ignored.
    """
    check_guidance("predict_eps(model, xt, t)", y=y, guidance_scale=guidance_scale, classifier=classifier,
                   classifier_scale=classifier_scale)
    if y is None:
        eps_pred = model(xt, t)
    elif guidance_scale == 1.0:
        eps_pred = model(xt, t, y)
    elif guidance_scale == 0.0:
        eps_pred = model(xt, t, None)
    else:
        # one batched call: first half conditional, second half with the null class
        both = model(torch.cat([xt, xt]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, -1)]))
        eps_pred_cond, eps_pred_uncond = both.chunk(2)
        eps_pred = cfg_combine(eps_pred_uncond, eps_pred_cond, guidance_scale)
    _check_eps_pred(eps_pred, xt, t)
    if classifier is not None and classifier_scale != 0.0:
        if y is None or schedule is None:
            raise ValueError("classifier guidance needs the target classes y and the schedule")
        sqrt_one_minus_alpha_bar = schedule.gather(schedule.sqrt_one_minus_alpha_bar, t, xt.ndim)
        eps_pred = eps_pred - classifier_scale * sqrt_one_minus_alpha_bar * classifier_grad(classifier, xt, t, y)
    return eps_pred


def check_guidance(call: str, *, y: Tensor | None, guidance_scale: float, classifier: Callable[..., Tensor] | None,
                   classifier_scale: float | None) -> None:
    """Guidance asked for but impossible, which the samplers would otherwise ignore silently: a ValueError that
    starts with ``call`` (the sampler's signature).

    - ``guidance_scale`` other than 1 (or 0, which is what y = None gives anyway) needs the classes ``y``;
    - a ``classifier`` needs ``classifier_scale`` (0.0 is accepted: the lesson's sweep starts there), and, with a
      scale other than 0, the classes ``y``;
    - a ``classifier_scale`` other than 0 needs a ``classifier``.
    """
    if y is None and guidance_scale not in (0.0, 1.0):
        raise ValueError(f"{call}: guidance_scale={guidance_scale!r} needs the target classes y (one per sample, "
                         "shape (N,)); without y the model samples unconditionally and guidance_scale has no effect")
    if classifier is not None and classifier_scale is None:
        raise ValueError(f"{call}: a classifier was given but no classifier_scale, so it would not be used; pass "
                         "classifier_scale=s (the guidance scale of Dhariwal and Nichol, e.g. 1.0 or 3.0)")
    if classifier is not None and classifier_scale and y is None:
        raise ValueError(f"{call}: classifier guidance (classifier_scale={classifier_scale!r}) needs the target "
                         "classes y (one per sample, shape (N,)): the classifier's gradient pulls towards y")
    if classifier is None and classifier_scale not in (None, 0.0):
        raise ValueError(f"{call}: classifier_scale={classifier_scale!r} was given without a classifier, so it "
                         "would have no effect; pass classifier=... (a noisy classifier, classifier(xt, t) -> logits)")


def _check_eps_pred(eps_pred: Tensor, xt: Tensor, t: Tensor) -> None:
    if eps_pred.shape != xt.shape:
        raise ValueError(f"the model returned shape {tuple(eps_pred.shape)} for x_t of shape {tuple(xt.shape)}; "
                         "a noise predictor must return eps_pred shaped like x_t")
    if eps_pred.device.type != "meta" and not torch.isfinite(eps_pred).all():  # meta tensors hold no values
        raise FloatingPointError(f"the model returned NaN or inf at timestep t = {int(t.max())}; "
                                 "check the model's weights and inputs (a diverged training run?)")
