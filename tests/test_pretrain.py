"""course_utils.pretrain, from a mutation audit (2026-12-06): issue 18's target verdicts at and around each
threshold, ``evaluate``'s wiring (which samples, judged by which classifier), a card read back after a tiny run,
``--fresh``, the ``--minutes`` budget and the cosine calibration on a fake clock, and a multi-phase run
reproduced step for step by its card's command run through ``main``'s parser.

Runs are a few steps of the digits model at batch 8, as in tests/test_checkpoints.py.
"""
from __future__ import annotations

import json
import shlex
import time
import types

import pytest
import torch
from torch import nn

from course_utils import checkpoints, metrics, pretrain
from course_utils.data import load_images
from course_utils.schedules import NoiseSchedule

OLD_FID = pretrain.SHIPPED_MNIST_UNET_FID[1000]
TINY = dict(steps=2, chunk=1, batch_size=8, evaluate_after=False)


def _met(card: dict) -> dict[str, bool]:
    return {target: met for target, _, met in pretrain.targets(card)}


def _unet_card(**metrics_) -> dict:
    base = {"confident_share_0.9": 0.97, "class_counts": [100] * 10, "fid_vs_mnist_test": OLD_FID / 4,
            "confident_share_0.9_ddim20": 0.97}
    return dict(name="mnist-unet", file_size_bytes=5_000_000, metrics=dict(base, **metrics_))


def _cond_card(**metrics_) -> dict:
    base = {"class_accuracy_guidance3": 1.0, "class_accuracy_guidance1": 1.0, "diversity_guidance1": 1.0}
    return dict(name="mnist-unet-cond", file_size_bytes=5_000_000, metrics=dict(base, **metrics_))


# ------------------------------------------------------------------------------- target verdicts (issue 18)
def test_confident_share_target_is_met_at_95_percent_and_missed_below():
    """'>= 95%' includes 95% itself and excludes anything below it."""
    key = ">= 95% of DDIM-50 samples confident > 0.9"
    assert _met(_unet_card(**{"confident_share_0.9": 0.95}))[key] is True
    assert _met(_unet_card(**{"confident_share_0.9": 0.949}))[key] is False
    # a card written before 2026-12-06 holds 950 / 1000 as a float32 mean: still 95%
    float32_share = torch.tensor(950 / 1000, dtype=torch.float32).item()
    assert float32_share < 0.95 and _met(_unet_card(**{"confident_share_0.9": float32_share}))[key] is True


def test_class_shares_target_includes_7_and_13_percent_and_needs_both_bounds():
    """Every class between 7% and 13% of the samples, both ends included, both ends required."""
    key = "every class 7-13% of samples"
    assert _met(_unet_card(class_counts=[70, 130] + [100] * 8))[key] is True           # exactly 7% and 13%
    assert _met(_unet_card(class_counts=[70, 140, 90] + [100] * 7))[key] is False      # one class at 14%
    assert _met(_unet_card(class_counts=[69, 131] + [100] * 8))[key] is False          # just outside both
    assert _met(_unet_card(class_counts=[60, 110, 110, 120] + [100] * 6))[key] is False  # 6%, the max fine


def test_fid_target_is_at_most_half_the_old_fid():
    """The FID limit is half the old model's at n = 1000, the limit itself included."""
    key = f"course FID at most {OLD_FID:.2f} / 2 = {OLD_FID / 2:.2f} (n = 1000)"
    assert _met(_unet_card(fid_vs_mnist_test=OLD_FID / 2))[key] is True
    assert _met(_unet_card(fid_vs_mnist_test=OLD_FID / 2 + 0.01))[key] is False


def test_ddim20_target_counts_only_what_the_shorter_grid_loses():
    """DDIM 20 at most 2 points under DDIM 50 (exactly 2 met); a better DDIM 20 costs nothing."""
    key = "DDIM 20 within 2 points of DDIM 50"
    # 920 and 900 of 1000: 0.92 - 0.90 is 0.020000000000000018 in doubles, still 2 points
    assert 0.92 - 0.90 > 0.02
    assert _met(_unet_card(**{"confident_share_0.9": 0.92, "confident_share_0.9_ddim20": 0.90}))[key] is True
    assert _met(_unet_card(**{"confident_share_0.9": 0.921, "confident_share_0.9_ddim20": 0.90}))[key] is False
    assert _met(_unet_card(**{"confident_share_0.9": 0.95, "confident_share_0.9_ddim20": 0.935}))[key] is True
    assert _met(_unet_card(**{"confident_share_0.9": 0.95, "confident_share_0.9_ddim20": 0.925}))[key] is False
    assert _met(_unet_card(**{"confident_share_0.9": 0.95, "confident_share_0.9_ddim20": 0.99}))[key] is True


