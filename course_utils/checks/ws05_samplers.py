"""Worksheet 05 (solutions/05_samplers.ipynb): one step of each sampler.

- ``ddpm_step(xt, t, eps_pred, schedule, noise)``: Ho et al. 2020, Algorithm 2, with sigma_t^2 = beta_t:
      x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_pred) / sqrt(alpha_t) + sigma_t z,  z = 0 at t = 0.
- ``ddim_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, eta=0.0, noise=None) -> (x_prev, x0_pred)``:
  Song et al. 2021, Eq. 12 and 16 (their alpha_t is our alpha_bar), the signature of
  ``course_utils.samplers.ddim_step``:
      x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps_pred) / sqrt(alpha_bar_t)
      sigma_t = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev)
      x_prev  = sqrt(alpha_bar_prev) x0_pred + sqrt(1 - alpha_bar_prev - sigma_t^2) eps_pred + sigma_t z
  The caller looks alpha_bar_t and alpha_bar_prev up (alpha_bar_prev = 1 after the last step).

The noise of a stochastic step is an argument, so every output is deterministic; the DDIM check runs the step
twice, with two noises, to test that eta = 0 ignores the noise and eta > 0 uses it.
"""
from __future__ import annotations

import torch

from .framework import (MISTAKES, Check, alpha_bar64, alpha_bar_prev64, close, generator, judge, register,
                        small_schedule, todo, visible)


def _step_cases(steps: list) -> list:
    """One case per step, each with xt, eps_pred, noise and noise2 of shape (3, 1, 4, 4)."""
    g = generator(7)
    cases = []
    for step in steps:
        shape = (3, 1, 4, 4)
        cases.append(dict(step=step, xt=torch.randn(shape, generator=g), eps_pred=torch.randn(shape, generator=g),
                          noise=torch.randn(shape, generator=g), noise2=torch.randn(shape, generator=g)))
    return cases


# ------------------------------------------------------------------ ddpm_step
def _ddpm_cases(hidden: bool) -> list:
    cases = _step_cases([49, 5, 0] + ([1, 30] if hidden else []))
    for c in cases:
        c.update(t=c.pop("step"), schedule=small_schedule())
    return cases


def ref_ddpm_step(xt, t, eps_pred, schedule, noise, *, last_noise=False, sigma="beta", alpha="alpha", sqrt=True,
                  sign=-1.0, shift=0):
    """x_{t-1} in float64 (Algorithm 2, sigma_t^2 = beta_t); the switches reproduce the catalogued mistakes."""
    i = t - shift
    one = torch.tensor(1.0, dtype=torch.float64)
    alpha_bar = alpha_bar64(schedule)[i] if i >= 0 else one
    alpha_bar_prev = alpha_bar_prev64(schedule)[i] if i >= 0 else one
    beta = 1 - alpha_bar / alpha_bar_prev
    alpha_t = (1 - beta) if alpha == "alpha" else alpha_bar
    root = (1 - alpha_bar).sqrt() if sqrt else (1 - alpha_bar)
    mean = (xt.double() + sign * beta / root.clamp(min=1e-12) * eps_pred.double()) / alpha_t.sqrt()
    posterior_variance = (1 - alpha_bar_prev) / (1 - alpha_bar).clamp(min=1e-12) * beta
    std = {"posterior": posterior_variance.sqrt(), "var": beta, "beta": beta.sqrt()}[sigma]
    return mean + std * noise.double() if (t > 0 or last_noise) else mean


def _ddpm_diagnose(out, c) -> str | None:
    args = (c["xt"], c["t"], c["eps_pred"], c["schedule"], c["noise"])
    return judge(out, ref_ddpm_step(*args), [
        ("noise added at the last step: at t = 0 return the mean, without sigma * noise",
         ref_ddpm_step(*args, last_noise=True)),
        ("wrong sign: x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) + sigma_t z",
         ref_ddpm_step(*args, sign=1.0)),
        ("divide by sqrt(alpha_t), not sqrt(alpha_bar_t): beta vs alpha_bar confused",
         ref_ddpm_step(*args, alpha="abar")),
        ("the square root is forgotten on (1 - alpha_bar_t)", ref_ddpm_step(*args, sqrt=False)),
        ("sigma_t is the standard deviation: multiply the noise by sqrt(beta_t), not by beta_t",
         ref_ddpm_step(*args, sigma="var")),
        ("this worksheet uses sigma_t^2 = beta_t (DDPM Algorithm 2), not the posterior variance tilde beta_t",
         ref_ddpm_step(*args, sigma="posterior")),
        ("t off by one: you used the quantities of step t-1 (alpha_bar[t-1]); step t uses alpha_bar[t], betas[t]",
         ref_ddpm_step(*args, shift=1)),
    ], "x_{t-1}")


