"""Worksheet 02 (solutions/02_forward.ipynb): the forward process of DDPM (Ho et al. 2020).

- ``q_sample``:    x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps                       (Eq. 4)
- ``q_posterior``: mean and variance of q(x_{t-1} | x_t, x0)                                    (Eq. 6-7)
- ``predict_x0``:  x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)   (Eq. 4 solved for x0)
- ``q_sample_chain``: the Markov chain of Eq. 2, one step at a time, every state returned. Judged by
  statistics over many chains (each step's scale, the variance of what it adds, fresh noise at each step, the
  last state's marginal against Eq. 4), so any correct way of drawing the noise passes.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..schedules import NoiseSchedule
from .framework import (MISTAKES, Check, alpha_bar64, alpha_bar_prev64, close, explain_by, foreign_noise,
                        fresh_draws_hint, gather, gaussian_noise_hint, generator, judge, register, same_seed_hint,
                        shape_hint, small_schedule, three_point_noise, todo, visible)


# ------------------------------------------------------------------ q_sample
# PyTorch's words for the two raised errors of the forward process that a student meets most: a (B,) coefficient
# multiplied into images (B, C, H, W) without its reshape, and t + 1 run past the table's end
BROADCAST_HINT = ("schedule.alpha_bar[t] has shape (B,): reshape it to (B, 1, ..., 1), one 1 for each dimension "
                  "of the images after the batch, so that it broadcasts over them")
INDEX_HINT = ("t indexes the schedule's tables directly (code index t = 0 ... T - 1 uses alpha_bar[t]): "
              "alpha_bar[t + 1] runs past the end at t = T - 1")
MATH_ON_TENSOR_HINT = ("math.sqrt (or float(), math.log) takes one number, and alpha_bar[t] holds one per example: "
                      "take the root of the tensor, alpha_bar_t.sqrt() or torch.sqrt(alpha_bar_t)")
forward_explain = explain_by(("must match the size of tensor b", BROADCAST_HINT),
                             ("is out of bounds for dimension 0", INDEX_HINT),
                             ("only one element tensors can be converted to Python scalars", MATH_ON_TENSOR_HINT))


def _forward_cases(hidden: bool) -> list:
    g = generator(2)
    cases = [dict(x0=torch.randn(4, 1, 5, 5, generator=g), t=torch.tensor([0, 7, 23, 49]),
                  eps=torch.randn(4, 1, 5, 5, generator=g), schedule=small_schedule()),
             # points, as in the worksheet's plots: (B, 2), t of shape (B,) broadcast over the last dimension
             dict(x0=torch.randn(5, 2, generator=g), t=torch.tensor([0, 3, 12, 30, 49]),
                  eps=torch.randn(5, 2, generator=g), schedule=small_schedule())]
    # the first case's shape again, with other timesteps: a function that keeps what it computed for a shape
    # (a cache keyed by x0.shape) answers the first case right and this one with the first's alpha_bar; the
    # worksheet's row of noised images then showed one image seven times (a side-effects pass)
    again = generator(12)
    cases.append(dict(x0=torch.randn(4, 1, 5, 5, generator=again), t=torch.tensor([49, 23, 7, 0]),
                      eps=torch.randn(4, 1, 5, 5, generator=again), schedule=small_schedule(),
                      earlier_t=cases[0]["t"].clone()))
    if hidden:
        cases.append(dict(x0=torch.randn(6, 2, generator=g), t=torch.randint(0, 100, (6,), generator=g),
                          eps=torch.randn(6, 2, generator=g), schedule=NoiseSchedule.cosine(T=100)))
    return cases


def ref_q_sample(x0, t, eps, schedule, *, alpha_bar=None, sqrt=True):
    """x_t in float64; ``alpha_bar`` replaces the schedule's (a shifted one, say), ``sqrt=False`` drops the roots."""
    a = gather(alpha_bar64(schedule) if alpha_bar is None else alpha_bar, t, x0.ndim)
    if sqrt:
        return a.sqrt() * x0.double() + (1 - a).sqrt() * eps.double()
    return a * x0.double() + (1 - a) * eps.double()


def fixed_view_hint(out, x, name: str = "x0") -> str | None:
    """The hint for an output with more dimensions than its input ``x`` and the same batch: a coefficient reshaped
    for images, view(-1, 1, 1, 1), broadcast over points (B, 2) into (B, 1, B, 2)."""
    if not (isinstance(out, torch.Tensor) and out.ndim > x.ndim and len(out) == len(x)):
        return None
    spreads = f"the points of a (B, 2) {name}" if x.ndim == 2 else f"the dimensions of {name}"
    return (f"the result has {out.ndim} dimensions, {name} {x.ndim} ({tuple(out.shape)} from {tuple(x.shape)}): a "
            f"coefficient reshaped for a fixed number of dimensions, such as view(-1, 1, 1, 1) for images, spreads "
            f"over {spreads}; give it one 1 for each dimension of {name} after the batch, "
            f"alpha_bar_t.view(-1, *[1] * ({name}.ndim - 1))")


