"""Worksheet 07 (solutions/07_fast_samplers.ipynb): DPM-Solver++(2M), one step and the whole sampler.

- ``dpmpp_2m_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, x0_pred_last=None, alpha_bar_last=None)
  -> (x_prev, x0_pred)``: Lu et al. 2022 (DPM-Solver++), Algorithm 2, the signature of
  ``course_utils.solvers.dpmpp_2m_step``. With DPM-Solver's alpha = sqrt(alpha_bar), sigma = sqrt(1 - alpha_bar)
  and the half log-SNR lambda = log(alpha / sigma):
      x0_pred = (x_t - sigma_t eps_pred) / alpha_t,      h = lambda_prev - lambda_t
      x_prev  = (sigma_prev / sigma_t) x_t - alpha_prev (exp(-h) - 1) D
      D = x0_pred (first order: no x0_pred_last, or the last step, alpha_bar_prev = 1),
      D = (1 + 1 / (2 r)) x0_pred - 1 / (2 r) x0_pred_last,  r = (lambda_t - lambda_last) / h   (otherwise)
- ``dpmpp_2m_sample_loop(model, schedule, x_T, timesteps)``: the sampler around the student's step on a given
  descending grid, keeping each step's x0_pred (and its alpha_bar) for the next step, the last step to
  alpha_bar = 1. Its cases drive it with the exact noise predictor of eight Gaussians (``course_utils.analytic``).

The references recompute everything in float64 from the schedule's betas; each catalogued mistake is a switch.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .framework import (MISTAKES, Check, alpha_bar64, alpha_bar_prev64, close, explain_by, generator, judge,
                        kernel_text,
                        last_target, model_timestep, raised_record, register, shape_hint, todo, visible)

STEP_HINT = ("x_prev = (sigma_prev / sigma_t) x_t - alpha_prev (exp(-h) - 1) D with alpha = sqrt(alpha_bar), "
             "sigma = sqrt(1 - alpha_bar), h = lambda_prev - lambda_t")


def _linear_alpha_bar():
    from ..schedules import NoiseSchedule

    return alpha_bar64(NoiseSchedule.linear(T=1000))


def _lam(a: torch.Tensor, h_from: str) -> torch.Tensor:
    """The step variable: lambda = log(sqrt(a) / sqrt(1 - a)) (right), or what a mix-up puts in its place."""
    if h_from == "log_sigma":
        return -0.5 * torch.log1p(-a)                            # -log sigma: alpha forgotten
    if h_from == "edm_sigma":
        return -((1 - a) / a).sqrt()                             # steps in sigma / alpha, not in its log
    if h_from == "log_snr":
        return torch.log(a) - torch.log1p(-a)                    # the full log-SNR: twice lambda
    if h_from == "log_alpha":
        return 0.5 * torch.log(a)                                # log alpha: sigma forgotten
    return 0.5 * (torch.log(a) - torch.log1p(-a))


def ref_dpmpp_2m_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, x0_pred_last=None, alpha_bar_last=None, *,
                      first="first_order", last="first_order", h_from="lambda", h_sign=1.0, data=True,
                      x_coef="sigma", r_inverted=False, half=True, d_swapped=False, d_alpha="prev", r_fixed=None,
                      r_sign=1.0, last_sign=1.0, d_sign=1.0, r_over_two=False, x0_root=True, h_last_to="t",
                      eps_root=True, clamp=False, history=True, give_d=False):
    """(x_prev, x0_pred) in float64 (DPM-Solver++(2M), Algorithm 2); the switches reproduce the catalogued mistakes
    (``d_sign`` -1: the D term added; ``r_over_two``: r / 2 for D's second 1 / (2 r); ``x0_root`` False: x0_pred
    divided by alpha_bar_t; ``h_last_to`` "prev": h_last measured to this step's target; ``eps_root`` False:
    (1 - alpha_bar_t) eps_pred in x0_pred; ``clamp``: x0_pred clamped to [-1, 1]; ``history`` False: first order
    at every step; ``give_d``: D returned for x0_pred; ``d_alpha`` also "sigma_prev")."""
    a, a_prev = torch.as_tensor(alpha_bar_t).double(), torch.as_tensor(alpha_bar_prev).double()
    x, eps = xt.double(), eps_pred.double()
    x0_pred = (x - ((1 - a).sqrt() if eps_root else 1 - a) * eps) / (a.sqrt() if x0_root else a)
    x0_pred = x0_pred.clamp(-1, 1) if clamp else x0_pred
    if not history:
        x0_pred_last = alpha_bar_last = None
    pred = x0_pred if data else eps                               # the data prediction (right) or the noise's
    h = h_sign * (_lam(a_prev, h_from) - _lam(a, h_from))
    pred_last, a_last = x0_pred_last, alpha_bar_last
    if pred_last is None and first != "first_order":              # "second order" with itself: r = 0
        pred_last, a_last = pred, a
    final = bool((a_prev >= 1).all())
    if pred_last is None or (final and last == "first_order"):
        D = pred
    else:
        h_last = h_sign * (_lam(a_prev if h_last_to == "prev" else a, h_from) - _lam(torch.as_tensor(a_last).double(),
                                                                                      h_from))
        r = h / h_last if r_inverted else r_sign * h_last / h
        r = torch.as_tensor(r_fixed, dtype=torch.float64) if r_fixed is not None else r
        c = 1 / (2 * r) if half else 1 / r
        c_last = r / 2 if r_over_two else c          # (r / 2 in both terms is the inverted r's step)
        last_pred = pred_last.double()
        D = (1 + c) * last_pred - c * pred if d_swapped else (1 + c) * pred - last_sign * c_last * last_pred
    coef = {"sigma": ((1 - a_prev) / (1 - a)).sqrt(), "alpha": (a_prev / a).sqrt(),
            "sigma_squared": (1 - a_prev) / (1 - a), "one_minus_alpha": (1 - a_prev.sqrt()) / (1 - a.sqrt())}[x_coef]
    alpha_d = {"prev": a_prev.sqrt(), "t": a.sqrt(), "prev_squared": a_prev, "sigma_prev": (1 - a_prev).sqrt()}[d_alpha]
    return coef * x - d_sign * alpha_d * torch.expm1(-h) * D, D if give_d else x0_pred


# ------------------------------------------------------------------ dpmpp_2m_step
# (t_last, t, t_prev): t_last = None is the first step (no history), t_prev = -1 the last step to clean data
# the last visible one: a step to t = 0 of the cosine schedule, alpha_bar[0] = 0.99996, which is not clean data (a
# last step told by "alpha_bar_prev > 0.9999" instead of "== 1" passes the linear schedule's 0.99990)
_STEPS = [(None, 999, 722), (999, 722, 302), (722, 302, 30), (5, 0, -1), (30, 5, 0, "cosine")]
_HIDDEN_STEPS = [(30, 5, 0), (None, 999, -1), (600, 500, 400)]


def _step_cases(hidden: bool) -> list:
    from ..schedules import NoiseSchedule

    linear, cosine = _linear_alpha_bar(), alpha_bar64(NoiseSchedule.cosine(T=1000))
    g = generator(17)
    cases = []
    for t_last, t, t_prev, *schedule in _STEPS + (_HIDDEN_STEPS if hidden else []):
        ab = cosine if schedule == ["cosine"] else linear
        shape = (3, 1, 4, 4)
        c = dict(xt=torch.randn(shape, generator=g), eps_pred=torch.randn(shape, generator=g),
                 alpha_bar_t=ab[t].float(), alpha_bar_prev=(ab[t_prev] if t_prev >= 0 else torch.tensor(1.0)).float(),
                 x0_pred_last=None, alpha_bar_last=None, first=t_last is None, final=t_prev < 0)
        if t_last is not None:
            c.update(x0_pred_last=torch.randn(shape, generator=g), alpha_bar_last=ab[t_last].float())
        cases.append(c)
    return cases


def _step_call(f, c):
    """The student's (x_prev, x0_pred); an error at the first step is recorded (it has a hint of its own)."""
    try:
        return dict(out=f(c["xt"], c["eps_pred"], c["alpha_bar_t"], c["alpha_bar_prev"],
                          x0_pred_last=c["x0_pred_last"], alpha_bar_last=c["alpha_bar_last"]))
    except NotImplementedError:
        raise
    except Exception as err:  # noqa: BLE001 - judged by _step_diagnose, never raised in the student's face
        if not c["first"]:
            raise
        return raised_record(err)


