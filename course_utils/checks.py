"""Instant feedback for the worksheets, and the verdicts the grader trusts.

A ``Check`` runs a student's function (or class) on small fixed inputs and compares the outputs with the
course's reference. It is split in two so that grading can compute the verdict outside the student's process:

- ``harvest(name, obj)`` runs INSIDE the student's kernel: it only calls the student's object on the
  check's cases and returns the raw outputs (tensors, lists and dicts of tensors, or an error record).
- ``verdict(name, outputs)`` runs in the grader (or in the notebook, for instant feedback): it recomputes
  the reference itself, from the case and the outputs only (float64 formulas written out in this file, not
  the functions of ``course_utils.forward`` or ``samplers``, which a student could monkeypatch), and turns
  the outputs into ``CheckResult(passed, message)``, with a hint for each catalogued mistake.

Stochastic functions take their noise as an argument (``ddpm_step(..., noise)``), so every output is
deterministic. Modules are checked by construction: ``call`` seeds torch, builds the student's module, runs
it and returns its output together with its ``state_dict``; ``diagnose`` rebuilds the reference with those
weights. ``MISTAKES`` catalogues, for each check, wrong implementations and the hint each must trigger
(tests/test_checks.py feeds every one of them to its check; docs/mistakes.md lists them for people).

In a worksheet, a visible check cell calls ``check_<name>(student_obj)``, which prints one line:
"✅ ..." on a pass, "❌ ...: <hint>" on a wrong answer, "⏳ ... not implemented yet" for an untouched TODO.
It never raises for a wrong answer. Cells that need a TODO guard themselves with ``ready(name, obj)``.
"""
from __future__ import annotations

import math
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import schedules
from .schedules import NoiseSchedule

PASS, FAIL, TODO = "✅", "❌", "⏳"


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    message: str
    status: str = "fail"   # "pass", "fail", "not_implemented", "error"

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Check:
    """How to test one TODO.

    name:     the check's name; the worksheet's graded cell carries ``{"course": {"check": name}}``
    target:   the name the student's object has in the notebook (function or class)
    cases:    cases(hidden) -> list of dicts of inputs (CPU tensors from fixed seeds); hidden adds more
    call:     call(obj, case) -> outputs; runs in the student's process, must not judge anything
    diagnose: diagnose(outputs, case) -> None when right, else a one-line hint; computes the reference itself
    """

    name: str
    target: str
    cases: Callable[[bool], list]
    call: Callable[[Any, dict], Any]
    diagnose: Callable[[Any, dict], str | None]


CHECKS: dict[str, Check] = {}
# name -> [(mistake id, a wrong implementation, a substring its hint must contain)]: the catalogue the tests use
MISTAKES: dict[str, list[tuple[str, Callable, str]]] = {}


def register(check: Check) -> Check:
    CHECKS[check.name] = check
    return check


def harvest(name: str, obj: Any, *, hidden: bool = True) -> list:
    """The student's outputs on every case: a tensor structure, or {"error": type, "message": text}."""
    check = CHECKS[name]
    results = []
    for case in check.cases(hidden):
        try:
            out = check.call(obj, {k: (v.clone() if isinstance(v, Tensor) else v) for k, v in case.items()})
            results.append(_detach(out))
        except NotImplementedError:
            results.append({"error": "NotImplementedError", "message": "not implemented yet"})
        except Exception as err:  # noqa: BLE001 - any student error becomes a message, never a traceback
            frame = traceback.extract_tb(err.__traceback__)[-1]
            results.append({"error": type(err).__name__, "message": f"{err} (line {frame.lineno})"})
    return results


def verdict(name: str, outputs: list, *, hidden: bool = True) -> CheckResult:
    """Judge harvested outputs against the reference; the message names the first problem and a hint."""
    check = CHECKS[name]
    cases = check.cases(hidden)
    label = f"{check.target}"
    if len(outputs) != len(cases):
        return CheckResult(False, f"{FAIL} {label}: expected {len(cases)} results, got {len(outputs)}", "error")
    for out in outputs:
        if _is_error(out) and out.get("error") == "NotImplementedError":
            return CheckResult(False, f"{TODO} {label}: not implemented yet", "not_implemented")
    for i, (out, case) in enumerate(zip(outputs, cases)):
        if _is_error(out):
            return CheckResult(False, f"{FAIL} {label}: raised {out['error']}: {out['message']}", "error")
        try:
            hint = check.diagnose(out, case)
        except Exception as err:  # noqa: BLE001 - malformed outputs (wrong type, wrong structure)
            hint = f"could not compare your output with the reference ({type(err).__name__}: {err})"
        if hint:
            return CheckResult(False, f"{FAIL} {label}: {hint}", "fail")
    return CheckResult(True, f"{PASS} {label}: correct", "pass")


def run_check(name: str, obj: Any, *, hidden: bool = False) -> CheckResult:
    """harvest + verdict in one process: the instant feedback of a worksheet."""
    return verdict(name, harvest(name, obj, hidden=hidden), hidden=hidden)


class Outcome:
    """What a visible check returns: truthy when it passed. It displays nothing as a cell's last expression
    (the printed line is the feedback), so a check cell shows one line, not an extra "True"/"False"."""

    __slots__ = ("result",)

    def __init__(self, result: CheckResult):
        self.result = result

    def __bool__(self) -> bool:
        return self.result.passed

    def __repr__(self) -> str:
        return f"Outcome(passed={self.result.passed})"

    def _ipython_display_(self) -> None:  # IPython: display nothing
        return None


def report(name: str, obj: Any) -> Outcome:
    """Print the one-line result of the visible check ``name`` on ``obj``; return whether it passed (truthy)."""
    result = run_check(name, obj)
    print(result.message)
    return Outcome(result)


def ready(name: str, obj: Any, what: str = "this cell") -> bool:
    """Guard for cells that need a TODO: True when ``obj`` passes check ``name``, else prints why it skips."""
    result = run_check(name, obj)
    if not result.passed:
        reason = "is not implemented yet" if result.status == "not_implemented" else "does not pass its check yet"
        print(f"{TODO} skipped {what}: {CHECKS[name].target} {reason}")
    return result.passed


def _is_error(out) -> bool:
    return isinstance(out, dict) and "error" in out and "message" in out


def _detach(out):
    if isinstance(out, Tensor):
        return out.detach().cpu().clone()
    if isinstance(out, dict):
        return {str(k): _detach(v) for k, v in out.items()}
    if isinstance(out, (tuple, list)):
        return [_detach(o) for o in out]
    if isinstance(out, (int, float, bool, str)) or out is None:
        return out
    raise TypeError(f"expected tensors (or tuples of tensors), got {type(out).__name__}")


# ------------------------------------------------------------------ helpers for diagnose functions
def shape_hint(out, ref: Tensor, what: str = "output") -> str | None:
    if not isinstance(out, Tensor):
        return f"the {what} should be a torch.Tensor, got {type(out).__name__}"
    if tuple(out.shape) != tuple(ref.shape):
        return f"wrong shape: the {what} has shape {tuple(out.shape)}, expected {tuple(ref.shape)}"
    if not torch.isfinite(out).all():
        return f"the {what} contains NaN or inf"
    return None


def close(a: Tensor, b: Tensor, tol: float = 1e-4) -> bool:
    return bool(torch.allclose(a.double(), b.double(), atol=tol, rtol=tol))


def _judge(out, ref: Tensor, variants: list, what: str = "output", generic: str | None = None) -> str | None:
    """None if ``out`` matches ``ref``; else the hint of the first known mistake it matches, else a generic hint."""
    hint = shape_hint(out, ref, what)
    if hint:
        return hint
    if close(out, ref):
        return None
    for mistake_hint, wrong in variants:
        if wrong is not None and tuple(wrong.shape) == tuple(ref.shape) and close(out, wrong):
            return mistake_hint
    return generic or f"the {what} differs from the reference (max abs difference {_maxdiff(out, ref):.3g})"


