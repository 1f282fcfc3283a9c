"""Worksheet 05 (solutions/05_samplers.ipynb): one step of each sampler.

- ``ddpm_step(xt, t, eps_pred, schedule, noise)``: Ho et al. 2020, Algorithm 2:
      x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_pred) / sqrt(alpha_t) + sigma_t z,  z = 0 at t = 0,
  with either of the paper's two variances (Sec. 3.2): sigma_t^2 = beta_t or the posterior variance tilde beta_t
  (lesson 5's default, ``ddpm_sample(variance="posterior")``); the check accepts both.
- ``ddim_sample_loop(model, schedule, x_T, num_steps, *, eta=0.0, generator=None)``: the whole DDIM sampler on
  ``ddim_timesteps(T, num_steps)``, from x_T to x0, with the student's ``ddim_step``. Judged with the exact noise
  predictor of eight Gaussians (``course_utils.analytic``): at eta = 0 against the float64 reference loop, at
  eta > 0 (where the order of the noise draws is the student's) by whether the samples reproduce the mixture
  and by each step's noise, recovered from the x_t the loop gives the network (``StepRecorder``): x_{t_prev}
  minus the step's DDIM mean is sigma_t z, and every z must be a fresh N(0, I) (one step of 50 without its noise
  reproduced the mixture well enough to pass); and with a predictor that always says eps = 0 over 2 steps at
  eta = 1, where the samples give back the one noise the loop adds, which must be N(0, I) (variance,
  Kolmogorov-Smirnov distance: three-valued noise with a normal's moments, or no noise at the first step,
  reproduced the mixture well enough to pass).
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

from .framework import (MISTAKES, Check, alpha_bar64, alpha_bar_prev64, close, dtype_hint, explain_by, foreign_noise,
                        first_few, fresh_draws_hint, gaussian_noise_hint, generator, judge, last_target, model_timestep,
                        raised_record, register, repeat_hint, same_seed_hint, sampler_nan_hint, shape_hint,
                        not_float32, small_schedule, three_point_noise, todo, visible)


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
    cases = _step_cases([49, 5, 1, 0] + ([30] if hidden else []))
    for c in cases:
        c.update(t=c.pop("step"), schedule=small_schedule())
    return cases


def ref_ddpm_step(xt, t, eps_pred, schedule, noise, *, last_noise=False, sigma="beta", alpha="alpha", sqrt=True,
                  sign=-1.0, shift=0, quiet_below=1, mean_form="paper", noise_sign=1.0):
    """x_{t-1} in float64 (Algorithm 2, sigma_t^2 = beta_t); the switches reproduce the catalogued mistakes
    (``quiet_below=2``: no noise at code t = 1 either, the paper's "z = 0 if t = 1" read as "if t > 1";
    ``mean_form``: "paper", "ddim_eps" (eps's coefficient sqrt(1 - alpha_bar_t), DDIM's x0 term),
    "times_sqrt_alpha", "noise_inside" (sigma z inside the bracket), "xt_only" (1 / sqrt(alpha_t) on x_t alone),
    "sqrt_beta" (beta_t / sqrt(1 - alpha_t) = sqrt(beta_t) as eps's coefficient), "clipped_x0" (x0_pred clamped to
    [-1, 1], then the posterior mean of lesson 2: the original DDPM code's sampler))."""
    i = t - shift
    one = torch.tensor(1.0, dtype=torch.float64)
    alpha_bar = alpha_bar64(schedule)[i] if i >= 0 else one
    alpha_bar_prev = alpha_bar_prev64(schedule)[i] if i >= 0 else one
    beta = 1 - alpha_bar / alpha_bar_prev
    alpha_t = (1 - beta) if alpha == "alpha" else alpha_bar
    root = (1 - alpha_bar).sqrt() if sqrt else (1 - alpha_bar)
    x, eps = xt.double(), eps_pred.double()
    coef = {"ddim_eps": (1 - alpha_bar).sqrt(), "sqrt_beta": beta.sqrt()}.get(mean_form,
                                                                             beta / root.clamp(min=1e-12))
    posterior_variance = (1 - alpha_bar_prev) / (1 - alpha_bar).clamp(min=1e-12) * beta
    std = {"posterior": posterior_variance.sqrt(), "var": beta, "beta": beta.sqrt(),
           "posterior_var": posterior_variance, "one_minus_alpha_bar": (1 - alpha_bar).sqrt(), "one": one,
           "one_minus_alpha_bar_prev": (1 - alpha_bar_prev).sqrt()}[sigma]
    noisy = t >= quiet_below or last_noise
    z = noise_sign * std * noise.double() if noisy else torch.zeros_like(x)
    if mean_form == "clipped_x0":
        x0 = ((x - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()).clamp(-1, 1)
        denominator = (1 - alpha_bar).clamp(min=1e-12)
        return (alpha_bar_prev.sqrt() * beta / denominator * x0
                + (1 - beta).sqrt() * (1 - alpha_bar_prev) / denominator * x + z)
    if mean_form == "noise_inside":
        return (x + sign * coef * eps + z) / alpha_t.sqrt()
    if mean_form == "times_sqrt_alpha":
        return (x + sign * coef * eps) * alpha_t.sqrt() + z
    if mean_form == "xt_only":
        return x / alpha_t.sqrt() + sign * coef * eps + z
    return (x + sign * coef * eps) / alpha_t.sqrt() + z


def _sigma_of_step_before(args, sigma: str) -> torch.Tensor:
    """The right mean plus step t-1's sigma (of the variance ``sigma``) times the noise."""
    xt, t, eps_pred, schedule, noise = args
    zeros = torch.zeros_like(noise)
    added = ref_ddpm_step(*args, sigma=sigma, shift=1) - ref_ddpm_step(xt, t, eps_pred, schedule, zeros, shift=1)
    return ref_ddpm_step(xt, t, eps_pred, schedule, zeros) + added


DDPM_STEP = ("x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_pred) / sqrt(alpha_t) + sigma_t noise, sigma_t = "
             "sqrt(beta_t), and no noise at t = 0 (Algorithm 2)")


CLIPPED_X0 = ("x0_pred is clamped to [-1, 1] before the posterior mean (the original DDPM code's clip): Algorithm 2 "
              "uses eps_pred as it is, and so does this worksheet")


def _ddpm_diagnose(out, c) -> str | None:
    args = (c["xt"], c["t"], c["eps_pred"], c["schedule"], c["noise"])
    posterior = ref_ddpm_step(*args, sigma="posterior")   # Ho et al. Sec. 3.2: both variances are right
    if isinstance(out, torch.Tensor) and tuple(out.shape) == tuple(posterior.shape) and close(out, posterior):
        return dtype_hint(out.dtype, "x_{t-1}", values_right=True) if not_float32(out) else None
    ref = ref_ddpm_step(*args)
    hint = judge(out, ref, [
        ("noise added at the last step: at t = 0 return the mean, without sigma * noise",
         ref_ddpm_step(*args, last_noise=True)),
        *[(f"x_0 is clamped to [-1, 1]: Algorithm 2 returns the last step's x_0 as its mean gives it, unclipped "
           f"(a clamp is the caller's choice, for images). {DDPM_STEP}" if bool((torch.as_tensor(c["t"]) == 0).all())
           else f"x_{{t-1}} is clamped to [-1, 1]: a step returns x_{{t-1}} as it is (the states in between are not "
           f"images and lie outside [-1, 1]). {DDPM_STEP}", ref_ddpm_step(*args, sigma=sigma).clamp(-1, 1))
          for sigma in ("beta", "posterior")],
        *[(hint, ref_ddpm_step(*args, sigma=sigma, **switches)) for hint, switches in [
            ("no noise at t = 1: the paper counts t = 1..T, the code t = 0..T-1, so the paper's \"z = 0 if t = 1\" "
             "is code t == 0; every other step adds sigma_t * noise", dict(quiet_below=2)),
            ("wrong sign: x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) + sigma_t z",
             dict(sign=1.0)),
            ("divide by sqrt(alpha_t), not sqrt(alpha_bar_t): alpha_t = 1 - beta_t and alpha_bar_t confused",
             dict(alpha="abar")),
            ("the square root is forgotten on (1 - alpha_bar_t)", dict(sqrt=False))]
          for sigma in ("beta", "posterior")],   # a mistake in the mean, with either of the paper's variances
        (f"x_{{t-1}} is the mean alone: every step but the last (t > 0) adds sigma_t * noise, with the `noise` "
         f"given; only t = 0 returns the mean. {DDPM_STEP}", ref_ddpm_step(*args[:4], torch.zeros_like(c["noise"]))),
        ("sigma_t is the standard deviation: multiply the noise by sqrt(beta_t), not by beta_t",
         ref_ddpm_step(*args, sigma="var")),
        ("sigma_t is the standard deviation: multiply the noise by sqrt(tilde beta_t), not by tilde beta_t",
         ref_ddpm_step(*args, sigma="posterior_var")),
        ("t off by one: you used the quantities of step t-1 (alpha_bar[t-1]); step t uses alpha_bar[t], betas[t]",
         ref_ddpm_step(*args, shift=1)),
        *[("the noise's sigma_t is step t-1's (betas[t-1] or posterior_variance[t-1]): sigma_t uses step t's "
           "betas[t] (or posterior_variance[t]), like the mean", _sigma_of_step_before(args, sigma))
          for sigma in ("beta", "posterior")],
        (f"sigma_t is sqrt(beta_t) (or the posterior's sqrt(tilde beta_t)), not sqrt(1 - alpha_bar_t), which is "
         f"x_t's own noise level. The step: {DDPM_STEP}", ref_ddpm_step(*args, sigma="one_minus_alpha_bar")),
        (f"sigma_t is sqrt(beta_t) (or sqrt(tilde beta_t)), not sqrt(1 - alpha_bar_{{t-1}}): {DDPM_STEP}",
         ref_ddpm_step(*args, sigma="one_minus_alpha_bar_prev")),
        (f"the noise is multiplied by sigma_t = sqrt(beta_t), not added as it is: {DDPM_STEP}",
         ref_ddpm_step(*args, sigma="one")),
        (f"sigma_t z is added, not subtracted: {DDPM_STEP}", ref_ddpm_step(*args, noise_sign=-1.0)),
        *[(CLIPPED_X0, ref_ddpm_step(*args, mean_form="clipped_x0", sigma=sigma)) for sigma in ("beta", "posterior")],
        *[(f"{hint}: {DDPM_STEP}", ref_ddpm_step(*args, mean_form=form, sigma=sigma)) for hint, form in [
            ("eps_pred's coefficient is beta_t / sqrt(1 - alpha_bar_t), not sqrt(1 - alpha_bar_t) (that one gives "
             "x0_pred, DDIM's way)", "ddim_eps"),
            ("eps_pred's coefficient is beta_t / sqrt(1 - alpha_bar_t), with the cumulative alpha_bar_t under the "
             "root (beta_t / sqrt(1 - alpha_t) = sqrt(beta_t))", "sqrt_beta"),
            ("divide by sqrt(alpha_t), don't multiply", "times_sqrt_alpha"),
            ("sigma_t z comes after the division by sqrt(alpha_t), not inside the bracket", "noise_inside"),
            ("1 / sqrt(alpha_t) divides the whole bracket, x_t - beta_t / sqrt(1 - alpha_bar_t) eps_pred, not x_t "
             "alone", "xt_only")]
          for sigma in ("beta", "posterior")],
    ], "x_{t-1}", f"x_{{t-1}} differs: {DDPM_STEP}")
    generic = hint is not None and hint.startswith("x_{t-1} differs:")
    if generic and c["t"] >= 1 and torch.isfinite(out).all():
        mean = ref_ddpm_step(*args[:4], torch.zeros_like(c["noise"]))
        if foreign_noise(out.double() - mean, c["noise"], float((ref - mean).std())):
            return ("x_{t-1} has noise of about the right size, but not the noise given: add sigma_t * noise with "
                    "the `noise` argument, not a draw of your own (the samplers pass it, so that a seed reproduces "
                    "a run)")
    return hint


register(Check("ddpm_step", "ddpm_step", _ddpm_cases,
               lambda f, c: f(c["xt"], c["t"], c["eps_pred"], c["schedule"], c["noise"]), _ddpm_diagnose))
check_ddpm_step = visible("ddpm_step")


def ddpm_variant(**switches):
    """ddpm_step(xt, t, eps_pred, schedule, noise) in float32 with mistakes switched on; none: the right one."""
    return lambda xt, t, eps_pred, schedule, noise: ref_ddpm_step(xt, t, eps_pred, schedule, noise, **switches).float()


def _ddpm_posterior_float64(xt, t, eps_pred, schedule, noise):
    """The posterior variance (a right choice) computed in float64 and returned so: its values pass, its dtype not."""
    return ddpm_variant(sigma="posterior")(xt.double(), t, eps_pred.double(), schedule, noise.double()).double()


def _ddpm_clamped_last(xt, t, eps_pred, schedule, noise):
    """The right step, its x_0 clamped to [-1, 1] at the last step (t = 0) only: "the final image"."""
    out = ddpm_variant(sigma="posterior")(xt, t, eps_pred, schedule, noise)
    return out.clamp(-1, 1) if bool((torch.as_tensor(t) == 0).all()) else out


MISTAKES["ddpm_step"] = [
    ("noise at the last step", ddpm_variant(last_noise=True), "noise added at the last step"),
    ("x_0 clamped at the last step", _ddpm_clamped_last, "Algorithm 2 returns the last step's x_0"),
    ("the posterior variance in float64", _ddpm_posterior_float64, "the values are right, but the x_{t-1} is float64"),
    ("x0_pred clamped, then the posterior mean", ddpm_variant(mean_form="clipped_x0"),
     "clamped to [-1, 1] before the posterior mean"),
    ("wrong sign", ddpm_variant(sign=1.0), "wrong sign"),
    ("no noise at t = 1", ddpm_variant(quiet_below=2), "no noise at t = 1"),
    ("alpha_bar for alpha", ddpm_variant(alpha="abar"), "alpha_bar_t confused"),
    ("no sqrt on 1 - alpha_bar", ddpm_variant(sqrt=False), "square root"),
    ("variance as sigma", ddpm_variant(sigma="var"), "standard deviation"),
    ("posterior variance as sigma", ddpm_variant(sigma="posterior_var"), "sqrt(tilde beta_t), not by tilde beta_t"),
    ("t off by one", ddpm_variant(shift=1), "off by one"),
    ("sigma_t = sqrt(1 - alpha_bar_t)", ddpm_variant(sigma="one_minus_alpha_bar"), "x_t's own noise level"),
    ("sigma_t = sqrt(1 - alpha_bar_prev)", ddpm_variant(sigma="one_minus_alpha_bar_prev"),
     "not sqrt(1 - alpha_bar_{t-1})"),
    ("noise without sigma_t", ddpm_variant(sigma="one"), "not added as it is"),
    ("noise subtracted", ddpm_variant(noise_sign=-1.0), "sigma_t z is added, not subtracted"),
    ("DDIM's eps coefficient", ddpm_variant(mean_form="ddim_eps"), "DDIM's way"),
    ("sqrt(1 - alpha_t) for sqrt(1 - alpha_bar_t)", ddpm_variant(mean_form="sqrt_beta"),
     "with the cumulative alpha_bar_t under the root"),
    ("multiplied by sqrt(alpha_t)", ddpm_variant(mean_form="times_sqrt_alpha"), "divide by sqrt(alpha_t), don't"),
    ("noise inside the bracket", ddpm_variant(mean_form="noise_inside"), "not inside the bracket"),
    ("1/sqrt(alpha_t) on x_t alone", ddpm_variant(mean_form="xt_only"), "divides the whole bracket"),
    ("no noise at any step", lambda xt, t, eps_pred, schedule, noise: ddpm_variant()(
        xt, t, eps_pred, schedule, torch.zeros_like(noise)), "x_{t-1} is the mean alone"),
    ("x_{t-1} clamped to [-1, 1]", lambda xt, t, eps_pred, schedule, noise: ddpm_variant(sigma="posterior")(
        xt, t, eps_pred, schedule, noise).clamp(-1, 1), "x_{t-1} is clamped to [-1, 1]"),
    ("noise inside the bracket, with tilde beta_t", ddpm_variant(mean_form="noise_inside", sigma="posterior"),
     "not inside the bracket"),
    ("DDIM's eps coefficient, with tilde beta_t", ddpm_variant(mean_form="ddim_eps", sigma="posterior"),
     "DDIM's way"),
    ("sigma_t of step t-1", lambda xt, t, eps_pred, schedule, noise: _sigma_of_step_before(
        (xt, t, eps_pred, schedule, noise), "posterior").float(), "the noise's sigma_t is step t-1's"),
    ("its own noise", lambda xt, t, eps_pred, schedule, noise: ddpm_variant()(
        xt, t, eps_pred, schedule, torch.randn(noise.shape, generator=generator(99))), "not the noise given"),
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
                  sqrt=True, remix_with_prev=True, clip=False, sigma_form="paper", noise_coef="sigma",
                  dir_form="paper", x0_with_prev=False, dir_sigma_eta_one=False, remix_part=None):
    """(x_prev, x0_pred) in float64 (DDIM Eq. 12 and 16); the switches reproduce the catalogued mistakes
    (``clip``: x0_pred clamped to [-1, 1], diffusers' ``clip_sample``, which the course's sampler does not do;
    ``sigma_form``: "eta_squared", "sqrt_eta", "ratio_inverted" ((1 - alpha_bar_t) / (1 - alpha_bar_prev)),
    "second_unrooted" (1 - alpha_bar_t / alpha_bar_prev without its root); ``noise_coef="sigma_squared"``;
    ``dir_form="minus_sigma"``: sqrt(1 - alpha_bar_prev) - sigma_t, "unrooted": 1 - alpha_bar_prev - sigma_t^2
    without its root; ``x0_with_prev``: x0_pred from alpha_bar_prev; ``dir_sigma_eta_one``: the direction's sigma_t
    at eta = 1 whatever eta; ``noise_coef="minus"``: the noise subtracted; ``sigma_form="first_unrooted"``:
    (1 - alpha_bar_prev) / (1 - alpha_bar_t) without its root, "no_first": that factor left out; ``dir_form=
    "sigma_unsquared"``: sqrt(1 - alpha_bar_prev - sigma_t); ``remix_part``: alpha_bar_t in place of alpha_bar_prev
    in x0_pred's coefficient alone ("x0") or in the direction alone ("dir"))."""
    a, a_prev = torch.as_tensor(alpha_bar_t).double(), torch.as_tensor(alpha_bar_prev).double()
    root = torch.sqrt if sqrt else (lambda v: v)
    a_x0 = a_prev if x0_with_prev else a
    # Eq. 12, "predicted x0": (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)
    x0_pred = (xt.double() - root(1 - a_x0) * eps_pred.double()) / root(a_x0)
    if clip:
        x0_pred = x0_pred.clamp(-1, 1)
    # Eq. 16: sigma_t = eta sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_prev)
    e = (eta if use_eta else 1.0)
    e = {"eta_squared": e ** 2, "sqrt_eta": e ** 0.5}.get(sigma_form, e)
    ratio = (1 - a) / (1 - a_prev).clamp(min=1e-12) if sigma_form == "ratio_inverted" else (1 - a_prev) / (1 - a)
    second = (1 - a / a_prev).clamp(min=0)
    second = second if sigma_form == "second_unrooted" else second.sqrt()
    first = {"first_unrooted": ratio, "no_first": torch.ones_like(ratio)}.get(sigma_form, ratio.clamp(min=0).sqrt())
    sigma_at_eta_one = first * second
    sigma = e * sigma_at_eta_one
    a_remix = a_prev if remix_with_prev else a
    a_x0_coef, a_dir = (a if remix_part == "x0" else a_remix), (a if remix_part == "dir" else a_remix)
    # Eq. 12: sqrt(alpha_bar_prev) x0_pred + sqrt(1 - alpha_bar_prev - sigma_t^2) eps + sigma_t z
    sigma_dir = sigma_at_eta_one if dir_sigma_eta_one else sigma
    if dir_form == "minus_sigma":
        direction = ((1 - a_dir).sqrt() - sigma_dir) * eps_pred.double()
    else:
        taken = sigma_dir if dir_form == "sigma_unsquared" else sigma_dir ** 2 if sigma2_in_dir else 0
        variance = (1 - a_dir - taken).clamp(min=0)
        direction = (variance if dir_form == "unrooted" else variance.sqrt()) * eps_pred.double()
    scale = {"sigma_squared": sigma ** 2, "minus": -sigma}.get(noise_coef, sigma)
    return a_x0_coef.sqrt() * x0_pred + direction + scale * noise.double(), x0_pred


def _ddim_call(f, c):
    """The student's outputs with the case's noise, and again with a second noise (to test determinism)."""
    args = (c["xt"], c["eps_pred"], c["alpha_bar_t"], c["alpha_bar_prev"])
    out = dict(out=f(*args, eta=c["eta"], noise=c["noise"]), out2=f(*args, eta=c["eta"], noise=c["noise2"]))
    if c["eta"] == 0:       # the sampling loops pass noise=None at eta = 0
        try:
            out["no_noise"] = f(*args, eta=0.0, noise=None)
        except Exception as err:  # noqa: BLE001 - reported as a hint, not as the check's error
            out["no_noise"] = raised_record(err)
    return out


X0_PRED_DIFFERS = "x0_pred differs: x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps_pred) / sqrt(alpha_bar_t)"
X0_PRED_TOO = ("x_prev and x0_pred differ; fix x0_pred first (x_prev is built on it): x0_pred = (x_t - "
               "sqrt(1 - alpha_bar_t) eps_pred) / sqrt(alpha_bar_t)")
SIGMA_T = "sigma_t = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev)"
X_PREV_DIFFERS = ("x_prev differs: x_prev = sqrt(alpha_bar_prev) x0_pred + sqrt(1 - alpha_bar_prev - sigma_t^2) "
                  f"eps_pred + sigma_t noise, {SIGMA_T}")


def _ddim_diagnose(out, c) -> str | None:
    if not all(isinstance(o, (list, tuple)) and len(o) == 2 for o in (out["out"], out["out2"])):
        return "return a tuple (x_prev, x0_pred), like course_utils.samplers.ddim_step"
    (x_prev, x0_pred), (x_prev2, _) = out["out"], out["out2"]
    args = (c["xt"], c["eps_pred"], c["alpha_bar_t"], c["alpha_bar_prev"], c["eta"])
    ref_prev, ref_x0 = ref_ddim_step(*args, c["noise"])
    both = isinstance(x_prev, torch.Tensor) and isinstance(x_prev2, torch.Tensor)
    if both and not (torch.isfinite(x_prev).all() and torch.isfinite(x_prev2).all()):
        return ("x_prev contains NaN or inf: is a square root taken of a negative number? sigma_t = eta * "
                "sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev)")
    if (not close(ref_prev, ref_x0, 1e-4) and isinstance(x0_pred, torch.Tensor) and close(x0_pred, ref_prev, 1e-4)
            and isinstance(x_prev, torch.Tensor) and close(x_prev, ref_x0, 1e-4)):
        return "the order is swapped: return (x_prev, x0_pred), x_prev first"
    if c["eta"] == 0 and both and not close(x_prev, x_prev2, 1e-6):
        return "not deterministic at eta = 0: sigma_t = eta * sqrt(...) must vanish, so the noise has no effect"
    ref_moves = not close(ref_prev, ref_ddim_step(*args, c["noise2"])[0], 1e-6)
    if ref_moves and both and close(x_prev, x_prev2, 1e-6):
        return ("eta is ignored: with eta > 0 the step adds sigma_t * noise, sigma_t = eta * "
                "sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev)")
    # x_prev is built on x0_pred: when both differ, the generic hint starts with x0_pred
    x0_wrong = (isinstance(x0_pred, torch.Tensor) and tuple(x0_pred.shape) == tuple(ref_x0.shape)
                and not close(x0_pred, ref_x0))
    if x0_wrong and close(x0_pred, ref_ddim_step(*args, c["noise"], x0_with_prev=True)[1]):
        return ("x0_pred undoes the noise of x_t, which is at alpha_bar_t: x0_pred = (x_t - sqrt(1 - alpha_bar_t) "
                "eps_pred) / sqrt(alpha_bar_t), with alpha_bar_t, not alpha_bar_prev (that one is for the remix)")
    noisy = c["eta"] > 0
    sigma_variants = [(hint, ref_ddim_step(*args, c["noise"], **switches)[0]) for hint, switches in [
        (f"eta enters sigma_t once, not squared: {SIGMA_T}", dict(sigma_form="eta_squared")),
        (f"eta multiplies sigma_t as it is, not its square root: {SIGMA_T}", dict(sigma_form="sqrt_eta")),
        (f"the first ratio in sigma_t is (1 - alpha_bar_prev) / (1 - alpha_bar_t), not its inverse: {SIGMA_T}",
         dict(sigma_form="ratio_inverted")),
        (f"sigma_t has the square root of (1 - alpha_bar_t / alpha_bar_prev) too: {SIGMA_T}",
         dict(sigma_form="second_unrooted")),
        (f"the noise is multiplied by sigma_t, not sigma_t^2: {SIGMA_T}", dict(noise_coef="sigma_squared")),
        ("the direction term is sqrt(1 - alpha_bar_prev - sigma_t^2) * eps_pred: sigma_t^2 comes off inside the "
         "square root, not sigma_t off outside it", dict(dir_form="minus_sigma")),
        (f"sigma_t z is added, not subtracted: {X_PREV_DIFFERS.removeprefix('x_prev differs: ')}",
         dict(noise_coef="minus")),
        (f"sigma_t takes the square root of (1 - alpha_bar_prev) / (1 - alpha_bar_t) as well: {SIGMA_T}",
         dict(sigma_form="first_unrooted")),
        # named on the steps before the last only: at the last (alpha_bar_prev = 1, sigma_t = 0) its sqrt(1 -
        # alpha_bar_t) is as small as other slips' noise there (a clamp of 1 - alpha_bar_prev to beta_0, say)
        *([(f"sigma_t has two factors, and sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) is missing: {SIGMA_T}",
            dict(sigma_form="no_first"))] if float(c["alpha_bar_prev"]) < 1 else []),
        ("the direction term subtracts sigma_t^2, not sigma_t, under its root: sqrt(1 - alpha_bar_prev - "
         f"sigma_t^2) * eps_pred, {SIGMA_T}", dict(dir_form="sigma_unsquared")),
    ]] if noisy else []
    hint = judge(x_prev, ref_prev, [
        ("sigma_t must be multiplied by eta: sigma_t = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) "
         "* sqrt(1 - alpha_bar_t / alpha_bar_prev)", ref_ddim_step(*args, c["noise"], use_eta=False)[0]),
        ("the direction term is sqrt(1 - alpha_bar_prev - sigma_t^2) * eps_pred: sigma_t^2 is missing",
         ref_ddim_step(*args, c["noise"], sigma2_in_dir=False)[0]),
        ("the square root is forgotten on alpha_bar in x0_pred", ref_ddim_step(*args, c["noise"], sqrt=False)[0]),
        ("x0_pred and eps_pred are remixed with alpha_bar_prev, not alpha_bar_t: x_prev = sqrt(alpha_bar_prev) "
         "x0_pred + sqrt(1 - alpha_bar_prev - sigma_t^2) eps_pred + sigma_t noise",
         ref_ddim_step(*args, c["noise"], remix_with_prev=False)[0]),
        ("x0_pred is clamped to [-1, 1] (diffusers' clip_sample): DDIM's Eq. 12 uses it as predicted, and so does "
         "this worksheet", ref_ddim_step(*args, c["noise"], clip=True)[0]),
        ("x0_pred's coefficient is sqrt(alpha_bar_prev), the signal level of the step's target, not "
         "sqrt(alpha_bar_t): x_prev = sqrt(alpha_bar_prev) x0_pred + sqrt(1 - alpha_bar_prev - sigma_t^2) eps_pred "
         "+ sigma_t noise", ref_ddim_step(*args, c["noise"], remix_part="x0")[0]),
        ("the direction term has alpha_bar_prev, not alpha_bar_t: sqrt(1 - alpha_bar_prev - sigma_t^2) * eps_pred, "
         "the noise level of the step's target", ref_ddim_step(*args, c["noise"], remix_part="dir")[0]),
        ("the direction term takes the square root: sqrt(1 - alpha_bar_prev - sigma_t^2) * eps_pred",
         ref_ddim_step(*args, c["noise"], dir_form="unrooted")[0]),
        # at eta = 0 too: there the direction must be sqrt(1 - alpha_bar_prev) * eps_pred, sigma_t being 0
        (f"the direction term's sigma_t is the same as the noise's, with eta in it (0 at eta = 0): sqrt(1 - "
         f"alpha_bar_prev - sigma_t^2) * eps_pred, {SIGMA_T}", ref_ddim_step(*args, c["noise"],
                                                                              dir_sigma_eta_one=True)[0]),
        *sigma_variants,
    ], "x_prev", X0_PRED_TOO if x0_wrong else _own_ddim_noise_hint(x_prev, c, args) or X_PREV_DIFFERS)
    if not hint and isinstance(x0_pred, torch.Tensor) and close(x0_pred, c["eps_pred"]) and not close(
            ref_x0, c["eps_pred"].double()):
        return "the second output is eps_pred as given: return (x_prev, x0_pred), the predicted clean data"
    hint = hint or judge(x0_pred, ref_x0, [], "x0_pred", X0_PRED_DIFFERS)
    if hint or c["eta"] != 0:
        return hint
    no_noise = out.get("no_noise")
    x_prev_no_noise = no_noise[0] if isinstance(no_noise, (list, tuple)) and len(no_noise) == 2 else no_noise
    return repeat_hint(x_prev_no_noise, ref_prev, "with eta = 0 and noise=None (what the sampling loops pass)",
                       "sigma_t is 0 there, so leave the noise out")


def _own_ddim_noise_hint(x_prev, c, args) -> str | None:
    """eta > 0: x_prev's deterministic part is right and what it adds is noise of about sigma_t's size, but not
    the noise given (torch.randn_like inside ddim_step), else None."""
    if c["eta"] == 0 or not (isinstance(x_prev, torch.Tensor) and x_prev.shape == c["xt"].shape):
        return None
    mean = ref_ddim_step(*args, torch.zeros_like(c["noise"]))[0]
    right = ref_ddim_step(*args, c["noise"])[0] - mean
    if foreign_noise(x_prev.double() - mean, c["noise"], float(right.std())):
        return ("x_prev has noise of about sigma_t's size, but not the noise given: add sigma_t * noise with the "
                "`noise` argument, not a draw of your own (the sampling loop passes it, so that a seed reproduces a "
                "run)")
    return None


def answer_ddim_step():
    """A right ddim_step (``Check.answer``): lent to a caller's instant check beside a failing one."""
    return ddim_variant()


register(Check("ddim_step", "ddim_step", _ddim_cases, _ddim_call, _ddim_diagnose, answer=answer_ddim_step))
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


def _ddim_own_noise():
    """ddim_step drawing a noise of its own at every call (torch.randn_like), not the one given."""
    g = generator(98)

    def ddim_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, eta=0.0, noise=None):
        return ddim_variant()(xt, eps_pred, alpha_bar_t, alpha_bar_prev, eta=eta,
                              noise=torch.randn(xt.shape, generator=g))
    return ddim_step


MISTAKES["ddim_step"] = [
    ("always noisy", ddim_variant(use_eta=False), "not deterministic at eta = 0"),
    ("sigma^2 missing in the direction", ddim_variant(sigma2_in_dir=False), "sigma_t^2 is missing"),
    ("no sqrt", ddim_variant(sqrt=False), "square root"),
    ("remixed with alpha_bar_t", ddim_variant(remix_with_prev=False), "remixed with alpha_bar_prev"),
    ("eta ignored (always deterministic)", ddim_variant(ignore_eta=True), "eta is ignored"),
    ("returns x_prev only", ddim_variant(x_prev_only=True), "return a tuple (x_prev, x0_pred)"),
    ("(x0_pred, x_prev)", lambda *args, **kwargs: ddim_variant()(*args, **kwargs)[::-1], "order is swapped"),
    ("x0_pred clamped", ddim_variant(clip=True), "clip_sample"),
    ("x0_pred from alpha_bar_prev", ddim_variant(x0_with_prev=True), "not alpha_bar_prev (that one is for the"),
    ("eta squared in sigma_t", ddim_variant(sigma_form="eta_squared"), "eta enters sigma_t once, not squared"),
    ("sqrt(eta) in sigma_t", ddim_variant(sigma_form="sqrt_eta"), "not its square root"),
    ("sigma_t's ratio inverted", ddim_variant(sigma_form="ratio_inverted"), "the first ratio in sigma_t"),
    ("sigma_t's second factor unrooted", ddim_variant(sigma_form="second_unrooted"),
     "sigma_t has the square root of (1 - alpha_bar_t / alpha_bar_prev) too"),
    ("noise times sigma_t^2", ddim_variant(noise_coef="sigma_squared"), "not sigma_t^2"),
    ("sigma_t subtracted outside the root", ddim_variant(dir_form="minus_sigma"), "not sigma_t off outside it"),
    ("the direction without its root", ddim_variant(dir_form="unrooted"), "the direction term takes the square root"),
    ("the direction's sigma_t without eta", ddim_variant(dir_sigma_eta_one=True),
     "the direction term's sigma_t is the same as the noise's"),
    ("the noise subtracted", ddim_variant(noise_coef="minus"), "sigma_t z is added, not subtracted"),
    ("sigma_t's first factor unrooted", ddim_variant(sigma_form="first_unrooted"),
     "sigma_t takes the square root of (1 - alpha_bar_prev) / (1 - alpha_bar_t) as well"),
    ("sigma_t's first factor left out", ddim_variant(sigma_form="no_first"),
     "sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) is missing"),
    ("sigma_t unsquared in the direction", ddim_variant(dir_form="sigma_unsquared"),
     "subtracts sigma_t^2, not sigma_t, under its root"),
    ("x0_pred's coefficient sqrt(alpha_bar_t)", ddim_variant(remix_part="x0"),
     "x0_pred's coefficient is sqrt(alpha_bar_prev)"),
    ("the direction with alpha_bar_t", ddim_variant(remix_part="dir"),
     "the direction term has alpha_bar_prev, not alpha_bar_t"),
    ("eps_pred returned for x0_pred", lambda *args, **kwargs: (ddim_variant()(*args, **kwargs)[0], args[1]),
     "the second output is eps_pred as given"),
    ("its own noise", _ddim_own_noise(), "noise of about sigma_t's size, but not the noise given"),
    ("needs a noise tensor at eta = 0", lambda xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, eta=0.0, noise=None: tuple(
        v.float() for v in ref_ddim_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, eta, noise)), "noise=None"),
    ("not implemented", todo, "not implemented yet"),
]


# ------------------------------------------------------------------ ddim_sample_loop
def _loop_cases(hidden: bool) -> list:
    """(schedule, num_steps, eta, number of points); x_T and the generator's seed are fixed per case."""
    from ..schedules import NoiseSchedule

    # eta = 0.5 is visible: a loop right at eta = 0 and 1 only (eta applied twice, eta > 0 read as 1, sqrt(eta))
    # is told so in the worksheet, not first by the grader
    # a visible schedule of T = 200: a loop that takes T = 1000, or the notebook's schedule, instead of the one
    # given is told so in the worksheet (it passed, then raised an IndexError in the grader's hidden case)
    specs = [(NoiseSchedule.linear(T=1000), 50, 0.0, 256), (NoiseSchedule.linear(T=1000), 50, 1.0, 2000),
             (NoiseSchedule.linear(T=1000), 20, 0.5, 2000), (NoiseSchedule.cosine(T=200), 10, 0.0, 128)]
    if hidden:
        specs += [(NoiseSchedule.linear(T=500), 25, 0.0, 128)]
    g = generator(9)
    cases = [dict(schedule=schedule, num_steps=num_steps, eta=eta, x_T=torch.randn(n, 2, generator=g), seed=11 + i)
             for i, (schedule, num_steps, eta, n) in enumerate(specs)]
    # then the noise itself (PROBE_N points, 2 steps, eta = 1, a network that predicts eps = 0): the samples
    # show the one noise the loop adds, which must be N(0, I), whatever the order of the draws (after the visible
    # cases and before the hidden one, so that the visible cases stay the first ones of the hidden list)
    probe = dict(schedule=NoiseSchedule.linear(T=1000), num_steps=2, eta=1.0, seed=31, probe=True,
                 x_T=torch.randn(PROBE_N, 2, generator=generator(10)))
    return cases[:4] + [probe] + cases[4:]


PROBE_N = 20_000


def zero_eps(x, t, *args, **kwargs):
    """A noise predictor that always says eps = 0 (the probe case of ddim_sample_loop's check)."""
    return torch.zeros_like(x)


def mixture_model(schedule):
    """The exact noise predictor eps*(x_t, t) of eight Gaussians under ``schedule`` (course_utils.analytic)."""
    from ..analytic import GaussianMixtureEps
    from ..data import EIGHT_GAUSSIANS

    return GaussianMixtureEps(EIGHT_GAUSSIANS, schedule)


def ddim_grid(T: int, num_steps: int) -> list[int]:
    """DDIM's time grid, ddim_timesteps(T, num_steps), as the references compute it: T // num_steps apart, from
    (num_steps - 1) * (T // num_steps) down to 0."""
    return (torch.arange(num_steps) * (T // num_steps)).flip(0).tolist()


def ref_ddim_loop(model, schedule, x_T, num_steps, eta, seed, *, last="one", prev="grid", t_arg="t",
                  stop_early=False, grid="ddim", draw="normal", rooted=False, noise_scale=1.0, keep_x0=False):
    """The DDIM sampler in float64 with the course's noise order (one torch.randn(x.shape, generator) per step
    when eta > 0), from a generator seeded with ``seed`` (or ``seed`` itself when it is a generator, whose stream
    it continues); the switches reproduce the catalogued mistakes (``grid="linspace"``: a grid of its own;
    ``draw="three points"``: noise of -sqrt(3), 0, sqrt(3) with a normal's first four moments, ``draw="none
    first"`` or ``"none middle"``: no noise at the first step or at step num_steps // 2 + 1 (its draw made and
    dropped), ``draw="one for all"``: the first step's noise at every step, ``draw="antithetic"``: the noise z of
    the first half of the points and -z for the second half; ``rooted``: ddim_step given sqrt(alpha_bar) for
    alpha_bar; ``noise_scale``: the noise passed to ddim_step multiplied by it, eta say; ``keep_x0``: each step's
    x0_pred carried on in place of x_prev)."""
    T = schedule.T
    timesteps = ddim_grid(T, num_steps)
    if grid == "linspace":
        timesteps = torch.linspace(T - 1, 0, num_steps).round().long().tolist()
    alpha_bar = alpha_bar64(schedule)
    g = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
    x, noises = x_T.double(), []
    for k, t in enumerate(timesteps):
        if stop_early and k == len(timesteps) - 1:
            break
        if prev == "t-1":
            t_prev = t - 1
        else:
            t_prev = timesteps[k + 1] if k + 1 < len(timesteps) else -1
        if t_prev >= 0:
            a_prev = alpha_bar[t_prev]
        else:
            a_prev = last_target(alpha_bar, last)
        eps_pred = model(x, torch.full((len(x),), model_timestep(t, k, t_arg), dtype=torch.long))
        noise = torch.randn(x.shape, generator=g) if eta > 0 else torch.zeros(x.shape)
        if draw == "three points":
            noise = three_point_noise(noise)
        elif draw == "none first" and k == 0 or draw == "none middle" and k == len(timesteps) // 2:
            noise = torch.zeros(x.shape)
        elif draw == "one for all":
            noise = noises[0] if noises else noise
        elif draw == "antithetic":          # the second half of the points gets minus the first half's noise
            half = len(x) // 2
            noise = torch.cat([noise[:half], -noise[:half], noise[2 * half:]])
        noises.append(noise)
        if rooted:
            x, x0_pred = ref_ddim_step(x, eps_pred, alpha_bar[t].sqrt(), torch.as_tensor(a_prev).sqrt(), eta, noise)
        else:
            x, x0_pred = ref_ddim_step(x, eps_pred, alpha_bar[t], a_prev, eta, noise_scale * noise)
        if keep_x0:
            x = x0_pred
    return x


def mixture_fit(samples, mixture=None) -> dict:
    """How well 2-D samples (N, 2) reproduce a Gaussian mixture (default: eight Gaussians): each sample goes to
    its nearest mean; returns the largest error of the cluster weights, the spread (RMS per coordinate around the
    cluster's mean; the mixture's std is 0.1) and the share of samples farther than 0.5 from every mean."""
    from ..data import EIGHT_GAUSSIANS

    mixture = mixture or EIGHT_GAUSSIANS
    x = samples.double().reshape(len(samples), -1)
    means = torch.tensor(mixture.means, dtype=torch.float64)                            # (K, D)
    dist = torch.cdist(x, means)                                                        # (N, K)
    nearest = dist.argmin(1)
    weights = torch.bincount(nearest, minlength=len(means)).double() / len(x)
    target = torch.tensor(mixture.weights, dtype=torch.float64)
    near = dist.min(1).values < 0.5
    spread = ((x - means[nearest])[near] ** 2).mean().sqrt() if near.any() else torch.tensor(float("inf"))
    return dict(weight_error=float((weights - target / target.sum()).abs().max()), spread=float(spread),
                outliers=float((~near).double().mean()))


def mixture_hint(samples, eta: float = 1.0, *, ask_grid: bool = True) -> str | None:
    """None when the samples reproduce eight Gaussians (weights within 0.05, spread 0.1 +- 0.04, < 3% outliers).
    ``ask_grid=False``: without the question on the time grid (where the network was seen asked at DDIM's)."""
    fit = mixture_fit(samples)
    if fit["outliers"] > 0.03:
        return (f"{fit['outliers']:.0%} of the samples lie far from every cluster: the samples do not reproduce the "
                "mixture" + (" (is the time grid ddim_timesteps(T, num_steps), and does the last step go to "
                             "alpha_bar = 1?)" if ask_grid else ""))
    if fit["weight_error"] > 0.05 or not 0.06 < fit["spread"] < 0.14:
        return (f"the clusters are wrong (weights off by up to {fit['weight_error']:.2f}, spread {fit['spread']:.3f} "
                "instead of 0.1): " + ("with eta > 0, draw one noise per step and pass it to ddim_step" if eta > 0
                                       else "at eta = 0 no noise enters, so look at the quantities each step gets"))
    return None


SECOND_SEED = 1000      # eta > 0: the loop runs again with the generator seeded seed + SECOND_SEED


class StepRecorder:
    """A noise predictor that passes every call on to ``model`` and keeps what it was asked: each call's x_t (a
    copy, in the loop's dtype) and its timestep (the first entry of t; -1 when t is not a number or a tensor of
    numbers). From them the grader recovers the noise of every step (``_step_noise_hint``)."""

    def __init__(self, model):
        self.model, self.inputs, self.timesteps = model, [], []

    def __call__(self, x, t, *args, **kwargs):
        try:
            step = int(torch.as_tensor(t).reshape(-1)[0])
        except Exception:  # noqa: BLE001 - a t the grader cannot read: the step check is skipped
            step = -1
        if isinstance(x, torch.Tensor):
            self.inputs.append(x.detach().clone())
            self.timesteps.append(step)
        return self.model(x, t, *args, **kwargs)


def _loop_call(f, c):
    model = zero_eps if c.get("probe") else mixture_model(c["schedule"])

    def run(generator, model=model):
        return f(model, c["schedule"], c["x_T"], c["num_steps"], eta=c["eta"], generator=generator)
    if c["eta"] == 0:       # the timesteps the network was asked at: the grid, when the samples are wrong
        recorder = StepRecorder(model)
        out = run(torch.Generator().manual_seed(c["seed"]), recorder)
        return dict(out=out, out2=None, again=None, next=None, steps=dict(timesteps=recorder.timesteps[:2000]))
    first = torch.Generator().manual_seed(c["seed"])
    recorder = StepRecorder(model) if not c.get("probe") else model
    out = run(first, recorder)
    steps = dict(inputs=recorder.inputs, timesteps=recorder.timesteps) if recorder is not model else None
    return dict(out=out, next=run(first), steps=steps,                      # next: the same generator, called on
                out2=run(torch.Generator().manual_seed(c["seed"] + SECOND_SEED)),
                again=run(torch.Generator().manual_seed(c["seed"])))       # again: a new one of the same seed


def _joined_pieces(inputs: list[torch.Tensor], called: list[int],
                   x_T: torch.Tensor) -> tuple[list[torch.Tensor], list[int]]:
    """A loop that asks the network for the batch in pieces (``x.chunk``, to save memory): consecutive calls at
    one timestep whose rows add up to x_T's, joined in the order asked, so that its steps are judged one by one
    like any other loop's. Nothing (the other hints judge the loop) when the pieces do not add up, mix
    timesteps, or do not give back x_T itself at the first step (pieces asked in another order)."""
    joined, joined_at, pieces, rows = [], [], [], 0
    for x, t in zip(inputs, called):
        if x.dim() != x_T.dim() or x.shape[1:] != x_T.shape[1:] or (pieces and t != joined_at[-1]):
            return [], []
        if not pieces:
            joined_at.append(t)
        pieces.append(x)
        rows += len(x)
        if rows == len(x_T):
            joined.append(torch.cat(pieces))
            pieces, rows = [], 0
        elif rows > len(x_T):
            return [], []
    if pieces or not joined or not torch.allclose(joined[0].double(), x_T.double(), atol=1e-6):
        return [], []
    return joined, joined_at


def _step_noise_hint(outputs, c) -> str | None:
    """eta > 0: the noise of every step, recovered from the x_t the loop gave the network. The network is the
    mixture's exact eps*, so the grader computes each step's DDIM mean from that x_t itself; what the next x_t (or
    the returned x0) adds to it is sigma_t z, and each step's z must be N(0, I) (``gaussian_noise_hint``), not the
    previous step's z again, and the last step (to alpha_bar = 1, sigma = 0) adds none, whatever the order of the
    draws. This sees what the statistics of the samples cannot: one step of 20 or 50 without its noise changes
    their spread by a few percent. None when the calls are not one per step of ddim_timesteps (a repeated call
    on the same x_t counts once, a batch asked in pieces is joined: ``_joined_pieces``): the other hints judge
    those loops."""
    steps, out = outputs.get("steps"), outputs["out"]
    if not isinstance(steps, dict) or not isinstance(out, torch.Tensor):
        return None
    inputs, called = steps.get("inputs"), steps.get("timesteps")
    schedule, num_steps, eta, x_T = c["schedule"], c["num_steps"], c["eta"], c["x_T"]
    if not isinstance(inputs, list) or not isinstance(called, list) or len(inputs) != len(called) or any(
            not isinstance(x, torch.Tensor) for x in inputs + [out]):
        return None
    if any(x.shape != x_T.shape for x in inputs):
        inputs, called = _joined_pieces(inputs, called, x_T)
    if not inputs or out.shape != x_T.shape or any(x.shape != x_T.shape for x in inputs):
        return None
    kept = [k for k in range(len(inputs)) if k == 0 or not torch.equal(inputs[k], inputs[k - 1])]
    inputs, called = [inputs[k] for k in kept], [called[k] for k in kept]
    grid = ddim_grid(schedule.T, num_steps)
    if called != grid:
        return None
    model, alpha_bar = mixture_model(schedule), alpha_bar64(schedule)
    states, z_before = inputs + [out], None
    for k, t in enumerate(grid):
        t_prev = grid[k + 1] if k + 1 < num_steps else -1
        a_prev = alpha_bar[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
        x = states[k]
        eps = model(x, torch.full((len(x),), t, dtype=torch.long))
        mean, _ = ref_ddim_step(x, eps, alpha_bar[t], a_prev, eta, torch.zeros(x.shape, dtype=torch.float64))
        a = alpha_bar[t]
        sigma = eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).clamp(min=0).sqrt()
        residual = states[k + 1].double() - mean
        if not torch.isfinite(residual).all():
            return None                 # the other hints say what is not finite
        step, move = f"step {k + 1} of {num_steps}", f"t = {t} -> {t_prev}"
        if t_prev < 0:
            if float(residual.abs().max()) > 1e-3 * max(1.0, float(mean.abs().max())):
                return (f"the last step, to alpha_bar = 1, has sigma_t = 0 and adds no noise, but your x0 differs "
                        f"from its DDIM mean by up to {float(residual.abs().max()):.3f}: return ddim_step's x_prev "
                        "of that step as it is")
            break
        z = residual / sigma
        var = float(z.var())
        slack = 5 * (2 / z.numel()) ** 0.5
        if abs(var - 1) > slack and eta != 1 and abs(var - eta ** 2) <= slack * eta ** 2:
            return (f"with eta = {eta:g}, the noise of {step} ({move}) has eta^2 = {eta ** 2:g} times the variance "
                    "of sigma_t z: the noise you pass is already multiplied by eta, but ddim_step's sigma_t holds "
                    "eta: pass z = torch.randn(x.shape, generator=generator) itself")
        if abs(var - 1) > slack and eta != 1 and abs(var - eta ** -2) <= slack * eta ** -2:
            return (f"with eta = {eta:g}, the noise of {step} ({move}) is as large as at eta = 1 ({var:.2f} times the "
                    "variance of sigma_t z): pass the eta you are given to ddim_step, not 1")
        if abs(var - 1) > slack:
            return (f"with eta = {eta:g}, every step but the last adds sigma_t z with z ~ N(0, I); the noise of "
                    f"{step} ({move}) has {var:.2f} times that variance: draw one fresh "
                    "z = torch.randn(x.shape, generator=generator) at every step and pass it to ddim_step")
        hint = gaussian_noise_hint(z, step)
        if hint:
            return hint
        if z_before is not None:
            again = float((z * z_before).mean())
            if abs(again) > 5 / z.numel() ** 0.5:
                return (f"the noise of {step} ({move}) is correlated with the previous step's ({again:.2f}): "
                        "draw a fresh noise at every step instead of reusing one")
        z_before = z
    return None


def _noise_scale_hint(out, out2, c, args, ref) -> str | None:
    """eta > 0: two runs from the same x_T with two generators must differ as much as two reference runs do (mean
    squared distance within 10%; seeds vary it by ~2%): catches a sigma_t of the wrong size whatever the noise order."""
    hint = shape_hint(out2, out, "x0 of the second run")
    if hint:
        return hint
    ref2 = ref_ddim_loop(*args[:-1], c["seed"] + SECOND_SEED)
    theirs = float((out.double() - out2.double()).pow(2).sum(-1).mean())
    ours = float((ref - ref2).pow(2).sum(-1).mean())
    if not 0.9 * ours < theirs < 1.1 * ours:
        return (f"with eta = {c['eta']:g}, two runs from the same x_T with two generators differ by {theirs:.2f} "
                f"(mean squared distance) where DDIM's sigma_t gives {ours:.2f}: the noise added per step has the "
                "wrong size (pass eta and one fresh noise per step to ddim_step)")
    return None


def _probe_hint(outputs, c) -> str | None:
    """The probe case: with eps_pred = 0, DDIM on the grid (500, 0) at eta = 1 gives exactly
    x0 = x_T / sqrt(alpha_bar_500) + sigma_500 / sqrt(alpha_bar_0) z (the step to t = -1 adds no noise: its
    sigma is 0), so the samples give back the loop's one noise z, which must be N(0, I)."""
    out, x_T, schedule = outputs["out"], c["x_T"], c["schedule"]
    hint = shape_hint(out, x_T, "x0")
    if hint:
        return hint
    alpha_bar = alpha_bar64(schedule)
    a, a_prev = alpha_bar[500], alpha_bar[0]
    sigma = c["eta"] * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).sqrt()
    z = (out.double() - x_T.double() / a.sqrt()) * a_prev.sqrt() / sigma
    lead = ("with a network that always predicts eps = 0, 2 steps (t = 500, 0) and eta = 1, x0 must be "
            "x_T / sqrt(alpha_bar_500) + sigma_500 z / sqrt(alpha_bar_0) with z ~ N(0, I)")
    if not torch.isfinite(z).all():
        return lead + ", but it is not finite"
    var = float(z.var())
    if abs(var - 1) > 5 * (2 / z.numel()) ** 0.5:
        return (f"{lead}; the noise in your x0 has {var:.2f} times that variance: add sigma_t * z at every step, "
                "with one fresh z = torch.randn(x.shape, generator=generator) per step (only the last step, to "
                "alpha_bar = 1, has sigma = 0)")
    hint = gaussian_noise_hint(z, "the first step")
    if hint:
        return f"{lead}: {hint}"
    return (same_seed_hint(out, outputs.get("again"), "samples")       # the noise is right: is it the generator's?
            or fresh_draws_hint(out, outputs.get("next"), "samples"))


def _loop_diagnose(outputs, c) -> str | None:
    if c.get("probe"):
        return _probe_hint(outputs, c)
    out, out2 = outputs["out"], outputs["out2"]
    args = (mixture_model(c["schedule"]), c["schedule"], c["x_T"], c["num_steps"], c["eta"], c["seed"])
    ref = ref_ddim_loop(*args)
    hint = sampler_nan_hint(out, ref, "x0") or shape_hint(out, ref, "x0")
    if hint:
        return hint
    unseeded = same_seed_hint(out, outputs.get("again"), "samples") if c["eta"] > 0 else None
    if unseeded:
        return unseeded
    if c["eta"] > 0 and close(out, ref_ddim_loop(*args[:4], 0.0, c["seed"]), 1e-3):
        return (f"eta is ignored: with eta = {c['eta']:g} the samples equal the deterministic (eta = 0) ones; "
                "pass eta to ddim_step, with one fresh noise per step")
    reseeded = fresh_draws_hint(out, outputs.get("next"), "samples") if c["eta"] > 0 else None
    if reseeded:
        return reseeded
    if close(out, ref, 1e-3):
        return _noise_scale_hint(out, out2, c, args, ref) if c["eta"] > 0 else None
    variants = [
        ("the last step goes to clean data, alpha_bar_prev = 1: in Python alpha_bar[-1] is the LAST entry "
         "(alpha_bar_{T-1}, almost 0), not 'the one before t = 0'", dict(last="python_last")),
        ("the last step must go to alpha_bar_prev = 1 (clean data): stopping at t = 0, or stepping to alpha_bar[0], "
         "leaves its noise in x0", dict(last="first")),
        ("off by one in the time grid: jump to the next timestep of the grid (the next entry of "
         "ddim_timesteps), not to t - 1", dict(prev="t-1")),
        ("call the model with the timestep t of the grid (980, 960, ... for 50 steps of T = 1000), "
         "not with the loop index", dict(t_arg="k")),
        ("call the model with the timestep t of the grid (the x it is given is x_t), not with t - 1",
         dict(t_arg="t-1")),
        ("the time grid is not DDIM's: take the timesteps from ddim_timesteps(T, num_steps) (980, 960, ..., 0 for "
         "50 steps of T = 1000), not from a linspace of your own", dict(grid="linspace")),
        ("ddim_step takes alpha_bar_t and alpha_bar_prev themselves (schedule.alpha_bar[t]), not their square roots "
         "(schedule.sqrt_alpha_bar)", dict(rooted=True)),
        ("the noise you pass is already multiplied by eta, but ddim_step's sigma_t holds eta: pass z = "
         "torch.randn(x.shape, generator=generator) itself", dict(noise_scale=c["eta"])),
        ("ddim_step returns (x_prev, x0_pred): carry x_prev into the next step, x, _ = ddim_step(...), not "
         "x0_pred", dict(keep_x0=True)),
    ]
    if isinstance(out, torch.Tensor) and close(out, ref.clamp(-1, 1), 1e-3):     # (ref reaches the clusters at 1.5)
        return ("the samples are clamped to [-1, 1]: return the last x_prev as it is (the eight clusters lie at "
                "radius 1.5, outside [-1, 1]; a clamp is for images, and the loop returns what its last step gives)")
    if c["eta"] not in (0, 1) and close(out, ref_ddim_loop(*args[:4], 1.0, c["seed"]), 1e-3):
        return (f"the samples are those of eta = 1, not eta = {c['eta']:g}: pass the eta you are given to ddim_step "
                "(sigma_t = eta * ...)")
    for mistake_hint, switches in variants:
        if close(out, ref_ddim_loop(*args, **switches), 1e-3):
            return mistake_hint
    if c["eta"] > 0:        # another order of noise draws is fine: each step's noise, and the samples, must be right
        return _step_noise_hint(outputs, c) or mixture_hint(out) or _noise_scale_hint(out, out2, c, args, ref)
    return _grid_hint(outputs, c) or (
        "x0 differs from the reference DDIM loop at eta = 0 (deterministic), though the network was asked at DDIM's "
        "time grid; does your ddim_step pass its check, and does the loop give it alpha_bar[t] and alpha_bar[t_prev] "
        "(schedule.alpha_bar, 1 after the last step)? "
        + (mixture_hint(out, eta=0.0, ask_grid=False)
           or "The samples still look like the mixture: look for a small error."))


def _grid_hint(outputs, c) -> str | None:
    """The hint for a loop that asked the network at other timesteps than ddim_timesteps(T, num_steps), naming the
    first ones of each; None when the timesteps were the grid's (a repeated call counts once) or unreadable."""
    steps = outputs.get("steps")
    called = steps.get("timesteps") if isinstance(steps, dict) else None
    if not isinstance(called, list) or not called or any(not isinstance(t, int) or t < 0 for t in called):
        return None
    called = [t for k, t in enumerate(called) if k == 0 or t != called[k - 1]]
    grid = ddim_grid(c["schedule"].T, c["num_steps"])
    if called == grid:
        return None
    return (f"the network was asked at t = {first_few(called)} ({len(called)} steps), but DDIM's grid for T = "
            f"{c['schedule'].T} and {c['num_steps']} steps is ddim_timesteps(T, num_steps) = {first_few(grid)}: loop "
            "over that grid, call the model with each t of it, and step to the next entry (alpha_bar_prev = 1 after "
            "the last)")


register(Check("ddim_sample_loop", "ddim_sample_loop", _loop_cases, _loop_call, _loop_diagnose, explain_by(
    ("is out of bounds for dimension 0 with size",
     "a timestep past the end of the schedule's tables: take T and alpha_bar from the schedule you are given "
     "(ddim_timesteps(schedule.T, num_steps), schedule.alpha_bar), not T = 1000 or the notebook's schedule"),
    # a bare int (or 0-dim) t for the network: the course's networks (and the mixture's eps*) refuse it by name
    # ("t must be a tensor of shape (B,), one timestep per example, got int 980"); older ones raised from t.long()
    *[(words, "the network takes one timestep per example: t of shape (B,), torch.full((len(x),), t, "
              "dtype=torch.long), not a bare number")
      for words in (": t must be a tensor of shape (", "'int' object has no attribute 'long'")],
    *[(f"'{kind}' object has no attribute",
       "after the last step alpha_bar_prev is 1: pass it as a tensor, torch.tensor(1.0) (a Python number has no "
       ".sqrt())") for kind in ("float", "int")],
    ("'Tensor' and 'NoneType'",
     "with eta > 0, ddim_step needs a noise: draw z = torch.randn(x.shape, generator=generator) at every step and "
     "pass noise=z"),
    ("too many indices for tensor of dimension 0",
     "the network takes one timestep per example: t of shape (B,), torch.full((len(x),), t, dtype=torch.long), "
     "not a bare number")), calls=("ddim_step",)))
check_ddim_sample_loop = visible("ddim_sample_loop")


def loop_variant(*, shuffle_noise=False, ignore_eta=False, own_noise=False, reseed=False, **switches):
    """ddim_sample_loop(model, schedule, x_T, num_steps, *, eta, generator) with mistakes switched on; none: right.
    ``shuffle_noise`` draws the noise in another order (right, but not the course's order); ``own_noise`` ignores
    the generator (torch's global one instead); ``reseed`` restarts from the generator's seed at every call
    (torch.manual_seed(generator.initial_seed())): right once, the same samples at every call."""
    def ddim_sample_loop(model, schedule, x_T, num_steps, *, eta=0.0, generator=None):
        seed = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=generator)) if shuffle_noise else None
        if own_noise:
            seed = int(torch.randint(0, 2 ** 31 - 1, (1,)))
        if reseed:
            seed = generator.initial_seed()
        if seed is None:
            seed = generator            # the right one: draws from the generator given, continuing its stream
        return ref_ddim_loop(model, schedule, x_T, num_steps, 0.0 if ignore_eta else eta, seed, **switches).float()
    return ddim_sample_loop


