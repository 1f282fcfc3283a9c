# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-01", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Worksheet 6: classifier-free guidance
#
# Companion of lesson 6 (`notebooks/06_guidance.ipynb`). Two functions:
#
# 1. `cfg_combine`: the classifier-free guidance combination of two noise predictions;
# 2. `cfg_loss`: the training loss with **label dropout**, which teaches one network both the conditional
#    and the unconditional prediction.
#
# Class labels are int64 tensors (B,); the label **-1** is the null class ("no label").
#
# **How a worksheet works.** Each exercise is a function with its docstring and a `# YOUR CODE HERE` to replace.
# Run the check cell right after it: it prints one line, ✅ when your function agrees with the course's
# reference on small fixed inputs, or ❌ with what is wrong and a hint. Cells further down that need your
# function say they are skipped until it passes. Your instructor may run more (hidden) tests when grading.

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
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from course_utils import checks
from course_utils.analytic import GaussianMixtureEps
from course_utils.checks import check_cfg_combine, check_cfg_loss, run_check
from course_utils.data import EIGHT_GAUSSIANS
from course_utils.device import get_device
from course_utils.forward import q_sample
from course_utils.nets import MLPDenoiser
from course_utils.samplers import ddim_step, ddim_timesteps
from course_utils.schedules import NoiseSchedule
from course_utils.settings import pick
from course_utils.viz import plot_points

torch.manual_seed(0)
device = get_device()


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-04", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 1. The guidance combination
#
# Ho and Salimans (2022, Eq. 6), written with the guidance scale $w$ as in the course:
#
# $$\tilde\epsilon = \epsilon_\text{uncond} + w\,(\epsilon_\text{cond} - \epsilon_\text{uncond})$$
#
# $w = 0$ is the unconditional model, $w = 1$ the plain conditional one, $w > 1$ pushes further in the
# direction of the class.

# %% nbgrader={"grade": false, "grade_id": "cfg_combine", "locked": false, "schema_version": 3, "solution": true, "task": false}
def cfg_combine(eps_uncond, eps_cond, guidance_scale):
    """eps_uncond + w (eps_cond - eps_uncond), shaped like the inputs."""
    ### BEGIN SOLUTION
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)
    ### END SOLUTION


# %% course={"check": "cfg_combine", "target": "cfg_combine"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_cfg_combine", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_cfg_combine(cfg_combine)
### BEGIN HIDDEN TESTS
assert run_check("cfg_combine", cfg_combine, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-05", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### Guidance on eight Gaussians, with the exact noise predictor
#
# `GaussianMixtureEps` gives the exact $\epsilon^*$ of the mixture, conditioned on a component `y` or not
# (`y = -1`). Sampling class 0 (the cluster on the right) with DDIM and growing $w$: at $w = 0$ all clusters
# appear; from $w = 1$ only class 0, pushed away from the others as $w$ grows.

# %%
schedule = NoiseSchedule.linear(T=1000)
exact = GaussianMixtureEps(EIGHT_GAUSSIANS, schedule)
n = pick(1000, 400)


def guided_sample(model, y, guidance_scale, num_steps=50, seed=0):
    # DDIM (eta = 0) with classifier-free guidance: two predictions per step, combined by cfg_combine
    x = torch.randn(len(y), 2, generator=torch.Generator().manual_seed(seed))
    timesteps = ddim_timesteps(schedule.T, num_steps).tolist()
    with torch.no_grad():
        for k, t in enumerate(timesteps):
            t_prev = timesteps[k + 1] if k + 1 < len(timesteps) else -1
            tt = torch.full((len(x),), t)
            eps = cfg_combine(model(x, tt, torch.full_like(y, -1)), model(x, tt, y), guidance_scale)
            alpha_bar_prev = schedule.alpha_bar[t_prev] if t_prev >= 0 else torch.tensor(1.0)
            x, _ = ddim_step(x, eps, schedule.alpha_bar[t], alpha_bar_prev)
    return x


# %%
if checks.ready("cfg_combine", cfg_combine, "guided sampling"):
    y = torch.zeros(n, dtype=torch.long)
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.3))
    for ax, w in zip(axes, [0.0, 1.0, 3.0, 8.0]):
        plot_points(guided_sample(exact, y, w), ax=ax, title=f"class 0, w = {w}")
    plt.show()


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-08", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 2. Label dropout
#
# To get $\epsilon_\text{uncond}$ from the same network, training replaces each label by the null class with
# some probability (10-20%). The random choice is an argument here: `drop` is a bool tensor (B,), True where
# the label is dropped. Replace those labels by -1 (`torch.where`), then take the usual loss
# $\|\epsilon - \epsilon_\theta(x_t, t, y)\|^2$ with `q_sample` and `model(xt, t, y)`.

# %% nbgrader={"grade": false, "grade_id": "cfg_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def cfg_loss(model, x0, y, t, eps, drop, schedule):
    """The diffusion loss of a conditional model, with y replaced by the null class -1 where drop is True."""
    ### BEGIN SOLUTION
    y = torch.where(drop, torch.full_like(y, -1), y)       # -1 = the null class
    xt = q_sample(x0, t, eps, schedule)
    return F.mse_loss(model(xt, t, y), eps)
    ### END SOLUTION


# %% course={"check": "cfg_loss", "target": "cfg_loss"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_cfg_loss", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_cfg_loss(cfg_loss)
### BEGIN HIDDEN TESTS
assert run_check("cfg_loss", cfg_loss, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-09", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### Train a conditional model and guide it
#
# A small MLP learns the eight classes with your loss (20% label dropout), then samples class 0 with growing
# guidance. Quick mode trains for fewer steps, so its clusters are blurrier.

# %%
if checks.ready("cfg_loss", cfg_loss, "the training") and checks.ready("cfg_combine", cfg_combine, "the training"):
    torch.manual_seed(0)
    data, labels = EIGHT_GAUSSIANS.sample(20000, generator=torch.Generator().manual_seed(0))
    model = MLPDenoiser(data_dim=2, hidden_dim=128, num_classes=8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    steps = pick(4000, 500)
    for step in range(steps):
        idx = torch.randint(0, len(data), (256,))
        t = torch.randint(0, schedule.T, (256,))
        loss = cfg_loss(model, data[idx], labels[idx], t, torch.randn(256, 2), torch.rand(256) < 0.2, schedule)
        optimizer.zero_grad(), loss.backward(), optimizer.step()
    model.eval()
    print(f"trained {steps} steps, last loss {loss.item():.3f}")
    y = torch.zeros(n, dtype=torch.long)
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.3))
    for ax, w in zip(axes, [0.0, 1.0, 3.0, 8.0]):
        plot_points(guided_sample(model, y, w), ax=ax, title=f"trained, class 0, w = {w}")
    plt.show()

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-11", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Question.** Why does guidance with a large $w$ pull the samples *away* from the other clusters, beyond
# the conditional distribution itself? (Hint: $\tilde\epsilon$ follows the gradient of
# $\log p(y \mid x_t)$ scaled by $w - 1$, on top of the conditional score.)
