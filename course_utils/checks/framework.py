"""The machinery every worksheet check shares: harvest in the student's kernel, verdict in the grader.

- ``harvest(name, obj)`` runs INSIDE the student's kernel: it only calls the student's object on the
  check's cases and returns the raw outputs (tensors, lists and dicts of tensors, or an error record).
- ``verdict(name, outputs)`` runs in the grader (or in the notebook, for instant feedback): it recomputes the
  reference from the case and the outputs only, and turns them into ``CheckResult(passed, message)``, with
  the hint of the first catalogued mistake the outputs match.

Also here: the helpers that diagnose functions share (``shape_hint``, ``close``, ``judge``) and the float64
quantities the references recompute from a schedule's betas (``alpha_bar64``, ``alpha_bar_prev64``, ``gather``).
"""
from __future__ import annotations

import math
import re
import dataclasses
import functools
import sys
import sysconfig
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..schedules import NoiseSchedule
from ..settings import wrapped

PASS, FAIL, TODO = "✅", "❌", "⏳"
MAX_MESSAGE = 1000        # characters of a check's message
# a computed value (a decimal point or an exponent: 0.948, 1.2e-05, nan and inf are words), masked in a message about
# a hidden case; whole numbers stay: they are a hint's formula ("(1 + step) / (10 + step)"), a shape or an index
_VALUE = re.compile(r"\d*\.\d+(?:[eE][-+]?\d+)?|\d+\.?(?:[eE][-+]?\d+)|\d+\.(?!\w)")
# One verdict at a time per process: references rebuild modules from torch's global random generator
# (``seeded_state``), which the grader's threads (``--workers``) would otherwise reseed under each other.
_VERDICT_LOCK = threading.RLock()


def raised_record(err: Exception) -> dict:
    """What a check's ``call`` records for a call that may fail on purpose: the error as text, for ``diagnose``."""
    return {"raised": f"{type(err).__name__}: {str(err)[:200]}"}


def repeat_hint(record, ref: Tensor, when: str, fix: str) -> str | None:
    """diagnose's verdict on a second call made under other conditions (``when``, e.g. "under torch.no_grad()"):
    what it raised (a ``raised_record``), or whether it still gives ``ref``; ``fix`` says what to change."""
    if isinstance(record, dict) and "raised" in record:
        return f"{when} it raised {kernel_text(record['raised'])}: {fix}"
    if not close(record, ref):
        return f"{when} the result differs: {fix}"
    return None


