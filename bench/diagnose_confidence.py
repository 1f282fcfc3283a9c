"""Why `mnist-unet` falls short of "90% of DDIM-50 samples confidently classified": three checks in one run.

1. Is the judge trustworthy? The held-out `mnist-eval-classifier` on the 10,000 MNIST test digits: a
   temperature T fitted by NLL on the first half (T ~ 1 means calibrated, T < 1 under-confident), then on the
   second half the accuracy, the share with confidence > 0.9 and the expected calibration error (ECE,
   15 bins: sum over bins of (bin share) * |accuracy - mean confidence|).
2. Is it the DDIM time grid? DDIM 50 (eta 0, Song et al. Eq. 12) from the same x_T on four sub-sequences:
   "uniform" (the package's `ddim_timesteps`: 980, 960, ..., 0), "trailing" (999, 979, ..., 19),
   "linspace" (999 ... 0, rounded) and "quadratic" (DDIM paper D.2: (i * sqrt(0.8 T) / (S - 1))^2 for
   i = 0 .. S - 1, rounded down; the repeats this leaves near 0 are dropped: 49 steps for S = 50).
3. What do the failures look like? The lowest-confidence samples of the uniform grid are saved as a PNG.
   With ``--resumable CKPT`` (a `pretrain` working checkpoint) it also samples with the raw, non-EMA weights.
4. Is it the learning rate? With ``--anneal STEPS``: the shipped weights trained STEPS more steps of 64 (the
   card's loss and data, a fresh AdamW, 100 warm-up steps to ``--anneal-lr``, then half a cosine to 0 at STEPS,
   EMA 0.999, seed 0), then the card's evaluation (1,000 samples, DDIM 50 and 20, eta 0, seed 0) of the shipped
   and the annealed weights. ``--anneal-only`` skips 1-3. ``--anneal-loss l1`` trains with the mean absolute
   error on the noise, E|eps_theta(x_t, t) - eps|, instead of the card's L_simple (the lab's loss; its sweep
   scored it 7 points above the squared error, docs/lab_sweep.md section 1b). ``--from-scratch`` starts from
   the card's architecture with fresh weights (torch seed 0) instead of the shipped ones: the two losses
   compared on this network from the start, at a CPU's budget.

    python bench/diagnose_confidence.py [--n 300] [--resumable runs/pretrain/mnist-unet.ckpt]
    python bench/diagnose_confidence.py --anneal 3000 --anneal-only      # about 17 minutes on 2 cores
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from course_utils import checkpoints, metrics
from course_utils.data import load_images
from course_utils.samplers import ddim_sample, ddim_timesteps


def time_grids(T: int, S: int) -> dict[str, list[int]]:
    """Descending DDIM sub-sequences (each ends at or near t = 0; the last step goes to alpha_bar = 1)."""
    return {
        "uniform": ddim_timesteps(T, S).tolist(),
        "trailing": [int(t) for t in np.round(np.arange(T, 0, -T / S)).astype(np.int64) - 1],
        "linspace": [int(t) for t in np.linspace(0, T - 1, S).round().astype(np.int64)[::-1]],
        "quadratic": [int(t) for t in np.unique((np.linspace(0, np.sqrt(0.8 * T), S) ** 2).astype(np.int64))[::-1]],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="samples per time grid (same x_T for all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resumable", default=None, help="a pretrain working checkpoint: also sample raw weights")
    parser.add_argument("--grid-dir", default="artifacts")
    parser.add_argument("--anneal", type=int, default=0, help="4.: train the shipped weights this many steps more")
    parser.add_argument("--anneal-lr", type=float, default=2e-4, help="4.: the peak lr of the cosine (default 2e-4)")
    parser.add_argument("--anneal-only", action="store_true", help="run 4. only")
    parser.add_argument("--anneal-loss", choices=("mse", "l1"), default="mse",
                        help="4.: the noise loss (default mse: the card's L_simple; l1: mean absolute error)")
    parser.add_argument("--from-scratch", action="store_true",
                        help="4.: train fresh weights of the card's architecture, not the shipped ones")
    args = parser.parse_args(argv)
    judge = checkpoints.load("mnist-eval-classifier")[0]
    if not args.anneal_only:
        grids_and_judge(args, judge)
    if args.anneal:
        anneal(args.anneal, args.anneal_lr, judge, args.anneal_loss, args.from_scratch)


def anneal(steps: int, lr: float, judge, loss: str = "mse", from_scratch: bool = False) -> None:
    """4.: the shipped mnist-unet, trained ``steps`` more steps with a cosine lr from ``lr`` to 0 on ``loss``
    ("mse": the card's L_simple, "l1": the mean absolute error); the card's evaluation (1,000 samples,
    DDIM 50 and 20, seed 0) before and after. ``from_scratch``: fresh weights of the same network instead
    (only the trained ones are evaluated)."""
    from course_utils.pretrain import load_data, make_loss_fn, sample_batched, spec_for
    from course_utils.training import TrainConfig, train

    spec = spec_for("mnist-unet")
    model, schedule, card = checkpoints.load("mnist-unet")
    if from_scratch:
        torch.manual_seed(0)
        model = checkpoints.build_model(card)
    config = TrainConfig(**dict(spec["train"], steps=steps, lr=lr, lr_schedule="cosine", noise_loss=loss,
                                warmup_steps=min(100, steps // 2), decay_steps=steps, seed=0, log_every=50))
    x, _ = load_data(spec)
    start = time.perf_counter()
    state = train(model.train(), schedule, x, config, progress=False, loss_fn=make_loss_fn(spec, schedule))
    what = (f"mnist-unet's network from fresh weights, trained {steps}" if from_scratch else
            f"the shipped mnist-unet ({card['steps']} steps of {card['batch_size']}) trained {steps} more")
    print(f"4. {what} steps of {config.batch_size} on the {loss} noise loss, lr {lr:g} -> 0 (cosine), "
          f"EMA {config.ema_decay}: {time.perf_counter() - start:.0f} s, last logged loss {state.history[-1][1]:.4f}",
          flush=True)
    nets = [] if from_scratch else [("shipped", checkpoints.load("mnist-unet")[0])]
    for label, net in nets + [("trained" if from_scratch else "annealed", state.ema_model.float().eval())]:
        shares = [metrics.confident_share(sample_batched(net, schedule, 1000, tuple(card["image_shape"]),
                                                         num_steps=S, seed=0), judge)[0] for S in (50, 20)]
        print(f"   {label:<8} weights, 1,000 samples: confident {shares[0]:.3f} (DDIM 50), {shares[1]:.3f} "
              "(DDIM 20)", flush=True)


def grids_and_judge(args, judge) -> None:
    """1. to 3. (and the raw weights of ``--resumable``)."""

    x_test, y_test = load_images("mnist", split="test")
    logits = metrics.predict_logits(x_test, judge)
    first, second = slice(0, len(x_test) // 2), slice(len(x_test) // 2, None)
    T_fit = metrics.fit_temperature(logits[first], y_test[first])
    print(f"1. judge on the MNIST test digits: NLL-fitted temperature {T_fit:.2f} (1 = calibrated)")
    whole = metrics.calibration(logits.softmax(-1), y_test)
    print(f"   whole test set, T = 1: accuracy {whole['accuracy']:.4f}, confident (> 0.9) {whole['confident']:.3f}")
    for name, T in (("T = 1", 1.0), (f"T = {T_fit:.2f}", T_fit)):
        c = metrics.calibration((logits[second] / T).softmax(-1), y_test[second])
        print(f"   second half, {name}: accuracy {c['accuracy']:.4f}, confident {c['confident']:.3f}, "
              f"ECE {c['ece']:.4f}")

    model, schedule, card = checkpoints.load("mnist-unet")

    def sample(timesteps=None):  # DDIM 50 (or on ``timesteps``) from the shared x_T, 100 at a time
        return torch.cat([ddim_sample(model, schedule, x_T[i:i + 100].shape, x_T=x_T[i:i + 100], num_steps=50,
                                      timesteps=timesteps, progress=False) for i in range(0, args.n, 100)])

    x_T = torch.randn((args.n, *card["image_shape"]), generator=torch.Generator().manual_seed(args.seed))
    print(f"2. DDIM 50 on {args.n} samples of mnist-unet ({card['steps']} steps), same x_T, judged by "
          "mnist-eval-classifier")
    uniform = None
    for name, grid in time_grids(schedule.T, 50).items():
        start = time.perf_counter()
        x = sample(grid)
        share, counts = metrics.confident_share(x, judge)
        print(f"   {name:<9} {len(grid)} steps, t {grid[0]}..{grid[-1]}: confident {share:.3f}, "
              f"classes {counts.tolist()}  ({time.perf_counter() - start:.0f} s)", flush=True)
        uniform = x if uniform is None else uniform

    import torchvision.utils as vutils
    conf, order = metrics.predict_proba(uniform, judge).max(-1).values.sort()
    os.makedirs(args.grid_dir, exist_ok=True)
    path = os.path.join(args.grid_dir, "diagnose_lowest_confidence.png")
    k = min(40, len(order))
    vutils.save_image((uniform[order[:k]] + 1) / 2, path, nrow=10, pad_value=1)
    print(f"3. the {k} least confident uniform-grid samples "
          f"(confidence {float(conf[0]):.2f}..{float(conf[k - 1]):.2f}): {path}")

    if args.resumable:
        payload = torch.load(args.resumable, map_location="cpu", weights_only=False)
        for label, key in (("EMA", "ema"), ("raw", "model")):
            model.load_state_dict(payload[key])
            print(f"   {label} weights of {args.resumable} (step {payload['step']}): "
                  f"confident {metrics.confident_share(sample(), judge)[0]:.3f}", flush=True)


if __name__ == "__main__":
    main()