def _maxdiff(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def _todo(*args, **kwargs):
    raise NotImplementedError()


class _Todo(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        raise NotImplementedError()


# ------------------------------------------------------------------ reference quantities, float64
def _abar(schedule: NoiseSchedule) -> Tensor:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s), recomputed from the betas in float64."""
    return torch.cumprod(1 - schedule.betas.double().cpu(), 0)


def _abar_prev(schedule: NoiseSchedule) -> Tensor:
    """alpha_bar_{t-1}, with 1 before the first step."""
    return torch.cat([torch.ones(1, dtype=torch.float64), _abar(schedule)[:-1]])


def _at(values: Tensor, t: Tensor, ndim: int) -> Tensor:
    """values[t] as (B, 1, ..., 1)."""
    return values[t.long()].reshape(-1, *([1] * (ndim - 1)))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _small_schedule() -> NoiseSchedule:
    return NoiseSchedule.linear(T=50, beta_start=1e-3, beta_end=0.1)


# ================================================================== 01: schedules
def ref_linear_betas(T, beta_start=1e-4, beta_end=0.02) -> Tensor:
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def ref_cosine_betas(T, s=0.008, max_beta=0.999, *, square=True, clip=True) -> Tensor:
    steps = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos(((steps / T + s) / (1 + s)) * math.pi / 2) ** (2 if square else 1)
    alpha_bar = f / f[0]
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(max=max_beta) if clip else betas


def _beta_cases(defaults: dict, extra: dict) -> Callable[[bool], list]:
    def cases(hidden: bool) -> list:
        out = [dict(T=10, kwargs={})]
        if hidden:
            out += [dict(T=1000, kwargs={}), dict(T=7, kwargs=extra)]
        return out
    return cases


def _linear_diagnose(out, case) -> str | None:
    ref = ref_linear_betas(case["T"], **case["kwargs"])
    wrong_end = ref[0] + (ref[-1] - ref[0]) * torch.arange(case["T"], dtype=torch.float64) / case["T"]
    return _judge(out, ref, [
        ("you returned alphas = 1 - betas: beta vs alpha confused (betas grow from beta_start to beta_end)", 1 - ref),
        ("you returned alpha_bar (the cumulative product); return the betas themselves", torch.cumprod(1 - ref, 0)),
        ("the last beta must equal beta_end: torch.linspace(beta_start, beta_end, T) includes both ends", wrong_end),
    ], "betas", "betas must be evenly spaced from beta_start (first) to beta_end (last), T values")


register(Check("linear_beta_schedule", "linear_beta_schedule", _beta_cases({}, dict(beta_start=0.01, beta_end=0.3)),
               lambda f, c: f(c["T"], **c["kwargs"]), _linear_diagnose))
MISTAKES["linear_beta_schedule"] = [
    ("alphas instead of betas", lambda T, beta_start=1e-4, beta_end=0.02: 1 - torch.linspace(beta_start, beta_end, T),
     "beta vs alpha"),
    ("misses the last value", lambda T, beta_start=1e-4, beta_end=0.02:
        beta_start + (beta_end - beta_start) * torch.arange(T) / T, "last beta must equal beta_end"),
    ("wrong shape", lambda T, beta_start=1e-4, beta_end=0.02: torch.linspace(beta_start, beta_end, T)[None],
     "wrong shape"),
    ("not implemented", _todo, "not implemented yet"),
]


def _upside_down_cosine(T, s=0.008, max_beta=0.999):
    f = torch.cos(((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s)) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return (1 - alpha_bar[:-1] / alpha_bar[1:]).clamp(max=max_beta).float()


def _cosine_diagnose(out, case) -> str | None:
    T, kw = case["T"], case["kwargs"]
    ref = ref_cosine_betas(T, **kw)
    if isinstance(out, Tensor) and out.shape == ref.shape and (out < 0).any():
        return "some betas are negative: beta_t = 1 - alpha_bar(t+1) / alpha_bar(t), the ratio is upside down"
    f = torch.cos(((torch.arange(T + 1, dtype=torch.float64) / T + kw.get("s", 0.008)) / (1 + kw.get("s", 0.008)))
                  * math.pi / 2) ** 2
    return _judge(out, ref, [
        ("betas above max_beta: clip them, betas.clamp(max=max_beta) (the last beta would be 1)",
         ref_cosine_betas(T, **kw, clip=False)),
        ("f(t) is cos SQUARED: f(t) = cos^2(((t/T + s) / (1 + s)) * pi / 2)", ref_cosine_betas(T, **kw, square=False)),
        ("you returned alpha_bar = f(t) / f(0); return betas: beta_t = 1 - alpha_bar(t+1) / alpha_bar(t)",
         (f / f[0])[1:]),
        ("the offset s is missing: f(t) = cos^2(((t/T + s) / (1 + s)) * pi / 2)",
         ref_cosine_betas(T, 0.0, kw.get("max_beta", 0.999))),
    ], "betas")


register(Check("cosine_beta_schedule", "cosine_beta_schedule", _beta_cases({}, dict(s=0.02, max_beta=0.9)),
               lambda f, c: f(c["T"], **c["kwargs"]), _cosine_diagnose))
MISTAKES["cosine_beta_schedule"] = [
    ("no clipping", lambda T, s=0.008, max_beta=0.999: ref_cosine_betas(T, s, max_beta, clip=False), "clip"),
    ("cos not squared", lambda T, s=0.008, max_beta=0.999: ref_cosine_betas(T, s, max_beta, square=False),
     "cos SQUARED"),
    ("ratio upside down", lambda T, s=0.008, max_beta=0.999: _upside_down_cosine(T, s, max_beta), "upside down"),
    ("no offset s", lambda T, s=0.008, max_beta=0.999: ref_cosine_betas(T, 0.0, max_beta), "offset s"),
    ("not implemented", _todo, "not implemented yet"),
]


# ------------------------------------------------------------------ diffusion_schedule (the lab's, and worksheet 01)
def ref_diffusion_schedule(t: Tensor, min_signal_rate=0.02, max_signal_rate=0.95):
    """(noise_rates, signal_rates): angle linear in t from arccos(max_signal_rate) to arccos(min_signal_rate)."""
    t = t.double()
    start, end = math.acos(max_signal_rate), math.acos(min_signal_rate)
    angles = start + t * (end - start)
    return torch.sin(angles), torch.cos(angles)


def _schedule_cases(hidden: bool) -> list:
    cases = [dict(diffusion_times=torch.linspace(0, 1, 11), kwargs={}),
             dict(diffusion_times=torch.linspace(0, 1, 5), kwargs=dict(min_signal_rate=0.1, max_signal_rate=0.9))]
    if hidden:
        g = torch.Generator().manual_seed(1)
        cases.append(dict(diffusion_times=torch.rand(4, 1, 1, 1, generator=g), kwargs={}))
    return cases


def _schedule_diagnose(out, case) -> str | None:
    if not isinstance(out, (list, tuple)) or len(out) != 2:
        return "return a tuple (noise_rates, signal_rates)"
    noise, signal = out
    ref_noise, ref_signal = ref_diffusion_schedule(case["diffusion_times"], **case["kwargs"])
    for o, r, what in [(noise, ref_noise, "noise_rates"), (signal, ref_signal, "signal_rates")]:
        hint = shape_hint(o, r, what)
        if hint:
            return hint
    if close(noise, ref_signal) and close(signal, ref_noise):
        return "noise and signal are swapped: return (noise_rates, signal_rates), noise = sin(angle)"
    if not close(noise ** 2 + signal ** 2, torch.ones_like(noise), 1e-3):
        return "signal_rates**2 + noise_rates**2 != 1: use cos and sin of the same angle"
    if close(signal.flip(0), ref_signal) if signal.ndim == 1 else False:
        return "the schedule runs backwards: at t = 0 the signal rate must be max_signal_rate (0.95)"
    if not (close(noise, ref_noise) and close(signal, ref_signal)):
        return ("values differ from the reference: the angle must go linearly from arccos(max_signal_rate) "
                "at t = 0 to arccos(min_signal_rate) at t = 1")
    return None


register(Check("diffusion_schedule", "diffusion_schedule", _schedule_cases,
               lambda f, c: f(c["diffusion_times"], **c["kwargs"]), _schedule_diagnose))


def _swapped_schedule(t, min_signal_rate=0.02, max_signal_rate=0.95):
    n, s = schedules.diffusion_schedule(t, min_signal_rate, max_signal_rate)
    return s, n


def _linear_rates(t, min_signal_rate=0.02, max_signal_rate=0.95):
    signal = max_signal_rate + t * (min_signal_rate - max_signal_rate)
    return (1 - signal ** 2).sqrt(), signal


def _backwards_schedule(t, min_signal_rate=0.02, max_signal_rate=0.95):
    return schedules.diffusion_schedule(1 - t, min_signal_rate, max_signal_rate)


def _no_arccos_schedule(t, min_signal_rate=0.02, max_signal_rate=0.95):
    angles = max_signal_rate + t * (min_signal_rate - max_signal_rate)
    return torch.sin(angles), torch.cos(angles)


def _ignores_arguments(t, min_signal_rate=0.02, max_signal_rate=0.95):
    return schedules.diffusion_schedule(t)


MISTAKES["diffusion_schedule"] = [
    ("swapped", _swapped_schedule, "swapped"),
    ("signal linear in t", _linear_rates, "linearly"),
    ("backwards", _backwards_schedule, "backwards"),
    ("arccos forgotten", _no_arccos_schedule, "arccos"),
    ("ignores min/max_signal_rate", _ignores_arguments, "arccos(min_signal_rate)"),
    ("returns one tensor", lambda t, min_signal_rate=0.02, max_signal_rate=0.95: t, "return a tuple"),
    ("not implemented", _todo, "not implemented yet"),
]


# ================================================================== 02: the forward process
def _forward_cases(hidden: bool) -> list:
    g = _gen(2)
    cases = [dict(x0=torch.randn(4, 1, 5, 5, generator=g), t=torch.tensor([0, 7, 23, 49]),
                  eps=torch.randn(4, 1, 5, 5, generator=g), schedule=_small_schedule())]
    if hidden:
        cases.append(dict(x0=torch.randn(6, 2, generator=g), t=torch.randint(0, 100, (6,), generator=g),
                          eps=torch.randn(6, 2, generator=g), schedule=NoiseSchedule.cosine(T=100)))
    return cases


def ref_q_sample(x0, t, eps, schedule, *, abar=None, sqrt=True):
    a = _at(_abar(schedule) if abar is None else abar, t, x0.ndim)
    if sqrt:
        return a.sqrt() * x0.double() + (1 - a).sqrt() * eps.double()
    return a * x0.double() + (1 - a) * eps.double()


def _q_sample_diagnose(out, c) -> str | None:
    x0, t, eps, s = c["x0"], c["t"], c["eps"], c["schedule"]
    a = _at(_abar(s), t, x0.ndim)
    return _judge(out, ref_q_sample(x0, t, eps, s), [
        ("the square root is forgotten on alpha_bar: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps",
         ref_q_sample(x0, t, eps, s, sqrt=False)),
        ("x0 and eps are swapped: x0 gets sqrt(alpha_bar_t), the noise gets sqrt(1 - alpha_bar_t)",
         (1 - a).sqrt() * x0.double() + a.sqrt() * eps.double()),
        ("t off by one: you used alpha_bar[t-1] (alpha_bar_prev); code index t uses alpha_bar[t]",
         ref_q_sample(x0, t, eps, s, abar=_abar_prev(s))),
        ("use alpha_bar (the cumulative product), not alpha_t = 1 - beta_t",
         ref_q_sample(x0, t, eps, s, abar=1 - s.betas.double())),
    ], "x_t")


register(Check("q_sample", "q_sample", _forward_cases, lambda f, c: f(c["x0"], c["t"], c["eps"], c["schedule"]),
               _q_sample_diagnose))
MISTAKES["q_sample"] = [
    ("no sqrt", lambda x0, t, eps, s: s.gather(s.alpha_bar, t, x0.ndim) * x0
     + s.gather(1 - s.alpha_bar, t, x0.ndim) * eps, "square root"),
    ("swapped", lambda x0, t, eps, s: s.gather(s.sqrt_one_minus_alpha_bar, t, x0.ndim) * x0
     + s.gather(s.sqrt_alpha_bar, t, x0.ndim) * eps, "swapped"),
    ("t off by one", lambda x0, t, eps, s: s.gather(s.alpha_bar_prev, t, x0.ndim).sqrt() * x0
     + (1 - s.gather(s.alpha_bar_prev, t, x0.ndim)).sqrt() * eps, "off by one"),
    ("alpha instead of alpha_bar", lambda x0, t, eps, s: s.gather(s.alphas, t, x0.ndim).sqrt() * x0
     + s.gather(s.betas, t, x0.ndim).sqrt() * eps, "cumulative product"),
    ("no broadcasting", lambda x0, t, eps, s: (s.sqrt_alpha_bar[t] * x0.flatten(1).T).T, "wrong shape"),
    ("not implemented", _todo, "not implemented yet"),
]


def ref_q_posterior(x0, xt, t, schedule, *, shift=False, sqrt=True):
    a, a_prev = _abar(schedule), _abar_prev(schedule)
    if shift:  # everything one step early
        a, a_prev = a_prev, torch.cat([torch.ones(1, dtype=torch.float64), a_prev[:-1]])
    betas = 1 - a / a_prev
    n = x0.ndim
    root = torch.sqrt if sqrt else (lambda v: v)
    coef_x0 = _at(root(a_prev) * betas / (1 - a).clamp(min=1e-12), t, n)
    coef_xt = _at(root(1 - betas) * (1 - a_prev) / (1 - a).clamp(min=1e-12), t, n)
    var = _at((1 - a_prev) / (1 - a).clamp(min=1e-12) * betas, t, n)
    return coef_x0 * x0.double() + coef_xt * xt.double(), var, coef_x0, coef_xt


def _posterior_cases(hidden: bool) -> list:
    cases = _forward_cases(hidden)
    g = _gen(3)
    for c in cases:
        c["xt"] = ref_q_sample(c["x0"], c["t"], c.pop("eps"), c["schedule"]).float() + 0.1 * torch.randn(
            c["x0"].shape, generator=g)
    return cases


def _q_posterior_diagnose(out, c) -> str | None:
    if not isinstance(out, (list, tuple)) or len(out) != 2:
        return "return a tuple (mean, variance)"
    mean, var = out
    x0, xt, t, s = c["x0"], c["xt"], c["t"], c["schedule"]
    ref_mean, ref_var, cx0, cxt = ref_q_posterior(x0, xt, t, s)
    hint = _judge(mean, ref_mean, [
        ("the coefficients of x0 and xt are swapped (see DDPM Eq. 7)", cxt * x0.double() + cx0 * xt.double()),
        ("a square root is forgotten: sqrt(alpha_bar_{t-1}) multiplies x0 and sqrt(alpha_t) multiplies xt",
         ref_q_posterior(x0, xt, t, s, sqrt=False)[0]),
        ("t off by one: you used alpha_bar[t-1] where alpha_bar[t] belongs (alpha_bar_prev is alpha_bar[t-1])",
         ref_q_posterior(x0, xt, t, s, shift=True)[0]),
    ], "mean")
    if hint:
        return hint
    if not isinstance(var, Tensor):
        return f"the variance should be a torch.Tensor of shape (B, 1, ..., 1), got {type(var).__name__}"
    try:
        var_full = torch.broadcast_to(var, x0.shape)
    except RuntimeError:
        return f"wrong shape: the variance has shape {tuple(var.shape)}; return shape (B, 1, ..., 1) = {tuple(ref_var.shape)}"
    full = lambda v: torch.broadcast_to(v, x0.shape)  # noqa: E731
    betas = _at(s.betas.double(), t, x0.ndim)
    return _judge(var_full, full(ref_var), [
        ("the variance is the posterior variance tilde beta_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t, "
         "not beta_t", full(betas)),
        ("return the variance tilde beta_t, not the standard deviation", full(ref_var.sqrt())),
        ("t off by one in the variance: alpha_bar[t-1] is alpha_bar_prev[t]",
         full(ref_q_posterior(x0, xt, t, s, shift=True)[1])),
    ], "variance")


register(Check("q_posterior", "q_posterior", _posterior_cases,
               lambda f, c: f(c["x0"], c["xt"], c["t"], c["schedule"]), _q_posterior_diagnose))


def _posterior_from_ref(**kw):
    def f(x0, xt, t, s):
        mean, var, _, _ = ref_q_posterior(x0, xt, t, s, **kw)
        return mean.float(), var.float()
    return f


def _posterior_swapped(x0, xt, t, s):
    _, var, cx0, cxt = ref_q_posterior(x0, xt, t, s)
    return (cxt * x0 + cx0 * xt).float(), var.float()


def _posterior_beta_var(x0, xt, t, s):
    mean, _, _, _ = ref_q_posterior(x0, xt, t, s)
    return mean.float(), s.gather(s.betas, t, x0.ndim)


MISTAKES["q_posterior"] = [
    ("swapped coefficients", _posterior_swapped, "swapped"),
    ("no sqrt", _posterior_from_ref(sqrt=False), "square root"),
    ("t off by one", _posterior_from_ref(shift=True), "off by one"),
    ("beta_t as variance", _posterior_beta_var, "not beta_t"),
    ("std instead of variance", lambda x0, xt, t, s: (lambda m, v: (m, v.sqrt()))(*_posterior_from_ref()(x0, xt, t, s)),
     "not the standard deviation"),
    ("variance of shape (B,)", lambda x0, xt, t, s: (lambda m, v: (m, v.flatten()))(*_posterior_from_ref()(x0, xt, t, s)),
     "(B, 1, ..., 1)"),
    ("not implemented", _todo, "not implemented yet"),
]


def ref_predict_x0(xt, t, eps, schedule):
    a = _at(_abar(schedule), t, xt.ndim)
    return (xt.double() - (1 - a).sqrt() * eps.double()) / a.sqrt()


def _predict_x0_cases(hidden: bool) -> list:
    cases = _forward_cases(hidden)
    for c in cases:
        c["xt"] = ref_q_sample(c.pop("x0"), c["t"], c["eps"], c["schedule"]).float()
    return cases


def _predict_x0_diagnose(out, c) -> str | None:
    xt, t, eps, s = c["xt"], c["t"], c["eps"], c["schedule"]
    a, a_prev = _at(_abar(s), t, xt.ndim), _at(_abar_prev(s), t, xt.ndim)
    return _judge(out, ref_predict_x0(xt, t, eps, s), [
        ("wrong sign: x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)",
         (xt.double() + (1 - a).sqrt() * eps.double()) / a.sqrt()),
        ("the square root is forgotten on alpha_bar", (xt.double() - (1 - a) * eps.double()) / a),
        ("divide by sqrt(alpha_bar_t), don't multiply", (xt.double() - (1 - a).sqrt() * eps.double()) * a.sqrt()),
        ("t off by one: you used alpha_bar[t-1] (alpha_bar_prev); code index t uses alpha_bar[t]",
         (xt.double() - (1 - a_prev).sqrt() * eps.double()) / a_prev.sqrt()),
    ], "x0_pred")


register(Check("predict_x0", "predict_x0", _predict_x0_cases, lambda f, c: f(c["xt"], c["t"], c["eps"], c["schedule"]),
               _predict_x0_diagnose))
MISTAKES["predict_x0"] = [
    ("wrong sign", lambda xt, t, eps, s: (xt + s.gather(s.sqrt_one_minus_alpha_bar, t, xt.ndim) * eps)
     / s.gather(s.sqrt_alpha_bar, t, xt.ndim), "wrong sign"),
    ("multiplies", lambda xt, t, eps, s: (xt - s.gather(s.sqrt_one_minus_alpha_bar, t, xt.ndim) * eps)
     * s.gather(s.sqrt_alpha_bar, t, xt.ndim), "divide"),
    ("not implemented", _todo, "not implemented yet"),
]


# ================================================================== 03: the network's pieces
def ref_sinusoidal(t: Tensor, dim: int, max_period: float = 10000.0, *, order="sin_cos", denom=None) -> Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / (denom or half))
    args = t.double()[:, None] * freqs[None, :]
    if order == "interleave":
        return torch.stack([torch.sin(args), torch.cos(args)], dim=-1).reshape(t.shape[0], 2 * half)
    parts = [torch.sin(args), torch.cos(args)]
    return torch.cat(parts if order == "sin_cos" else parts[::-1], dim=-1)


def _embedding_cases(hidden: bool) -> list:
    cases = [dict(t=torch.tensor([0, 1, 5, 999]), dim=16, kwargs={})]
    if hidden:
        cases += [dict(t=torch.tensor([0.5, 3.0, 42.0]), dim=32, kwargs={}),
                  dict(t=torch.tensor([2, 17]), dim=8, kwargs=dict(max_period=100.0))]
    return cases


def _embedding_diagnose(out, c) -> str | None:
    t, dim, kw = c["t"], c["dim"], c["kwargs"]
    return _judge(out, ref_sinusoidal(t, dim, **kw), [
        ("sin first, then cos: torch.cat([sin(args), cos(args)], dim=-1)",
         ref_sinusoidal(t, dim, **kw, order="cos_sin")),
        ("concatenate the sin block and the cos block, don't interleave them",
         ref_sinusoidal(t, dim, **kw, order="interleave")),
        ("frequencies: w_i = max_period ** (-i / (dim / 2)) for i = 0..dim/2-1 (divide by half = dim // 2)",
         ref_sinusoidal(t, dim, **kw, denom=dim)),
    ], "embedding")


register(Check("sinusoidal_embedding", "sinusoidal_embedding", _embedding_cases,
               lambda f, c: f(c["t"], c["dim"], **c["kwargs"]), _embedding_diagnose))


def _embedding_variant(**kw):
    return lambda t, dim, max_period=10000.0: ref_sinusoidal(t, dim, max_period, **kw).float()


MISTAKES["sinusoidal_embedding"] = [
    ("cos first", _embedding_variant(order="cos_sin"), "sin first"),
    ("interleaved", _embedding_variant(order="interleave"), "interleave"),
    ("frequencies over dim", lambda t, dim, max_period=10000.0: ref_sinusoidal(t, dim, max_period, denom=dim).float(),
     "frequencies"),
    ("no batch broadcasting", lambda t, dim, max_period=10000.0: ref_sinusoidal(t, dim, max_period).float()[0],
     "wrong shape"),
    ("not implemented", _todo, "not implemented yet"),
]


def _mlp_ref(emb: Tensor, st: dict) -> Tensor:
    h = F.linear(emb, st["mlp.0.weight"].double(), st["mlp.0.bias"].double())
    return F.linear(F.silu(h), st["mlp.2.weight"].double(), st["mlp.2.bias"].double())


def _time_module_cases(hidden: bool) -> list:
    cases = [dict(seed=0, dim=16, out_dim=32, t=torch.tensor([0, 10, 500, 999]))]
    if hidden:
        cases.append(dict(seed=1, dim=8, out_dim=12, t=torch.tensor([3, 3, 7])))
    return cases


def _time_module_call(cls, c):
    torch.manual_seed(c["seed"])
    module = cls(c["dim"], c["out_dim"])
    return dict(out=module(c["t"]), state=module.state_dict())


def _time_module_diagnose(out, c) -> str | None:
    st = out["state"]
    missing = [k for k in ("mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias") if k not in st]
    if missing:
        return f"keep the given __init__ (self.mlp = Linear, SiLU, Linear); missing weights {missing}"
    emb = ref_sinusoidal(c["t"], c["dim"])
    ref = _mlp_ref(emb, st)
    if isinstance(out["out"], Tensor) and tuple(out["out"].shape) == tuple(emb.shape) and c["dim"] != c["out_dim"]:
        return f"the output has shape {tuple(emb.shape)}: pass the sinusoidal features through self.mlp"
    return _judge(out["out"], ref, [
        ("the MLP must see the sinusoidal features: self.mlp(sinusoidal_embedding(t, self.dim))",
         _mlp_ref(c["t"].double()[:, None].expand(-1, c["dim"]), st)),
    ], "time embedding", "differs from self.mlp(sinusoidal_embedding(t, self.dim)); "
                         "does your sinusoidal_embedding pass its check?")


register(Check("SinusoidalTimeEmbedding", "SinusoidalTimeEmbedding", _time_module_cases, _time_module_call,
               _time_module_diagnose))


class _RefTimeEmbedding(nn.Module):
    """The worksheet's SinusoidalTimeEmbedding, for the tests (same __init__, right forward)."""

    variant = ""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: Tensor) -> Tensor:
        if self.variant == "raw_t":
            return self.mlp(t.float()[:, None].expand(-1, self.dim))
        emb = ref_sinusoidal(t, self.dim, order="cos_sin" if self.variant == "cos_sin" else "sin_cos").float()
        return emb if self.variant == "skip_mlp" else self.mlp(emb)


