"""Worksheet 07's DPM-Solver++(2M) checks and the lab's DDIM checks (course_utils/checks/ws07_fast_samplers.py,
lab_ddim.py), run on student functions written here from the papers' equations, independently of the checks'
references. test_checks.py feeds the catalogue to the checks, but each catalogued mistake is made by the same
switch that makes the check's hint, so a switch that reproduces the wrong mistake, a hint for an uncatalogued
mistake or a check that stops looking at one output passes it; these tests are the mutation audit's survivors."""
from __future__ import annotations

import math

import torch

from course_utils.checks import run_check
from course_utils.checks.lab_ddim import denoise_variant, ref_reverse_diffusion
from course_utils.checks.ws07_fast_samplers import _lam
from course_utils.schedules import NoiseSchedule


# ------------------------------------------------------------------ dpmpp_2m_step, written from the paper
def _half_log_snr(alpha_bar):
    """DPM-Solver's lambda = log(alpha / sigma), alpha = sqrt(alpha_bar), sigma = sqrt(1 - alpha_bar)."""
    return torch.log(alpha_bar.sqrt() / (1 - alpha_bar).sqrt())


def student_step(lam=_half_log_snr, *, return_d=False, d_swapped=False, alpha_t_on_d=False, r_of=lambda r: r):
    """A student's dpmpp_2m_step (Lu et al. 2022, Algorithm 2) in float32, with ``lam`` as the step variable;
    ``return_d``: returns the extrapolated D in place of x0_pred; ``d_swapped``: D's two weights swapped;
    ``alpha_t_on_d``: the D term multiplied by alpha_t instead of alpha_prev; ``r_of``: what it makes of r."""
    def dpmpp_2m_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, x0_pred_last=None, alpha_bar_last=None):
        a_t, a_prev = torch.as_tensor(alpha_bar_t), torch.as_tensor(alpha_bar_prev)
        x0_pred = (xt - (1 - a_t).sqrt() * eps_pred) / a_t.sqrt()
        h = lam(a_prev) - lam(a_t)
        if x0_pred_last is None or bool(a_prev >= 1):
            d = x0_pred
        else:
            r = r_of((lam(a_t) - lam(torch.as_tensor(alpha_bar_last))) / h)
            d = (1 + 1 / (2 * r)) * x0_pred - 1 / (2 * r) * x0_pred_last
            if d_swapped:
                d = (1 + 1 / (2 * r)) * x0_pred_last - 1 / (2 * r) * x0_pred
        alpha_d = a_t.sqrt() if alpha_t_on_d else a_prev.sqrt()
        x_prev = ((1 - a_prev) / (1 - a_t)).sqrt() * xt - alpha_d * torch.expm1(-h) * d
        return x_prev, (d if return_d else x0_pred)
    return dpmpp_2m_step


def test_a_students_dpmpp_step_written_from_the_paper_passes():
    # the positive control of the tests below: the independent step is right, hidden cases included
    assert run_check("dpmpp_2m_step", student_step(), hidden=True).passed


def test_d_with_swapped_weights_or_alpha_t_gets_its_hint():
    """Two slips in the update got only the generic formula (a student's report)."""
    result = run_check("dpmpp_2m_step", student_step(d_swapped=True))
    assert not result.passed and "D's weights are swapped" in result.message, result.message
    result = run_check("dpmpp_2m_step", student_step(alpha_t_on_d=True))
    assert not result.passed and "not by alpha_t" in result.message, result.message
    result = run_check("dpmpp_2m_step", student_step(r_of=lambda r: torch.ones_like(r)))
    assert not result.passed and "1 only on a grid even in lambda" in result.message, result.message
    result = run_check("dpmpp_2m_step", student_step(r_of=lambda r: -r))
    assert not result.passed and "the sign of h or of h_last" in result.message, result.message


def test_lambda_without_alpha_gets_its_own_hint():
    # lambda = -log(sigma) (alpha forgotten): the catalogue's switch makes this mistake, so a switch that made
    # another one would still match its own hint and leave this student with the generic one
    result = run_check("dpmpp_2m_step", student_step(lambda a: -torch.log((1 - a).sqrt())), hidden=True)
    assert not result.passed and "you used -log(sigma), without alpha" in result.message, result.message


