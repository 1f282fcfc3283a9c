"""Where does the lab's reference run lose quality? Short timed runs of the lab's training, judged by the held-out
`mnist-eval-classifier`.

Each config trains the lab's model (the Keras example's step: continuous cosine schedule, `network(x, noise_rate**2)`,
mean absolute error on the noise, AdamW) on MNIST for a fixed number of WALL-CLOCK minutes (or of images seen,
--eval-images), keeping several EMAs of the weights at once (decay with the warm-up min(decay, (1 + step) /
(10 + step)), and the raw weights). At each
evaluation time it draws --n images with deterministic DDIM (--sampling-steps, the lab's `reverse_diffusion`) from
the same noise for every set of weights, and reports the judge's share of samples classified with confidence > 0.9
(`course_utils.metrics.confident_share`) and the number of digit classes among them. Evaluation time is not
counted as training time. Images smaller than 28x28 are resized to 28x28 for the judge.

    python bench/lab_sweep.py --configs base lr2e-3 ... --minutes 4 [--eval-at 2 4] [--n 200] [--threads 2]
    python bench/lab_sweep.py --configs NAME --minutes 15 --eval-at 5 10 15 --n 500
    python bench/lab_sweep.py --configs size16-base16-cosine1M --eval-images 1000000 --n 500 --amp   # by images

    python bench/lab_sweep.py --configs size16-base16-cosine1M size16-base16-m124-noattn-cosine1M --throughput 20

Prints one Markdown row per (config, evaluation time, weights); docs/lab_sweep.md holds the measured table.
``--throughput SECONDS`` trains nothing to the end: it times the training step of each config in turn (round
robin, in float32 and in bfloat16 autocast), so a load spike hits all alike, and prints images/s and the ratio to
the first config.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import time

import torch
import torch.nn.functional as F

from course_utils import checkpoints, metrics
from course_utils.data import load_images
from course_utils.nets import UNet, count_parameters
from course_utils.schedules import diffusion_schedule

# name -> changes to BASE; BASE is the lab's reference run before this sweep (issue 16)
BASE = dict(base=32, mults=(1, 2, 2), attn=(2,), lr=1e-3, warmup=0, batch=64, size=28, loss="l1",
            decay_minutes=None, decay_images=None)   # cosine decay of the lr to 0 over that many minutes or images
CONFIGS = {
    "base": {},
    "lr2e-3": dict(lr=2e-3),
    "lr2e-3-warm": dict(lr=2e-3, warmup=200),
    "lr3e-3-warm": dict(lr=3e-3, warmup=200),
    "batch32-lr2e-3": dict(lr=2e-3, warmup=200, batch=32),
    "batch128-lr2e-3": dict(lr=2e-3, warmup=200, batch=128),
    "base16": dict(base=16, lr=2e-3, warmup=200),
    "base16-batch128": dict(base=16, lr=2e-3, warmup=200, batch=128),
    "base48": dict(base=48, lr=2e-3, warmup=200),
    "no-attention": dict(lr=2e-3, warmup=200, attn=()),
    "mse": dict(lr=2e-3, warmup=200, loss="mse"),
    "size16": dict(lr=2e-3, warmup=200, size=16),
    "size16-base16": dict(lr=2e-3, warmup=200, size=16, base=16),     # the lab's MNIST reference run
    "size16-base16-lr1e-3": dict(lr=1e-3, size=16, base=16),
    "size16-base16-batch128": dict(lr=2e-3, warmup=200, size=16, base=16, batch=128),
    "two-levels": dict(lr=2e-3, warmup=200, mults=(1, 2), attn=(1,)),
    # the reference run's settings with the learning rate decayed to 0 along a cosine over 15 training minutes
    "size16-base16-cosine15": dict(lr=2e-3, warmup=200, size=16, base=16, decay_minutes=15.0),
    "size16-base16-lr3e-3-cosine15": dict(lr=3e-3, warmup=200, size=16, base=16, decay_minutes=15.0),
    "size16-base16-cosine60": dict(lr=2e-3, warmup=200, size=16, base=16, decay_minutes=60.0),
    # the lab's default since the run is counted in images: the cosine over 1 M training images
    "size16-base16-cosine1M": dict(lr=2e-3, warmup=200, size=16, base=16, decay_images=1_000_000),
    # attention and loss weighting, separated: the lab's settings decayed over 5 minutes, with one change each
    "size16-base16-cosine5": dict(lr=2e-3, warmup=200, size=16, base=16, decay_minutes=5.0),
    "size16-base16-cosine5-no-attention": dict(lr=2e-3, warmup=200, size=16, base=16, decay_minutes=5.0, attn=()),
    "size16-base16-cosine5-mse": dict(lr=2e-3, warmup=200, size=16, base=16, decay_minutes=5.0, loss="mse"),
    # the lab since 2026-12-04, a margin above its 85% bar: no attention (the Keras example's network has none) and
    # widths 16, 32, 64 (2.3x the parameters; 0.96x the images/s in bfloat16, 0.89x in float32: --throughput)
    "size16-base16-m124-noattn-cosine1M": dict(lr=2e-3, warmup=200, size=16, base=16, mults=(1, 2, 4), attn=(),
                                               decay_images=1_000_000),
    # the same with a constant learning rate after the warm-up: does the decay itself add points at 1 M images?
    "size16-base16-m124-noattn-const": dict(lr=2e-3, warmup=200, size=16, base=16, mults=(1, 2, 4), attn=()),
}
DECAYS = (0.995, 0.999)   # --decays replaces them


def build(cfg: dict, channels: int = 1) -> UNet:
    return UNet(in_channels=channels, base_channels=cfg["base"], channel_mults=tuple(cfg["mults"]),
                attention_levels=tuple(cfg["attn"]), time_scale=1000.0)


@torch.no_grad()
def reverse_diffusion(network, initial_noise: torch.Tensor, diffusion_steps: int) -> torch.Tensor:
    """The lab's deterministic DDIM: from t = 1 down in equal steps; returns the last predicted images."""
    n, step_size, x = initial_noise.shape[0], 1.0 / diffusion_steps, initial_noise
    for step in range(diffusion_steps):
        times = torch.ones(n, 1, 1, 1) - step * step_size
        noise_rates, signal_rates = diffusion_schedule(times)
        pred_noises = network(x, noise_rates ** 2)
        pred_images = (x - noise_rates * pred_noises) / signal_rates
        next_noise_rates, next_signal_rates = diffusion_schedule(times - step_size)
        x = next_signal_rates * pred_images + next_noise_rates * pred_noises
    return pred_images


