# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-01", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Worksheet 5: the samplers
#
# Companion of lesson 5 (`notebooks/05_ddpm_vs_ddim.ipynb`). You write one step of each sampler:
#
# 1. `ddpm_step`: Algorithm 2 of DDPM (ancestral sampling);
# 2. `ddim_step`: the DDIM update with its stochasticity $\eta$ (deterministic at $\eta = 0$).
#
# The noise of a stochastic step is an argument (`noise`), so the steps are deterministic functions.
# `ddpm_step`'s `t` is a Python int in 0..T-1 (the same step for the whole batch); `ddim_step` takes the two
# $\bar\alpha$ it jumps between. Then you run both samplers with the *exact* noise predictor of a Gaussian
# mixture (`course_utils.analytic`), so no training is needed.
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

from course_utils import checks
from course_utils.analytic import GaussianMixtureEps
from course_utils.checks import check_ddim_step, check_ddpm_step, run_check
from course_utils.data import EIGHT_GAUSSIANS
from course_utils.device import get_device
from course_utils.samplers import ddim_sample, ddim_timesteps
from course_utils.schedules import NoiseSchedule
from course_utils.settings import pick
from course_utils.viz import plot_points

torch.manual_seed(0)
device = get_device()


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-04", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 1. A DDPM step
#
# Ho et al., Algorithm 2, with $\sigma_t^2 = \beta_t$:
#
# $$x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta(x_t, t)\Big) + \sigma_t z,
# \qquad z \sim \mathcal N(0, I) \text{ for all steps but the last; } z = 0 \text{ at the last step.}$$
#
# In code the last step is `t == 0`. Use `schedule.alphas[t]`, `schedule.betas[t]`, `schedule.alpha_bar[t]`.

# %% nbgrader={"grade": false, "grade_id": "ddpm_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def ddpm_step(xt, t, eps_pred, schedule, noise):
    """x_{t-1} from x_t (B, ...), an int step t, the predicted noise and the noise z (both like xt)."""
    ### BEGIN SOLUTION
    alpha, beta, alpha_bar = schedule.alphas[t], schedule.betas[t], schedule.alpha_bar[t]
    mean = (xt - beta / (1 - alpha_bar).sqrt() * eps_pred) / alpha.sqrt()
    if t == 0:
        return mean                                   # the last step adds no noise
    return mean + beta.sqrt() * noise                 # sigma_t = sqrt(beta_t)
    ### END SOLUTION


# %% course={"check": "ddpm_step", "target": "ddpm_step"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_ddpm_step", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_ddpm_step(ddpm_step)
### BEGIN HIDDEN TESTS
assert run_check("ddpm_step", ddpm_step, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-05", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 2. A DDIM step
#
# Song et al. (2021, Eq. 12 and 16) jump from step $t$ to an earlier step $t_\text{prev}$ (their $\alpha_t$ is our
# $\bar\alpha_t$):
#
# $$\hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\epsilon}{\sqrt{\bar\alpha_t}}, \qquad
# \sigma_t = \eta\,\sqrt{\frac{1-\bar\alpha_\text{prev}}{1-\bar\alpha_t}}\,\sqrt{1-\frac{\bar\alpha_t}{\bar\alpha_\text{prev}}},$$
#
# $$x_\text{prev} = \sqrt{\bar\alpha_\text{prev}}\,\hat x_0 + \sqrt{1-\bar\alpha_\text{prev}-\sigma_t^2}\;\epsilon + \sigma_t z .$$
#
# The step takes $\bar\alpha_t$ and $\bar\alpha_\text{prev}$ themselves (0-dim tensors) and returns
# `(x_prev, x0_pred)`: the signature of `course_utils.samplers.ddim_step`. The loop further down looks them up;
# the last step goes to clean data, where $\bar\alpha_\text{prev} = 1$ (careful: in Python `alpha_bar[-1]` is
# the *last* entry, $\bar\alpha_{T-1}$). At $\eta = 0$ the step is deterministic and `noise` may be `None`.

# %% nbgrader={"grade": false, "grade_id": "ddim_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def ddim_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, eta=0.0, noise=None):
    """(x_prev, x0_pred) from x_t (B, ...) for a jump from alpha_bar_t to alpha_bar_prev, with stochasticity eta."""
    ### BEGIN SOLUTION
    x0_pred = (xt - (1 - alpha_bar_t).sqrt() * eps_pred) / alpha_bar_t.sqrt()
    sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t)).sqrt() * (1 - alpha_bar_t / alpha_bar_prev).sqrt()
    direction = (1 - alpha_bar_prev - sigma ** 2).sqrt() * eps_pred     # "direction pointing to x_t"
    x_prev = alpha_bar_prev.sqrt() * x0_pred + direction
    if eta > 0:
        x_prev = x_prev + sigma * noise
    return x_prev, x0_pred
    ### END SOLUTION


