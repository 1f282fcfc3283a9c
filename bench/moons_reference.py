"""Worksheet 4's reference run: which settings make a small MLP draw two clean moons within its time budget?

Each config trains ``MLPDenoiser`` on ``make_toy("moons", 5000)`` with DDPM's L_simple (AdamW, batch 256, linear
schedule T = 1000), keeps an EMA with warm-up (``course_utils.training.EMA``), and samples 2,000 points with
``ddpm_sample`` (posterior variance) from the live and the EMA weights. A sample is "on the moons" when it lies
within 0.15 of the noise-free moons (standardised like the data); the data itself scores about 0.95.

    python bench/moons_reference.py [--configs ...] [--threads 1] [--png /tmp/moons.png]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn import datasets

from course_utils.data import make_toy
from course_utils.nets import MLPDenoiser
from course_utils.samplers import ddpm_sample
from course_utils.schedules import NoiseSchedule
from course_utils.training import EMA, diffusion_loss

CONFIGS = {   # name -> (hidden_dim, num_layers, lr, steps, ema_decay)
    "before (128x3, lr 1e-3, 3000)": (128, 3, 1e-3, 3000, 0.999),
    "128x3, lr 3e-3, 3000": (128, 3, 3e-3, 3000, 0.995),
    "256x3, lr 2e-3, 3000": (256, 3, 2e-3, 3000, 0.995),
    "256x4, lr 2e-3, 3000": (256, 4, 2e-3, 3000, 0.995),
    "128x3, lr 3e-3, 6000": (128, 3, 3e-3, 6000, 0.995),
    "256x4, lr 2e-3, 6000": (256, 4, 2e-3, 6000, 0.995),
    "256x5, lr 2e-3, 3000": (256, 5, 2e-3, 3000, 0.995),
    "256x5, lr 1e-3, 6000": (256, 5, 1e-3, 6000, 0.995),
}


def manifold() -> torch.Tensor:
    x, _ = datasets.make_moons(20000, noise=0.0, random_state=0)
    return torch.tensor((x - np.array([0.5, 0.25])) / np.array([0.87, 0.5]), dtype=torch.float32)


def on_moons(x: torch.Tensor, ref: torch.Tensor, radius: float = 0.15) -> float:
    return float((torch.cdist(x, ref).min(1).values < radius).float().mean())


def run(name, hidden, layers, lr, steps, decay, data, ref):
    schedule = NoiseSchedule.linear(T=1000)
    torch.manual_seed(0)
    model = MLPDenoiser(data_dim=2, hidden_dim=hidden, num_layers=layers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    ema = EMA(model, decay)
    start, losses = time.perf_counter(), []
    for step in range(steps):
        x0 = data[torch.randint(0, len(data), (256,))]
        loss = diffusion_loss(model, schedule, x0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ema.update(model, step)
        losses.append(loss.item())
    seconds = time.perf_counter() - start
    out = {}
    for label, net in [("live", model.eval()), ("EMA", ema.model)]:
        samples = ddpm_sample(net, schedule, (2000, 2), generator=torch.Generator().manual_seed(0), progress=False)
        out[label] = (on_moons(samples, ref), samples)
    last = losses[-100:]
    print(f"| {name} | {seconds:.0f} | {sum(last) / len(last):.3f} | {out['live'][0]:.3f} | {out['EMA'][0]:.3f} |",
          flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--png", default=None, help="save the EMA samples of every config in one figure")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data, ref = make_toy("moons", 5000)[0], manifold()
    print(f"data: on the moons {on_moons(data[:2000], ref):.3f}")
    print("| config | train s | loss (last 100) | live: on the moons | EMA: on the moons |\n|---|---|---|---|---|")
    results = {name: run(name, *CONFIGS[name], data, ref) for name in args.configs}
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results), 3.2))
        for ax, (name, out) in zip(np.atleast_1d(axes), results.items()):
            s = out["EMA"][1]
            ax.scatter(s[:, 0], s[:, 1], s=2)
            ax.set_title(f"{name}\nEMA {out['EMA'][0]:.2f}", fontsize=8)
            ax.set_xlim(-2.5, 2.5), ax.set_ylim(-2.5, 2.5)
        fig.savefig(args.png, dpi=80)


if __name__ == "__main__":
    raise SystemExit(main())