def _q_sample_diagnose(out, c) -> str | None:
    x0, t, eps, schedule = c["x0"], c["t"], c["eps"], c["schedule"]
    a = gather(alpha_bar64(schedule), t, x0.ndim)
    if hint := fixed_view_hint(out, x0):
        return hint
    return judge(out, ref_q_sample(x0, t, eps, schedule), [
        ("the timesteps of an earlier call with an x0 of this shape: compute alpha_bar[t] from each call's own t, "
         "and keep nothing between calls (a cache keyed by the shape answers every later call with the first's "
         "alpha_bar)", ref_q_sample(x0, c["earlier_t"], eps, schedule) if "earlier_t" in c else None),
        ("the square root is forgotten on alpha_bar: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps",
         ref_q_sample(x0, t, eps, schedule, sqrt=False)),
        ("x0 and eps are swapped: x0 gets sqrt(alpha_bar_t), the noise gets sqrt(1 - alpha_bar_t)",
         (1 - a).sqrt() * x0.double() + a.sqrt() * eps.double()),
        ("t off by one: you used alpha_bar[t-1] (alpha_bar_prev); code index t uses alpha_bar[t]",
         ref_q_sample(x0, t, eps, schedule, alpha_bar=alpha_bar_prev64(schedule))),
        ("t off by one: you used alpha_bar[t-1] (at t = 0 that is alpha_bar[-1], the LAST entry in Python); "
         "code index t uses alpha_bar[t]", ref_q_sample(x0, t, eps, schedule, alpha_bar=wrapped_prev(schedule))),
        ("use alpha_bar (the cumulative product), not alpha_t = 1 - beta_t",
         ref_q_sample(x0, t, eps, schedule, alpha_bar=1 - schedule.betas.double())),
        ("the square root is forgotten on alpha_bar_t, the signal's coefficient: x_t = sqrt(alpha_bar_t) x0 + "
         "sqrt(1 - alpha_bar_t) eps", a * x0.double() + (1 - a).sqrt() * eps.double()),
        ("the square root is forgotten on (1 - alpha_bar_t), the noise's coefficient: x_t = sqrt(alpha_bar_t) x0 + "
         "sqrt(1 - alpha_bar_t) eps", a.sqrt() * x0.double() + (1 - a) * eps.double()),
        ("the noise is added, not subtracted: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps",
         a.sqrt() * x0.double() - (1 - a).sqrt() * eps.double()),
        ("t off by one: you used alpha_bar[t + 1]; code index t uses alpha_bar[t]",
         ref_q_sample(x0, t, eps, schedule, alpha_bar=torch.cat([alpha_bar64(schedule)[1:],
                                                                 alpha_bar64(schedule)[-1:]]))),
        ("a square root taken twice: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, with alpha_bar_t "
         "itself from the schedule (schedule.alpha_bar[t], not schedule.sqrt_alpha_bar[t] rooted again)",
         a.sqrt().sqrt() * x0.double() + (1 - a.sqrt()).sqrt() * eps.double()),
        ("the noise's coefficient is sqrt(1 - alpha_bar_t), not 1 - sqrt(alpha_bar_t)",
         a.sqrt() * x0.double() + (1 - a.sqrt()) * eps.double()),
        (ONE_T_HINT, ref_q_sample(x0, t[:1].expand_as(t), eps, schedule)),
        ("sqrt(alpha_bar_t) multiplies x0 alone, not the sum x0 + sqrt(1 - alpha_bar_t) eps (a bracket too wide): "
         "x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps", a.sqrt() * (x0.double() + (1 - a).sqrt() *
                                                                               eps.double())),
        ("x0's coefficient sqrt(alpha_bar_t) is missing (the signal fades as the noise grows): x_t = "
         "sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps", x0.double() + (1 - a).sqrt() * eps.double()),
        ("eps's coefficient sqrt(1 - alpha_bar_t) is missing (the noise grows from 0 at t = 0): x_t = "
         "sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps", a.sqrt() * x0.double() + eps.double()),
    ], "x_t", _own_noise_hint(out, x0, eps, a) or "x_t differs: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) "
              "eps, with alpha_bar_t = schedule.alpha_bar[t] for each example, broadcast over the other dimensions")


ONE_T_HINT = ("every example got the first example's alpha_bar (alpha_bar[t[0]], or t.item()): each example has its "
              "own t, so gather alpha_bar[t], shape (B,), and reshape it to (B, 1, ..., 1) (schedule.gather("
              "schedule.alpha_bar, t, x0.ndim))")


def _own_noise_hint(out, x0: Tensor, eps: Tensor, a: Tensor) -> str | None:
    """The hint for an x_t whose signal part is right and whose noise part is noise of the right size, but not the
    eps given (torch.randn_like inside q_sample), else None."""
    if not (isinstance(out, Tensor) and out.shape == x0.shape and out.is_floating_point()):
        return None
    noise = (out.double() - a.sqrt() * x0.double()) / (1 - a).sqrt().clamp(min=1e-6)
    keep = ((1 - a) > 1e-3).expand_as(noise)            # where the noise is visible at all
    if keep.sum() < 20:
        return None
    if not foreign_noise(noise[keep], eps.double()[keep], 1.0):
        return None
    return ("x_t's noise is not the eps you were given: use the eps argument, don't draw noise inside q_sample "
            "(the caller draws it and needs the same eps as the training target)")


def wrapped_prev(schedule) -> Tensor:
    """alpha_bar[t-1] as Python indexes it, float64, shape (T,): at t = 0 the LAST entry, not 1."""
    return torch.roll(alpha_bar64(schedule), 1)


def _mix(x0, t, eps, schedule, signal, noise):
    """signal[t] * x0 + noise[t] * eps: the shape of every q_sample mistake."""
    return schedule.gather(signal, t, x0.ndim) * x0 + schedule.gather(noise, t, x0.ndim) * eps


register(Check("q_sample", "q_sample", _forward_cases, lambda f, c: f(c["x0"], c["t"], c["eps"], c["schedule"]),
               _q_sample_diagnose, forward_explain))
check_q_sample = visible("q_sample")
class _CachedByShape:
    """q_sample that keeps alpha_bar[t], gathered and reshaped, by x0's shape: right the first time a shape comes."""

    def __init__(self):
        self.kept = {}

    def __call__(self, x0, t, eps, schedule):
        a = self.kept.setdefault(tuple(x0.shape), schedule.alpha_bar[t].reshape(-1, *[1] * (x0.ndim - 1)))
        return a.sqrt() * x0 + (1 - a).sqrt() * eps


