"""The verdict machinery every check shares (course_utils/checks/framework.py), tested on its own: tolerances,
hints, hidden cases and the statistics of the noise checks. The worksheet checks' tests (test_checks.py) only see
these through the catalogue, whose mistakes are far from the reference; a tolerance ten times too loose, or a
noise test a tenth as strict, would pass all of them."""
from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch

from course_utils.checks import framework
from course_utils.checks.framework import (CHECKS, Check, _changed, _maxdiff, close, gaussian_noise_hint, judge,
                                           run_check, shape_hint, state_changed, verdict)


def test_close_is_absolute_and_relative_with_the_documented_tolerance():
    """close's tolerance is 1e-4, absolute and relative: 5e-4 apart near 0 is not close, and neither is 1e-2
    apart at 100 (atol 1e-4 alone would not allow it, rtol does)."""
    zero = torch.zeros(3)
    assert close(zero, zero + 5e-5)
    assert not close(zero, zero + 5e-4)
    assert not close(zero, zero + 5e-3)
    big = torch.full((3,), 100.0)
    assert close(big, big + 5e-3)                     # within rtol * 100 = 1e-2
    assert not close(big, big + 5e-2)


def test_close_honours_atol_and_never_broadcasts_nor_equates_nans():
    """atol=0 leaves the relative tolerance only (a beta of 1e-4 compared with 5e-5); tensors of other shapes
    are never close, even where they broadcast; a NaN is never close to anything, itself included."""
    small = torch.tensor([1e-4, 2e-4])
    assert close(small, small * 1.00001, atol=0)
    assert not close(small, small * 0.5, atol=0)
    assert not close(torch.ones(3, 1), torch.ones(3, 4))
    assert not close(torch.ones(4), torch.ones(1))
    nan = torch.tensor([float("nan"), 1.0])
    assert not close(nan, nan.clone())


def test_judge_names_the_variant_that_matches_and_the_signed_largest_gap():
    """judge returns the hint of the variant the output equals, not the first listed; otherwise the generic
    message with the largest ABSOLUTE difference (a negative gap counts); a float64 output with the right values
    gets the dtype hint, a float32 one passes."""
    ref = torch.zeros(4)
    variants = [("first mistake", torch.ones(4)), ("second mistake", torch.full((4,), 2.0))]
    assert judge(ref.clone(), ref, variants) is None
    assert judge(torch.full((4,), 2.0), ref, variants) == "second mistake"
    assert "max abs difference 3" in judge(torch.tensor([0.0, -3.0, 0.5, 0.0]), ref, variants)
    assert "the values are right, but the output is float64" in judge(ref.double(), ref, variants)
    assert judge(torch.full((4,), 5e-4), ref, [], atol=1e-3) is None


def test_maxdiff_of_empty_or_mismatched_tensors_is_infinite():
    """Nothing to compare is not a difference of 0."""
    assert _maxdiff(torch.zeros(0), torch.zeros(0)) == math.inf
    assert _maxdiff(torch.zeros(2), torch.zeros(3)) == math.inf
    assert _maxdiff(torch.tensor([1.0, -2.0]), torch.zeros(2)) == 2.0


def test_shape_hint_checks_shape_dtype_and_every_value():
    """One NaN among finite values is reported; a transposed output is the wrong shape even with the same
    number of elements; dtype=False leaves the dtype to the caller."""
    ref = torch.zeros(2, 3)
    assert shape_hint(torch.zeros(2, 3), ref) is None
    assert "NaN or inf" in shape_hint(torch.tensor([[0.0, float("nan"), 0.0], [0.0, 0.0, 0.0]]), ref)
    assert "wrong shape" in shape_hint(torch.zeros(3, 2), ref)
    assert "float64" in shape_hint(torch.zeros(2, 3, dtype=torch.float64), ref)
    assert shape_hint(torch.zeros(2, 3, dtype=torch.float64), ref, dtype=False) is None


def test_an_input_that_lost_requires_grad_is_changed():
    """A function that detaches its input in place (x.requires_grad_(False)) changes the caller's tensor too."""
    was = torch.ones(2).requires_grad_(True)
    assert "requires_grad" in _changed("x", was.detach().clone(), False, was)


def test_state_changed_needs_every_weight_within_1e_6():
    """One changed weight among several is a change, and so is a drift of 1e-4."""
    expected = {"a": torch.ones(3), "b": torch.zeros(2)}
    assert not state_changed({k: v.clone() for k, v in expected.items()}, expected)
    assert state_changed({"a": torch.ones(3), "b": torch.ones(2)}, expected)
    assert state_changed({"a": torch.ones(3) + 1e-4, "b": torch.zeros(2)}, expected)
    assert state_changed({"a": torch.ones(3)}, expected)


