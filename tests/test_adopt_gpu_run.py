"""tools/adopt_gpu_run.py: which of the GPU run's models ships. Runs are the shipped weights under other cards'
metrics (the choice reads the cards; the weights only have to load), laid out as tools/gpu_retrain.sh writes."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from course_utils import checkpoints

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import adopt_gpu_run  # noqa: E402

# metrics that meet every target of issue 18 (10,000 samples, as the GPU script measures)
GOOD_UNCOND = {"confident_share_0.9": 0.96, "confident_share_0.9_ddim20": 0.95, "class_counts": [1000] * 10,
               "fid_vs_mnist_test": 0.75, "fid_floor_real_train_vs_test": 0.68, "samples": 10000,
               "evaluation": "10000 samples, DDIM 50 steps eta 0, seed 0"}
GOOD_COND = {"class_accuracy_guidance3": 0.995, "class_accuracy_guidance1": 0.97, "diversity_guidance1": 0.95,
             "samples": 10000, "evaluation": "10000 samples, DDIM 50 steps eta 0, seed 0"}


def _run(out: Path, name: str, recipe: str, metrics: dict | None, *, parameters: int | None = None) -> Path:
    """out/NAME.RECIPE/{NAME.pt, NAME.json}: the shipped weights, the card's metrics and parameters replaced."""
    folder = out / f"{name}.{recipe}"
    folder.mkdir(parents=True)
    shutil.copy2(checkpoints.CHECKPOINT_DIR / f"{name}.pt", folder / f"{name}.pt")
    card = json.loads((checkpoints.CHECKPOINT_DIR / f"{name}.json").read_text())
    card.update(recipe=recipe)
    if metrics is None:
        del card["metrics"]
    else:
        card["metrics"] = metrics
    if parameters is not None:
        card["parameters"] = parameters
    (folder / f"{name}.json").write_text(json.dumps(card))
    return folder


