"""Step 3 of issue 18's procedure, the part that needs no judgement: which GPU run to ship.

    python tools/adopt_gpu_run.py OUT [--into course_utils/checkpoints] [--dry-run] [--force]

OUT is the folder ``tools/gpu_retrain.sh`` filled on the device: ``OUT/NAME.RECIPE/{NAME.pt, NAME.json}`` per
run. For each model it prints every run's targets (``pretrain.targets``, from the metrics the card carries),
the shipped model's beside them, and picks the run that meets the most targets; on a tie the one with fewer
parameters, which samples faster on a laptop (``bench/bench_unet_widths.py``: 0.92x and 1.16x the shipped
model's time for ``gpu-deep`` on two CPUs, 1.31x and 1.67x for ``gpu-wide`` and ``gpu-wide-l1``), then the one
with the better samples. A run without a card (it failed: see ``OUT/gpu_retrain.log``) or whose weights do
not load (``checkpoints.load`` checks the sha256 and the architecture) is never picked.

The pick is copied into ``--into`` only when it meets every target and the shipped model does not; otherwise
the choice is the session's (``--force`` copies it anyway: say, a pick better than the shipped model on every
target it misses, or one that beats a shipped model that already meets them all, on FID or sampling time).
What follows is printed as commands: the CPU measurement with the card's evaluation, ``make generated``, the
lessons and the README's tables.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_utils import checkpoints, pretrain  # noqa: E402

MODELS = ("mnist-unet", "mnist-unet-cond")


def runs_of(out: Path, name: str) -> list[dict]:
    """Every run of ``name`` under ``out``: {recipe, folder, card or None, problem or None}, sorted by recipe."""
    runs = []
    for folder in sorted(out.glob(f"{name}.*")):
        recipe = folder.name[len(name) + 1:]
        if not folder.is_dir() or "." in recipe:         # mnist-unet.x is not mnist-unet-cond.x, nor a file
            continue
        run = dict(recipe=recipe, folder=folder, card=None, problem=None)
        card_path = folder / f"{name}.json"
        if not card_path.is_file():
            run["problem"] = "no card: the run failed (see gpu_retrain.log)"
        else:
            try:
                checkpoints.load(name, directory=folder)
                run["card"] = json.loads(card_path.read_text())
            except (checkpoints.CheckpointError, OSError, ValueError) as err:
                run["problem"] = f"does not load: {err}"
            else:
                try:
                    pretrain.targets(run["card"])
                except KeyError as err:
                    run["problem"], run["card"] = f"its card lacks the metric {err}: the measurement failed", None
        runs.append(run)
    return runs


def meets_every_target(card: dict) -> bool:
    """Whether a card's metrics meet all of issue 18's targets (False when it lacks a metric they need)."""
    try:
        return all(ok for _, _, ok in pretrain.targets(card))
    except KeyError:
        return False


def score(card: dict) -> tuple[int, int, float, float]:
    """(targets met, -targets missed, -parameters, quality): the larger, the better run. Quality, for two runs
    of one network (``gpu-wide`` and ``gpu-wide-l1``): the unguided class accuracy of a conditional model, the
    confident share of an unconditional one."""
    rows = pretrain.targets(card)
    met = sum(ok for _, _, ok in rows)
    metrics = card.get("metrics", {})
    quality = metrics.get("class_accuracy_guidance1", metrics.get("confident_share_0.9", 0.0))
    size = card.get("parameters")                # a card without its size loses a tie on size, never wins it
    return met, -(len(rows) - met), -(int(size) if size is not None else float("inf")), float(quality)


def pick(runs: list[dict]) -> dict | None:
    """The run to ship of those with a card: most targets met, then fewest missed, then fewest parameters, then
    the better samples."""
    candidates = [r for r in runs if r["card"] is not None]
    return max(candidates, key=lambda r: score(r["card"])) if candidates else None


def report(name: str, runs: list[dict], shipped: dict | None) -> list[str]:
    lines = [f"## {name}"]
    if shipped is not None:
        lines.append(f"shipped ({(shipped.get('parameters') or 0) / 1e6:.2f} M parameters):")
        try:                                      # a card written with --no-eval holds no metrics
            rows = pretrain.targets(shipped)
        except KeyError as err:
            rows = []
            lines.append(f"  its card has no measured targets ({err} missing): measure them (python -m "
                         f"course_utils.pretrain {name} --eval-only); counted as meeting none")
        lines += [f"  {'met    ' if ok else 'NOT met'}  {target}: {measured}" for target, measured, ok in rows]
    for run in runs:
        if run["card"] is None:
            lines.append(f"recipe {run['recipe']}: {run['problem']}")
            continue
        card = run["card"]
        lines.append(f"recipe {run['recipe']} ({(card.get('parameters') or 0) / 1e6:.2f} M parameters, "
                     f"{card.get('steps')} steps, metrics: {card['metrics'].get('evaluation', '?')[:40]}...):")
        lines += [f"  {'met    ' if ok else 'NOT met'}  {target}: {measured}" for target, measured, ok in
                  pretrain.targets(card)]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/adopt_gpu_run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the folder gpu_retrain.sh wrote ($OUT)")
    parser.add_argument("--into", type=Path, default=checkpoints.CHECKPOINT_DIR,
                        help="where the shipped weights and cards live (default: the package's)")
    parser.add_argument("--dry-run", action="store_true", help="print the choice, copy nothing")
    parser.add_argument("--force", action="store_true", help="copy the pick even if it misses a target")
    args = parser.parse_args(argv)
    if not args.out.is_dir():
        parser.error(f"{args.out} is not a folder: pass the folder gpu_retrain.sh wrote ($OUT)")
    adopted = []
    for name in MODELS:
        runs = runs_of(args.out, name)
        shipped_path = args.into / f"{name}.json"
        shipped = json.loads(shipped_path.read_text()) if shipped_path.is_file() else None
        print("\n".join(report(name, runs, shipped)))
        best = pick(runs)
        if best is None:
            print(f"-> {name}: no usable run; the shipped model stays\n")
            continue
        rows = pretrain.targets(best["card"])
        missed = [target for target, _, ok in rows if not ok]
        verdict = "meets every target" if not missed else f"misses {len(missed)}: {'; '.join(missed)}"
        print(f"-> {name}: recipe {best['recipe']} ({verdict})")
        if missed and not args.force:
            print("   not copied: the choice is yours (--force copies it)\n")
            continue
        if shipped is not None and meets_every_target(shipped) and not args.force:
            print("   not copied: the shipped model meets every target too; compare the two above "
                  "(--force copies it)\n")
            continue
        if args.dry_run:
            print(f"   would copy {name}.pt and {name}.json into {args.into} (--dry-run)\n")
            continue
        for suffix in (".pt", ".json"):
            shutil.copy2(best["folder"] / f"{name}{suffix}", args.into / f"{name}{suffix}")
        checkpoints.load(name, directory=args.into)            # the copy loads as the lessons load it
        print(f"   copied {name}.pt and {name}.json into {args.into}\n")
        adopted.append(name)
    if adopted:
        print("Next, on this CPU (docs/checkpoints.md, 'Retraining on a GPU', step 3):")
        print("".join(f"  python -m course_utils.pretrain {n} --eval-only\n" for n in adopted), end="")
        print("  make generated\n  re-execute notebooks/05_ddpm_vs_ddim.ipynb, notebooks/06_guidance.ipynb and "
              "notebooks/00_start_here.ipynb\n  python bench/bench_quality.py --n 300\n"
              "  python bench/bench_guidance.py --n 100")
    return 0


if __name__ == "__main__":
    sys.exit(main())