def _time_embedding_variant(kind: str):
    return type("WrongTimeEmbedding", (_RefTimeEmbedding,), {"variant": kind})


MISTAKES["SinusoidalTimeEmbedding"] = [
    ("MLP skipped", _time_embedding_variant("skip_mlp"), "self.mlp"),
    ("raw t into the MLP", _time_embedding_variant("raw_t"), "must see the sinusoidal features"),
    ("a wrong sinusoidal_embedding", _time_embedding_variant("cos_sin"), "does your sinusoidal_embedding pass"),
    ("not implemented", _Todo, "not implemented yet"),
]


def _resblock_ref(x, temb, st, groups, *, temb_where="after_conv1", silu_temb=True, skip=True) -> Tensor:
    d = {k: v.double() for k, v in st.items()}
    x, temb = x.double(), temb.double()
    proj = F.linear(F.silu(temb) if silu_temb else temb, d["temb_proj.weight"], d["temb_proj.bias"])[:, :, None, None]
    h = F.conv2d(F.silu(F.group_norm(x, groups, d["norm1.weight"], d["norm1.bias"])), d["conv1.weight"],
                 d["conv1.bias"], padding=1)
    if temb_where == "after_conv1":
        h = h + proj
    h = F.conv2d(F.silu(F.group_norm(h, groups, d["norm2.weight"], d["norm2.bias"])), d["conv2.weight"],
                 d["conv2.bias"], padding=1)
    if temb_where == "end":
        h = h + proj
    if not skip:
        return h
    res = F.conv2d(x, d["skip.weight"], d["skip.bias"]) if "skip.weight" in d else x
    return res + h


