"""Training a noise predictor with the simple loss of DDPM (Ho et al. 2020, Algorithm 1, Eq. 14):

    L_simple = E_{x0, t, eps} || eps - eps_theta(sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, t) ||^2

(or, with ``TrainConfig.noise_loss = "l1"``, its mean absolute error E|eps - eps_theta(x_t, t)|, the lab's loss)
with AdamW (a constant learning rate, or a linear warm-up then half a cosine to 0), gradient clipping, an
exponential moving average (EMA) of the weights, optional mixed precision, label dropout for classifier-free
guidance, a progress bar, a loss history, and atomic checkpoints that resume exactly (model, EMA, optimizer,
step, config and every random state).
"""
from __future__ import annotations

import copy
import math
import numbers
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from .progress import tqdm

from .device import get_device
from .forward import _check_args, q_sample
from .schedules import NoiseSchedule
from .settings import wrapped

PRECISIONS = ("none", "bf16", "fp16", "auto")
LR_SCHEDULES = ("constant", "cosine")
NOISE_LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss}     # TrainConfig.noise_loss -> the loss on eps


@dataclass
class TrainConfig:
    """One training run. ``steps`` optimizer steps on batches of ``batch_size`` examples."""

    steps: int = 1000
    batch_size: int = 128
    lr: float = 2e-4
    lr_schedule: str = "constant"     # "constant" or "cosine": lr * (1 + cos(pi * progress)) / 2 after the warm-up
    warmup_steps: int = 0             # linear warm-up: lr * (step + 1) / warmup_steps for the first steps
    decay_steps: int = 0              # cosine: the step at which the lr reaches 0 (the run's planned length)
    weight_decay: float = 0.0
    grad_clip: float = 1.0            # max global gradient norm; 0 disables clipping
    ema_decay: float = 0.999          # EMA decay, with warm-up min(ema_decay, (1 + step) / (10 + step))
    label_dropout: float = 0.1        # probability of replacing a label by the null class (-1), for CFG
    mixed_precision: str = "none"     # "none", "bf16", "fp16" (CUDA only) or "auto" (bf16 where it is fast)
    channels_last: bool = False       # memory format for images; faster convolutions on CPU (oneDNN)
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 0         # 0: only at the end (when a checkpoint path is given)
    noise_loss: str = "mse"           # "mse": L_simple (DDPM Eq. 14); "l1": E|eps - eps_theta|, the lab's loss

    def __str__(self) -> str:
        """The dataclass's repr, wrapped at spaces to ``settings.PRINT_WIDTH`` columns (``print(config)`` in a lesson:
        one 260-character line was cut mid-word by JupyterLab)."""
        return wrapped(repr(self), indent=" " * len("TrainConfig("))

    def __post_init__(self):
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {PRECISIONS}, got {self.mixed_precision!r}")
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError("steps must be >= 0 and batch_size >= 1")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")
        check_noise_loss(self.noise_loss)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.lr_schedule == "cosine" and self.decay_steps <= self.warmup_steps:
            raise ValueError(f"a cosine lr_schedule needs decay_steps (where the lr reaches 0) above warmup_steps "
                             f"({self.warmup_steps}), got {self.decay_steps}")


def learning_rate(config: TrainConfig, step: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based): a linear warm-up over ``warmup_steps``, then
    constant or half a cosine down to 0 at ``decay_steps`` (Loshchilov and Hutter 2017, without restarts)."""
    lr = config.lr * min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else config.lr
    if config.lr_schedule == "cosine" and step >= config.warmup_steps:
        progress = min(1.0, (step - config.warmup_steps) / (config.decay_steps - config.warmup_steps))
        lr *= 0.5 * (1 + math.cos(math.pi * progress))
    return lr


class EMA:
    """theta_ema <- d theta_ema + (1 - d) theta, with d = min(decay, (1 + step) / (10 + step)) (warm-up)."""

    def __init__(self, model: nn.Module, decay: float):
        if not isinstance(model, nn.Module):
            raise TypeError(f"EMA(model, decay): model must be an nn.Module, got {type(model).__name__} "
                            "(are the arguments in this order?)")
        if isinstance(decay, bool) or not isinstance(decay, (numbers.Real, Tensor)) or (
                isinstance(decay, Tensor) and decay.numel() != 1):
            raise TypeError(f"EMA(model, decay): decay must be a number in [0, 1) (e.g. 0.999), got "
                            f"{type(decay).__name__}")
        if not 0 <= float(decay) < 1:
            raise ValueError(f"EMA(model, decay): decay must lie in [0, 1) (e.g. 0.999), got {float(decay)!r}")
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        # one fused kernel per dtype and device instead of one per tensor (what a GPU waits on for a small net)
        torch._foreach_lerp_(list(self.model.parameters()), [p.detach() for p in model.parameters()], 1 - d)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)


@dataclass
class TrainState:
    """What ``train`` returns: the live model, its EMA copy and the loss history [(step, loss), ...]."""

    model: nn.Module
    ema_model: nn.Module
    optimizer: torch.optim.Optimizer
    step: int = 0
    history: list = field(default_factory=list)
    seconds: float = 0.0


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision choice on a device (None: full fp32)."""
    if precision == "none" or device.type == "mps":
        return None
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError("fp16 mixed precision needs CUDA; use 'bf16' on the CPU")
        return torch.float16
    if precision == "auto" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    if precision == "auto" and device.type == "cpu" and not cpu_has_fast_bf16():
        return None  # emulated bf16 (AVX2-only CPUs) is ~10x slower than fp32: bench/bench_train.py
    return torch.bfloat16


