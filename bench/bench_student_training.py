"""How long would a student wait to train the course's small models on this CPU?

A SHORT MEASURED RUN, EXTRAPOLATED: for each model, train it with its own config (course_utils.pretrain.CONFIGS,
the course's `train`) for --warmup steps (one-time set-up, not counted), then --steps more, and extrapolate the
measured seconds per step to the config's full step count. The shipped model cards hold the real wall time of
the full runs for comparison (they were measured under the load of that moment; so is this).

    python bench/bench_student_training.py [--steps 20] [--warmup 5] [--threads 1] [--models ...]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import torch

from course_utils import checkpoints
from course_utils.pretrain import CONFIGS, _dummy_schedule, load_data, make_loss_fn
from course_utils.training import TrainConfig, train


def seconds_per_step(name: str, steps: int, warmup: int, workdir: str) -> float:
    spec = CONFIGS[name]
    model = checkpoints.ARCHITECTURES[spec["architecture"]["cls"]](**spec["architecture"]["config"])
    schedule = checkpoints.build_schedule(spec["schedule"]) or _dummy_schedule()
    x, y = load_data(spec)
    y = y if spec["conditional"] else None
    loss_fn = make_loss_fn(spec, schedule)
    ckpt = os.path.join(workdir, f"{name}.ckpt")
    config = TrainConfig(**dict(spec["train"], steps=warmup), log_every=1)
    first = train(model, schedule, x, config, y=y, checkpoint_path=ckpt, progress=False, loss_fn=loss_fn)
    config.steps = warmup + steps
    state = train(model, schedule, x, config, y=y, checkpoint_path=ckpt, progress=False, loss_fn=loss_fn)
    return (state.seconds - first.seconds) / steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=20, help="measured steps per model")
    parser.add_argument("--warmup", type=int, default=5, help="steps run first and not counted")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# measured {args.steps} steps per model after {args.warmup} warm-up steps, extrapolated to the config's "
          f"steps; torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    print("| model | batch | config steps | measured s/step | images/s | extrapolated minutes | card: steps, minutes |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.models:
            sps = seconds_per_step(name, args.steps, args.warmup, workdir)
            train_cfg = CONFIGS[name]["train"]
            try:
                card = checkpoints.read_card(name)
                recorded = f"{card['steps']}, {card['wall_time_s'] / 60:.1f}"
            except checkpoints.CheckpointError:
                recorded = "not trained"
            print(f"| {name} | {train_cfg['batch_size']} | {train_cfg['steps']} | {sps:.3f} | "
                  f"{train_cfg['batch_size'] / sps:.0f} | {sps * train_cfg['steps'] / 60:.1f} | {recorded} |",
                  flush=True)


if __name__ == "__main__":
    sys.exit(main())