def test_h_in_sigma_gets_the_lambda_vs_sigma_hint():
    # h as a step in the EDM sigma = sigma / alpha (not in its log): the first hint of "lambda vs sigma"
    result = run_check("dpmpp_2m_step", student_step(lambda a: -((1 - a) / a).sqrt()), hidden=True)
    assert not result.passed and "not in sigma = sqrt(1 - alpha_bar) / sqrt(alpha_bar)" in result.message, \
        result.message


def test_the_extrapolated_d_returned_as_x0_pred_fails():
    # x_prev right, but D (the extrapolation) returned for x0_pred: the loop would carry D as the next x0_pred_last
    result = run_check("dpmpp_2m_step", student_step(return_d=True), hidden=True)
    assert not result.passed and "the second output is D, the extrapolation" in result.message, result.message


# ------------------------------------------------------------------ the lab's denoise
def test_a_network_call_under_no_grad_fails_denoise():
    # pred_images still carries a graph (through noisy_images), pred_noises none: the lab's noise loss never trains
    def denoise(network, noisy_images, noise_rates, signal_rates):
        with torch.no_grad():
            pred_noises = network(noisy_images, noise_rates ** 2)
        return pred_noises, (noisy_images - noise_rates * pred_noises) / signal_rates

    result = run_check("denoise", denoise, hidden=True)
    assert not result.passed and "carries no gradient" in result.message, result.message


def test_a_denoise_whose_loss_still_trains_the_network_passes():
    """The graph is judged at the network's weights, as the lab's loss.backward() reaches them: the images
    detached before the network's call, or pred_images (which the loss does not use) under no_grad, train the
    lab's UNet exactly as the reference does (a helper measured equal gradients); both failed when the graph was
    judged through the input images."""
    def detached_input(network, noisy_images, noise_rates, signal_rates):
        pred_noises = network(noisy_images.detach(), noise_rates ** 2)
        return pred_noises, (noisy_images - noise_rates * pred_noises) / signal_rates

    def images_under_no_grad(network, noisy_images, noise_rates, signal_rates):
        pred_noises = network(noisy_images, noise_rates ** 2)
        with torch.no_grad():
            pred_images = (noisy_images - noise_rates * pred_noises) / signal_rates
        return pred_noises, pred_images

    for denoise in (detached_input, images_under_no_grad):
        for hidden in (False, True):
            result = run_check("denoise", denoise, hidden=hidden)
            assert result.passed, (denoise.__name__, result.message)


def test_signal_rates_as_the_time_input_gets_its_hint():
    # uncatalogued mistake with a hint of its own: network(noisy_images, signal_rates ** 2)
    result = run_check("denoise", denoise_variant("signal"), hidden=True)
    assert not result.passed and "not the signal rates" in result.message, result.message


def test_the_wrong_sign_in_pred_images_gets_its_hint():
    # uncatalogued mistake with a hint of its own: (noisy_images + noise_rates * pred_noises) / signal_rates
    def denoise(network, noisy_images, noise_rates, signal_rates):
        pred_noises = network(noisy_images, noise_rates ** 2)
        return pred_noises, (noisy_images + noise_rates * pred_noises) / signal_rates

    result = run_check("denoise", denoise, hidden=True)
    assert not result.passed and "wrong sign" in result.message, result.message


def test_alpha_ratio_on_x_t_gets_the_noise_prediction_hint():
    # x_t scaled by alpha_prev / alpha_t: the catalogue asks only for "sigma_prev / sigma_t", which the generic
    # hint (STEP_HINT) also contains, so losing this hint went unnoticed
    right = student_step()

    def alpha_ratio(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, x0_pred_last=None, alpha_bar_last=None):
        x_prev, x0_pred = right(xt, eps_pred, alpha_bar_t, alpha_bar_prev, x0_pred_last=x0_pred_last,
                                alpha_bar_last=alpha_bar_last)
        a_t, a_prev = torch.as_tensor(alpha_bar_t), torch.as_tensor(alpha_bar_prev)
        # swap the x_t term only: (alpha_prev / alpha_t - sigma_prev / sigma_t) x_t more
        return x_prev + ((a_prev / a_t).sqrt() - ((1 - a_prev) / (1 - a_t)).sqrt()) * xt, x0_pred

    result = run_check("dpmpp_2m_step", alpha_ratio, hidden=True)
    assert not result.passed and "belongs to the noise-prediction DPM-Solver" in result.message, result.message