FIRST_HINT = ("the first step has no x0_pred_last (None): take the first-order step, D = x0_pred (DDIM), "
              "since there is no previous prediction to extrapolate from")
LAST_HINT = ("the last step goes to clean data (alpha_bar_prev = 1, so lambda_prev = inf and h = inf): take the "
             "first-order step there, D = x0_pred, which gives x_prev = x0_pred")


LAST_STEP_MATH = ("math.log (or a division) got a number outside its domain: at the last step alpha_bar_prev = 1, "
                  "so sigma_prev = 0 and lambda_prev = log(alpha_prev / sigma_prev) is infinite; there take the "
                  "first-order step, x_prev = x0_pred, without computing lambda_prev")


def _step_diagnose(out, c) -> str | None:
    if "raised" in out:     # at the first step: the missing history is the usual cause, not the only one
        said = kernel_text(out["raised"])
        if "NoneType" in said or "None" in said.split(":")[-1]:
            return f"{FIRST_HINT} (yours raised {said})"
        return (f"raised {said} at the first step (no x0_pred_last there: x0_pred_last and alpha_bar_last are None, "
                "and the step is first order, D = x0_pred)")
    out = out["out"]
    if not (isinstance(out, (list, tuple)) and len(out) == 2):
        return "return a tuple (x_prev, x0_pred), like course_utils.solvers.dpmpp_2m_step"
    x_prev, x0_pred = out
    args = (c["xt"], c["eps_pred"], c["alpha_bar_t"], c["alpha_bar_prev"], c["x0_pred_last"], c["alpha_bar_last"])
    ref_prev, ref_x0 = ref_dpmpp_2m_step(*args)
    if not close(ref_prev, ref_x0, 1e-4) and close(x0_pred, ref_prev, 1e-4) and close(x_prev, ref_x0, 1e-4):
        return "the order is swapped: return (x_prev, x0_pred), x_prev first"
    if isinstance(x_prev, torch.Tensor) and x_prev.shape == ref_prev.shape and not torch.isfinite(x_prev).all():
        if c["first"]:
            return FIRST_HINT
        if c["final"]:
            return LAST_HINT
    hint = judge(x_prev, ref_prev, [
        ("DPM-Solver++ extrapolates the data prediction x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps_pred) / "
         "sqrt(alpha_bar_t), not the noise prediction eps_pred", ref_dpmpp_2m_step(*args, data=False)[0]),
        ("wrong sign of h, or of the exponent: h = lambda_prev - lambda_t > 0 (lambda grows towards the data), and "
         "the step's factor is exp(-h) - 1, not exp(h) - 1",
         ref_dpmpp_2m_step(*args, h_sign=-1.0)[0]),
        ("lambda vs sigma mixed up: h is a step in lambda = log(sqrt(alpha_bar) / sqrt(1 - alpha_bar)), "
         "not in sigma = sqrt(1 - alpha_bar) / sqrt(alpha_bar)", ref_dpmpp_2m_step(*args, h_from="edm_sigma")[0]),
        ("lambda vs sigma mixed up: lambda = log(alpha / sigma) = log(sqrt(alpha_bar) / sqrt(1 - alpha_bar)); "
         "you used -log(sigma), without alpha", ref_dpmpp_2m_step(*args, h_from="log_sigma")[0]),
        ("lambda vs alpha mixed up: lambda = log(alpha / sigma) = log(sqrt(alpha_bar) / sqrt(1 - alpha_bar)); "
         "you used log(alpha), without sigma", ref_dpmpp_2m_step(*args, h_from="log_alpha")[0]),
        ("h is twice too large: lambda is HALF the log-SNR, log(alpha / sigma) = 0.5 log(alpha_bar / (1 - "
         "alpha_bar)), not log(alpha_bar / (1 - alpha_bar))", ref_dpmpp_2m_step(*args, h_from="log_snr")[0]),
        ("x_t is scaled by sigma_prev / sigma_t = sqrt(1 - alpha_bar_prev) / sqrt(1 - alpha_bar_t) in "
         "DPM-Solver++ (alpha_prev / alpha_t belongs to the noise-prediction DPM-Solver)",
         ref_dpmpp_2m_step(*args, x_coef="alpha")[0]),
        ("r is the ratio h_last / h (the previous step's size over this one's), not h / h_last",
         ref_dpmpp_2m_step(*args, r_inverted=True)[0]),
        ("the extrapolation is D = (1 + 1 / (2 r)) x0_pred - 1 / (2 r) x0_pred_last: the factor 1/2 is missing",
         ref_dpmpp_2m_step(*args, half=False)[0]),
        ("r is h_last / h, the previous step's size over this one's (in lambda): 1 only on a grid even in lambda",
         ref_dpmpp_2m_step(*args, r_fixed=1.0)[0]),
        ("the sign of h or of h_last (r = h_last / h came out negative): both are steps towards the data, "
         "h = lambda_prev - lambda_t > 0 and h_last = lambda_t - lambda_last > 0, so r > 0",
         ref_dpmpp_2m_step(*args, r_sign=-1.0)[0]),
        ("D's weights are swapped: D = (1 + 1 / (2 r)) x0_pred - 1 / (2 r) x0_pred_last extrapolates from this "
         "step's prediction past the previous one", ref_dpmpp_2m_step(*args, d_swapped=True)[0]),
        ("the D term is multiplied by alpha_prev = sqrt(alpha_bar_prev), the step's target, not by alpha_t",
         ref_dpmpp_2m_step(*args, d_alpha="t")[0]),
        ("D = (1 + 1 / (2 r)) x0_pred - 1 / (2 r) x0_pred_last: the previous prediction is subtracted (the step "
         "extrapolates past it), not added", ref_dpmpp_2m_step(*args, last_sign=-1.0)[0]),
        ("x_t's factor is sigma_prev / sigma_t = sqrt(1 - alpha_bar_prev) / sqrt(1 - alpha_bar_t): the square root "
         "is missing", ref_dpmpp_2m_step(*args, x_coef="sigma_squared")[0]),
        ("the D term's factor is alpha_prev = sqrt(alpha_bar_prev): the square root is missing",
         ref_dpmpp_2m_step(*args, d_alpha="prev_squared")[0]),
        ("the D term's sign: x_prev = (sigma_prev / sigma_t) x_t - alpha_prev (exp(-h) - 1) D, and exp(-h) - 1 < 0, "
         "so the step ADDS alpha_prev (1 - exp(-h)) D; yours subtracts it", ref_dpmpp_2m_step(*args, d_sign=-1.0)[0]),
        ("1 / (2 r) is one over twice r: in Python 1/2*r is r/2, write 1 / (2 * r)",
         ref_dpmpp_2m_step(*args, r_over_two=True)[0]),
        ("x0_pred = (x_t - sigma_t eps_pred) / alpha_t divides by alpha_t = sqrt(alpha_bar_t), not by alpha_bar_t",
         ref_dpmpp_2m_step(*args, x0_root=False)[0]),
        ("h_last = lambda_t - lambda_last, the previous step's size (from the time of x0_pred_last to this step's "
         "t), not lambda_prev - lambda_last", ref_dpmpp_2m_step(*args, h_last_to="prev")[0]),
        ("sigma = sqrt(1 - alpha_bar), not 1 - sqrt(alpha_bar): x_t's factor is sqrt(1 - alpha_bar_prev) / "
         "sqrt(1 - alpha_bar_t)", ref_dpmpp_2m_step(*args, x_coef="one_minus_alpha")[0]),
        (f"alpha_bar_prev = {float(c['alpha_bar_prev']):.5f} is not clean data: only the last step, to "
         "alpha_bar_prev == 1 exactly, is first order; a step to t = 0 still extrapolates with x0_pred_last",
         ref_dpmpp_2m_step(*args, history=False)[0] if not c["final"] and float(c["alpha_bar_prev"]) > 0.999
         else None),
        ("this is DDIM, the first-order step, at every step: where x0_pred_last is given (and alpha_bar_prev < 1), "
         "D = (1 + 1 / (2 r)) x0_pred - 1 / (2 r) x0_pred_last", ref_dpmpp_2m_step(*args, history=False)[0]),
        ("x0_pred is clamped to [-1, 1]: DPM-Solver++ steps with x0_pred = (x_t - sigma_t eps_pred) / alpha_t as it "
         "is (no clamp, no thresholding)", ref_dpmpp_2m_step(*args, clamp=True)[0]),
        ("x0_pred = (x_t - sigma_t eps_pred) / alpha_t with sigma_t = sqrt(1 - alpha_bar_t): the square root is "
         "missing on eps_pred's coefficient", ref_dpmpp_2m_step(*args, eps_root=False)[0]),
        ("the D term is multiplied by alpha_prev = sqrt(alpha_bar_prev), not by sigma_prev (the noise-prediction "
         "DPM-Solver's sigma_prev (exp(h) - 1) eps_pred)", ref_dpmpp_2m_step(*args, d_alpha="sigma_prev")[0]),
    ], "x_prev", f"x_prev differs: {STEP_HINT}")
    return hint or judge(x0_pred, ref_x0, [
        ("x_prev is right, but the second output is D, the extrapolation: return this step's x0_pred = (x_t - sigma_t "
         "eps_pred) / alpha_t, which the next step extrapolates from", ref_dpmpp_2m_step(*args, give_d=True)[1]),
        ("x0_pred = (x_t - sigma_t eps_pred) / alpha_t with sigma_t = sqrt(1 - alpha_bar_t): the square root is "
         "missing on eps_pred's coefficient", ref_dpmpp_2m_step(*args, eps_root=False)[1]),
    ], "x0_pred", "x0_pred differs: x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps_pred) / sqrt(alpha_bar_t)")


