"""The worksheet checks: each passes on the answer key, fails with its hint on each catalogued mistake,
and judges outside the student's process (harvest in the kernel, verdict recomputes the reference).

The answer key (tests/answer_key.py) is built from the checks' own references, so its passing tests the
plumbing; tests/test_package_matches_checks.py runs the package's independent functions through the checks."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from course_utils import checks, forward, guidance, samplers, schedules
from course_utils.checks import CHECKS, MISTAKES, harvest, run_check, verdict

from answer_key import ANSWER_KEY

ROOT = Path(__file__).resolve().parents[1]
ALL_MISTAKES = [(name, mid, wrong, hint) for name, items in MISTAKES.items() for mid, wrong, hint in items]


def test_every_check_has_an_answer_and_a_catalogue():
    """A new check needs a right answer in tests/answer_key.py (ANSWER_KEY) and a catalogue MISTAKES[name] in its
    module: the assertion names what is missing where (a maintainer met a bare set difference)."""
    for what, names in (("a right answer in tests/answer_key.py (ANSWER_KEY)", set(ANSWER_KEY)),
                        ("a catalogue of mistakes, MISTAKES[name], in its course_utils/checks module", set(MISTAKES))):
        assert not set(CHECKS) - names, f"checks without {what}: {sorted(set(CHECKS) - names)}"
        assert not names - set(CHECKS), f"{what} for checks that do not exist: {sorted(names - set(CHECKS))}"
    for name, items in MISTAKES.items():
        ids = [mid for mid, _, _ in items]
        assert "not implemented" in ids, name
        assert len(ids) == len(set(ids)) >= 3, f"{name}: at least two real mistakes besides 'not implemented'"


@pytest.mark.parametrize("name", sorted(CHECKS))
@pytest.mark.parametrize("hidden", [False, True])
def test_answer_key_passes_its_check_plumbing(name, hidden):
    """The answer key is made of the checks' own references: this tests cases, call, harvest and verdict."""
    result = run_check(name, ANSWER_KEY[name], hidden=hidden)
    assert result.passed, result.message
    assert result.status == "pass" and result.message.startswith(checks.PASS)


@pytest.mark.parametrize("name,mistake,wrong,hint", ALL_MISTAKES, ids=[f"{n}-{m}" for n, m, _, _ in ALL_MISTAKES])
@pytest.mark.parametrize("hidden", [False, True])
def test_mistake_fails_with_its_hint(name, mistake, wrong, hint, hidden):
    result = run_check(name, wrong, hidden=hidden)
    assert not result.passed
    assert hint in result.message, f"{mistake}: expected {hint!r} in {result.message!r}"
    assert "\n" not in result.message and "Traceback" not in result.message
    # the instructor's report files the answer under this mistake (alone, or with those that give its very hint)
    if mistake != "not implemented":
        from course_utils.grade_report import _catalogue, classify
        found = classify({"status": result.status, "message": result.message}, _catalogue())
        assert found and mistake in found[1].split(" / "), f"{mistake}: the report files it under {found}"


def test_a_wrong_answer_outside_the_catalogue_is_filed_as_such():
    """A generic hint must not hold a catalogued mistake's words: diffusion_schedule's said 'linearly' and
    'arccos(min_signal_rate)', so the report filed a sign error as 'signal linear in t' (an instructor's report)."""
    import math

    from course_utils.grade_report import _catalogue, classify

    def diffusion_schedule(t, min_signal_rate=0.02, max_signal_rate=0.95):
        start, end = math.acos(max_signal_rate), math.acos(min_signal_rate)
        angles = start + t * (end + start)                          # the sign error
        return torch.sin(angles), torch.cos(angles)

    result = run_check("diffusion_schedule", diffusion_schedule)
    assert classify({"status": result.status, "message": result.message}, _catalogue())[0] == "fail:other", result