def _student_loop(kind: str):
    """ddim_sample_loop written as a student would, with the package's ddim_step, and one mistake: "T = 1000"
    (the grid and tables of a linear T = 1000 schedule whatever the one given), "float at the end" (alpha_bar_prev
    = 1.0, a Python float; "int at the end": 1), "noise not passed" (eta > 0 without noise=), "0-dim t" (the
    network given t itself; "int t": the Python int), "grid from T - 1" (range(T - 1, -1, -T // n)), "model at
    t_prev" (the network asked at the step's target), "rates swapped" (ddim_step given alpha_bar_prev before
    alpha_bar_t: NaN)."""
    from ..samplers import ddim_timesteps
    from ..schedules import NoiseSchedule

    def ddim_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, eta=0.0, noise=None):     # as the worksheet's
        x0_pred = (xt - (1 - alpha_bar_t).sqrt() * eps_pred) / alpha_bar_t.sqrt()
        sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)).sqrt()
        x_prev = alpha_bar_prev.sqrt() * x0_pred + (1 - alpha_bar_prev - sigma ** 2).clamp(min=0).sqrt() * eps_pred
        return (x_prev + sigma * noise if eta > 0 else x_prev), x0_pred

    def ddim_sample_loop(model, schedule, x_T, num_steps, *, eta=0.0, generator=None):
        if kind == "T = 1000":
            schedule = NoiseSchedule.linear(T=1000)
        T = schedule.T
        grid = (list(range(T - 1, -1, -(T // num_steps))) if kind == "grid from T - 1"
                else ddim_timesteps(T, num_steps).tolist())
        x = x_T
        for k, t in enumerate(grid):
            t_prev = grid[k + 1] if k + 1 < len(grid) else -1
            a_prev = schedule.alpha_bar[t_prev] if t_prev >= 0 else {"float at the end": 1.0, "int at the end": 1}.get(
                kind, torch.tensor(1.0))
            asked = max(t_prev, 0) if kind == "model at t_prev" else t
            t_in = (torch.tensor(asked) if kind == "0-dim t" else asked if kind == "int t"
                    else torch.full((len(x),), asked, dtype=torch.long))
            eps = model(x, t_in)
            noise = torch.randn(x.shape, generator=generator) if eta > 0 and kind != "noise not passed" else None
            rates = (a_prev, schedule.alpha_bar[t]) if kind == "rates swapped" else (schedule.alpha_bar[t], a_prev)
            x, _ = ddim_step(x, eps, *rates, eta=eta, noise=noise)
        return x
    return ddim_sample_loop


MISTAKES["ddim_sample_loop"] = [
    ("alpha_bar_t and alpha_bar_prev swapped", _student_loop("rates swapped"),
     "given alpha_bar_t before alpha_bar_prev"),
    ("eta ignored", loop_variant(ignore_eta=True), "eta is ignored"),
    ("alpha_bar[-1] at the last step", loop_variant(last="python_last"), "alpha_bar[-1] is the LAST entry"),
    ("t - 1 instead of the grid", loop_variant(prev="t-1"), "off by one in the time grid"),
    ("loop index as timestep", loop_variant(t_arg="k"), "not with the loop index"),
    ("a linspace time grid", loop_variant(grid="linspace"), "not DDIM's"),
    ("generator ignored", loop_variant(own_noise=True), "same seed gave different samples"),
    ("reseeded from the generator's seed", loop_variant(reseed=True), "two calls in a row with one generator"),
    ("one step short", loop_variant(stop_early=True), "stopping at t = 0"),
    ("three-valued noise with a normal's moments", loop_variant(draw="three points"), "CDFs"),
    ("no noise at the first step", loop_variant(draw="none first"), "the noise of step 1 of"),
    ("no noise at a middle step", loop_variant(draw="none middle"), "times that variance"),
    ("one noise for every step", loop_variant(draw="one for all"), "correlated with the previous step's"),
    ("antithetic noise pairs", loop_variant(draw="antithetic"), "correlated between chains"),
    ("T = 1000 whatever the schedule", _student_loop("T = 1000"), "not T = 1000 or the notebook's schedule"),
    ("alpha_bar_prev = 1.0 as a float", _student_loop("float at the end"), "pass it as a tensor, torch.tensor(1.0)"),
    ("alpha_bar_prev = 1 as an int", _student_loop("int at the end"), "pass it as a tensor, torch.tensor(1.0)"),
    ("noise not passed at eta > 0", _student_loop("noise not passed"), "ddim_step needs a noise"),
    ("a 0-dim t for the network", _student_loop("0-dim t"), "the network takes one timestep per example"),
    ("a grid from T - 1", _student_loop("grid from T - 1"), "but DDIM's grid for T ="),
    ("the network asked at t_prev", _student_loop("model at t_prev"), "but DDIM's grid for T ="),
    ("sqrt(alpha_bar) given to ddim_step", loop_variant(rooted=True), "not their square roots"),
    ("noise multiplied by eta", lambda model, schedule, x_T, num_steps, *, eta=0.0, generator=None: loop_variant(
        noise_scale=eta)(model, schedule, x_T, num_steps, eta=eta, generator=generator), "already multiplied by eta"),
    ("x0_pred carried on for x_prev", loop_variant(keep_x0=True), "carry x_prev into the next step"),
    ("the network given a bare int t", _student_loop("int t"), "the network takes one timestep per example"),
    ("eta > 0 run as eta = 1", lambda model, schedule, x_T, num_steps, *, eta=0.0, generator=None: loop_variant()(
        model, schedule, x_T, num_steps, eta=1.0 if eta > 0 else 0.0, generator=generator), "not eta = "),
    ("the samples clamped to [-1, 1]", lambda model, schedule, x_T, num_steps, *, eta=0.0, generator=None:
        loop_variant()(model, schedule, x_T, num_steps, eta=eta, generator=generator).clamp(-1, 1),
     "the samples are clamped to [-1, 1]"),
    ("not implemented", todo, "not implemented yet"),
]