def kernel_text(x, limit: int = 300) -> str:
    """Text the student's process reported, as text: a str cut to ``limit``; anything else only named by its type
    (formatting a tensor or a list the kernel sent could cost the grader seconds and megabytes: a repr is built in
    full before it can be cut)."""
    return x[:limit] if isinstance(x, str) else f"<{type(x).__name__}>"


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
    explain:  explain(error text) -> a hint added after an exception the student's code raised (its type and
              message, as a harvest recorded them), or None: for errors whose own text points elsewhere (PyTorch's
              words on a GroupNorm given the wrong number of channels, where the fix is the order of the layers)
    calls:    the other TODOs of the worksheet the target calls by name (the lab's reverse_diffusion calls denoise
              and diffusion_schedule): the target runs with the student's own, so a wrong one can fail a right
              target; its failure then says so (``depends_note``), and the instant check runs it again with each
              failing one's ``answer`` in its place (the grader does the same with the solution's code:
              ``grade_callees``)
    answer:   for a TODO that others call: a function of no argument that returns a right implementation of it,
              with the TODO's signature (``report`` lends it to a caller whose own fails). While grading, the
              kernel's copy of the checks stubs it (it is no check's ``call``)
    draws_nothing: the right answer, and ``call``, draw nothing from torch's global generator: a call that moves
              it (a torch.manual_seed inside, as in the lab's diffusion_schedule or denoise, makes the training that
              calls it draw the same noise at every step) fails, in ``call_case``
    """

    name: str
    target: str
    cases: Callable[[bool], list]
    call: Callable[[Any, dict], Any]
    diagnose: Callable[[Any, dict], str | None]
    explain: Callable[[str], str | None] | None = None
    calls: tuple[str, ...] = ()
    draws_nothing: bool = False
    answer: Callable[[], Any] | None = None


CHECKS: dict[str, Check] = {}
# name -> [(mistake id, a wrong implementation, a substring its hint must contain)]: the catalogue the tests use
MISTAKES: dict[str, list[tuple[str, Callable, str]]] = {}


def explain_by(*pairs: tuple[str, str]) -> Callable[[str], str | None]:
    """A Check's ``explain`` from (words of the raised error's text, the hint) pairs: the first pair whose words the
    text holds gives its hint."""
    def explain(error: str) -> str | None:
        return next((hint for words, hint in pairs if words in error), None)
    return explain


def register(check: Check) -> Check:
    """Record ``check``, its cases made one at a time with the verdicts and torch's global generator restored
    after them (``isolated_cases``)."""
    check = dataclasses.replace(check, cases=isolated_cases(check.cases))
    CHECKS[check.name] = check
    return check


def isolated_cases(cases: Callable[[bool], list]) -> Callable[[bool], list]:
    """``cases`` run under ``_VERDICT_LOCK`` with torch's global generator forked: some seed torch and build a
    network (worksheet 4's EMA), and the grader judges students in threads, so a case built in one thread between
    another's ``manual_seed`` and its network (``seeded_state``) changed that network's weights (an honest
    training_step once failed CI so); in the student's kernel, the instant check leaves their seed as it was."""
    if getattr(cases, "isolated", False):
        return cases

    @functools.wraps(cases)
    def isolated(hidden: bool) -> list:
        with _VERDICT_LOCK, torch.random.fork_rng(devices=[]):
            return cases(hidden)
    isolated.isolated = True
    return isolated


def harvest(name: str, obj: Any, *, hidden: bool = True) -> list:
    """The student's outputs on every case: a tensor structure, or {"error": type, "message": text}."""
    check = CHECKS[name]
    results = []
    for case in check.cases(hidden):
        out, record = call_case(check, obj, {k: (v.clone() if isinstance(v, Tensor) else v) for k, v in case.items()})
        if record is None:
            try:
                out = _detach(out)
            except TypeError as err:
                record = {"error": RETURNED, "message": str(err)}
        results.append(out if record is None else record)
    return results


def call_case(check: Check, obj: Any, case: dict) -> tuple[Any, dict | None]:
    """``check.call(obj, case)`` as both harvests run it (``harvest`` here, the grader's kernel half in
    ``sandbox/values.py``): ``(output, None)``, or ``(None, record)`` where the student's code raised (its type,
    text and line: ``error_record``), changed a tensor of the case (``changed_input``), left grad mode, the
    default dtype or torch's number of threads changed for every later cell (``global_state_left``; all three are
    put back), wrote into a schedule
    or a list of the case (``schedule_changed``), or, for a check that ``draws_nothing``, moved torch's global
    generator (judged from a state of its own, then undone)."""
    before = {k: v.clone() for k, v in case.items() if isinstance(v, Tensor)}
    schedules = {k: _schedule_tensors(v) for k, v in case.items() if isinstance(v, NoiseSchedule)}
    lists = {k: list(v) for k, v in case.items() if isinstance(v, list)}
    grad, dtype, threads = torch.is_grad_enabled(), torch.get_default_dtype(), torch.get_num_threads()
    with torch.random.fork_rng(devices=[], enabled=check.draws_nothing):
        if check.draws_nothing:     # a state of our own (a reseed to the state it finds would go unseen), undone after
            torch.manual_seed(DRAWS_NOTHING_SEED)
            rng = torch.random.get_rng_state()
        try:
            out = check.call(obj, case)
        except NotImplementedError:
            return None, {"error": "NotImplementedError", "message": "not implemented yet"}
        except KeyboardInterrupt:       # Ctrl-C, or the grader's per-cell timeout: stop
            raise
        except BaseException as err:  # noqa: BLE001 - any student error (SystemExit too) becomes a message
            return None, error_record(err)
        finally:    # what the call left behind for every later cell, told below, then put back for the next case
            left = global_state_left(grad, dtype, threads)
            torch.set_grad_enabled(grad)
            torch.set_default_dtype(dtype)
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
        moved = check.draws_nothing and not torch.equal(rng, torch.random.get_rng_state())
    changed = changed_input(case, before) or left or next(
        (said for k, was in schedules.items() if (said := schedule_changed(k, case[k], was))), None) or next(
        (f"your function changed its input {k} (a list) in place, and with it the caller's list: a second run of "
         f"the cell then gets the changed one; make a new list (sorted({k}), {k} + [...]), not {k}.sort() or "
         f"{k}.append(...)" for k, was in lists.items() if case[k] != was), None)
    if changed is None and moved:
        changed = rng_moved_hint("your function", "a manual_seed inside it makes the training that calls it draw "
                                 "the same noise and times at every step", lead="the values may be right")
    return (out, None) if changed is None else (None, {"error": RETURNED, "message": changed})


DRAWS_NOTHING_SEED = 2 ** 31 - 7      # the global generator's state while a ``draws_nothing`` check runs


def rng_moved_hint(what: str, harm: str, *, lead: str = "the values are right") -> str:
    """The hint for a call that moved torch's global generator where the right answer draws nothing from it
    (``draws_nothing`` checks here; worksheet 4's loss, training step and EMA, whose calls seed their own
    network first, measure it themselves); ``harm``: what a manual_seed there does to the worksheet."""
    return (f"{lead}, but {what} moved torch's global random generator (a torch.manual_seed, or a draw of its "
            f"own) and draws nothing: {harm}")


def global_state_left(grad: bool, dtype: torch.dtype, threads: int | None = None) -> str | None:
    """The message for a call that left torch's grad mode, default dtype or number of threads changed (``grad``,
    ``dtype`` and ``threads`` as they were before it), else None: a setting a function changes holds for every
    cell after it (a side-effects pass: cfg_combine ending in torch.set_grad_enabled(False) passed, then the
    worksheet's training raised "element 0 of tensors does not require grad" and a right cfg_loss failed its
    check)."""
    if torch.is_grad_enabled() != grad:
        return ("the values may be right, but your function left gradients switched "
                f"{'off' if grad else 'on'} for every cell after it (torch.set_grad_enabled): the worksheet's "
                "training then raises \"element 0 of tensors does not require grad\"; put the part that needs no "
                "gradient in a `with torch.no_grad():` block, which switches them back on at its end")
    if torch.get_default_dtype() != dtype:
        return (f"the values may be right, but your function changed torch's default dtype to "
                f"{str(torch.get_default_dtype()).removeprefix('torch.')} for every cell after it "
                "(torch.set_default_dtype): the course's networks are float32, and the next ones raise \"mat1 and "
                "mat2 must have the same dtype\"; ask for float64 where you need it (dtype=torch.float64)")
    if threads is not None and torch.get_num_threads() != threads:
        return (f"the values may be right, but your function set torch's number of threads to "
                f"{torch.get_num_threads()} (it was {threads}) for every cell after it (torch.set_num_threads): "
                "the training and sampling cells then run on fewer cores, or fight over them; leave the setting "
                "to the notebook")
    return None


def _schedule_tensors(schedule: NoiseSchedule) -> dict[str, Tensor]:
    """Copies of a schedule's tensors (``NoiseSchedule``'s fields, and any other tensor set on it)."""
    return {k: v.detach().clone() for k, v in vars(schedule).items() if isinstance(v, Tensor)}


def schedule_changed(k: str, schedule: NoiseSchedule, was: dict[str, Tensor]) -> str | None:
    """The message for a call that changed a schedule it was given (a field written in place, rebound, or added),
    else None: every later use of that schedule, a sampler or the next cells, gets the changed values (a side-effects
    pass: ``coef = schedule.betas[t]; coef /= ...`` in ddpm_step made a second sampling run collapse to a point)."""
    now = _schedule_tensors(schedule)
    for field in sorted(set(now) | set(was)):
        a, b = now.get(field), was.get(field)
        if a is None or b is None or a.shape != b.shape or a.dtype != b.dtype or not torch.equal(a, b):
            return (f"the values may be right, but your function changed the schedule it was given "
                    f"({k}.{field}), and with it the caller's schedule for every later use (a sampler, the next "
                    "cells): read the schedule, never write it "
                    f"({k}.{field}[t] / s makes a new tensor; x = {k}.{field}[t] then x /= s writes into the "
                    "schedule, since indexing with one t gives a view)")
    return None


def changed_input(given: dict, before: dict) -> str | None:
    """The message for a function that changed a tensor it was given (its values, or requires_grad), else None:
    the caller's tensor is changed too (a notebook's x0 noised again at every call). ``before`` holds copies."""
    for k, v in given.items():
        if isinstance(v, Tensor) and isinstance(before.get(k), Tensor):
            said = _changed(k, v.detach(), v.requires_grad, before[k])
            if said:
                return said
    return None


def _changed(k: str, now: Tensor, requires_grad: bool, was: Tensor) -> str | None:
    # the values first: an in-place sum with a tensor that requires grad (``out = x; out += h``) also makes the
    # input require grad, and is told as the in-place change it is
    if now.shape != was.shape or now.dtype != was.dtype or not (
            torch.equal(now, was.detach()) or (now.is_floating_point()       # a NaN input equals itself
                                               and torch.allclose(now, was.detach(), rtol=0, atol=0, equal_nan=True))):
        return (f"your function changed its input {k} in place, and with it the caller's tensor: compute a "
                f"new tensor ({k} * a, not {k}.mul_(a) or {k} *= a; out = {k} names the same tensor, so "
                f"out += h changes {k} too)")
    if requires_grad != was.requires_grad:
        return (f"your function set requires_grad on its input {k}, which changes the caller's tensor: work "
                f"on a copy ({k}.detach().requires_grad_(True))")
    return None


INPUTS_AFTER = "__inputs_after__"


def judge_inputs(name: str, outputs: list, *, hidden: bool = True) -> list:
    """``outputs`` of the grader's harvest (sandbox/values.py) with their last element, the case's tensors as the
    kernel held them right after each call (``{INPUTS_AFTER: [{k: [tensor, requires_grad, plain]}, ...]}``, plain:
    still exactly a torch.Tensor), checked here
    against the grader's own cases: an output whose call changed an input becomes that record. Computed in the
    grader, so that a notebook which silences the kernel's ``changed_input`` (a monkeypatch) gains nothing."""
    cases = CHECKS[name].cases(hidden)
    last = outputs[-1] if outputs else None
    after = last.get(INPUTS_AFTER) if isinstance(last, dict) else None
    if not isinstance(after, list) or len(after) != len(cases):
        raise ValueError("the harvest did not send the inputs back after the calls")
    judged = list(outputs[:-1])
    for k, (out, case, now) in enumerate(zip(judged, cases, after)):
        if _is_error(out):
            continue
        for key, was in case.items():
            if not isinstance(was, Tensor):
                continue
            entry = now.get(key) if isinstance(now, dict) else None
            if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], Tensor)
                    and isinstance(entry[1], bool) and isinstance(entry[2], bool)):
                raise ValueError(f"the harvest did not send the input {key!r} back")
            said = _changed(key, entry[0], entry[1], was) if entry[2] else (
                f"your function changed its input {key} in place (its class), and with it the caller's tensor: "
                f"compute a new tensor")
            if said:
                judged[k] = {"error": RETURNED, "message": said}
                break
    return judged