def test_the_step_variables_of_the_catalogued_mistakes_have_their_closed_forms():
    # the first case saturates exp(-h) (alpha_bar_999 = 4e-5), so the students above cannot tell a wrong switch for
    # "h in sigma" from the right one: at alpha_bar = 0.8, alpha / sigma = 2
    a = torch.tensor(0.8, dtype=torch.float64)
    assert torch.isclose(_lam(a, "lambda"), torch.tensor(math.log(2.0), dtype=torch.float64))     # log(alpha/sigma)
    assert torch.isclose(_lam(a, "log_snr"), torch.tensor(math.log(4.0), dtype=torch.float64))    # log(ab / (1 - ab))
    assert torch.isclose(_lam(a, "edm_sigma"), torch.tensor(-0.5, dtype=torch.float64))           # -sigma / alpha
    assert torch.isclose(_lam(a, "log_sigma"), torch.tensor(0.5 * math.log(5.0), dtype=torch.float64))  # -log(sigma)


# ------------------------------------------------------------------ dpmpp_2m_sample_loop, written from the paper
def student_loop(*, final_by_t0=False, own_schedule=False, hand_on_x=False, t_minus_one=False):
    """A student's dpmpp_2m_sample_loop around ``student_step``. ``final_by_t0``: the last step is told by
    t == 0 (the grid's end assumed to be 0); ``own_schedule``: alpha_bar from the notebook's linear schedule,
    not from the ``schedule`` argument; ``hand_on_x``: the new x handed on as x0_pred_last; ``t_minus_one``: the
    model called at t - 1."""
    step = student_step()

    def dpmpp_2m_sample_loop(model, schedule, x_T, timesteps):
        alpha_bar = (NoiseSchedule.linear(T=1000) if own_schedule else schedule).alpha_bar.float()
        x, x0_pred_last, alpha_bar_last = x_T, None, None
        for k, t in enumerate(timesteps):
            last = t == 0 if final_by_t0 else k + 1 == len(timesteps)
            alpha_bar_prev = torch.tensor(1.0) if last else alpha_bar[timesteps[k + 1]]
            eps_pred = model(x, torch.full((len(x),), max(t - 1, 0) if t_minus_one else t, dtype=torch.long)).float()
            x, x0_pred = step(x, eps_pred, alpha_bar[t], alpha_bar_prev, x0_pred_last=x0_pred_last,
                              alpha_bar_last=alpha_bar_last)
            x0_pred_last, alpha_bar_last = (x if hand_on_x else x0_pred), alpha_bar[t]
        return x
    return dpmpp_2m_sample_loop


def test_a_students_dpmpp_loop_written_from_the_paper_passes():
    # the positive control of the two tests below
    assert run_check("dpmpp_2m_sample_loop", student_loop(), hidden=True).passed


def test_a_loop_that_ignores_its_schedule_fails_the_hidden_cosine_case():
    # the visible grids all use the linear schedule, which the notebook also defines: only the hidden cosine case
    # tells a loop that reads the notebook's schedule from one that reads its argument
    assert run_check("dpmpp_2m_sample_loop", student_loop(own_schedule=True), hidden=False).passed
    result = run_check("dpmpp_2m_sample_loop", student_loop(own_schedule=True), hidden=True)
    assert not result.passed and "on a hidden case" in result.message, result.message


def test_a_loop_that_ends_at_t_0_fails_the_visible_grid_that_stops_early():
    # the second visible grid ends at t = 30 (as the hidden [900, 500, 100] ends at 100): a loop that tells its
    # last step by t == 0 runs past the end of it, and is told so on the worksheet (it passed there when every
    # visible grid ended at 0)
    for hidden in (False, True):
        result = run_check("dpmpp_2m_sample_loop", student_loop(final_by_t0=True), hidden=hidden)
        assert not result.passed and "there is no timesteps[k + 1]" in result.message, result.message


