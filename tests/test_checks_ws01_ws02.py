"""Worksheets 1 and 2's checks (course_utils/checks/ws01_schedules.py, ws02_forward.py) against near-miss answers.

test_checks.py runs each catalogued mistake through its check; those are far from the reference, so a tolerance
ten times too loose, a hint that no catalogued mistake reaches, or a hidden case shrunk to the visible one passes
it (a mutation audit of the two modules). Here: plausible student answers that are almost right (a keyword
argument ignored, a floor on the betas, a 1-D-only schedule, the first kept step's beta taken from the long
chain), each run through ``run_check`` as a worksheet or the grader would, with the hint it must get."""
from __future__ import annotations

import math

import pytest
import torch

from course_utils.checks import run_check
from course_utils.checks.ws01_schedules import ref_cosine_betas, ref_diffusion_schedule, ref_linear_betas
from course_utils.checks.ws02_forward import chain_variant, posterior_variant, ref_predict_x0
from course_utils.schedules import NoiseSchedule


# ------------------------------------------------------------------ linear_beta_schedule
def test_linear_betas_that_forget_beta_start_fail_the_visible_check():
    """Without + beta_start every beta is 1e-4 too small: the default tolerance (1e-4) would let the visible
    check pass it, BETA_ATOL must not."""
    def no_offset(T, beta_start=1e-4, beta_end=0.02):
        return (beta_end - beta_start) * torch.arange(T) / (T - 1)

    result = run_check("linear_beta_schedule", no_offset)
    assert not result.passed and "the first beta must equal beta_start" in result.message, result.message


def test_linear_betas_within_float32_noise_pass_and_half_precision_fails():
    """BETA_ATOL sits between float32 rounding (a few 1e-9 on betas up to 0.02) and the visible schedule rounded
    to float16 (half a float16 spacing at 0.02 is 2**-17, about 7.6e-6): ten times looser would pass the latter."""
    def rounded(dtype):
        return lambda T, beta_start=1e-4, beta_end=0.02: ref_linear_betas(T, beta_start, beta_end).to(dtype).float()

    assert run_check("linear_beta_schedule", rounded(torch.float32), hidden=True).passed
    result = run_check("linear_beta_schedule", rounded(torch.float16))
    assert not result.passed and "evenly spaced" in result.message, result.message


def test_linear_betas_returned_as_alpha_bar_or_reversed_fail_with_their_hints():
    """Two mistakes outside the catalogue: the cumulative product (its own hint), and betas from beta_end down to
    beta_start (named since 2026-12-06; an empty hint would pass it)."""
    alpha_bar = run_check("linear_beta_schedule", lambda T, beta_start=1e-4, beta_end=0.02: torch.cumprod(
        1 - torch.linspace(beta_start, beta_end, T), 0))
    assert not alpha_bar.passed and "you returned alpha_bar" in alpha_bar.message, alpha_bar.message
    reversed_ = run_check("linear_beta_schedule", lambda T, beta_start=1e-4, beta_end=0.02: torch.linspace(
        beta_end, beta_start, T))
    assert not reversed_.passed and "the betas run backwards" in reversed_.message, reversed_.message


def test_schedules_that_ignore_a_keyword_argument_pass_only_the_visible_check():
    """The visible case uses the defaults; the hidden one must change every keyword, or a schedule that
    hard-codes one of them (here: each in turn) gets full marks."""
    linear = [lambda T, beta_start=1e-4, beta_end=0.02: torch.linspace(1e-4, beta_end, T),
              lambda T, beta_start=1e-4, beta_end=0.02: torch.linspace(beta_start, 0.02, T)]
    cosine = [lambda T, s=0.008, max_beta=0.999: ref_cosine_betas(T, 0.008, max_beta).float(),
              lambda T, s=0.008, max_beta=0.999: ref_cosine_betas(T, s, 0.999).float()]
    for name, answers in (("linear_beta_schedule", linear), ("cosine_beta_schedule", cosine)):
        for k, answer in enumerate(answers):
            assert run_check(name, answer).passed, (name, k)
            assert not run_check(name, answer, hidden=True).passed, (name, k)
    # the grader's message names the argument (a student's report: "the betas and the reference differ" before)
    for answer, said in zip(cosine, ("the offset is the argument s", "clipped at max_beta, not at a fixed")):
        message = run_check("cosine_beta_schedule", answer, hidden=True).message
        assert said in message, message
    # and the linear one's (it said only "your first beta is ..., not beta_start = ...")
    both = lambda T, beta_start=1e-4, beta_end=0.02: torch.linspace(1e-4, 0.02, T)  # noqa: E731
    for answer, said in zip([*linear, both], ("start at beta_start, not at a fixed",
                                              "end at beta_end, not at a fixed", "not the defaults")):
        message = run_check("linear_beta_schedule", answer, hidden=True).message
        assert "use the arguments you are given" in message and said in message, message