@pytest.fixture
def into(tmp_path) -> Path:
    """A copy of the shipped diffusion models: what the tool may overwrite."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name in adopt_gpu_run.MODELS:
        for suffix in (".pt", ".json"):
            shutil.copy2(checkpoints.CHECKPOINT_DIR / f"{name}{suffix}", folder / f"{name}{suffix}")
    return folder


def _shipped_metrics(into: Path, name: str, **metrics) -> None:
    """Change the metrics on the card of the shipped copy ``into/NAME.json`` (the weights stay)."""
    card = json.loads((into / f"{name}.json").read_text())
    card["metrics"].update(metrics)
    (into / f"{name}.json").write_text(json.dumps(card))


def test_the_run_that_meets_the_most_targets_is_copied(tmp_path, into, capsys):
    out = tmp_path / "out"
    _shipped_metrics(into, "mnist-unet-cond", class_accuracy_guidance1=0.90)   # the model before 2026-12-04
    _run(out, "mnist-unet", "gpu-wide", dict(GOOD_UNCOND, **{"confident_share_0.9": 0.93}))   # misses 95%
    _run(out, "mnist-unet", "gpu-deep", GOOD_UNCOND)
    _run(out, "mnist-unet-cond", "gpu-wide", GOOD_COND)
    assert adopt_gpu_run.main([str(out), "--into", str(into)]) == 0
    text = capsys.readouterr().out
    assert "-> mnist-unet: recipe gpu-deep (meets every target)" in text, text
    assert "NOT met  >= 95% of DDIM-50 samples confident > 0.9: 93.0%" in text      # the other run's row
    assert "-> mnist-unet-cond: recipe gpu-wide (meets every target)" in text
    for name in adopt_gpu_run.MODELS:
        card = json.loads((into / f"{name}.json").read_text())
        assert card["recipe"] == ("gpu-deep" if name == "mnist-unet" else "gpu-wide")
        checkpoints.load(name, directory=into)
    assert "python -m course_utils.pretrain mnist-unet --eval-only" in text and "make generated" in text


def test_a_tie_goes_to_the_smaller_network(tmp_path, into, capsys):
    out = tmp_path / "out"
    _run(out, "mnist-unet", "gpu-wide", GOOD_UNCOND, parameters=2_500_000)
    _run(out, "mnist-unet", "gpu-deep", GOOD_UNCOND, parameters=1_620_000)
    adopt_gpu_run.main([str(out), "--into", str(into), "--dry-run"])
    text = capsys.readouterr().out
    assert "-> mnist-unet: recipe gpu-deep" in text and "(--dry-run)" in text
    assert json.loads((into / "mnist-unet.json").read_text()).get("recipe") != "gpu-deep"   # nothing copied


def test_a_tie_of_one_network_goes_to_the_better_samples(tmp_path, into, capsys):
    """gpu-wide and gpu-wide-l1 train the same network: on equal targets the confident share decides, whichever
    recipe comes first."""
    for better in ("gpu-wide", "gpu-wide-l1"):
        out = tmp_path / f"out-{better}"
        for recipe in ("gpu-wide", "gpu-wide-l1"):
            share = 0.97 if recipe == better else 0.96
            _run(out, "mnist-unet", recipe, dict(GOOD_UNCOND, **{"confident_share_0.9": share,
                                                                 "confident_share_0.9_ddim20": share - 0.01}),
                 parameters=2_500_000)
        adopt_gpu_run.main([str(out), "--into", str(into), "--dry-run"])
        assert f"-> mnist-unet: recipe {better} (meets every target)" in capsys.readouterr().out


def test_a_pick_that_misses_a_target_is_not_copied_without_force(tmp_path, into, capsys):
    out = tmp_path / "out"
    _run(out, "mnist-unet", "gpu-deep", dict(GOOD_UNCOND, fid_vs_mnist_test=0.9))       # FID above 1.58 / 2
    before = (into / "mnist-unet.json").read_bytes()
    adopt_gpu_run.main([str(out), "--into", str(into)])
    text = capsys.readouterr().out
    assert "misses 1: course FID at most 1.58 / 2 = 0.79 (n = 10000)" in text and "not copied" in text, text
    assert (into / "mnist-unet.json").read_bytes() == before
    adopt_gpu_run.main([str(out), "--into", str(into), "--force"])
    assert json.loads((into / "mnist-unet.json").read_text())["metrics"]["fid_vs_mnist_test"] == 0.9


def test_failed_and_broken_runs_are_named_and_never_picked(tmp_path, into, capsys):
    out = tmp_path / "out"
    (out / "mnist-unet.gpu-wide").mkdir(parents=True)                     # failed before writing its card
    _run(out, "mnist-unet", "no-metrics", None)                           # its measurement failed
    broken = _run(out, "mnist-unet", "gpu-deep", GOOD_UNCOND)
    (broken / "mnist-unet.pt").write_bytes(b"not the weights")               # the sha256 no longer matches
    _run(out, "mnist-unet-cond", "gpu-wide", GOOD_COND)                   # not a run of mnist-unet
    before = (into / "mnist-unet.json").read_bytes()
    adopt_gpu_run.main([str(out), "--into", str(into)])
    text = capsys.readouterr().out
    assert "recipe gpu-wide: no card: the run failed" in text
    assert "recipe no-metrics: its card lacks the metric 'metrics'" in text
    assert "recipe gpu-deep: does not load: the weights file" in text and "does not match its model card" in text
    assert "-> mnist-unet: no usable run; the shipped model stays" in text
    assert (into / "mnist-unet.json").read_bytes() == before


def test_a_missing_folder_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        adopt_gpu_run.main([str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2 and "pass the folder gpu_retrain.sh wrote" in capsys.readouterr().err


def test_a_shipped_model_that_meets_every_target_stays_unless_forced(tmp_path, into, capsys):
    out = tmp_path / "out"
    _shipped_metrics(into, "mnist-unet-cond", class_accuracy_guidance3=1.0, class_accuracy_guidance1=0.959,
                     diversity_guidance1=1.04)                   # the CPU retrain of 2026-12-04 meets them all
    _run(out, "mnist-unet-cond", "gpu-wide", GOOD_COND)
    before = (into / "mnist-unet-cond.json").read_bytes()
    adopt_gpu_run.main([str(out), "--into", str(into)])
    text = capsys.readouterr().out
    assert "-> mnist-unet-cond: recipe gpu-wide (meets every target)" in text
    assert "not copied: the shipped model meets every target too" in text, text
    assert (into / "mnist-unet-cond.json").read_bytes() == before
    adopt_gpu_run.main([str(out), "--into", str(into), "--force"])
    assert json.loads((into / "mnist-unet-cond.json").read_text())["recipe"] == "gpu-wide"
    # a shipped card that lacks a metric the targets need does not count as meeting them
    assert not adopt_gpu_run.meets_every_target({"name": "mnist-unet", "metrics": {}})


def test_only_folders_named_model_dot_recipe_are_runs(tmp_path):
    """A renamed copy (mnist-unet.gpu-wide.old: a recipe has no dot) and a file (mnist-unet.log) are not runs,
    nor is a run of the conditional model a run of mnist-unet."""
    _run(tmp_path, "mnist-unet", "gpu-wide", GOOD_UNCOND)
    shutil.copytree(tmp_path / "mnist-unet.gpu-wide", tmp_path / "mnist-unet.gpu-wide.old")
    (tmp_path / "mnist-unet.log").write_text("a log")
    _run(tmp_path, "mnist-unet-cond", "gpu-wide", GOOD_COND)
    assert [r["recipe"] for r in adopt_gpu_run.runs_of(tmp_path, "mnist-unet")] == ["gpu-wide"]


WIDE, DEEP = 2_500_000, 1_620_000          # parameters of the gpu-wide and gpu-deep networks, roughly


def _edit_card(path: Path, **fields) -> None:
    card = json.loads(path.read_text())
    card.update(fields)
    path.write_text(json.dumps(card))


def _picked(out: Path, into: Path, capsys) -> str:
    """What a --dry-run prints (exit status 0)."""
    assert adopt_gpu_run.main([str(out), "--into", str(into), "--dry-run"]) == 0
    return capsys.readouterr().out


def test_more_targets_met_beats_fewer_parameters(tmp_path, into, capsys):
    """A run measured on all five targets that meets them beats a smaller one whose card lacks DDIM-20 (4 met)."""
    out = tmp_path / "out"
    no_ddim20 = {k: v for k, v in GOOD_UNCOND.items() if k != "confident_share_0.9_ddim20"}
    _run(out, "mnist-unet", "gpu-deep", no_ddim20, parameters=DEEP)          # 4 targets, 4 met
    _run(out, "mnist-unet", "gpu-wide", GOOD_UNCOND, parameters=WIDE)        # 5 targets, 5 met
    assert "-> mnist-unet: recipe gpu-wide (meets every target)" in _picked(out, into, capsys)


def test_on_equal_targets_met_fewer_missed_beats_fewer_parameters(tmp_path, into, capsys):
    """4 met of 4 (no DDIM-20 figure) beats 4 met of 5 (DDIM-20 falls 3 points behind), though it is larger."""
    out = tmp_path / "out"
    no_ddim20 = {k: v for k, v in GOOD_UNCOND.items() if k != "confident_share_0.9_ddim20"}
    _run(out, "mnist-unet", "gpu-wide", no_ddim20, parameters=WIDE)
    _run(out, "mnist-unet", "gpu-deep", dict(GOOD_UNCOND, **{"confident_share_0.9_ddim20": 0.93}),  # 96 - 93 > 2
         parameters=DEEP)
    assert "-> mnist-unet: recipe gpu-wide (meets every target)" in _picked(out, into, capsys)


def test_targets_met_count_before_targets_missed(tmp_path, into, capsys):
    """Conditional: 3 met of 4 (diversity 0.5 < 0.9) beats 2 met of 2 (a card with only w = 3 measured)."""
    out = tmp_path / "out"
    _run(out, "mnist-unet-cond", "gpu-wide", dict(GOOD_COND, diversity_guidance1=0.5), parameters=WIDE)
    _run(out, "mnist-unet-cond", "gpu-deep", {"class_accuracy_guidance3": 0.995, "samples": 10000,
                                              "evaluation": "10000 samples"}, parameters=WIDE)
    text = _picked(out, into, capsys)
    assert "-> mnist-unet-cond: recipe gpu-wide (misses 1: diversity at w = 1 >= 0.9 of real digits)" in text, text


def test_fewer_parameters_come_before_better_samples(tmp_path, into, capsys):
    """The smaller network wins a tie of targets even when the larger one's samples are better."""
    out = tmp_path / "out"
    _run(out, "mnist-unet", "gpu-deep", GOOD_UNCOND, parameters=DEEP)                      # share 0.96
    _run(out, "mnist-unet", "gpu-wide", dict(GOOD_UNCOND, **{"confident_share_0.9": 0.97}), parameters=WIDE)
    assert "-> mnist-unet: recipe gpu-deep (meets every target)" in _picked(out, into, capsys)


