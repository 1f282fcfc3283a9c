"""Training: the loss goes down, the EMA warm-up, atomic checkpoints, and exact resumption."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from course_utils import training
from course_utils.data import load_images, make_toy
from course_utils.forward import q_sample
from course_utils.nets import MLPDenoiser, UNet
from course_utils.schedules import NoiseSchedule
from course_utils.training import EMA, TrainConfig, load_checkpoint, save_checkpoint, train


def test_loss_goes_down_on_toy_data():
    x, _ = make_toy("gaussian_mixture", 2000, seed=0)
    torch.manual_seed(0)
    model = MLPDenoiser(hidden_dim=64)
    state = train(model, NoiseSchedule.linear(), x, TrainConfig(steps=300, batch_size=128, lr=2e-3, log_every=30),
                  progress=False)
    losses = [loss for _, loss in state.history]
    assert len(losses) == 10 and state.step == 300
    # an untrained net predicts eps with an MSE near 1; the optimum for this data is far lower
    assert losses[0] > 0.6, losses
    assert losses[-1] < 0.6 * losses[0], losses
    assert not model.training, "train() returns the model in eval mode"


class _ZeroEps(nn.Module):
    """eps_theta = w x_t with w = 0 at the start: the first step's loss is that of predicting eps = 0."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x, t):
        return self.w * x


@pytest.mark.parametrize("noise_loss, expected", [("mse", 1.0), ("l1", math.sqrt(2 / math.pi))])
def test_train_uses_the_configured_noise_loss(noise_loss, expected):
    """Predicting eps = 0 costs E[eps^2] = 1 under L_simple and E|eps| = sqrt(2 / pi) = 0.798 under the L1 loss:
    the first logged loss (one step of 4,096 two-dimensional points) says which loss train() minimised
    (standard errors sqrt(2 / n) and sqrt((1 - 2 / pi) / n), n = 8,192: under 0.016)."""
    x, _ = make_toy("gaussian_mixture", 4096, seed=0)
    state = train(_ZeroEps(), NoiseSchedule.linear(), x,
                  TrainConfig(steps=1, batch_size=4096, noise_loss=noise_loss, log_every=1), progress=False)
    assert state.history[0][1] == pytest.approx(expected, abs=0.05), state.history