def cpu_has_fast_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX-512 BF16 or AMX), as oneDNN reports it.

    Without it (AVX2-only CPUs) oneDNN emulates bf16 and an autocast train step is about 10x slower than fp32.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def check_noise_loss(noise_loss: str) -> None:
    if noise_loss not in NOISE_LOSSES:
        raise ValueError(f"noise_loss must be one of {tuple(NOISE_LOSSES)}, got {noise_loss!r}")


def diffusion_loss(model: nn.Module, schedule: NoiseSchedule, x0: Tensor, *, t: Tensor | None = None,
                   eps: Tensor | None = None, y: Tensor | None = None,
                   generator: torch.Generator | None = None, noise_loss: str = "mse") -> Tensor:
    """L_simple on one batch x0 (B, ...): MSE(eps_theta(x_t, t), eps) with x_t = q_sample(x0, t, eps)
    (``noise_loss="l1"``: the mean absolute error instead).

    t (B,) int64 and eps (like x0) are drawn, t ~ U{0..T-1} then eps ~ N(0, I) from ``generator``, unless given
    (worksheet 4 writes this function for given t and eps, with this signature).
    """
    check_noise_loss(noise_loss)
    if t is None:
        t = torch.randint(0, schedule.T, (x0.shape[0],), device=x0.device, generator=generator)
    if eps is None:
        eps = torch.randn(x0.shape, device=x0.device, generator=generator)
    xt = q_sample(x0, t, eps, schedule)
    eps_pred = model(xt, t) if y is None else model(xt, t, y)
    return NOISE_LOSSES[noise_loss](eps_pred.float(), eps)


def train(model: nn.Module, schedule: NoiseSchedule, x: Tensor, config: TrainConfig, *, y: Tensor | None = None,
          device: torch.device | str = "cpu", checkpoint_path: str | Path | None = None, resume: bool = True,
          progress: bool = True, callback: Callable[[TrainState], None] | None = None,
          loss_fn: Callable | None = None, compile_model: bool = False) -> TrainState:
    """Train ``model`` on data ``x`` (N, ...) in [-1, 1] (labels ``y`` (N,) for a conditional model).

    Batches are drawn at random with a seeded generator, so a run resumed from its checkpoint takes the
    same batches, timesteps and noise as an uninterrupted one. ``callback(state)`` runs every ``log_every``
    steps (a live loss plot, say). ``loss_fn(model, x0, y, generator)`` replaces the diffusion loss
    (a noisy classifier, say). ``compile_model``: the loss calls ``torch.compile(model)`` (fused kernels: fewer
    launches for a small network on a GPU); the EMA, the optimizer and the checkpoints use ``model`` itself.
    """
    _check_train_args(model, schedule, x, config, y)
    device = get_device(device)                     # before moving anything: "cuda" without a GPU says so
    model.to(device)
    if config.channels_last and x.ndim == 4:
        model.to(memory_format=torch.channels_last)
    schedule = schedule.to(device)
    if y is not None and y.shape[0] != x.shape[0]:
        raise ValueError(f"x has {x.shape[0]} examples but y has {y.shape[0]} labels")
    # fused AdamW: one kernel for all parameters on CUDA (the for-each default elsewhere)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                  **(dict(fused=True) if device.type == "cuda" else {}))
    ema = EMA(model, config.ema_decay)
    state = TrainState(model=model, ema_model=ema.model, optimizer=optimizer)
    gen = torch.Generator(device=device).manual_seed(config.seed)      # t, eps, label dropout
    batch_gen = torch.Generator().manual_seed(config.seed + 1)         # which examples (on the CPU)
    if checkpoint_path is not None and resume and Path(checkpoint_path).exists():
        extra = load_checkpoint(checkpoint_path, model, ema=ema, optimizer=optimizer, config=config)
        state.step, state.history, state.seconds = extra["step"], extra["history"], extra["seconds"]
        gen.set_state(extra["rng"]["gen"]), batch_gen.set_state(extra["rng"]["batch_gen"])
        torch.set_rng_state(extra["rng"]["torch"])
    amp_dtype = autocast_dtype(config.mixed_precision, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    loss_fn = loss_fn or (lambda m, xb, yb, g: diffusion_loss(m, schedule, xb, y=yb, generator=g,
                                                              noise_loss=config.noise_loss))
    forward_model = torch.compile(model) if compile_model else model

    x_device = x.to(device)                        # once: a GPU then never waits for a batch from the host
    y_device = None if y is None else y.to(device)

    model.train()
    bar = tqdm(total=config.steps, initial=state.step, desc="training", disable=not progress)
    start, running = time.perf_counter() - state.seconds, []    # running: this log window's losses, on the device
    while state.step < config.steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, state.step)
        idx = torch.randint(0, x.shape[0], (config.batch_size,), generator=batch_gen).to(device)
        xb = x_device[idx].float()
        if config.channels_last and xb.ndim == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        yb = None
        if y is not None:
            yb = y_device[idx].long()
            if config.label_dropout > 0:
                drop = torch.rand(yb.shape, device=device, generator=gen) < config.label_dropout
                yb = torch.where(drop, torch.full_like(yb, -1), yb)   # -1 = the null class
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss = loss_fn(forward_model, xb, yb, gen)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        if scaler is not None:
            scaler.step(optimizer), scaler.update()
        else:
            optimizer.step()
        ema.update(model, state.step)
        state.step += 1
        running.append(loss.detach())
        bar.update(1)
        log = state.step % config.log_every == 0 or state.step == config.steps
        save = checkpoint_path is not None and (
            (config.checkpoint_every and state.step % config.checkpoint_every == 0) or state.step == config.steps)
        if log or save:         # the host reads the losses only here: one wait for the GPU per window, not per step
            losses = torch.stack(running).float().cpu()
            bad = (~torch.isfinite(losses)).nonzero()
            if len(bad):
                step = state.step - len(running) + int(bad[0])
                raise FloatingPointError(f"the loss became {losses[bad[0]].item()} at step {step}; lower lr "
                                         f"(now {config.lr}) or keep grad_clip > 0")
        if log:
            state.history.append((state.step, float(losses.double().mean())))
            running = []
            bar.set_postfix(loss=f"{state.history[-1][1]:.4f}")
            state.seconds = time.perf_counter() - start
            if callback is not None:
                callback(state)
        if save:
            state.seconds = time.perf_counter() - start
            save_checkpoint(checkpoint_path, model, ema=ema, optimizer=optimizer, config=config, step=state.step,
                            history=state.history, seconds=state.seconds,
                            rng=dict(gen=gen.get_state(), batch_gen=batch_gen.get_state(), torch=torch.get_rng_state()))
    bar.close()
    state.seconds = time.perf_counter() - start
    model.eval()
    return state


