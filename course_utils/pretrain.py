"""Train the course's pretrained models with the course's own ``train``, one command each:

    python -m course_utils.pretrain NAME [--recipe R] [--steps N | --minutes M] [--chunk N] [--fresh]
                                         [--eval-only | --no-eval] [--eval-samples N] [--device cuda] [--threads N]
                                         [--batch-size B] [--lr LR] [--ema-decay D] [--warmup-steps N]
                                         [--decay-steps N] [--compile] [--work-dir DIR] [--out-dir DIR]

(``--help`` says what each does.)

NAME is a key of ``CONFIGS``; ``--recipe`` picks one of its named variants (``RECIPES``: a wider network and
a GPU's training settings, say), which changes how the model is trained, not its name or how it is loaded.
The run keeps a resumable checkpoint in ``runs/pretrain/NAME.ckpt``
(model, EMA, optimizer, random states: an interrupted run continues exactly), then stores the EMA
weights in half precision in ``course_utils/checkpoints/NAME.pt`` and writes the model card
``NAME.json`` beside them (dataset, architecture, steps, batch, wall time, hardware, the command, metric
results, sha256). ``--minutes`` trains for a wall-time budget instead of a number of steps (in chunks of
``--chunk`` steps, each resumed from the checkpoint); the card then records the step count reached and
the ``--steps`` command that reproduces it. A recipe with a cosine learning-rate schedule needs the run's
length in advance: with ``--minutes`` it is measured on two chunks inside the warm-up (the steps per second,
restarts included) and fixed from there; the card's command then names it (``--decay-steps``).

Diffusion models use L_simple (DDPM Eq. 14; recipe ``gpu-wide-l1`` its mean absolute error,
``TrainConfig.noise_loss``); the classifiers use ``train``'s ``loss_fn`` hook with a cross-entropy, on
q_sample'd images at uniformly drawn t for the noisy classifier (Dhariwal and Nichol 2021, Sec. 4) and on
clean (shifted) images for the others.
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from . import checkpoints
from .data import load_images
from .device import get_device
from .forward import q_sample
from .training import TrainConfig, train

MNIST_SCHEDULE = dict(kind="linear", T=1000, beta_start=1e-4, beta_end=0.02)
MNIST_UNET = dict(in_channels=1, base_channels=32, channel_mults=(1, 2, 2), num_res_blocks=1, attention_levels=(2,))
FAST = dict(mixed_precision="auto", channels_last=True, grad_clip=1.0)  # auto: bf16 only where the CPU has it

# name -> what to train. "kind": diffusion | classifier | noisy-classifier.
CONFIGS: dict[str, dict] = {
    "digits-unet-cond": dict(
        kind="diffusion", dataset="digits", image_size=16, conditional=True,
        architecture=dict(cls="UNet", config=dict(in_channels=1, base_channels=32, channel_mults=(1, 2, 2),
                                                  num_res_blocks=1, attention_levels=(2,), num_classes=10)),
        schedule=dict(kind="linear", T=1000, beta_start=1e-4, beta_end=0.02),
        train=dict(steps=2000, batch_size=64, lr=1e-3, ema_decay=0.998, label_dropout=0.1, seed=0, **FAST)),
    "mnist-classifier": dict(
        kind="classifier", dataset="mnist", image_size=28, conditional=True, shift=2,
        architecture=dict(cls="NoisyClassifier", config=dict(in_channels=1, num_classes=10, base_channels=32,
                                                             time_conditioned=False, feature_dim=128)),
        schedule=None,
        train=dict(steps=1000, batch_size=64, lr=2e-3, ema_decay=0.99, label_dropout=0.0, seed=0, **FAST)),
    "mnist-eval-classifier": dict(  # held out: another width, seed and feature size; never used by the metric
        kind="classifier", dataset="mnist", image_size=28, conditional=True, shift=2,
        architecture=dict(cls="NoisyClassifier", config=dict(in_channels=1, num_classes=10, base_channels=48,
                                                             time_conditioned=False, feature_dim=96)),
        schedule=None,
        train=dict(steps=1000, batch_size=64, lr=2e-3, ema_decay=0.99, label_dropout=0.0, seed=1, **FAST)),
    "mnist-noisy-classifier": dict(
        kind="noisy-classifier", dataset="mnist", image_size=28, conditional=True, shift=0,
        architecture=dict(cls="NoisyClassifier", config=dict(in_channels=1, num_classes=10, base_channels=32,
                                                             time_conditioned=True, feature_dim=128)),
        schedule=MNIST_SCHEDULE,
        train=dict(steps=2000, batch_size=64, lr=1e-3, ema_decay=0.995, label_dropout=0.0, seed=0, **FAST)),
    "mnist-unet": dict(
        kind="diffusion", dataset="mnist", image_size=28, conditional=False,
        architecture=dict(cls="UNet", config=dict(MNIST_UNET, num_classes=None)),
        schedule=MNIST_SCHEDULE,
        train=dict(steps=3000, batch_size=64, lr=8e-4, ema_decay=0.999, label_dropout=0.0, seed=0, **FAST)),
    "mnist-unet-cond": dict(
        kind="diffusion", dataset="mnist", image_size=28, conditional=True,
        architecture=dict(cls="UNet", config=dict(MNIST_UNET, num_classes=10)),
        schedule=MNIST_SCHEDULE,
        train=dict(steps=3000, batch_size=64, lr=8e-4, ema_decay=0.999, label_dropout=0.1, seed=0, **FAST)),
}


MNIST_UNET_WIDE = dict(MNIST_UNET, base_channels=48)                      # 2.5 M parameters, 5.0 MB in float16
MNIST_UNET_DEEP = dict(MNIST_UNET, num_res_blocks=2)                      # 1.6 M parameters, 3.2 MB in float16
# a GPU run (issue 18): a larger batch, a warm-up and half a cosine to 0 over the run, a slower EMA
GPU = dict(batch_size=256, lr=1e-3, lr_schedule="cosine", warmup_steps=1000, decay_steps=40000, steps=40000,
           ema_decay=0.9995)

# a CPU run of the shipped network: the same width and batch, a warm-up and half a cosine to 0 over the run
CPU_COSINE = dict(lr_schedule="cosine", warmup_steps=500, decay_steps=15000, steps=15000)  # about an hour on 2 cores

MNIST_UNET_RECIPES = {"gpu-wide": dict(architecture=MNIST_UNET_WIDE, train=GPU),
                      "gpu-deep": dict(architecture=MNIST_UNET_DEEP, train=GPU),
                      # the wide run on the lab's loss, E|eps - eps_theta|: 7 points above L_simple in the lab's
                      # short runs from scratch (docs/lab_sweep.md 1b); on this network, in fine-tunes and a short
                      # run from scratch on the CPU, within the noise of it (docs/checkpoints.md, "Why ... short")
                      "gpu-wide-l1": dict(architecture=MNIST_UNET_WIDE, train=dict(GPU, noise_loss="l1")),
                      "cpu-cosine": dict(architecture={}, train=CPU_COSINE)}
# name -> recipe -> what changes: "architecture" (merged into the config's) and "train" (into its train dict).
RECIPES: dict[str, dict[str, dict]] = {"mnist-unet": MNIST_UNET_RECIPES, "mnist-unet-cond": MNIST_UNET_RECIPES}


def spec_for(name: str, recipe: str | None = None) -> dict:
    """CONFIGS[name] with recipe ``recipe`` of RECIPES[name] applied (None: the config as it is)."""
    spec = CONFIGS[name]
    if recipe is None:
        return spec
    if recipe not in RECIPES.get(name, {}):
        raise ValueError(f"{name} has no recipe {recipe!r}; its recipes: {sorted(RECIPES.get(name, {})) or 'none'}")
    change = RECIPES[name][recipe]
    architecture = dict(spec["architecture"], config=dict(spec["architecture"]["config"], **change["architecture"]))
    return dict(spec, architecture=architecture, train=dict(spec["train"], **change["train"]))


def hardware() -> dict:
    """Platform, CPU model, core and thread counts, torch version: what the card's wall time was measured on."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return dict(platform=platform.platform(), cpu=cpu, cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(),
                torch=torch.__version__, python=platform.python_version(), gpu=gpu,
                tcmalloc="tcmalloc" in os.environ.get("LD_PRELOAD", ""),
                load_average_1min_at_end=round(os.getloadavg()[0], 2))