def test_diffusion_loss_draws_t_then_eps_from_the_generator():
    """The documented order (t ~ U{0..T-1}, then eps ~ N(0, I), both from ``generator``) is what makes the shipped
    cards' commands reproduce their weights: another order draws the same distribution and other numbers."""
    schedule, x0 = NoiseSchedule.linear(), torch.randn(16, 2, generator=torch.Generator().manual_seed(1))
    seen = {}

    def recording(xt, t):
        seen.update(xt=xt, t=t)
        return torch.zeros_like(xt)
    training.diffusion_loss(recording, schedule, x0, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    t = torch.randint(0, schedule.T, (16,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    assert torch.equal(seen["t"], t)
    assert torch.equal(seen["xt"], q_sample(x0, t, eps, schedule))


def test_train_warms_the_ema_up_from_its_first_step():
    """Inside train() the EMA's warm-up starts at step 0: the first update has d = min(0.999, 1 / 10) = 0.1, the
    second d = 2 / 11 (an update counted from 1 would give 2 / 11 and 3 / 12). test_ema_warmup_formula calls
    EMA.update by hand; this one sees the step train() passes it."""
    x, _ = make_toy("gaussian_mixture", 256, seed=0)
    model = _ZeroEps()
    weights = [float(model.w.detach())]                                             # the live weight after each step
    state = train(model, NoiseSchedule.linear(), x, TrainConfig(steps=2, batch_size=64, log_every=1, lr=0.1),
                  progress=False, callback=lambda state: weights.append(float(state.model.w.detach())))
    w0, w1, w2 = weights
    assert w1 != w0 and w2 != w1, weights
    ema2 = (2 / 11) * (0.1 * w0 + 0.9 * w1) + (9 / 11) * w2
    assert float(state.ema_model.w) == pytest.approx(ema2, rel=1e-5, abs=1e-7)


def test_ema_copies_buffers_as_they_are():
    """Buffers (a BatchNorm's running statistics, its batch count) are copied, not averaged: no course network
    has one, so only this test would see a loop over them that does nothing."""
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = EMA(model, decay=0.999)
    model.train()
    model(torch.randn(16, 2, generator=torch.Generator().manual_seed(0)) * 3 + 1)   # moves the running stats
    ema.update(model, 0)
    for name, buffer in model[1].named_buffers():
        assert torch.equal(dict(ema.model[1].named_buffers())[name], buffer), name
    assert ema.model[1].num_batches_tracked.item() == 1


def test_ema_warmup_formula():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.999)
    expected = 0.0
    with torch.no_grad():
        model.weight.fill_(1.0)
    for step in range(5):
        d = min(0.999, (1 + step) / (10 + step))                   # 0.1, 0.1818, 0.25, ... (warm-up)
        expected = d * expected + (1 - d) * 1.0
        ema.update(model, step)
        assert ema.model.weight.item() == pytest.approx(expected, rel=1e-6)
    assert ema.model.weight.item() == pytest.approx(1 - (1 / 10) * (2 / 11) * (3 / 12) * (4 / 13) * (5 / 14), rel=1e-6)
    # late in training the cap applies: the warm-up (1 + step) / (10 + step) = 0.99991 at step 100000 exceeds
    # decay = 0.999, so d = 0.999 (without the cap the EMA would move 9x less: 0.00009 instead of 0.001)
    before = ema.model.weight.item()
    with torch.no_grad():
        model.weight.fill_(-1.0)
    ema.update(model, 100000)
    assert ema.model.weight.item() == pytest.approx(0.999 * before + 0.001 * -1.0, rel=1e-6)
    assert not any(p.requires_grad for p in ema.model.parameters()), "the EMA copy is never trained"


def test_config_validation():
    with pytest.raises(ValueError,
                       match=r"mixed_precision must be one of \('none', 'bf16', 'fp16', 'auto'\), got 'fp8'"):
        TrainConfig(mixed_precision="fp8")
    with pytest.raises(ValueError, match=r"ema_decay must lie in \[0, 1\)"):
        TrainConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match=r"noise_loss must be one of \('mse', 'l1'\), got 'huber'"):
        TrainConfig(noise_loss="huber")
    with pytest.raises(ValueError, match="fp16 mixed precision needs CUDA"):
        training.autocast_dtype("fp16", torch.device("cpu"))
    assert training.autocast_dtype("bf16", torch.device("cpu")) == torch.bfloat16   # asked for: always
    assert training.autocast_dtype("none", torch.device("cpu")) is None


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_takes_bf16_only_where_the_cpu_computes_it(monkeypatch, native):
    """On an AVX2-only CPU oneDNN emulates bf16 (a train step ~10x slower than fp32): "auto" keeps fp32 there."""
    monkeypatch.setattr(training, "cpu_has_fast_bf16", lambda: native)
    assert training.autocast_dtype("auto", torch.device("cpu")) == (torch.bfloat16 if native else None)


def test_nan_loss_is_reported():
    x, _ = make_toy("moons", 64)
    bad_loss = lambda m, xb, yb, g: m(xb, torch.zeros(xb.shape[0], dtype=torch.long)).sum() * float("nan")  # noqa: E731
    with pytest.raises(FloatingPointError, match=r"the loss became nan at step 0; lower lr"):
        train(MLPDenoiser(hidden_dim=8), NoiseSchedule.linear(T=10), x, TrainConfig(steps=3, batch_size=8),
              loss_fn=bad_loss, progress=False)


def _make(kind: str):
    if kind == "mlp":
        return MLPDenoiser(hidden_dim=16, num_classes=2)
    return UNet(base_channels=8, channel_mults=(1, 2), attention_levels=(1,), dropout=0.3, num_classes=10)


def _data(kind: str):
    if kind == "mlp":
        return make_toy("moons", 256, seed=1)
    return load_images("digits", limit=64)


@pytest.mark.parametrize("kind", ["mlp", "unet-dropout"])
def test_resume_is_exact(tmp_path, kind):
    """N steps straight == N/2 steps, a checkpoint, a fresh process-like restart, N/2 more (bit for bit).

    The UNet has dropout > 0, so the global torch RNG (saved in the checkpoint) matters too; label dropout
    uses the training generator. log_every divides N/2, so the loss history lines up as well.
    """
    x, y = _data(kind)
    schedule = NoiseSchedule.linear(T=100)
    N = 8
    config = TrainConfig(steps=N, batch_size=16, lr=1e-3, log_every=2, ema_decay=0.9, label_dropout=0.2)

    torch.manual_seed(0)
    straight = train(_make(kind), schedule, x, config, y=y, progress=False)

    torch.manual_seed(0)
    path = tmp_path / "run.pt"
    half = TrainConfig(**{**config.__dict__, "steps": N // 2})
    first = train(_make(kind), schedule, x, half, y=y, checkpoint_path=path, progress=False)
    assert first.step == N // 2 and path.exists()
    torch.manual_seed(12345)                                 # a new process: different global RNG, different init
    resumed = train(_make(kind), schedule, x, config, y=y, checkpoint_path=path, progress=False)
    assert resumed.step == N

    for a, b in ((straight.model, resumed.model), (straight.ema_model, resumed.ema_model)):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(p, q), name
    opt_a, opt_b = straight.optimizer.state_dict(), resumed.optimizer.state_dict()
    for key, state in opt_a["state"].items():
        for field, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(opt_b["state"][key][field])), (key, field)
    assert [s for s, _ in straight.history] == [s for s, _ in resumed.history] == [2, 4, 6, 8]
    assert [v for _, v in straight.history] == [v for _, v in resumed.history]
    # the saved checkpoint (written at the end) holds the same as the live objects
    payload = torch.load(path, map_location="cpu", weights_only=False)
    assert payload["step"] == N and payload["model_config"] == resumed.model.config


def test_checkpoint_is_written_atomically(tmp_path, monkeypatch):
    model = MLPDenoiser(hidden_dim=8)
    ema = EMA(model, 0.9)
    opt = torch.optim.AdamW(model.parameters())
    path = tmp_path / "sub" / "ckpt.pt"
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(training.os, "replace", lambda src, dst: (replaced.append((src, dst)), real_replace(src, dst)))
    kwargs = dict(ema=ema, optimizer=opt, config=TrainConfig(), step=3, history=[(1, 0.5)], seconds=1.0, rng={})
    save_checkpoint(path, model, **kwargs)
    assert len(replaced) == 1 and Path(replaced[0][1]) == path
    assert Path(replaced[0][0]).parent == path.parent, "the temporary file must sit beside the target (same filesystem)"
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt.pt"], "no temporary file may be left"
    good = path.read_bytes()

    # a crash in the middle of writing: the old checkpoint stays intact, no partial file is left behind
    def crash(obj, f, *a, **k):
        Path(f).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(training.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, **kwargs)
    assert path.read_bytes() == good
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt.pt"]


def test_load_checkpoint_errors(tmp_path):
    model = MLPDenoiser(hidden_dim=8)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="cannot read checkpoint .*bad.pt"):
        load_checkpoint(bad, model)
    path = tmp_path / "ok.pt"
    save_checkpoint(path, model, ema=EMA(model, 0.9), optimizer=torch.optim.AdamW(model.parameters()),
                    config=TrainConfig(lr=1e-3), step=1, history=[], seconds=0.0, rng={})
    with pytest.raises(ValueError, match=r"another config; differences \(saved, now\): \{'lr': \(0.001, 0.0002\)\}"):
        load_checkpoint(path, model, config=TrainConfig(lr=2e-4))
    load_checkpoint(path, model, config=TrainConfig(lr=1e-3, steps=5))       # steps may differ (a longer run)


def test_a_checkpoint_written_before_a_config_field_existed_still_resumes(tmp_path):
    """Checkpoints written before lr_schedule, warmup_steps and decay_steps existed hold the defaults."""
    model = MLPDenoiser(hidden_dim=8)
    path = tmp_path / "old.pt"
    save_checkpoint(path, model, ema=EMA(model, 0.9), optimizer=torch.optim.AdamW(model.parameters()),
                    config=TrainConfig(lr=1e-3), step=1, history=[], seconds=0.0, rng={})
    payload = torch.load(path, weights_only=False)
    for key in ("lr_schedule", "warmup_steps", "decay_steps"):
        del payload["config"][key]
    torch.save(payload, path)
    load_checkpoint(path, model, config=TrainConfig(lr=1e-3))
    with pytest.raises(ValueError, match=r"differences \(saved, now\): \{'lr_schedule': \('constant', 'cosine'\)"):
        load_checkpoint(path, model, config=TrainConfig(lr=1e-3, lr_schedule="cosine", decay_steps=10))


def test_learning_rate_warm_up_then_half_a_cosine():
    config = TrainConfig(lr=1.0, lr_schedule="cosine", warmup_steps=4, decay_steps=12)
    lrs = [training.learning_rate(config, step) for step in range(14)]
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])           # (step + 1) / warmup_steps
    # after the warm-up: (1 + cos(pi (step - 4) / 8)) / 2: 1 at step 4, 1/2 halfway (step 8), 0 from step 12 on
    assert lrs[4:] == pytest.approx([(1 + math.cos(math.pi * k / 8)) / 2 for k in range(8)] + [0.0, 0.0])
    assert lrs[8] == pytest.approx(0.5)
    constant = TrainConfig(lr=2e-4)
    assert [training.learning_rate(constant, s) for s in (0, 10, 10 ** 6)] == [2e-4] * 3
    with pytest.raises(ValueError, match="a cosine lr_schedule needs decay_steps"):
        TrainConfig(lr_schedule="cosine", warmup_steps=10, decay_steps=10)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        TrainConfig(lr_schedule="step")


