"""Worksheet 5's and 6's checks (course_utils/checks/ws05_samplers.py, ws06_guidance.py) against near-miss
student functions that the catalogue (MISTAKES) does not hold, and against independent implementations.

test_checks.py runs the catalogued mistakes, which are far from the references, and the answer key, which is
made of the references themselves; a mutation audit (December 2026) found changes to these modules that all of
those tests let pass: a posterior variance written wrongly in the reference, eta = 0.5 dropped from the cases,
hidden cases made copies of the visible ones, a noise hint given to a wrong mean. Each test below fails with one
of them. The students' functions are written here from the papers' formulas with the package's float32
quantities (course_utils.samplers.ddim_step, NoiseSchedule.alpha_bar), never from the checks' references."""
from __future__ import annotations

import pytest
import torch

from course_utils import samplers
from course_utils.guidance import cfg_combine
from course_utils.checks import CHECKS, run_check
from course_utils.checks.framework import three_point_noise


# ------------------------------------------------------------------ ddpm_step
def _ddpm_student(eps_coef, variance):
    """A student's ddpm_step (Ho et al. Algorithm 2, code t = 0..T-1) with the eps coefficient and the variance
    sigma_t^2 written as the given functions of (alpha_bar_t, alpha_bar_{t-1}, beta_t), float32."""
    def ddpm_step(xt, t, eps_pred, schedule, noise):
        alpha_bar, beta = schedule.alpha_bar[t], schedule.betas[t]
        alpha_bar_prev = schedule.alpha_bar[t - 1] if t > 0 else torch.tensor(1.0)
        mean = (xt - eps_coef(alpha_bar, beta) * eps_pred) / (1 - beta).sqrt()
        if t == 0:
            return mean
        return mean + variance(alpha_bar, alpha_bar_prev, beta).sqrt() * noise
    return ddpm_step


def _right_coef(alpha_bar, beta):
    return beta / (1 - alpha_bar).sqrt()


def test_ddpm_step_accepts_the_posterior_variance_written_by_a_student():
    """Ho et al. Sec. 3.2 allow sigma_t^2 = tilde beta_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t; the
    check's own posterior branch is otherwise only tested with its own reference (ddpm_variant)."""
    posterior = _ddpm_student(_right_coef, lambda a, a_prev, beta: (1 - a_prev) / (1 - a) * beta)
    result = run_check("ddpm_step", posterior, hidden=True)
    assert result.passed, result.message


def test_ddpm_step_fails_an_inverted_posterior_ratio_without_blaming_the_noise():
    """tilde beta_t with the ratio upside down, (1 - alpha_bar_t) / (1 - alpha_bar_{t-1}) beta_t, is within 1% of
    beta_t at t = 49 and must fail; it uses the given noise, so the hint must not say it draws its own."""
    inverted = _ddpm_student(_right_coef, lambda a, a_prev, beta: (1 - a) / (1 - a_prev) * beta)
    result = run_check("ddpm_step", inverted, hidden=True)
    assert not result.passed
    assert "not the noise given" not in result.message, result.message


def test_ddpm_step_does_not_blame_the_noise_for_a_wrong_mean():
    """The forward process's sqrt(1 - alpha_bar_t) as the eps coefficient (in place of beta_t / sqrt(1 -
    alpha_bar_t)) with the right noise: the own-noise hint (noise of about the right size, uncorrelated with the
    given one) must not fire on this mean's error."""
    forward_coef = _ddpm_student(lambda a, beta: (1 - a).sqrt(), lambda a, a_prev, beta: beta)
    result = run_check("ddpm_step", forward_coef, hidden=True)
    assert not result.passed
    assert "not the noise given" not in result.message, result.message


# ------------------------------------------------------------------ ddim_step
def test_ddim_step_fails_an_eta_read_as_zero_or_one():
    """A step right at eta = 0 and eta = 1 only (eta > 0 read as 1, or sqrt(eta), eta^2 in sigma_t) passes every
    case unless a case has 0 < eta < 1."""
    def eta_as_one(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, eta=0.0, noise=None):
        return samplers.ddim_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, eta=float(eta > 0), noise=noise)

    def eta_squared(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, eta=0.0, noise=None):
        return samplers.ddim_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, eta=eta ** 2, noise=noise)

    for wrong in (eta_as_one, eta_squared):
        assert not run_check("ddim_step", wrong, hidden=True).passed, wrong.__name__