def _toy(monkeypatch):
    """A check of f(x) = 2 x with 2 worksheet cases and 2 hidden ones, registered for one test."""
    def cases(hidden):
        xs = [torch.tensor([1.5]), torch.tensor([2.5])] + ([torch.tensor([3.5]), torch.tensor([4.5])] if hidden else [])
        return [{"x": x} for x in xs]

    def diagnose(out, case):
        if float(out["y"].sum()) != 2 * float(case["x"].sum()):
            return f"got {float(out['y'].sum())}"
        return None

    monkeypatch.setitem(CHECKS, "toy", Check("toy", "toy_fn", cases, lambda f, c: {"y": f(c["x"])}, diagnose))
    return "toy"


def test_verdict_counts_cases_and_masks_only_the_hidden_ones(monkeypatch):
    """Too many outputs fail like too few; a wrong worksheet case shows its values, the first hidden one does
    not; an error is status "error"; a diagnose that raises on malformed outputs is a fail, not a pass; a
    NotImplementedError in any case (not only the first) is "not implemented"."""
    name = _toy(monkeypatch)
    good = [{"y": 2 * c["x"]} for c in CHECKS[name].cases(True)]
    assert verdict(name, good).passed
    assert verdict(name, good + good[:1]).status == "error"
    wrong_visible = verdict(name, [{"y": torch.tensor([0.5])}] + good[1:])
    assert "got 0.5" in wrong_visible.message
    wrong_hidden = verdict(name, good[:2] + [{"y": torch.tensor([0.5])}] + good[3:])
    assert "hidden case" in wrong_hidden.message and "0.5" not in wrong_hidden.message
    assert verdict(name, good[:2] + good[2:], hidden=False).status == "error"      # 4 outputs, 2 cases
    assert verdict(name, [{"y": c["y"]} for c in good[:2]], hidden=False).passed
    raised = verdict(name, [{"error": "ValueError", "message": "no"}] + good[1:])
    assert raised.status == "error" and not raised.passed
    malformed = verdict(name, [{"z": 1}] + good[1:])
    assert not malformed.passed and "could not compare" in malformed.message
    todo = verdict(name, good[:3] + [{"error": "NotImplementedError", "message": "not implemented yet"}])
    assert todo.status == "not_implemented"


def test_an_empty_hint_is_still_a_fail(monkeypatch):
    """Anything but None from diagnose is a fail, and a variant matched with an empty hint is still a mistake: a
    hint emptied by an edit (or an f-string with nothing in it) must not turn into a pass."""
    name = _toy(monkeypatch)
    monkeypatch.setitem(CHECKS, name, dataclasses.replace(CHECKS[name], diagnose=lambda out, case: ""))
    result = verdict(name, [{"y": 2 * c["x"]} for c in CHECKS[name].cases(True)])
    assert not result.passed and result.status == "fail" and "reference differ" in result.message
    assert judge(torch.ones(4), torch.zeros(4), [("", torch.ones(4))], generic="the generic hint") == "the generic hint"
    assert judge(torch.ones(4), torch.zeros(4), [("", torch.ones(4))])


def test_run_check_and_ready_use_the_worksheet_cases(monkeypatch, capsys):
    """run_check's default is the worksheet's cases (what a notebook shows); ready returns False on a fail."""
    name = _toy(monkeypatch)
    hidden_only_wrong = lambda x: 2 * x if float(x.sum()) < 3 else 0 * x    # noqa: E731
    assert run_check(name, hidden_only_wrong).passed
    assert not run_check(name, hidden_only_wrong, hidden=True).passed
    assert not framework.ready(name, lambda x: 3 * x)
    assert "does not pass its check yet" in capsys.readouterr().out


def test_instant_feedback_catches_an_input_changed_in_place(monkeypatch):
    """The notebook's own check (harvest and verdict in the kernel) fails a function that doubles x in place,
    though its output is right: the caller's x changed."""
    name = _toy(monkeypatch)
    result = run_check(name, lambda x: x.mul_(2))
    assert not result.passed and "changed its input x in place" in result.message


