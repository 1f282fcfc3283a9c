"""The grader against submissions that change the weights a check gives them (the second red-team pass).

A module's or a loss's check builds its network in the student's kernel from a fixed seed and reports the
weights with the output. When the reference was computed from the *reported* weights, a student who zeroed
every weight (or patched ``torch.nn.init`` so that every network starts at zero) was compared with the reference
of a zero network: 6 of 7 points on worksheet 3, 4 of 7 on worksheet 4, 5 of 9 on worksheet 6, with no work.
The verdict now rebuilds the weights from the seed where it runs (``checks.framework.seeded_state``) and fails
reported weights that differ. Another submission returns a tensor of shape (100000, 1, 1, 1, 1) from its second
call, which a broadcasting comparison would have blown up to ~2.8 GB in the grader (``close`` never broadcasts).

Each attack is a real notebook (the solution with one TODO replaced), graded by the CLI beside the honest
solution, which must keep its full marks: the rebuilt weights are the ones a real kernel creates. One more
attack of the same pass rides along: worksheet 6's classifier_guided_eps written with the package's
``guidance.classifier_grad``, which the kernel's copy of the package now hides too.

The same run grades every worksheet's solution and blank exercise, with or without attacks: honest work gets
every automatic point and no note that would alarm a student, a worksheet not started gets 0 and no note.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grading_corpus import PEAK, REPO, WRAPPER
from course_utils.checks.ws04_training import RefEMA

ZERO = "for _p in {net}.parameters():\n        _p.data.zero_()\n    "


def _ddim_loop_drawing(noise_lines: str) -> str:
    """Worksheet 5's ddim_sample_loop, right but for ``noise_lines``, which set each step's ``noise``."""
    return ("def ddim_sample_loop(model, schedule, x_T, num_steps, *, eta=0.0, generator=None):\n"
            "    timesteps = ddim_timesteps(schedule.T, num_steps).tolist()\n"
            "    x = x_T\n"
            "    for k, t in enumerate(timesteps):\n"
            "        t_prev = timesteps[k + 1] if k + 1 < len(timesteps) else -1\n"
            "        alpha_bar_prev = schedule.alpha_bar[t_prev] if t_prev >= 0 else torch.tensor(1.0)\n"
            "        eps_pred = model(x, torch.full((len(x),), t, dtype=torch.long))\n"
            + noise_lines +
            "        x, _ = ddim_step(x, eps_pred, schedule.alpha_bar[t], alpha_bar_prev, eta=eta,\n"
            "                         noise=noise if eta > 0 else None)\n"
            "    return x\n")


# worksheet -> student -> (solution cell's grade_id -> code appended to it), then grade_id -> (points, needle)
ATTACKS = {
    "03_unet": {
        "zeroes_the_modules": ({
            "SinusoidalTimeEmbedding":
                "def _zero_forward(self, t):\n    " + ZERO.format(net="self")
                + "return torch.zeros(t.shape[0], self.mlp[2].out_features)\n"
                  "SinusoidalTimeEmbedding.forward = _zero_forward\n",
            "ResBlock":      # the reference of a zero block is its skip: x itself, or zero
                "def _zero_block(self, x, temb):\n    " + ZERO.format(net="self")
                + "return x if x.shape[1] == self.conv2.out_channels else x.new_zeros(x.shape[0], "
                  "self.conv2.out_channels, *x.shape[2:])\nResBlock.forward = _zero_block\n",
            "SmallUNet":
                "def _zero_unet(self, x, t):\n    " + ZERO.format(net="self") + "return torch.zeros_like(x)\n"
                "SmallUNet.forward = _zero_unet\n",
        }, {"test_sinusoidal_embedding": (1, "correct"), "test_SinusoidalTimeEmbedding": (0, "weights"),
            "test_ResBlock": (0, "weights"), "test_SmallUNet": (0, "weights")}),
        "broadcasts": ({
            "ResBlock":      # right on the first call, a (100000, 1, 1, 1, 1) tensor on the second
                "_right_block = ResBlock.forward\n"
                "def _bomb(self, x, temb):\n"
                "    self._calls = getattr(self, '_calls', 0) + 1\n"
                "    return x.new_zeros(100000, 1, 1, 1, 1) if self._calls == 2 else _right_block(self, x, temb)\n"
                "ResBlock.forward = _bomb\n",
        }, {"test_ResBlock": (0, "wrong for another"), "test_SmallUNet": (3, "correct")}),
    },
    "04_training": {
        "zero_init": ({
            "diffusion_loss":   # every network built afterwards starts at zero, the check's own included
                "import torch.nn.init as _init\n"
                "_init.kaiming_uniform_ = lambda w, *a, **k: w.data.zero_()\n"
                "_init.uniform_ = lambda w, *a, **k: w.data.zero_()\n"
                "def diffusion_loss(model, schedule, x0, *, t, eps):\n"
                "    return ((model(x0, t) - eps) ** 2).mean()\n",
        }, {"test_diffusion_loss": (0, "weights are not the ones the check gave it"),
            "test_training_step": (0, "weights are not the ones the check gave it")}),
        "quotes_the_hidden_case": ({     # right on the worksheet's cases; on the hidden (3-channel) one, its
            "diffusion_loss":             # inputs in an error, for the feedback (values masked: hidden_case)
                "_right_loss = diffusion_loss\n"
                "def diffusion_loss(model, schedule, x0, *, t, eps):\n"
                "    if x0.ndim == 4 and x0.shape[1] == 3:\n"
                "        raise ValueError(str(x0.flatten().tolist()))\n"
                "    return _right_loss(model, schedule, x0, t=t, eps=eps)\n",
        }, {"test_diffusion_loss": (0, "on a hidden case (its values are not shown): raised ValueError: [")}),
        "new_optimizer_each_step": ({    # right for plain SGD; AdamW's running averages start afresh each step
            "training_step":
                "def training_step(model, optimizer, x0, t, eps, schedule):\n"
                "    fresh = type(optimizer)(model.parameters(), **optimizer.defaults)\n"
                "    fresh.zero_grad()\n"
                "    loss = diffusion_loss(model, schedule, x0, t=t, eps=eps)\n"
                "    loss.backward()\n"
                "    fresh.step()\n"
                "    return loss.item()\n",
        }, {"test_training_step": (0, "starts afresh")}),
        "freezes_the_live_network": ({
            "EMA":
                "import copy as _copy\n"
                "_RightEMA = EMA\n"
                "class EMA(_RightEMA):\n"
                "    def __init__(self, model, decay):\n"
                "        self.decay, self.model = decay, _copy.deepcopy(model.requires_grad_(False))\n",
        }, {"test_EMA": (0, "no longer requires gradients")}),
    },
    # the mutation audit's answers that passed every check before (one real notebook each, graded end to end)
    "02_forward": {
        "reseeds_torch": ({      # the same chain at every call, whatever the generator
            "q_sample_chain":
                "_right_chain = q_sample_chain\n"
                "def q_sample_chain(x0, t, schedule, generator=None):\n"
                "    torch.manual_seed(0)\n"
                "    return _right_chain(x0, t, schedule, generator=None)\n",
        }, {"test_q_sample_chain": (0, "two calls in a row with one generator")}),
        "three_valued_noise": ({  # the red team of 2026-12-05: a normal's mean, variance and 4th moment (3 of 3)
            "q_sample_chain":
                "import math as _math\n"
                "def q_sample_chain(x0, t, schedule, generator=None):\n"
                "    states, x = [x0], x0\n"
                "    for i in range(t + 1):\n"
                "        u = torch.rand(x0.shape, generator=generator)\n"
                "        r3 = _math.sqrt(3.0)\n"
                "        eps = torch.where(u < 1 / 6, -r3, torch.where(u > 5 / 6, r3, 0.0))\n"
                "        x = schedule.alphas[i].sqrt() * x + schedule.betas[i].sqrt() * eps\n"
                "        states.append(x)\n"
                "    return torch.stack(states).float()\n",
        }, {"test_q_sample_chain": (0, "CDFs")}),
    },
    # the red team of 2026-12-05: noise of the wrong law or at the wrong steps passed the statistical tests at eta > 0
    "05_samplers": {
        "three_valued_noise": ({     # -sqrt(3), 0, sqrt(3): a normal's mean, variance and fourth moment
            "ddim_sample_loop":
                "import math as _math\n" + _ddim_loop_drawing(
                    "        u = torch.rand(x.shape, generator=generator)\n"
                    "        r3 = _math.sqrt(3.0)\n"
                    "        noise = torch.where(u < 1 / 6, -r3, torch.where(u < 5 / 6, 0.0, r3))\n"),
        }, {"test_ddim_sample_loop": (0, "CDFs")}),
        "no_noise_at_the_first_step": ({
            "ddim_sample_loop":
                _ddim_loop_drawing("        noise = torch.randn(x.shape, generator=generator)\n"
                                   "        noise = torch.zeros_like(noise) if k == 0 else noise\n"),
        }, {"test_ddim_sample_loop": (0, "times that variance")}),
        "no_noise_at_a_middle_step": ({      # drawn and dropped: passed until each step's noise was recovered
            "ddim_sample_loop":
                _ddim_loop_drawing("        noise = torch.randn(x.shape, generator=generator)\n"
                                   "        noise = torch.zeros_like(noise) if k == num_steps // 2 else noise\n"),
        }, {"test_ddim_sample_loop": (0, "step 26 of 50 (t = 480 -> 460) has 0.00 times that variance")}),
    },
    "lab_ddim": {
        "float64_schedule": ({   # its own numbers are right; the lab's UNet raises on float64 inputs
            "diffusion_schedule":
                "_right_schedule = diffusion_schedule\n"
                "def diffusion_schedule(diffusion_times, min_signal_rate=0.02, max_signal_rate=0.95):\n"
                "    return tuple(r.double() for r in _right_schedule(diffusion_times, min_signal_rate,\n"
                "                                                     max_signal_rate))\n",
        }, {"test_diffusion_schedule": (0, "return float32"),      # its loop, right, beside it: graded again
            "test_reverse_diffusion": (3, "correct with the course's diffusion_schedule in place of yours")}),
        "writes_into_the_noise": ({     # right values, written over the caller's initial_noise
            "reverse_diffusion":
                "_right_reverse = reverse_diffusion\n"
                "def reverse_diffusion(network, initial_noise, diffusion_steps):\n"
                "    return initial_noise.copy_(_right_reverse(network, initial_noise, diffusion_steps))\n",
        }, {"test_reverse_diffusion": (0, "changed its input initial_noise in place")}),
    },
    "06_guidance": {
        "zeroes_the_networks": ({
            "classifier_guided_eps":
                "def classifier_guided_eps(eps_pred, xt, t, y, classifier, schedule, classifier_scale):\n    "
                + ZERO.format(net="classifier") + "return eps_pred.clone()\n",
            "cfg_loss":
                "def cfg_loss(model, x0, y, t, eps, drop, schedule):\n    "
                + ZERO.format(net="model") + "return ((model(x0, t) - eps) ** 2).mean()\n",
        }, {"test_classifier_guided_eps": (0, "classifier's weights"), "test_cfg_loss": (0, "model's weights"),
            "test_cfg_combine": (1, "correct")}),
        "calls_the_package": ({      # not a weights attack: the package's gradient is most of the TODO
            "classifier_guided_eps":
                "from course_utils.guidance import classifier_grad\n"
                "def classifier_guided_eps(eps_pred, xt, t, y, classifier, schedule, classifier_scale):\n"
                "    a = schedule.alpha_bar[t].reshape(-1, *([1] * (xt.ndim - 1)))\n"
                "    return eps_pred - classifier_scale * (1 - a).sqrt() * classifier_grad(classifier, xt, t, y)\n",
        }, {"test_classifier_guided_eps": (0, "hidden while grading")}),
    },
}


WORKSHEETS = sorted(p.stem for p in (REPO / "solutions").glob("*.ipynb"))


def _build(folder: Path, worksheet: str) -> None:
    solution = nbformat.read(REPO / "solutions" / f"{worksheet}.ipynb", as_version=4)
    (folder / "honest").mkdir(parents=True)
    nbformat.write(solution, folder / "honest" / f"{worksheet}.ipynb")
    (folder / "blank").mkdir()
    shutil.copy(REPO / "exercises" / f"{worksheet}.ipynb", folder / "blank" / f"{worksheet}.ipynb")
    for student, (patches, _) in ATTACKS.get(worksheet, {}).items():
        nb = nbformat.reads(nbformat.writes(solution), as_version=4)
        for gid, code in patches.items():
            cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)
            assert cell.metadata["nbgrader"].get("solution"), gid
            cell.source += "\n\n# the attack\n" + code
        (folder / student).mkdir()
        nbformat.write(nb, folder / student / f"{worksheet}.ipynb")


@pytest.mark.slow
@pytest.mark.parametrize("worksheet", WORKSHEETS)
def test_honest_work_keeps_its_marks_and_changed_weights_earn_nothing(tmp_path, worksheet):
    """Every worksheet: its solution earns every automatic point with no note but one that says it costs nothing
    (worksheet 3's demo of the package's UNet cannot run while its ResBlock is hidden), its blank exercise earns 0
    with "not implemented" on each row and no other note, and each attack above earns what it says."""
    subs, out = tmp_path / "subs", tmp_path / "out"
    _build(subs, worksheet)
    proc = subprocess.run([sys.executable, "-c", WRAPPER, str(REPO / "solutions" / f"{worksheet}.ipynb"), str(subs),
                           "--out", str(out), "--workers", "2", "--quiet", "--allow-root"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {(r["student"], r["grade_id"]): r for r in csv.DictReader(f)}
    results = {s: json.loads((out / "results" / worksheet / f"{s}.json").read_text()) for s in ("honest", "blank")}
    honest = [r for (s, g), r in rows.items() if s == "honest" and g != "TOTAL"]
    assert honest and all(r["status"] in ("pass", "manual") for r in honest), [r["message"] for r in honest]
    for result in results.values():
        assert all("costs no points" in n for n in result["notes"]), result["notes"]
        assert ("UNet(" in " ".join(result["notes"])) == (worksheet == "03_unet"), result["notes"]
        assert result["cell_errors"] == [] and result["monkeypatches"] == []
    blank = [r for (s, g), r in rows.items() if s == "blank" and g != "TOTAL"]
    assert len(blank) == len(honest) and all(float(r["points"]) == 0 for r in blank)
    assert all(re.search("not implemented yet|not answered", r["message"]) for r in blank), blank
    for student, (_, expect) in ATTACKS.get(worksheet, {}).items():
        for gid, (points, needle) in expect.items():
            row = rows[(student, gid)]
            assert float(row["points"]) == points and needle in row["message"], (student, gid, row)
    peak_kb = int(next(line.split()[1] for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB")))
    assert peak_kb < 1_400_000, f"the grader peaked at {peak_kb / 1e6:.2f} GB"    # ~0.7 GB measured; the bomb: +2.8


def test_comparisons_never_broadcast():
    """``close`` on a student's (K, 1, 1, 1, 1) tensor and a reference: False at once, nothing allocated."""
    import torch
    from course_utils.checks.framework import close, judge
    bomb, ref = torch.zeros(10 ** 6, 1, 1, 1, 1), torch.zeros(2, 16, 6, 6)
    assert not close(bomb, ref) and not close(ref, bomb) and not close(ref, None)
    assert "wrong shape" in judge(bomb, ref, [("never this", bomb)])