def answer_dpmpp_2m_step():
    """A right dpmpp_2m_step (``Check.answer``): lent to a caller's instant check beside a failing one."""
    return dpmpp_step_variant()


register(Check("dpmpp_2m_step", "dpmpp_2m_step", _step_cases, _step_call, _step_diagnose, explain_by(
    ("Boolean value of Tensor with more than one value is ambiguous",
     "test for the first step with `x0_pred_last is None`, not `if not x0_pred_last` (a tensor of several values "
     "has no truth value)"),
    ("math domain error", LAST_STEP_MATH), ("float division by zero", LAST_STEP_MATH)), answer=answer_dpmpp_2m_step))
check_dpmpp_2m_step = visible("dpmpp_2m_step")


def dpmpp_step_variant(*, x_prev_only=False, crash_first=False, **switches):
    """dpmpp_2m_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, x0_pred_last, alpha_bar_last) in float32 with
    mistakes switched on; none: the right one."""
    def dpmpp_2m_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, x0_pred_last=None, alpha_bar_last=None):
        if crash_first and x0_pred_last is None:
            alpha_bar_last.sqrt()                                  # AttributeError: the forgotten first step
        x_prev, x0_pred = ref_dpmpp_2m_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, x0_pred_last, alpha_bar_last,
                                            **switches)
        return x_prev.float() if x_prev_only else (x_prev.float(), x0_pred.float())
    return dpmpp_2m_step