register(Check("ddpm_step", "ddpm_step", _ddpm_cases,
               lambda f, c: f(c["xt"], c["t"], c["eps_pred"], c["schedule"], c["noise"]), _ddpm_diagnose))
check_ddpm_step = visible("ddpm_step")


def ddpm_variant(**switches):
    """ddpm_step(xt, t, eps_pred, schedule, noise) in float32 with mistakes switched on; none: the right one."""
    return lambda xt, t, eps_pred, schedule, noise: ref_ddpm_step(xt, t, eps_pred, schedule, noise, **switches).float()


MISTAKES["ddpm_step"] = [
    ("noise at the last step", ddpm_variant(last_noise=True), "noise added at the last step"),
    ("wrong sign", ddpm_variant(sign=1.0), "wrong sign"),
    ("alpha_bar for alpha", ddpm_variant(alpha="abar"), "beta vs alpha_bar"),
    ("no sqrt on 1 - alpha_bar", ddpm_variant(sqrt=False), "square root"),
    ("variance as sigma", ddpm_variant(sigma="var"), "standard deviation"),
    ("posterior variance as sigma^2", ddpm_variant(sigma="posterior"), "sigma_t^2 = beta_t"),
    ("t off by one", ddpm_variant(shift=1), "off by one"),
    ("not implemented", todo, "not implemented yet"),
]


# ------------------------------------------------------------------ ddim_step
def _ddim_cases(hidden: bool) -> list:
    """Jumps (t, t_prev, eta) on the small schedule; t_prev = -1 is the last step, alpha_bar_prev = 1."""
    schedule = small_schedule()
    jumps = [(49, 39, 0.0), (49, 39, 1.0), (9, -1, 0.0), (30, 29, 0.5)]
    if hidden:
        jumps += [(20, 10, 1.0), (0, -1, 1.0)]
    cases = _step_cases(jumps)
    for c in cases:
        t, t_prev, eta = c.pop("step")
        c.update(alpha_bar_t=schedule.alpha_bar[t],
                 alpha_bar_prev=schedule.alpha_bar[t_prev] if t_prev >= 0 else torch.tensor(1.0), eta=eta)
    return cases


def ref_ddim_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, eta, noise, *, use_eta=True, sigma2_in_dir=True,
                  sqrt=True, remix_with_prev=True):
    """(x_prev, x0_pred) in float64 (DDIM Eq. 12 and 16); the switches reproduce the catalogued mistakes."""
    a, a_prev = torch.as_tensor(alpha_bar_t).double(), torch.as_tensor(alpha_bar_prev).double()
    root = torch.sqrt if sqrt else (lambda v: v)
    # Eq. 12, "predicted x0": (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)
    x0_pred = (xt.double() - root(1 - a) * eps_pred.double()) / root(a)
    # Eq. 16: sigma_t = eta sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_prev)
    sigma = (eta if use_eta else 1.0) * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).clamp(min=0).sqrt()
    a_remix = a_prev if remix_with_prev else a
    # Eq. 12: sqrt(alpha_bar_prev) x0_pred + sqrt(1 - alpha_bar_prev - sigma_t^2) eps + sigma_t z
    direction = (1 - a_remix - (sigma ** 2 if sigma2_in_dir else 0)).clamp(min=0).sqrt() * eps_pred.double()
    return a_remix.sqrt() * x0_pred + direction + sigma * noise.double(), x0_pred


def _ddim_call(f, c):
    """The student's outputs with the case's noise, and again with a second noise (to test determinism)."""
    args = (c["xt"], c["eps_pred"], c["alpha_bar_t"], c["alpha_bar_prev"])
    return dict(out=f(*args, eta=c["eta"], noise=c["noise"]), out2=f(*args, eta=c["eta"], noise=c["noise2"]))


