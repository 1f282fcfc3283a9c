# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-01", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Worksheet 5: the samplers
#
# Companion of lesson 5 (`notebooks/05_ddpm_vs_ddim.ipynb`). You write one step of each sampler, then a whole
# sampler:
#
# 1. `ddpm_step`: Algorithm 2 of DDPM (ancestral sampling);
# 2. `ddim_step`: the DDIM update with its stochasticity $\eta$ (deterministic at $\eta = 0$);
# 3. `ddim_sample_loop`: the whole DDIM sampler, from pure noise to samples, on a grid of a few timesteps.
#
# The noise of a stochastic step is an argument (`noise`), so the steps are deterministic functions.
# `ddpm_step`'s `t` is a Python int in 0..T-1 (the same step for the whole batch); `ddim_step` takes the two
# $\bar\alpha$ it jumps between. Then you run the samplers with the *exact* noise predictor of a Gaussian
# mixture (`course_utils.analytic`), so no training is needed: a correct sampler must give back the mixture.
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
import matplotlib.pyplot as plt
import torch

from course_utils import checks
from course_utils.analytic import GaussianMixtureEps
from course_utils.checks import check_ddim_sample_loop, check_ddim_step, check_ddpm_step, mixture_fit, run_check
from course_utils.data import EIGHT_GAUSSIANS
from course_utils.samplers import ddim_sample, ddim_timesteps
from course_utils.schedules import NoiseSchedule
from course_utils.settings import pick
from course_utils.viz import plot_points

_ = torch.manual_seed(0)          # the same random numbers on every run


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-04", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 1. A DDPM step
#
# Ho et al., Algorithm 2:
#
# $$x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta(x_t, t)\Big) + \sigma_t z,
# \qquad z \sim \mathcal N(0, I) \text{ for all steps but the last; } z = 0 \text{ at the last step.}$$
#
# In code the last step is `t == 0`. Use `schedule.alphas[t]`, `schedule.betas[t]`, `schedule.alpha_bar[t]`.
#
# **Which $\sigma_t$?** The paper (Sec. 3.2) tried two variances and found similar samples: $\sigma_t^2 = \beta_t$ (the
# reference solution's choice) and the posterior variance
# $\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t$ (lesson 5's default, `ddpm_sample(variance="posterior")`,
# with `schedule.posterior_variance[t]`). Use either: the check accepts both. $\sigma_t$ is a standard deviation.

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
# $$\hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t, t)}{\sqrt{\bar\alpha_t}}, \qquad
# \sigma_t = \eta\,\sqrt{\frac{1-\bar\alpha_\text{prev}}{1-\bar\alpha_t}}\,\sqrt{1-\frac{\bar\alpha_t}{\bar\alpha_\text{prev}}},$$
#
# $$x_\text{prev} = \sqrt{\bar\alpha_\text{prev}}\,\hat x_0 + \sqrt{1-\bar\alpha_\text{prev}-\sigma_t^2}\;\epsilon_\theta(x_t, t) + \sigma_t z .$$
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

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-loop", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 3. The whole DDIM sampler
#
# Now the loop around your `ddim_step`: from pure noise $x_T$ to samples $x_0$, on a grid of a few timesteps.
# This is what `course_utils.samplers.ddim_sample` does; write it yourself, without looking.
#
# - **Inputs.** `model(x, t)` returns the noise prediction, shaped like `x`, for timesteps `t`: an int64 tensor
#   of shape (N,), one timestep per sample. `schedule.alpha_bar` has shape (T,). `x_T` (N, ...) is the starting
#   noise, `num_steps` the number of model calls, `eta` the stochasticity, `generator` the source of noise.
# - **The time grid.** Visit the timesteps of `ddim_timesteps(schedule.T, num_steps)` in the order it gives them
#   (descending: 980, 960, ..., 20, 0 for 50 steps of T = 1000). Each step jumps from its grid point to the
#   *next grid point*; the last one jumps from t = 0 to clean data, where $\bar\alpha_\text{prev} = 1$.
# - **Noise.** When $\eta > 0$, draw one `torch.randn(x.shape, generator=generator)` per step for `ddim_step`;
#   at $\eta = 0$ draw nothing.
# - **Output.** The final `x` (the samples $x_0$), shaped like `x_T`.
#
# The check runs your loop with the exact noise predictor of the eight Gaussians below, with 50 steps of a linear
# schedule at $\eta$ = 0 and 1, 20 steps at $\eta = 0.5$, and 10 steps of a cosine schedule of $T = 200$ (take $T$
# and $\bar\alpha$ from the `schedule` argument; the hidden tests add 25 steps of a linear schedule of $T = 500$). At
# $\eta = 0$ your samples must equal the course's
# to 1e-3. At $\eta > 0$ another order of noise draws is fine, but the samples must reproduce the mixture: each
# cluster holds 1/8 of them ($\pm$ 0.05), with a spread of 0.1 ($\pm$ 0.04), and fewer than 3% of them lie far from
# every cluster; each step's noise, recovered from the $x_t$ your loop gives the network, must be a fresh
# $\sigma_t z$ with $z \sim \mathcal N(0, I)$ at every step but the last (which adds none); and two runs with
# generators of the same seed must be equal (draw every noise from `generator`), two runs in a row with one
# generator must differ (don't reseed it).