def test_a_loop_that_hands_on_the_wrong_things_is_told_what():
    """Handing on x in place of x0_pred, or calling the model at t - 1, was told only to check dpmpp_2m_step,
    which passes (a student's report)."""
    result = run_check("dpmpp_2m_sample_loop", student_loop(hand_on_x=True))
    assert not result.passed and "not the x it stepped to" in result.message, result.message
    result = run_check("dpmpp_2m_sample_loop", student_loop(t_minus_one=True))
    assert not result.passed and "not with t - 1" in result.message, result.message


# ------------------------------------------------------------------ the lab's reverse_diffusion
def student_reverse(*, steps_run=lambda n: n, step_size=lambda n: 1.0 / n, clamp=False, next_step=1, first=0):
    """A student's deterministic DDIM loop (the Keras example's), written out with the lab's schedule in float32;
    ``steps_run``: how many of the diffusion_steps the loop takes, ``step_size`` its step for diffusion_steps;
    ``clamp``: pred_images clamped to [-1, 1]; ``next_step``: 0 remixes at the step's own time; ``first``: the
    loop's first step (1: it starts one step low)."""
    def schedule(t):
        start, end = math.acos(0.95), math.acos(0.02)         # the lab's max and min signal rates
        angles = start + t * (end - start)
        return torch.sin(angles), torch.cos(angles)

    def reverse_diffusion(network, initial_noise, diffusion_steps):
        delta = step_size(diffusion_steps)
        next_noisy, ones = initial_noise, torch.ones(initial_noise.shape[0], 1, 1, 1, device=initial_noise.device)
        for step in range(steps_run(diffusion_steps)):
            noise_rates, signal_rates = schedule(ones - (step + first) * delta)
            pred_noises = network(next_noisy, noise_rates ** 2)
            pred_images = (next_noisy - noise_rates * pred_noises) / signal_rates
            pred_images = pred_images.clamp(-1, 1) if clamp else pred_images
            next_noise_rates, next_signal_rates = schedule(ones - (step + first + next_step) * delta)
            next_noisy = next_signal_rates * pred_images + next_noise_rates * pred_noises
        return pred_images
    return reverse_diffusion


def test_a_students_reverse_diffusion_written_from_the_keras_example_passes():
    # the positive control of the test below
    assert run_check("reverse_diffusion", student_reverse(), hidden=True).passed


def test_a_reverse_diffusion_that_clamps_or_remixes_at_its_own_time_is_told_so():
    """Both were sent to diffusion_schedule's and denoise's checks, which pass (a student's report)."""
    result = run_check("reverse_diffusion", student_reverse(clamp=True))
    assert not result.passed and "pred_images is clamped" in result.message, result.message
    result = run_check("reverse_diffusion", student_reverse(next_step=0))
    assert not result.passed and "remix at the NEXT time" in result.message, result.message


def test_a_loop_one_step_short_is_told_how_many_calls_it_made():
    # range(diffusion_steps - 1): one network call too few; "called ... times" names it, the values alone would not
    result = run_check("reverse_diffusion", student_reverse(steps_run=lambda n: n - 1), hidden=False)
    assert not result.passed and "the network was called 4 times for diffusion_steps = 5" in result.message, \
        result.message


def test_a_loop_with_a_fixed_step_size_fails_the_hidden_case():
    """step_size = 1 / 5 (the visible case's diffusion_steps) written in: the one-step hidden case never uses the
    step size, so only the hidden case with another step count than the visible five catches it."""
    fixed = student_reverse(step_size=lambda n: 1.0 / 5)
    assert run_check("reverse_diffusion", fixed).passed
    assert not run_check("reverse_diffusion", fixed, hidden=True).passed


def _noisy_images_through_a_cpu_einsum(network, initial_noise, steps):
    """Two mistakes: returns the next noisy images, through a last einsum with a CPU tensor (silent on meta)."""
    noisy = ref_reverse_diffusion(network, initial_noise, steps, return_noisy=True).float()
    return torch.einsum("bchw,wv->bchv", noisy, torch.eye(noisy.shape[-1]))