def same_seed_hint(out, again, what: str) -> str | None:
    """The hint for a function whose two runs with generators of the same seed differ (``what``: "chains",
    "samples"), else None: it draws noise from somewhere other than the generator it was given."""
    if isinstance(again, Tensor) and isinstance(out, Tensor) and again.shape == out.shape and torch.equal(again, out):
        return None
    return (f"two runs with generators of the same seed gave different {what}: draw every noise from the "
            "generator you are given, torch.randn(x.shape, generator=generator) (torch.randn_like ignores it)")


def first_few(values, fmt: str = "{}", n: int = 4) -> str:
    """The first ``n`` of ``values`` for a message, "a, b, c, d, ..." (each through ``fmt``)."""
    values = list(values)
    return ", ".join(fmt.format(v) for v in values[:n]) + (", ..." if len(values) > n else "")


def foreign_noise(added: Tensor, given: Tensor, expected_std: float) -> bool:
    """Whether ``added`` (what a function added where the ``given`` noise belongs, same number of values) is noise
    of about the right size (0.5 to 2 times ``expected_std``) but unrelated to ``given`` (|correlation| < 0.5): a
    draw of its own (torch.randn_like) instead of the noise it was handed."""
    a, g = added.double().flatten(), given.double().flatten()
    if a.numel() != g.numel() or a.numel() < 2 or expected_std <= 0 or not torch.isfinite(a).all():
        return False
    size = float(a.std()) / expected_std
    return 0.5 < size < 2 and abs(float(torch.corrcoef(torch.stack([a, g]))[0, 1])) < 0.5