def _dpmpp_last_step_by_threshold(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, x0_pred_last=None,
                                  alpha_bar_last=None):
    """Tells the last step by alpha_bar_prev > 0.9999 instead of == 1: a step to the cosine schedule's t = 0
    (alpha_bar 0.99996) goes first order."""
    if float(alpha_bar_prev) > 0.9999:
        x0_pred_last = alpha_bar_last = None
    return dpmpp_step_variant()(xt, eps_pred, alpha_bar_t, alpha_bar_prev, x0_pred_last=x0_pred_last,
                                alpha_bar_last=alpha_bar_last)


def _step_with_math_log(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, x0_pred_last=None, alpha_bar_last=None):
    """lambda_prev with math.log on Python floats: right until the last step, where sigma_prev = 0 and math.log
    raises "math domain error"."""
    math.log(math.sqrt(float(alpha_bar_prev))) - math.log(math.sqrt(1 - float(alpha_bar_prev)))
    return dpmpp_step_variant()(xt, eps_pred, alpha_bar_t, alpha_bar_prev, x0_pred_last=x0_pred_last,
                                alpha_bar_last=alpha_bar_last)


MISTAKES["dpmpp_2m_step"] = [
    ("last step told by alpha_bar_prev > 0.9999", _dpmpp_last_step_by_threshold,
     "only the last step, to alpha_bar_prev == 1 exactly, is first order"),
    ("first order at every step", dpmpp_step_variant(history=False), "this is DDIM, the first-order step, at every"),
    ("x0_pred clamped", dpmpp_step_variant(clamp=True), "x0_pred is clamped to [-1, 1]"),
    ("(1 - alpha_bar_t) eps_pred in x0_pred", dpmpp_step_variant(eps_root=False),
     "the square root is missing on eps_pred's coefficient"),
    ("sigma_prev on the D term", dpmpp_step_variant(d_alpha="sigma_prev"), "not by sigma_prev"),
    ("D returned for x0_pred", dpmpp_step_variant(give_d=True), "the second output is D, the extrapolation"),
    ("first step not first order (NaN)", dpmpp_step_variant(first="second_order"), "the first step has no"),
    ("first step not first order (crash)", dpmpp_step_variant(crash_first=True), "the first step has no"),
    ("last step not first order", dpmpp_step_variant(last="second_order"), "the last step goes to clean data"),
    ("noise prediction for data prediction", dpmpp_step_variant(data=False), "not the noise prediction"),
    ("wrong sign of h", dpmpp_step_variant(h_sign=-1.0), "wrong sign of h"),
    ("h in sigma", dpmpp_step_variant(h_from="edm_sigma"), "lambda vs sigma"),
    ("lambda without alpha", dpmpp_step_variant(h_from="log_sigma"), "you used -log(sigma), without alpha"),
    ("lambda without sigma", dpmpp_step_variant(h_from="log_alpha"), "you used log(alpha), without sigma"),
    ("full log-SNR for lambda", dpmpp_step_variant(h_from="log_snr"), "HALF the log-SNR"),
    ("alpha ratio on x_t", dpmpp_step_variant(x_coef="alpha"), "belongs to the noise-prediction DPM-Solver"),
    ("r inverted", dpmpp_step_variant(r_inverted=True), "h_last / h"),
    ("factor 1/2 missing", dpmpp_step_variant(half=False), "1/2 is missing"),
    ("previous prediction added", dpmpp_step_variant(last_sign=-1.0), "is subtracted (the step extrapolates"),
    ("sigma ratio without its square root", dpmpp_step_variant(x_coef="sigma_squared"),
     "x_t's factor is sigma_prev / sigma_t"),
    ("alpha_prev without its square root", dpmpp_step_variant(d_alpha="prev_squared"),
     "the D term's factor is alpha_prev"),
    ("returns x_prev only", dpmpp_step_variant(x_prev_only=True), "return a tuple (x_prev, x0_pred)"),
    ("the D term added", dpmpp_step_variant(d_sign=-1.0), "the step ADDS alpha_prev (1 - exp(-h)) D"),
    ("1/2*r in D's second term", dpmpp_step_variant(r_over_two=True), "in Python 1/2*r is r/2"),
    ("x0_pred over alpha_bar_t", dpmpp_step_variant(x0_root=False), "not by alpha_bar_t"),
    ("h_last measured to the target", dpmpp_step_variant(h_last_to="prev"), "not lambda_prev - lambda_last"),
    ("1 - sqrt(alpha_bar) for sigma", dpmpp_step_variant(x_coef="one_minus_alpha"), "not 1 - sqrt(alpha_bar)"),
    ("(x0_pred, x_prev)", lambda *args, **kwargs: dpmpp_step_variant()(*args, **kwargs)[::-1], "order is swapped"),
    ("h and h_last of opposite signs", dpmpp_step_variant(r_sign=-1.0), "the sign of h or of h_last"),
    ("math.log at the last step", _step_with_math_log, "lambda_prev = log(alpha_prev / sigma_prev) is infinite"),
    ("not implemented", todo, "not implemented yet"),
]