# ------------------------------------------------------------------ cosine_beta_schedule
def test_cosine_betas_with_a_floor_fail_on_the_worksheet():
    """A floor of 1e-4 on the betas (the clip of a popular tutorial, seed 003's) changes only the first betas of
    T = 1000, about 4e-5 (1 - cos^2(angle(1)) / cos^2(angle(0)), angle(t) = (t/T + s) / (1 + s) pi/2): the
    visible case T = 1000 and an absolute tolerance below 4e-5 fail it, with a hint that names the floor (it
    passed the worksheet, at T = 10 alone, and failed the grader with 'the betas and the reference differ')."""
    first = float(ref_cosine_betas(1000)[0])
    assert first < 1e-4 / 2
    floored = lambda T, s=0.008, max_beta=0.999: ref_cosine_betas(T, s, max_beta).clamp(min=1e-4).float()  # noqa: E731
    for hidden in (False, True):
        result = run_check("cosine_beta_schedule", floored, hidden=hidden)
        assert not result.passed and "your smallest betas are raised to 0.0001" in result.message, result.message


def test_cosine_betas_of_a_one_indexed_t_get_the_some_negative_hint():
    """t = 1..T + 1 instead of 0..T: f(T) = cos^2(pi/2) = 0 makes the last ratio huge, the last beta negative
    and the others positive; the hint says why (not "upside down", which is for all of them negative)."""
    def one_indexed(T, s=0.008, max_beta=0.999):
        f = torch.cos(((torch.arange(1, T + 2) / T + s) / (1 + s)) * math.pi / 2) ** 2
        return (1 - f[1:] / f[:-1]).clamp(max=max_beta)

    result = run_check("cosine_beta_schedule", one_indexed)
    assert not result.passed and "some betas are negative" in result.message, result.message


def test_cosine_alpha_bar_returned_gets_its_hint():
    """alpha_bar(1..T) = f(t) / f(0) has the betas' shape: its own hint, not a generic difference."""
    def alpha_bar(T, s=0.008, max_beta=0.999):
        f = torch.cos(((torch.arange(T + 1) / T + s) / (1 + s)) * math.pi / 2) ** 2
        return (f / f[0])[1:]

    result = run_check("cosine_beta_schedule", alpha_bar)
    assert not result.passed and "you returned alpha_bar = f(t) / f(0)" in result.message, result.message


# ------------------------------------------------------------------ diffusion_schedule
def test_a_schedule_with_cos_twice_gets_the_unit_norm_hint():
    """(cos, cos), a typo for (sin, cos): signal_rates**2 + noise_rates**2 != 1 is the hint; one rate matching
    the other's reference is not "swapped"."""
    def cos_twice(t, min_signal_rate=0.02, max_signal_rate=0.95):
        _, signal = ref_diffusion_schedule(t, min_signal_rate, max_signal_rate)
        return signal.float(), signal.float()

    result = run_check("diffusion_schedule", cos_twice)
    assert not result.passed and "signal_rates**2 + noise_rates**2 != 1" in result.message, result.message


def test_both_rates_are_compared():
    """A right signal rate with the noise rate's sign flipped keeps the unit norm; the noise rate must still be
    compared (an `or` in place of `and` would pass it)."""
    def negated(t, min_signal_rate=0.02, max_signal_rate=0.95):
        noise, signal = ref_diffusion_schedule(t, min_signal_rate, max_signal_rate)
        return -noise.float(), signal.float()

    result = run_check("diffusion_schedule", negated)
    assert not result.passed and "values differ from the reference" in result.message, result.message