def test_a_conditional_tie_goes_to_the_unguided_accuracy(tmp_path, into, capsys):
    """Same network, every target met: w = 1 accuracy decides (0.97 > 0.96), not w = 3 (where the other wins)."""
    out = tmp_path / "out"
    _run(out, "mnist-unet-cond", "gpu-wide", dict(GOOD_COND, class_accuracy_guidance1=0.96,
                                                  class_accuracy_guidance3=1.0), parameters=WIDE)
    _run(out, "mnist-unet-cond", "gpu-wide-l1", dict(GOOD_COND, class_accuracy_guidance1=0.97,
                                                     class_accuracy_guidance3=0.99), parameters=WIDE)
    assert "-> mnist-unet-cond: recipe gpu-wide-l1 (meets every target)" in _picked(out, into, capsys)


def test_an_unconditional_tie_goes_to_the_ddim50_share_not_ddim20(tmp_path, into, capsys):
    """The DDIM-50 share decides (0.97 > 0.96) though the other run's DDIM-20 share is higher (0.96 > 0.955)."""
    out = tmp_path / "out"
    _run(out, "mnist-unet", "gpu-wide", dict(GOOD_UNCOND, **{"confident_share_0.9": 0.96,
                                                             "confident_share_0.9_ddim20": 0.96}), parameters=WIDE)
    _run(out, "mnist-unet", "gpu-wide-l1", dict(GOOD_UNCOND, **{"confident_share_0.9": 0.97,      # gap 1.5 points
                                                                "confident_share_0.9_ddim20": 0.955}),
         parameters=WIDE)
    assert "-> mnist-unet: recipe gpu-wide-l1 (meets every target)" in _picked(out, into, capsys)