def _resblock_cases(hidden: bool) -> list:
    g = _gen(4)
    cases = [dict(seed=0, in_ch=8, out_ch=16, temb_dim=6, groups=4, x=torch.randn(2, 8, 6, 6, generator=g),
                  temb=torch.randn(2, 6, generator=g), temb2=torch.randn(2, 6, generator=g))]
    if hidden:
        cases.append(dict(seed=1, in_ch=8, out_ch=8, temb_dim=5, groups=4, x=torch.randn(3, 8, 4, 5, generator=g),
                          temb=torch.randn(3, 5, generator=g), temb2=torch.randn(3, 5, generator=g)))
    return cases


def _resblock_call(cls, c):
    torch.manual_seed(c["seed"])
    block = cls(c["in_ch"], c["out_ch"], c["temb_dim"], groups=c["groups"])
    return dict(out=block(c["x"], c["temb"]), out2=block(c["x"], c["temb2"]), state=block.state_dict())


def _resblock_diagnose(out, c) -> str | None:
    st, g = out["state"], c["groups"]
    need = ["norm1.weight", "conv1.weight", "temb_proj.weight", "norm2.weight", "conv2.weight"]
    if any(k not in st for k in need):
        return "keep the given __init__ (norm1, conv1, temb_proj, norm2, conv2, skip)"
    ref = _resblock_ref(c["x"], c["temb"], st, g)
    hint = shape_hint(out["out"], ref, "output")
    if hint:
        return hint
    if close(out["out"], out["out2"], 1e-6):
        return "the time embedding has no effect: add temb_proj(SiLU(temb)) per channel to h"
    args = (c["x"], c["temb"], st, g)
    return _judge(out["out"], ref, [
        ("the residual connection is missing: return self.skip(x) + h", _resblock_ref(*args, skip=False)),
        ("add the time embedding after the first convolution (before norm2), not at the end",
         _resblock_ref(*args, temb_where="end")),
        ("apply SiLU to temb before temb_proj: self.temb_proj(F.silu(temb))", _resblock_ref(*args, silu_temb=False)),
    ], "output", "differs from skip(x) + conv2(SiLU(norm2(conv1(SiLU(norm1(x))) + temb_proj(SiLU(temb)))))")