def test_a_schedule_that_flattens_its_times_fails_at_the_worksheet():
    """The lab passes times of shape (B, 1, 1, 1); rates returned flat, (B,), broadcast against the images' width
    instead of the batch. The visible cases were all 1-D, so this passed the worksheet (a student's report)."""
    def flattened(t, min_signal_rate=0.02, max_signal_rate=0.95):
        noise, signal = ref_diffusion_schedule(t.flatten(), min_signal_rate, max_signal_rate)
        return noise.float(), signal.float()

    result = run_check("diffusion_schedule", flattened)
    assert not result.passed and "expected (3, 1, 1, 1)" in result.message, result.message


def test_a_schedule_in_half_precision_fails():
    """Angles rounded to float16 (up to 2**-11 relative, about 8e-4 at an angle of 1.55) move the rates by a few
    1e-4: beyond the check's 1e-4, within a tolerance ten times looser. The hint names half precision (it
    repeated the formula, which the student had right)."""
    def half(t, min_signal_rate=0.02, max_signal_rate=0.95):
        start, end = math.acos(max_signal_rate), math.acos(min_signal_rate)
        angles = (start + t * (end - start)).half().float()
        return torch.sin(angles), torch.cos(angles)

    result = run_check("diffusion_schedule", half)
    assert not result.passed and "the rounding of half precision" in result.message, result.message


# ------------------------------------------------------------------ respace
def _respaced(schedule: NoiseSchedule, timesteps, first_prev) -> torch.Tensor:
    """beta_k = 1 - alpha_bar[t_k] / alpha_bar[t_{k-1}], with ``first_prev`` in place of alpha_bar before t_0."""
    alpha_bar = schedule.alpha_bar.double()[timesteps.long()]
    return (1 - alpha_bar / torch.cat([first_prev.reshape(1).double(), alpha_bar[:-1]])).float()


def test_respace_whose_first_beta_is_the_long_chains_fails_the_hidden_case():
    """1 - alpha_bar[t_0] / alpha_bar_prev[t_0] is the long chain's beta at t_0: right only when t_0 = 0, as in
    the visible case; a hidden case must start later."""
    def long_chains_first(schedule, timesteps):
        return _respaced(schedule, timesteps, schedule.alpha_bar_prev[timesteps[0]])

    assert run_check("respace", long_chains_first).passed
    result = run_check("respace", long_chains_first, hidden=True)
    assert not result.passed and "the cumulative product of 1 - your betas" in result.message, result.message


def test_respace_padded_with_its_first_alpha_bar_fails_the_visible_check():
    """Padding alpha_bar with its own first value makes the first beta 0 where it is 1 - alpha_bar[0] = beta_0
    = 1e-4 in the visible case: an absolute tolerance of 1e-4 would pass it."""
    def replicate_pad(schedule, timesteps):
        return _respaced(schedule, timesteps, schedule.alpha_bar[timesteps[0]])

    result = run_check("respace", replicate_pad)
    assert not result.passed and "the cumulative product of 1 - your betas" in result.message, result.message


def test_respace_clipped_like_the_cosine_schedule_fails_the_hidden_case():
    """A clamp at 0.999 changes nothing on the linear cases (their largest respaced beta is below it) and the
    last beta of the cosine case (1 - alpha_bar[999] / alpha_bar[500], about 1 - 5e-9)."""
    def clipped(schedule, timesteps):
        return _respaced(schedule, timesteps, torch.ones(())).clamp(max=0.999)

    assert run_check("respace", clipped).passed
    result = run_check("respace", clipped, hidden=True)
    assert not result.passed, result.message