def test_conditional_targets_include_their_thresholds():
    """0.99 at w = 3, 0.95 at w = 1 and diversity 0.9 are met at the threshold and missed below it."""
    keys = (">= 99% the asked class at w = 3", ">= 95% the asked class at w = 1",
            "diversity at w = 1 >= 0.9 of real digits")
    at = _met(_cond_card(class_accuracy_guidance3=0.99, class_accuracy_guidance1=0.95, diversity_guidance1=0.9))
    assert [at[k] for k in keys] == [True, True, True]
    below = _met(_cond_card(class_accuracy_guidance3=0.989, class_accuracy_guidance1=0.949, diversity_guidance1=0.85))
    assert [below[k] for k in keys] == [False, False, False]


def test_size_target_is_10_megabytes_decimal():
    """'<= 10 MB' is 10,000,000 bytes (the card's MB), the limit itself included."""
    key = "<= 10 MB in float16"
    assert _met(_unet_card() | dict(file_size_bytes=10_000_000))[key] is True
    assert _met(_unet_card() | dict(file_size_bytes=10_400_000))[key] is False   # 9.9 MiB: still over 10 MB


# ------------------------------------------------------------------------------- evaluate's wiring
class _Tagged(nn.Module):
    """A stand-in network that carries a name (which classifier judged) and a parameter (its device)."""

    def __init__(self, tag: str):
        super().__init__()
        self.tag, self.w = tag, nn.Parameter(torch.zeros(()))