def test_ddim_step_judges_the_returned_x0_pred():
    """A step whose x_prev is right but whose returned x0_pred is not (clamped to [-1, 1] for display only) must
    fail on x0_pred: x_prev alone does not show it."""
    def clamps_what_it_returns(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, eta=0.0, noise=None):
        x_prev, x0_pred = samplers.ddim_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, eta=eta, noise=noise)
        return x_prev, x0_pred.clamp(-1, 1)

    result = run_check("ddim_step", clamps_what_it_returns)
    assert not result.passed and "x0_pred differs" in result.message, result.message


def test_ddim_step_points_a_nan_to_its_square_root():
    """sigma_t with both ratios upside down, eta sqrt((1 - alpha_bar_t) / (1 - alpha_bar_prev)) sqrt(1 -
    alpha_bar_prev / alpha_bar_t), takes the root of a negative number (alpha_bar_prev > alpha_bar_t): the hint
    names the square root and Eq. 16, not only the NaN."""
    def inverted_sigma(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, eta=0.0, noise=None):
        a, a_prev = torch.as_tensor(alpha_bar_t), torch.as_tensor(alpha_bar_prev)
        x0_pred = (xt - (1 - a).sqrt() * eps_pred) / a.sqrt()
        sigma = eta * ((1 - a) / (1 - a_prev) * (1 - a_prev / a)).sqrt()
        x_prev = a_prev.sqrt() * x0_pred + (1 - a_prev - sigma ** 2).sqrt() * eps_pred
        return (x_prev + sigma * noise if eta > 0 else x_prev), x0_pred

    result = run_check("ddim_step", inverted_sigma)
    assert not result.passed and "square root taken of a negative number" in result.message, result.message


# ------------------------------------------------------------------ ddim_sample_loop
def _loop_student(*, eta_given=lambda eta: eta, T=None, noise_of=None, asks=1, chunks=1, last_first=False):
    """A student's ddim_sample_loop on ddim_timesteps, one torch.randn per step from the generator, the package's
    ddim_step; ``eta_given`` is what it passes on for eta, ``T`` the horizon it builds the grid from (None: the
    schedule's), ``noise_of(k, z)`` what it makes of step k's draw z (None: z itself), ``asks`` how many times it
    asks the network per step, ``chunks`` in how many pieces of the batch it asks it (to save memory),
    ``last_first`` whether it asks for the last piece first."""
    def predict(model, x, t):
        tt = torch.full((len(x),), t, dtype=torch.long)
        for _ in range(asks - 1):
            model(x.clone(), tt)
        order = -1 if last_first else 1
        pieces = [model(xs, ts) for xs, ts in list(zip(x.chunk(chunks), tt.chunk(chunks)))[::order]]
        return torch.cat(pieces[::order])

    def ddim_sample_loop(model, schedule, x_T, num_steps, *, eta=0.0, generator=None):
        grid = samplers.ddim_timesteps(T or schedule.T, num_steps).tolist()
        x = x_T
        for k, t in enumerate(grid):
            alpha_bar_prev = schedule.alpha_bar[grid[k + 1]] if k + 1 < len(grid) else torch.tensor(1.0)
            noise = torch.randn(x.shape, generator=generator) if eta > 0 else None
            if noise is not None and noise_of is not None:
                noise = noise_of(k, noise)
            x, _ = samplers.ddim_step(x, predict(model, x, t), schedule.alpha_bar[t], alpha_bar_prev,
                                      eta=eta_given(eta), noise=noise)
        return x
    return ddim_sample_loop


def test_ddim_sample_loop_passes_a_students_loop():
    """The loop the tests below break: written on the package's ddim_step, it passes (the check's reference is
    the course's noise order, and this loop follows it)."""
    result = run_check("ddim_sample_loop", _loop_student())
    assert result.passed, result.message


def test_ddim_sample_loop_fails_eta_read_as_one_on_a_visible_case():
    """A loop right at eta = 0 and 1 only (eta > 0 passed on as 1) must fail the worksheet's own cases (the
    module says so: eta = 0.5 is visible), on the variance of the step noise it adds (4 times sigma_t^2)."""
    result = run_check("ddim_sample_loop", _loop_student(eta_given=lambda eta: float(eta > 0)))
    assert not result.passed and ("times that variance" in result.message
                                  or "the samples are those of eta = 1, not eta = 0.5" in result.message), \
        result.message