register(Check("ResBlock", "ResBlock", _resblock_cases, _resblock_call, _resblock_diagnose))


class _RefResBlock(nn.Module):
    """The worksheet's ResBlock (same __init__), with a switchable forward for the catalogue of mistakes."""

    variant: dict = {}

    def __init__(self, in_ch: int, out_ch: int, temb_dim: int, *, groups: int = 8):
        super().__init__()
        self.groups = groups
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb_proj = nn.Linear(temb_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        if self.variant.get("no_temb"):
            temb = torch.zeros_like(temb)
        return _resblock_ref(x, temb, self.state_dict(), self.groups,
                             **{k: v for k, v in self.variant.items() if k != "no_temb"}).float()


def _resblock_variant(**kw):
    return type("WrongResBlock", (_RefResBlock,), {"variant": kw})


MISTAKES["ResBlock"] = [
    ("time embedding ignored", _resblock_variant(no_temb=True), "no effect"),
    ("no residual", _resblock_variant(skip=False), "residual"),
    ("time embedding at the end", _resblock_variant(temb_where="end"), "after the first convolution"),
    ("no SiLU on temb", _resblock_variant(silu_temb=False), "SiLU to temb"),
    ("not implemented", _Todo, "not implemented yet"),
]


# ================================================================== 04: training
class TinyEps(nn.Module):
    """A tiny noise predictor for the checks: eps = W2 tanh(W1 [x, t/T] (+ class embedding)) + b2, any (B, ...)."""

    def __init__(self, dim: int, T: int, num_classes: int | None = None, hidden: int = 8):
        super().__init__()
        self.T, self.num_classes = T, num_classes
        self.inp = nn.Linear(dim + 1, hidden)
        self.out = nn.Linear(hidden, dim)
        self.emb = nn.Embedding(num_classes + 1, hidden) if num_classes else None

    def forward(self, xt: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        B = xt.shape[0]
        if not isinstance(t, Tensor) or tuple(t.shape) != (B,):
            raise ValueError(f"model(xt, t): t must be a tensor of shape ({B},), one timestep per example")
        h = self.inp(torch.cat([xt.reshape(B, -1), t.to(xt.dtype)[:, None] / self.T], dim=1))
        if self.emb is not None:
            y = torch.full((B,), -1, dtype=torch.long) if y is None else y.long()
            h = h + self.emb(torch.where(y < 0, torch.full_like(y, self.num_classes), y))
        return self.out(torch.tanh(h)).reshape(xt.shape)


def _tiny(c, state=None) -> TinyEps:
    model = TinyEps(c["x0"][0].numel(), c["schedule"].T, c.get("num_classes"))
    if state is not None:
        model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.double()


def _loss_cases(hidden: bool, num_classes: int | None = None) -> list:
    g = _gen(5)
    s = _small_schedule()
    cases = [dict(seed=0, x0=torch.randn(8, 2, generator=g), t=torch.randint(0, 50, (8,), generator=g),
                  eps=torch.randn(8, 2, generator=g), schedule=s)]
    if hidden:
        cases.append(dict(seed=1, x0=torch.randn(3, 1, 3, 3, generator=g), t=torch.tensor([0, 25, 49]),
                          eps=torch.randn(3, 1, 3, 3, generator=g), schedule=s))
    for c in cases:
        if num_classes:
            B = c["x0"].shape[0]
            c.update(num_classes=num_classes, y=torch.randint(0, num_classes, (B,), generator=g),
                     drop=torch.arange(B) % 3 == 1)
    return cases


def _loss_call(f, c):
    torch.manual_seed(c["seed"])
    model = TinyEps(c["x0"][0].numel(), c["schedule"].T, c.get("num_classes"))
    if "y" in c:
        loss = f(model, c["x0"], c["y"], c["t"], c["eps"], c["drop"], c["schedule"])
    else:
        loss = f(model, c["x0"], c["t"], c["eps"], c["schedule"])
    if not isinstance(loss, Tensor):
        return dict(loss=float(loss), grads=None, state=model.state_dict())
    grads = None
    if loss.requires_grad and loss.numel() == 1:
        grads = [g if g is not None else torch.zeros_like(p)
                 for g, p in zip(torch.autograd.grad(loss, list(model.parameters()), allow_unused=True),
                                 model.parameters())]
    return dict(loss=loss, grads=grads, state=model.state_dict())


def ref_loss(c, state, *, target="eps", feed="xt", reduction="mean", sqrt=True, labels="dropped"):
    """L_simple on the case's batch with the tiny model rebuilt from ``state``; returns (loss, grads)."""
    model = _tiny(c, state)
    x0, eps = c["x0"].double(), c["eps"].double()
    xt = ref_q_sample(x0, c["t"], eps, c["schedule"], sqrt=sqrt) if feed == "xt" else x0
    args = ()
    if "y" in c:
        y, drop = c["y"], c["drop"]
        chosen = {"dropped": torch.where(drop, -1, y), "inverted": torch.where(drop, y, -1), "kept": y,
                  "zero": torch.where(drop, 0, y)}[labels]
        args = (chosen,)
    pred = model(xt, c["t"], *args)
    loss = F.mse_loss(pred, eps if target == "eps" else x0, reduction=reduction)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return loss.detach(), grads


def _loss_diagnose(out, c) -> str | None:
    loss, grads, st = out["loss"], out["grads"], out["state"]
    if not isinstance(loss, Tensor):
        return ("return the loss as a tensor connected to the model (don't call .item() or float(); "
                "the training step needs loss.backward())")
    if loss.numel() != 1:
        return f"the loss must be a scalar (a mean over the batch), got shape {tuple(loss.shape)}"
    if grads is None:
        return "the loss does not require grad: don't .detach() it or compute it under torch.no_grad()"
    ref, ref_grads = ref_loss(c, st)
    variants = [("the target is the noise eps, not x0", dict(target="x0")),
                ("feed the noisy x_t to the model, not the clean x0", dict(feed="x0")),
                ("average over the batch (F.mse_loss's default reduction='mean'), not a sum", dict(reduction="sum")),
                ("the square root is forgotten on alpha_bar when noising x0", dict(sqrt=False))]
    if "y" in c:
        variants = [("the dropout mask is inverted: replace the labels by -1 (null class) where drop is True",
                     dict(labels="inverted")),
                    ("the labels are never dropped: y = torch.where(drop, -1, y)", dict(labels="kept")),
                    ("the null class is -1, not 0: y = torch.where(drop, -1, y)", dict(labels="zero"))] + variants
    if not close(loss.reshape(()), ref):
        for hint, kw in variants:
            if close(loss.reshape(()), ref_loss(c, st, **kw)[0]):
                return hint
        return f"the loss is {float(loss):.5f}, expected {float(ref):.5f}: MSE between model(x_t, t) and eps"
    for g, r in zip(grads, ref_grads):
        if not close(g, r, 1e-3):
            return "the loss value is right but its gradients are not: is part of it detached?"
    return None


register(Check("diffusion_loss", "diffusion_loss", _loss_cases, _loss_call, _loss_diagnose))


def _loss_variant(**kw):
    def f(model, x0, t, eps, s):
        a = s.gather(s.alpha_bar, t, x0.ndim)
        xt = (a.sqrt() if kw.get("sqrt", True) else a) * x0 + ((1 - a).sqrt() if kw.get("sqrt", True) else 1 - a) * eps
        pred = model(xt if kw.get("feed", "xt") == "xt" else x0, t)
        target = x0 if kw.get("target") == "x0" else eps
        loss = F.mse_loss(pred, target, reduction=kw.get("reduction", "mean"))
        return loss.item() if kw.get("item") else loss
    return f


MISTAKES["diffusion_loss"] = [
    ("target x0", _loss_variant(target="x0"), "target is the noise"),
    ("feeds x0", _loss_variant(feed="x0"), "noisy x_t"),
    ("sum", _loss_variant(reduction="sum"), "average over the batch"),
    ("no sqrt", _loss_variant(sqrt=False), "square root"),
    (".item()", _loss_variant(item=True), ".item()"),
    ("not implemented", _todo, "not implemented yet"),
]


def _train_step_cases(hidden: bool) -> list:
    cases = []
    for c in _loss_cases(True)[: 2 if hidden else 1]:
        g = _gen(6 + c["seed"])
        c.update(x0_2=torch.randn(c["x0"].shape, generator=g), eps_2=torch.randn(c["eps"].shape, generator=g),
                 t_2=c["t"].flip(0), lr=0.1)
        cases.append(c)
    return cases


def _train_step_call(f, c):
    torch.manual_seed(c["seed"])
    model = TinyEps(c["x0"][0].numel(), c["schedule"].T)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=c["lr"])
    losses = [f(model, optimizer, c["x0"], c["t"], c["eps"], c["schedule"]),
              f(model, optimizer, c["x0_2"], c["t_2"], c["eps_2"], c["schedule"])]
    losses = [float(v) if isinstance(v, (Tensor, float, int)) else None for v in losses]
    return dict(losses=losses, before=before, after=model.state_dict())


def _train_step_diagnose(out, c) -> str | None:
    before, after = out["before"], out["after"]
    if all(close(before[k], after[k], 1e-9) for k in before):
        return "the weights did not change: call loss.backward() and then optimizer.step()"
    names = list(before)
    model = _tiny(c, before)
    params = list(model.parameters())
    refs, grads_seen, accum = [], [], [torch.zeros_like(p) for p in params]
    for x0, t, eps in [(c["x0"], c["t"], c["eps"]), (c["x0_2"], c["t_2"], c["eps_2"])]:
        xt = ref_q_sample(x0, t, eps, c["schedule"])
        loss = F.mse_loss(model(xt, t), eps.double())
        grads = torch.autograd.grad(loss, params)
        refs.append(float(loss.detach()))
        grads_seen.append(grads)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= c["lr"] * g
    ref_after = dict(zip(names, params))
    if all(close(after[k], ref_after[k], 1e-4) for k in names):
        losses = out["losses"]
        if any(v is None for v in losses):
            return "return the loss (a float, loss.item(), or the loss tensor)"
        if not all(math.isclose(v, r, rel_tol=1e-3, abs_tol=1e-5) for v, r in zip(losses, refs)):
            return f"the weights are right but the returned losses {losses} differ from {refs}: return this batch's loss"
        return None
    accumulated = {k: before[k].double() - c["lr"] * grads_seen[0][i] * 2 - c["lr"] * grads_seen[1][i]
                   for i, k in enumerate(names)}
    if all(close(after[k], accumulated[k], 1e-4) for k in names):
        return "gradients accumulate across steps: call optimizer.zero_grad() before loss.backward()"
    return "the weights after two steps differ from SGD on diffusion_loss: zero_grad, backward, step, in that order"


register(Check("training_step", "training_step", _train_step_cases, _train_step_call, _train_step_diagnose))


def _train_step_variant(zero_grad=True, step=True):
    def f(model, optimizer, x0, t, eps, s):
        if zero_grad:
            optimizer.zero_grad()
        loss = _loss_variant()(model, x0, t, eps, s)
        loss.backward()
        if step:
            optimizer.step()
        return loss.item()
    return f


MISTAKES["training_step"] = [
    ("no zero_grad", _train_step_variant(zero_grad=False), "zero_grad"),
    ("no optimizer.step", _train_step_variant(step=False), "optimizer.step()"),
    ("not implemented", _todo, "not implemented yet"),
]


# ================================================================== 05: samplers
def _sampler_cases(hidden: bool, ddim: bool = False) -> list:
    g = _gen(7)
    s = _small_schedule()
    steps = [(49, 39, 0.0), (49, 39, 1.0), (9, -1, 0.0), (30, 29, 0.5)] if ddim else [(49,), (5,), (0,)]
    if hidden:
        steps += [(20, 10, 1.0), (0, -1, 1.0)] if ddim else [(1,), (30,)]
    cases = []
    for step in steps:
        shape = (3, 1, 4, 4)
        c = dict(xt=torch.randn(shape, generator=g), t=step[0], eps_pred=torch.randn(shape, generator=g),
                 schedule=s, noise=torch.randn(shape, generator=g), noise2=torch.randn(shape, generator=g))
        if ddim:
            c.update(t_prev=step[1], eta=step[2])
        cases.append(c)
    return cases


def ref_ddpm_step(xt, t, eps, s, noise, *, last_noise=False, sigma="beta", alpha="alpha", sqrt=True, sign=-1.0,
                  shift=0):
    a_bar, betas = _abar(s), s.betas.double()
    a_bar_prev = _abar_prev(s)
    i = t - shift
    ab = a_bar[i] if i >= 0 else torch.tensor(1.0, dtype=torch.float64)
    ab_prev = a_bar_prev[i] if i >= 0 else torch.tensor(1.0, dtype=torch.float64)
    beta = 1 - ab / ab_prev
    al = (1 - beta) if alpha == "alpha" else ab
    root = (1 - ab).sqrt() if sqrt else (1 - ab)
    mean = (xt.double() + sign * beta / root.clamp(min=1e-12) * eps.double()) / al.sqrt()
    var = (1 - ab_prev) / (1 - ab).clamp(min=1e-12) * beta
    std = {"posterior": var.sqrt(), "var": beta, "beta": beta.sqrt()}[sigma]
    return mean + std * noise.double() if (t > 0 or last_noise) else mean


def _ddpm_diagnose(out, c) -> str | None:
    args = (c["xt"], c["t"], c["eps_pred"], c["schedule"], c["noise"])
    return _judge(out, ref_ddpm_step(*args), [
        ("noise added at the last step: at t = 0 return the mean, without sigma * noise",
         ref_ddpm_step(*args, last_noise=True)),
        ("wrong sign: x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) + sigma_t z",
         ref_ddpm_step(*args, sign=1.0)),
        ("divide by sqrt(alpha_t), not sqrt(alpha_bar_t): beta vs alpha_bar confused", ref_ddpm_step(*args, alpha="abar")),
        ("the square root is forgotten on (1 - alpha_bar_t)", ref_ddpm_step(*args, sqrt=False)),
        ("sigma_t is the standard deviation: multiply the noise by sqrt(beta_t), not by beta_t",
         ref_ddpm_step(*args, sigma="var")),
        ("this worksheet uses sigma_t^2 = beta_t (DDPM Algorithm 2), not the posterior variance tilde beta_t",
         ref_ddpm_step(*args, sigma="posterior")),
        ("t off by one: you used the quantities of step t-1 (alpha_bar[t-1]); step t uses alpha_bar[t], betas[t]",
         ref_ddpm_step(*args, shift=1)),
    ], "x_{t-1}")


def _with_two_noises(f, c, *args):
    """The student's output with the case's noise, and again with a second noise (to test determinism)."""
    first = f(*args, c["noise"])
    return dict(out=first, out2=f(*args, c["noise2"]))


register(Check("ddpm_step", "ddpm_step", _sampler_cases,
               lambda f, c: f(c["xt"], c["t"], c["eps_pred"], c["schedule"], c["noise"]), _ddpm_diagnose))


def _ddpm_variant(**kw):
    return lambda xt, t, eps, s, noise: ref_ddpm_step(xt, t, eps, s, noise, **kw).float()


MISTAKES["ddpm_step"] = [
    ("noise at the last step", _ddpm_variant(last_noise=True), "noise added at the last step"),
    ("wrong sign", _ddpm_variant(sign=1.0), "wrong sign"),
    ("alpha_bar for alpha", _ddpm_variant(alpha="abar"), "beta vs alpha_bar"),
    ("no sqrt on 1 - alpha_bar", _ddpm_variant(sqrt=False), "square root"),
    ("variance as sigma", _ddpm_variant(sigma="var"), "standard deviation"),
    ("posterior variance as sigma^2", _ddpm_variant(sigma="posterior"), "sigma_t^2 = beta_t"),
    ("t off by one", _ddpm_variant(shift=1), "off by one"),
    ("not implemented", _todo, "not implemented yet"),
]


def ref_ddim_step(xt, t, t_prev, eps, s, eta, noise, *, use_eta=True, sigma2_in_dir=True, alpha="abar", sqrt=True,
                  wrap_prev=False):
    a_bar = _abar(s) if alpha == "abar" else 1 - s.betas.double()
    ab = a_bar[t]
    ab_prev = a_bar[t_prev] if (t_prev >= 0 or wrap_prev) else torch.tensor(1.0, dtype=torch.float64)
    root = torch.sqrt if sqrt else (lambda v: v)
    x0_pred = (xt.double() - root(1 - ab) * eps.double()) / root(ab)
    sigma = (eta if use_eta else 1.0) * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).clamp(min=0).sqrt()
    direction = (1 - ab_prev - (sigma ** 2 if sigma2_in_dir else 0)).clamp(min=0).sqrt() * eps.double()
    return ab_prev.sqrt() * x0_pred + direction + sigma * noise.double()