# ------------------------------------------------------------------ dpmpp_2m_sample_loop
def _loop_cases(hidden: bool) -> list:
    """(schedule, timesteps, number of points); x_T is fixed per case."""
    from ..schedules import NoiseSchedule

    linear = NoiseSchedule.linear(T=1000)
    # the second visible grid stops at t = 30: a last step to alpha_bar_prev[timesteps[-1]], which is 1 only on a
    # grid that ends at 0, passed the worksheet when both visible grids ended there
    specs = [(linear, [999, 886, 757, 603, 410, 202, 73, 22, 5, 0], 256), (linear, [999, 722, 302, 30], 256)]
    if hidden:
        specs += [(NoiseSchedule.cosine(T=1000), [999, 900, 700, 450, 200, 60, 10, 0], 128),
                  (linear, [900, 500, 100], 128)]
    g = generator(19)
    return [dict(schedule=schedule, timesteps=timesteps, x_T=torch.randn(n, 2, generator=g))
            for schedule, timesteps, n in specs]


def mixture_model(schedule):
    """The exact noise predictor eps*(x_t, t) of eight Gaussians under ``schedule`` (course_utils.analytic)."""
    from ..analytic import GaussianMixtureEps
    from ..data import EIGHT_GAUSSIANS

    return GaussianMixtureEps(EIGHT_GAUSSIANS, schedule)