def test_respace_says_where_the_short_chain_leaves_alpha_bar():
    """A chain that starts from alpha_bar[0] instead of 1, or takes 1 - alpha_bar[t] for its betas, got only 'the
    cumulative product ... must equal' (a student's report): the hint names the first kept step that is off."""
    def from_alpha_bar_0(schedule, timesteps):
        alpha_bar = schedule.alpha_bar[timesteps]
        return 1 - alpha_bar / torch.cat([schedule.alpha_bar[:1], alpha_bar[:-1]])

    def one_minus_alpha_bar(schedule, timesteps):
        return 1 - schedule.alpha_bar[timesteps]

    result = run_check("respace", from_alpha_bar_0)
    assert not result.passed and "first leaves it at kept step 0, t = 0" in result.message, result.message
    result = run_check("respace", one_minus_alpha_bar)
    assert not result.passed and "first leaves it at kept step 1, t = 111" in result.message, result.message


# ------------------------------------------------------------------ q_sample
def _q_sample_student(signal, noise):
    """A student's q_sample whose coefficients are ``signal(alpha_bar_t)`` and ``noise(alpha_bar_t)``."""
    def q_sample(x0, t, eps, schedule):
        alpha_bar = schedule.alpha_bar[t].view(-1, *([1] * (x0.ndim - 1)))
        return signal(alpha_bar) * x0 + noise(alpha_bar) * eps
    return q_sample


def test_q_sample_with_one_coefficient_wrong_is_told_which():
    """A square root forgotten on one term only, or the noise subtracted, got only 'the x_t and the reference
    differ' (a student's report); the right coefficients pass."""
    right_signal, right_noise = (lambda a: a.sqrt()), (lambda a: (1 - a).sqrt())
    assert run_check("q_sample", _q_sample_student(right_signal, right_noise)).passed
    for student, said in [(_q_sample_student(lambda a: a, right_noise), "the signal's coefficient"),
                          (_q_sample_student(right_signal, lambda a: 1 - a), "the noise's coefficient"),
                          (_q_sample_student(right_signal, lambda a: -(1 - a).sqrt()), "not subtracted")]:
        result = run_check("q_sample", student)
        assert not result.passed and said in result.message, result.message


# ------------------------------------------------------------------ q_posterior
def test_q_posterior_returning_the_mean_alone_or_no_variance_fails_with_its_hint():
    """A TODO half done: the mean alone (not a tuple of two) or (mean, None); each gets the hint that says so."""
    right = posterior_variant()
    mean_only = run_check("q_posterior", lambda x0, xt, t, schedule: right(x0, xt, t, schedule)[0])
    assert not mean_only.passed and "return a tuple (mean, variance)" in mean_only.message, mean_only.message
    no_var = run_check("q_posterior", lambda x0, xt, t, schedule: (right(x0, xt, t, schedule)[0], None))
    assert not no_var.passed and "the variance should be a torch.Tensor" in no_var.message, no_var.message


@pytest.mark.parametrize("wrong, hints", [(1, ("t off by one in the variance", "the LAST entry")),
                                          (0, ("where alpha_bar[t] belongs", "the LAST entry"))],
                         ids=["variance", "mean"])
def test_q_posterior_with_one_output_off_by_one_fails_with_its_hint(wrong, hints):
    """One output (the variance, or the mean) one step early (alpha_bar[t-1] for alpha_bar[t]) or wrapping at
    t = 0, the other right: the catalogue's mistakes get both wrong, so only these reach each output's own hints
    (the mean's and the variance's both say "the LAST entry")."""
    right = posterior_variant()
    for switch, hint in zip((dict(shift=True), dict(wrap=True)), hints):
        mistaken = posterior_variant(**switch)

        def q_posterior(x0, xt, t, schedule):
            parts = list(right(x0, xt, t, schedule))
            parts[wrong] = mistaken(x0, xt, t, schedule)[wrong]
            return tuple(parts)
        result = run_check("q_posterior", q_posterior)
        assert not result.passed and hint in result.message, (switch, result.message)