def test_ddim_sample_loop_that_clamps_its_samples_is_told_so():
    """Samples clamped to [-1, 1] (an image habit; the clusters lie at radius 1.5) were told the time grid was right
    and, in the same message, asked whether it was (a wrong-answer pass of 2026-12-07)."""
    loop = _loop_student()
    result = run_check("ddim_sample_loop", lambda *args, **kwargs: loop(*args, **kwargs).clamp(-1, 1))
    assert not result.passed and "the samples are clamped to [-1, 1]" in result.message, result.message


def test_ddim_sample_loop_that_asked_at_the_right_grid_is_not_asked_about_the_grid():
    """A loop that gives the network x_T at every step asks it at DDIM's grid: the message says so, and does not
    end by asking whether the grid is ddim_timesteps(T, num_steps)."""
    def ddim_sample_loop(model, schedule, x_T, num_steps, *, eta=0.0, generator=None):
        grid, x = samplers.ddim_timesteps(schedule.T, num_steps).tolist(), x_T
        for k, t in enumerate(grid):
            alpha_bar_prev = schedule.alpha_bar[grid[k + 1]] if k + 1 < len(grid) else torch.tensor(1.0)
            noise = torch.randn(x.shape, generator=generator) if eta > 0 else None
            eps = model(x_T, torch.full((len(x),), t, dtype=torch.long))
            x, _ = samplers.ddim_step(x, eps, schedule.alpha_bar[t], alpha_bar_prev, eta=eta, noise=noise)
        return x
    result = run_check("ddim_sample_loop", ddim_sample_loop)
    assert not result.passed and "though the network was asked at DDIM's time grid" in result.message, \
        result.message
    assert "is the time grid" not in result.message, result.message


def test_ddpm_step_that_clamps_its_last_image_is_told_algorithm_2_does_not():
    """A ddpm_step that clamps x_0 at t = 0 only was told "the states in between are not images", which it never
    clamped; now the t = 0 case says Algorithm 2 returns x_0 unclipped."""
    def ddpm_step(xt, t, eps_pred, schedule, noise):
        beta, alpha_bar = schedule.betas[t], schedule.alpha_bar[t]
        mean = (xt - beta / (1 - alpha_bar).sqrt() * eps_pred) / (1 - beta).sqrt()
        return mean.clamp(-1, 1) if t == 0 else mean + beta.sqrt() * noise
    result = run_check("ddpm_step", ddpm_step)
    assert not result.passed and "Algorithm 2 returns the last step's x_0" in result.message, result.message
    assert "states in between" not in result.message, result.message


def test_ddim_sample_loop_visible_case_catches_a_hard_coded_horizon():
    """A grid built from T = 1000 rather than schedule.T was right on every visible case (all T = 1000) and raised a
    bare IndexError on the hidden one (a student's report): a visible case has T = 200 now, and the error's hint
    says where T comes from."""
    result = run_check("ddim_sample_loop", _loop_student(T=1000))
    assert not result.passed and "take T and alpha_bar from the schedule you are given" in result.message, \
        result.message


# ------------------------------------------------------------------ cfg_combine
def test_cfg_combine_visible_cases_catch_a_scale_read_as_an_integer():
    """guidance_scale cast to int (a signature typed ``guidance_scale: int``) was right at the visible scales 3, 1
    and 0 and failed only the grader's fractional one (a student's report); w = 0.5 is visible now."""
    def as_int(eps_uncond, eps_cond, guidance_scale):
        return eps_uncond + int(guidance_scale) * (eps_cond - eps_uncond)

    result = run_check("cfg_combine", as_int)
    assert not result.passed and "truncated to an integer" in result.message, result.message


def test_ddim_sample_loop_follows_a_loop_that_asks_in_pieces_of_the_batch():
    """A loop that asks the network for two halves of the batch (to save memory) is followed step by step too
    (its pieces joined), so the one step of 50 whose noise it drops is found."""
    assert run_check("ddim_sample_loop", _loop_student(chunks=2), hidden=True).passed
    drops_one = _loop_student(chunks=2, noise_of=lambda k, z: torch.zeros_like(z) if k == 25 else z)
    result = run_check("ddim_sample_loop", drops_one)
    assert not result.passed and "step 26 of 50 (t = 480 -> 460) has 0.00 times that variance" in result.message


