"""Worksheet 01 (solutions/01_schedules.ipynb): the noise schedules.

- ``linear_beta_schedule``: DDPM's betas, evenly spaced from beta_start to beta_end (Ho et al. 2020, Sec. 4).
- ``cosine_beta_schedule``: Nichol and Dhariwal 2021, Eq. 17, alpha_bar(t) = f(t) / f(0) with
  f(t) = cos^2(((t/T + s) / (1 + s)) pi/2) and s the small offset; betas clipped at max_beta.
- ``diffusion_schedule``: the continuous cosine schedule of the Keras DDIM example, a TODO of this worksheet
  AND of the lab (solutions/lab_ddim.ipynb). Its check lives here, with the other schedules; the lab's
  checks (``lab_ddim``) import ``ref_diffusion_schedule`` from this module.
- ``respace``: the betas of a short chain that visits only some steps and keeps alpha_bar there (Nichol and
  Dhariwal 2021, Sec. 4): what lets a sampler of lessons 5 and 7 use a 1,000-step model in 10 steps.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ..schedules import NoiseSchedule
from .framework import (MISTAKES, Check, alpha_bar64, close, explain_by, judge, register, shape_hint, todo,
                        visible)

# betas start as small as 1e-4: the default tolerance (1e-4, absolute too) would pass a schedule that forgets
# beta_start; float32 answers are off by about 1e-7 (1 - a ratio near 1 in float32)
BETA_ATOL = 1e-6


# ------------------------------------------------------------------ linear_beta_schedule
def ref_linear_betas(T, beta_start=1e-4, beta_end=0.02) -> Tensor:
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def ref_cosine_betas(T, s=0.008, max_beta=0.999, *, square=True, clip=True, upside_down=False, mistake=None
                     ) -> Tensor:
    """The cosine betas; ``square``, ``clip`` and ``upside_down`` switch off or invert one part, ``mistake`` names
    another wrong angle (the mistakes): "floor" (t // T), "s outside" ((t/T) / (1 + s) + s), "pi" (pi for pi/2),
    "no 1 + s" ((t/T + s) pi/2, the division forgotten)."""
    steps = torch.arange(T + 1, dtype=torch.float64)
    angle = {None: lambda: ((steps / T + s) / (1 + s)) * math.pi / 2,
             "floor": lambda: ((steps // T + s) / (1 + s)) * math.pi / 2,
             "s outside": lambda: ((steps / T) / (1 + s) + s) * math.pi / 2,
             "pi": lambda: ((steps / T + s) / (1 + s)) * math.pi,
             "no 1 + s": lambda: (steps / T + s) * math.pi / 2}[mistake]()
    f = torch.cos(angle) ** (2 if square else 1)
    alpha_bar = f / f[0]
    ratio = alpha_bar[:-1] / alpha_bar[1:] if upside_down else alpha_bar[1:] / alpha_bar[:-1]
    betas = 1 - ratio
    return betas.clamp(max=max_beta) if clip else betas


def _beta_cases(extra: dict) -> Callable[[bool], list]:
    def cases(hidden: bool) -> list:
        # T = 1000 is visible: the cosine schedule's first betas are then below 1e-4 (4e-5), so a tutorial's
        # torch.clip(betas, 0.0001, 0.9999) shows on the worksheet (at T = 10 every beta is above it)
        # and T = 300: torch.arange(beta_start, beta_end + step, step) gives 301 betas there by round-off (T + 1 for
        # 151 of the T from 2 to 1100; T = 10, 1000 and 7 were not among them)
        out = [dict(T=10, kwargs={}), dict(T=1000, kwargs={}), dict(T=300, kwargs={})]
        if hidden:
            out += [dict(T=7, kwargs=extra)]
        return out
    return cases


def _linear_diagnose(out, case) -> str | None:
    T, kw = case["T"], case["kwargs"]
    ref = ref_linear_betas(T, **kw)
    start, end = float(ref[0]), float(ref[-1])
    wrong_end = ref[0] + (ref[-1] - ref[0]) * torch.arange(T, dtype=torch.float64) / T
    if isinstance(out, Tensor) and tuple(out.shape) == (T + 1,):
        return (f"{T + 1} betas for T = {T}: torch.arange with a float step gives T or T + 1 values depending on "
                "round-off (the end is excluded, or not, by a rounding error), and linspace(..., T + 1) gives "
                "T + 1; torch.linspace(beta_start, beta_end, T) gives exactly T, both ends included")
    return judge(out, ref, [
        ("you returned alphas = 1 - betas: beta vs alpha confused (betas grow from beta_start to beta_end)", 1 - ref),
        ("you returned alpha_bar (the cumulative product); return the betas themselves", torch.cumprod(1 - ref, 0)),
        ("the last beta must equal beta_end: torch.linspace(beta_start, beta_end, T) includes both ends", wrong_end),
        ("the first beta must equal beta_start (yours starts at 0): torch.linspace(beta_start, beta_end, T)",
         ref - ref[0]),
        ("the first beta must equal beta_start: linspace(beta_start, beta_end, T + 1)[1:] drops it; "
         "torch.linspace(beta_start, beta_end, T) has T values and both ends",
         torch.linspace(start, end, T + 1, dtype=torch.float64)[1:]),
        ("the betas run backwards: they grow from beta_start (first) to beta_end (last), "
         "torch.linspace(beta_start, beta_end, T)", ref.flip(0)),
        ("every beta is beta_start: the step (beta_end - beta_start) // (T - 1) is floor division, 0 here; "
         "divide with /, or use torch.linspace(beta_start, beta_end, T)", torch.full_like(ref, start)),
        ("that is the 'scaled linear' schedule (a linspace of square roots, squared: Stable Diffusion's); DDPM's "
         "betas are themselves evenly spaced: torch.linspace(beta_start, beta_end, T)",
         torch.linspace(start ** 0.5, end ** 0.5, T, dtype=torch.float64) ** 2),
        ("the betas are scaled by 1000 / T (improved DDPM's trick to keep alpha_bar at the end for another T): "
         "here beta_start and beta_end are the first and last betas as given, torch.linspace(beta_start, "
         "beta_end, T)", ref * 1000 / T),
        # a hidden case passes beta_start = 0.01, beta_end = 0.3: hard-coded defaults were told only "your first
        # beta is ..., not beta_start = ...", where the cosine check names the argument
        ("use the arguments you are given: the betas start at beta_start, not at a fixed 1e-4",
         ref_linear_betas(T, 1e-4, end) if "beta_start" in kw else None),
        ("use the arguments you are given: the betas end at beta_end, not at a fixed 0.02",
         ref_linear_betas(T, start, 0.02) if "beta_end" in kw else None),
        ("use the arguments you are given, beta_start and beta_end, not the defaults 1e-4 and 0.02",
         ref_linear_betas(T) if kw else None),
    ], "betas", _linear_generic(out, start, end, T), atol=BETA_ATOL)


def _linear_generic(out, start: float, end: float, T: int) -> str:
    """The generic hint, with the student's first and last beta and its step sizes when they are not as they
    should be."""
    said = "betas must be evenly spaced from beta_start (first) to beta_end (last), T values"
    if not (isinstance(out, Tensor) and tuple(out.shape) == (T,) and T > 2 and torch.isfinite(out).all()):
        return said
    out = out.double()
    steps = out[1:] - out[:-1]
    wrong = []
    if not math.isclose(float(out[0]), start, rel_tol=1e-4, abs_tol=BETA_ATOL):
        wrong.append(f"your first beta is {float(out[0]):.6g}, not beta_start = {start:.6g}")
    if not math.isclose(float(out[-1]), end, rel_tol=1e-4, abs_tol=BETA_ATOL):
        wrong.append(f"your last is {float(out[-1]):.6g}, not beta_end = {end:.6g}")
    if float(steps.max() - steps.min()) > max(1e-4 * abs(end - start), BETA_ATOL):
        wrong.append(f"your steps between betas are not all equal (from {float(steps.min()):.3g} to "
                     f"{float(steps.max()):.3g})")
    return f"{said}: {'; '.join(wrong)}" if wrong else said


register(Check("linear_beta_schedule", "linear_beta_schedule", _beta_cases(dict(beta_start=0.01, beta_end=0.3)),
               lambda f, c: f(c["T"], **c["kwargs"]), _linear_diagnose))
check_linear_beta_schedule = visible("linear_beta_schedule")
MISTAKES["linear_beta_schedule"] = [
    ("alphas instead of betas", lambda T, beta_start=1e-4, beta_end=0.02: 1 - torch.linspace(beta_start, beta_end, T),
     "beta vs alpha"),
    ("misses the last value", lambda T, beta_start=1e-4, beta_end=0.02:
        beta_start + (beta_end - beta_start) * torch.arange(T) / T, "last beta must equal beta_end"),
    ("wrong shape", lambda T, beta_start=1e-4, beta_end=0.02: torch.linspace(beta_start, beta_end, T)[None],
     "wrong shape"),
    ("float64 (numpy's linspace)", lambda T, beta_start=1e-4, beta_end=0.02: ref_linear_betas(T, beta_start, beta_end),
     "return float32"),
    ("first value dropped (linspace of T + 1, first cut)", lambda T, beta_start=1e-4, beta_end=0.02:
        torch.linspace(beta_start, beta_end, T + 1)[1:], "linspace(beta_start, beta_end, T + 1)[1:] drops it"),
    ("backwards", lambda T, beta_start=1e-4, beta_end=0.02: torch.linspace(beta_end, beta_start, T),
     "the betas run backwards"),
    ("floor division in the step", lambda T, beta_start=1e-4, beta_end=0.02:
        beta_start + (beta_end - beta_start) // (T - 1) * torch.arange(T), "floor division"),
    ("scaled linear (square roots)", lambda T, beta_start=1e-4, beta_end=0.02:
        torch.linspace(beta_start ** 0.5, beta_end ** 0.5, T) ** 2, "the 'scaled linear' schedule"),
    ("scaled by 1000 over T", lambda T, beta_start=1e-4, beta_end=0.02:
        torch.linspace(beta_start * 1000 / T, beta_end * 1000 / T, T), "scaled by 1000 / T"),
    ("a float arange", lambda T, beta_start=1e-4, beta_end=0.02: torch.arange(
        beta_start, beta_end + (beta_end - beta_start) / (T - 1), (beta_end - beta_start) / (T - 1)),
     "torch.arange with a float step gives T or T + 1 values"),
    ("a last step twice as long", lambda T, beta_start=1e-4, beta_end=0.02:
        torch.cat([torch.linspace(beta_start, beta_end, T + 1)[:-2], torch.tensor([beta_end])]),
     "your steps between betas are not all equal"),
    ("not implemented", todo, "not implemented yet"),
]


# ------------------------------------------------------------------ cosine_beta_schedule
def _cosine_diagnose(out, case) -> str | None:
    T, kw = case["T"], case["kwargs"]
    ref = ref_cosine_betas(T, **kw)
    if isinstance(out, Tensor) and out.shape == ref.shape and close(out, ref_cosine_betas(T, **kw, mistake="pi"),
                                                                    atol=BETA_ATOL):
        return ("the angle must reach pi/2 at t = T: ((t/T + s) / (1 + s)) * pi / 2; with pi it passes pi/2 "
                "halfway, where cos^2 grows again and the betas turn negative")
    s = kw.get("s", 0.008)
    # the hints for negative betas name a cause only where the betas are that cause's (torch.cos(x ** 2) was told
    # "past t = T the angle passes pi/2", and sin^2 for cos^2 "the ratio is upside down")
    falls = ("f(t) = cos(((t/T + s) / (1 + s)) * pi / 2) ** 2 falls from about 1 to 0 as t goes from 0 to T (the "
             "cosine, squared, of an angle from near 0 to pi/2), so that every beta_t = 1 - f(t+1) / f(t) is positive")
    if isinstance(out, Tensor) and out.shape == ref.shape and (out < 0).all():
        if close(out, ref_cosine_betas(T, **kw, upside_down=True), atol=BETA_ATOL):
            return "the betas are negative: beta_t = 1 - alpha_bar(t+1) / alpha_bar(t), the ratio is upside down"
        return f"the betas are negative, so your f(t) grows with t: {falls}"
    if isinstance(out, Tensor) and out.shape == ref.shape and (out < 0).any():
        t1 = torch.arange(1, T + 2, dtype=torch.float64)
        f1 = torch.cos(((t1 / T + s) / (1 + s)) * math.pi / 2) ** 2
        one_indexed = (1 - f1[1:] / f1[:-1]).clamp(max=kw.get("max_beta", 0.999))    # its last, f(T+1) / ~0: any
        if bool(out[-1] < 0) and close(out[:-1], one_indexed[:-1], atol=1e-4):
            return ("some betas are negative: f(t) is evaluated on t = 0, 1, ..., T (T + 1 values); past t = T the "
                    "angle passes pi/2, where cos^2 grows again")
        return f"some betas are negative, so your f(t) grows somewhere: {falls}"
    f = torch.cos(((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s)) * math.pi / 2) ** 2
    return judge(out, ref, [
        ("f(t) is cos SQUARED: f(t) = cos^2(((t/T + s) / (1 + s)) * pi / 2)", ref_cosine_betas(T, **kw, square=False)),
        ("you returned alpha_bar = f(t) / f(0); return betas: beta_t = 1 - alpha_bar(t+1) / alpha_bar(t)",
         (f / f[0])[1:]),
        ("the offset s is missing: f(t) = cos^2(((t/T + s) / (1 + s)) * pi / 2)",
         ref_cosine_betas(T, 0.0, kw.get("max_beta", 0.999))),
        ("use the arguments you are given: the betas are clipped at max_beta, not at a fixed 0.999",
         ref_cosine_betas(T, s, 0.999) if "max_beta" in kw else None),
        *_clip_variants(out, ref, T, kw),
        ("betas above max_beta: clip them, betas.clamp(max=max_beta) (the last beta would be 1)",
         ref_cosine_betas(T, **kw, clip=False)),
        ("use the arguments you are given: the offset is the argument s, not a fixed 0.008",
         ref_cosine_betas(T, 0.008, kw.get("max_beta", 0.999)) if "s" in kw else None),
        ("all betas but the last are 0: t // T is floor division (0 until t = T), so every f(t) but the last is "
         "f(0); divide with /: torch.arange(T + 1) / T", ref_cosine_betas(T, **kw, mistake="floor")),
        ("the offset s goes inside the fraction: f(t) = cos^2(((t/T + s) / (1 + s)) * pi / 2), not "
         "(t/T) / (1 + s) + s", ref_cosine_betas(T, **kw, mistake="s outside")),
        ("those are 1 - alpha_bar_t, the total noise variance at t; beta_t is one step's: "
         "1 - alpha_bar_t / alpha_bar_(t-1)", (1 - f[1:] / f[0]).clamp(max=kw.get("max_beta", 0.999))),
        ("divide by 1 + s: the angle is ((t/T + s) / (1 + s)) * pi / 2, which makes it exactly pi/2 at t = T (yours "
         "passes it)", ref_cosine_betas(T, **kw, mistake="no 1 + s")),
        ("you returned alphas = 1 - betas: return the betas, beta_t = 1 - alpha_bar(t+1) / alpha_bar(t)", 1 - ref),
        ("those are differences, alpha_bar(t) - alpha_bar(t+1); beta_t is one minus a ratio: 1 - alpha_bar(t+1) / "
         "alpha_bar(t)", ((f[:-1] - f[1:]) / f[0]).clamp(max=kw.get("max_beta", 0.999))),
    ], "betas", _cosine_generic(out, ref, kw.get("max_beta", 0.999)), atol=BETA_ATOL)


def _clip_variants(out, ref: Tensor, T: int, kw: dict) -> list:
    """(hint, betas) of clips at other bounds than [0, max_beta], read from the student's smallest and largest
    betas: a tutorial's torch.clip(betas, 0.0001, 0.9999) was told 'betas above max_beta ... the last beta
    would be 1', and its lower clip alone passed the worksheet, failing the grader with a generic message."""
    if not (isinstance(out, Tensor) and out.shape == ref.shape and out.is_floating_point() and out.numel()):
        return []
    lo, hi, max_beta = float(out.min()), float(out.max()), kw.get("max_beta", 0.999)
    raw = ref_cosine_betas(T, **kw, clip=False)
    low = lo > float(ref.min()) + BETA_ATOL          # the smallest betas raised: a lower clip
    high = abs(hi - max_beta) > BETA_ATOL and hi < 1 - BETA_ATOL
    upper = (f"clip at max_beta = {max_beta:g}, the argument, not at {hi:.6g}: betas.clamp(max=max_beta)")
    lower = (f"your smallest betas are raised to {lo:.3g}: clip only from above (the cosine schedule's first betas "
             f"are {float(ref.min()):.2g} here, and a lower clip changes them)")
    return [(f"{lower}; and {upper}", raw.clamp(lo, hi) if low and high else None),
            (f"{lower}: betas.clamp(max=max_beta)", ref.clamp(min=lo) if low else None),
            (upper, raw.clamp(max=hi) if high else None)]


def _cosine_generic(out, ref: Tensor, max_beta: float) -> str | None:
    """A clamp the wrong way round (every beta at least max_beta), else None (the judge's generic message)."""
    if isinstance(out, Tensor) and out.shape == ref.shape and bool((out >= max_beta - 1e-6).all()):
        return (f"every beta is at least max_beta = {max_beta}: clip with betas.clamp(max=max_beta), which caps "
                "them; clamp(min=max_beta) raises them all")
    return None


def _cosine_variant(**switches):
    return lambda T, s=0.008, max_beta=0.999: ref_cosine_betas(T, s, max_beta, **switches).float()


def _one_minus_alpha_bar(T, s=0.008, max_beta=0.999):
    """1 - alpha_bar_t (t = 1 .. T) returned as the betas, clipped: the total noise variance for one step's."""
    alpha_bar = torch.cumprod(1 - ref_cosine_betas(T, s, max_beta, clip=False), 0)
    return (1 - alpha_bar).clamp(max=max_beta).float()


register(Check("cosine_beta_schedule", "cosine_beta_schedule", _beta_cases(dict(s=0.02, max_beta=0.9)),
               lambda f, c: f(c["T"], **c["kwargs"]), _cosine_diagnose, explain_by(
                   ("only one element tensors can be converted to Python scalars",
                    "math.cos takes one number: use torch.cos on the tensor of steps, "
                    "torch.cos(((t / T + s) / (1 + s)) * math.pi / 2) ** 2 with t = torch.arange(T + 1)"))))
check_cosine_beta_schedule = visible("cosine_beta_schedule")


def _student_cosine(*, f_of=lambda angle: torch.cos(angle) ** 2, betas_of=lambda a: 1 - a[1:] / a[:-1]):
    """cosine_beta_schedule as a student writes it, in float64, with one part swapped: ``f_of`` the angle
    ((t/T + s) / (1 + s)) pi/2 of t = 0..T to f(t), ``betas_of`` alpha_bar = f / f(0) to the betas; clipped at
    max_beta, returned as float32."""
    def cosine_beta_schedule(T, s=0.008, max_beta=0.999):
        f = f_of(((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s)) * math.pi / 2)
        return betas_of(f / f[0]).clamp(max=max_beta).float()
    return cosine_beta_schedule


MISTAKES["cosine_beta_schedule"] = [
    ("no division by 1 + s", _cosine_variant(mistake="no 1 + s"), "divide by 1 + s"),
    ("alphas returned", lambda T, s=0.008, max_beta=0.999: 1 - ref_cosine_betas(T, s, max_beta).float(),
     "you returned alphas = 1 - betas"),
    ("differences of alpha_bar", _student_cosine(betas_of=lambda a: a[:-1] - a[1:]), "those are differences"),
    ("math.cos on a tensor", lambda T, s=0.008, max_beta=0.999: math.cos(torch.arange(T + 1) / T),
     "math.cos takes one number"),
    ("the cosine of the square", _student_cosine(f_of=lambda angle: torch.cos(angle ** 2)),
     "some betas are negative, so your f(t) grows somewhere"),
    ("sin squared for cos squared", _student_cosine(f_of=lambda angle: torch.sin(angle) ** 2),
     "the betas are negative, so your f(t) grows with t"),
    ("a tutorial's clip to [0.0001, 0.9999]", lambda T, s=0.008, max_beta=0.999: ref_cosine_betas(
        T, s, max_beta, clip=False).clamp(1e-4, 0.9999).float(), "the argument, not at 0.9999"),
    ("a lower clip at 0.0001", lambda T, s=0.008, max_beta=0.999: ref_cosine_betas(
        T, s, max_beta).clamp(min=1e-4).float(), "your smallest betas are raised to 0.0001"),
    ("no clipping", _cosine_variant(clip=False), "clip"),
    ("cos not squared", _cosine_variant(square=False), "cos SQUARED"),
    ("ratio upside down", _cosine_variant(upside_down=True), "upside down"),
    ("no offset s", lambda T, s=0.008, max_beta=0.999: ref_cosine_betas(T, 0.0, max_beta).float(), "offset s"),
    ("pi instead of pi over 2", _cosine_variant(mistake="pi"), "the angle must reach pi/2"),
    ("floor division t // T", _cosine_variant(mistake="floor"), "t // T is floor division"),
    ("s outside the fraction", _cosine_variant(mistake="s outside"), "the offset s goes inside the fraction"),
    ("1 - alpha_bar for the betas", _one_minus_alpha_bar, "those are 1 - alpha_bar_t"),
    ("clamp(min=max_beta)", lambda T, s=0.008, max_beta=0.999: ref_cosine_betas(T, s, max_beta, clip=False).clamp(
        min=max_beta).float(), "every beta is at least max_beta"),
    ("not implemented", todo, "not implemented yet"),
]


# ------------------------------------------------------------------ diffusion_schedule (this worksheet's and the lab's)
def ref_diffusion_schedule(t: Tensor, min_signal_rate=0.02, max_signal_rate=0.95, *, arccos=True,
                           mistake: str | None = None):
    """(noise_rates, signal_rates): angle linear in t from arccos(max_signal_rate) to arccos(min_signal_rate).

    ``arccos=False`` makes the angle linear from max_signal_rate to min_signal_rate themselves (a mistake);
    ``mistake`` names another: "end" (angle = start + t * end), "degrees" (the angles in degrees).
    """
    t = t.double()
    start, end = (math.acos(max_signal_rate), math.acos(min_signal_rate)) if arccos else (max_signal_rate,
                                                                                            min_signal_rate)
    if mistake == "degrees":
        start, end = math.degrees(start), math.degrees(end)
    angles = start + t * end if mistake == "end" else start + t * (end - start)
    return torch.sin(angles), torch.cos(angles)


def _schedule_cases(hidden: bool) -> list:
    cases = [dict(diffusion_times=torch.linspace(0, 1, 11), kwargs={}),
             dict(diffusion_times=torch.linspace(0, 1, 5), kwargs=dict(min_signal_rate=0.1, max_signal_rate=0.9)),
             # the shape the lab passes: rates that come back flattened would broadcast against the wrong axis
             dict(diffusion_times=torch.tensor([0.0, 0.25, 1.0]).view(3, 1, 1, 1), kwargs={}),
             # the same shape at other times: rates kept between calls by the times' shape (or length) passed
             # every case, each of its own shape, and the lab's training then drew one batch's noise levels forever
             dict(diffusion_times=torch.tensor([0.1, 0.6, 0.9]).view(3, 1, 1, 1), kwargs={},
                  earlier=torch.tensor([0.0, 0.25, 1.0]).view(3, 1, 1, 1))]
    if hidden:
        g = torch.Generator().manual_seed(1)
        cases.append(dict(diffusion_times=torch.rand(4, 1, 1, 1, generator=g), kwargs={}))
    return cases


def _schedule_diagnose(out, case) -> str | None:
    if not isinstance(out, (list, tuple)) or len(out) != 2:
        return "return a tuple (noise_rates, signal_rates)"
    noise_rates, signal_rates = out
    ref_noise_rates, ref_signal_rates = ref_diffusion_schedule(case["diffusion_times"], **case["kwargs"])
    for o, r, what in [(noise_rates, ref_noise_rates, "noise_rates"), (signal_rates, ref_signal_rates, "signal_rates")]:
        hint = shape_hint(o, r, what)
        if hint:
            return hint
    if close(noise_rates, ref_signal_rates) and close(signal_rates, ref_noise_rates):
        return ("noise and signal are swapped: noise_rates = sin(angle) and signal_rates = cos(angle), returned "
                "as (noise_rates, signal_rates), noise first (an angle from arcsin instead of arccos swaps them too: "
                "arcsin(x) = pi/2 - arccos(x))")
    if close(noise_rates, ref_noise_rates ** 2) and close(signal_rates, ref_signal_rates ** 2):
        return ("those are the squares, noise_rates**2 = 1 - alpha_bar and signal_rates**2 = alpha_bar: return the "
                "rates themselves, noise = sin(angle) and signal = cos(angle)")
    if not close(noise_rates ** 2 + signal_rates ** 2, torch.ones_like(noise_rates), 1e-3):
        return "signal_rates**2 + noise_rates**2 != 1: use cos and sin of the same angle"
    if close(signal_rates.flip(0), ref_signal_rates) if signal_rates.ndim == 1 else False:
        return "the schedule runs backwards: at t = 0 the signal rate must be max_signal_rate (0.95)"
    earlier = case.get("earlier")
    if isinstance(earlier, Tensor) and not (close(noise_rates, ref_noise_rates) and close(
            signal_rates, ref_signal_rates)) and all(close(o, r) for o, r in zip(out, ref_diffusion_schedule(earlier))):
        times = [", ".join(f"{v:g}" for v in ts.flatten().tolist()) for ts in (earlier, case["diffusion_times"])]
        return (f"these are the rates of an earlier call with times of the same shape (t = {times[0]}), not of "
                f"this call's t = {times[1]}: compute them from the diffusion_times you are given at every call, "
                "keep nothing between calls (the lab's training gives a new batch of times at every step)")
    if not (close(noise_rates, ref_noise_rates) and close(signal_rates, ref_signal_rates)):
        t, kwargs = case["diffusion_times"], case["kwargs"]
        for hint, (ref_noise, ref_signal) in [
            ("the signal rate itself goes linearly from max_signal_rate to min_signal_rate; in the cosine schedule "
             "the ANGLE goes linearly, from arccos(max_signal_rate) to arccos(min_signal_rate), and signal = "
             "cos(angle)", _linear_rates(t.double(), **kwargs)),
            ("the angle starts at max_signal_rate itself: start at arccos(max_signal_rate) and end at "
             "arccos(min_signal_rate), the angles whose cosines are those rates",
             ref_diffusion_schedule(t, **kwargs, arccos=False)),
            (f"use the min_signal_rate and max_signal_rate you are given (this case passes {kwargs}), not the "
             "defaults", ref_diffusion_schedule(t) if kwargs else (None, None)),
            ("the angle is start + t * end: it must go from start = arccos(max_signal_rate) to end = "
             "arccos(min_signal_rate), angle = start + t * (end - start)", ref_diffusion_schedule(t, **kwargs,
                                                                                           mistake="end")),
            ("the angles are in degrees (math.degrees) but torch.cos and torch.sin take radians: keep math.acos's "
             "radians", ref_diffusion_schedule(t, **kwargs, mistake="degrees")),
        ]:
            if ref_noise is not None and close(noise_rates, ref_noise) and close(signal_rates, ref_signal):
                return hint
        # float16's rounding of these rates (up to 5e-4; bfloat16's is 8 times coarser, and would take in wrong
        # formulas too: a bfloat16 result is told by its dtype)
        half = [(r.half().double() - r).abs().max() for r in (ref_noise_rates, ref_signal_rates)]
        off = max(float((o.double() - r).abs().max()) for o, r in ((noise_rates, ref_noise_rates),
                                                                   (signal_rates, ref_signal_rates)))
        if (noise_rates.dtype in (torch.float16, torch.bfloat16) or signal_rates.dtype in (torch.float16,
                                                                                        torch.bfloat16)
                or off <= 2 * float(max(half))):
            return (f"the rates are off by {off:.1g}, the rounding of half precision (float16 or bfloat16 keep 3 "
                    "digits or fewer): compute in float32, torch's default, and the rates come out right to 7")
        return ("values differ from the reference cosine schedule: angle = arccos(max_signal_rate) + t "
                "(arccos(min_signal_rate) - arccos(max_signal_rate)), noise = sin(angle), signal = cos(angle)")
    return None


def answer_diffusion_schedule():
    """A right diffusion_schedule (``Check.answer``): lent to a caller's instant check beside a failing one."""
    def diffusion_schedule(diffusion_times, min_signal_rate=0.02, max_signal_rate=0.95):
        noise_rates, signal_rates = ref_diffusion_schedule(diffusion_times, min_signal_rate, max_signal_rate)
        return noise_rates.float(), signal_rates.float()
    return diffusion_schedule


register(Check("diffusion_schedule", "diffusion_schedule", _schedule_cases,
               lambda f, c: f(c["diffusion_times"], **c["kwargs"]), _schedule_diagnose, explain_by(
                   ("only one element tensors can be converted to Python scalars",
                    "diffusion_times is a tensor of many times: use torch.sin, torch.cos and torch.acos (math.sin "
                    "and friends take one number)"),
                   # torch.acos(max_signal_rate): a student's pass of the lab (2026-12-08) got the bare TypeError
                   ("must be Tensor, not float",
                    "min_signal_rate and max_signal_rate are numbers: math.acos(max_signal_rate) (torch.acos, "
                    "torch.cos and the like take a tensor); the angles of diffusion_times, a tensor, then go "
                    "through torch.cos and torch.sin")),
               draws_nothing=True, answer=answer_diffusion_schedule))
check_diffusion_schedule = visible("diffusion_schedule")


def _schedule_float(t, min_signal_rate=0.02, max_signal_rate=0.95, **switches):
    return tuple(v.float() for v in ref_diffusion_schedule(t, min_signal_rate, max_signal_rate, **switches))


def _swapped_schedule(t, min_signal_rate=0.02, max_signal_rate=0.95):
    noise_rates, signal_rates = _schedule_float(t, min_signal_rate, max_signal_rate)
    return signal_rates, noise_rates


def _asin_rates(t, min_signal_rate=0.02, max_signal_rate=0.95):
    """The angle from arcsin(max_signal_rate) to arcsin(min_signal_rate): cos and sin trade places."""
    start, end = math.asin(max_signal_rate), math.asin(min_signal_rate)
    angles = start + t * (end - start)
    return torch.sin(angles), torch.cos(angles)


def _linear_rates(t, min_signal_rate=0.02, max_signal_rate=0.95):
    signal_rates = max_signal_rate + t * (min_signal_rate - max_signal_rate)
    return (1 - signal_rates ** 2).sqrt(), signal_rates


def _math_rates(t, min_signal_rate=0.02, max_signal_rate=0.95):
    """The angles through the math module, which takes one number: a ValueError on a tensor of several times."""
    start, end = math.acos(max_signal_rate), math.acos(min_signal_rate)
    angles = start + t * (end - start)
    return math.sin(angles), math.cos(angles)


def _seeding_schedule(t, min_signal_rate=0.02, max_signal_rate=0.95):
    """torch.manual_seed(0) inside: right rates, and the lab's training draws the same noise at every step."""
    torch.manual_seed(0)
    return _schedule_float(t, min_signal_rate, max_signal_rate)


def _shape_cached_schedule():
    """Rates kept by the times' shape: right at the first call of each shape."""
    kept = {}

    def diffusion_schedule(diffusion_times, min_signal_rate=0.02, max_signal_rate=0.95):
        key = (tuple(diffusion_times.shape), min_signal_rate, max_signal_rate)
        if key not in kept:
            kept[key] = ref_diffusion_schedule(diffusion_times, min_signal_rate, max_signal_rate)
        return tuple(r.float() for r in kept[key])
    return diffusion_schedule


MISTAKES["diffusion_schedule"] = [
    ("swapped", _swapped_schedule, "swapped"),
    ("rates kept by the times' shape", _shape_cached_schedule(), "the rates of an earlier call"),
    ("computed in float16", lambda t, min_signal_rate=0.02, max_signal_rate=0.95: tuple(
        r.half().float() for r in ref_diffusion_schedule(t.half().double(), min_signal_rate, max_signal_rate)),
     "the rounding of half precision"),
    ("torch.manual_seed inside", _seeding_schedule, "moved torch's global random generator"),
    ("arcsin for arccos", lambda t, min_signal_rate=0.02, max_signal_rate=0.95: tuple(_asin_rates(
        t, min_signal_rate, max_signal_rate)), "swapped"),
    ("signal linear in t", _linear_rates, "the ANGLE goes linearly"),
    ("backwards", lambda t, min_signal_rate=0.02, max_signal_rate=0.95:
        _schedule_float(1 - t, min_signal_rate, max_signal_rate), "backwards"),
    ("arccos forgotten", lambda t, min_signal_rate=0.02, max_signal_rate=0.95:
        _schedule_float(t, min_signal_rate, max_signal_rate, arccos=False), "starts at max_signal_rate itself"),
    ("ignores min/max_signal_rate", lambda t, min_signal_rate=0.02, max_signal_rate=0.95: _schedule_float(t),
     "use the min_signal_rate and max_signal_rate you are given"),
    ("float64 (the lab's UNet then raises)", lambda t, min_signal_rate=0.02, max_signal_rate=0.95:
        ref_diffusion_schedule(t, min_signal_rate, max_signal_rate), "return float32"),
    ("returns one tensor", lambda t, min_signal_rate=0.02, max_signal_rate=0.95: t, "return a tuple"),
    ("math.sin on a tensor", _math_rates, "use torch.sin, torch.cos and torch.acos"),
    ("the squares returned", lambda t, min_signal_rate=0.02, max_signal_rate=0.95: tuple(
        r ** 2 for r in _schedule_float(t, min_signal_rate, max_signal_rate)), "those are the squares"),
    ("angle = start + t * end", lambda t, min_signal_rate=0.02, max_signal_rate=0.95: _schedule_float(
        t, min_signal_rate, max_signal_rate, mistake="end"), "the angle is start + t * end"),
    ("angles in degrees", lambda t, min_signal_rate=0.02, max_signal_rate=0.95: _schedule_float(
        t, min_signal_rate, max_signal_rate, mistake="degrees"), "the angles are in degrees"),
    ("not implemented", todo, "not implemented yet"),
]


# ------------------------------------------------------------------ respace: a short chain with the same alpha_bar
def ref_respaced_betas(schedule: NoiseSchedule, timesteps: Tensor, *, mistake: str | None = None) -> Tensor:
    """beta_k = 1 - alpha_bar[t_k] / alpha_bar[t_{k-1}] (alpha_bar before the first kept step = 1), float64 (K,).

    ``mistake`` gives a catalogued wrong answer instead: "old betas", "differences", "upside down", "alpha_bar",
    "first dropped".
    """
    ts = timesteps.long()
    alpha_bar = alpha_bar64(schedule)[ts]
    prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
    return {None: lambda: 1 - alpha_bar / prev,
            "old betas": lambda: schedule.betas.double().cpu()[ts],
            "differences": lambda: prev - alpha_bar,
            "upside down": lambda: 1 - prev / alpha_bar,
            "alpha_bar": lambda: alpha_bar,
            "first dropped": lambda: (1 - alpha_bar / prev)[1:]}[mistake]()


def _respace_cases(hidden: bool) -> list:
    cases = [dict(schedule=NoiseSchedule.linear(1000), timesteps=torch.linspace(0, 999, 10).round().long())]
    if hidden:
        cases += [dict(schedule=NoiseSchedule.cosine(1000), timesteps=torch.tensor([0, 10, 500, 999])),
                  dict(schedule=NoiseSchedule.linear(50, 1e-3, 0.1), timesteps=torch.tensor([5, 20, 40])),
                  dict(schedule=NoiseSchedule.linear(10, 1e-3, 0.1), timesteps=torch.arange(10))]
    return cases


def _respace_call(f, c):
    """The student's betas. A schedule changed in place (the worksheet's next plot reads ``long_chain.betas`` after
    respace has run) is told by ``framework.call_case``, as for every check whose case holds a schedule."""
    return dict(betas=f(c["schedule"], c["timesteps"]))


def _respace_diagnose(record, case) -> str | None:
    out = record["betas"]
    schedule, ts = case["schedule"], case["timesteps"]
    ref = ref_respaced_betas(schedule, ts)
    if isinstance(out, Tensor) and out.shape == ref[1:].shape and close(out, ref[1:], atol=BETA_ATOL):
        return ("the first new beta is missing: the short chain starts from clean data (alpha_bar = 1), so it has "
                "one beta per kept step, the first being 1 - alpha_bar at the first kept step")
    if isinstance(out, Tensor) and out.shape == ref.shape and bool(out[0] < 0) and bool((out[1:] >= 0).all()) \
            and close(out[1:], ref[1:], atol=BETA_ATOL):
        return ("the first beta is negative: before the first kept step comes clean data, alpha_bar = 1, not the "
                "alpha_bar of the last kept step (a.roll(1), or index k - 1 at k = 0, wraps around to the end)")
    if isinstance(out, Tensor) and out.shape == ref.shape and (out < 0).any():
        return "some betas are negative: each new alpha is a ratio below 1, and yours is upside down"
    return judge(out, ref, [
        ("those are the old betas at the kept steps: the steps in between are lost, so the short chain keeps far "
         "too much signal; its alpha_bar must equal the old alpha_bar at every kept step",
         ref_respaced_betas(schedule, ts, mistake="old betas")),
        ("alpha_bar is a product: a new step's alpha is a ratio of consecutive kept alpha_bar's, not a difference",
         ref_respaced_betas(schedule, ts, mistake="differences")),
        ("you returned alpha_bar at the kept steps; return the betas of the short chain",
         ref_respaced_betas(schedule, ts, mistake="alpha_bar")),
    ], "betas", _respace_generic(out, schedule, ts), atol=BETA_ATOL)


def _respace_generic(out, schedule, ts) -> str:
    """The generic hint, with the first kept step where the student's cumulative product leaves alpha_bar."""
    said = "the cumulative product of 1 - your betas must equal schedule.alpha_bar at the kept steps"
    if not (isinstance(out, Tensor) and tuple(out.shape) == (len(ts),) and torch.isfinite(out).all()):
        return said
    product = torch.cumprod(1 - out.double(), 0)
    target = schedule.alpha_bar.double()[ts.long()]
    wrong = [k for k in range(len(ts)) if not math.isclose(float(product[k]), float(target[k]), rel_tol=1e-4,
                                                             abs_tol=1e-7)]
    if not wrong:
        return said
    k = wrong[0]
    where = (" (there the product is 1 - beta_0 alone: the short chain starts from clean data, alpha_bar = 1, so "
             "1 - beta_0 must be alpha_bar at the first kept step)" if k == 0 else "")
    return (f"{said}; yours first leaves it at kept step {k}, t = {int(ts[k])}: {float(product[k]):.6g} against "
            f"alpha_bar[{int(ts[k])}] = {float(target[k]):.6g}{where}")


register(Check("respace", "respace", _respace_cases, _respace_call, _respace_diagnose))
check_respace = visible("respace")


def _respace_variant(mistake: str | None):
    return lambda schedule, timesteps: ref_respaced_betas(schedule, timesteps, mistake=mistake).float()


def _respace_into_the_schedule(schedule, timesteps):
    """Right betas, written into the long chain's own betas on the way."""
    betas = ref_respaced_betas(schedule, timesteps).float()
    schedule.betas[timesteps] = betas
    return betas


MISTAKES["respace"] = [
    ("old betas at the kept steps", _respace_variant("old betas"), "old betas"),
    ("differences of alpha_bar", _respace_variant("differences"), "not a difference"),
    ("ratio upside down", _respace_variant("upside down"), "upside down"),
    ("alpha_bar returned", _respace_variant("alpha_bar"), "you returned alpha_bar"),
    ("first step dropped", _respace_variant("first dropped"), "first new beta is missing"),
    ("writes into the schedule", _respace_into_the_schedule, "changed the schedule it was given"),
    ("the previous alpha_bar wraps around", lambda schedule, timesteps: (1 - schedule.alpha_bar[timesteps] / schedule
                                                                        .alpha_bar[timesteps].roll(1)).float(),
     "wraps around to the end"),
    ("not implemented", todo, "not implemented yet"),
]