def ref_dpmpp_loop(model, schedule, x_T, timesteps, *, history="keep", last="one", t_arg="t", t_dtype=torch.long,
                   full_chain_prev=False, prev_by_index=False):
    """DPM-Solver++(2M) on ``timesteps`` in float64 with the reference step; the switches reproduce the catalogued
    mistakes of the loop (``full_chain_prev``: each step to alpha_bar_prev[t], the full chain's next step;
    ``prev_by_index``: to alpha_bar[k + 1], the loop index taken for a timestep)."""
    alpha_bar, full_chain = alpha_bar64(schedule), alpha_bar_prev64(schedule) if full_chain_prev else None
    x, x0_pred_last, alpha_bar_last = x_T.double(), None, None
    for k, t in enumerate(timesteps):
        if full_chain is not None:
            a_prev = full_chain[t]
        elif k + 1 < len(timesteps):
            a_prev = alpha_bar[k + 1] if prev_by_index else alpha_bar[timesteps[k + 1]]
        elif last == "prev_of_last":        # alpha_bar_prev[t] of the full chain: 1 only at t = 0
            a_prev = alpha_bar[t - 1] if t > 0 else torch.ones((), dtype=alpha_bar.dtype)
        else:
            a_prev = last_target(alpha_bar, last)
        eps_pred = model(x, torch.full((len(x),), model_timestep(t, k, t_arg), dtype=t_dtype))
        x, x0_pred = ref_dpmpp_2m_step(x, eps_pred, alpha_bar[t], a_prev, x0_pred_last, alpha_bar_last)
        if history != "none":                   # "x": the new x_t handed on in place of the data prediction
            x0_pred_last = x if history == "x" else x0_pred
            alpha_bar_last = alpha_bar[t] if history in ("keep", "x") else a_prev
    return x