# %% course={"check": "ddim_step", "target": "ddim_step"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_ddim_step", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_ddim_step(ddim_step)
### BEGIN HIDDEN TESTS
assert run_check("ddim_step", ddim_step, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-06", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 3. Sampling eight Gaussians with the exact $\epsilon^*$
#
# For data drawn from a Gaussian mixture the best possible noise predictor is known in closed form
# (`GaussianMixtureEps`): a sampler that works must reproduce the eight clusters. Your DDPM loop takes all
# 1000 steps; your DDIM loop takes 50, deterministic ($\eta = 0$) or stochastic ($\eta = 1$).

# %%
schedule = NoiseSchedule.linear(T=1000)
eps_model = GaussianMixtureEps(EIGHT_GAUSSIANS, schedule)
data, _ = EIGHT_GAUSSIANS.sample(2000, generator=torch.Generator().manual_seed(0))
n = pick(2000, 500)


def run_ddpm(x_T, generator):
    x = x_T
    for t in range(schedule.T - 1, -1, -1):
        eps_pred = eps_model(x, torch.full((len(x),), t))
        noise = torch.randn(x.shape, generator=generator) if t > 0 else torch.zeros_like(x)
        x = ddpm_step(x, t, eps_pred, schedule, noise)
    return x


def run_ddim(x_T, num_steps, eta, generator):
    x, timesteps = x_T, ddim_timesteps(schedule.T, num_steps).tolist()
    for k, t in enumerate(timesteps):
        t_prev = timesteps[k + 1] if k + 1 < len(timesteps) else -1
        alpha_bar_prev = schedule.alpha_bar[t_prev] if t_prev >= 0 else torch.tensor(1.0)   # 1: clean data
        eps_pred = eps_model(x, torch.full((len(x),), t))
        noise = torch.randn(x.shape, generator=generator) if eta > 0 else None
        x, _ = ddim_step(x, eps_pred, schedule.alpha_bar[t], alpha_bar_prev, eta=eta, noise=noise)
    return x


# %%
if checks.ready("ddpm_step", ddpm_step, "DDPM sampling") and checks.ready("ddim_step", ddim_step, "DDIM sampling"):
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(1))
    results = {"DDPM, 1000 steps": run_ddpm(x_T, torch.Generator().manual_seed(2)),
               "DDIM eta=0, 50 steps": run_ddim(x_T, 50, 0.0, None),
               "DDIM eta=1, 50 steps": run_ddim(x_T, 50, 1.0, torch.Generator().manual_seed(3))}
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.3))
    plot_points(data[:n], ax=axes[0], title="data")
    for ax, (label, x) in zip(axes[1:], results.items()):
        plot_points(x, ax=ax, title=label)
    plt.show()
    # the package's samplers, from the same x_T: DDIM at eta = 0 is deterministic, so they must agree
    reference = ddim_sample(eps_model, schedule, (n, 2), num_steps=50, x_T=x_T, progress=False)
    print(f"DDIM eta=0: largest difference from course_utils.samplers.ddim_sample "
          f"{(results['DDIM eta=0, 50 steps'] - reference).abs().max():.1e}")

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-09", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Things to try.** Run DDIM with 10 or 5 steps: the deterministic sampler degrades gracefully, the stochastic
# one ($\eta = 1$) much faster. Why does DDPM need all 1000 steps?
#
# ## Next
#
# Worksheet 6 (`exercises/06_guidance.ipynb`): classifier-free guidance. And the lab
# (`exercises/lab_ddim.ipynb`): a DDIM model trained on images, in the style of the Keras example.