def three_point_noise(z: Tensor) -> Tensor:
    """The catalogue's noise that only matches a normal's moments: -sqrt(3), 0, sqrt(3) with probabilities 1/6,
    2/3, 1/6 (mean 0, variance 1, fourth moment 3), made from N(0, 1) draws z (|z| > 0.9674 has probability 1/3)."""
    return math.sqrt(3.0) * z.sign() * (z.abs() > 0.9674)


def gaussian_noise_hint(z: Tensor, step: str) -> str | None:
    """None when ``z`` (draws, coordinates), the standardised noise that ``step`` ("step 3", "the first step")
    added, looks like independent N(0, 1): the coordinates uncorrelated, the two halves of the draws
    uncorrelated, the fourth moment 3 (5 SE), and the values within Kolmogorov-Smirnov distance 3 / sqrt(n) of
    N(0, 1) (a normal sample exceeds it with probability about 3e-8; noise that only matches a normal's moments,
    such as three values, does not). Worksheet 2's chain and worksheet 5's DDIM loop draw their own noise."""
    from scipy.stats import kstest

    n = z.shape[0]
    cols = torch.corrcoef(z.T)[0, 1] if z.shape[1] > 1 else torch.tensor(0.0)
    if abs(float(cols)) > 5 / math.sqrt(n):
        return (f"{step} adds the same noise to every coordinate of a point (correlation {float(cols):.2f}): "
                "draw one number per coordinate, torch.randn(x.shape)")
    half = n // 2
    pairs = float((z[:half] * z[half:2 * half]).mean())
    if abs(pairs) > 5 / math.sqrt(half * z.shape[1]):
        return f"{step}'s noise is correlated between chains ({pairs:.2f}): draw fresh noise for every chain"
    kurtosis = float((z ** 4).mean())
    if abs(kurtosis - 3) > 5 * math.sqrt(96 / z.numel()):
        return (f"{step}'s noise is not Gaussian (fourth moment {kurtosis:.2f} of its standardised values, "
                "3 for a normal distribution): use torch.randn")
    distance, limit = float(kstest(z.double().flatten().numpy(), "norm").statistic), 3 / math.sqrt(z.numel())
    if distance > limit:
        return (f"{step}'s noise is not Gaussian: the distribution of its standardised values is {distance:.2f} "
                f"away from a normal one (largest gap between the two CDFs; a normal sample stays within "
                f"{limit:.2f}), though its mean and variance may be right: use torch.randn")
    return None


def without_gradient(module: nn.Module, out) -> list[str] | str:
    """The names of ``module``'s parameters that no gradient reaches from ``out`` (runs in the student's
    process, after the output was recorded): a forward pass under torch.no_grad(), or with a .detach() on the
    way, gives the right values and a network that never trains. All of them when ``out`` has no graph; the
    error's text when backward raised because a tensor it needs was changed in place (training would crash)."""
    names = [name for name, p in module.named_parameters() if p.requires_grad]
    for p in module.parameters():
        p.grad = None
    try:
        (out * torch.linspace(0.5, 1.5, out.numel()).reshape(out.shape)).sum().backward()
    except Exception as err:  # noqa: BLE001 - no graph at all (no_grad, detach), or not a tensor: nothing reached
        return str(err)[:300] if _INPLACE in str(err) else names
    reached = {name for name, p in module.named_parameters() if p.grad is not None}
    return [name for name in names if name not in reached]


_INPLACE = "modified by an inplace operation"


def gradient_hint(missing, what: str) -> str | None:
    """The hint for parameters ``without_gradient`` found (a list of names; the text of backward's error), else
    None."""
    if isinstance(missing, str) and _INPLACE in missing:
        return (f"the values are right, but backward through the {what} raises \"one of the variables needed "
                f"for gradient computation has been {_INPLACE}\", so training would crash: forward changes in place "
                "a tensor the gradient needs (x += ..., x.add_(...), out = x then out += h, an activation with "
                "inplace=True): compute new tensors (out = self.skip(x) + h)")
    if not isinstance(missing, list) or not missing:
        return None
    shown = ", ".join(kernel_text(m, 60) for m in missing[:4]) + (", ..." if len(missing) > 4 else "")
    layer = kernel_text(str(missing[0]).rpartition(".")[0] or str(missing[0]), 60)
    return (f"the values are right, but no gradient reaches {shown} of the {what}: training would never update "
            "them. Keep the forward pass connected (no torch.no_grad(), .detach() or .data inside it), and go "
            f"through the layers the given __init__ made (self.{layer}): a functional call such as F.group_norm, "
            "or a layer built inside forward, computes the same numbers at first but leaves those weights out")


