"""What a wider or deeper MNIST UNet costs a student: parameters, float16 file size, and CPU time of DDIM 50
for 48 samples (lesson 5's sampling unit), the shipped architecture and each recipe of issue 18 side by side.

    python bench/bench_unet_widths.py [--threads 2] [--n 48] [--steps 50] [--repeats 2]

Each architecture is timed ``--repeats`` times in turn (round robin, so a load spike hits all alike); the
table gives the median and the ratio to the shipped `mnist-unet`. Random weights: time does not depend on them.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from course_utils.nets import UNet
from course_utils.pretrain import CONFIGS, RECIPES, spec_for
from course_utils.samplers import ddim_sample
from course_utils.schedules import NoiseSchedule


def architectures() -> dict[str, dict]:
    """name -> UNet config: the shipped one first, each recipe's (recipes of one network share a row), two more
    for scale."""
    shipped = CONFIGS["mnist-unet"]["architecture"]["config"]
    rows = [["shipped mnist-unet", shipped]]
    for recipe in RECIPES["mnist-unet"]:
        config = spec_for("mnist-unet", recipe)["architecture"]["config"]
        row = next((r for r in rows if r[1] == config), None)
        if row is None:
            rows.append([f"recipe `{recipe}`", config])
        else:
            row[0] += f", `{recipe}`" if row[0].startswith("recipe") else f" (recipe `{recipe}`)"
    rows += [["base 48, 2 blocks (for scale)", dict(shipped, base_channels=48, num_res_blocks=2)],
             ["base 64 (for scale)", dict(shipped, base_channels=64)]]
    return dict(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    schedule = NoiseSchedule.linear()
    models = {}
    for name, config in architectures().items():
        torch.manual_seed(0)
        models[name] = UNet(**config).eval()
        ddim_sample(models[name], schedule, (2, 1, 28, 28), num_steps=2, progress=False)       # warm-up
    seconds = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, model in models.items():
            x_T = torch.randn(args.n, 1, 28, 28, generator=torch.Generator().manual_seed(0))
            t0 = time.perf_counter()
            ddim_sample(model, schedule, x_T.shape, x_T=x_T, num_steps=args.steps, progress=False)
            seconds[name].append(time.perf_counter() - t0)
    base = statistics.median(next(iter(seconds.values())))                   # the shipped network's
    print(f"# {args.threads} torch threads, DDIM {args.steps} for {args.n} samples at 28x28, median of "
          f"{args.repeats}, load average {os.getloadavg()[0]:.1f}")
    print("| architecture | base, mults, res blocks, attention | parameters | float16 MB | seconds | vs shipped |")
    print("|---|---|---|---|---|---|")
    for name, model in models.items():
        c, n = model.config, sum(p.numel() for p in model.parameters())
        s = statistics.median(seconds[name])
        print(f"| {name} | {c['base_channels']}, {tuple(c['channel_mults'])}, {c['num_res_blocks']}, "
              f"{tuple(c['attention_levels'])} | {n / 1e6:.2f} M | {2 * n / 1e6:.1f} | {s:.1f} | {s / base:.2f}x |")


if __name__ == "__main__":
    main()