def test_wrong_values_on_the_wrong_device_get_the_values_hint_first():
    """The device hint begins "right on the CPU": it must not be given when the values are wrong."""
    result = run_check("reverse_diffusion", _noisy_images_through_a_cpu_einsum)
    assert not result.passed and "last prediction of the clean images" in result.message
    assert "right on the CPU" not in result.message


def test_a_loop_that_starts_one_step_low_is_told_where_it_started():
    """A student's pass of the lab (2026-12-08): a loop that goes down from t = 1 - 1/steps was told "start at t = 1
    (pure noise) and go down", as a loop that goes up is."""
    result = run_check("reverse_diffusion", student_reverse(first=1))
    assert not result.passed and result.message.endswith(
        "start at t = 1 (pure noise): the first network call was at t = 0.800, and the times for diffusion_steps = 5 "
        "are t = 1.000, 0.800, 0.600, 0.400, ..."), result.message
    up = run_check("reverse_diffusion", lambda network, x, steps: ref_reverse_diffusion(network, x, steps,
                                                                                         times="upwards").float())
    assert "start at t = 1 (pure noise) and go down" in up.message, up.message
    # one that starts above t = 1 (its times read back fold there: "was at t = 0.832", a review)
    high = run_check("reverse_diffusion", student_reverse(first=-1))
    assert "start at t = 1 (pure noise) and go down" in high.message, high.message


def test_the_keras_examples_network_calls_are_told_the_lab_s_call():
    """The Keras example calls network([noisy_images, noise_rates**2], training=training): copied, the errors named
    the check's stand-in ("LabToyNet.forward() missing 1 required positional argument: 'variance'")."""
    def as_a_list(network, noisy_images, noise_rates, signal_rates):
        pred_noises = network([noisy_images, noise_rates ** 2])
        return pred_noises, (noisy_images - noise_rates * pred_noises) / signal_rates

    def with_training(network, noisy_images, noise_rates, signal_rates):
        pred_noises = network(noisy_images, noise_rates ** 2, training=False)
        return pred_noises, (noisy_images - noise_rates * pred_noises) / signal_rates
    def keras_signature(network, noisy_images, noise_rates, signal_rates, training):   # the network call is right
        pred_noises = network(noisy_images, noise_rates ** 2)
        return pred_noises, (noisy_images - noise_rates * pred_noises) / signal_rates
    said = run_check("denoise", keras_signature).message
    assert "missing 1 required positional argument: 'training'" in said and "network takes" not in said, said
    for wrong, words in ((as_a_list, "not one list of both as in the Keras example"),
                         (with_training, "and no training= (a PyTorch network is put in training or eval mode")):
        result = run_check("denoise", wrong)
        assert not result.passed and "the network takes two arguments, network(noisy_images, noise_rates ** 2)" \
            in result.message and words in result.message, result.message


def test_a_schedule_with_torch_acos_of_a_number_is_told_math_acos():
    """torch.acos(max_signal_rate) raised a bare TypeError in the schedule's check (a student's pass)."""
    def diffusion_schedule(diffusion_times, min_signal_rate=0.02, max_signal_rate=0.95):
        start_angle, end_angle = torch.acos(max_signal_rate), torch.acos(min_signal_rate)
        angles = start_angle + diffusion_times * (end_angle - start_angle)
        return torch.sin(angles), torch.cos(angles)
    result = run_check("diffusion_schedule", diffusion_schedule)
    assert not result.passed and "must be Tensor, not float" in result.message
    assert "min_signal_rate and max_signal_rate are numbers: math.acos(max_signal_rate)" in result.message, \
        result.message

    def sin_cos_swapped(diffusion_times, min_signal_rate=0.02, max_signal_rate=0.95):
        start_angle, end_angle = math.acos(max_signal_rate), math.acos(min_signal_rate)
        angles = start_angle + diffusion_times * (end_angle - start_angle)
        return torch.cos(angles), torch.sin(angles)     # noise = cos: the order returned is right, the trig not
    result = run_check("diffusion_schedule", sin_cos_swapped)
    assert "noise_rates = sin(angle) and signal_rates = cos(angle), returned as (noise_rates, signal_rates)" \
        in result.message, result.message