def fresh_draws_hint(first, second, what: str) -> str | None:
    """The hint for a function that, called twice with ONE generator, gave the same ``what`` twice (else None):
    it reseeds the generator or torch itself, so every call draws the same "random" noise (the seeds of a
    notebook's cells then stop mattering)."""
    if isinstance(first, Tensor) and isinstance(second, Tensor) and first.shape == second.shape and torch.equal(
            first, second):
        return (f"two calls in a row with one generator gave the same {what}: your function reseeds the generator "
                "(or torch) itself; draw from the generator as it is given, without manual_seed, so that each "
                "call continues its stream")
    return None


def not_an_output(x) -> str:
    """What a student reads when their function returns something that is not tensors, numbers or text."""
    kind = f"{type(x).__module__}.{type(x).__name__}".removeprefix("builtins.")
    hint = " (torch.from_numpy(a) turns an array into a tensor)" if type(x).__module__ == "numpy" else ""
    return f"return torch tensors (or a tuple of them), not a {kind}{hint}"


RETURNED = "returned"      # the error record of an output that is not tensors: the student's function did not raise
_LIBRARIES = tuple({str(Path(sysconfig.get_paths()[k]).resolve()) for k in ("stdlib", "platstdlib", "purelib",
                                                                                "platlib")}
                   | {str(Path(__file__).resolve().parents[1])})      # this package (or the kernel's copy of it)


def _in_library(filename: str) -> bool:
    if filename.startswith("<"):                     # exec'd code (the harvest's codec), but not a notebook cell
        return not filename.startswith("<ipython")
    try:
        return str(Path(filename).resolve()).startswith(_LIBRARIES)
    except (OSError, RuntimeError):                  # a path the sandbox hides, a symlink loop: the student's
        return False


def error_record(err: BaseException) -> dict:
    """A student's error as a harvest records it: its type, its text, and where in the student's code it
    happened, the innermost frame outside torch, the standard library and this package (their line numbers
    mean nothing to a student: "line 134" of torch's linear.py). The function is named with its class
    ("ResBlock.forward": a UNet's error inside the student's ResBlock said only "in forward", the name of both).
    Both harvests use it, through ``call_case``."""
    frames = [(frame.f_code, lineno) for frame, lineno in traceback.walk_tb(err.__traceback__)
              if not _in_library(frame.f_code.co_filename)]
    if not frames:
        return {"error": type(err).__name__, "message": str(err)[:1000]}
    code, lineno = frames[-1]
    name = getattr(code, "co_qualname", code.co_name).replace("<locals>.", "")
    return {"error": type(err).__name__, "message": f"{str(err)[:1000]} (line {lineno}, in {name})"}


def verdict(name: str, outputs: list, *, hidden: bool = True) -> CheckResult:
    """Judge harvested outputs against the reference; the message names the first problem and a hint.
    Thread-safe: verdicts of one process run one at a time (``_VERDICT_LOCK``), and leave torch's global generator
    as they found it (some rebuild a case's network, which draws its initial weights): any code of the grader that
    uses the global generator holds ``_VERDICT_LOCK`` (``seeded_state``, ``isolated_cases``)."""
    with _VERDICT_LOCK, torch.random.fork_rng(devices=[]):
        return _verdict(name, outputs, hidden)


def _verdict(name: str, outputs: list, hidden: bool) -> CheckResult:
    check = CHECKS[name]
    cases = check.cases(hidden)
    label = f"{check.target}"
    if len(outputs) != len(cases):
        return CheckResult(False, f"{FAIL} {label}: expected {len(cases)} results, got {len(outputs)}", "error")
    for out in outputs:
        if _is_error(out) and out.get("error") == "NotImplementedError":
            return CheckResult(False, f"{TODO} {label}: not implemented yet", "not_implemented")
    shown = len(check.cases(False)) if hidden else len(cases)   # the first cases are the worksheet's own
    for k, (out, case) in enumerate(zip(outputs, cases)):
        if _is_error(out):
            said = (kernel_text(out["message"], 600) if out["error"] == RETURNED else
                    f"raised {kernel_text(out['error'], 100)}: {kernel_text(out['message'], 600)}")
            hint = check.explain(said) if check.explain and out["error"] != RETURNED else None
            if hint:
                said = f"{said}; {hint}"
            return CheckResult(False, f"{FAIL} {label}: {said if k < shown else hidden_case(said)}", "error")
        try:
            hint = check.diagnose(out, case)
        except Exception as err:  # noqa: BLE001 - malformed outputs (wrong type, wrong structure)
            hint = f"could not compare your output with the reference ({type(err).__name__}: {str(err)[:300]})"
        if hint is not None:                   # anything but None is a fail, an empty hint too
            hint = str(hint) or "your output and the reference differ"
            return CheckResult(False, f"{FAIL} {label}: {hint if k < shown else hidden_case(hint)}"[:MAX_MESSAGE],
                               "fail")
    return CheckResult(True, f"{PASS} {label}: correct", "pass")


def hidden_case(message: str) -> str:
    """A message about a hidden case, without its computed values. The reference's values ("the loss is 0.41,
    expected 0.37") would let a student who sees the feedback and may submit again answer that case by heart
    without reading the package. Every number with a decimal point or an exponent goes; whole numbers and words
    stay, so the hint's formula reads as written. The inputs are not secret: the cases are code in this package
    (docs/grading.md, "Hidden tests are not secret")."""
    return "on a hidden case (its values are not shown): " + _VALUE.sub("…", message)


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


