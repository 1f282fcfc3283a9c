"""Training throughput on this machine: our UNet vs diffusers' UNet2DModel at a matched parameter count.

One train step = forward + MSE loss + backward + AdamW step, batch 128 of 32x32x1 images, random timesteps.
For each model and each option (fp32; fp32 + channels_last; bf16 autocast; bf16 + channels_last) it reports
images/s (median over timed steps, warm-up steps excluded) and the achieved GFLOP/s, counted as
3 x the forward FLOPs (backward ~ 2 x forward) from torch.utils.flop_counter.FlopCounterMode.

    python bench/bench_train.py [--steps 6] [--warmup 2] [--batch 128] [--modes fp32 'fp32 + channels_last' ...]

On a CPU without native bfloat16 (AVX2 only) the bf16 modes are emulated and ~10x slower: give them
fewer steps, e.g. a second run with --modes 'bf16 autocast' --steps 2 --warmup 1.

Run it alone on the machine for figures that mean something; under other load (even niced) they drop.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from course_utils.nets import UNet, count_parameters
from course_utils.training import cpu_has_fast_bf16


class DiffusersUNet(nn.Module):
    """diffusers' UNet2DModel with our call convention model(xt, t) -> eps_pred, the same layout as ours:
    channels (32, 64, 64), one ResBlock per level, attention at 8x8, GroupNorm(8)."""

    def __init__(self):
        super().__init__()
        from diffusers import UNet2DModel

        self.net = UNet2DModel(sample_size=32, in_channels=1, out_channels=1, block_out_channels=(32, 64, 64),
                               layers_per_block=1, norm_num_groups=8,
                               down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                               up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"))

    def forward(self, xt, t):
        return self.net(xt, t).sample


def make_models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {"ours (course_utils.nets.UNet)": UNet(base_channels=32, channel_mults=(1, 2, 2), attention_levels=(2,)),
            "diffusers UNet2DModel": DiffusersUNet()}


def forward_flops_per_image(model: nn.Module, size: int = 32) -> float:
    x, t = torch.randn(8, 1, size, size), torch.randint(0, 1000, (8,))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, t)
    return counter.get_total_flops() / 8


def time_train_steps(model: nn.Module, *, batch: int, steps: int, warmup: int, bf16: bool, channels_last: bool):
    model = model.train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(batch, 1, 32, 32, generator=gen)
    if channels_last:
        x0 = x0.contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(warmup + steps):
        t = torch.randint(0, 1000, (batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            eps_pred = model(x0 + eps, t)                      # the content of x_t does not change the cost
            loss = F.mse_loss(eps_pred.float(), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times), times


def tcmalloc_loaded() -> bool:
    try:
        with open("/proc/self/maps") as f:
            return "tcmalloc" in f.read()
    except OSError:
        return False


def load_note() -> str:
    """The 1-minute load average against the core count: figures taken under load are not this machine's speed."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    warn = "  WARNING: the machine is busy, these figures understate its speed" if load > 0.75 * cores + 1 else ""
    return f"load average {load:.1f} on {cores} cores{warn}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (allocator, oneDNN kernels)")
    parser.add_argument("--batch", type=int, default=128)
    all_modes = {"fp32": dict(bf16=False, channels_last=False),
                 "fp32 + channels_last": dict(bf16=False, channels_last=True),
                 "bf16 autocast": dict(bf16=True, channels_last=False),
                 "bf16 + channels_last": dict(bf16=True, channels_last=True)}
    parser.add_argument("--modes", nargs="+", default=list(all_modes), choices=list(all_modes),
                        help="which of: 'fp32', 'fp32 + channels_last', 'bf16 autocast', 'bf16 + channels_last'")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, "
          f"nice {os.nice(0)}, tcmalloc {'loaded' if tcmalloc_loaded() else 'not loaded'}; {load_note()}")
    print(f"train step: forward + MSE + backward + AdamW, batch {args.batch}, 32x32x1; "
          f"{args.warmup} warm-up + {args.steps} timed steps (median)\n")
    models = make_models()
    flops = {}
    for name, model in models.items():
        flops[name] = forward_flops_per_image(model)
        print(f"{name}: {count_parameters(model):,} parameters, forward {flops[name] / 1e9:.3f} GFLOP per image")
    print()
    modes = {m: all_modes[m] for m in args.modes}
    print(f"native bf16 on this CPU (oneDNN): {cpu_has_fast_bf16()}; "
          f"TrainConfig(mixed_precision='auto') trains in {'bf16' if cpu_has_fast_bf16() else 'fp32'} here\n")
    results = {}
    print(f"{'model':32s} {'mode':22s} {'images/s':>9s} {'GFLOP/s':>9s}  step times (s)")
    for mode, opts in modes.items():
        for name in models:
            models_now = make_models()                    # fresh weights and optimizer for every configuration
            ips, times = time_train_steps(models_now[name], batch=args.batch, steps=args.steps, warmup=args.warmup,
                                          **opts)
            gflops = 3 * flops[name] * ips / 1e9
            results[(name, mode)] = ips
            print(f"{name:32s} {mode:22s} {ips:9.1f} {gflops:9.1f}  {' '.join(f'{s:.2f}' for s in times)}", flush=True)
    print()
    ours, theirs = list(models)
    for mode in modes:
        print(f"{mode:22s} ours / diffusers = {results[(ours, mode)] / results[(theirs, mode)]:.2f}x")
    if "fp32" in modes:
        for name in models:
            base = results[(name, "fp32")]
            print(f"{name}: " + ", ".join(f"{mode} {results[(name, mode)] / base:.2f}x"
                                          for mode in modes if mode != "fp32")
                  + " (relative to fp32)")
    print(f"at the end: {load_note()}")


if __name__ == "__main__":
    main()