def judge_samples(network, *, n, steps, size, mean, std, judge, seed=0, amp=False) -> tuple[float, int, torch.Tensor]:
    noise = torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(seed))
    network.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        images = torch.cat([reverse_diffusion(network, noise[i:i + 100], steps) for i in range(0, n, 100)]).float()
    images = (images * std + mean).clamp(-1, 1)
    if size != 28:
        images = F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False).clamp(-1, 1)
    share, counts = metrics.confident_share(images, judge)
    return share, int((counts > 0).sum()), images


def run(name: str, cfg: dict, *, eval_at: list[float], n: int, sampling_steps: list[int], seed: int,
        judge, save: str | None, decays=DECAYS, amp: bool = False, in_images: bool = False) -> list[dict]:
    """Train, judging at each of ``eval_at``: training minutes, or images seen when ``in_images``."""
    images, _ = load_images("mnist", image_size=None if cfg["size"] == 28 else cfg["size"])
    mean, std = images.mean(), images.std()
    torch.manual_seed(seed)
    network = build(cfg)
    emas = {d: copy.deepcopy(network).eval().requires_grad_(False) for d in decays}
    optimizer = torch.optim.AdamW(network.parameters(), lr=cfg["lr"], weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    rows, trained, step, losses, evals = [], 0.0, 0, [], sorted(eval_at)
    print(f"# {name}: {json.dumps(cfg)}; {count_parameters(network):,} parameters", flush=True)
    while evals:
        start = time.perf_counter()
        network.train()
        batch = (images[torch.randint(0, len(images), (cfg["batch"],), generator=generator)] - mean) / std
        noises = torch.randn_like(batch)
        times = torch.rand(batch.shape[0], 1, 1, 1)
        noise_rates, signal_rates = diffusion_schedule(times)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):    # the lab's autocast_dtype("auto")
            pred = network(signal_rates * batch + noise_rates * noises, noise_rates ** 2).float()
        loss = F.l1_loss(pred, noises) if cfg["loss"] == "l1" else F.mse_loss(pred, noises)
        lr = cfg["lr"] * min(1.0, (step + 1) / cfg["warmup"]) if cfg["warmup"] else cfg["lr"]
        if cfg["decay_minutes"]:                                  # lr * (1 + cos(pi * progress)) / 2, by wall clock
            lr *= 0.5 * (1 + math.cos(math.pi * min(1.0, trained / cfg["decay_minutes"])))
        elif cfg["decay_images"]:                                 # the same, by images seen (the lab's way)
            lr *= 0.5 * (1 + math.cos(math.pi * min(1.0, step * cfg["batch"] / cfg["decay_images"])))
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for decay, ema in emas.items():
                d = min(decay, (1 + step) / (10 + step))
                for pe, p in zip(ema.parameters(), network.parameters()):
                    pe.lerp_(p, 1 - d)
        losses.append(loss.item())
        step += 1
        trained += (time.perf_counter() - start) / 60
        if (step * cfg["batch"] if in_images else trained) >= evals[0]:
            evals.pop(0)
            loss_avg = sum(losses[-100:]) / len(losses[-100:])
            for label, net, k in [(w, m, k) for w, m in [("raw", network)] + [(f"ema {d}", e) for d, e in emas.items()]
                                  for k in sampling_steps]:
                t0 = time.perf_counter()
                share, classes, samples = judge_samples(net, n=n, steps=k, size=cfg["size"],
                                                        mean=mean, std=std, judge=judge, amp=amp)
                row = dict(config=name, minutes=round(trained, 2), steps=step, images_per_s=round(
                    step * cfg["batch"] / (trained * 60), 1), loss=round(loss_avg, 4), weights=label,
                    sampling_steps=k, share=round(share, 3), classes=classes,
                    sample_s=round(time.perf_counter() - t0, 1))
                rows.append(row)
                print("| " + " | ".join(str(v) for v in row.values()) + " |", flush=True)
                if save and label == f"ema {max(decays)}":
                    torch.save(samples[:64], f"{save}_{name}_{int(round(trained))}min.pt")
    return rows