def _ddim_diagnose(out, c) -> str | None:
    args = (c["xt"], c["t"], c["t_prev"], c["eps_pred"], c["schedule"], c["eta"], c["noise"])
    if not isinstance(out, dict):
        return "internal: unexpected output"
    if c["eta"] == 0 and isinstance(out["out"], Tensor) and isinstance(out["out2"], Tensor) \
            and not close(out["out"], out["out2"], 1e-6):
        return "not deterministic at eta = 0: sigma_t = eta * sqrt(...) must vanish, so the noise has no effect"
    ref_moves = not close(ref_ddim_step(*args), ref_ddim_step(*args[:-1], c["noise2"]), 1e-6)
    if ref_moves and isinstance(out["out"], Tensor) and isinstance(out["out2"], Tensor) \
            and close(out["out"], out["out2"], 1e-6):
        return ("eta is ignored: with eta > 0 the step adds sigma_t * noise, sigma_t = eta * "
                "sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev)")
    return _judge(out["out"], ref_ddim_step(*args), [
        ("t_prev = -1 means the last step: alpha_bar_prev = 1 there (alpha_bar[-1] is the LAST entry in Python)",
         ref_ddim_step(*args, wrap_prev=True)),
        ("sigma_t must be multiplied by eta: sigma_t = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) "
         "* sqrt(1 - alpha_bar_t / alpha_bar_prev)", ref_ddim_step(*args, use_eta=False)),
        ("the direction term is sqrt(1 - alpha_bar_prev - sigma_t^2) * eps: sigma_t^2 is missing",
         ref_ddim_step(*args, sigma2_in_dir=False)),
        ("DDIM's alpha_t is our alpha_bar (the cumulative product), not alpha_t = 1 - beta_t",
         ref_ddim_step(*args, alpha="alpha")),
        ("the square root is forgotten on alpha_bar in x0_pred", ref_ddim_step(*args, sqrt=False)),
    ], "x_prev", "x_prev differs: x_prev = sqrt(alpha_bar_prev) x0_pred + sqrt(1 - alpha_bar_prev - sigma^2) eps "
                 "+ sigma noise")