def test_hidden_cases_extend_the_visible_ones():
    """More cases when hidden, and the first ones are the worksheet's own, value for value (compared as the
    grader sends them to the kernel): a hidden case's message hides its numbers (framework.hidden_case) by its
    place in the list."""
    from course_utils.sandbox.values import encode_values

    for name, check in CHECKS.items():
        shown, hidden = check.cases(False), check.cases(True)
        assert len(hidden) > len(shown), name
        assert all(encode_values(a) == encode_values(b) for a, b in zip(shown, hidden)), \
            f"{name}: a visible case changes when hidden"


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_harvest_survives_a_safe_round_trip(name):
    """The grader saves harvested outputs with torch.save and reads them with weights_only=True."""
    outputs = harvest(name, ANSWER_KEY[name])
    buffer = io.BytesIO()
    torch.save(outputs, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert verdict(name, loaded).passed


def _wrong_q_sample(x0, t, eps, schedule):
    return torch.zeros_like(x0)


def test_verdict_ignores_monkeypatched_package(monkeypatch):
    """A student who patches course_utils functions cannot move the reference."""
    def delegating_q_sample(x0, t, eps, schedule):
        return forward.q_sample(x0, t, eps, schedule)

    def delegating_schedule(t, min_signal_rate=0.02, max_signal_rate=0.95):
        return schedules.diffusion_schedule(t, min_signal_rate, max_signal_rate)

    monkeypatch.setattr(forward, "q_sample", _wrong_q_sample)
    monkeypatch.setattr(schedules, "diffusion_schedule", lambda t, *a, **k: (t * 0, t * 0 + 1))
    monkeypatch.setattr(guidance, "cfg_combine", lambda u, c, w: c)
    monkeypatch.setattr(samplers, "ddim_step", lambda *a, **k: (a[0], a[0]))
    for name in ("q_sample", "diffusion_schedule", "cfg_combine", "ddim_step", "reverse_diffusion"):
        assert run_check(name, ANSWER_KEY[name], hidden=True).passed, name
    assert not run_check("q_sample", delegating_q_sample, hidden=True).passed
    assert not run_check("diffusion_schedule", delegating_schedule, hidden=True).passed


def test_verdict_judges_outputs_only():
    """verdict needs nothing but the outputs: wrong outputs fail whatever the student's objects are."""
    good = harvest("q_sample", ANSWER_KEY["q_sample"])
    assert verdict("q_sample", good).passed
    bad = [torch.zeros_like(out) for out in good]
    assert not verdict("q_sample", bad).passed
    assert not verdict("q_sample", good[:1]).passed          # a missing case is a fail
    assert not verdict("q_sample", [{"x": 1}] * len(good)).passed


def test_errors_become_one_line():
    def broken(x0, t, eps, schedule):
        raise ValueError("shapes do not match")

    result = run_check("q_sample", broken)
    assert not result.passed and result.status == "error"
    assert "raised ValueError: shapes do not match" in result.message and "\n" not in result.message


def test_visible_check_prints_one_line_and_is_truthy(capsys):
    assert checks.check_q_sample(ANSWER_KEY["q_sample"])
    assert capsys.readouterr().out == f"{checks.PASS} q_sample: correct\n"
    outcome = checks.check_q_sample(MISTAKES["q_sample"][-1][1])
    assert not outcome
    assert capsys.readouterr().out == f"{checks.TODO} q_sample: not implemented yet\n"


def test_every_check_has_a_visible_function():
    for name in CHECKS:
        assert callable(getattr(checks, f"check_{name}")), name


def test_ready_guard(capsys):
    assert checks.ready("cfg_combine", ANSWER_KEY["cfg_combine"])
    assert capsys.readouterr().out == ""
    assert not checks.ready("cfg_combine", MISTAKES["cfg_combine"][-1][1], "the plot")
    assert "skipped the plot: cfg_combine is not implemented yet" in capsys.readouterr().out


def test_modules_are_built_with_a_fixed_seed():
    """Building the same module twice in harvest gives the same weights (the check does not depend on RNG state)."""
    torch.manual_seed(123)
    first = harvest("ResBlock", ANSWER_KEY["ResBlock"])
    torch.manual_seed(456)
    second = harvest("ResBlock", ANSWER_KEY["ResBlock"])
    for a, b in zip(first, second):
        assert torch.equal(a["out"], b["out"])


def test_docs_list_every_mistake():
    text = (ROOT / "docs" / "mistakes.md").read_text(encoding="utf-8")
    for name, mid, _, hint in ALL_MISTAKES:
        assert f"`{name}`" in text, name
        assert f"| {mid} |" in text, (name, mid)


# ------------------------------------------------------------------ the deeper TODOs (issue 16)
def test_ddpm_step_accepts_both_variances_of_the_paper():
    """Ho et al. Sec. 3.2: sigma_t^2 = beta_t and the posterior variance tilde beta_t are both right."""
    from course_utils.checks.ws05_samplers import ddpm_variant

    for sigma in ("beta", "posterior"):
        assert run_check("ddpm_step", ddpm_variant(sigma=sigma), hidden=True).passed, sigma


def test_ddim_sample_loop_accepts_another_order_of_noise_draws():
    """At eta > 0 the loop is judged by the mixture it reproduces, not by the course's order of draws."""
    from course_utils.checks.ws05_samplers import loop_variant

    assert run_check("ddim_sample_loop", loop_variant(shuffle_noise=True), hidden=True).passed


def test_ddim_sample_loop_step_noise_is_judged_whatever_the_calls():
    """Each step's noise is recovered from the x_t the loop gives the network: a loop that asks the network twice
    per step is still right; one that drops a middle step's noise is not, in any order of draws (before 2026-12-05
    it passed: one noise of 50 is a few percent of the samples' spread), nor one whose x0 carries noise after the
    last step, whose sigma_t is 0."""
    from course_utils.checks.ws05_samplers import loop_variant, ref_ddim_loop

    def asks_twice(model, schedule, x_T, num_steps, *, eta=0.0, generator=None):
        def twice(x, t):
            model(x, t)
            return model(x.clone(), t.clone())
        return ref_ddim_loop(twice, schedule, x_T, num_steps, eta, generator).float()

    assert run_check("ddim_sample_loop", asks_twice, hidden=True).passed
    for switches in (dict(), dict(shuffle_noise=True)):
        result = run_check("ddim_sample_loop", loop_variant(draw="none middle", **switches), hidden=True)
        assert not result.passed and "step 26 of 50 (t = 480 -> 460) has 0.00 times that variance" in str(result)

    def noisy_at_the_end(model, schedule, x_T, num_steps, *, eta=0.0, generator=None):
        x0 = loop_variant()(model, schedule, x_T, num_steps, eta=eta, generator=generator)
        return x0 + 0.05 * torch.randn(x0.shape, generator=generator) if eta > 0 else x0

    result = run_check("ddim_sample_loop", noisy_at_the_end, hidden=True)
    assert not result.passed and "the last step, to alpha_bar = 1, has sigma_t = 0 and adds no noise" in str(result)


def test_reverse_diffusion_is_failed_for_a_device_mix_up_only():
    """The lab's loop is run once more on the meta device: a CPU tensor mixed in fails it (catalogued); reading a
    value (.item()), which meta cannot do but a GPU can, does not."""
    from course_utils.checks.lab_ddim import ref_reverse_diffusion

    def reads_a_value(network, initial_noise, steps):
        initial_noise.sum().item()                                   # raises on meta: not a device mix-up
        return ref_reverse_diffusion(network, initial_noise, steps).float()

    result = run_check("reverse_diffusion", reads_a_value, hidden=True)
    assert result.passed, result.message


def test_mixture_fit_tells_data_from_noise():
    from course_utils.checks import mixture_fit
    from course_utils.data import EIGHT_GAUSSIANS

    data, _ = EIGHT_GAUSSIANS.sample(4000, generator=torch.Generator().manual_seed(0))
    fit = mixture_fit(data)
    assert fit["weight_error"] < 0.03 and abs(fit["spread"] - 0.1) < 0.01 and fit["outliers"] < 0.01
    assert mixture_fit(torch.randn(4000, 2, generator=torch.Generator().manual_seed(1)))["outliers"] > 0.3


def test_package_ema_and_classifier_guidance_pass_the_worksheet_checks():
    """course_utils.training.EMA and course_utils.guidance.classifier_grad agree with worksheets 4 and 6."""
    from course_utils.training import EMA

    def classifier_guided_eps(eps_pred, xt, t, y, classifier, schedule, classifier_scale):
        root = schedule.gather(schedule.sqrt_one_minus_alpha_bar, t, xt.ndim)
        return eps_pred - classifier_scale * root * guidance.classifier_grad(classifier, xt, t, y)

    assert run_check("EMA", EMA, hidden=True).passed
    assert run_check("classifier_guided_eps", classifier_guided_eps, hidden=True).passed


def test_small_unet_check_uses_the_students_blocks():
    """A SmallUNet whose ResBlock ignores the time embedding fails with the hint to check the blocks."""
    from course_utils.checks.ws03_unet import RefSmallUNet

    class BrokenUNet(RefSmallUNet):
        def forward(self, x, t):
            return super().forward(x, t * 0)

    result = run_check("SmallUNet", BrokenUNet, hidden=True)
    assert not result.passed and "ResBlock pass their checks" in result.message


def test_an_input_is_changed_by_any_difference_but_a_nan_equals_itself():
    from course_utils.checks.framework import _changed
    was = torch.tensor([1.0, float("nan"), 3.0])
    assert _changed("x0", was.clone(), False, was) is None                    # NaN where it was: unchanged
    assert _changed("t", torch.tensor([1, 2]), False, torch.tensor([1, 2])) is None     # integers: torch.equal
    for now in (torch.tensor([1.0, float("nan"), 3.5]), torch.tensor([1.0, 0.0, 3.0]),
                torch.tensor([1.0, float("nan"), 3.0], dtype=torch.float64), torch.tensor([1.0, float("nan")])):
        assert "changed its input x0 in place" in _changed("x0", now, False, was), now
    assert "set requires_grad" in _changed("x0", was.clone(), True, was)


def test_reverse_diffusion_may_ask_the_network_for_its_device():
    """next(network.parameters()).device is a usual way to find a network's device: the lab's stand-in network
    has a parameter, as the lab's UNet has, and moves to the "meta" device with initial_noise."""
    from course_utils.checks.lab_ddim import ref_reverse_diffusion

    def reverse_diffusion(network, initial_noise, diffusion_steps):
        device = next(network.parameters()).device
        ones = torch.ones(initial_noise.shape[0], 1, 1, 1, device=device)
        return (ref_reverse_diffusion(network, initial_noise, diffusion_steps).float() * ones)

    for hidden in (False, True):
        assert run_check("reverse_diffusion", reverse_diffusion, hidden=hidden).passed


# ------------------------------------------------------------------ wrong answers from a mutation audit
# Each is right but for one slip that only one comparison of its check sees: with that comparison weakened (the
# tolerance of the Gaussian test doubled, the signal rates or x_t's per-coordinate variance not compared, q_sample
# judged at atol 1e-2, SmallUNet's hidden batch of one removed, training_step's returned loss judged at 10%,
# ddim_step's hidden last step with eta = 1 removed, classifier_guided_eps's weights not compared) the check let it
# through, and no test said so (a helper's mutation audit: 13 of 44 mutants survived, these 8 for real).
def _chain(noise):
    def q_sample_chain(x0, t, schedule, generator=None):
        states, x = [x0], x0
        for i in range(t + 1):
            x = schedule.alphas[i].sqrt() * x + schedule.betas[i].sqrt() * noise(
                torch.randn(x0.shape, generator=generator))
            states.append(x)
        return torch.stack(states)
    return q_sample_chain


def _negated_signal(diffusion_times, min_signal_rate=0.02, max_signal_rate=0.95):
    start, end = torch.tensor(max_signal_rate).acos(), torch.tensor(min_signal_rate).acos()
    angles = start + diffusion_times * (end - start)
    return torch.sin(angles), torch.sin(angles - torch.pi / 2)         # signal -cos(angle): the norm is still 1


def _q_sample_with_epsilon(x0, t, eps, schedule):
    a = schedule.gather(schedule.alpha_bar, t, x0.ndim)
    return a.sqrt() * x0 + torch.sqrt(1 - a + 1e-4) * eps               # a "stability" epsilon in the root


def _unet_squeezing_t():
    from course_utils.checks.ws03_unet import RefSmallUNet, ref_small_unet

    class SmallUNet(RefSmallUNet):
        def forward(self, x, t):
            return ref_small_unet(x, t.squeeze(), dict(self.named_parameters()), self.groups).float()
    return SmallUNet


def _step_returning_the_running_mean(model, optimizer, x0, t, eps, schedule):
    from course_utils.checks.ws04_training import training_step_variant
    seen = optimizer.__dict__.setdefault("_seen_losses", [])
    seen.append(training_step_variant()(model, optimizer, x0, t, eps, schedule))
    return sum(seen) / len(seen)                                         # a smoothed curve, not this batch's loss


def _ddim_step_clamping_the_target(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, eta=0.0, noise=None):
    x0_pred = (xt - (1 - alpha_bar_t).sqrt() * eps_pred) / alpha_bar_t.sqrt()
    sigma = eta * ((1 - alpha_bar_prev).clamp(min=1e-3) / (1 - alpha_bar_t)).sqrt() * (
        1 - alpha_bar_t / alpha_bar_prev).sqrt()                          # noise at a last step (alpha_bar_prev 1)
    x_prev = alpha_bar_prev.sqrt() * x0_pred + (1 - alpha_bar_prev - sigma ** 2).clamp(min=0).sqrt() * eps_pred
    return (x_prev + sigma * noise if eta > 0 else x_prev), x0_pred


def _guidance_shifting_the_bias(eps_pred, xt, t, y, classifier, schedule, classifier_scale):
    out = ANSWER_KEY["classifier_guided_eps"](eps_pred, xt, t, y, classifier, schedule, classifier_scale)
    with torch.no_grad():
        classifier.linear.bias.add_(1.0)          # the softmax, and so a second call, does not see it
    return out


@pytest.mark.parametrize("name, wrong, visible, said", [
    ("q_sample_chain", lambda: _chain(lambda z: torch.round(z * 4) / 4), True, "standardised values"),
    ("q_sample_chain", lambda: _chain(lambda z: z * torch.tensor([1.1, 0.9])), True, "is not distributed as N("),
    ("diffusion_schedule", lambda: _negated_signal, True, "values differ"),
    ("q_sample", lambda: _q_sample_with_epsilon, True, "x_t differs"),
    ("SmallUNet", _unet_squeezing_t, False, "IndexError"),
    ("training_step", lambda: _step_returning_the_running_mean, True, "return this batch's loss"),
    ("ddim_step", lambda: _ddim_step_clamping_the_target, False, "x_prev differs"),
    ("classifier_guided_eps", lambda: _guidance_shifting_the_bias, True, "classifier's weights"),
], ids=["chain rounded noise", "chain scaled coordinates", "negated signal", "q_sample epsilon", "unet squeezes t",
        "running mean", "ddim clamped target", "classifier bias shifted"])
def test_a_slip_that_one_comparison_alone_sees_fails(name, wrong, visible, said):
    shown, hidden = run_check(name, wrong()), run_check(name, wrong(), hidden=True)
    assert shown.passed is not visible, shown.message
    assert not hidden.passed and said in hidden.message, hidden.message
    assert visible or "on a hidden case" in hidden.message