def test_train_follows_the_schedule_and_resumes_on_it(tmp_path):
    """The optimizer's lr at each step is learning_rate(config, step), also across a resume."""
    x, _ = make_toy("moons", 256, seed=1)
    config = TrainConfig(steps=6, batch_size=16, lr=1e-2, lr_schedule="cosine", warmup_steps=2, decay_steps=6,
                         log_every=1)
    seen = []
    torch.manual_seed(0)
    straight = train(MLPDenoiser(hidden_dim=8), NoiseSchedule.linear(T=10), x, config, progress=False,
                     callback=lambda state: seen.append(state.optimizer.param_groups[0]["lr"]))
    assert seen == pytest.approx([training.learning_rate(config, s) for s in range(6)])
    assert seen[-1] == pytest.approx(1e-2 * (1 + math.cos(math.pi * 3 / 4)) / 2)
    torch.manual_seed(0)
    path = tmp_path / "run.pt"
    train(MLPDenoiser(hidden_dim=8), NoiseSchedule.linear(T=10), x, TrainConfig(**{**config.__dict__, "steps": 3}),
          checkpoint_path=path, progress=False)
    resumed = train(MLPDenoiser(hidden_dim=8), NoiseSchedule.linear(T=10), x, config, checkpoint_path=path,
                    progress=False)
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)