register(Check("ddim_step", "ddim_step", lambda hidden: _sampler_cases(hidden, ddim=True),
               lambda f, c: _with_two_noises(f, c, c["xt"], c["t"], c["t_prev"], c["eps_pred"], c["schedule"],
                                             c["eta"]), _ddim_diagnose))


def _ddim_variant(**kw):
    return lambda xt, t, t_prev, eps, s, eta, noise: ref_ddim_step(xt, t, t_prev, eps, s, eta, noise, **kw).float()


MISTAKES["ddim_step"] = [
    ("always noisy", _ddim_variant(use_eta=False), "not deterministic at eta = 0"),
    ("sigma^2 missing in the direction", _ddim_variant(sigma2_in_dir=False), "sigma_t^2 is missing"),
    ("alpha for alpha_bar", _ddim_variant(alpha="alpha"), "DDIM's alpha_t is our alpha_bar"),
    ("no sqrt", _ddim_variant(sqrt=False), "square root"),
    ("alpha_bar[-1] at the last step", _ddim_variant(wrap_prev=True), "t_prev = -1"),
    ("eta ignored (always deterministic)", lambda xt, t, t_prev, eps, s, eta, noise:
     ref_ddim_step(xt, t, t_prev, eps, s, 0.0, noise).float(), "eta is ignored"),
    ("not implemented", _todo, "not implemented yet"),
]


# ================================================================== 06: guidance
def _cfg_cases(hidden: bool) -> list:
    g = _gen(8)
    ws = [3.0, 1.0, 0.0] + ([7.5, -1.0] if hidden else [])
    return [dict(eps_uncond=torch.randn(2, 1, 3, 3, generator=g), eps_cond=torch.randn(2, 1, 3, 3, generator=g),
                 guidance_scale=w) for w in ws]


def _cfg_diagnose(out, c) -> str | None:
    u, k, w = c["eps_uncond"].double(), c["eps_cond"].double(), c["guidance_scale"]
    return _judge(out, u + w * (k - u), [
        ("eps_cond and eps_uncond are swapped: eps = eps_uncond + w * (eps_cond - eps_uncond)", k + w * (u - k)),
        ("w = 1 must give eps_cond and w = 0 eps_uncond: eps = eps_uncond + w * (eps_cond - eps_uncond)",
         k + w * (k - u)),
        ("eps = eps_uncond + w * (eps_cond - eps_uncond): the eps_uncond term is missing", w * (k - u)),
    ], "guided eps")


register(Check("cfg_combine", "cfg_combine", _cfg_cases,
               lambda f, c: f(c["eps_uncond"], c["eps_cond"], c["guidance_scale"]), _cfg_diagnose))
MISTAKES["cfg_combine"] = [
    ("swapped", lambda u, k, w: k + w * (u - k), "swapped"),
    ("w + 1 convention", lambda u, k, w: k + w * (k - u), "w = 1 must give eps_cond"),
    ("no eps_uncond term", lambda u, k, w: w * (k - u), "missing"),
    ("not implemented", _todo, "not implemented yet"),
]

register(Check("cfg_loss", "cfg_loss", lambda hidden: _loss_cases(hidden, num_classes=3), _loss_call, _loss_diagnose))


def _cfg_loss_variant(labels="dropped", **kw):
    def f(model, x0, y, t, eps, drop, s):
        chosen = {"dropped": torch.where(drop, -1, y), "inverted": torch.where(drop, y, -1), "kept": y,
                  "zero": torch.where(drop, 0, y)}[labels]
        a = s.gather(s.alpha_bar, t, x0.ndim)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        return F.mse_loss(model(xt, t, chosen), x0 if kw.get("target") == "x0" else eps)
    return f


MISTAKES["cfg_loss"] = [
    ("mask inverted", _cfg_loss_variant("inverted"), "inverted"),
    ("never drops", _cfg_loss_variant("kept"), "never dropped"),
    ("null class 0", _cfg_loss_variant("zero"), "null class is -1"),
    ("target x0", _cfg_loss_variant(target="x0"), "target is the noise"),
    ("not implemented", _todo, "not implemented yet"),
]


# ================================================================== the lab: denoise, reverse_diffusion
class LabToyNet(nn.Module):
    """A fixed stand-in for the lab's network: network(noisy_images, noise_variances) -> pred_noises.

    The variances may have shape (B,) or (B, 1, 1, 1). With ``record`` it keeps every variance it was given.
    """

    def __init__(self, record: bool = False):
        super().__init__()
        self.calls: list = [] if record else None

    def forward(self, x: Tensor, variance: Tensor) -> Tensor:
        B = x.shape[0]
        variance = torch.as_tensor(variance, dtype=x.dtype)
        if variance.numel() != B:
            raise ValueError(f"network(noisy_images, noise_rates**2): expected one variance per image, got "
                             f"shape {tuple(variance.shape)} for {B} images")
        v = variance.reshape(B, *([1] * (x.ndim - 1)))
        if self.calls is not None:
            self.calls.append(v.reshape(B).detach().clone())
        return 0.5 * torch.tanh(x) * (1 + v) + 0.3 * v


def ref_denoise(net, x, noise_rates, signal_rates):
    pred_noises = net(x.double(), noise_rates.double() ** 2)
    return pred_noises, (x.double() - noise_rates.double() * pred_noises) / signal_rates.double()


def _denoise_cases(hidden: bool) -> list:
    g = _gen(9)
    shapes = [(3, 1, 4, 4)] + ([(2, 3, 2, 2)] if hidden else [])
    out = []
    for shape in shapes:
        t = torch.rand(shape[0], 1, 1, 1, generator=g)
        noise_rates, signal_rates = ref_diffusion_schedule(t)
        out.append(dict(x=torch.randn(shape, generator=g), noise_rates=noise_rates.float(),
                        signal_rates=signal_rates.float()))
    return out


def _denoise_diagnose(out, c) -> str | None:
    if not isinstance(out, (list, tuple)) or len(out) != 2:
        return "return a tuple (pred_noises, pred_images)"
    net, x, n, s = LabToyNet(), c["x"].double(), c["noise_rates"].double(), c["signal_rates"].double()
    ref_n, ref_i = ref_denoise(net, x, n, s)
    if isinstance(out[0], Tensor) and isinstance(out[1], Tensor) and close(out[0], ref_i) and close(out[1], ref_n):
        return "the order is swapped: return (pred_noises, pred_images)"
    wrong_n = net(x, n)
    hint = _judge(out[0], ref_n, [
        ("the network takes the noise VARIANCE as its time input: network(noisy_images, noise_rates**2)", wrong_n),
        ("the network takes the noise variance noise_rates**2, not the signal rates", net(x, s ** 2)),
    ], "pred_noises")
    if hint:
        return hint
    return _judge(out[1], ref_i, [
        ("divide by signal_rates: pred_images = (noisy_images - noise_rates * pred_noises) / signal_rates",
         x - n * ref_n),
        ("noise and signal rates are swapped in pred_images: (noisy_images - noise_rates * pred_noises) / signal_rates",
         (x - s * ref_n) / n),
        ("wrong sign: pred_images = (noisy_images - noise_rates * pred_noises) / signal_rates", (x + n * ref_n) / s),
    ], "pred_images")


register(Check("denoise", "denoise", _denoise_cases,
               lambda f, c: f(LabToyNet(), c["x"], c["noise_rates"], c["signal_rates"]), _denoise_diagnose))


def _denoise_variant(kind):
    def f(network, x, n, s):
        if kind == "rates":
            eps = network(x, n)
        elif kind == "signal":
            eps = network(x, s ** 2)
        else:
            eps = network(x, n ** 2)
        images = {"no_div": x - n * eps, "swapped": (x - s * eps) / n}.get(kind, (x - n * eps) / s)
        return (images, eps) if kind == "order" else (eps, images)
    return f


