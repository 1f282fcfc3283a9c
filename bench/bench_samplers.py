"""DDIM, Heun and DPM-Solver++(2M) at equal network calls on a pretrained MNIST model: calls, seconds, quality.

Every run starts from the same x_T (one seeded generator). For each solver and each budget of network calls
(``--calls``), the solver takes the most steps that budget allows (Heun's N steps cost 2N - 1 calls, so it gets
5, 9, 19, 49 calls for budgets 5, 10, 20, 50) on the same time grid (``--spacing``, default "logsnr", see
``course_utils.solvers.solver_timesteps``); the table lists the calls actually made. Reference rows: DDIM 50 on
lesson 5's grid (``ddim_timesteps``, the README's "DDIM 50") and, with ``--ddpm``, DDPM 1000 (n * 1000 calls:
about 45 minutes for n = 300 on 2 idle cores, hours under load). Without ``--ddpm`` the JSON's DDPM 1000
reference is the README's run of ``bench/bench_quality.py --n 300`` (same x_T, same seed, same metric), with its
source named.

Quality: FID/KID on the features of the course's `mnist-classifier` against the 10,000 MNIST test images (NOT
comparable with Inception FID; biased upwards at small n, so only rows with the same n compare) and "confident":
the share of samples that the held-out `mnist-eval-classifier` classifies with probability > 0.9, with its
binomial standard error sqrt(p (1 - p) / n).

    python bench/bench_samplers.py [--n 300] [--calls 5 10 20 50] [--ddpm]
                                   [--json course_utils/checkpoints/runs/bench_samplers.json]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import sys
import time

import torch

from course_utils import checkpoints
from mnist_references import References
from course_utils.samplers import ddim_sample, ddpm_sample
from course_utils.solvers import SOLVERS, SPACINGS, network_calls, solve, solver_timesteps, steps_for_calls

# The README's DDPM 1000 row: `python bench/bench_quality.py --n 300 --threads 1` (mnist-unet, seed 0: the same
# x_T and the same DDPM noise generator as --ddpm here), measured on this project's 2-core CPU.
README_DDPM_1000 = dict(sampler="DDPM", steps=1000, calls=1000, seconds=2654.1, fid=6.76, kid=0.0108, confident=0.923,
                        source="the README's run of `python bench/bench_quality.py --n 300 --threads 1`, "
                               "same x_T and seed")
README_DDPM_RUN = ("mnist-unet", 300, 0)   # (model, n, seed) of that run: other runs get no DDPM reference


def quality(x, refs: References, n):
    fid, kid, share, counts = refs.scores(x)
    return dict(fid=round(fid, 3), kid=round(kid, 4), confident=round(share, 4),
                confident_se=round(math.sqrt(share * (1 - share) / n), 4), class_counts=counts.tolist())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mnist-unet")
    parser.add_argument("--n", type=int, default=300, help="samples per run (same x_T for all)")
    parser.add_argument("--calls", type=int, nargs="+", default=[5, 10, 20, 50], help="budgets of network calls")
    parser.add_argument("--solvers", nargs="+", default=list(SOLVERS), choices=SOLVERS)
    parser.add_argument("--spacing", default="logsnr", choices=SPACINGS,
                        help="time grid of the solvers (solver_timesteps)")
    parser.add_argument("--ddpm", action="store_true", help="also run DDPM 1000 (n * 1000 network calls)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None,
                        help="write the results here (lesson 7 reads course_utils/checkpoints/runs/"
                        "bench_samplers.json)")
    parser.add_argument("--grid-dir", default=None, help="where sample grids (PNG) go; none by default")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, schedule, card = checkpoints.load(args.model)
    refs = References.load()
    shape = (args.n, *card["image_shape"])
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(args.seed))
    header = (f"{args.model}: n = {args.n}, seed {args.seed}, grid {args.spacing!r}, torch threads "
              f"{torch.get_num_threads()}, load average at the start {os.getloadavg()[0]:.1f}")
    print("# " + header)
    print("| sampler | steps | network calls | seconds | FID (course) | KID (course) | confident > 0.9 (+- SE) |")
    print("|---|---|---|---|---|---|---|")
    runs = [("DDIM (lesson 5's grid)", 50)] + [(solver, calls) for calls in args.calls for solver in args.solvers]
    if args.ddpm:
        runs = [("DDPM", 1000)] + runs
    rows = []
    for name, budget in runs:
        t0 = time.perf_counter()
        if name == "DDPM":
            steps, calls = 1000, 1000
            x = ddpm_sample(model, schedule, shape, x_T=x_T, progress=False,
                            generator=torch.Generator().manual_seed(args.seed + 1))
        elif name.startswith("DDIM (lesson 5"):
            steps, calls = budget, budget
            x = ddim_sample(model, schedule, shape, num_steps=steps, x_T=x_T, progress=False)
        else:
            steps = steps_for_calls(name, budget)
            calls = network_calls(name, steps)
            x = solve(name, model, schedule, shape, num_steps=steps, spacing=args.spacing, x_T=x_T, progress=False)
        seconds = time.perf_counter() - t0
        row = dict(sampler=name, steps=steps, calls=calls, seconds=round(seconds, 1),
                   **quality(x, refs, args.n))
        rows.append(row)
        print(f"| {name} | {steps} | {calls} | {seconds:.1f} | {row['fid']:.2f} | {row['kid']:.4f} | "
              f"{row['confident']:.3f} +- {row['confident_se']:.3f} |", flush=True)
        if args.grid_dir:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            from course_utils.viz import show_images
            os.makedirs(args.grid_dir, exist_ok=True)
            show_images(x[:64], title=f"{args.model}: {name}, {calls} calls")
            plt.savefig(f"{args.grid_dir}/bench_samplers_{name.split()[0]}_{calls}.png", dpi=100)
            plt.close("all")
    reference = next(r for r in rows if r["sampler"].startswith("DDIM (lesson 5"))
    matches = {}
    for solver in args.solvers:
        good = [r["calls"] for r in rows if r["sampler"] == solver and r["fid"] <= 1.1 * reference["fid"]
                and r["confident"] >= reference["confident"] - 2 * reference["confident_se"]]
        matches[solver] = min(good) if good else None
        print(f"{solver}: fewest calls with FID within 10% of DDIM 50 (lesson 5's grid) and a confident share within "
              f"2 standard errors of it: {matches[solver] if good else 'none of ' + str(args.calls)}")
    if args.json:
        result = dict(
            header=header, command="python " + shlex.join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:])),
            model=args.model, n=args.n, seed=args.seed, spacing=args.spacing,
            grids={f"{s} {r['steps']}": solver_timesteps(schedule, r["steps"], spacing=args.spacing).tolist()
                   for r in rows for s in [r["sampler"]] if s in SOLVERS},
            machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
                    f"{torch.__version__}, {torch.get_num_threads()} threads, load average at the end "
                    f"{os.getloadavg()[0]:.1f}",
            rows=rows, fewest_calls_matching_ddim50=matches,
            # the README's DDPM 1000 run stands in only for a run on its x_T: the same model, n and seed
            ddpm_1000=next((r for r in rows if r["sampler"] == "DDPM"),
                           README_DDPM_1000 if (args.model, args.n, args.seed) == README_DDPM_RUN else None))
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