def _ddim_diagnose(out, c) -> str | None:
    if not all(isinstance(o, (list, tuple)) and len(o) == 2 for o in (out["out"], out["out2"])):
        return "return a tuple (x_prev, x0_pred), like course_utils.samplers.ddim_step"
    (x_prev, x0_pred), (x_prev2, _) = out["out"], out["out2"]
    args = (c["xt"], c["eps_pred"], c["alpha_bar_t"], c["alpha_bar_prev"], c["eta"])
    ref_prev, ref_x0 = ref_ddim_step(*args, c["noise"])
    both = isinstance(x_prev, torch.Tensor) and isinstance(x_prev2, torch.Tensor)
    if c["eta"] == 0 and both and not close(x_prev, x_prev2, 1e-6):
        return "not deterministic at eta = 0: sigma_t = eta * sqrt(...) must vanish, so the noise has no effect"
    ref_moves = not close(ref_prev, ref_ddim_step(*args, c["noise2"])[0], 1e-6)
    if ref_moves and both and close(x_prev, x_prev2, 1e-6):
        return ("eta is ignored: with eta > 0 the step adds sigma_t * noise, sigma_t = eta * "
                "sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev)")
    hint = judge(x_prev, ref_prev, [
        ("sigma_t must be multiplied by eta: sigma_t = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) "
         "* sqrt(1 - alpha_bar_t / alpha_bar_prev)", ref_ddim_step(*args, c["noise"], use_eta=False)[0]),
        ("the direction term is sqrt(1 - alpha_bar_prev - sigma_t^2) * eps_pred: sigma_t^2 is missing",
         ref_ddim_step(*args, c["noise"], sigma2_in_dir=False)[0]),
        ("the square root is forgotten on alpha_bar in x0_pred", ref_ddim_step(*args, c["noise"], sqrt=False)[0]),
        ("x0_pred and eps_pred are remixed with alpha_bar_prev, not alpha_bar_t: x_prev = sqrt(alpha_bar_prev) "
         "x0_pred + sqrt(1 - alpha_bar_prev - sigma_t^2) eps_pred + sigma_t noise",
         ref_ddim_step(*args, c["noise"], remix_with_prev=False)[0]),
    ], "x_prev", "x_prev differs: x_prev = sqrt(alpha_bar_prev) x0_pred + sqrt(1 - alpha_bar_prev - sigma_t^2) "
                 "eps_pred + sigma_t noise")
    return hint or judge(x0_pred, ref_x0, [], "x0_pred",
                         "x0_pred differs: x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps_pred) / sqrt(alpha_bar_t)")


register(Check("ddim_step", "ddim_step", _ddim_cases, _ddim_call, _ddim_diagnose))
check_ddim_step = visible("ddim_step")


def ddim_variant(*, ignore_eta=False, x_prev_only=False, **switches):
    """ddim_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, eta, noise) in float32 with mistakes switched on;
    none: the right one."""
    def ddim_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, eta=0.0, noise=None):
        noise = torch.zeros_like(xt) if noise is None else noise
        x_prev, x0_pred = ref_ddim_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, 0.0 if ignore_eta else eta, noise,
                                        **switches)
        return x_prev.float() if x_prev_only else (x_prev.float(), x0_pred.float())
    return ddim_step


MISTAKES["ddim_step"] = [
    ("always noisy", ddim_variant(use_eta=False), "not deterministic at eta = 0"),
    ("sigma^2 missing in the direction", ddim_variant(sigma2_in_dir=False), "sigma_t^2 is missing"),
    ("no sqrt", ddim_variant(sqrt=False), "square root"),
    ("remixed with alpha_bar_t", ddim_variant(remix_with_prev=False), "remixed with alpha_bar_prev"),
    ("eta ignored (always deterministic)", ddim_variant(ignore_eta=True), "eta is ignored"),
    ("returns x_prev only", ddim_variant(x_prev_only=True), "return a tuple (x_prev, x0_pred)"),
    ("not implemented", todo, "not implemented yet"),
]