# A check's message is printed wrapped at spaces to settings.PRINT_WIDTH columns (JupyterLab cuts a longer printed
# line mid-word); the message itself (what the grader records) stays one line.
def printable(message: str) -> str:
    """``message`` wrapped at spaces to ``PRINT_WIDTH`` columns, the lines after the first indented under the text
    after the verdict's mark (a word longer than a line, a path say, stays whole)."""
    return wrapped(message.replace("\n", " "), indent="   ")


def failing_words(failing: list[str]) -> tuple[str, str, str, str]:
    """("denoise", "fails its own check", "that", "its") for one TODO, the plural for several: how the notes on
    TODOs a failed TODO calls name them (``depends_note``, ``lent_note``, ``grade_callees.credit``)."""
    names = " and ".join(failing)
    return (names, "fails its own check", "that", "its") if len(failing) == 1 else (
        names, "fail their own checks", "those", "their")


def depends_note(failing: list[str]) -> str:
    """What a failed TODO's message adds when TODOs it calls fail their own checks (``Check.calls``)."""
    names, verb, fix, _ = failing_words(failing)
    source = "it" if len(failing) == 1 else "them"
    return f" [it calls your {names}, which {verb}: fix {fix} first, this verdict may come from {source}]"


def _namespace(obj: Any) -> dict:
    """Where ``obj`` looks up the names it calls: a function's globals; a class's, those of its methods (a
    notebook's classes live in __main__; one built by ``exec`` in a dict, in that dict), else its module's."""
    if hasattr(obj, "__globals__"):
        return obj.__globals__
    for member in vars(obj).values() if isinstance(obj, type) else ():
        if hasattr(member, "__globals__"):
            return member.__globals__
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    return vars(module) if module else {}


def _failing_calls(name: str, obj: Any) -> list[str]:
    """The TODOs ``obj`` calls by name (``Check.calls``) that fail their checks, as its notebook defines them."""
    used = _namespace(obj)
    by_target = {c.target: c.name for c in CHECKS.values()}
    return [dep for dep in CHECKS[name].calls
            if dep in by_target and dep in used and not run_check(by_target[dep], used[dep]).passed]


def with_answers(name: str, obj: Any, failing: list[str]) -> CheckResult | None:
    """The result of check ``name`` on ``obj`` with a right implementation (``Check.answer``) of each TODO of
    ``failing`` in place of the student's, in its own namespace for the time of the check (then put back); None
    when one of them has no answer, or cannot give it (while grading, the kernel's copy of the checks stubs the
    answers: a check called in a student's own cell there says only that the grader judges)."""
    by_target = {c.target: c for c in CHECKS.values()}
    try:
        answers = [by_target[dep].answer() for dep in failing]
    except (KeyError, TypeError, PermissionError):    # no such TODO, no answer (None), or an answer hidden
        return None
    used = _namespace(obj)
    saved = {dep: used[dep] for dep in failing if dep in used}
    try:
        used.update(zip(failing, answers))
        return run_check(name, obj)
    finally:
        for dep in failing:
            used.pop(dep, None)
        used.update(saved)


def lent_note(failing: list[str], passed: bool) -> str:
    """What an instant check adds after ``with_answers``: the TODO is right, or wrong in itself too (then the
    message before this note is that run's: ``report``)."""
    yours, own, fix, its = failing_words(failing)
    then = (f"it passes: fix {fix} and this one passes as it is" if passed else
            "it still fails, as said here: its own mistake as well")
    return f" [it calls your {yours}, which {own}; with a right {yours} in {its} place {then}]"


def _hint_of(message: str) -> str:
    """"❌ target: hint" -> "hint"."""
    return re.sub(r"^\S+ [\w.]+: ", "", message, count=1)


def report(name: str, obj: Any) -> Outcome:
    """Print the result of the visible check ``name`` on ``obj`` (one line, wrapped: ``printable``); return whether
    it passed (truthy). Where a TODO ``obj`` calls fails its own check, the check runs again with right ones in
    their place (``with_answers``) and its words follow what that run found, since the first run's hint came from
    the student's wrong callee: a failure that passes there says it is right in itself; one that fails there gives
    that run's hint (its own mistake); a pass that fails there says it passes only beside the wrong callee (the
    verdict stays a pass: the grader judges a TODO with the student's own callees). "Not implemented yet" from a
    TODO it calls (a finished loop beside a stub step raises the step's NotImplementedError) says that it waits
    for that one. (Each case from a student's pass of the lab, 2026-12-08: a hint about the loop's own code
    computed beside a swapped schedule, which the student then "fixed" into a second mistake.)"""
    result = run_check(name, obj)
    with torch.random.fork_rng(devices=[]):    # (worksheet 4's checks measure the global generator: a passing
        failing = _failing_calls(name, obj)     # caller's callees, checked since 2026-12-08, must not move it)
        lent = with_answers(name, obj, failing) if failing else None
    target, message = CHECKS[name].target, result.message
    yours, own, fix, its = failing_words(failing)
    wrong_too = lent is not None and lent.status in ("fail", "error")   # (with right callees: its own mistake)
    if result.passed:
        if wrong_too:
            message += (f" [but only beside your {yours}, which {own}: with a right {yours} in {its} place this "
                        f"one fails ({_hint_of(lent.message)}): fix both together]")
    elif result.status != "not_implemented":
        if wrong_too:
            message = lent.message + lent_note(failing, False)
        elif lent is not None and lent.passed:  # right in itself: the first run's hint came from the callee
            message = f"{FAIL} {target}: right in itself, it fails only with your {yours}" + lent_note(failing, True)
        elif failing:
            message += depends_note(failing)    # (no run with right ones, or it did not finish either)
    elif lent is not None and lent.status != "not_implemented":     # its own code runs: it waits for theirs
        message = (lent.message if wrong_too else f"{TODO} {target}: waits for your {' and '.join(failing)}") \
            + lent_note(failing, lent.passed)
    print(printable(message))
    return Outcome(result)