def random_shift(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image (B, C, H, W) by a random whole number of pixels in [-pixels, pixels] (zero = -1 fill)."""
    if pixels == 0:
        return x
    B, _, H, W = x.shape
    padded = F.pad(x, (pixels,) * 4, value=-1.0)
    dx, dy = (torch.randint(0, 2 * pixels + 1, (2, B), generator=generator, device=x.device)).tolist()
    return torch.stack([padded[i, :, dy[i]:dy[i] + H, dx[i]:dx[i] + W] for i in range(B)])


def make_loss_fn(spec: dict, schedule):
    """``train``'s loss_fn(model, x0, y, generator) for a classifier, or None (the diffusion loss)."""
    if spec["kind"] == "diffusion":
        return None
    shift = spec.get("shift", 0)

    def loss_fn(model, x0, y, generator):
        x0 = random_shift(x0, shift, generator)
        if spec["kind"] == "classifier":
            return F.cross_entropy(model(x0).float(), y)
        t = torch.randint(0, schedule.T, (x0.shape[0],), device=x0.device, generator=generator)
        xt = q_sample(x0, t, torch.randn(x0.shape, device=x0.device, generator=generator), schedule)
        return F.cross_entropy(model(xt, t).float(), y)
    return loss_fn


def load_data(spec: dict, split: str = "train"):
    return load_images(spec["dataset"], split=split, image_size=spec["image_size"])


def run(name: str, *, steps: int | None = None, minutes: float | None = None, chunk: int = 100,
        work_dir: str | Path = "runs/pretrain", fresh: bool = False, evaluate_after: bool = True,
        out_dir: str | Path | None = None, command: str | None = None, threads: int | None = None,
        device: str | torch.device = "cpu", batch_size: int | None = None, lr: float | None = None,
        recipe: str | None = None, ema_decay: float | None = None, decay_steps: int | None = None,
        warmup_steps: int | None = None, eval_samples: int = 1000, compile_model: bool = False) -> dict:
    """Train ``name`` (see the module docstring) on ``device``, store its EMA weights and card; returns the card.

    ``recipe`` picks a named variant (``RECIPES``). ``batch_size``, ``ema_decay`` and ``warmup_steps`` override
    the recipe's (a GPU takes a larger batch at the same time per step). ``lr`` overrides the learning rate
    from the current step on: a cool-down of a resumed run. The phases (first step, lr) are kept in
    ``work_dir/NAME.phases.json`` so that the card's command reproduces them. ``decay_steps``: where a cosine
    schedule reaches 0 (default: the run's steps, or measured when ``minutes`` is given); a resumed run keeps
    the horizon it started with.
    ``compile_model``: ``torch.compile`` the network for the loss (falls back to eager code if compiling fails)."""
    spec = spec_for(name, recipe)
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True        # the fastest convolution algorithms for these fixed shapes
    if compile_model:
        torch._dynamo.config.suppress_errors = True  # a failed compile runs the eager code instead of stopping
    overrides = {k: v for k, v in dict(batch_size=batch_size, ema_decay=ema_decay,
                                       warmup_steps=warmup_steps).items() if v is not None}
    config = TrainConfig(**dict(spec["train"], **overrides), log_every=50)
    # the initial weights from the config's seed: torch seeds a new process at random, so without this the
    # card's command could not give the same weights (the models shipped so far started so)
    torch.manual_seed(config.seed)
    model = checkpoints.ARCHITECTURES[spec["architecture"]["cls"]](**spec["architecture"]["config"])
    schedule = checkpoints.build_schedule(spec["schedule"])
    x, y = load_data(spec)
    ckpt = Path(work_dir) / f"{name}.ckpt"
    if fresh and ckpt.exists():
        ckpt.unlink()
    target = steps if steps is not None else (10 ** 9 if minutes is not None else config.steps)
    deadline = time.time() + 60 * minutes if minutes is not None else float("inf")
    loss_fn = make_loss_fn(spec, schedule)
    state = None
    saved = torch.load(ckpt, map_location="cpu", weights_only=False) if ckpt.exists() else None
    done = saved["step"] if saved is not None else 0
    phases = _lr_phases(ckpt, saved, lr, config.lr)
    config.lr = phases[-1][1]       # the lr asked for, else the checkpoint's (maybe cooled-down), else the config's
    calibrate = False               # a cosine run of `minutes`: its length is measured during the warm-up
    if config.lr_schedule == "cosine":
        if saved is not None:
            horizon = saved["config"].get("decay_steps", config.decay_steps)
            if decay_steps is not None and decay_steps != horizon:
                raise ValueError(f"{ckpt} decays its lr to 0 at step {horizon}, not {decay_steps}; "
                                 "resume without --decay-steps, or start over with --fresh")
            config.decay_steps = horizon
        elif decay_steps is not None or steps is not None:
            config.decay_steps = decay_steps if decay_steps is not None else steps
        elif minutes is not None:
            if config.warmup_steps < 2:
                raise ValueError("a cosine schedule over --minutes measures the run's length during the warm-up: "
                                 "it needs warmup_steps >= 2 (or give --steps)")
            calibrate = True
        if steps is None and not calibrate:
            target = config.decay_steps               # past the horizon the lr is 0: nothing more to learn
        config.__post_init__()                        # a horizon inside the warm-up is refused here
    print(f"{name}{'' if recipe is None else f' (recipe {recipe})'}: {config}", flush=True)
    measured = []                   # (steps, wall seconds) of the chunks that measure a cosine run's length
    while True:  # chunks of `chunk` steps, each resumed exactly from the checkpoint; a run already past
        size = max(1, config.warmup_steps // 2) if calibrate else chunk        # the target is just restored
        config.steps = min(target, done + size) if done < target else done
        started = time.time()
        state = train(model, schedule if schedule is not None else _dummy_schedule(), x, config,
                      y=y if spec["conditional"] else None, checkpoint_path=ckpt, progress=False, loss_fn=loss_fn,
                      device=device, compile_model=compile_model)
        measured.append((state.step - done, time.time() - started))
        done = state.step
        loss = state.history[-1][1] if state.history else float("nan")
        print(f"{name}: step {done}, loss {loss:.4f}, {state.seconds:.0f} s, "
              f"{done * config.batch_size / max(state.seconds, 1e-9):.0f} images/s", flush=True)
        if calibrate and len(measured) == 2:    # the first chunk paid for start-up; the second is the pace
            pace = measured[1][0] / max(measured[1][1], 1e-9)
            config.decay_steps = target = max(done + int(0.98 * pace * max(0.0, deadline - time.time())),
                                              config.warmup_steps + 1)
            _set_saved_config(ckpt, decay_steps=config.decay_steps)
            calibrate = False
            print(f"{name}: {pace:.1f} steps/s; the cosine reaches 0 at step {config.decay_steps}", flush=True)
        if done >= target or time.time() >= deadline:
            break
    card = dict(
        dataset=dict(name=spec["dataset"], split="train", examples=int(x.shape[0]), image_size=spec["image_size"],
                     range="[-1, 1]"),
        image_shape=list(x.shape[1:]), num_classes=spec["architecture"]["config"].get("num_classes"),
        kind=spec["kind"], architecture=dict(**{"class": spec["architecture"]["cls"]}, config=model.config),
        parameters=sum(p.numel() for p in model.parameters()), schedule=spec["schedule"], recipe=recipe,
        steps=state.step, batch_size=config.batch_size, train_config=asdict(config), final_loss=state.history[-1][1],
        loss_history=state.history[:: max(1, len(state.history) // 50)],
        wall_time_s=round(state.seconds, 1), hardware=hardware(),
        command=reproducing_command(name, recipe, spec, config, phases, state.step, batch_size=batch_size,
                                    ema_decay=ema_decay, warmup_steps=warmup_steps,
                                    threads=torch.get_num_threads() if device.type == "cpu" else None),
        command_run=command or f"python -m course_utils.pretrain {name}",
        trained_at=time.strftime("%Y-%m-%d %H:%M:%S %Z"), metrics={})
    card = checkpoints.save(name, state.ema_model, card, directory=out_dir)
    print(f"{name}: saved {card['weights_file']} ({card['file_size_bytes'] / 1e6:.2f} MB), sha256 {card['sha256']}")
    if evaluate_after:
        card = evaluate_and_record(name, directory=out_dir, device=device, n=eval_samples)
    return card


def reproducing_command(name: str, recipe: str | None, spec: dict, config: TrainConfig, phases: list[list],
                        steps: int, *, batch_size: int | None = None, ema_decay: float | None = None,
                        warmup_steps: int | None = None, threads: int | None = None) -> str:
    """The commands, one per learning-rate phase, that train this run again step for step.

    ``threads``: the torch threads of a CPU run. They are part of the command because the weights depend on them:
    the same 30 steps of ``mnist-unet-cond --recipe cpu-cosine`` on 1 and on 2 threads gave two sha256s (the sums
    run in another order), while a run repeated on the same count gives its weights again bit for bit."""
    common = (("" if recipe is None else f" --recipe {recipe}")
              + ("" if batch_size is None else f" --batch-size {batch_size}")
              + ("" if ema_decay is None else f" --ema-decay {float(ema_decay)!r}")
              + ("" if warmup_steps is None else f" --warmup-steps {warmup_steps}")
              + ("" if threads is None else f" --threads {threads}"))
    parts = []
    for i, ((_, phase_lr), end) in enumerate(zip(phases, [p[0] for p in phases[1:]] + [steps])):
        horizon = (f" --decay-steps {config.decay_steps}"
                   if config.lr_schedule == "cosine" and config.decay_steps != end else "")
        parts.append(f"python -m course_utils.pretrain {name} --steps {end}{common}{horizon}"
                     + ("" if i == 0 and phase_lr == spec["train"]["lr"] else f" --lr {float(phase_lr)!r}"))
    return " && ".join(parts)


def _set_saved_config(ckpt: Path, **changes) -> None:
    """Rewrite fields of the config saved in the resumable checkpoint ``ckpt`` (so that it resumes with them)."""
    payload = torch.load(ckpt, map_location="cpu", weights_only=False)
    payload["config"].update(changes)
    torch.save(payload, ckpt)


def _lr_phases(ckpt: Path, payload: dict | None, lr: float | None, config_lr: float) -> list[list]:
    """The run's learning-rate phases [[first step, lr], ...], from ``ckpt``'s sidecar ``.phases.json``.

    ``payload`` is ``ckpt`` loaded (None for a new run). ``lr`` None keeps the checkpoint's lr (``config_lr``
    for a new run). When ``lr`` differs from the checkpoint's, the checkpoint is rewritten to continue with
    ``lr`` (its saved config and the optimizer's param groups) and a new phase starts at its step."""
    import json

    sidecar = ckpt.with_suffix(".phases.json")
    if payload is None:
        sidecar.unlink(missing_ok=True)
        phases = [[0, config_lr if lr is None else lr]]
    else:
        phases = json.loads(sidecar.read_text()) if sidecar.exists() else None
        step, saved_lr = payload["step"], payload["config"]["lr"]
        phases = phases or [[0, saved_lr]]
        if lr is not None and saved_lr != lr:
            print(f"{ckpt}: continuing at step {step} with lr {lr:g} (was {saved_lr:g})", flush=True)
            payload["config"]["lr"] = lr
            for group in payload["optimizer"]["param_groups"]:
                group["lr"] = lr
            torch.save(payload, ckpt)
            phases.append([step, lr])
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    sidecar.write_text(json.dumps(phases) + "\n")
    return phases


def _dummy_schedule():
    from .schedules import NoiseSchedule
    return NoiseSchedule.linear(T=10)  # unused by a clean classifier's loss_fn; train wants a schedule


def sample_batched(model, schedule, n: int, image_shape, *, sampler: str = "ddim", num_steps: int = 50,
                   y=None, guidance_scale: float = 1.0, seed: int = 0, batch_size: int = 250):
    """n samples (n, C, H, W) in batches from one seeded generator; DDIM (eta 0) or DDPM (``sampler="ddpm"``).

    x_T is drawn on the CPU, so DDIM gives the same samples on any device (up to float rounding)."""
    from .samplers import ddim_sample, ddpm_sample
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, n, batch_size):
        m = min(batch_size, n - i)
        x_T = torch.randn((m, *image_shape), generator=gen)
        yb = None if y is None else y[i:i + m]
        if sampler == "ddim":
            out.append(ddim_sample(model, schedule, x_T.shape, num_steps=num_steps, x_T=x_T, y=yb,
                                   guidance_scale=guidance_scale, progress=False))
        else:
            out.append(ddpm_sample(model, schedule, x_T.shape, x_T=x_T, y=yb, guidance_scale=guidance_scale,
                                   generator=gen, progress=False))
    return torch.cat(out).cpu()


def digits_reference_classifier():
    """A held-out classifier for 16x16 digits samples: scikit-learn's SVC on the 8x8 digits train split.

    Returns ``predict(images (N, 1, 16, 16) in [-1, 1]) -> (N,) labels``; images are area-averaged to 8x8.
    """
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC
    digits = load_digits()
    svc = SVC(gamma=0.001, C=10.0).fit(digits.data[:1500], digits.target[:1500])

    def predict(images):
        x8 = F.interpolate(images.float(), size=(8, 8), mode="area")
        return torch.as_tensor(svc.predict(((x8.clamp(-1, 1) + 1) * 8).reshape(len(x8), -1).numpy()))
    return predict


@torch.no_grad()
def evaluate(name: str, *, directory=None, n: int = 1000, seed: int = 0, device: str | torch.device = "cpu") -> dict:
    """The card's metrics. Classifiers: MNIST test accuracy (noisy classifier: at several t). Diffusion models:
    DDIM 50 samples (eta 0, seed ``seed``) judged by held-out classifiers, plus FID/KID on the course metric."""
    from . import metrics
    model, schedule, card = checkpoints.load(name, device, directory=directory)
    kind, out = card["kind"], {}
    if kind in ("classifier", "noisy-classifier"):
        x, y = load_images("mnist", split="test")
        if kind == "classifier":
            out["test_accuracy"] = metrics.class_accuracy(x, y, model)
        else:
            gen = torch.Generator().manual_seed(seed)
            for t_value in (0, 100, 250, 500, 750, 999):
                t = torch.full((len(x),), t_value, dtype=torch.long)
                xt = q_sample(x, t, torch.randn(x.shape, generator=gen), schedule)
                acc = (metrics.predict_proba(xt, model, t=t).argmax(-1) == y).float().mean()
                out[f"test_accuracy_t{t_value}"] = round(float(acc), 4)
        return out
    shape = tuple(card["image_shape"])
    t0 = time.perf_counter()
    if card["dataset"]["name"] == "digits":
        predict = digits_reference_classifier()
        xt, yt = load_images("digits", split="test", image_size=16)
        out["reference_svc_accuracy_on_real_test_digits"] = float((predict(xt) == yt).float().mean())
        n = 500
        y = torch.arange(n) % 10
        for guidance_scale in (1.0, 3.0):
            samples = sample_batched(model, schedule, n, shape, y=y, guidance_scale=guidance_scale, seed=seed)
            out[f"class_accuracy_ddim50_guidance{guidance_scale:g}"] = int((predict(samples) == y).sum()) / n
        out["evaluation"] = (f"{n} samples per guidance scale (50 per class), DDIM 50 steps eta 0, seed {seed}, "
                             "classified by an RBF SVC trained on scikit-learn digits' 8x8 train split")
        return out
    eval_clf = checkpoints.load("mnist-eval-classifier", device)[0]
    feat_clf = metrics.feature_classifier(device)
    real, real_y = load_images("mnist", split="test")
    real_feats = metrics.features(real, feat_clf)
    # the floor: n real training digits against the test set, the same count as the samples (FID is biased up
    # for small n, so samples are compared with real digits at equal n, not with 0)
    train_x, _ = load_images("mnist", split="train")
    floor_idx = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))[:n]
    out["fid_floor_real_train_vs_test"] = round(
        metrics.fid_from_features(metrics.features(train_x[floor_idx], feat_clf), real_feats), 3)
    y = None if card["num_classes"] is None else torch.arange(n) % 10
    guidance_scale = 1.0 if y is None else 3.0
    samples = sample_batched(model, schedule, n, shape, y=y, guidance_scale=guidance_scale, seed=seed)
    out["sampling_seconds"] = round(time.perf_counter() - t0, 1)
    feats = metrics.features(samples, feat_clf)
    out["fid_vs_mnist_test"] = round(metrics.fid_from_features(feats, real_feats), 3)
    out["kid_vs_mnist_test"] = round(metrics.kid_from_features(feats, real_feats)[0], 5)
    share, counts = metrics.confident_share(samples, eval_clf, 0.9)
    out["confident_share_0.9"] = share
    out["class_counts"] = counts.tolist()
    if y is None:                   # the same x_T with 20 steps: how much a shorter grid costs
        fast = sample_batched(model, schedule, n, shape, num_steps=20, seed=seed)
        out["confident_share_0.9_ddim20"] = metrics.confident_share(fast, eval_clf, 0.9)[0]
    else:
        real_spread = metrics.within_class_spread(real_feats[:2000], real_y[:2000].numpy())
        out["class_accuracy_guidance3"] = metrics.class_accuracy(samples, y, eval_clf)
        out["diversity_guidance3"] = round(metrics.within_class_spread(feats, y.numpy()) / real_spread, 3)
        plain = sample_batched(model, schedule, n, shape, y=y, guidance_scale=1.0, seed=seed)
        out["class_accuracy_guidance1"] = metrics.class_accuracy(plain, y, eval_clf)
        out["diversity_guidance1"] = round(
            metrics.within_class_spread(metrics.features(plain, feat_clf), y.numpy()) / real_spread, 3)
    out["samples"] = n
    out["evaluation"] = (f"{n} samples, DDIM 50 steps eta 0, seed {seed}" + (
        " (and DDIM 20 from the same x_T)" if y is None else
        f", {n // 10} per class, classifier-free guidance scale 3 (and 1, from the same x_T)") + "; held-out judge: "
        "mnist-eval-classifier; FID/KID on mnist-classifier features vs the 10,000 MNIST test images (not "
        f"comparable with Inception FID); floor: {n} random MNIST training digits vs the same; diversity: "
        "within-class feature spread / that of the first 2,000 test digits (bench/bench_guidance.py's measure)")
    return out


# FID of the mnist-unet shipped until issue 18, by number of samples (FID falls as n grows: compare at equal n);
# measured on the CPU with `python -m course_utils.pretrain mnist-unet --eval-only --eval-samples N`
SHIPPED_MNIST_UNET_FID = {1000: 3.944, 10000: 1.584}


def _fid_row(m: dict) -> tuple[str, str, bool]:
    """Issue 18's FID target: at most half the FID of the model shipped before it, at the same sample count."""
    n = m.get("samples", 1000)
    floor = f" (floor {m['fid_floor_real_train_vs_test']:.2f})" if "fid_floor_real_train_vs_test" in m else ""
    if n not in SHIPPED_MNIST_UNET_FID:
        return (f"course FID at most half the old model's at n = {n}", f"{m['fid_vs_mnist_test']:.2f}{floor}, "
                "no old figure at this n", False)
    limit = SHIPPED_MNIST_UNET_FID[n] / 2
    return (f"course FID at most {SHIPPED_MNIST_UNET_FID[n]:.2f} / 2 = {limit:.2f} (n = {n})",
            f"{m['fid_vs_mnist_test']:.2f}{floor}", m["fid_vs_mnist_test"] <= limit)


# Shares are counts over n samples. Cards written before 2026-12-06 hold float32 means (950 / 1000 as 0.949999988)
# and a difference of two shares carries a double's rounding (0.92 - 0.90 = 0.020000000000000018): the targets on
# shares are compared with this slack, far below one sample in any n up to 100,000.
SHARE_SLACK = 1e-6


def targets(card: dict) -> list[tuple[str, str, bool]]:
    """Issue 18's targets for the MNIST UNets, from a card's metrics: (target, measured, met) rows."""
    m, rows, slack = card["metrics"], [], SHARE_SLACK
    if card["name"] == "mnist-unet":
        counts = torch.tensor(m["class_counts"], dtype=torch.float64)
        shares = counts / counts.sum()
        rows += [(">= 95% of DDIM-50 samples confident > 0.9", f"{m['confident_share_0.9']:.1%}",
                  m["confident_share_0.9"] >= 0.95 - slack),
                 ("every class 7-13% of samples", f"{shares.min():.1%} to {shares.max():.1%}",
                  bool(shares.min() >= 0.07 - slack and shares.max() <= 0.13 + slack)),
                 _fid_row(m)]
        if "confident_share_0.9_ddim20" in m:
            gap = m["confident_share_0.9"] - m["confident_share_0.9_ddim20"]
            rows.append(("DDIM 20 within 2 points of DDIM 50", f"{m['confident_share_0.9_ddim20']:.1%} "
                         f"(DDIM 50 - DDIM 20 = {100 * gap:+.1f} points)", gap <= 0.02 + slack))
    elif card["name"] == "mnist-unet-cond":
        rows.append((">= 99% the asked class at w = 3", f"{m['class_accuracy_guidance3']:.1%}",
                     m["class_accuracy_guidance3"] >= 0.99 - slack))
        if "class_accuracy_guidance1" in m:
            rows += [(">= 95% the asked class at w = 1", f"{m['class_accuracy_guidance1']:.1%}",
                      m["class_accuracy_guidance1"] >= 0.95 - slack),
                     ("diversity at w = 1 >= 0.9 of real digits", f"{m['diversity_guidance1']:.2f}",
                      m["diversity_guidance1"] >= 0.9)]
    if card["name"] in ("mnist-unet", "mnist-unet-cond"):
        mb = card["file_size_bytes"] / 1e6
        rows.append(("<= 10 MB in float16", f"{mb:.2f} MB", mb <= 10))
    return rows


def evaluate_and_record(name: str, *, directory=None, device: str | torch.device = "cpu", n: int = 1000) -> dict:
    """Measure the model's metrics (``evaluate``) and write them into its card (weights untouched)."""
    import json

    directory = Path(directory) if directory is not None else checkpoints.CHECKPOINT_DIR
    metrics = evaluate(name, directory=directory, device=device, n=n)
    path = directory / f"{name}.json"
    card = json.loads(path.read_text())
    card["metrics"] = metrics
    path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"{name}: metrics {json.dumps(metrics)}")
    for target, measured, met in targets(card):
        print(f"{name}: {target}: {measured}: {'met' if met else 'NOT met'}")
    return card


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m course_utils.pretrain", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted(CONFIGS))
    parser.add_argument("--recipe", help="a named variant of the config (RECIPES), e.g. gpu-wide")
    parser.add_argument("--steps", type=int, help="train to this many steps (default: the config's)")
    parser.add_argument("--minutes", type=float, help="train for this wall time instead (resumable chunks)")
    parser.add_argument("--chunk", type=int, default=100, help="steps per resumable chunk (default 100)")
    parser.add_argument("--work-dir", default="runs/pretrain", help="where the resumable checkpoint lives")
    parser.add_argument("--out-dir", default=None, help="where NAME.pt/.json go (default: the package)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's; 1 is fastest on a busy CPU)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, ... (default auto: cuda when present)")
    parser.add_argument("--batch-size", type=int, help="override the config's batch size")
    parser.add_argument("--lr", type=float, help="override the learning rate from now on (a cool-down when resuming)")
    parser.add_argument("--ema-decay", type=float, help="override the EMA decay of the config (or recipe)")
    parser.add_argument("--warmup-steps", type=int, help="override the config's (or recipe's) lr warm-up")
    parser.add_argument("--eval-samples", type=int, default=1000,
                        help="samples per measurement of a diffusion model (default 1000, as on the cards)")
    parser.add_argument("--decay-steps", type=int,
                        help="cosine schedules: the step where the lr reaches 0 (default: --steps, or measured)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the network (fewer kernel launches on a GPU; the first steps compile)")
    parser.add_argument("--fresh", action="store_true", help="discard the resumable checkpoint and start over")
    parser.add_argument("--no-eval", action="store_true", help="skip the metrics after training")
    parser.add_argument("--eval-only", action="store_true", help="only measure the stored model, update its card")
    args = parser.parse_args(argv)
    device = get_device() if args.device == "auto" else torch.device(args.device)
    if args.eval_only:
        evaluate_and_record(args.name, directory=args.out_dir, device=device, n=args.eval_samples)
        return
    run(args.name, steps=args.steps, minutes=args.minutes, chunk=args.chunk, work_dir=args.work_dir,
        fresh=args.fresh, evaluate_after=not args.no_eval, out_dir=args.out_dir, threads=args.threads,
        device=device, batch_size=args.batch_size, lr=args.lr, recipe=args.recipe, ema_decay=args.ema_decay,
        decay_steps=args.decay_steps, warmup_steps=args.warmup_steps, eval_samples=args.eval_samples,
        compile_model=args.compile, command="python -m course_utils.pretrain " + shlex.join(argv))


if __name__ == "__main__":
    main()