@pytest.fixture
def evaluate_spy(monkeypatch):
    """evaluate() with stand-ins for the models, data and metrics; records every sampling and judging call."""
    calls = dict(sample=[], judge=[], accuracy=[])
    images = torch.zeros(30, 1, 28, 28)
    labels = torch.arange(30) % 10

    def load(name, device="cpu", directory=None):
        if name == "mnist-eval-classifier":
            return _Tagged("eval"), None, {}
        card = dict(kind="diffusion", image_shape=[1, 28, 28], dataset=dict(name="mnist"),
                    num_classes=10 if name == "mnist-unet-cond" else None)
        return _Tagged(name), NoiseSchedule.linear(T=10), card

    def sample(model, schedule, n, shape, **kw):
        calls["sample"].append(dict(kw, n=n))
        return torch.zeros(n, *shape)

    def confident_share(samples, classifier, threshold=0.9):
        calls["judge"].append(classifier.tag)
        return 0.5, torch.full((10,), len(samples) // 10)

    def class_accuracy(samples, y, classifier):
        calls["accuracy"].append(classifier.tag)
        return 0.5

    monkeypatch.setattr(checkpoints, "load", load)
    monkeypatch.setattr(pretrain, "sample_batched", sample)
    monkeypatch.setattr(pretrain, "load_images", lambda *a, **k: (images, labels))
    monkeypatch.setattr(metrics, "feature_classifier", lambda device="cpu": _Tagged("features"))
    monkeypatch.setattr(metrics, "features", lambda x, clf=None, **k: torch.randn(len(x), 4).numpy())
    monkeypatch.setattr(metrics, "fid_from_features", lambda a, b: 1.0)
    monkeypatch.setattr(metrics, "kid_from_features", lambda a, b, **k: (0.1, 0.0))
    monkeypatch.setattr(metrics, "within_class_spread", lambda f, y: 1.0)
    monkeypatch.setattr(metrics, "confident_share", confident_share)
    monkeypatch.setattr(metrics, "class_accuracy", class_accuracy)
    return calls


def test_evaluate_unconditional_judges_with_the_held_out_classifier_and_ddim20_from_the_same_noise(evaluate_spy):
    """The held-out judge scores DDIM 50 and DDIM 20 samples drawn from the same seed; the card records n."""
    out = pretrain.evaluate("mnist-unet", n=20, seed=7)
    assert evaluate_spy["judge"] == ["eval", "eval"]
    ddim50, ddim20 = evaluate_spy["sample"]
    assert ddim50.get("num_steps", 50) == 50 and ddim20["num_steps"] == 20
    assert ddim50["seed"] == ddim20["seed"] == 7 and ddim50["n"] == ddim20["n"] == 20
    assert ddim50["guidance_scale"] == 1.0 and out["samples"] == 20


def test_evaluate_conditional_judges_guidance_3_and_1_with_the_held_out_classifier(evaluate_spy):
    """Guided (w = 3) and plain (w = 1) samples, both judged by mnist-eval-classifier, never the FID network."""
    out = pretrain.evaluate("mnist-unet-cond", n=20)
    guided, plain = evaluate_spy["sample"]
    assert guided["guidance_scale"] == 3.0 and plain["guidance_scale"] == 1.0
    assert torch.equal(guided["y"], torch.arange(20) % 10) and guided["seed"] == plain["seed"]
    assert evaluate_spy["judge"] == ["eval"] and evaluate_spy["accuracy"] == ["eval", "eval"]
    assert out["samples"] == 20


def test_evaluate_and_record_measures_the_asked_number_of_samples(tmp_path, monkeypatch):
    """--eval-samples reaches evaluate: the card's FID is judged at the n it was measured at."""
    seen = {}
    monkeypatch.setattr(pretrain, "evaluate", lambda name, **kw: seen.update(kw) or {"x": 1})
    (tmp_path / "digits-unet-cond.json").write_text(json.dumps(dict(name="digits-unet-cond", metrics={})))
    card = pretrain.evaluate_and_record("digits-unet-cond", directory=tmp_path, n=20)
    assert seen["n"] == 20 and card["metrics"] == {"x": 1}


def test_evaluate_digits_uses_50_samples_per_class(monkeypatch):
    """The digits card says 500 samples per guidance scale, 50 per class: that is what is sampled."""
    n_seen = []

    def sample(model, schedule, n, shape, y=None, **kw):
        n_seen.append(n)
        assert torch.equal(y, torch.arange(n) % 10)
        return torch.zeros(n, *shape)

    card = dict(kind="diffusion", image_shape=[1, 16, 16], dataset=dict(name="digits"), num_classes=10)
    monkeypatch.setattr(checkpoints, "load", lambda *a, **k: (None, None, card))
    monkeypatch.setattr(pretrain, "sample_batched", sample)
    out = pretrain.evaluate("digits-unet-cond")
    assert n_seen == [50 * 10, 50 * 10] and "(50 per class)" in out["evaluation"]


# ------------------------------------------------------------------------------- sampling, augmentation, losses
class _Zero(nn.Module):
    """eps = 0 (DDIM then maps each x_T deterministically); records the labels of each call."""

    def __init__(self):
        super().__init__()
        self.w, self.seen = nn.Parameter(torch.zeros(())), []

    def forward(self, x, t, y=None):
        self.seen.append(None if y is None else y.clone())
        return torch.zeros_like(x)


def test_sample_batched_covers_exactly_n_with_fresh_noise_and_the_right_labels_per_batch():
    """7 samples in batches of 3: 7 come back, each batch its own x_T and its own slice of y."""
    model, y = _Zero(), torch.tensor([3, 1, 4, 1, 5, 9, 2])
    out = pretrain.sample_batched(model, NoiseSchedule.linear(T=10), 7, (1, 2, 2), num_steps=2, y=y, batch_size=3)
    assert out.shape == (7, 1, 2, 2)
    assert not torch.equal(out[:3], out[3:6])
    firsts = model.seen[::2]                        # 2 DDIM steps per batch: the first call of each
    assert torch.equal(torch.cat(firsts), y)


def test_random_shift_reaches_every_offset_and_fills_with_minus_one():
    """pixels = 1: all 9 offsets in [-1, 1]^2 occur, and what comes in from outside is -1 (black)."""
    x = torch.zeros(200, 1, 3, 3)
    x[:, :, 1, 1] = 1.0                            # a single bright pixel in the middle
    out = pretrain.random_shift(x, 1, torch.Generator().manual_seed(0))
    where = (out[:, 0] == 1.0).nonzero()[:, 1:]   # its new (row, col)
    assert len(where) == 200 and {tuple(p.tolist()) for p in where} == {(r, c) for r in range(3) for c in range(3)}
    assert set(out.unique().tolist()) == {-1.0, 0.0, 1.0}


class _Spy(nn.Module):
    """A 10-class classifier that records its inputs and timesteps."""

    def __init__(self):
        super().__init__()
        self.w, self.calls = nn.Parameter(torch.zeros(10)), []

    def forward(self, x, t=None):
        self.calls.append((x.clone(), t))
        return self.w.expand(len(x), 10)


def test_classifier_losses_see_shifted_clean_images_and_noisy_images_over_all_t():
    """The clean classifier gets shifted images and no t; the noisy one gets q_sample'd images at t across [0, T)."""
    x0, y, gen = torch.ones(64, 1, 8, 8), torch.arange(64) % 10, torch.Generator().manual_seed(0)
    clean = pretrain.CONFIGS["mnist-classifier"]
    model = _Spy()
    pretrain.make_loss_fn(clean, None)(model, x0, y, gen)
    (seen, t), = model.calls
    assert t is None and (seen == -1).any(), "a shift of up to 2 pixels brings in -1 borders"
    noisy = pretrain.CONFIGS["mnist-noisy-classifier"]
    schedule = checkpoints.build_schedule(noisy["schedule"])
    model = _Spy()
    pretrain.make_loss_fn(noisy, schedule)(model, x0, y, gen)
    (seen, t), = model.calls
    assert t is not None and int(t.max()) > schedule.T // 2 and not torch.equal(seen, x0)
    assert pretrain.make_loss_fn(pretrain.CONFIGS["mnist-unet"], schedule) is None


def test_load_data_reads_the_training_split():
    """Models train on the train split; the test split is the judges'."""
    spec = pretrain.CONFIGS["digits-unet-cond"]
    x, _ = pretrain.load_data(spec)
    assert len(x) == len(load_images("digits", split="train", image_size=spec["image_size"])[0])
    assert len(x) != len(load_images("digits", split="test", image_size=spec["image_size"])[0])


def test_hardware_names_the_torch_threads_and_the_gpu(monkeypatch):
    """The card's hardware says how many threads torch used and which GPU ran it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Test GPU 80GB")
    hw = pretrain.hardware()
    assert hw["gpu"] == "Test GPU 80GB" and hw["torch_threads"] == torch.get_num_threads()


def test_a_recipe_does_not_change_the_config_it_is_applied_to():
    """spec_for merges the recipe into copies; the recipe wins over the config where both set a field."""
    before = json.dumps(pretrain.CONFIGS, sort_keys=True)
    spec = pretrain.spec_for("mnist-unet", "gpu-wide")
    assert spec["train"]["steps"] == pretrain.GPU["steps"] and spec["train"]["batch_size"] == pretrain.GPU["batch_size"]
    assert json.dumps(pretrain.CONFIGS, sort_keys=True) == before


# ------------------------------------------------------------------------------- runs and their cards
@pytest.fixture
def recipe(monkeypatch):
    """A small cosine recipe for the digits model: 8 steps, a warm-up of 4, 8 channels."""
    monkeypatch.setitem(pretrain.RECIPES, "digits-unet-cond", {"tiny-cosine": dict(
        architecture=dict(base_channels=8), train=dict(lr_schedule="cosine", warmup_steps=4, decay_steps=50,
                                                       steps=8, batch_size=8, ema_decay=0.9))})
    return "tiny-cosine"


def test_a_card_read_back_after_a_tiny_run(tmp_path, monkeypatch):
    """Steps, batch, warm-up override, wall time, data, EMA weights and sha256 on the card are the run's."""
    _fake_clock(monkeypatch, 30.0)       # a chunk's clock far from the training time: the card must take the latter
    work = tmp_path / "work"
    card = pretrain.run("digits-unet-cond", **dict(TINY, steps=3, chunk=2), warmup_steps=1, work_dir=work,
                        out_dir=tmp_path, ema_decay=pretrain.GPU["ema_decay"])
    saved = torch.load(work / "digits-unet-cond.ckpt", map_location="cpu", weights_only=False)
    assert card["steps"] == saved["step"] == 3 and card["batch_size"] == 8
    assert card["train_config"]["warmup_steps"] == saved["config"]["warmup_steps"] == 1
    assert " --warmup-steps 1" in card["command"] and " --batch-size 8" in card["command"]
    words = shlex.split(card["command"])
    ema = float(words[words.index("--ema-decay") + 1])
    assert ema == card["train_config"]["ema_decay"] == pretrain.GPU["ema_decay"]
    # train's own clock over all chunks (at least the checkpoint's, saved just before the end), not pretrain's
    # clock around the last chunk, which the fake clock puts at 30 s
    assert round(saved["seconds"], 1) <= card["wall_time_s"] < 30.0
    assert card["dataset"]["examples"] == len(load_images("digits", split="train", image_size=16)[0])
    weights = torch.load(tmp_path / "digits-unet-cond.pt", weights_only=True)
    assert all(torch.equal(weights[k], v.half() if v.is_floating_point() else v) for k, v in saved["ema"].items())
    assert card["sha256"] == checkpoints.sha256_of(tmp_path / "digits-unet-cond.pt")


def test_a_reproducing_command_keeps_every_digit_of_lr_and_ema_decay():
    """Six significant digits would write an EMA decay of 0.9999995 as 1 (no averaging at all): the command
    must read back as the values the run used."""
    no_schedule = types.SimpleNamespace(lr_schedule="constant", decay_steps=None)
    command = pretrain.reproducing_command("digits-unet-cond", None, pretrain.spec_for("digits-unet-cond"),
                                           no_schedule, [[0, 1.2345678e-4]], 10, ema_decay=0.9999995)
    words = shlex.split(command)
    assert float(words[words.index("--ema-decay") + 1]) == 0.9999995
    assert float(words[words.index("--lr") + 1]) == 1.2345678e-4


@pytest.mark.slow  # over 10 s: out of `make test-unit`, in `make test`
def test_fresh_discards_a_checkpoint_past_the_asked_steps(tmp_path):
    """--fresh starts over: a run of 2 after one of 3 in the same work dir ends at step 2, as a new run would."""
    work = tmp_path / "work"
    pretrain.run("digits-unet-cond", **dict(TINY, steps=3), work_dir=work, out_dir=tmp_path / "a")
    again = pretrain.run("digits-unet-cond", **TINY, work_dir=work, out_dir=tmp_path / "a", fresh=True)
    new = pretrain.run("digits-unet-cond", **TINY, work_dir=tmp_path / "new", out_dir=tmp_path / "b")
    assert again["steps"] == 2 and again["sha256"] == new["sha256"]


def _fake_clock(monkeypatch, *seconds_per_chunk):
    """pretrain's clock on a fake time: each chunk of training takes the next of ``seconds_per_chunk`` (the last
    repeats), so the budget and the measured pace are known in advance."""
    clock = [1_000_000.0]
    durations = list(seconds_per_chunk)
    real_train = pretrain.train

    def train(*args, **kwargs):
        state = real_train(*args, **kwargs)
        clock[0] += durations.pop(0) if len(durations) > 1 else durations[0]
        return state

    monkeypatch.setattr(pretrain, "train", train)
    monkeypatch.setattr(pretrain, "time", types.SimpleNamespace(time=lambda: clock[0], strftime=time.strftime,
                                                                perf_counter=time.perf_counter))


def test_minutes_is_a_wall_time_budget_in_minutes(tmp_path, monkeypatch):
    """--minutes 1 with 30 s chunks of 1 step: two chunks, then the budget is spent."""
    _fake_clock(monkeypatch, 30.0)
    card = pretrain.run("digits-unet-cond", **dict(TINY, steps=None), minutes=1, work_dir=tmp_path / "w",
                        out_dir=tmp_path)
    assert card["steps"] == 60 // 30 * TINY["chunk"]
    assert card["command"].startswith(f"python -m course_utils.pretrain digits-unet-cond --steps {card['steps']} ")


@pytest.mark.slow  # over 10 s: out of `make test-unit`, in `make test`
def test_a_cosine_run_of_minutes_measures_its_pace_on_the_second_chunk(tmp_path, monkeypatch, recipe):
    """Warm-up 4: two chunks of 2 steps (60 s with start-up, then 30 s); 90 s left at 2/30 steps/s gives
    int(0.98 * 6) = 5 more steps: the cosine reaches 0 at step 4 + 5 = 9, where the run stops."""
    _fake_clock(monkeypatch, 60.0, 30.0)
    card = pretrain.run("digits-unet-cond", recipe=recipe, minutes=3, chunk=20, work_dir=tmp_path / "w",
                        out_dir=tmp_path, evaluate_after=False)
    pace, left = 2 / 30, 3 * 60 - 60 - 30
    horizon = 4 + int(0.98 * pace * left)
    assert card["train_config"]["decay_steps"] == card["steps"] == horizon


@pytest.mark.slow  # over 10 s: out of `make test-unit`, in `make test`
def test_a_cosine_run_that_ends_at_its_calibration_keeps_the_horizon_in_its_checkpoint(tmp_path, monkeypatch,
                                                                                       recipe):
    """The budget spent right after the two measuring chunks: the checkpoint still resumes with the horizon."""
    _fake_clock(monkeypatch, 60.0, 30.0)
    work = tmp_path / "w"
    card = pretrain.run("digits-unet-cond", recipe=recipe, minutes=1.5, chunk=20, work_dir=work, out_dir=tmp_path,
                        evaluate_after=False)
    saved = torch.load(work / "digits-unet-cond.ckpt", map_location="cpu", weights_only=False)
    assert card["steps"] == 4 and saved["config"]["decay_steps"] == card["train_config"]["decay_steps"] == 4 + 1
    assert card["command"].endswith(" --decay-steps 5")


@pytest.mark.slow  # over 10 s: out of `make test-unit`, in `make test`
def test_decay_steps_wins_over_steps_and_alone_sets_the_run_length(tmp_path, recipe):
    """--steps 6 --decay-steps 10 stops at 6 on a cosine to 10; --decay-steps 6 alone trains 6 steps."""
    card = pretrain.run("digits-unet-cond", recipe=recipe, steps=6, decay_steps=10, chunk=6, work_dir=tmp_path / "a",
                        out_dir=tmp_path / "a", evaluate_after=False)
    assert card["steps"] == 6 and card["train_config"]["decay_steps"] == 10 and "--decay-steps 10" in card["command"]
    card = pretrain.run("digits-unet-cond", recipe=recipe, decay_steps=6, chunk=6, work_dir=tmp_path / "b",
                        out_dir=tmp_path / "b", evaluate_after=False)
    assert card["steps"] == 6 and card["train_config"]["decay_steps"] == 6


@pytest.mark.slow  # over 10 s: out of `make test-unit`, in `make test`
def test_a_three_phase_cosine_run_is_reproduced_by_its_card_command_through_main(tmp_path, recipe):
    """Cosine to 6, cooled down at 3, back to the config's lr at 5: each && part of the card's command, run by
    main() in a new work dir, gives the same weights bit for bit."""
    work, out = tmp_path / "work", tmp_path / "out"
    kw = dict(recipe=recipe, chunk=2, work_dir=work, out_dir=out, evaluate_after=False)
    pretrain.run("digits-unet-cond", steps=3, decay_steps=6, **kw)
    pretrain.run("digits-unet-cond", steps=5, lr=2e-4, **kw)
    card = pretrain.run("digits-unet-cond", steps=6, lr=pretrain.CONFIGS["digits-unet-cond"]["train"]["lr"], **kw)
    parts = card["command"].split(" && ")
    assert len(parts) == 3 and all(" --decay-steps 6" in p for p in parts[:2])
    for part in parts:
        argv = shlex.split(part)[3:]                       # after "python -m course_utils.pretrain"
        pretrain.main(argv + ["--work-dir", str(tmp_path / "again"), "--out-dir", str(tmp_path / "again"),
                              "--no-eval", "--device", "cpu", "--chunk", "4"])
    copy = json.loads((tmp_path / "again" / "digits-unet-cond.json").read_text())
    assert copy["sha256"] == card["sha256"] and copy["metrics"] == {}


def test_main_passes_its_defaults_and_flags_to_run(monkeypatch):
    """main: --device auto asks get_device, --fresh and --eval-samples reach run, eval-only gets its n."""
    seen = {}
    monkeypatch.setattr(pretrain, "run", lambda name, **kw: seen.update(kw, name=name))
    monkeypatch.setattr(pretrain, "get_device", lambda: torch.device("meta"))
    pretrain.main(["mnist-unet"])
    assert seen["device"] == torch.device("meta") and seen["fresh"] is False and seen["evaluate_after"] is True
    assert seen["eval_samples"] in pretrain.SHIPPED_MNIST_UNET_FID, "the default n has an old FID to compare with"
    pretrain.main(["mnist-unet", "--fresh", "--eval-samples", "20", "--decay-steps", "9", "--warmup-steps", "3"])
    assert seen["fresh"] is True and seen["eval_samples"] == 20 and seen["decay_steps"] == 9
    assert seen["warmup_steps"] == 3
    monkeypatch.setattr(pretrain, "evaluate_and_record", lambda name, **kw: seen.update(kw, name=name))
    pretrain.main(["mnist-unet", "--eval-only", "--eval-samples", "20"])
    assert seen["n"] == 20