def test_the_report_shows_the_shipped_model_and_each_runs_size(tmp_path, into, capsys):
    """The shipped model's rows come before the runs', each headed by its size in millions of parameters."""
    out = tmp_path / "out"
    _edit_card(into / "mnist-unet-cond.json", parameters=1_112_801,                   # 1.112801 M -> "1.11"
               metrics=dict(GOOD_COND, class_accuracy_guidance1=0.90))
    _run(out, "mnist-unet-cond", "gpu-wide", GOOD_COND, parameters=WIDE)
    text = _picked(out, into, capsys)
    block = text[text.index("## mnist-unet-cond"):]
    shipped, run = block.index("shipped (1.11 M parameters):"), block.index("recipe gpu-wide (2.50 M parameters, ")
    assert shipped < block.index("NOT met  >= 95% the asked class at w = 1: 90.0%") < run, block


def test_a_pick_that_misses_two_targets_names_both(tmp_path, into, capsys):
    out = tmp_path / "out"
    _run(out, "mnist-unet", "gpu-deep", dict(GOOD_UNCOND, fid_vs_mnist_test=0.9, **{"confident_share_0.9": 0.93}))
    assert ("-> mnist-unet: recipe gpu-deep (misses 2: >= 95% of DDIM-50 samples confident > 0.9; "
            "course FID at most 1.58 / 2 = 0.79 (n = 10000))") in _picked(out, into, capsys)