def ready(name: str, obj: Any, what: str = "this cell") -> bool:
    """Guard for cells that need a TODO: True when ``obj`` passes check ``name``, else prints why it skips."""
    result = run_check(name, obj)
    if not result.passed:
        reason = "is not implemented yet" if result.status == "not_implemented" else "does not pass its check yet"
        print(printable(f"{TODO} skipped {what}: {CHECKS[name].target} {reason}"))
    return result.passed


def visible(name: str) -> Callable[[Any], Outcome]:
    """The worksheet's ``check_<name>(obj)``: prints its verdict, returns whether it passed (truthy)."""
    def check(obj) -> Outcome:
        return report(name, obj)
    check.__name__ = check.__qualname__ = f"check_{name}"
    check.__doc__ = f"Visible check for ``{CHECKS[name].target}``: prints its verdict, returns whether it passed."
    return check


def _is_error(out) -> bool:
    return isinstance(out, dict) and "error" in out and "message" in out


def _detach(out):
    if isinstance(out, Tensor):
        if out.is_meta:     # shapes without values: .cpu() raises NotImplementedError ("Cannot copy out of meta")
            raise TypeError(f"returned a tensor on the meta device (a shape without values, {tuple(out.shape)}): "
                            "make the result from the inputs, on their device")
        if out.device.type != "cpu":    # every case's inputs are on the CPU; .cpu() here would hide a .cuda() that
            # passes on a student's GPU and raises in the grader, which has none (a wrong-answer pass, 2026-12-07)
            raise TypeError(f"returned a tensor on {out.device}, and the inputs are on the CPU: make the result on "
                            "the inputs' device (x.device), without .cuda() or .to(\"cuda\") (the grader has no GPU)")
        return out.detach().cpu().clone()
    if isinstance(out, dict):
        return {str(k): _detach(v) for k, v in out.items()}
    if isinstance(out, (tuple, list)):
        return [_detach(o) for o in out]
    if isinstance(out, (int, float, bool, str)) or out is None:
        return out
    raise TypeError(not_an_output(out))


# ------------------------------------------------------------------ helpers for diagnose functions
def shape_hint(out, ref: Tensor, what: str = "output", *, dtype: bool = True) -> str | None:
    """The hint for an output that is not a tensor of ``ref``'s shape, not float32 (unless ``dtype=False``: the
    caller says so itself once the values are compared), or not finite; None when it is none of these."""
    if isinstance(out, list):       # a tuple too: the harvest (_detach, sandbox.values) returns tuples as lists
        return (f"the {what} should be one torch.Tensor, got {len(out)} values (a tuple or a list): return the "
                f"{what} alone")
    if not isinstance(out, Tensor):
        return f"the {what} should be a torch.Tensor, got {type(out).__name__}"
    if tuple(out.shape) != tuple(ref.shape):
        return f"wrong shape: {tuple(out.shape)} for the {what}, expected {tuple(ref.shape)}"
    if (dtype or out.is_complex()) and not_float32(out):
        return dtype_hint(out.dtype, what)
    if not torch.isfinite(out).all():
        return f"the {what} {'contain' if what.endswith('s') else 'contains'} NaN or inf"
    return None


def sampler_nan_hint(out, ref: Tensor, what: str = "samples") -> str | None:
    """The hint for a sampler's output of the right shape with NaN or inf in it, the mark of a square root of a
    negative number: sigma_t's sqrt(1 - alpha_bar_t / alpha_bar_prev) when a step goes to a SMALLER alpha_bar (even
    at eta = 0, where 0 * NaN is NaN); None otherwise."""
    if not (isinstance(out, Tensor) and tuple(out.shape) == tuple(ref.shape)) or torch.isfinite(out).all():
        return None
    return (f"the {what} {'contain' if what.endswith('s') else 'contains'} NaN or inf: a square root of a negative "
            "number? sigma_t's sqrt(1 - alpha_bar_t / alpha_bar_prev) is NaN when a step goes to a smaller "
            "alpha_bar (0 * NaN is still NaN at eta = 0): the last step goes to alpha_bar_prev = 1 (in Python "
            "alpha_bar[-1] is the LAST entry, almost 0), the grid runs from large t down to 0, and the step is "
            "given alpha_bar_t before alpha_bar_prev, ddim_step(x, eps_pred, alpha_bar_t, alpha_bar_prev)")


def not_float32(out: Tensor) -> bool:
    """A floating-point or complex tensor of another dtype than float32 (a complex result compares equal to a
    real reference where its imaginary part is 0, and would pass)."""
    return (out.is_floating_point() or out.is_complex()) and out.dtype != torch.float32


def dtype_hint(dtype: torch.dtype, what: str = "output", *, values_right: bool = False) -> str:
    """The hint for a floating-point result that is not float32 (every case's inputs are float32, and so are the
    course's networks: a float64 schedule passes its own numbers but makes the lab's UNet raise "xt is float64 but
    the model's weights are float32")."""
    lead = f"the values are right, but the {what} is" if values_right else f"the {what} is"
    return (f"{lead} {str(dtype).removeprefix('torch.')}: return float32, the dtype of the course's tensors and "
            "networks (a course network given float64 raises \"xt is float64 but the model's weights are "
            "float32\"; numpy arrays and math on them are float64: torch.linspace/torch.arange make float32, or add "
            ".float())")