def _view_for_images(x0, t, eps, schedule):
    """q_sample with alpha_bar[t].view(-1, 1, 1, 1): right for images, (B, 1, B, 2) for points (B, 2)."""
    a = schedule.alpha_bar[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def _predict_x0_view_for_images(xt, t, eps, schedule):
    a = schedule.alpha_bar[t].view(-1, 1, 1, 1)
    return (xt - (1 - a).sqrt() * eps) / a.sqrt()


MISTAKES["q_sample"] = [
    ("alpha_bar kept by x0's shape", _CachedByShape(), "keep nothing between calls"),
    ("a view for images, on points", _view_for_images, "one 1 for each dimension of x0"),
    ("(x_t, eps) returned", lambda x0, t, eps, schedule: (_view_for_images(x0, t, eps, schedule), eps),
     "got 2 values (a tuple or a list)"),
    ("no sqrt", lambda x0, t, eps, schedule: _mix(x0, t, eps, schedule, schedule.alpha_bar, 1 - schedule.alpha_bar),
     "square root"),
    ("swapped", lambda x0, t, eps, schedule: _mix(x0, t, eps, schedule, schedule.sqrt_one_minus_alpha_bar,
                                                  schedule.sqrt_alpha_bar), "swapped"),
    ("t off by one", lambda x0, t, eps, schedule: _mix(x0, t, eps, schedule, schedule.alpha_bar_prev.sqrt(),
                                                       (1 - schedule.alpha_bar_prev).sqrt()), "off by one"),
    ("alpha_bar[t-1], wrapping at t = 0", lambda x0, t, eps, schedule: _mix(
        x0, t, eps, schedule, schedule.alpha_bar.roll(1).sqrt(), (1 - schedule.alpha_bar.roll(1)).sqrt()),
     "the LAST entry in Python"),
    ("alpha instead of alpha_bar", lambda x0, t, eps, schedule: _mix(x0, t, eps, schedule, schedule.alphas.sqrt(),
                                                                     schedule.betas.sqrt()), "cumulative product"),
    ("no broadcasting", lambda x0, t, eps, schedule: (schedule.sqrt_alpha_bar[t] * x0.flatten(1).T).T, "wrong shape"),
    ("alpha_bar[t] not reshaped", lambda x0, t, eps, schedule: schedule.sqrt_alpha_bar[t] * x0
     + schedule.sqrt_one_minus_alpha_bar[t] * eps, "one 1 for each dimension of the images after the batch"),
    ("alpha_bar[t + 1] (raises at T - 1)", lambda x0, t, eps, schedule: schedule.alpha_bar[t + 1].reshape(
        -1, *([1] * (x0.ndim - 1))).sqrt() * x0, "runs past the end at t = T - 1"),
    ("alpha_bar[t + 1], clamped", lambda x0, t, eps, schedule: _mix(
        x0, (t + 1).clamp(max=len(schedule.betas) - 1), eps, schedule, schedule.sqrt_alpha_bar,
        schedule.sqrt_one_minus_alpha_bar), "you used alpha_bar[t + 1]"),
    ("square root taken twice", lambda x0, t, eps, schedule: _mix(
        x0, t, eps, schedule, schedule.sqrt_alpha_bar.sqrt(), (1 - schedule.sqrt_alpha_bar).sqrt()),
     "a square root taken twice"),
    ("1 - sqrt(alpha_bar) on the noise", lambda x0, t, eps, schedule: _mix(
        x0, t, eps, schedule, schedule.sqrt_alpha_bar, 1 - schedule.sqrt_alpha_bar), "not 1 - sqrt(alpha_bar_t)"),
    ("one t for the whole batch", lambda x0, t, eps, schedule: _mix(x0, t[:1].expand_as(t), eps, schedule,
                                                                    schedule.sqrt_alpha_bar,
                                                                    schedule.sqrt_one_minus_alpha_bar), "own t"),
    ("math.sqrt on a tensor", lambda x0, t, eps, schedule: math.sqrt(schedule.gather(schedule.alpha_bar, t, x0.ndim))
     * x0, "math.sqrt (or float(), math.log) takes one number"),
    ("its own noise", lambda x0, t, eps, schedule: _mix(
        x0, t, torch.randn(eps.shape, generator=torch.Generator().manual_seed(5)), schedule,
        schedule.sqrt_alpha_bar, schedule.sqrt_one_minus_alpha_bar), "not the eps you were given"),
    ("sqrt(alpha_bar_t) on the whole sum", lambda x0, t, eps, schedule: schedule.gather(
        schedule.sqrt_alpha_bar, t, x0.ndim) * (x0 + schedule.gather(schedule.sqrt_one_minus_alpha_bar, t, x0.ndim)
                                                * eps), "multiplies x0 alone, not the sum"),
    ("x0's coefficient missing", lambda x0, t, eps, schedule: x0 + schedule.gather(
        schedule.sqrt_one_minus_alpha_bar, t, x0.ndim) * eps, "x0's coefficient sqrt(alpha_bar_t) is missing"),
    ("eps's coefficient missing", lambda x0, t, eps, schedule: schedule.gather(
        schedule.sqrt_alpha_bar, t, x0.ndim) * x0 + eps, "eps's coefficient sqrt(1 - alpha_bar_t) is missing"),
    ("writes into x0", lambda x0, t, eps, schedule: x0.mul_(schedule.gather(schedule.sqrt_alpha_bar, t, x0.ndim)).add_(
        schedule.gather(schedule.sqrt_one_minus_alpha_bar, t, x0.ndim) * eps), "changed its input x0 in place"),
    ("not implemented", todo, "not implemented yet"),
]


# ------------------------------------------------------------------ q_posterior
def ref_q_posterior(x0, xt, t, schedule, *, shift=False, sqrt=True, wrap=False, clamp=False, cumulative=None):
    """(mean, variance, coef_x0, coef_xt) in float64; ``shift`` takes every quantity one step early, ``wrap``
    takes alpha_bar_{t-1} as alpha_bar[t-1] (at t = 0 the last entry: Python's -1), ``clamp`` as
    alpha_bar[max(t-1, 0)] (at t = 0 alpha_bar[0], where 1 belongs); ``cumulative="xt"`` puts sqrt(alpha_bar_t)
    where sqrt(alpha_t) belongs (xt's coefficient), ``cumulative="x0"`` sqrt(alpha_bar_t) where
    sqrt(alpha_bar_{t-1}) belongs (x0's)."""
    a, a_prev = alpha_bar64(schedule), alpha_bar_prev64(schedule)
    betas = 1 - a / a_prev
    if shift:
        a, a_prev = a_prev, torch.cat([torch.ones(1, dtype=torch.float64), a_prev[:-1]])
        betas = 1 - a / a_prev
    if wrap:
        a_prev = wrapped_prev(schedule)
    if clamp:
        a_prev = torch.cat([a[:1], a_prev[1:]])
    root = torch.sqrt if sqrt else (lambda v: v)
    coef_x0 = gather(root(a if cumulative == "x0" else a_prev) * betas / (1 - a).clamp(min=1e-12), t, x0.ndim)
    coef_xt = gather(root(a if cumulative == "xt" else 1 - betas) * (1 - a_prev) / (1 - a).clamp(min=1e-12), t,
                     x0.ndim)
    var = gather((1 - a_prev) / (1 - a).clamp(min=1e-12) * betas, t, x0.ndim)
    return coef_x0 * x0.double() + coef_xt * xt.double(), var, coef_x0, coef_xt


def _posterior_cases(hidden: bool) -> list:
    cases = _forward_cases(hidden)
    g = generator(3)
    for c in cases:
        c["xt"] = ref_q_sample(c["x0"], c["t"], c.pop("eps"), c["schedule"]).float() + 0.1 * torch.randn(
            c["x0"].shape, generator=g)
    return cases


POSTERIOR_MEAN = ("mean = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x0 + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / "
                  "(1 - alpha_bar_t) x_t (DDPM Eq. 7)")


def _same_values(a: Tensor, b: Tensor) -> bool:
    """Whether ``a`` holds ``b``'s values, in ``b``'s shape or broadcast to it (a variance of shape (B, 1, ...))."""
    try:
        return close(torch.broadcast_to(a, b.shape) if a.numel() < b.numel() else a,
                     torch.broadcast_to(b, a.shape) if b.numel() < a.numel() else b)
    except RuntimeError:
        return False


def _upside_down_hint(mean, var, x0, xt, a, a_prev, alpha, beta, t) -> str | None:
    """The hint for (1 - alpha_bar_t) / (1 - alpha_bar_{t-1}) written for its inverse, in the mean's xt coefficient
    or in the variance: inf at t = 0 (1 - alpha_bar_{-1} = 0), so it is recognised on the examples with t > 0."""
    rows = t > 0
    if not bool(rows.any()):
        return None
    inverted = (1 - a) / (1 - a_prev).clamp(min=1e-300)
    wrong_mean = a_prev.sqrt() * beta / (1 - a) * x0.double() + alpha.sqrt() * inverted * xt.double()
    if isinstance(mean, Tensor) and mean.shape == x0.shape and close(mean[rows], wrong_mean[rows]) and \
            not close(mean[rows], ref_q_posterior_mean(a, a_prev, alpha, beta, x0, xt)[rows]):
        return ("xt's coefficient has (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t), not its inverse (at t = 0 the "
                "inverse divides by 1 - alpha_bar_{t-1} = 0): " + POSTERIOR_MEAN)
    if isinstance(var, Tensor) and var.numel() == x0.shape[0] and var.is_floating_point():
        mine = var.reshape(-1).double()[rows]
        if close(mine, (inverted * beta).reshape(-1)[rows]) and not close(mine, ((1 - a_prev) / (1 - a) * beta)
                                                                          .reshape(-1)[rows]):
            return ("the variance is (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t, not its inverse ratio (at t = "
                    "0 the inverse divides by 1 - alpha_bar_{t-1} = 0)")
    return None


def ref_q_posterior_mean(a, a_prev, alpha, beta, x0, xt) -> Tensor:
    """DDPM Eq. 7's mean from the gathered quantities (B, 1, ..., 1), float64."""
    return (a_prev.sqrt() * beta * x0.double() + alpha.sqrt() * (1 - a_prev) * xt.double()) / (1 - a)


WRAP_HINT = ("at t = 0, alpha_bar[t-1] is alpha_bar[-1], the LAST entry in Python, where alpha_bar_{t-1} = 1 "
             "belongs: use schedule.alpha_bar_prev[t]")


CLAMP_HINT = ("at t = 0, alpha_bar_{t-1} is 1 (the clean data before the first step), not alpha_bar[0]: "
              "use schedule.alpha_bar_prev[t]")


def _q_posterior_diagnose(out, c) -> str | None:
    if not isinstance(out, (list, tuple)) or len(out) != 2:
        return "return a tuple (mean, variance)"
    mean, var = out
    x0, xt, t, schedule = c["x0"], c["xt"], c["t"], c["schedule"]
    ref_mean, ref_var, cx0, cxt = ref_q_posterior(x0, xt, t, schedule)
    if isinstance(mean, Tensor) and close(var, ref_mean) and _same_values(mean, ref_var):
        return "the order is swapped: return (mean, variance), the mean first"
    a, a_prev = gather(alpha_bar64(schedule), t, x0.ndim), gather(alpha_bar_prev64(schedule), t, x0.ndim)
    beta, alpha = 1 - a / a_prev, a / a_prev
    hint = _upside_down_hint(mean, var, x0, xt, a, a_prev, alpha, beta, t)
    if hint:
        return hint
    hint = judge(mean, ref_mean, [
        ("the coefficients of x0 and xt are swapped (see DDPM Eq. 7)", cxt * x0.double() + cx0 * xt.double()),
        ("a square root is forgotten: sqrt(alpha_bar_{t-1}) multiplies x0 and sqrt(alpha_t) multiplies xt",
         ref_q_posterior(x0, xt, t, schedule, sqrt=False)[0]),
        ("t off by one: you used alpha_bar[t-1] where alpha_bar[t] belongs (alpha_bar_prev is alpha_bar[t-1])",
         ref_q_posterior(x0, xt, t, schedule, shift=True)[0]),
        ("xt's coefficient has sqrt(alpha_t) = sqrt(1 - beta_t), one step's factor, not sqrt(alpha_bar_t): "
         "x_{t-1} -> x_t is one step of the chain (DDPM Eq. 7)",
         ref_q_posterior(x0, xt, t, schedule, cumulative="xt")[0]),
        ("x0's coefficient has sqrt(alpha_bar_{t-1}) (schedule.alpha_bar_prev[t]), not sqrt(alpha_bar_t): "
         "x0 -> x_{t-1} is t - 1 steps (DDPM Eq. 7)", ref_q_posterior(x0, xt, t, schedule, cumulative="x0")[0]),
        (WRAP_HINT, ref_q_posterior(x0, xt, t, schedule, wrap=True)[0]),
        (CLAMP_HINT, ref_q_posterior(x0, xt, t, schedule, clamp=True)[0]),
        ("beta_t is one step's 1 - alpha_t = 1 - alpha_bar_t / alpha_bar_{t-1} (schedule.betas[t]), not "
         "1 - alpha_bar_t: " + POSTERIOR_MEAN,
         (a_prev.sqrt() * (1 - a) * x0.double() + alpha.sqrt() * (1 - a_prev) * xt.double()) / (1 - a)),
        ("x0's coefficient has beta_t itself, not sqrt(beta_t): " + POSTERIOR_MEAN,
         (a_prev.sqrt() * beta.sqrt() * x0.double() + alpha.sqrt() * (1 - a_prev) * xt.double()) / (1 - a)),
        ("xt's coefficient has sqrt(alpha_t), not alpha_t: " + POSTERIOR_MEAN,
         (a_prev.sqrt() * beta * x0.double() + alpha * (1 - a_prev) * xt.double()) / (1 - a)),
    ], "mean", "the mean differs: " + POSTERIOR_MEAN)
    if hint:
        return hint
    if not isinstance(var, Tensor):
        return f"the variance should be a torch.Tensor of shape (B, 1, ..., 1), got {type(var).__name__}"
    try:
        var_full = torch.broadcast_to(var, x0.shape)
    except RuntimeError:
        return (f"wrong shape: the variance has shape {tuple(var.shape)}; "
                f"return shape (B, 1, ..., 1) = {tuple(ref_var.shape)}")
    full = lambda v: torch.broadcast_to(v, x0.shape)  # noqa: E731
    betas = gather(schedule.betas.double(), t, x0.ndim)
    return judge(var_full, full(ref_var), [
        ("the variance is the posterior variance tilde beta_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t, "
         "not beta_t", full(betas)),
        ("return the variance tilde beta_t, not the standard deviation", full(ref_var.sqrt())),
        ("the variance's factor beta_t is missing: tilde beta_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t",
         full((1 - a_prev) / (1 - a))),
        ("the variance is tilde beta_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t, not 1 - alpha_bar_{t-1} "
         "(the noise level of the jump from x0 to x_{t-1}; knowing x_t narrows it)", full(1 - a_prev)),
        ("t off by one in the variance: alpha_bar[t-1] is alpha_bar_prev[t]",
         full(ref_q_posterior(x0, xt, t, schedule, shift=True)[1])),
        (WRAP_HINT, full(ref_q_posterior(x0, xt, t, schedule, wrap=True)[1])),
        (CLAMP_HINT, full(ref_q_posterior(x0, xt, t, schedule, clamp=True)[1])),
    ], "variance")


register(Check("q_posterior", "q_posterior", _posterior_cases,
               lambda f, c: f(c["x0"], c["xt"], c["t"], c["schedule"]), _q_posterior_diagnose))
check_q_posterior = visible("q_posterior")


def posterior_variant(*, swapped=False, variance="posterior", var_shape="B1", **switches):
    """q_posterior(x0, xt, t, schedule) in float32 with catalogued mistakes switched on; none: the right one."""
    def q_posterior(x0, xt, t, schedule):
        mean, var, cx0, cxt = ref_q_posterior(x0, xt, t, schedule, **switches)
        if swapped:
            mean = cxt * x0 + cx0 * xt
        var = {"posterior": var, "beta": gather(schedule.betas.double(), t, x0.ndim), "std": var.sqrt()}[variance]
        return mean.float(), (var.flatten() if var_shape == "B" else var).float()
    return q_posterior


def _posterior_by_hand(kind: str):
    """q_posterior written term by term, as the worksheet's solution is, with one catalogued mistake."""
    def q_posterior(x0, xt, t, schedule):
        shape = (-1, *([1] * (x0.ndim - 1)))
        a, a_prev = schedule.alpha_bar[t].reshape(shape), schedule.alpha_bar_prev[t].reshape(shape)
        beta, alpha = schedule.betas[t].reshape(shape), schedule.alphas[t].reshape(shape)
        beta = 1 - a if kind == "beta_as_1_minus_alpha_bar" else beta
        coef_x0 = a_prev.sqrt() * (beta.sqrt() if kind == "sqrt_beta" else beta) / (1 - a)
        ratio = (1 - a) / (1 - a_prev) if kind == "ratio_inverted" else (1 - a_prev) / (1 - a)
        coef_xt = (alpha if kind == "alpha_no_sqrt" else alpha.sqrt()) * ratio
        var = ((1 - a) / (1 - a_prev) if kind == "variance_inverted" else (1 - a_prev) / (1 - a)) * beta
        var = {"variance_no_beta": (1 - a_prev) / (1 - a), "variance_jump": 1 - a_prev}.get(kind, var)
        mean = coef_x0 * x0 + coef_xt * xt
        return (var, mean) if kind == "order" else (mean, var)
    return q_posterior


MISTAKES["q_posterior"] = [
    ("swapped coefficients", posterior_variant(swapped=True), "swapped"),
    ("no sqrt", posterior_variant(sqrt=False), "square root"),
    ("t off by one", posterior_variant(shift=True), "off by one"),
    ("sqrt(alpha_bar_t) for sqrt(alpha_t) on xt", posterior_variant(cumulative="xt"), "one step's factor"),
    ("sqrt(alpha_bar_t) for sqrt(alpha_bar_{t-1}) on x0", posterior_variant(cumulative="x0"), "t - 1 steps"),
    ("alpha_bar[t-1] wraps at t = 0", posterior_variant(wrap=True), "LAST entry"),
    ("alpha_bar[t-1] clamped to alpha_bar[0] at t = 0", posterior_variant(clamp=True), "not alpha_bar[0]"),
    ("beta_t as variance", posterior_variant(variance="beta"), "not beta_t"),
    ("std instead of variance", posterior_variant(variance="std"), "not the standard deviation"),
    ("variance of shape (B,)", posterior_variant(var_shape="B"), "(B, 1, ..., 1)"),
    ("variance without beta_t", _posterior_by_hand("variance_no_beta"), "the variance's factor beta_t is missing"),
    ("variance 1 - alpha_bar_{t-1}", _posterior_by_hand("variance_jump"), "not 1 - alpha_bar_{t-1} (the noise level"),
    ("beta_t as 1 - alpha_bar_t", _posterior_by_hand("beta_as_1_minus_alpha_bar"), "not 1 - alpha_bar_t: mean"),
    ("sqrt(beta_t) in x0's coefficient", _posterior_by_hand("sqrt_beta"), "has beta_t itself, not sqrt(beta_t)"),
    ("alpha_t without its root in xt's coefficient", _posterior_by_hand("alpha_no_sqrt"),
     "xt's coefficient has sqrt(alpha_t), not alpha_t"),
    ("xt's ratio inverted", _posterior_by_hand("ratio_inverted"), "(1 - alpha_bar_t), not its inverse"),
    ("variance's ratio inverted", _posterior_by_hand("variance_inverted"), "not its inverse ratio"),
    ("(variance, mean)", _posterior_by_hand("order"), "return (mean, variance), the mean first"),
    ("not implemented", todo, "not implemented yet"),
]


# ------------------------------------------------------------------ predict_x0
def ref_predict_x0(xt, t, eps, schedule, *, sign=-1.0, divide=True, sqrt=True, alpha_bar=None):
    """x0_pred in float64; the switches reproduce the catalogued mistakes."""
    a = gather(alpha_bar64(schedule) if alpha_bar is None else alpha_bar, t, xt.ndim)
    root = torch.sqrt if sqrt else (lambda v: v)
    numerator = xt.double() + sign * root(1 - a) * eps.double()
    return numerator / root(a) if divide else numerator * root(a)


def _predict_x0_cases(hidden: bool) -> list:
    cases = _forward_cases(hidden)
    for c in cases:
        c["xt"] = ref_q_sample(c.pop("x0"), c["t"], c["eps"], c["schedule"]).float()
    return cases


def _predict_x0_diagnose(out, c) -> str | None:
    args = (c["xt"], c["t"], c["eps"], c["schedule"])
    xt, eps = c["xt"].double(), c["eps"].double()
    a = gather(alpha_bar64(c["schedule"]), c["t"], xt.ndim)
    alpha_t = gather(1 - c["schedule"].betas.double(), c["t"], xt.ndim)
    formula = "x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)"
    if hint := fixed_view_hint(out, xt, "xt"):
        return hint
    return judge(out, ref_predict_x0(*args), [
        (f"divide the whole of x_t - sqrt(1 - alpha_bar_t) eps by sqrt(alpha_bar_t), not x_t alone: {formula}",
         xt / a.sqrt() - (1 - a).sqrt() * eps),
        (f"1 / sqrt(alpha_t) (schedule.sqrt_recip_alphas) belongs to one step of the reverse process; x_t came "
         f"from x0 in one jump, so divide by sqrt(alpha_bar_t): {formula}",
         (xt - (1 - a).sqrt() * eps) / alpha_t.sqrt()),
        (f"x0_pred is clamped: return the prediction as it is (a sampler may clip it, predict_x0 does not): "
         f"{formula}", ref_predict_x0(*args).clamp(-1, 1)),
        (f"the square root is forgotten on (1 - alpha_bar_t), the noise's coefficient: {formula}",
         (xt - (1 - a) * eps) / a.sqrt()),
        (f"the noise's coefficient is sqrt(1 - alpha_bar_t), not 1 - sqrt(alpha_bar_t): {formula}",
         (xt - (1 - a.sqrt()) * eps) / a.sqrt()),
        ("wrong sign: x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)",
         ref_predict_x0(*args, sign=1.0)),
        ("the square root is forgotten on alpha_bar", ref_predict_x0(*args, sqrt=False)),
        ("divide by sqrt(alpha_bar_t), don't multiply", ref_predict_x0(*args, divide=False)),
        ("t off by one: you used alpha_bar[t-1] (alpha_bar_prev); code index t uses alpha_bar[t]",
         ref_predict_x0(*args, alpha_bar=alpha_bar_prev64(c["schedule"]))),
        ("that is alpha_t (one step's 1 - beta_t); x_t was made from x0 in one jump, so undo it with the "
         "cumulative product alpha_bar_t", ref_predict_x0(*args, alpha_bar=1 - c["schedule"].betas.double())),
        (f"sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t) are swapped: in x_t, x0 has sqrt(alpha_bar_t) and the noise "
         f"sqrt(1 - alpha_bar_t), so {formula}", (xt - a.sqrt() * eps) / (1 - a).sqrt()),
        ("t off by one: you used alpha_bar[t-1] (at t = 0 that is alpha_bar[-1], the LAST entry in Python); "
         f"code index t uses alpha_bar[t]: {formula}", ref_predict_x0(*args, alpha_bar=wrapped_prev(c["schedule"]))),
    ], "x0_pred", f"x0_pred differs: {formula}, with alpha_bar_t = schedule.alpha_bar[t] for each example, "
                  "broadcast over the other dimensions")


def _predict_x0_variant(**switches):
    return lambda xt, t, eps, schedule: ref_predict_x0(xt, t, eps, schedule, **switches).float()


register(Check("predict_x0", "predict_x0", _predict_x0_cases, lambda f, c: f(c["xt"], c["t"], c["eps"], c["schedule"]),
               _predict_x0_diagnose, forward_explain))
check_predict_x0 = visible("predict_x0")
MISTAKES["predict_x0"] = [
    ("wrong sign", _predict_x0_variant(sign=1.0), "wrong sign"),
    ("a view for images, on points", _predict_x0_view_for_images, "one 1 for each dimension of xt"),
    ("multiplies", _predict_x0_variant(divide=False), "divide"),
    ("alpha for alpha_bar", lambda xt, t, eps, schedule: ref_predict_x0(
        xt, t, eps, schedule, alpha_bar=1 - schedule.betas.double()).float(), "cumulative product alpha_bar_t"),
    ("x_t alone divided", lambda xt, t, eps, schedule: xt / schedule.gather(schedule.sqrt_alpha_bar, t, xt.ndim)
     - schedule.gather(schedule.sqrt_one_minus_alpha_bar, t, xt.ndim) * eps, "not x_t alone"),
    ("sqrt_recip_alphas (alpha_t for alpha_bar_t)", lambda xt, t, eps, schedule: schedule.gather(
        schedule.alphas.rsqrt(), t, xt.ndim) * (xt - schedule.gather(schedule.sqrt_one_minus_alpha_bar, t, xt.ndim)
                                                * eps), "belongs to one step of the"),
    ("clamped", lambda xt, t, eps, schedule: ref_predict_x0(xt, t, eps, schedule).float().clamp(-1, 1),
     "x0_pred is clamped"),
    ("no sqrt on the noise's coefficient", lambda xt, t, eps, schedule: (
        xt - schedule.gather(1 - schedule.alpha_bar, t, xt.ndim) * eps) / schedule.gather(
        schedule.sqrt_alpha_bar, t, xt.ndim), "forgotten on (1 - alpha_bar_t), the noise's"),
    ("1 - sqrt(alpha_bar) on the noise", lambda xt, t, eps, schedule: (
        xt - schedule.gather(1 - schedule.sqrt_alpha_bar, t, xt.ndim) * eps) / schedule.gather(
        schedule.sqrt_alpha_bar, t, xt.ndim), "not 1 - sqrt(alpha_bar_t): x0_pred"),
    ("alpha_bar[t] not reshaped", lambda xt, t, eps, schedule: (xt - schedule.sqrt_one_minus_alpha_bar[t] * eps)
     / schedule.sqrt_alpha_bar[t], "one 1 for each dimension of the images after the batch"),
    ("the two rates swapped", lambda xt, t, eps, schedule: (xt - schedule.gather(schedule.sqrt_alpha_bar, t, xt.ndim)
                                                           * eps) / schedule.gather(
        schedule.sqrt_one_minus_alpha_bar, t, xt.ndim), "sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t) are swapped"),
    ("alpha_bar[t-1], wrapping at t = 0", lambda xt, t, eps, schedule: ref_predict_x0(
        xt, t, eps, schedule, alpha_bar=schedule.alpha_bar.double().roll(1)).float(), "the LAST entry in Python"),
    ("not implemented", todo, "not implemented yet"),
]


# ------------------------------------------------------------------ q_sample_chain: Eq. 2, step by step
_CHAIN_N = 4000     # chains per column of x0; 8,000 in all: a variance is then known to about 1.6%


def chain_variant(mistake: str | None = None):
    """A float32 ``q_sample_chain(x0, t, schedule, generator=None)`` returning every state (t + 2, B, ...).

    ``mistake``: None (right), "one short" (t steps), "alpha_bar per step", "no sqrt", "same noise", "not scaled"
    (x + sqrt(beta) eps), "bracket" (sqrt(alpha) (x + sqrt(beta) eps)), "alpha on the noise" (sqrt(alpha) eps),
    "independent jumps" (each state drawn from x0 in one jump), "one noise per point" (shared by its coordinates),
    "coin flips" (+-1 noise: the right mean and variance, not Gaussian), "three points" (-sqrt(3), 0, sqrt(3) with
    probabilities 1/6, 2/3, 1/6: a normal's mean, variance and fourth moment, not Gaussian), "uniform"
    (torch.rand), "shared by the chains" (one noise for every row), "concatenated" (torch.cat, not stack).
    """
    def q_sample_chain(x0, t, schedule, generator=None):
        states, x = [x0], x0
        shared = torch.randn(x0.shape, generator=generator)
        for i in range(t if mistake == "one short" else t + 1):
            eps = shared if mistake == "same noise" else torch.randn(x0.shape, generator=generator)
            if mistake == "one noise per point":
                eps = eps[:, :1].expand_as(x0)
            elif mistake == "coin flips":
                eps = eps.sign()
            elif mistake == "three points":
                eps = three_point_noise(eps)
            elif mistake == "uniform":
                eps = torch.rand(x0.shape, generator=generator)
            elif mistake == "shared by the chains":
                eps = torch.randn(x0.shape[1:], generator=generator).expand_as(x0)
            alpha, beta, alpha_bar = schedule.alphas[i], schedule.betas[i], schedule.alpha_bar[i]
            if mistake == "alpha_bar per step":
                x = alpha_bar.sqrt() * x + (1 - alpha_bar).sqrt() * eps
            elif mistake == "no sqrt":
                x = alpha * x + beta * eps
            elif mistake == "independent jumps":
                x = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps
            elif mistake == "not scaled":
                x = x + beta.sqrt() * eps
            elif mistake == "bracket":
                x = alpha.sqrt() * (x + beta.sqrt() * eps)
            elif mistake == "alpha on the noise":
                x = alpha.sqrt() * x + alpha.sqrt() * eps
            else:
                x = alpha.sqrt() * x + beta.sqrt() * eps
            states.append(x)
        return (torch.cat if mistake == "concatenated" else torch.stack)(states).float()
    return q_sample_chain


def _chain_cases(hidden: bool) -> list:
    x0 = torch.tensor([1.0, -2.0]).repeat(_CHAIN_N, 1)                  # (N, 2): two starting points
    schedule = NoiseSchedule.from_betas(torch.linspace(0.05, 0.4, 8))    # large betas: every step shows
    return [dict(x0=x0, t=t, schedule=schedule, seed=seed)
            for t, seed in ([(3, 0)] + ([(0, 1), (7, 2)] if hidden else []))]


def _scales_fit(states: Tensor, scales: Tensor, t: int) -> bool:
    """Whether every step k = 1..t+1 of the stacked chain scales the column means of state k-1 by scales[k-1]
    (within the sampling slack of its step); False where the chain has more steps than ``scales``."""
    if len(scales) < t + 1:
        return False
    for k in range(1, t + 2):
        m_cur, m_prev = states[k].mean(0), states[k - 1].mean(0)
        scale = float((m_cur * m_prev).sum() / (m_prev * m_prev).sum())
        slack = 5 * math.sqrt(float(states[k].var(0).mean()) / _CHAIN_N / float((m_prev * m_prev).mean())) + 1e-3
        if abs(scale - float(scales[k - 1])) > slack:
            return False
    return True


def _chain_call(f, c) -> dict:
    """The chain twice from one generator (the second call must continue its stream: not reseed it), and once
    from a new generator of the same seed (it must repeat the first: the generator is used)."""
    g = generator(c["seed"])
    out = f(c["x0"], c["t"], c["schedule"], generator=g)
    return dict(out=out, next=f(c["x0"], c["t"], c["schedule"], generator=g),
                again=f(c["x0"], c["t"], c["schedule"], generator=generator(c["seed"])))


def _chain_diagnose(outputs, case) -> str | None:
    out, again = outputs["out"], outputs["again"]
    return (_chain_states_hint(out, case) or same_seed_hint(out, again, "chains")
            or fresh_draws_hint(out, outputs.get("next"), "chain"))


def _chain_states_hint(out, case) -> str | None:
    x0, t, schedule = case["x0"].double(), case["t"], case["schedule"]
    if not isinstance(out, Tensor):
        return f"return the states stacked in one tensor of shape {(t + 2, *x0.shape)}, got {type(out).__name__}"
    if out.ndim == x0.ndim and out.shape[0] == (t + 2) * x0.shape[0] and tuple(out.shape[1:]) == tuple(x0.shape[1:]):
        return (f"the states are concatenated into one long batch, shape {tuple(out.shape)} (torch.cat): stack them "
                f"along a new first dimension, torch.stack(states), shape (t + 2, B, ...) = {(t + 2, *x0.shape)}")
    if out.ndim == x0.ndim:
        return (f"return every state, stacked: shape (t + 2, B, ...) = {(t + 2, *x0.shape)}, x0 first and x_t "
                "last, not x_t alone")
    if out.ndim == x0.ndim + 1 and tuple(out.shape[1:]) == tuple(x0.shape) and out.shape[0] != t + 2:
        return (f"{out.shape[0]} states for t = {t}, expected t + 2 = {t + 2}: x0, then one state after each "
                f"of the steps 0..t (code index t is the paper's step t + 1, so reaching it takes t + 1 steps)")
    hint = shape_hint(out, torch.empty(t + 2, *x0.shape), "stack of states")
    if hint:
        return hint
    states = out.double()
    if not torch.allclose(states[0], x0, atol=1e-6):
        return "the first state must be x0 itself, unchanged"
    if t >= 1 and all(torch.equal(states[k], states[-1]) for k in range(1, t + 1)):
        return ("every state after x0 is the same: one tensor updated in place and kept t + 1 times; make a new "
                "tensor at each step (x = a * x + b * eps), or keep a copy (x.clone())")
    n = x0.numel()
    alphas, betas, alpha_bar = (v.double() for v in (schedule.alphas, schedule.betas, schedule.alpha_bar))
    for k in range(1, t + 2):
        i = k - 1                                     # the code index of the step that makes state k
        cur, prev = states[k], states[k - 1]
        hint = _chain_noise_kind_hint(cur - alphas[i].sqrt() * prev, float(betas[i]), i)
        if hint:
            return hint
        # 1. the scale, from the column means: E[x_k] = sqrt(alpha_i) E[x_{k-1}] whatever the noise
        m_cur, m_prev = cur.mean(0), prev.mean(0)
        scale = float((m_cur * m_prev).sum() / (m_prev * m_prev).sum())
        slack = 5 * math.sqrt(float(cur.var(0).mean()) / _CHAIN_N / float((m_prev * m_prev).mean())) + 1e-3
        if abs(scale - math.sqrt(alphas[i])) > slack:
            lead = (f"step {i} scales the previous state by {scale:.3f}, "
                    f"expected sqrt(alpha_{i}) = {alphas[i].sqrt():.3f}")
            if _scales_fit(states, alphas.sqrt()[1:], t):
                return (lead + f" (that is sqrt(alpha_{i + 1})): step i uses alphas[i] and betas[i], "
                        "not those of step i + 1")
            if abs(scale - float(alphas[i])) <= slack:
                return lead + ": the square root is missing on alpha"
            if abs(scale - math.sqrt(alpha_bar[i])) <= slack:
                return lead + ": alpha_bar is for the jump from x0; one step of the chain uses that step's alpha"
            if abs(scale - 1) <= slack:
                return lead + (": the previous state is kept as it is; each step shrinks it by sqrt(alpha_i) "
                               "before adding its noise, x = sqrt(alpha_i) x + sqrt(beta_i) eps")
            return lead
        # 2. the added noise is new: independent of everything before it
        added = cur - alphas[i].sqrt() * prev
        if k > 1:
            centred = prev - m_prev
            corr = float((added * centred).mean() / (added.std() * centred.std()))
            if corr > 5 / math.sqrt(n):
                return (f"the noise step {i} adds is correlated with the previous state (correlation {corr:.2f}): "
                        "draw fresh noise at every step")
            if corr < -5 / math.sqrt(n):
                return (f"the states are not one chain (what step {i} adds is correlated with the previous state, "
                        f"{corr:.2f}): each state must be made from the previous state, not from x0 in one jump")
        # 3. its variance is beta_i
        var = float(added.var())
        if abs(var - float(betas[i])) > 5 * math.sqrt(2 / n) * float(betas[i]) + 1e-4:
            lead = f"step {i} adds noise of variance {var:.4f}, expected beta_{i} = {betas[i]:.4f}"
            if abs(var - float(betas[i]) ** 2) <= 5 * math.sqrt(2 / n) * float(betas[i]) ** 2 + 1e-4:
                return lead + ": the square root is missing on beta (beta is a variance)"
            shrunk = float(alphas[i] * betas[i])
            if abs(var - shrunk) <= 5 * math.sqrt(2 / n) * shrunk + 1e-4:
                return lead + (" (that is alpha_i beta_i): sqrt(alpha_i) multiplies the previous state alone, not "
                               "the noise too: x = sqrt(alpha_i) x + sqrt(beta_i) eps")
            if abs(var - float(alphas[i])) <= 5 * math.sqrt(2 / n) * float(alphas[i]) + 1e-4:
                return lead + (" (that is alpha_i): the noise's coefficient is sqrt(beta_i), the previous state's "
                               "sqrt(alpha_i): x = sqrt(alpha_i) x + sqrt(beta_i) eps")
            return lead
        # 4. it is N(0, beta_i I): one independent normal number per coordinate and per chain
        hint = gaussian_noise_hint(added / math.sqrt(float(betas[i])), f"step {i}")
        if hint:
            return hint
    # 5. the last state against Eq. 4: N(sqrt(alpha_bar_t) x0, (1 - alpha_bar_t) I), per column
    last, a = states[-1], float(alpha_bar[t])
    mean_err = (last.mean(0) - math.sqrt(a) * x0[0]).abs().max()
    var_err = (last.var(0) - (1 - a)).abs().max()
    if mean_err > 5 * math.sqrt((1 - a) / _CHAIN_N) or var_err > 5 * math.sqrt(2 / _CHAIN_N) * (1 - a):
        return (f"x_t = state {t + 1} is not distributed as N(sqrt(alpha_bar_t) x0, (1 - alpha_bar_t) I) (Eq. 4): "
                f"its mean is off by {float(mean_err):.3f}, its variance by {float(var_err):.3f}")
    return None


def _chain_noise_kind_hint(added: Tensor, beta: float, i: int) -> str | None:
    """What step i adds (B, ...) when it cannot be its noise, before the scale is judged (either would make the
    column means, and so the scale, look wrong): one noise shared by every chain (no spread across the chains), or
    noise whose mean is not 0 (torch.rand, uniform on [0, 1)). The cases' two columns start at 1 and -2, so a
    wrong scale shifts their means in opposite directions, and a noise's mean shifts both alike."""
    n = added.shape[0]
    if float(added.var(0).mean()) < 0.05 * beta:
        return (f"step {i} adds the same noise to every chain (the rows of x0): draw noise of x's full shape, "
                "torch.randn(x.shape, generator=generator), one number per chain and coordinate")
    offset, slack = added.mean(0).reshape(-1), 5 * math.sqrt(beta / n)
    if bool((offset > slack).all()) or bool((offset < -slack).all()):
        return (f"the noise step {i} adds has mean {float(offset.mean()) / math.sqrt(beta):.2f} (in units of "
                "sqrt(beta)), not 0: draw standard normal noise, torch.randn (torch.rand is uniform on [0, 1))")
    return None


def _chain_in_place(x0, t, schedule, generator=None):
    """The catalogue's chain that updates one tensor in place and stacks it t + 1 times."""
    x, states = x0.clone(), [x0.clone()]
    for i in range(t + 1):
        x.mul_(schedule.alphas[i].sqrt()).add_(schedule.betas[i].sqrt() * torch.randn(x.shape, generator=generator))
        states.append(x)
    return torch.stack(states)


register(Check("q_sample_chain", "q_sample_chain", _chain_cases, _chain_call, _chain_diagnose))
check_q_sample_chain = visible("q_sample_chain")
def _chain_reseeding_torch(x0, t, schedule, generator=None):
    """Seeds torch's global generator and draws from it: every call gives the same chain, whatever the seed."""
    torch.manual_seed(0)
    return chain_variant()(x0, t, schedule, None)


def _chain_reseeding_generator(x0, t, schedule, generator=None):
    """Reseeds the caller's generator: every call gives the same chain (and the caller's stream restarts)."""
    generator.manual_seed(0)
    return chain_variant()(x0, t, schedule, generator)


MISTAKES["q_sample_chain"] = [
    ("one state short", chain_variant("one short"), "t + 1 steps"),
    ("alpha_bar in every step", chain_variant("alpha_bar per step"), "jump from x0"),
    ("no square roots", chain_variant("no sqrt"), "square root is missing on alpha"),
    ("the previous state not scaled", chain_variant("not scaled"), "the previous state is kept as it is"),
    ("sqrt(alpha) on the noise too", chain_variant("bracket"), "multiplies the previous state alone"),
    ("sqrt(alpha) as the noise's coefficient", chain_variant("alpha on the noise"),
     "the noise's coefficient is sqrt(beta_i)"),
    ("the same noise at every step", chain_variant("same noise"), "fresh noise"),
    ("every state in one jump from x0", chain_variant("independent jumps"), "from the previous state"),
    ("one noise per point", chain_variant("one noise per point"), "one number per coordinate"),
    ("+-1 noise", chain_variant("coin flips"), "not Gaussian"),
    ("three-valued noise with a normal's moments", chain_variant("three points"), "not Gaussian"),
    ("x_t alone", lambda x0, t, schedule, generator=None: chain_variant()(x0, t, schedule, generator)[-1],
     "not x_t alone"),
    ("generator ignored", lambda x0, t, schedule, generator=None: chain_variant()(x0, t, schedule, None),
     "same seed gave different chains"),
    ("torch reseeded at every call", _chain_reseeding_torch, "two calls in a row with one generator"),
    ("the generator reseeded at every call", _chain_reseeding_generator, "two calls in a row with one generator"),
    ("one tensor updated in place", _chain_in_place, "every state after x0 is the same"),
    ("uniform noise (torch.rand)", chain_variant("uniform"), "torch.rand is uniform"),
    ("one noise shared by every chain", chain_variant("shared by the chains"), "the same noise to every chain"),
    ("states concatenated, not stacked", chain_variant("concatenated"), "concatenated into one long batch"),
    ("not implemented", todo, "not implemented yet"),
]