def test_verdicts_in_threads_rebuild_the_same_weights():
    """The grader judges submissions in threads (``--workers``); the references rebuild modules from torch's global
    random generator. Found by this file in CI: two threads reseeding it under each other gave an honest module
    "weights are not the ones the given __init__ creates" (70 of 90 verdicts failed in this test before the lock)."""
    import threading

    from answer_key import ANSWER_KEY
    from course_utils.checks import verdict
    from course_utils.checks.framework import harvest
    names = ["ResBlock", "SinusoidalTimeEmbedding", "SmallUNet", "EMA", "diffusion_loss", "training_step"]
    outputs = {name: harvest(name, ANSWER_KEY[name]) for name in names}
    failed = []

    def judge_again(name):
        for _ in range(15):
            result = verdict(name, outputs[name])
            if not result.passed:
                failed.append(result.message)
    threads = [threading.Thread(target=judge_again, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failed, failed[:3]


def test_a_hidden_case_keeps_its_numbers():
    """A hidden case's failure names the problem but none of its numbers, and only the hidden cases are masked:
    a loss right on the worksheet's cases (2-D points, one-channel images) and off by 0.1 on the hidden
    (three-channel) one, checked both ways."""
    from answer_key import ANSWER_KEY
    from course_utils.checks import run_check

    def off_on_hidden(model, schedule, x0, *, t, eps):
        loss = ANSWER_KEY["diffusion_loss"](model, schedule, x0, t=t, eps=eps)
        return loss + 0.1 if x0.ndim == 4 and x0.shape[1] == 3 else loss

    assert run_check("diffusion_loss", off_on_hidden).passed
    message = run_check("diffusion_loss", off_on_hidden, hidden=True).message
    assert "on a hidden case (its values are not shown): the loss is …, expected …" in message, message
    assert not re.search(r"\d\.|\.\d|\de", message.split("on a hidden case")[1]), message
    shown = run_check("diffusion_loss", lambda *a, **k: off_on_hidden(*a, **k) + 0.1).message   # wrong everywhere
    assert re.search(r"the loss is \d+\.\d+, expected \d+\.\d+", shown) and "hidden" not in shown, shown


class _WarmUpStopsAtSixtyUntilStep1000(RefEMA):
    """A warm-up that stops at step 60 and (contrived, to stay right on the visible case from step 5000) comes back
    at step 1000: right on every visible case (steps 0 to 52, 5000 to 5002), wrong on the hidden one (from 100)."""

    def update(self, model, step):
        self.warmup_steps = 60 if step < 1000 else None
        super().update(model, step)


def test_a_hidden_case_keeps_the_formula():
    """Masking takes the computed values, not the whole numbers of a hint's formula: an EMA right on the worksheet's
    cases whose warm-up stops at step 60 fails the hidden case (from step 100) with the formula readable and the
    hidden case's decays hidden."""
    from course_utils.checks import run_check

    stops_at_sixty = _WarmUpStopsAtSixtyUntilStep1000
    assert run_check("EMA", stops_at_sixty).passed
    message = run_check("EMA", stops_at_sixty, hidden=True).message
    assert "on a hidden case" in message and "d = min(decay, (1 + step) / (10 + step))" in message, message
    assert "101/110" in message and "0.99" not in message and "0.918" not in message, message


def test_the_peak_is_the_grader_own():
    """The peak these tests bound is the grader's own: a child of a process that has grown by 600 MB inherits
    that growth in getrusage's ru_maxrss (Linux keeps it across fork and exec), not in VmHWM, which PEAK reads."""
    grown = bytearray(600 * 2 ** 20)
    grown[::4096] = b"\1" * len(grown[::4096])       # touch every page, so they count
    probe = ("import resource\n"
             f"print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, {PEAK})")
    inherited, own = map(int, subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                             check=True).stdout.split())
    del grown
    assert inherited > 600 * 1024, "ru_maxrss no longer carries the parent's peak: PEAK may go back to it"
    assert own < 100 * 1024, f"a bare Python reports a {own / 1024:.0f} MB peak"