def test_into_without_a_shipped_model_takes_the_pick_and_names_only_what_was_copied(tmp_path, capsys):
    """A fresh --into (no card there) takes a pick that meets every target; the next steps name only that model."""
    out, empty = tmp_path / "out", tmp_path / "fresh"
    empty.mkdir()
    _run(out, "mnist-unet", "gpu-deep", GOOD_UNCOND)
    assert adopt_gpu_run.main([str(out), "--into", str(empty)]) == 0
    text = capsys.readouterr().out
    assert "shipped (" not in text and f"copied mnist-unet.pt and mnist-unet.json into {empty}" in text, text
    assert "-> mnist-unet-cond: no usable run; the shipped model stays" in text
    assert json.loads((empty / "mnist-unet.json").read_text())["recipe"] == "gpu-deep"
    checkpoints.load("mnist-unet", directory=empty)
    assert "python -m course_utils.pretrain mnist-unet --eval-only" in text
    assert "mnist-unet-cond --eval-only" not in text and not (empty / "mnist-unet-cond.json").exists()


def test_a_shipped_card_without_metrics_is_reported_and_replaced(tmp_path, into, capsys):
    """A shipped card without metrics (written with --no-eval) meets no target: the report says what to measure
    and a run that meets every target replaces it (the report raised KeyError before)."""
    out = tmp_path / "out"
    _run(out, "mnist-unet", "gpu-deep", GOOD_UNCOND)
    card = json.loads((into / "mnist-unet.json").read_text())
    del card["metrics"]
    (into / "mnist-unet.json").write_text(json.dumps(card))
    assert adopt_gpu_run.main([str(out), "--into", str(into)]) == 0
    text = capsys.readouterr().out
    assert "its card has no measured targets ('metrics' missing): measure them (python -m" in text, text
    assert json.loads((into / "mnist-unet.json").read_text())["recipe"] == "gpu-deep"
    assert "copied mnist-unet.pt" in text


def test_a_card_without_its_size_loses_a_tie_on_size(tmp_path, into, capsys):
    """Every target met by both: the run whose card does not say how large it is cannot win as the smaller."""
    out = tmp_path / "out"
    unsized = _run(out, "mnist-unet", "gpu-deep", dict(GOOD_UNCOND, **{"confident_share_0.9": 0.97}))
    _edit_card(unsized / "mnist-unet.json", parameters=None)
    _run(out, "mnist-unet", "gpu-wide", GOOD_UNCOND, parameters=WIDE)
    assert "-> mnist-unet: recipe gpu-wide (meets every target)" in _picked(out, into, capsys)


def test_a_card_that_is_not_text_or_weights_that_are_a_folder_are_named_not_fatal(tmp_path, into, capsys):
    """A card of binary garbage (UnicodeDecodeError, a ValueError) and a NAME.pt that is a folder (an OSError)
    are runs that do not load; the tool goes on to the next model."""
    out = tmp_path / "out"
    garbled = _run(out, "mnist-unet", "gpu-deep", GOOD_UNCOND)
    (garbled / "mnist-unet.json").write_bytes(b"\xff\xfe\x00 not a card")
    folder = _run(out, "mnist-unet", "gpu-wide", GOOD_UNCOND)
    (folder / "mnist-unet.pt").unlink()
    (folder / "mnist-unet.pt").mkdir()
    _run(out, "mnist-unet-cond", "gpu-wide", GOOD_COND)
    text = _picked(out, into, capsys)
    assert "recipe gpu-deep: does not load: " in text and "recipe gpu-wide: does not load: " in text, text
    assert "-> mnist-unet: no usable run; the shipped model stays" in text
    assert "-> mnist-unet-cond: recipe gpu-wide (meets every target)" in text
