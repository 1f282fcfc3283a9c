"""Instant feedback for the worksheets, and the verdicts the grader trusts.

A ``Check`` runs a student's function (or class) on small fixed inputs and compares the outputs with the
course's reference. It is split in two so that grading can compute the verdict outside the student's process:

- ``harvest(name, obj)`` runs INSIDE the student's kernel: it only calls the student's object on the
  check's cases and returns the raw outputs (tensors, or an error record), nothing else.
- ``verdict(name, outputs)`` runs in the grader (or in the notebook, for instant feedback): it recomputes
  the reference itself and turns the outputs into ``CheckResult(passed, message)``, with a hint for each
  catalogued mistake (see ``MISTAKES`` and docs/mistakes.md).

In a worksheet, a visible check cell calls ``check_<name>(student_obj)``, which prints one line:
"✅ ..." on a pass, "❌ ...: <hint>" on a wrong answer, "⏳ ... not implemented yet" for an untouched TODO.
It never raises for a wrong answer.
"""
from __future__ import annotations

import math
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from . import schedules

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
        if isinstance(out, dict) and out.get("error") == "NotImplementedError":
            return CheckResult(False, f"{TODO} {label}: not implemented yet", "not_implemented")
    for i, (out, case) in enumerate(zip(outputs, cases)):
        if isinstance(out, dict) and "error" in out:
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


def _detach(out):
    if isinstance(out, Tensor):
        return out.detach().cpu().clone()
    if isinstance(out, (tuple, list)):
        return [_detach(o) for o in out]
    if isinstance(out, (int, float, bool)) or out is None:
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


# ------------------------------------------------------------------ diffusion_schedule (the lab's)
def _schedule_cases(hidden: bool) -> list:
    cases = [dict(diffusion_times=torch.linspace(0, 1, 11))]
    if hidden:
        g = torch.Generator().manual_seed(1)
        cases.append(dict(diffusion_times=torch.rand(4, 1, 1, 1, generator=g)))
    return cases


def _schedule_diagnose(out, case) -> str | None:
    if not isinstance(out, (list, tuple)) or len(out) != 2:
        return "return a tuple (noise_rates, signal_rates)"
    noise, signal = out
    ref_noise, ref_signal = schedules.diffusion_schedule(case["diffusion_times"])
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
               lambda f, c: f(c["diffusion_times"]), _schedule_diagnose))


def _swapped_schedule(t, min_signal_rate=0.02, max_signal_rate=0.95):
    n, s = schedules.diffusion_schedule(t, min_signal_rate, max_signal_rate)
    return s, n


def _linear_rates(t, min_signal_rate=0.02, max_signal_rate=0.95):
    signal = max_signal_rate + t * (min_signal_rate - max_signal_rate)
    return (1 - signal ** 2).sqrt(), signal


def _backwards_schedule(t, min_signal_rate=0.02, max_signal_rate=0.95):
    return schedules.diffusion_schedule(1 - t, min_signal_rate, max_signal_rate)


def _todo(*args, **kwargs):
    raise NotImplementedError()


MISTAKES["diffusion_schedule"] = [
    ("swapped", _swapped_schedule, "swapped"),
    ("signal linear in t", _linear_rates, "linearly"),
    ("backwards", _backwards_schedule, "backwards"),
    ("not implemented", _todo, "not implemented yet"),
]


def check_diffusion_schedule(diffusion_schedule) -> bool:
    """Visible check for the lab's ``diffusion_schedule``: prints one line, returns whether it passed."""
    return report("diffusion_schedule", diffusion_schedule)


def report(name: str, obj: Any) -> bool:
    result = run_check(name, obj)
    print(result.message)
    return result.passed