def test_ddim_sample_loop_judges_the_noise_of_a_loop_it_cannot_follow_step_by_step():
    """A loop that asks for the last half of the batch first hides its steps from the step-noise hint (its
    pieces do not join back into x_T): the fallbacks judge it, the probe the Gaussianity of the noise
    (three-valued noise with a normal's moments) and the distance of two runs its size (sqrt(eta) in place of
    eta: twice the variance at eta = 0.5, too little to move the mixture's statistics)."""
    assert run_check("ddim_sample_loop", _loop_student(chunks=2, last_first=True)).passed
    three_valued = _loop_student(chunks=2, last_first=True, noise_of=lambda k, z: three_point_noise(z))
    result = run_check("ddim_sample_loop", three_valued)
    assert not result.passed and "noise is not Gaussian" in result.message, result.message
    root_eta = _loop_student(chunks=2, last_first=True, eta_given=lambda eta: eta ** 0.5)
    result = run_check("ddim_sample_loop", root_eta)
    assert not result.passed and "the noise added per step has the wrong size" in result.message, result.message


def test_ddim_sample_loop_follows_a_loop_that_asks_twice_per_step():
    """A loop that asks the network twice per step on the same x_t is still followed step by step, so the one
    step of 50 whose noise it drops (which the samples' statistics cannot see) is found."""
    drops_one = _loop_student(asks=2, noise_of=lambda k, z: torch.zeros_like(z) if k == 25 else z)
    result = run_check("ddim_sample_loop", drops_one)
    assert not result.passed and "step 26 of 50 (t = 480 -> 460) has 0.00 times that variance" in result.message


# ------------------------------------------------------------------ hidden cases
def _setting(name, c):
    """What a case asks of the student's function, beside its random tensors: the timesteps, etas, scales,
    shapes and schedules that a wrong function can depend on."""
    def schedule(s):
        return s.T, round(float(s.betas[0]), 8), round(float(s.betas[-1]), 8)
    return {
        "ddpm_step": lambda: c["t"],
        "ddim_step": lambda: (round(float(c["alpha_bar_t"]), 8), round(float(c["alpha_bar_prev"]), 8), c["eta"]),
        "ddim_sample_loop": lambda: (schedule(c["schedule"]), c["num_steps"], c["eta"], bool(c.get("probe"))),
        "cfg_combine": lambda: c["guidance_scale"],
        "classifier_guided_eps": lambda: (tuple(c["xt"].shape), c["num_classes"], c["classifier_scale"]),
        "guided_ddim_sample": lambda: (schedule(c["schedule"]), c["num_steps"], c["guidance_scale"]),
    }[name]()


def test_each_hidden_case_asks_something_the_visible_ones_do_not():
    """A hidden case that repeats a visible one's timestep, eta, scale or schedule with new random tensors grades
    nothing the instant feedback has not already shown."""
    for name in ("ddpm_step", "ddim_step", "ddim_sample_loop", "cfg_combine", "classifier_guided_eps",
                 "guided_ddim_sample"):
        shown = CHECKS[name].cases(False)
        seen = [_setting(name, c) for c in shown]
        for c in CHECKS[name].cases(True)[len(shown):]:
            assert _setting(name, c) not in seen, (name, _setting(name, c))
            seen.append(_setting(name, c))


# ------------------------------------------------------------------ classifier_guided_eps
def _classifier_student(alpha_bar_of, rate=lambda alpha_bar: (1 - alpha_bar).sqrt()):
    """A student's classifier_guided_eps (Dhariwal and Nichol, Eq. 14) through autograd; ``alpha_bar_of(schedule,
    t, xt)`` is how it looks alpha_bar_t up, ``rate(alpha_bar_t)`` what scales the gradient."""
    def classifier_guided_eps(eps_pred, xt, t, y, classifier, schedule, classifier_scale):
        with torch.enable_grad():
            x = xt.detach().requires_grad_(True)
            log_probs = torch.log_softmax(classifier(x, t), dim=-1)
            (grad,) = torch.autograd.grad(log_probs[torch.arange(len(x)), y].sum(), x)
        return eps_pred - classifier_scale * rate(alpha_bar_of(schedule, t, xt)) * grad
    return classifier_guided_eps