def test_a_nan_inside_a_log_window_is_reported_at_its_step():
    """The host reads the losses once per log window; the error still names the first bad step."""
    x, _ = make_toy("moons", 64)
    calls = []

    def loss_fn(m, xb, yb, g):
        calls.append(1)
        loss = m(xb, torch.zeros(xb.shape[0], dtype=torch.long)).pow(2).mean()
        return loss * float("nan") if len(calls) == 4 else loss
    with pytest.raises(FloatingPointError, match=r"the loss became nan at step 3; lower lr"):
        train(MLPDenoiser(hidden_dim=8), NoiseSchedule.linear(T=10), x, TrainConfig(steps=20, batch_size=8,
              log_every=5), loss_fn=loss_fn, progress=False)
    assert len(calls) == 5, "stopped at the end of the window that held the bad step"


def test_a_compiled_network_trains_like_the_eager_one():
    """compile_model=True runs the loss through torch.compile(model); the weights, EMA and checkpoints stay the
    eager module's (no '_orig_mod.' names), and the losses agree with an eager run up to float rounding."""
    x, _ = make_toy("moons", 256, seed=1)
    config = TrainConfig(steps=4, batch_size=32, lr=1e-2, log_every=1)
    runs = []
    for compiled in (False, True):
        torch.manual_seed(0)
        runs.append(train(MLPDenoiser(hidden_dim=16), NoiseSchedule.linear(T=10), x, config, progress=False,
                          compile_model=compiled))
    eager, compiled = runs
    assert [v for _, v in compiled.history] == pytest.approx([v for _, v in eager.history], rel=1e-4)
    assert list(compiled.model.state_dict()) == list(eager.model.state_dict())
    assert not any(name.startswith("_orig_mod") for name in compiled.ema_model.state_dict())


