# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-01", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Worksheet 4: training a noise predictor
#
# Companion of lesson 4 (`notebooks/04_training.ipynb`). Two functions and a class:
#
# 1. `diffusion_loss`: the simple loss of DDPM on one batch, for given timesteps and noise;
# 2. `training_step`: one optimizer step with it;
# 3. `EMA`: an exponential moving average of the network's weights, with a warm-up.
#
# Then you train a small network on 2-D points with your `training_step` and your `EMA`, sample from it, and
# find out what goes wrong without the warm-up.
#
# **How a worksheet works.** Each exercise is a function with its docstring and a `# YOUR CODE HERE` to replace.
# Run the check cell right after it: it prints its verdict, ✅ when your function agrees with the course's
# reference on small fixed inputs, ❌ with what is wrong and a hint, or ⏳ while the function still raises
# `NotImplementedError` (the TODO as given). Cells further down that need your function say they are skipped
# until it passes. Your instructor may run more (hidden) tests when grading.

# %%
# Course set-up (the same cell opens every notebook; written by `make generated`).
import importlib.util

if importlib.util.find_spec("course_utils") is None:
    raise ModuleNotFoundError(
        "This kernel cannot import the course package `course_utils`. In the course folder, run "
        "`make lab` (it installs everything and opens JupyterLab with the right kernel), or install the "
        "folder into this kernel's Python with `pip install -e PATH/TO/THE/COURSE`. On Colab, upload the "
        "course folder, run `%pip install -e /content/FOLDER`, then restart the runtime.")

# %%
import copy

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from course_utils import checks
from course_utils.checks import check_diffusion_loss, check_EMA, check_training_step, run_check
from course_utils.data import make_toy
from course_utils.forward import q_sample
from course_utils.nets import MLPDenoiser
from course_utils.progress import tqdm
from course_utils.samplers import ddpm_sample
from course_utils.schedules import NoiseSchedule
from course_utils.settings import pick
from course_utils.viz import plot_loss, plot_points

_ = torch.manual_seed(0)          # the same random numbers on every run


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-04", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 1. The loss
#
# DDPM's Algorithm 1 trains $\epsilon_\theta$ to recover the noise that made $x_t$ (Ho et al. Eq. 14):
#
# $$L_\text{simple} = \big\|\epsilon - \epsilon_\theta\big(\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t\big)\big\|^2,$$
#
# averaged over the batch and the dimensions (`F.mse_loss`). Here `t` (int64, (B,)) and `eps` (like `x0`) are
# given, as keywords, so the loss is deterministic; `q_sample(x0, t, eps, schedule)` from `course_utils.forward`
# computes $x_t$ (worksheet 2's function, in this order). Call
# the model as `model(xt, t)`. Return the loss **tensor** (the training step calls `backward` on it). This is the
# signature of the package's `course_utils.training.diffusion_loss`, which draws `t` and `eps` itself when they
# are left out. The check tries a batch of 2-D points and a batch of one-channel images, so write it for any
# shape (B, ...).

# %% nbgrader={"grade": false, "grade_id": "diffusion_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def diffusion_loss(model, schedule, x0, *, t, eps):
    """MSE between eps and model(x_t, t), x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps; a scalar tensor."""
    ### BEGIN SOLUTION
    xt = q_sample(x0, t, eps, schedule)            # (B, ...)
    return F.mse_loss(model(xt, t), eps)
    ### END SOLUTION