def close(a: Tensor, b: Tensor, tol: float = 1e-4, *, atol: float | None = None) -> bool:
    """Two tensors of the same shape whose values agree within ``tol`` (relative, and absolute unless ``atol``
    says otherwise: quantities as small as a beta of 1e-4 need an atol well below that). Never broadcasts: a
    student's tensor of shape (K, 1, 1, 1, 1) beside a reference of (2, 16, 6, 6) is simply not close (broadcast,
    it would cost the grader K times the reference's memory)."""
    if not (isinstance(a, Tensor) and isinstance(b, Tensor)) or tuple(a.shape) != tuple(b.shape):
        return False
    return bool(torch.allclose(a.double(), b.double(), atol=tol if atol is None else atol, rtol=tol))


WEIGHTS_CHANGED = ("the module's weights are not the ones the given __init__ creates under the check's fixed seed: "
                   "keep the given __init__, leave torch's initialisation (torch.nn.init, torch.manual_seed) alone, "
                   "and don't change the weights while computing the output")


def model_changed(what: str) -> str:
    """The hint for a function that changed the weights of a network the check gave it."""
    return (f"the {what}'s weights are not the ones the check gave it: don't change them (nor torch's "
            "initialisation, torch.nn.init) while computing your result")


def seeded_state(build: Callable[[], nn.Module], seed: int) -> dict[str, Tensor]:
    """The weights ``build()`` creates right after ``torch.manual_seed(seed)``: what a case's module holds in the
    student's process, rebuilt where the verdict runs, the global random state left as it was. References are
    computed from these, never from weights the student's process reports (a student who zeroes every weight
    would otherwise be compared with the reference of a zero network)."""
    with _VERDICT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return {k: v.detach().clone() for k, v in build().state_dict().items()}


def state_changed(reported, expected: dict[str, Tensor]) -> bool:
    """True unless ``reported`` holds every weight of ``expected`` with its shape and value (within 1e-6)."""
    return not isinstance(reported, dict) or not all(close(reported.get(k), v, 1e-6) for k, v in expected.items())


def judge(out, ref: Tensor, variants: list, what: str = "output", generic: str | None = None, *,
          atol: float | None = None) -> str | None:
    """None if ``out`` matches ``ref``; else the hint of the first known mistake it matches, else a generic hint.

    ``variants`` lists (hint, the output of that mistake on this case), most specific first; ``atol`` as in
    ``close``.
    """
    hint = shape_hint(out, ref, what, dtype=False)
    if hint:
        return hint
    if close(out, ref, atol=atol):
        return dtype_hint(out.dtype, what, values_right=True) if not_float32(out) else None
    for mistake_hint, wrong in variants:
        if wrong is not None and tuple(wrong.shape) == tuple(ref.shape) and close(out, wrong, atol=atol):
            return mistake_hint or generic or f"the {what} matches a known mistake"
    return generic or f"the {what} and the reference differ (max abs difference {_maxdiff(out, ref):.3g})"


def _maxdiff(a: Tensor, b: Tensor) -> float:
    if tuple(a.shape) != tuple(b.shape) or not a.numel():
        return float("inf")
    return float((a.detach().double() - b.detach().double()).abs().max())     # (a module's output: no grad)


def todo(*args, **kwargs):
    """An untouched function TODO (the catalogue's "not implemented" entry)."""
    raise NotImplementedError()


class TodoModule(nn.Module):
    """An untouched class TODO (the catalogue's "not implemented" entry for modules)."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        raise NotImplementedError()


# ------------------------------------------------------------------ reference quantities, float64
def alpha_bar64(schedule: NoiseSchedule) -> Tensor:
    """alpha_bar_t = prod_{i<=t} (1 - beta_i), recomputed from the betas in float64, shape (T,)."""
    return torch.cumprod(1 - schedule.betas.double().cpu(), 0)


def alpha_bar_prev64(schedule: NoiseSchedule) -> Tensor:
    """alpha_bar_{t-1}, with 1 before the first step, float64, shape (T,)."""
    return torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar64(schedule)[:-1]])


def last_target(alpha_bar: Tensor, last: str) -> Tensor:
    """Where a reference sampler's last step goes: "one" (clean data, right), or a catalogued mistake:
    "python_last" (alpha_bar[-1], the LAST entry) or "first" (alpha_bar[0], stopping at t = 0)."""
    return {"one": torch.ones((), dtype=alpha_bar.dtype), "python_last": alpha_bar[-1], "first": alpha_bar[0]}[last]


def model_timestep(t: int, k: int, t_arg: str) -> int:
    """The timestep a reference sampler hands the network at grid point t (the k-th): "t" (right), or a catalogued
    mistake: "k" (the loop index) or "t-1"."""
    return {"t": t, "k": k, "t-1": max(t - 1, 0)}[t_arg]


def gather(values: Tensor, t: Tensor, ndim: int) -> Tensor:
    """values[t] as (B, 1, ..., 1) with ``ndim`` dimensions (what ``NoiseSchedule.gather`` does, unchecked)."""
    return values[t.long()].reshape(-1, *([1] * (ndim - 1)))


def generator(seed: int) -> torch.Generator:
    """A CPU generator for a check's fixed cases."""
    return torch.Generator().manual_seed(seed)


def small_schedule() -> NoiseSchedule:
    """The cases' schedule: 50 linear steps with large betas, so every step moves the data visibly."""
    return NoiseSchedule.linear(T=50, beta_start=1e-3, beta_end=0.1)