def test_classifier_guided_eps_scaled_by_the_wrong_rate_is_told_which():
    """The gradient scaled by sqrt(alpha_bar_t), or by nothing, got no hint (a student's report)."""
    def lookup(schedule, t, xt):
        return schedule.gather(schedule.alpha_bar, t, xt.ndim)

    result = run_check("classifier_guided_eps", _classifier_student(lookup, lambda alpha_bar: alpha_bar.sqrt()))
    assert not result.passed and "not by sqrt(alpha_bar_t)" in result.message, result.message
    result = run_check("classifier_guided_eps", _classifier_student(lookup, lambda alpha_bar: 1.0))
    assert not result.passed and "the factor sqrt(1 - alpha_bar_t) is missing" in result.message, result.message


def test_classifier_guided_eps_guides_each_image_to_its_own_label():
    """A student who guides every image to class 0 (the notebook's demo class, not y) must fail: the cases' labels
    must not all be 0."""
    def class_zero(eps_pred, xt, t, y, classifier, schedule, classifier_scale):
        return _classifier_student(lambda s, t, xt: s.gather(s.alpha_bar, t, xt.ndim))(
            eps_pred, xt, t, torch.zeros_like(y), classifier, schedule, classifier_scale)

    assert not run_check("classifier_guided_eps", class_zero).passed


def test_classifier_guided_eps_needs_one_alpha_bar_per_image():
    """alpha_bar looked up once, at the batch's first timestep, is right only where every image has the same t:
    the cases' t must differ within a batch (the right lookup, schedule.gather, passes)."""
    per_image = _classifier_student(lambda schedule, t, xt: schedule.gather(schedule.alpha_bar, t, xt.ndim))
    first_only = _classifier_student(lambda schedule, t, xt: schedule.alpha_bar[t[0]])
    assert run_check("classifier_guided_eps", per_image, hidden=True).passed
    assert not run_check("classifier_guided_eps", first_only).passed


# ------------------------------------------------------------------ guided_ddim_sample
def _guided_student(T=None):
    """A student's guided_ddim_sample: one unconditional (y = -1) and one conditional call per step of
    ddim_timesteps, combined by the package's cfg_combine, then the package's ddim_step at eta = 0; ``T`` the
    horizon of the grid (None: the schedule's)."""
    def guided_ddim_sample(model, schedule, x_T, y, guidance_scale, num_steps=50):
        grid = samplers.ddim_timesteps(T or schedule.T, num_steps).tolist()
        x = x_T
        for k, t in enumerate(grid):
            alpha_bar_prev = schedule.alpha_bar[grid[k + 1]] if k + 1 < len(grid) else torch.tensor(1.0)
            tt = torch.full((len(x),), t, dtype=torch.long)
            eps = cfg_combine(model(x, tt, torch.full_like(y, -1)), model(x, tt, y), guidance_scale)
            x, _ = samplers.ddim_step(x, eps, schedule.alpha_bar[t], alpha_bar_prev)
        return x
    return guided_ddim_sample


def test_guided_ddim_sample_fails_a_last_step_to_alpha_bar_0():
    """The last step to alpha_bar[0] (1 - beta_0 = 1 - 1e-4 on the linear schedule) instead of to 1 leaves
    sqrt(beta_0) eps = 0.01 eps of noise in the samples: within a tolerance of 1e-2, not of the check's 1e-3."""
    def stops_at_alpha_bar_0(model, schedule, x_T, y, guidance_scale, num_steps=50):
        grid = samplers.ddim_timesteps(schedule.T, num_steps).tolist()
        x = x_T
        for k, t in enumerate(grid):
            alpha_bar_prev = schedule.alpha_bar[grid[k + 1] if k + 1 < len(grid) else 0]
            tt = torch.full((len(x),), t, dtype=torch.long)
            eps = cfg_combine(model(x, tt, torch.full_like(y, -1)), model(x, tt, y), guidance_scale)
            x, _ = samplers.ddim_step(x, eps, schedule.alpha_bar[t], alpha_bar_prev)
        return x

    assert not run_check("guided_ddim_sample", stops_at_alpha_bar_0).passed


def test_guided_ddim_sample_visible_case_catches_a_hard_coded_horizon():
    """As for ddim_sample_loop: a grid from T = 1000 passed the visible cases (all T = 1000) and raised a bare
    IndexError on the hidden one; a visible case has T = 500 now, and the hint says where T comes from. The same
    loop on schedule.T passes."""
    assert run_check("guided_ddim_sample", _guided_student(), hidden=True).passed
    result = run_check("guided_ddim_sample", _guided_student(T=1000))
    assert not result.passed and "use the schedule given as argument" in result.message, result.message