def _check_train_args(model, schedule, x, config, y) -> None:
    """train's arguments of the right kinds, before the model is moved: a TypeError that names the signature."""
    call = "train(model, schedule, x, config)"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{call}: model must be an nn.Module, got {type(model).__name__} "
                        "(are the arguments in this order?)")
    _check_args(call, schedule)
    if not isinstance(x, Tensor):
        hint = ("torch.from_numpy(x).float()" if type(x).__module__ == "numpy" else "are the arguments in this order?")
        raise TypeError(f"{call}: x must be a torch.Tensor of training data (N, ...), got {type(x).__name__} ({hint})")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"{call}: config must be a TrainConfig, got {type(config).__name__}; e.g. "
                        "TrainConfig(steps=100)")
    if y is not None and not isinstance(y, Tensor):
        raise TypeError(f"{call}: y must be a torch.Tensor of labels (N,), got {type(y).__name__}")


def save_checkpoint(path: str | Path, model: nn.Module, *, ema: EMA, optimizer: torch.optim.Optimizer,
                    config: TrainConfig, step: int, history: list, seconds: float, rng: dict) -> None:
    """Write model, EMA, optimizer, step, config and random states atomically: a temporary file, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(model=model.state_dict(), ema=ema.model.state_dict(), optimizer=optimizer.state_dict(),
                   config=asdict(config), step=step, history=history, seconds=seconds, rng=rng,
                   model_config=getattr(model, "config", None))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path: str | Path, model: nn.Module, *, ema: EMA | None = None,
                    optimizer: torch.optim.Optimizer | None = None, config: TrainConfig | None = None) -> dict:
    """Restore a checkpoint written by ``save_checkpoint`` into model (and EMA, optimizer); returns the rest."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - say which file and why
        raise RuntimeError(f"cannot read checkpoint {path}: {err}") from err
    if config is not None and payload["config"] != asdict(config):
        saved = dict(asdict(TrainConfig()), **payload["config"])   # fields added since it was written: defaults
        changed = {k: (saved[k], v) for k, v in asdict(config).items() if saved[k] != v and k != "steps"}
        if changed:
            raise ValueError(f"checkpoint {path} was written with another config; differences (saved, now): {changed}")
    model.load_state_dict(payload["model"])
    if ema is not None:
        ema.model.load_state_dict(payload["ema"])
    if optimizer is not None:
        optimizer.load_state_dict(payload["optimizer"])
    return payload