def test_the_loss_draws_every_timestep_uniformly():
    """L_simple takes t ~ U{0, ..., T-1} in code indices (paper t = 1..T): t = 0, the last step of every sampler,
    is trained as often as any other (the mutation audit's randint(1, T) left it untrained, and nothing failed)."""
    seen = []

    def model(xt, t):
        seen.append(t)
        return torch.zeros_like(xt)
    x0 = torch.zeros(20_000, 2)
    training.diffusion_loss(model, NoiseSchedule.linear(T=4), x0, generator=torch.Generator().manual_seed(0))
    t = torch.cat(seen)
    share = torch.bincount(t, minlength=4).double() / t.numel()
    assert t.min() == 0 and t.max() == 3, (t.min(), t.max())
    assert torch.allclose(share, torch.full((4,), 0.25, dtype=torch.float64), atol=0.015), share     # SE 0.003


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_label_dropout_replaces_a_share_of_labels_by_the_null_class(dropout):
    """Classifier-free guidance trains the unconditional prediction on the null class -1 (UNet's extra embedding):
    a share ``label_dropout`` of the labels becomes -1, the others stay the example's own label (the audit's
    '>' for '<', 90% dropped, and 0 for -1, class 0 as the null class, both passed every test)."""
    y = torch.arange(1_000) % 9 + 1                 # labels 1..9, written into the example too
    x = y[:, None].float().repeat(1, 2)
    pairs = []

    def loss_fn(m, xb, yb, g):
        pairs.append((xb[:, 0].long(), yb))
        return m(xb, torch.zeros(xb.shape[0], dtype=torch.long)).pow(2).mean()
    train(MLPDenoiser(hidden_dim=8), NoiseSchedule.linear(T=10), x, TrainConfig(steps=50, batch_size=256,
          label_dropout=dropout), y=y, loss_fn=loss_fn, progress=False)
    own = torch.cat([p[0] for p in pairs])
    given = torch.cat([p[1] for p in pairs])
    dropped = given == -1
    assert torch.equal(given[~dropped], own[~dropped]), "a kept label is the example's own"
    assert set(given.unique().tolist()) <= set(range(1, 10)) | {-1}
    assert abs(dropped.double().mean().item() - dropout) < 0.015, dropped.double().mean()     # SE 0.0027


# ------------------------------------------------------------------ a student's wrong calls (the error audit)
def test_ema_checks_its_arguments():
    """EMA(0.999, model) said "'float' object has no attribute 'eval'"; EMA(model, 1.5) was accepted (TrainConfig
    refuses ema_decay=1.5)."""
    model = MLPDenoiser(hidden_dim=8)
    with pytest.raises(TypeError, match=r"^EMA\(model, decay\): model must be an nn\.Module, got float \(are the "
                                        r"arguments in this order\?\)"):
        EMA(0.999, model)
    for decay in (1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=rf"^EMA\(model, decay\): decay must lie in \[0, 1\) \(e\.g\. 0\.999\), "
                                             rf"got {decay}"):
            EMA(model, decay)
    assert EMA(model, 0.0).decay == 0.0 and EMA(model, 0).decay == 0
    for decay in (np.float32(0.99), torch.tensor(0.99)):      # TrainConfig takes them; EMA refused them (a review)
        assert EMA(model, decay).decay == pytest.approx(0.99) and isinstance(EMA(model, decay).decay, float)
    with pytest.raises(TypeError, match=r"decay must be a number in \[0, 1\) \(e\.g\. 0\.999\), got str"):
        EMA(model, "0.99")


def test_train_checks_its_arguments_before_moving_the_model(monkeypatch):
    """train(model, x, schedule, config) said "'NoiseSchedule' object has no attribute 'shape'" after moving the
    model; a step count for the config "'int' object has no attribute 'channels_last'"; a numpy x "... has no
    attribute 'to'"; device="cuda" without a GPU torch's "Found no NVIDIA driver" from 7 torch frames."""
    x, _ = make_toy("moons", 64, seed=0)
    schedule, config = NoiseSchedule.linear(T=10), TrainConfig(steps=2, batch_size=8)
    moved = []
    model = MLPDenoiser(hidden_dim=8)
    monkeypatch.setattr(model, "to", lambda *a, **k: moved.append(a) or model)
    call = r"^train\(model, schedule, x, config\): "
    with pytest.raises(TypeError, match=call + r"schedule must be a NoiseSchedule, got Tensor \(are the arguments "
                                               r"in this order\?\)"):
        train(model, x, schedule, config, progress=False)
    with pytest.raises(TypeError, match=call + r"config must be a TrainConfig, got int; e\.g\. "
                                               r"TrainConfig\(steps=100\)"):
        train(model, schedule, x, 100, progress=False)
    with pytest.raises(TypeError, match=call + r"x must be a torch\.Tensor of training data \(N, \.\.\.\), got ndarray "
                                               r"\(torch\.from_numpy\(x\)\.float\(\)\)"):
        train(model, schedule, x.double().numpy(), config, progress=False)
    with pytest.raises(TypeError, match=call + r"model must be an nn\.Module, got NoiseSchedule"):
        train(schedule, model, x, config, progress=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"device 'cuda' asked for, but torch\.cuda\.is_available\(\) is False"):
        train(model, schedule, x, config, device="cuda", progress=False)
    assert not moved, "the checks come before the model is moved"