# ------------------------------------------------------------------ samplers that step to the wrong alpha_bar
def _ddim_loop_to(last, t_model=lambda t: t):
    """A student's DDIM loop on the package's ddim_step whose last step goes to ``last(alpha_bar)`` and which asks
    the model at ``t_model(t)``."""
    def ddim_sample_loop(model, schedule, x_T, num_steps, *, eta=0.0, generator=None):
        timesteps = samplers.ddim_timesteps(schedule.T, num_steps).tolist()
        x = x_T
        for k, t in enumerate(timesteps):
            eps_pred = model(x, torch.full((len(x),), t_model(t), dtype=torch.long))
            noise = torch.randn(x.shape, generator=generator) if eta > 0 else None
            prev = schedule.alpha_bar[timesteps[k + 1]] if k + 1 < len(timesteps) else last(schedule.alpha_bar)
            x, _ = samplers.ddim_step(x, eps_pred, schedule.alpha_bar[t], prev, eta=eta, noise=noise)
        return x
    return ddim_sample_loop


def test_a_loop_whose_step_computes_sigma_to_alpha_bar_minus_one_is_told_why_it_gets_nan():
    """A ddim_step that computes sigma_t at eta = 0 too (0 * sqrt(negative) = NaN) turned alpha_bar[-1] at the last
    step into NaN samples, and the hint said only 'the x0 contains NaN or inf' (a student's report)."""
    result = run_check("ddim_sample_loop", _ddim_loop_to(lambda alpha_bar: alpha_bar[-1]))
    assert not result.passed and "alpha_bar[-1] is the LAST entry" in result.message, result.message


def _guided_to(last):
    """A student's guided_ddim_sample (worksheet 6) whose last step goes to ``last(alpha_bar)``."""
    def guided_ddim_sample(model, schedule, x_T, y, guidance_scale, num_steps=50):
        timesteps = samplers.ddim_timesteps(schedule.T, num_steps).tolist()
        x = x_T
        for k, t in enumerate(timesteps):
            tt = torch.full((len(x),), t, dtype=torch.long)
            eps_pred = cfg_combine(model(x, tt, torch.full_like(y, -1)), model(x, tt, y), guidance_scale)
            prev = schedule.alpha_bar[timesteps[k + 1]] if k + 1 < len(timesteps) else last(schedule.alpha_bar)
            x, _ = samplers.ddim_step(x, eps_pred, schedule.alpha_bar[t], prev)
        return x
    return guided_ddim_sample


def test_a_guided_sampler_that_stops_at_alpha_bar_zero_is_told_so():
    """Worksheet 5 names a last step to alpha_bar[0]; worksheet 6's sampler said only 'the samples differ'."""
    assert run_check("guided_ddim_sample", _guided_to(lambda alpha_bar: torch.tensor(1.0))).passed
    for number in (1.0, 1):         # the package's ddim_step takes the last alpha_bar_prev as a Python number too
        assert run_check("guided_ddim_sample", _guided_to(lambda alpha_bar, number=number: number)).passed
    result = run_check("guided_ddim_sample", _guided_to(lambda alpha_bar: alpha_bar[0]))
    assert not result.passed and "stepping to alpha_bar[0]" in result.message, result.message
    result = run_check("guided_ddim_sample", _guided_to(lambda alpha_bar: alpha_bar[-1]))
    assert not result.passed and "alpha_bar[-1] is the LAST entry" in result.message, result.message


def test_a_ddim_step_with_a_wrong_x0_pred_is_sent_to_x0_pred_first():
    """The square root forgotten on (1 - alpha_bar_t) in x0_pred makes both outputs wrong; the hint quoted the
    x_prev formula, which that student wrote right (a student's report)."""
    def ddim_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, eta=0.0, noise=None):
        x0_pred = (xt - (1 - alpha_bar_t) * eps_pred) / alpha_bar_t.sqrt()
        sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)).sqrt()
        x_prev = alpha_bar_prev.sqrt() * x0_pred + (1 - alpha_bar_prev - sigma ** 2).sqrt() * eps_pred
        return (x_prev if noise is None else x_prev + sigma * noise), x0_pred

    result = run_check("ddim_step", ddim_step)
    assert not result.passed and "fix x0_pred first" in result.message, result.message