# %% nbgrader={"grade": false, "grade_id": "ddim_sample_loop", "locked": false, "schema_version": 3, "solution": true, "task": false}
def ddim_sample_loop(model, schedule, x_T, num_steps, *, eta=0.0, generator=None):
    """Samples (N, ...) from noise x_T (N, ...): DDIM on ddim_timesteps(T, num_steps), with your ddim_step."""
    ### BEGIN SOLUTION
    timesteps = ddim_timesteps(schedule.T, num_steps).tolist()         # descending, ends at t = 0
    x = x_T
    for k, t in enumerate(timesteps):
        t_prev = timesteps[k + 1] if k + 1 < len(timesteps) else -1
        alpha_bar_prev = schedule.alpha_bar[t_prev] if t_prev >= 0 else torch.tensor(1.0)   # 1: clean data
        eps_pred = model(x, torch.full((len(x),), t, dtype=torch.long))
        noise = torch.randn(x.shape, generator=generator) if eta > 0 else None
        x, _ = ddim_step(x, eps_pred, schedule.alpha_bar[t], alpha_bar_prev, eta=eta, noise=noise)
    return x
    ### END SOLUTION


# %% course={"check": "ddim_sample_loop", "target": "ddim_sample_loop"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_ddim_sample_loop", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_ddim_sample_loop(ddim_sample_loop)
### BEGIN HIDDEN TESTS
assert run_check("ddim_sample_loop", ddim_sample_loop, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-06", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 4. Sampling eight Gaussians with the exact $\epsilon^*$
#
# For data drawn from a Gaussian mixture the best possible noise predictor is known in closed form
# (`GaussianMixtureEps`): a sampler that works must reproduce the eight clusters. The DDPM loop below (given)
# takes all 1000 steps with your `ddpm_step`; your `ddim_sample_loop` takes 50, deterministic ($\eta = 0$) or
# stochastic ($\eta = 1$). `mixture_fit` measures how well samples reproduce the mixture (the check's criteria:
# largest error of a cluster's weight, spread around the cluster's mean, share of samples far from every cluster).

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


# %%
ready = [checks.ready("ddpm_step", ddpm_step, "DDPM sampling"),      # both said, not only the first missing
         checks.ready("ddim_sample_loop", ddim_sample_loop, "DDIM sampling")]
if all(ready):
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(1))
    results = {"DDPM, 1000 steps": run_ddpm(x_T, torch.Generator().manual_seed(2)),
               "DDIM eta=0, 50 steps": ddim_sample_loop(eps_model, schedule, x_T, 50),
               "DDIM eta=1, 50 steps": ddim_sample_loop(eps_model, schedule, x_T, 50, eta=1.0,
                                                        generator=torch.Generator().manual_seed(3))}
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.3))
    plot_points(data[:n], ax=axes[0], title="data")
    for ax, (label, x) in zip(axes[1:], results.items()):
        plot_points(x, ax=ax, title=label)
    plt.show()
    for label, x in [("data", data[:n])] + list(results.items()):
        fit = mixture_fit(x)
        print(f"{label:22s} weight error {fit['weight_error']:.3f} | spread {fit['spread']:.3f} "
              f"| far from every cluster {fit['outliers']:.1%}")
    # the package's sampler, from the same x_T: DDIM at eta = 0 is deterministic, so they must agree
    reference = ddim_sample(eps_model, schedule, (n, 2), num_steps=50, x_T=x_T, progress=False)
    print(f"DDIM eta=0: largest difference from course_utils.samplers.ddim_sample "
          f"{(results['DDIM eta=0, 50 steps'] - reference).abs().max():.1e}")

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-09", "locked": true, "schema_version": 3, "solution": false, "task": false}
# Above (2,000 points; 500 in quick mode, whose numbers differ), all three samplers give back the eight clusters with their weights (errors of 0.01-0.02, like the 2,000
# data points themselves) and almost nothing between them (0.1% of DDIM's samples at $\eta = 0$, two of 2,000,
# are far from every cluster: the stray points between clusters in its panel). The 50-step DDIM clusters are a little tighter than the
# data's (spread 0.089 at $\eta = 0$ and 0.074 at $\eta = 1$, against 0.10): the discretisation error of a coarse
# grid, which DDPM's 1,000 small steps do not have (0.102).
#
# **Things to try.** Run `ddim_sample_loop` with 20, 10 and 5 steps at $\eta = 0$ and $\eta = 1$ and print
# `mixture_fit`. With this exact noise predictor the two lose the clusters at about the same pace, $\eta = 1$ a
# little faster (from this $x_T$, 2,000 points, far from every cluster: 1.0% and about 1.3% at 20 steps, 6.5% and
# about 7% at 10, 32% and about 37% at 5; $\eta = 1$'s figures move a little with its noise's seed). The DDIM paper's gap is much wider (its Table 1, CIFAR10 at 10 steps: FID 13.4 at
# $\eta = 0$, 41.1 at $\eta = 1$), with a trained network on images, not an exact predictor on 2-D points. Why
# does DDPM need all 1000 steps?
#
# ## Next
#
# Worksheet 6 (`exercises/06_guidance.ipynb`): classifier-free and classifier guidance. And the lab
# (`exercises/lab_ddim.ipynb`): a DDIM model trained on images, in the style of the Keras example.
