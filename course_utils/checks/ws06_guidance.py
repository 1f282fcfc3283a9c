"""Worksheet 06 (solutions/06_guidance.ipynb): classifier-free guidance (Ho and Salimans 2022).

- ``cfg_combine(eps_uncond, eps_cond, guidance_scale)``: eps = eps_uncond + w (eps_cond - eps_uncond) (Eq. 6, with
  w = 1 the plain conditional model), the signature of ``course_utils.guidance.cfg_combine``.
- ``cfg_loss(model, x0, y, t, eps, drop, schedule)``: worksheet 4's loss for a conditional model, with the
  labels replaced by the null class -1 where ``drop`` is True (label dropout). Its cases, reference and
  diagnosis are worksheet 4's (``ws04_training``), with labels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .framework import MISTAKES, Check, generator, judge, register, todo, visible
from .ws04_training import choose_labels, diagnose_loss, loss_cases, loss_outputs, noisy_input, tiny_model


# ------------------------------------------------------------------ cfg_combine
def _cfg_cases(hidden: bool) -> list:
    g = generator(8)
    scales = [3.0, 1.0, 0.0] + ([7.5, -1.0] if hidden else [])
    return [dict(eps_uncond=torch.randn(2, 1, 3, 3, generator=g), eps_cond=torch.randn(2, 1, 3, 3, generator=g),
                 guidance_scale=w) for w in scales]


def _cfg_diagnose(out, c) -> str | None:
    u, k, w = c["eps_uncond"].double(), c["eps_cond"].double(), c["guidance_scale"]
    return judge(out, u + w * (k - u), [
        ("eps_cond and eps_uncond are swapped: eps = eps_uncond + w * (eps_cond - eps_uncond)", k + w * (u - k)),
        ("w = 1 must give eps_cond and w = 0 eps_uncond: eps = eps_uncond + w * (eps_cond - eps_uncond)",
         k + w * (k - u)),
        ("eps = eps_uncond + w * (eps_cond - eps_uncond): the eps_uncond term is missing", w * (k - u)),
    ], "guided eps")


register(Check("cfg_combine", "cfg_combine", _cfg_cases,
               lambda f, c: f(c["eps_uncond"], c["eps_cond"], c["guidance_scale"]), _cfg_diagnose))
check_cfg_combine = visible("cfg_combine")
MISTAKES["cfg_combine"] = [
    ("swapped", lambda u, k, w: k + w * (u - k), "swapped"),
    ("w + 1 convention", lambda u, k, w: k + w * (k - u), "w = 1 must give eps_cond"),
    ("no eps_uncond term", lambda u, k, w: w * (k - u), "missing"),
    ("not implemented", todo, "not implemented yet"),
]


# ------------------------------------------------------------------ cfg_loss
def _cfg_loss_call(f, c):
    model = tiny_model(c)
    return loss_outputs(model, f(model, c["x0"], c["y"], c["t"], c["eps"], c["drop"], c["schedule"]))


register(Check("cfg_loss", "cfg_loss", lambda hidden: loss_cases(hidden, num_classes=3), _cfg_loss_call,
               diagnose_loss))
check_cfg_loss = visible("cfg_loss")


def cfg_loss_variant(labels="dropped", target="eps"):
    """cfg_loss(model, x0, y, t, eps, drop, schedule) with a catalogued mistake; defaults: the right one."""
    def cfg_loss(model, x0, y, t, eps, drop, schedule):
        xt = noisy_input(x0, t, eps, schedule)
        return F.mse_loss(model(xt, t, choose_labels(y, drop, labels)), x0 if target == "x0" else eps)
    return cfg_loss


MISTAKES["cfg_loss"] = [
    ("mask inverted", cfg_loss_variant("inverted"), "inverted"),
    ("never drops", cfg_loss_variant("kept"), "never dropped"),
    ("null class 0", cfg_loss_variant("zero"), "null class is -1"),
    ("target x0", cfg_loss_variant(target="x0"), "target is the noise"),
    ("not implemented", todo, "not implemented yet"),
]