def test_a_ddpm_step_with_the_previous_steps_sigma_is_told_so():
    """sigma_t from betas[t-1] (the mean right) got only 'x_{t-1} and the reference differ' (a student's report)."""
    def ddpm_step(xt, t, eps_pred, schedule, noise):
        mean = (xt - schedule.betas[t] / (1 - schedule.alpha_bar[t]).sqrt() * eps_pred) / (1 - schedule.betas[t]).sqrt()
        return mean if t == 0 else mean + schedule.betas[t - 1].sqrt() * noise

    result = run_check("ddpm_step", ddpm_step)
    assert not result.passed and "sigma_t is step t-1's" in result.message, result.message


def test_a_loop_that_asks_the_model_at_t_minus_one_is_told_so():
    """It got 'x0 differs ... look for a small error' (a student's report)."""
    one = torch.tensor(1.0)
    assert run_check("ddim_sample_loop", _ddim_loop_to(lambda alpha_bar: one)).passed
    result = run_check("ddim_sample_loop", _ddim_loop_to(lambda alpha_bar: one, lambda t: max(t - 1, 0)))
    assert not result.passed and "not with t - 1" in result.message, result.message


# ------------------------------------------------------------------ cfg_loss: the null label, the images remark
def _cfg_loss_student(null=-1, images_all_null=False):
    """A student's cfg_loss on the package's q_sample whose dropped labels become ``null``; ``images_all_null``:
    every label of a batch of images dropped (a mistake that no catalogued one explains)."""
    import torch.nn.functional as F
    from course_utils.forward import q_sample

    def cfg_loss(model, x0, y, t, eps, drop, schedule):
        labels = torch.full_like(y, -1) if images_all_null and x0.ndim > 2 else torch.where(drop, null, y)
        return F.mse_loss(model(q_sample(x0, t, eps, schedule), t, labels), eps)
    return cfg_loss


def test_cfg_loss_names_a_null_label_other_than_minus_one_and_keeps_the_reshape_remark_for_broadcasting():
    """The check's model read num_classes and every negative label as no class, so y.max() + 1 and -100 passed; a
    real class in their place is named too. diagnose_loss's remark "alpha_bar[t] must be reshaped" on an image
    case went with every wrong loss there, a wrong label's too: it is kept for a broadcast alpha_bar only."""
    assert run_check("cfg_loss", _cfg_loss_student(), hidden=True).passed
    result = run_check("cfg_loss", _cfg_loss_student(null=1))      # a real class (they are 0, 1, 2)
    assert not result.passed and "label 1 where drop is True" in result.message, result.message
    result = run_check("cfg_loss", _cfg_loss_student(images_all_null=True))     # since 2026-12-06 a named mistake
    assert not result.passed and "every label is the null class -1" in result.message, result.message
    assert "reshaped" not in result.message, result.message


def test_cfg_combine_that_asserts_a_positive_scale_is_told_why():
    """`assert guidance_scale >= 0` failed the hidden case (w = -1) with a bare 'raised AssertionError:' (a
    wrong-answer pass); since 2026-12-07 a visible case has w = -1, so the notebook says it too."""
    from course_utils.checks import run_check

    def cfg_combine(eps_pred_uncond, eps_pred_cond, guidance_scale):
        assert guidance_scale >= 0
        return eps_pred_uncond + guidance_scale * (eps_pred_cond - eps_pred_uncond)
    for hidden in (False, True):
        result = run_check("cfg_combine", cfg_combine, hidden=hidden)
        assert not result.passed and "guidance_scale may be any real number" in result.message, result.message


@pytest.mark.parametrize("scale", [lambda w: max(w, 0.0), abs, lambda w: int(w) if w >= 1 else w],
                         ids=["max(w, 0)", "abs(w)", "int(w) above 1"])