def _gaussian(n=4000, d=2, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_gaussian_noise_hint_accepts_normal_draws():
    """Independent N(0, 1) draws pass (the bounds are met with probability 1 - about 1e-6)."""
    for seed in range(3):
        assert gaussian_noise_hint(_gaussian(seed=seed), "step 1") is None


def _standard(x):
    return (x - x.mean()) / x.std()


@pytest.mark.parametrize("how,hint", [
    ("coordinates", "same noise to every coordinate"),
    ("anticorrelated", "same noise to every coordinate"),
    ("chains", "correlated between chains"),
    ("laplace", "not Gaussian (fourth moment"),
    ("uniform", "not Gaussian (fourth moment"),
    ("rounded", "distribution of its standardised values"),
])
def test_gaussian_noise_hint_catches_each_mild_departure(how, hint):
    """Each departure is mild for 4000 x 2 draws: a correlation of +-0.2 (bound 0.08), a fourth moment of 5.8 or
    1.8 (bound 3 +- 0.55), normal draws rounded to halves (fourth moment 3.04, KS distance 0.10, bound 0.034). A
    bound ten times too loose, or a one-sided test, lets one through or gives it another test's hint."""
    z = _gaussian()
    n = z.shape[0]
    u = torch.rand(n, 2, generator=torch.Generator().manual_seed(1))
    if how == "coordinates":
        z = torch.stack([z[:, 0], 0.2 * z[:, 0] + math.sqrt(1 - 0.04) * z[:, 1]], 1)
    elif how == "anticorrelated":
        z = torch.stack([z[:, 0], -0.2 * z[:, 0] + math.sqrt(1 - 0.04) * z[:, 1]], 1)
    elif how == "chains":
        half = n // 2
        z = torch.cat([z[:half], 0.2 * z[:half] + math.sqrt(1 - 0.04) * z[half:]])
    elif how == "laplace":
        z = _standard(-torch.sign(u - 0.5) * torch.log(1 - 2 * (u - 0.5).abs()))
    elif how == "uniform":
        z = _standard(u)
    elif how == "rounded":
        z = _standard(torch.round(z * 2) / 2)
    said = gaussian_noise_hint(z, "step 1")
    assert said is not None and hint in said, said


def test_judge_inputs_judges_each_case_against_the_graders_own(monkeypatch):
    """The kernel's report of the inputs after each call: a changed value, or a tensor no longer exactly a
    torch.Tensor (plain False), turns that case's output into the error; an output that is already an error stays
    as it was; a report for the wrong number of cases is refused."""
    name = _toy(monkeypatch)
    cases = CHECKS[name].cases(True)
    outs = [{"y": 2 * c["x"]} for c in cases]
    unchanged = [{"x": [c["x"].clone(), False, True]} for c in cases]
    after = framework.INPUTS_AFTER
    assert framework.judge_inputs(name, outs + [{after: unchanged}]) == outs
    changed = [dict(e) for e in unchanged]
    changed[1] = {"x": [cases[1]["x"] + 1, False, True]}
    judged = framework.judge_inputs(name, outs + [{after: changed}])
    assert "changed its input x in place" in judged[1]["message"] and judged[0] == outs[0]
    subclass = [dict(e) for e in unchanged]
    subclass[2] = {"x": [cases[2]["x"].clone(), False, False]}
    assert "(its class)" in framework.judge_inputs(name, outs + [{after: subclass}])[2]["message"]
    error = {"error": "ValueError", "message": "no"}
    changed_first = [{"x": [cases[0]["x"] + 1, False, True]}] + unchanged[1:]
    assert framework.judge_inputs(name, [error] + outs[1:] + [{after: changed_first}])[0] == error
    with pytest.raises(ValueError):
        framework.judge_inputs(name, outs + [{after: unchanged + unchanged[:1]}])


def test_without_gradient_and_its_hint():
    """A forward pass under no_grad reaches no parameter; one missing parameter is enough for the hint."""
    net = torch.nn.Linear(2, 2)
    with torch.no_grad():
        out = net(torch.ones(1, 2))
    assert framework.without_gradient(net, out) == ["weight", "bias"]
    assert framework.without_gradient(net, net(torch.ones(1, 2))) == []
    assert "no gradient reaches bias" in framework.gradient_hint(["bias"], "network")
    assert framework.gradient_hint([], "network") is None


def test_seed_hints_compare_exactly():
    """Two runs of one seed must agree bit for bit (a 1e-5 difference is another draw); two calls with one
    generator that agree bit for bit reseeded it."""
    x = torch.randn(5, generator=torch.Generator().manual_seed(0))
    assert framework.same_seed_hint(x, x.clone(), "samples") is None
    assert "different samples" in framework.same_seed_hint(x, x + 1e-5, "samples")
    assert "reseeds the generator" in framework.fresh_draws_hint(x, x.clone(), "samples")
    assert framework.fresh_draws_hint(x, x + 1e-5, "samples") is None


def test_repeat_hint_says_when_a_second_call_differs():
    ref = torch.ones(3)
    assert framework.repeat_hint(ref.clone(), ref, "under no_grad", "fix") is None
    assert "the result differs" in framework.repeat_hint(ref * 2, ref, "under no_grad", "fix")


def test_error_record_points_at_the_innermost_student_line():
    """The student reads where their own code failed: the innermost frame outside the libraries (a notebook
    cell's "<ipython-input-...>" is the student's, exec'd "<string>" code is not)."""
    def inner():
        raise ValueError("bad")

    def outer():
        inner()

    try:
        outer()
    except ValueError as err:
        record = framework.error_record(err)
    assert record["error"] == "ValueError"
    assert re.search(r"in (\w+\.)?inner\)$", record["message"]), record     # nested: "test_<name>.inner"
    assert not framework._in_library("<ipython-input-3-abc>") and framework._in_library("<string>")


def test_outputs_are_detached_and_an_error_needs_both_keys():
    """A harvested tensor carries no graph (the grader loads it weights_only); a student's dict with an "error"
    key but no "message" is an output, not an error record."""
    assert not framework._detach(torch.ones(2, requires_grad=True) * 2).requires_grad
    assert not framework._is_error({"error": torch.ones(1)})


def test_a_long_message_is_printed_wrapped_at_spaces(capsys):
    """JupyterLab cuts a printed line wider than the output area mid-word (word-break: break-all): a check prints
    its message wrapped at spaces, and the message the grader records stays one line."""
    from course_utils import settings
    from course_utils.checks import framework
    from course_utils.checks.ws05_samplers import check_ddpm_step

    def ddpm_step(*args, **kwargs):                       # an error of 300 characters: a message of 400
        raise ValueError("a " + "very " * 60 + "long error")
    ok = check_ddpm_step(ddpm_step)
    printed = capsys.readouterr().out.rstrip("\n")
    message = framework.run_check("ddpm_step", ddpm_step).message
    assert not ok and len(message) > settings.PRINT_WIDTH and "\n" not in message
    lines = printed.split("\n")
    assert len(lines) > 1 and all(len(line) <= settings.PRINT_WIDTH for line in lines), lines
    assert all(line.startswith("   ") for line in lines[1:])
    assert " ".join(line.strip() for line in lines) == message          # the same words, cut only at spaces
    assert framework.printable("✅ q_sample: correct") == "✅ q_sample: correct"


def test_an_error_names_the_class_of_the_method_it_happened_in():
    """A SmallUNet whose concatenation is missing raises inside the student's ResBlock: "(line 14, in forward)"
    named the line of another cell (forward is both classes' method); the class is named now."""
    from course_utils.checks.framework import error_record

    class ResBlock:
        def forward(self, h):
            return h @ h                                   # a shape error, as a channel mismatch is

    class SmallUNet:
        def forward(self, x):
            return ResBlock().forward(x)
    try:
        SmallUNet().forward(torch.zeros(2, 3))
    except RuntimeError as err:
        record = error_record(err)
    assert record["error"] == "RuntimeError"
    assert re.search(r"\(line \d+, in (test_an_error[a-z_]+\.)?ResBlock\.forward\)$", record["message"]), record


def test_a_complex_result_with_the_right_real_values_is_told_its_dtype():
    """A complex tensor whose imaginary part is 0 compared equal to a real reference and passed every check whose
    output is a tensor (a wrong-answer pass found it); it is told its dtype, as float64 is."""
    from course_utils.checks import run_check
    from course_utils.checks.framework import judge
    ref = torch.linspace(0, 1, 5, dtype=torch.float64)
    assert "complex64" in judge(ref.float().to(torch.complex64), ref, [])
    assert judge(ref.float(), ref, []) is None
    from answer_key import ANSWER_KEY
    result = run_check("q_sample", lambda *args: ANSWER_KEY["q_sample"](*args).to(torch.complex64))
    assert not result.passed and "complex64" in result.message, result.message


def test_a_meta_tensor_returned_is_a_message_not_a_traceback():
    """A result on PyTorch's meta device (a shape without values) made every check raise NotImplementedError
    ("Cannot copy out of meta tensor") out of the instant harvest (a wrong-answer pass found it)."""
    from course_utils.checks import run_check
    result = run_check("q_sample", lambda x0, t, eps, schedule: torch.empty(x0.shape, device="meta"))
    assert not result.passed and "meta device" in result.message, result.message


class _OnGpu(torch.Tensor):
    """A tensor that says it lives on a GPU: this machine has none, and a result that ends in .cuda() is what a
    student with one returns."""

    @property
    def device(self):
        return torch.device("cuda", 0)


def test_a_result_on_a_gpu_is_named_not_moved_to_the_cpu():
    """The harvest moved every result to the CPU: q_sample ending in .to("cuda") got ✅ on a student's GPU machine,
    and raised in the grader, which has no GPU (a wrong-answer pass of 2026-12-07). The check now says where the
    result is; a CPU result of the same values passes."""
    from answer_key import ANSWER_KEY
    from course_utils.checks import run_check
    result = run_check("q_sample", lambda *args: ANSWER_KEY["q_sample"](*args).as_subclass(_OnGpu))
    assert not result.passed and "returned a tensor on cuda:0, and the inputs are on the CPU" in result.message, \
        result.message
    assert run_check("q_sample", lambda *args: ANSWER_KEY["q_sample"](*args).as_subclass(torch.Tensor)).passed


def test_a_failed_loop_says_which_todo_it_calls_fails_its_own_check(capsys):
    """A loop runs with the student's own step (Check.calls names it): a right loop beside a wrong step failed with
    a hint about the loop alone (the lab's reverse_diffusion beside a wrong denoise was told to fix its time grid, an
    instructor's pass). The visible check and the grader's row both name the failing step; a right step adds
    nothing."""
    from course_utils import grade
    from course_utils.checks import report
    from course_utils.checks.lab_ddim import denoise_variant
    from course_utils.checks.ws01_schedules import ref_diffusion_schedule

    def diffusion_schedule(diffusion_times, min_signal_rate=0.02, max_signal_rate=0.95):
        return tuple(r.float() for r in ref_diffusion_schedule(diffusion_times, min_signal_rate, max_signal_rate))
    namespace = {"torch": torch, "diffusion_schedule": diffusion_schedule, "denoise": denoise_variant("rates")}
    exec("def reverse_diffusion(network, initial_noise, diffusion_steps):\n"
         "    B, step_size, next_noisy = initial_noise.shape[0], 1.0 / diffusion_steps, initial_noise\n"
         "    for step in range(diffusion_steps):\n"
         "        t = torch.full((B, 1, 1, 1), 1.0 - step * step_size, device=initial_noise.device)\n"
         "        noise_rates, signal_rates = diffusion_schedule(t)\n"
         "        pred_noises, pred_images = denoise(network, next_noisy, noise_rates, signal_rates)\n"
         "        next_noise_rates, next_signal_rates = diffusion_schedule(t - step_size)\n"
         "        next_noisy = next_signal_rates * pred_images + next_noise_rates * pred_noises\n"
         "    return pred_images\n", namespace)
    wrong = namespace["denoise"]
    assert not report("reverse_diffusion", namespace["reverse_diffusion"])
    said = " ".join(capsys.readouterr().out.split())
    assert said.endswith("[it calls your denoise, which fails its own check; with a right denoise in its place it "
                         "passes: fix that and this one passes as it is]"), said
    assert namespace["denoise"] is wrong                # lent for the check only
    namespace["denoise"] = denoise_variant()
    assert report("reverse_diffusion", namespace["reverse_diffusion"])
    assert "it calls your" not in capsys.readouterr().out
    # the grader's rows: the same words where the TODO it calls failed, nothing where it passed
    source = grade.load_source(grade.Path(__file__).resolve().parents[1] / "solutions" / "lab_ddim.ipynb")
    checked = source.checked
    for denoise_status, added in (("fail", True), ("pass", False)):
        rows = [{"grade_id": g.grade_id, "status": {"denoise": denoise_status, "reverse_diffusion": "fail"}.get(
            g.target, "pass"), "message": "x"} for g in checked]
        rows = grade.with_failing_calls(source, rows)
        message = next(r["message"] for g, r in zip(checked, rows) if g.target == "reverse_diffusion")
        assert ("it calls your denoise, which fails its own check" in message) is added, message


def test_cases_leave_the_global_seed_alone_and_never_interleave_with_a_verdict():
    """The grader judges students in threads: one thread builds a student's cases (``cases_files``; worksheet 4's
    EMA cases seed torch and build networks) while another rebuilds a case's seeded weights (``seeded_state``). The
    cases once ran outside the verdicts' lock and moved torch's global generator between another thread's
    ``manual_seed`` and its network: an honest training_step failed CI with "the model's weights are not the ones the
    check gave it". Every check's cases now leave the global state as they found it and run one at a time with the
    verdicts."""
    import threading

    from course_utils.checks import ws04_training  # noqa: F401  (registers the checks)
    from course_utils.checks.ws04_training import TinyEps, loss_cases

    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    for name, check in CHECKS.items():
        check.cases(True)
        assert torch.equal(torch.random.get_rng_state(), state), f"{name}'s cases moved torch's global generator"

    c = loss_cases(False)[0]
    def build():
        return TinyEps(c["x0"][0].numel(), c["schedule"].T)
    expected = framework.seeded_state(build, c["seed"])
    stop, seen = threading.Event(), []

    def other_student():
        while not stop.is_set():
            CHECKS["EMA"].cases(True)
    worker = threading.Thread(target=other_student)
    worker.start()
    try:
        for _ in range(300):
            seen.append(not framework.state_changed(framework.seeded_state(build, c["seed"]), expected))
    finally:
        stop.set()
        worker.join()
    assert all(seen), f"{seen.count(False)} of {len(seen)} rebuilds differed while another thread built cases"


@pytest.mark.parametrize("name", ["diffusion_loss", "training_step", "cfg_loss", "EMA", "SmallUNet"])
def test_a_verdict_leaves_the_global_generator_as_it_found_it(name):
    """diffusion_loss's, training_step's and cfg_loss's verdicts rebuild the case's TinyEps, whose initial weights
    are drawn from torch's global generator: they moved it (42 of 51 diffusion_loss verdicts did), harmless only
    while every other reader in the grader reseeded under the lock."""
    from course_utils.checks.framework import MISTAKES, harvest, verdict
    for _, wrong, _ in MISTAKES[name][:6]:
        outputs = harvest(name, wrong)
        torch.manual_seed(7)
        state = torch.random.get_rng_state()
        verdict(name, outputs)
        assert torch.equal(torch.random.get_rng_state(), state), f"{name}'s verdict moved torch's global generator"


def _right_then(name: str, effect):
    """The answer key's ``name`` followed by ``effect(schedule)``: right values, a harmful side effect."""
    from answer_key import ANSWER_KEY
    from course_utils.schedules import NoiseSchedule

    def answer(*args, **kwargs):
        out = ANSWER_KEY[name](*args, **kwargs)
        effect(next((a for a in [*args, *kwargs.values()] if isinstance(a, NoiseSchedule)), None))
        return out
    return answer


@pytest.mark.parametrize("name, effect, said", [
    ("cfg_combine", lambda s: torch.set_grad_enabled(False), "left gradients switched off"),
    ("sinusoidal_embedding", lambda s: torch.set_default_dtype(torch.float64), "changed torch's default dtype"),
    ("ddpm_step", lambda s: s.betas[0:1].mul_(1.001), "changed the schedule it was given (schedule.betas)"),
    ("training_step", lambda s: s.posterior_variance.zero_(), "(schedule.posterior_variance)"),
    ("q_sample", lambda s: setattr(s, "alphas", s.alphas.sqrt()), "(schedule.alphas)"),
    # a helper's wrong answers for worksheet 1: torch.set_num_threads(1) inside diffusion_schedule passed, and
    # every later training and sampling cell ran on one core
    ("diffusion_schedule", lambda s: torch.set_num_threads(torch.get_num_threads() + 1),
     "for every cell after it (torch.set_num_threads)"),
])
def test_a_right_answer_with_a_lasting_side_effect_fails_and_the_setting_is_put_back(name, effect, said):
    """A side-effects pass (a helper): right values with a setting or a schedule changed for every later cell
    passed, and then broke the worksheet further down (grad mode left off: the training raised "element 0 of
    tensors does not require grad" and a right cfg_loss failed its own check; float64 as the default dtype: the
    next networks raised; a schedule written into: a second sampling run collapsed to a point)."""
    threads = torch.get_num_threads()
    result = run_check(name, _right_then(name, effect))
    assert not result.passed and said in result.message, result.message
    assert torch.is_grad_enabled() and torch.get_default_dtype() == torch.float32     # put back for what follows
    assert torch.get_num_threads() == threads