# %% course={"check": "diffusion_loss", "target": "diffusion_loss"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_diffusion_loss", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_diffusion_loss(diffusion_loss)
### BEGIN HIDDEN TESTS
assert run_check("diffusion_loss", diffusion_loss, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-05", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 2. One training step
#
# The usual PyTorch pattern: clear the old gradients, compute the loss, backpropagate, update.
# Return the loss as a Python float (`loss.item()`), for the loss curve.

# %% nbgrader={"grade": false, "grade_id": "training_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def training_step(model, optimizer, x0, t, eps, schedule):
    """One optimizer step on diffusion_loss for this batch; returns the loss (a float)."""
    ### BEGIN SOLUTION
    optimizer.zero_grad()
    loss = diffusion_loss(model, schedule, x0, t=t, eps=eps)
    loss.backward()
    optimizer.step()
    return loss.item()
    ### END SOLUTION


# %% course={"check": "training_step", "target": "training_step"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_training_step", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_training_step(training_step)
### BEGIN HIDDEN TESTS
assert run_check("training_step", training_step, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-ema", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 3. An average of the weights (EMA)
#
# Diffusion models are sampled with an **exponential moving average** of the weights, not with the last weights
# of training: the average smooths out the noise of the last optimizer steps (Ho et al. 2020 use a decay of
# 0.9999). After the optimizer step number $k$ (0, 1, 2, ...), every parameter of the averaged copy moves towards
# the live network's:
#
# $$\theta_\text{EMA} \leftarrow d_k\,\theta_\text{EMA} + (1 - d_k)\,\theta, \qquad
# d_k = \min\Big(d,\ \frac{1 + k}{10 + k}\Big).$$
#
# The second formula is the **warm-up**: the decay starts at 0.1 and only later reaches `decay` $= d$, so that early
# on the average follows the network quickly (section 5 shows why).
#
# - `EMA(model, decay)` keeps an independent copy of the network in `self.model`, starting from the same
#   weights. Nothing may train it (the optimizer only sees `model.parameters()`), and its parameters must not require
#   gradients (`requires_grad_(False)`): autograd has nothing to track there.
# - `update(model, step)` moves every parameter of `self.model` as above. It must not change the live `model`.
#
# The check builds a small network, sets the live weights itself before each of a few updates (from step 0 with
# decays 0.999 and 0.9; from step 20 with decay 0.5, where the warm-up (1 + 20)/(10 + 20) = 0.7 is already
# larger than the decay, so the `min` matters; and from step 50 with decay 0.999, where the warm-up 51/60 = 0.85
# is still below it: with $d = 0.999$ the warm-up lasts until step 8,990, where $(1 + k)/(10 + k) = 8991/9000$
# reaches $d$; the hidden tests add decay 0.99 from step 100), and compares every averaged state with the
# reference. It also checks that the copy is independent and does not require gradients.

# %% nbgrader={"grade": false, "grade_id": "EMA", "locked": false, "schema_version": 3, "solution": true, "task": false}
class EMA:
    """An exponential moving average of a network's weights, with warm-up; the averaged network is self.model."""

    def __init__(self, model, decay):
        ### BEGIN SOLUTION
        self.decay = decay
        self.model = copy.deepcopy(model).requires_grad_(False)      # an independent copy, never trained
        ### END SOLUTION

    @torch.no_grad()
    def update(self, model, step):
        ### BEGIN SOLUTION
        d = min(self.decay, (1 + step) / (10 + step))                # warm-up: small at first, then decay
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.mul_(d).add_(p.detach(), alpha=1 - d)               # d * average + (1 - d) * live
        ### END SOLUTION


# %% course={"check": "EMA", "target": "EMA"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_EMA", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_EMA(EMA)
### BEGIN HIDDEN TESTS
assert run_check("EMA", EMA, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-06", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 4. Train on two moons
#
# Algorithm 1 draws $t$ and $\epsilon$ at random for each batch; here the loop draws them and passes them to
# your `training_step`, and updates your `EMA` (decay 0.995) after each step. A small MLP (256 units, 4 layers,
# learning rate 2e-3) learns the two-moons distribution in 6,000 steps: about half a minute on the course's
# 2-core machine (32 s in the stored run; the bar shows the time left on yours; quick mode, `COURSE_QUICK=1`,
# trains for 400 steps).

# %%
data, _ = make_toy("moons", 5000)                      # (5000, 2)
schedule = NoiseSchedule.linear(T=1000)
steps = pick(6000, 400)
history = []
if checks.ready("training_step", training_step, "the training") and checks.ready("EMA", EMA, "the training"):
    torch.manual_seed(0)
    model = MLPDenoiser(data_dim=2, hidden_dim=256, num_layers=4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.002)
    ema = EMA(model, decay=0.995)
    for step in tqdm(range(steps), desc="training"):
        x0 = data[torch.randint(0, len(data), (256,))]
        t = torch.randint(0, schedule.T, (256,))
        eps = torch.randn_like(x0)
        history.append((step, float(training_step(model, optimizer, x0, t, eps, schedule))))   # a float or a tensor
        ema.update(model, step)
    print(f"{steps} steps, mean loss of the last 100: {sum(l for _, l in history[-100:]) / 100:.3f}")
    plot_loss(history)
    plt.show()

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-08", "locked": true, "schema_version": 3, "solution": false, "task": false}
# Sampling the EMA network with DDPM's Algorithm 2 (`course_utils.samplers.ddpm_sample`; worksheet 5 has you
# write its step).
#
# **What a correct run looks like.** The loss of the last 100 steps is about 0.23 and hardly moves after the
# first few hundred steps (most of $L_\text{simple}$ is noise that no network can predict), so judge the samples,
# not the loss. The samples (right) trace two thin moons like the data (left), with a few stray points between
# them: in the reference run 90% of the 2,000 samples lie within 0.15 of the noise-free moons, against 95% of the
# data points (`bench/moons_reference.py`, `docs/lab_sweep.md`). A round cloud or a blurred S means too few steps
# or too small a network: 128 units x 3 layers for 3,000 steps without an EMA, this worksheet's earlier setting,
# scored 34% (`docs/lab_sweep.md`, section 5). Quick mode trains for 400 steps: its loss ends higher (about 0.26)
# and its samples are a round cloud over the moons, as that paragraph describes.

# %%
if history:
    samples = ddpm_sample(ema.model, schedule, (pick(2000, 500), 2), generator=torch.Generator().manual_seed(0))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(7, 3.5))
    plot_points(data[:2000], ax=ax1, title="data")
    plot_points(samples, ax=ax2, title=f"EMA samples after {steps} steps")
    plt.show()
else:
    print("⏳ skipped sampling: the training above was skipped")


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-warmup", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 5. Why the warm-up? A short run
#
# Students often train for minutes, not days. Train the same network for 1,500 steps and keep two
# averages of it with decay 0.999: your `EMA` with its warm-up, and the same average *without* warm-up (a step number
# so large that $d_k = d$ from the start). Then sample from the live network and from both averages.

# %%
class NoWarmupEMA(EMA):
    """Your EMA with the warm-up switched off: d_k = decay at every step."""

    def update(self, model, step):
        super().update(model, step=10 ** 9)


if checks.ready("EMA", EMA, "the warm-up experiment") and checks.ready("training_step", training_step, "it"):
    torch.manual_seed(0)
    short = MLPDenoiser(data_dim=2, hidden_dim=256, num_layers=4)
    short_optimizer = torch.optim.AdamW(short.parameters(), lr=0.002)
    with_warmup, without_warmup = EMA(short, decay=0.999), NoWarmupEMA(short, decay=0.999)
    for step in tqdm(range(pick(1500, 200)), desc="training"):
        x0 = data[torch.randint(0, len(data), (256,))]
        training_step(short, short_optimizer, x0, torch.randint(0, schedule.T, (256,)), torch.randn_like(x0), schedule)
        with_warmup.update(short, step)
        without_warmup.update(short, step)
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.5))
    for ax, (label, net) in zip(axes, [("live weights", short), ("EMA with warm-up", with_warmup.model),
                                       ("EMA without warm-up", without_warmup.model)]):
        points = ddpm_sample(net, schedule, (pick(2000, 500), 2), generator=torch.Generator().manual_seed(0))
        plot_points(points, ax=ax, title=label)
        inside = (points.abs() <= 3).all(1)
        print(f"{label:20s}: {inside.float().mean():4.0%} inside the plotted box, median distance to the nearest "
              f"data point {torch.cdist(points, data).min(1).values.median():.2f}")
    plt.show()
    left = 0.999 ** pick(1500, 200)
    print(f"without warm-up, {left:.0%} of the average is still the random initial weights (0.999^steps)")

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-warmup-text", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **What goes wrong without the warm-up** (the figures of a full run; quick mode stops after 200 steps, where
# 0.999^200 = 82% of the average is still the initial weights and it is worse: its panel can be empty, every
# sample outside the plotted box). After 1,500 steps the live weights and the EMA with warm-up draw the
# same rough, filled cloud, denser at the top left and bottom right where the moons' arcs lie (too few steps for
# thin moons yet; the cloud covers the moons, so the median
# distance to a data point is small, 0.04). The average without warm-up scatters its samples over the whole box
# and beyond it (21% fall outside; median distance to the data 0.78): with $d = 0.999$ from the first step, 22% of
# it is still the network's random initial weights ($0.999^{1500}$), and a weighted average of a random network's
# weights and a partly trained one's predicts nonsense. The warm-up lets the average follow the live weights while they change
# fast, and only later remember a long history: short runs need it, or a much smaller decay.
#
# **Things to try.** Rerun section 5 with 6,000 steps ($0.999^{6000} < 0.3\%$ of the initial weights are left) and
# compare the two averages again.

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-10", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Next
#
# Worksheet 5 (`exercises/05_samplers.ipynb`): the sampling steps of DDPM and DDIM.