class _GridModel(nn.Module):
    """The exact model as the worksheet's loop must call it: t an int64 tensor of shape (N,) (a clear error
    otherwise, as the worksheet's networks would give one), and the number of calls counted."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.calls, self.timesteps, self.first_x, self.same_x = model, 0, [], None, True

    def forward(self, xt: Tensor, t: Tensor) -> Tensor:
        N = xt.shape[0]
        if not isinstance(t, Tensor) or tuple(t.shape) != (N,) or t.dtype != torch.long:
            got = (f"a tensor of shape {tuple(t.shape)} and dtype {t.dtype}" if isinstance(t, Tensor)
                   else type(t).__name__)
            raise ValueError(f"model(x, t): t must be an int64 tensor of shape ({N},), one timestep per point "
                             f"(torch.full((N,), t, dtype=torch.long)), got {got}")
        self.calls += 1
        self.timesteps.append(int(t[0]) if N else -1)
        if self.first_x is None:
            self.first_x = xt.detach().clone()
        else:
            self.same_x = self.same_x and tuple(xt.shape) == tuple(self.first_x.shape) and torch.equal(xt, self.first_x)
        return self.model(xt, t)


def _loop_call(f, c):
    model = _GridModel(mixture_model(c["schedule"]))
    return dict(x0=f(model, c["schedule"], c["x_T"], c["timesteps"]), calls=model.calls,   # the case's own list:
                asked=model.timesteps, same_x=model.same_x and model.calls > 1)     # call_case sees it changed


def _loop_diagnose(record, c) -> str | None:
    out, calls = record["x0"], record["calls"]
    args = (mixture_model(c["schedule"]), c["schedule"], c["x_T"], c["timesteps"])
    ref = ref_dpmpp_loop(*args)
    steps = len(c["timesteps"])
    if isinstance(calls, int) and calls != steps:
        return (f"the model was called {calls} times for {steps} grid timesteps: one call per step, at each t of "
                "the grid (the last step, from the grid's last t to clean data, needs its call too)"
                if calls < steps else
                f"the model was called {calls} times for {steps} grid timesteps: one call per step (DPM-Solver++(2M) "
                "reuses the previous step's x0_pred instead of a second call)")
    if isinstance(out, torch.Tensor) and out.shape == ref.shape and not torch.isfinite(out).all() \
            and not torch.isfinite(ref_dpmpp_loop(*args, history="target")).all():
        return ("NaN or inf in the samples, as when a step's lambda is that of alpha_bar = 1 (infinite): "
                "alpha_bar_last must be the alpha_bar at which x0_pred_last was predicted (this step's alpha_bar_t, "
                "kept for the next step), not the alpha_bar it steps to; and alpha_bar_t is schedule.alpha_bar[t] "
                "(schedule.alpha_bar_prev[t] is 1 at t = 0)")
    hint = shape_hint(out, ref, "x0")
    if hint:
        return hint
    if close(out, ref, 1e-3):
        return None
    asked, grid = record.get("asked"), list(c["timesteps"])
    if asked == grid[::-1]:
        return (f"the model was asked at t = {', '.join(map(str, asked[:3]))}, ...: the grid runs from noise to data, "
                f"{', '.join(map(str, grid[:3]))}, ... as given (the sampler starts at x_T, the noisiest time)")
    if record.get("same_x"):
        return ("the model got the same x at every step, x_T: call it on the current x, the x_prev the previous step "
                "returned")
    for mistake_hint, switches in [
        ("the previous x0_pred never reaches the next step: keep the x0_pred each step returns (and its alpha_bar_t) "
         "and pass them as x0_pred_last, alpha_bar_last; without them DPM-Solver++(2M) is only DDIM",
         dict(history="none")),
        ("the last step goes to clean data, alpha_bar_prev = 1: in Python alpha_bar[-1] is the LAST entry "
         "(alpha_bar_{T-1}, almost 0), not 'the one before t = 0'", dict(last="python_last")),
        ("the last step must go to alpha_bar_prev = 1 (clean data), not to alpha_bar[0]", dict(last="first")),
        ("the last step must go to alpha_bar_prev = 1 (clean data), torch.tensor(1.0): the full chain's "
         "alpha_bar_prev[t] is 1 only when the grid ends at t = 0 (this one ends at "
         f"{c['timesteps'][-1]})", dict(last="prev_of_last") if c["timesteps"][-1] > 0 else None),
        ("call the model with the timestep t of the grid, not with the loop index", dict(t_arg="k")),
        ("call the model with the timestep t of the grid (the x it is given is x_t), not with t - 1",
         dict(t_arg="t-1")),
        ("x0_pred_last is the data prediction the previous step returned (its second output), not the x it "
         "stepped to", dict(history="x")),
        ("each step goes to the NEXT GRID time, alpha_bar[timesteps[k + 1]] (1 after the last), not to "
         "alpha_bar_prev[t], the full chain's next step: on a grid of few steps the solver jumps",
         dict(full_chain_prev=True)),
        # steps to alpha_bar[1], almost clean data, from t = 999 and back again: float32 drifts from float64 by
        # 3e-3 on samples of size 0.45 (measured); the right loop's samples are 1.3 away from them
        ("each step goes to alpha_bar at the next grid TIMESTEP, alpha_bar[timesteps[k + 1]], not alpha_bar[k + 1] "
         "(k is the loop index)", dict(prev_by_index=True, tol=1e-2)),
    ]:
        if switches is None:            # a mistake this case cannot show
            continue
        tol = switches.pop("tol", 1e-3)
        if close(out, ref_dpmpp_loop(*args, **switches), tol):
            return mistake_hint
    return ("the samples differ from the reference DPM-Solver++(2M) loop. If your dpmpp_2m_step passes its check, "
            "look at what the loop hands it: the model called at each grid timestep t, x0_pred_last = the x0_pred "
            "the previous step returned, alpha_bar_last = that step's alpha_bar_t, and 1 as the last alpha_bar_prev")


register(Check("dpmpp_2m_sample_loop", "dpmpp_2m_sample_loop", _loop_cases, _loop_call, _loop_diagnose, explain_by(
    ("list index out of range",
     "after the last timestep of the grid there is no timesteps[k + 1]: the last step goes to clean data, "
     "alpha_bar_prev = torch.tensor(1.0)"),
    ("'NoneType' object has no attribute",
     "pass x0_pred_last together with alpha_bar_last, the alpha_bar of the step that made it (both None at the "
     "first step)"),
    ("'float' object has no attribute",
     "dpmpp_2m_step got a Python number where it expects a tensor: hand it the alpha_bar values as tensors "
     "(schedule.alpha_bar[t], torch.tensor(1.0) at the end), not .item() or float() of them")),
               calls=("dpmpp_2m_step",)))
check_dpmpp_2m_sample_loop = visible("dpmpp_2m_sample_loop")


def dpmpp_loop_variant(**switches):
    """dpmpp_2m_sample_loop(model, schedule, x_T, timesteps) in float32 with mistakes switched on; none: right."""
    def dpmpp_2m_sample_loop(model, schedule, x_T, timesteps):
        return ref_dpmpp_loop(model, schedule, x_T, timesteps, **switches).float()
    return dpmpp_2m_sample_loop


def _loop_twice_per_step(model, schedule, x_T, timesteps):
    """Right samples, with a second (wasted) network call at every step."""
    def twice(x, t):
        model(x, t)
        return model(x, t)
    return ref_dpmpp_loop(twice, schedule, x_T, timesteps).float()


def _loop_one_step_short(model, schedule, x_T, timesteps):
    """``for k in range(len(timesteps) - 1)``: stops at the grid's last t, one step before clean data."""
    alpha_bar = alpha_bar64(schedule)
    x, x0_pred_last, alpha_bar_last = x_T.double(), None, None
    for k in range(len(timesteps) - 1):
        t = timesteps[k]
        eps_pred = model(x, torch.full((len(x),), t, dtype=torch.long))
        x, x0_pred = ref_dpmpp_2m_step(x, eps_pred, alpha_bar[t], alpha_bar[timesteps[k + 1]], x0_pred_last,
                                       alpha_bar_last)
        x0_pred_last, alpha_bar_last = x0_pred, alpha_bar[t]
    return x.float()