def test_a_posterior_that_clamps_t_minus_one_is_told_about_t_0():
    """alpha_bar[(t - 1).clamp(min=0)] is wrong only at t = 0 (alpha_bar[0] where 1 belongs); the hint said only
    that the means differ (a student's report)."""
    def q_posterior(x0, xt, t, schedule):
        shape = (-1,) + (1,) * (x0.ndim - 1)
        a = schedule.alpha_bar[t].view(shape)
        a_prev = schedule.alpha_bar[(t - 1).clamp(min=0)].view(shape)
        beta = schedule.betas[t].view(shape)
        mean = a_prev.sqrt() * beta / (1 - a) * x0 + (1 - beta).sqrt() * (1 - a_prev) / (1 - a) * xt
        return mean, (1 - a_prev) / (1 - a) * beta

    result = run_check("q_posterior", q_posterior)
    assert not result.passed and "not alpha_bar[0]" in result.message, result.message


# ------------------------------------------------------------------ predict_x0
def test_predict_x0_without_the_roots_or_off_by_one_gets_its_hint():
    """Two mistakes the catalogue leaves out: sqrt forgotten on alpha_bar, and alpha_bar[t-1] for alpha_bar[t]."""
    def variant(**switches):
        return lambda xt, t, eps, schedule: ref_predict_x0(xt, t, eps, schedule, **switches).float()

    no_root = run_check("predict_x0", variant(sqrt=False))
    assert not no_root.passed and "the square root is forgotten" in no_root.message, no_root.message
    shifted = run_check("predict_x0", lambda xt, t, eps, schedule: ref_predict_x0(
        xt, t, eps, schedule, alpha_bar=schedule.alpha_bar_prev.double()).float())
    assert not shifted.passed and "t off by one" in shifted.message, shifted.message


# ------------------------------------------------------------------ q_sample_chain
def _chain(step, *, first=0, keep_x0=True, stack=True):
    """A q_sample_chain whose step i is ``step(x, eps, i, schedule)`` with step indices first..first + t, fresh
    noise from the generator at each step; ``keep_x0=False`` leaves x0 out (and takes one step more)."""
    def q_sample_chain(x0, t, schedule, generator=None):
        states, x = ([x0] if keep_x0 else []), x0
        for i in range(first, first + t + (1 if keep_x0 else 2)):
            x = step(x, torch.randn(x0.shape, generator=generator), i, schedule)
            states.append(x)
        return torch.stack(states).float() if stack else states
    return q_sample_chain


def _right_step(x, eps, i, schedule):
    return schedule.alphas[i].sqrt() * x + schedule.betas[i].sqrt() * eps


def test_the_reference_step_built_here_passes():
    """The chains below differ from this right one in one place each."""
    assert run_check("q_sample_chain", _chain(_right_step), hidden=True).passed
    assert run_check("q_sample_chain", chain_variant(), hidden=True).passed


def test_chains_with_a_wrong_scale_or_noise_get_their_hints():
    """Step mistakes outside the catalogue, each with the hint its lead or its diagnosis gives: the next step's
    alpha and beta, no shrinking (x + sqrt(beta) eps: scale 1), beta unrooted (variance beta^2), and the noise of
    the jump from x0 (variance 1 - alpha_bar_i) on one step."""
    cases = [
        (_chain(_right_step, first=1), "not those of step i + 1"),
        (_chain(lambda x, eps, i, s: x + s.betas[i].sqrt() * eps), "scales the previous state by"),
        (_chain(lambda x, eps, i, s: s.alphas[i].sqrt() * x + s.betas[i] * eps),
         "the square root is missing on beta"),
        (_chain(lambda x, eps, i, s: s.alphas[i].sqrt() * x + (1 - s.alpha_bar[i]).sqrt() * eps),
         "adds noise of variance"),
    ]
    for k, (chain, hint) in enumerate(cases):
        result = run_check("q_sample_chain", chain)
        assert not result.passed and hint in result.message, (k, result.message)


def test_chains_without_x0_or_unstacked_get_their_hints():
    """t + 2 states made by t + 2 steps, x0 left out (the right shape), and a list of states not stacked."""
    no_x0 = run_check("q_sample_chain", _chain(_right_step, keep_x0=False))
    assert not no_x0.passed and "the first state must be x0 itself" in no_x0.message, no_x0.message
    as_list = run_check("q_sample_chain", _chain(_right_step, stack=False))
    assert not as_list.passed and "return the states stacked in one tensor" in as_list.message, as_list.message
