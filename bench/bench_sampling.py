"""Sampling time on this machine: 64 images with DDIM 50 steps vs DDPM 1000 steps; fp32 vs bf16 autocast.

The network is the pretrained ``mnist-unet`` (28x28) when the package has it, else our base-32 UNet at 32x32
with random weights (the cost of a step does not depend on the weights). Everything runs under
torch.inference_mode except the one row that shows what inference mode buys over the samplers' own no_grad.

DDPM's 1000 steps would take minutes per configuration here, so by default DDPM is timed on
``--ddpm-steps`` steps (ddpm_sample on a schedule with that T: the same network call and update per step)
and extrapolated linearly to 1000 steps; the output says so. ``--ddpm-steps 1000`` times the real thing.

It also reports whether bf16 changes results: the max abs difference of eps_pred fp32 vs bf16 on a batch,
and of the DDIM samples drawn from the same x_T.

    python bench/bench_sampling.py [--ddpm-steps 50] [--n 64]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import time

import torch

from course_utils import checkpoints
from course_utils.nets import UNet, count_parameters
from course_utils.samplers import ddim_sample, ddpm_sample
from course_utils.schedules import NoiseSchedule


def get_model():
    if "mnist-unet" in checkpoints.available():
        model, schedule, card = checkpoints.load("mnist-unet", device="cpu")
        return model.float().eval(), schedule, tuple(card["image_shape"]), "pretrained mnist-unet"
    torch.manual_seed(0)
    model = UNet(base_channels=32, channel_mults=(1, 2, 2), attention_levels=(2,)).eval()
    return model, NoiseSchedule.linear(), (1, 32, 32), "UNet base 32, random weights (no pretrained mnist-unet yet)"


def timed(fn, *, bf16: bool, inference: bool = True):
    ctx_inf = torch.inference_mode() if inference else contextlib.nullcontext()
    ctx_amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    start = time.perf_counter()
    with ctx_inf, ctx_amp:
        out = fn()
    return time.perf_counter() - start, out.float()


def load_note() -> str:
    """The 1-minute load average against the core count: figures taken under load are not this machine's speed."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    warn = "  WARNING: the machine is busy, these figures understate its speed" if load > 0.75 * cores + 1 else ""
    return f"load average {load:.1f} on {cores} cores{warn}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="images per run")
    parser.add_argument("--ddpm-steps", type=int, default=50, help="DDPM steps actually timed (1000: no extrapolation)")
    args = parser.parse_args()

    model, schedule, image_shape, what = get_model()
    shape = (args.n, *image_shape)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, nice {os.nice(0)}; {load_note()}")
    print(f"model: {what}, {count_parameters(model):,} parameters; {args.n} images of {image_shape}\n")
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(0))

    # warm-up (oneDNN kernel selection, allocator) on a few steps, both precisions
    for bf16 in (False, True):
        timed(lambda: ddim_sample(model, schedule, shape, num_steps=2, x_T=x_T, progress=False), bf16=bf16)

    rows, samples = [], {}

    def ddim(bf16, inference=True, channels_last=False):
        m = model.to(memory_format=torch.channels_last) if channels_last else model
        xT = x_T.contiguous(memory_format=torch.channels_last) if channels_last else x_T
        seconds, out = timed(lambda: ddim_sample(m, schedule, shape, num_steps=50, x_T=xT, progress=False),
                             bf16=bf16, inference=inference)
        model.to(memory_format=torch.contiguous_format)
        return seconds, out

    for label, kw in [("DDIM 50, fp32, no_grad only", dict(bf16=False, inference=False)),
                      ("DDIM 50, fp32", dict(bf16=False)),
                      ("DDIM 50, bf16 autocast", dict(bf16=True)),
                      ("DDIM 50, bf16 + channels_last", dict(bf16=True, channels_last=True))]:
        seconds, out = ddim(**kw)
        samples[label] = out
        rows.append((label, seconds, 50))
        print(f"{label:34s} {seconds:8.1f} s  ({seconds / 50 * 1000:.0f} ms/step)", flush=True)

    k = args.ddpm_steps
    short = NoiseSchedule.linear(T=k) if k != schedule.T else schedule
    for bf16 in (False, True):
        label = f"DDPM 1000, {'bf16 autocast' if bf16 else 'fp32'}"
        seconds, _ = timed(lambda: ddpm_sample(model, short, shape, x_T=x_T, progress=False,
                                               generator=torch.Generator().manual_seed(1)), bf16=bf16)
        total = seconds * 1000 / k
        note = "" if k == 1000 else f"  EXTRAPOLATED: {k} steps timed ({seconds:.1f} s) x {1000 / k:g}"
        rows.append((label, total, 1000))
        print(f"{label:34s} {total:8.1f} s  ({seconds / k * 1000:.0f} ms/step){note}", flush=True)

    t = dict((r[0], r[1]) for r in rows)
    print(f"\nDDPM 1000 / DDIM 50: fp32 {t['DDPM 1000, fp32'] / t['DDIM 50, fp32']:.1f}x, "
          f"bf16 {t['DDPM 1000, bf16 autocast'] / t['DDIM 50, bf16 autocast']:.1f}x")
    print(f"bf16 autocast speed-up: DDIM {t['DDIM 50, fp32'] / t['DDIM 50, bf16 autocast']:.2f}x, "
          f"DDPM {t['DDPM 1000, fp32'] / t['DDPM 1000, bf16 autocast']:.2f}x; channels_last on top: "
          f"{t['DDIM 50, bf16 autocast'] / t['DDIM 50, bf16 + channels_last']:.2f}x; inference_mode over no_grad: "
          f"{t['DDIM 50, fp32, no_grad only'] / t['DDIM 50, fp32']:.2f}x")

    # does bf16 change results?
    xt = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    tt = torch.randint(0, schedule.T, (args.n,), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        eps32 = model(xt, tt)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            eps16 = model(xt, tt).float()
    diff = (eps32 - eps16).abs()
    print(f"\neps_pred fp32 vs bf16 on a batch of {args.n}: max abs diff {diff.max():.4f}, mean {diff.mean():.5f} "
          f"(eps_pred std {eps32.std():.3f})")
    d = (samples["DDIM 50, fp32"] - samples["DDIM 50, bf16 autocast"]).abs()
    print(f"DDIM 50 samples fp32 vs bf16 from the same x_T: max abs diff {d.max():.4f}, mean {d.mean():.5f} "
          f"(pixel range [-1, 1])")
    d2 = (samples["DDIM 50, fp32"] - samples["DDIM 50, fp32, no_grad only"]).abs().max()
    print(f"inference_mode vs no_grad: max abs diff {d2:.2e}")
    print(f"at the end: {load_note()}")


if __name__ == "__main__":
    main()
