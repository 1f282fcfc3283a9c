"""DDPM 1000 steps against DDIM 10/20/50/100 steps on a pretrained MNIST model: seconds and the course metric.

Every sampler starts from the same x_T (one seeded generator); DDPM draws its per-step noise from a second
seeded generator. The metric is FID/KID on the features of the course's `mnist-classifier` against the
10,000 MNIST test images (NOT comparable with Inception FID; FID is biased upwards at small n, so only
rows with the same n compare). "confident" is the share of samples that the held-out
`mnist-eval-classifier` classifies with probability > 0.9.

    python bench/bench_quality.py [--model mnist-unet] [--n 200] [--steps 10 20 50 100] [--no-ddpm]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from course_utils import checkpoints
from mnist_references import References
from course_utils.samplers import ddim_sample, ddpm_sample


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mnist-unet")
    parser.add_argument("--n", type=int, default=200, help="samples per sampler (same x_T for all)")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--no-ddpm", action="store_true", help="skip DDPM 1000 (about n * 1000 network calls)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--grid-dir", default="artifacts", help="where sample grids (PNG) go")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, schedule, card = checkpoints.load(args.model)
    refs = References.load()
    shape = (args.n, *card["image_shape"])
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(args.seed))
    y = None if card["num_classes"] is None else torch.arange(args.n) % 10
    runs = [("DDPM", 1000)] * (not args.no_ddpm) + [("DDIM", s) for s in args.steps]
    print(f"# {args.model}: n = {args.n}, seed {args.seed}, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| sampler | steps | seconds | FID (course) | KID (course) | confident > 0.9 |")
    print("|---|---|---|---|---|---|")
    results = {}
    for kind, steps in runs:
        t0 = time.perf_counter()
        if kind == "DDPM":
            x = ddpm_sample(model, schedule, shape, x_T=x_T, y=y, progress=False,
                            generator=torch.Generator().manual_seed(args.seed + 1))
        else:
            x = ddim_sample(model, schedule, shape, num_steps=steps, x_T=x_T, y=y, progress=False)
        seconds = time.perf_counter() - t0
        fid, kid, share, _ = refs.scores(x)
        results[(kind, steps)] = (seconds, fid)
        print(f"| {kind} | {steps} | {seconds:.1f} | {fid:.2f} | {kid:.4f} | {share:.3f} |", flush=True)
        if args.grid_dir:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            from course_utils.viz import show_images
            os.makedirs(args.grid_dir, exist_ok=True)
            show_images(x[:64], title=f"{args.model}: {kind} {steps} steps")
            plt.savefig(f"{args.grid_dir}/bench_quality_{args.model}_{kind}{steps}.png", dpi=100)
            plt.close("all")
    if ("DDPM", 1000) in results and ("DDIM", 50) in results:
        (t_ddpm, f_ddpm), (t_ddim, f_ddim) = results[("DDPM", 1000)], results[("DDIM", 50)]
        print(f"\nDDIM 50 vs DDPM 1000: FID {f_ddim:.2f} vs {f_ddpm:.2f} ({100 * (f_ddim / f_ddpm - 1):+.1f}%), "
              f"{t_ddpm / t_ddim:.1f}x less time")


if __name__ == "__main__":
    sys.exit(main())
