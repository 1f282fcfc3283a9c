"""Classifier-free guidance sweep on `mnist-unet-cond`: scales 0, 1, 2, 3, 5, 8 (DDIM 50, same x_T for all).

For each scale: the share of samples classified as the class asked for by the held-out
`mnist-eval-classifier` (accuracy), its mean confidence, FID on the course metric (mnist-classifier
features, NOT Inception) against the MNIST test set, and a diversity figure: the mean pairwise distance
between the metric features of samples of the same class, divided by the same figure for real test images
(1.0 = as diverse as real digits of one class; lower = guidance collapses variety).

    python bench/bench_guidance.py [--n 200] [--scales 0 1 2 3 5 8] [--steps 50]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from course_utils import checkpoints, metrics
from mnist_references import References
from course_utils.samplers import ddim_sample


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mnist-unet-cond")
    parser.add_argument("--n", type=int, default=200, help="samples per scale, n/10 per class")
    parser.add_argument("--scales", type=float, nargs="+", default=[0, 1, 2, 3, 5, 8])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--grid-dir", default="artifacts")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, schedule, card = checkpoints.load(args.model)
    refs = References.load()
    real_spread = metrics.within_class_spread(refs.real_feats[:2000], refs.real_y[:2000].numpy())
    shape = (args.n, *card["image_shape"])
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(args.seed))
    y = torch.arange(args.n) % 10
    print(f"# {args.model}: n = {args.n} ({args.n // 10} per class), DDIM {args.steps} steps, seed {args.seed}, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    print(f"# real MNIST test images, within-class feature spread: {real_spread:.3f} (diversity 1.00)")
    print("| guidance scale | accuracy (held-out) | mean confidence | FID (course) | diversity | seconds |")
    print("|---|---|---|---|---|---|")
    for w in args.scales:
        t0 = time.perf_counter()
        x = ddim_sample(model, schedule, shape, num_steps=args.steps, x_T=x_T, y=y, guidance_scale=w, progress=False)
        seconds = time.perf_counter() - t0
        probs = metrics.predict_proba(x, refs.judge)
        accuracy = float((probs.argmax(-1) == y).float().mean())
        confidence = float(probs.max(-1).values.mean())
        feats = metrics.features(x, refs.feature_classifier)
        fid = metrics.fid_from_features(feats, refs.real_feats)
        diversity = metrics.within_class_spread(feats, y.numpy()) / real_spread
        print(f"| {w:g} | {accuracy:.3f} | {confidence:.3f} | {fid:.2f} | {diversity:.2f} | {seconds:.1f} |",
              flush=True)
        if args.grid_dir:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            from course_utils.viz import show_images
            os.makedirs(args.grid_dir, exist_ok=True)
            order = torch.argsort(y[:100], stable=True)
            show_images(x[:100][order], nrow=10, title=f"{args.model}: guidance scale {w:g}")
            plt.savefig(f"{args.grid_dir}/bench_guidance_w{w:g}.png", dpi=100)
            plt.close("all")


if __name__ == "__main__":
    sys.exit(main())