def test_cfg_combine_visible_cases_catch_what_only_the_hidden_ones_caught(scale):
    """A wrong-answer pass of 2026-12-07: a scale clamped at 0, its absolute value, or truncated only above 1 got
    the notebook's ✅ (visible scales 3, 1, 0, 0.5) and lost the point to the hidden 7.5 and -1, with a hint for the
    clamp that named another mistake ("w = 1 must give eps_cond") and one whose number the hidden case had masked
    ("w = … lies halfway"). The visible cases now hold -1 and 1.5, and each hint names the mistake."""
    from course_utils.checks import run_check

    def cfg_combine(eps_pred_uncond, eps_pred_cond, guidance_scale):
        return eps_pred_uncond + scale(guidance_scale) * (eps_pred_cond - eps_pred_uncond)
    said = "truncated to an integer" if scale(1.5) == 1 else "a w below 0 is valid"
    for hidden in (False, True):
        result = run_check("cfg_combine", cfg_combine, hidden=hidden)
        assert not result.passed and said in result.message and "…" not in result.message, result.message


def test_guided_sampler_that_truncates_a_scale_above_one_fails_a_visible_case():
    """int(w) taken only above 1 passed the visible scales 3, 0 and 0.5 and failed the hidden 1.5 with the hint for
    an ignored scale (a review of 2026-12-07): a visible case has w = 1.5 now, named as a truncation."""
    def guided_ddim_sample(model, schedule, x_T, y, guidance_scale, num_steps=50):
        w = int(guidance_scale) if guidance_scale > 1 else guidance_scale
        grid, x = samplers.ddim_timesteps(schedule.T, num_steps).tolist(), x_T
        for k, t in enumerate(grid):
            tt = torch.full((len(x),), t, dtype=torch.long)
            eps = cfg_combine(model(x, tt, torch.full_like(y, -1)), model(x, tt, y), w)
            alpha_bar_prev = schedule.alpha_bar[grid[k + 1]] if k + 1 < len(grid) else torch.tensor(1.0)
            x, _ = samplers.ddim_step(x, eps, schedule.alpha_bar[t], alpha_bar_prev)
        return x
    result = run_check("guided_ddim_sample", guided_ddim_sample)
    assert not result.passed and "truncated to an integer" in result.message, result.message


def test_guided_sampler_that_guides_only_above_one_is_not_told_it_swapped():
    """diffusers' `do_classifier_free_guidance = guidance_scale > 1`: the conditional samples at w = 0, which are
    also what swapped predictions give there; the hint said "swapped" (a wrong-answer pass of 2026-12-07)."""
    def guided_ddim_sample(model, schedule, x_T, y, guidance_scale, num_steps=50):
        grid, x = samplers.ddim_timesteps(schedule.T, num_steps).tolist(), x_T
        for k, t in enumerate(grid):
            tt = torch.full((len(x),), t, dtype=torch.long)
            eps = model(x, tt, y)
            if guidance_scale > 1:
                eps = cfg_combine(model(x, tt, torch.full_like(y, -1)), eps, guidance_scale)
            alpha_bar_prev = schedule.alpha_bar[grid[k + 1]] if k + 1 < len(grid) else torch.tensor(1.0)
            x, _ = samplers.ddim_step(x, eps, schedule.alpha_bar[t], alpha_bar_prev)
        return x
    result = run_check("guided_ddim_sample", guided_ddim_sample)
    assert not result.passed and "diffusers guides only when" in result.message, result.message
    assert "swapped" not in result.message, result.message


@pytest.mark.parametrize("t", [30, torch.tensor(30)], ids=["int", "0-dim"])
@pytest.mark.parametrize("make", ["mlp", "mixture"])
def test_worksheet_6_reads_one_t_for_the_batch_from_any_course_model(t, make):
    """The models name one t for the whole batch ("UNet(xt, t): t must be a tensor of shape (4,), one timestep per
    image, got int 30"); the check's explanation read only the mixture's int case ("per example, got int")."""
    from course_utils.analytic import GaussianMixtureEps
    from course_utils.checks.ws06_guidance import _sampler_explain
    from course_utils.data import EIGHT_GAUSSIANS
    from course_utils.nets import MLPDenoiser
    from course_utils.schedules import NoiseSchedule
    schedule = NoiseSchedule.linear(50)
    model = (MLPDenoiser(hidden_dim=16, num_classes=8) if make == "mlp"
             else GaussianMixtureEps(EIGHT_GAUSSIANS, schedule))
    with pytest.raises((TypeError, ValueError)) as raised:
        model(torch.zeros(4, 2), t, torch.zeros(4, dtype=torch.long))
    assert "one timestep per example: t of shape (N,)" in (_sampler_explain(str(raised.value)) or ""), raised.value