MISTAKES["denoise"] = [
    ("noise rate as time input", _denoise_variant("rates"), "VARIANCE"),
    ("no division", _denoise_variant("no_div"), "divide by signal_rates"),
    ("swapped rates", _denoise_variant("swapped"), "swapped"),
    ("outputs swapped", _denoise_variant("order"), "order is swapped"),
    ("not implemented", _todo, "not implemented yet"),
]


def ref_reverse_diffusion(net, initial_noise, steps, *, times="keras", return_noisy=False, swap_remix=False):
    """The Keras example's deterministic DDIM loop; the variants reproduce catalogued mistakes."""
    B = initial_noise.shape[0]
    step_size = 1.0 / steps
    next_noisy = initial_noise.double()
    pred_images = None
    for step in range(steps):
        noisy = next_noisy
        if times == "keras":
            t = 1.0 - step * step_size
        elif times == "linspace":
            t = 1.0 - step / max(steps - 1, 1)
        else:  # "upwards"
            t = step * step_size
        diffusion_times = torch.full((B, 1, 1, 1), t, dtype=torch.float64)
        noise_rates, signal_rates = ref_diffusion_schedule(diffusion_times)
        pred_noises, pred_images = ref_denoise(net, noisy, noise_rates, signal_rates)
        next_t = t - step_size if times != "upwards" else t + step_size
        next_noise, next_signal = ref_diffusion_schedule(torch.full((B, 1, 1, 1), next_t, dtype=torch.float64))
        if swap_remix:
            next_noisy = next_noise * pred_images + next_signal * pred_noises
        else:
            next_noisy = next_signal * pred_images + next_noise * pred_noises
    return next_noisy if return_noisy else pred_images


def _reverse_cases(hidden: bool) -> list:
    g = _gen(10)
    cases = [dict(initial_noise=torch.randn(3, 1, 4, 4, generator=g), diffusion_steps=5)]
    if hidden:
        cases += [dict(initial_noise=torch.randn(2, 3, 3, 3, generator=g), diffusion_steps=10),
                  dict(initial_noise=torch.randn(2, 1, 2, 2, generator=g), diffusion_steps=1)]
    return cases


def _reverse_call(f, c):
    outs, calls = [], None
    for seed in (0, 1):  # twice, from two global seeds: a deterministic sampler ignores them
        net = LabToyNet(record=True)
        torch.manual_seed(seed)
        outs.append(f(net, c["initial_noise"].clone(), c["diffusion_steps"]))
        calls = calls if calls is not None else net.calls
    return dict(out=outs[0], out2=outs[1],
                variances=torch.stack(calls) if calls else torch.zeros(0, c["initial_noise"].shape[0]))


def _reverse_diagnose(out, c) -> str | None:
    net, x, steps = LabToyNet(), c["initial_noise"], c["diffusion_steps"]
    ref = ref_reverse_diffusion(net, x, steps)
    hint = shape_hint(out["out"], ref, "pred_images")
    if hint:
        return hint
    if not close(out["out"], out["out2"], 1e-6):
        return "not deterministic: the DDIM reverse process (eta = 0) adds no fresh noise; don't call torch.randn"
    variances = out["variances"]
    if variances.shape[0] != steps:
        return (f"the network was called {variances.shape[0]} times for diffusion_steps = {steps}: "
                "call denoise once per step")
    start = ref_diffusion_schedule(torch.ones(1))[0] ** 2
    if not close(variances[0], start.expand_as(variances[0]).float(), 1e-3):
        return ("start at t = 1 (pure noise) and go down: the first network call must get the noise variance of "
                "diffusion_times = 1")
    return _judge(out["out"], ref, [
        ("return the last prediction of the clean images (pred_images), not the next noisy images",
         ref_reverse_diffusion(net, x, steps, return_noisy=True)),
        ("equal steps of 1/diffusion_steps: t = 1, 1 - 1/steps, ..., 1/steps (never t = 0 itself)",
         ref_reverse_diffusion(net, x, steps, times="linspace")),
        ("noise and signal rates are swapped when remixing: next_noisy = next_signal * pred_images "
         "+ next_noise * pred_noises", ref_reverse_diffusion(net, x, steps, swap_remix=True)),
    ], "pred_images", "pred_images differs from the deterministic DDIM loop; do your diffusion_schedule and "
                      "denoise pass their checks?")


register(Check("reverse_diffusion", "reverse_diffusion", _reverse_cases, _reverse_call, _reverse_diagnose))


def _reverse_variant(**kw):
    return lambda network, initial_noise, steps: ref_reverse_diffusion(network, initial_noise, steps, **kw).float()


def _reverse_random(network, initial_noise, steps):
    return ref_reverse_diffusion(network, initial_noise, steps).float() + 0.1 * torch.randn(initial_noise.shape)


MISTAKES["reverse_diffusion"] = [
    ("returns the noisy images", _reverse_variant(return_noisy=True), "last prediction of the clean images"),
    ("time runs upwards", _reverse_variant(times="upwards"), "start at t = 1"),
    ("reaches t = 0", _reverse_variant(times="linspace"), "equal steps"),
    ("swapped remix", _reverse_variant(swap_remix=True), "swapped"),
    ("adds fresh noise", _reverse_random, "not deterministic"),
    ("one call too many", lambda network, x, steps: (network(x, torch.ones(x.shape[0])),
                                                     ref_reverse_diffusion(network, x, steps).float())[1],
     "called"),
    ("not implemented", _todo, "not implemented yet"),
]


# ================================================================== the visible checks, one per TODO
def _make_visible(name: str) -> Callable[[Any], Outcome]:
    def check(obj) -> Outcome:
        return report(name, obj)
    check.__name__ = f"check_{name}"
    check.__doc__ = f"Visible check for ``{CHECKS[name].target}``: prints one line, returns whether it passed."
    return check


def check_diffusion_schedule(diffusion_schedule) -> Outcome:
    """Visible check for the lab's ``diffusion_schedule``: prints one line, returns whether it passed."""
    return report("diffusion_schedule", diffusion_schedule)


check_linear_beta_schedule = _make_visible("linear_beta_schedule")
check_cosine_beta_schedule = _make_visible("cosine_beta_schedule")
check_q_sample = _make_visible("q_sample")
check_q_posterior = _make_visible("q_posterior")
check_predict_x0 = _make_visible("predict_x0")
check_sinusoidal_embedding = _make_visible("sinusoidal_embedding")
check_SinusoidalTimeEmbedding = _make_visible("SinusoidalTimeEmbedding")
check_ResBlock = _make_visible("ResBlock")
check_diffusion_loss = _make_visible("diffusion_loss")
check_training_step = _make_visible("training_step")
check_ddpm_step = _make_visible("ddpm_step")
check_ddim_step = _make_visible("ddim_step")
check_cfg_combine = _make_visible("cfg_combine")
check_cfg_loss = _make_visible("cfg_loss")
check_denoise = _make_visible("denoise")
check_reverse_diffusion = _make_visible("reverse_diffusion")


def mistakes_markdown() -> str:
    """The catalogue of mistakes as a markdown table (docs/mistakes.md is generated from it)."""
    lines = []
    for name, mistakes in MISTAKES.items():
        lines += [f"## `{name}` (TODO `{CHECKS[name].target}`)", "", "| mistake | the hint contains |", "|---|---|"]
        lines += [f"| {mid} | {hint} |" for mid, _, hint in mistakes]
        lines.append("")
    return "\n".join(lines)


# ================================================================== reference implementations (float32), for tests
def _ref_time_embedding(dim: int, out_dim: int) -> nn.Module:
    return _RefTimeEmbedding(dim, out_dim)


def _ref_training_step(model, optimizer, x0, t, eps, s):
    return _train_step_variant()(model, optimizer, x0, t, eps, s)


# name -> a right implementation (what the solution notebooks implement); tests check each passes its check
REFERENCES: dict[str, Callable] = {
    "linear_beta_schedule": lambda T, beta_start=1e-4, beta_end=0.02: ref_linear_betas(T, beta_start, beta_end).float(),
    "cosine_beta_schedule": lambda T, s=0.008, max_beta=0.999: ref_cosine_betas(T, s, max_beta).float(),
    "diffusion_schedule": lambda t, min_signal_rate=0.02, max_signal_rate=0.95: tuple(
        v.float() for v in ref_diffusion_schedule(t, min_signal_rate, max_signal_rate)),
    "q_sample": lambda x0, t, eps, s: ref_q_sample(x0, t, eps, s).float(),
    "q_posterior": _posterior_from_ref(),
    "predict_x0": lambda xt, t, eps, s: ref_predict_x0(xt, t, eps, s).float(),
    "sinusoidal_embedding": lambda t, dim, max_period=10000.0: ref_sinusoidal(t, dim, max_period).float(),
    "SinusoidalTimeEmbedding": _ref_time_embedding,
    "ResBlock": _RefResBlock,
    "diffusion_loss": _loss_variant(),
    "training_step": _ref_training_step,
    "ddpm_step": _ddpm_variant(),
    "ddim_step": _ddim_variant(),
    "cfg_combine": lambda u, k, w: u + w * (k - u),
    "cfg_loss": _cfg_loss_variant(),
    "denoise": _denoise_variant("right"),
    "reverse_diffusion": _reverse_variant(),
}
