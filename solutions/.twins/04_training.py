# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-01", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Worksheet 4: training a noise predictor
#
# Companion of lesson 4 (`notebooks/04_training.ipynb`). Two functions:
#
# 1. `diffusion_loss`: the simple loss of DDPM on one batch, for given timesteps and noise;
# 2. `training_step`: one optimizer step with it.
#
# Then you train a small network on 2-D points with your `training_step` and sample from it.
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
from course_utils.checks import check_diffusion_loss, check_training_step, run_check
from course_utils.data import make_toy
from course_utils.device import get_device
from course_utils.forward import q_sample
from course_utils.nets import MLPDenoiser
from course_utils.samplers import ddpm_sample
from course_utils.schedules import NoiseSchedule
from course_utils.settings import pick
from course_utils.viz import plot_loss, plot_points

torch.manual_seed(0)
device = get_device()


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-04", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 1. The loss
#
# DDPM's Algorithm 1 trains $\epsilon_\theta$ to recover the noise that made $x_t$ (Ho et al. Eq. 14):
#
# $$L_\text{simple} = \big\|\epsilon - \epsilon_\theta\big(\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t\big)\big\|^2,$$
#
# averaged over the batch and the dimensions (`F.mse_loss`). Here `t` (int64, (B,)) and `eps` (like `x0`) are
# given, as keywords, so the loss is deterministic; `q_sample` from `course_utils.forward` computes $x_t$. Call
# the model as `model(xt, t)`. Return the loss **tensor** (the training step calls `backward` on it). This is the
# signature of the package's `course_utils.training.diffusion_loss`, which draws `t` and `eps` itself when they
# are left out.

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

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-06", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 3. Train on two moons
#
# Algorithm 1 draws $t$ and $\epsilon$ at random for each batch; here the loop draws them and passes them to
# your `training_step`. A small MLP learns the two-moons distribution in seconds on a CPU
# (quick mode, `COURSE_QUICK=1`, trains for fewer steps).

# %%
data, _ = make_toy("moons", 5000)                      # (5000, 2)
schedule = NoiseSchedule.linear(T=1000)
steps = pick(3000, 400)
history = []
if checks.ready("training_step", training_step, "the training"):
    torch.manual_seed(0)
    model = MLPDenoiser(data_dim=2, hidden_dim=128)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for step in range(steps):
        x0 = data[torch.randint(0, len(data), (256,))]
        t = torch.randint(0, schedule.T, (256,))
        eps = torch.randn_like(x0)
        history.append((step, training_step(model, optimizer, x0, t, eps, schedule)))
    print(f"{steps} steps, mean loss of the last 100: {sum(l for _, l in history[-100:]) / 100:.3f}")
    plot_loss(history)
    plt.show()

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-08", "locked": true, "schema_version": 3, "solution": false, "task": false}
# Sampling with DDPM's Algorithm 2 (`course_utils.samplers.ddpm_sample`; worksheet 5 has you write its step):

# %%
if history:
    model.eval()
    samples = ddpm_sample(model, schedule, (2000, 2), generator=torch.Generator().manual_seed(0), progress=False)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(7, 3.5))
    plot_points(data[:2000], ax=ax1, title="data")
    plot_points(samples, ax=ax2, title=f"samples after {steps} steps")
    plt.show()

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-10", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Next
#
# Worksheet 5 (`exercises/05_samplers.ipynb`): the sampling steps of DDPM and DDIM.