def _loop_float_alphas(model, schedule, x_T, timesteps):
    """Hands the step Python numbers, alpha_bar[t].item(): a step written for tensors (alpha_bar_t.sqrt()) raises
    "'float' object has no attribute 'sqrt'"."""
    def step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, **history):
        alpha_bar_t.sqrt(), alpha_bar_prev.sqrt()                   # written for tensors, as the worksheet's is
        return dpmpp_step_variant()(xt, eps_pred, alpha_bar_t, alpha_bar_prev, **history)

    x, x0_pred_last, alpha_bar_last = x_T, None, None
    for k, t in enumerate(timesteps):
        t = int(t)
        eps_pred = model(x, torch.full((len(x),), t, dtype=torch.long))
        prev = schedule.alpha_bar[int(timesteps[k + 1])].item() if k + 1 < len(timesteps) else 1.0
        x, x0_pred = step(x, eps_pred, schedule.alpha_bar[t].item(), prev, x0_pred_last=x0_pred_last,
                          alpha_bar_last=alpha_bar_last)
        x0_pred_last, alpha_bar_last = x0_pred, schedule.alpha_bar[t].item()
    return x


def _loop_model_on_x_T(model, schedule, x_T, timesteps):
    """``model(x_T, t)`` at every step (a typo for the current x)."""
    return ref_dpmpp_loop(lambda x, t: model(x_T, t), schedule, x_T, timesteps).float()


MISTAKES["dpmpp_2m_sample_loop"] = [
    ("two network calls per step", _loop_twice_per_step, "reuses the previous step's x0_pred"),
    ("one step short", _loop_one_step_short, "needs its call too"),
    ("timesteps as floats", dpmpp_loop_variant(t_dtype=torch.float32), "must be an int64 tensor"),
    ("history never passed", dpmpp_loop_variant(history="none"), "never reaches the next step"),
    ("alpha_bar_last = the target's", dpmpp_loop_variant(history="target"), "alpha_bar_last must be"),
    ("alpha_bar[-1] at the last step", dpmpp_loop_variant(last="python_last"), "alpha_bar[-1] is the LAST entry"),
    ("last step to alpha_bar[0]", dpmpp_loop_variant(last="first"), "not to alpha_bar[0]"),
    ("last step to the full chain's alpha_bar_prev", dpmpp_loop_variant(last="prev_of_last"),
     "is 1 only when the grid ends at t = 0"),
    ("loop index as timestep", dpmpp_loop_variant(t_arg="k"), "not with the loop index"),
    ("the full chain's alpha_bar_prev", dpmpp_loop_variant(full_chain_prev=True), "the NEXT GRID time"),
    ("alpha_bar of the loop index", dpmpp_loop_variant(prev_by_index=True), "not alpha_bar[k + 1]"),
    ("grid run backwards", lambda model, schedule, x_T, timesteps: ref_dpmpp_loop(
        model, schedule, x_T, timesteps[::-1]).float(), "the grid runs from noise to data"),
    ("the model always given x_T", _loop_model_on_x_T, "the same x at every step"),
    ("alpha_bar values as Python numbers", _loop_float_alphas, "got a Python number where it expects a tensor"),
    ("samples in float64", lambda model, schedule, x_T, timesteps: ref_dpmpp_loop(model, schedule, x_T, timesteps),
     "the x0 is float64: return float32"),
    ("the caller's list of timesteps extended", lambda model, schedule, x_T, timesteps: (
        ref_dpmpp_loop(model, schedule, x_T, timesteps).float(),
        timesteps.append(-1) if isinstance(timesteps, list) else None)[0], "(a list) in place"),
    ("not implemented", todo, "not implemented yet"),
]