def throughput(names: list[str], *, seconds: float, threads: int) -> list[dict]:
    """Images per second of each config's training step (random images: the time does not depend on them),
    timed round robin in rounds of 10 steps for about ``seconds`` per config and dtype; median of the rounds."""
    rows = []
    for amp in (False, True):
        nets = {}
        for name in names:
            cfg = dict(BASE, **CONFIGS[name])
            torch.manual_seed(0)
            net = build(cfg)
            nets[name] = (cfg, net, torch.optim.AdamW(net.parameters(), lr=1e-3))
        rates = {name: [] for name in names}

        def steps(cfg, net, optimizer, k):
            x = torch.randn(cfg["batch"], 1, cfg["size"], cfg["size"])
            for _ in range(k):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    loss = F.l1_loss(net(x, torch.rand(cfg["batch"], 1, 1, 1)).float(), x)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        for name in names:
            steps(*nets[name], 3)                                   # warm-up
        spent = 0.0
        while spent < seconds * len(names):
            for name in names:
                cfg, net, optimizer = nets[name]
                start = time.perf_counter()
                steps(cfg, net, optimizer, 10)
                elapsed = time.perf_counter() - start
                spent += elapsed
                rates[name].append(10 * cfg["batch"] / elapsed)
        first = sorted(rates[names[0]])[len(rates[names[0]]) // 2]
        for name in names:
            rate = sorted(rates[name])[len(rates[name]) // 2]
            rows.append(dict(config=name, dtype="bfloat16" if amp else "float32", threads=threads,
                             parameters=count_parameters(nets[name][1]), images_per_s=round(rate),
                             ratio=round(rate / first, 3), rounds=len(rates[name])))
            print("| " + " | ".join(str(v) for v in rows[-1].values()) + " |", flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["base"], choices=sorted(CONFIGS))
    parser.add_argument("--minutes", type=float, default=None,
                        help="training minutes per config (wall clock; default 4) when neither --eval-at nor "
                        "--eval-images is given (with them, the last evaluation ends the run)")
    parser.add_argument("--eval-at", type=float, nargs="*", default=None, help="minutes at which to judge")
    parser.add_argument("--n", type=int, default=200, help="samples judged per evaluation")
    parser.add_argument("--eval-images", type=int, nargs="*", default=None,
                        help="images seen at which to judge, instead of --eval-at (the last one ends the run)")
    parser.add_argument("--sampling-steps", type=int, nargs="+", default=[20], help="DDIM steps (each is judged)")
    parser.add_argument("--threads", type=int, default=1, help="1 on a shared machine: 2 OpenMP threads on "
                        "2 busy cores were 10x slower here (they spin at barriers)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="prefix of .pt files with 64 samples of the slowest EMA")
    parser.add_argument("--json", default=None, help="append the rows to this JSON-lines file")
    parser.add_argument("--decays", type=float, nargs="+", default=list(DECAYS), help="EMA decays kept at once")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast, as the lab on a CPU that has it")
    parser.add_argument("--throughput", type=float, default=None, metavar="SECONDS",
                        help="only time each config's training step, side by side, about this long per config")
    args = parser.parse_args(argv)
    evaluations = [flag for flag, value in [("--minutes", args.minutes), ("--eval-at", args.eval_at),
                                            ("--eval-images", args.eval_images)] if value]
    if len(evaluations) > 1:
        parser.error(f"{' and '.join(evaluations)} exclude each other: the last evaluation ends the run")
    torch.set_num_threads(args.threads)
    if args.throughput:
        print("| config | dtype | threads | parameters | images/s | ratio to the first | rounds of 10 steps |\n"
              "|---|---|---|---|---|---|---|", flush=True)
        throughput(args.configs, seconds=args.throughput, threads=args.threads)
        return 0
    judge = checkpoints.load("mnist-eval-classifier")[0]
    print("| config | train min | steps | images/s | loss (last 100) | weights | DDIM steps | confident share | "
          "classes | sampling s |\n|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for name in args.configs:
        cfg = dict(BASE, **CONFIGS[name])
        rows = run(name, cfg, eval_at=args.eval_images or args.eval_at or [args.minutes or 4.0],
                   n=args.n, sampling_steps=args.sampling_steps, seed=args.seed, judge=judge, save=args.save,
                   decays=tuple(args.decays), amp=args.amp, in_images=bool(args.eval_images))
        if args.json:
            with open(args.json, "a", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
