# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-01", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Worksheet 7: DPM-Solver++(2M)
#
# Companion of lesson 7 (`notebooks/07_fast_samplers.ipynb`). You write the fast solver of the lesson from its
# equations:
#
# 1. `dpmpp_2m_step`: one step of DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2);
# 2. `dpmpp_2m_sample_loop`: the sampler around it, which hands each step's data prediction to the next.
#
# Then you run it with the *exact* noise predictor of eight Gaussians and compare it with DDIM at the same number
# of network calls. Each check prints its verdict; a wrong answer gets a hint that names the likely mistake.

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
from course_utils.checks import check_dpmpp_2m_sample_loop, check_dpmpp_2m_step, mixture_fit, run_check
from course_utils.data import EIGHT_GAUSSIANS
from course_utils.samplers import ddim_sample
from course_utils.schedules import NoiseSchedule
from course_utils.settings import pick
from course_utils.solvers import solve, solver_timesteps
from course_utils.viz import plot_points


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-02", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 1. One DPM-Solver++(2M) step
#
# DPM-Solver writes $\alpha_t = \sqrt{\bar\alpha_t}$ and $\sigma_t = \sqrt{1-\bar\alpha_t}$ (in the code:
# `alpha_bar_t.sqrt()` and `(1 - alpha_bar_t).sqrt()`; lesson 7's $\sigma$ of the ODE is another quantity). Its
# clock is the half log-SNR $\lambda_t = \log(\alpha_t / \sigma_t)$, which grows towards the data. A step from
# $\bar\alpha_t$ to $\bar\alpha_\text{prev}$ (a later point of the sampler, less noise):
#
# $$\hat x_0 = \frac{x_t - \sigma_t\,\epsilon_\theta(x_t, t)}{\alpha_t}, \qquad h = \lambda_\text{prev} - \lambda_t,
# \qquad x_\text{prev} = \frac{\sigma_\text{prev}}{\sigma_t}\,x_t - \alpha_\text{prev}\,\big(e^{-h} - 1\big)\,D .$$
#
# $D$ is the data prediction used over the step:
#
# - **first order**, $D = \hat x_0$, at the first step (there is no earlier prediction: `x0_pred_last is None`) and
#   at the last step, to clean data ($\bar\alpha_\text{prev} = 1$, so $\sigma_\text{prev} = 0$, $\lambda_\text{prev} =
#   +\infty$ and $h = \infty$). This step is exactly DDIM's.
# - **second order** otherwise: extrapolate linearly in $\lambda$ from the previous step's prediction
#   `x0_pred_last`, made at `alpha_bar_last`:
#
# $$D = \Big(1 + \frac{1}{2r}\Big)\,\hat x_0 - \frac{1}{2r}\,\hat x_0^\text{last}, \qquad
# r = \frac{h_\text{last}}{h}, \qquad h_\text{last} = \lambda_t - \lambda_\text{last}.$$
#
# `alpha_bar_t`, `alpha_bar_prev` and `alpha_bar_last` are 0-dim tensors; `xt`, `eps_pred` and `x0_pred_last`
# have shape (B, ...). Return `(x_prev, x0_pred)`: the loop keeps `x0_pred` for the next step. This is the
# signature of `course_utils.solvers.dpmpp_2m_step`.

# %% nbgrader={"grade": false, "grade_id": "dpmpp_2m_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def dpmpp_2m_step(xt, eps_pred, alpha_bar_t, alpha_bar_prev, *, x0_pred_last=None, alpha_bar_last=None):
    """(x_prev, x0_pred): one DPM-Solver++(2M) step from x_t (B, ...) at alpha_bar_t to alpha_bar_prev."""
    ### BEGIN SOLUTION
    def lam(alpha_bar):                                        # lambda = log(alpha / sigma), +inf at alpha_bar = 1
        return torch.log(alpha_bar.sqrt()) - torch.log((1 - alpha_bar).sqrt())

    x0_pred = (xt - (1 - alpha_bar_t).sqrt() * eps_pred) / alpha_bar_t.sqrt()
    h = lam(alpha_bar_prev) - lam(alpha_bar_t)
    if x0_pred_last is None or alpha_bar_prev == 1:
        D = x0_pred                                            # first order: the DDIM step
    else:
        r = (lam(alpha_bar_t) - lam(alpha_bar_last)) / h       # h_last / h
        D = (1 + 1 / (2 * r)) * x0_pred - 1 / (2 * r) * x0_pred_last
    x_prev = (1 - alpha_bar_prev).sqrt() / (1 - alpha_bar_t).sqrt() * xt \
        - alpha_bar_prev.sqrt() * (torch.exp(-h) - 1) * D
    return x_prev, x0_pred
    ### END SOLUTION


# %% course={"check": "dpmpp_2m_step", "target": "dpmpp_2m_step"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_dpmpp_2m_step", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_dpmpp_2m_step(dpmpp_2m_step)
### BEGIN HIDDEN TESTS
assert run_check("dpmpp_2m_step", dpmpp_2m_step, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-03", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 2. The sampler loop
#
# Now the loop around your step, from noise `x_T` (N, ...) to samples, over a given time grid `timesteps`: a
# descending list of ints, such as `solver_timesteps(schedule, 10).tolist()`, the lesson's grid, even in $\lambda$
# from $t = 999$ to $t = 0$.
#
# - At step `k`, the network is asked at `t = timesteps[k]`: `model(x, t_batch)` with `t_batch` an int64 tensor of
#   shape (N,), and returns the noise prediction shaped like `x`.
# - The step goes from `schedule.alpha_bar[t]` to the alpha_bar of the next grid point; after the last grid point,
#   to clean data: `alpha_bar_prev = torch.tensor(1.0)`.
# - Each step returns `(x_prev, x0_pred)`: hand `x0_pred`, with the `alpha_bar_t` it was made at, to the next step
#   as `x0_pred_last` and `alpha_bar_last`. The first step gets `None` for both.
#
# One network call per step: `len(timesteps)` calls in all.

# %% nbgrader={"grade": false, "grade_id": "dpmpp_2m_sample_loop", "locked": false, "schema_version": 3, "solution": true, "task": false}
def dpmpp_2m_sample_loop(model, schedule, x_T, timesteps):
    """Samples (N, ...) from noise x_T (N, ...): DPM-Solver++(2M) over the descending timesteps, with your step."""
    ### BEGIN SOLUTION
    x, x0_pred_last, alpha_bar_last = x_T, None, None
    for k, t in enumerate(timesteps):
        alpha_bar_t = schedule.alpha_bar[t]
        alpha_bar_prev = schedule.alpha_bar[timesteps[k + 1]] if k + 1 < len(timesteps) else torch.tensor(1.0)
        eps_pred = model(x, torch.full((len(x),), t, dtype=torch.long))
        x, x0_pred = dpmpp_2m_step(x, eps_pred, alpha_bar_t, alpha_bar_prev, x0_pred_last=x0_pred_last,
                                   alpha_bar_last=alpha_bar_last)
        x0_pred_last, alpha_bar_last = x0_pred, alpha_bar_t    # the history for the next step
    return x
    ### END SOLUTION


# %% course={"check": "dpmpp_2m_sample_loop", "target": "dpmpp_2m_sample_loop"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_dpmpp_2m_sample_loop", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_dpmpp_2m_sample_loop(dpmpp_2m_sample_loop)
### BEGIN HIDDEN TESTS
assert run_check("dpmpp_2m_sample_loop", dpmpp_2m_sample_loop, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-04", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 3. Ten network calls on eight Gaussians
#
# With the exact noise predictor of eight Gaussians (`GaussianMixtureEps`), the only error left is the solver's.
# The reference is DDIM with 1000 steps from the same $x_T$ (Euler with tiny steps: the exact ODE solution, nearly).
# Your sampler and DDIM each get 10 network calls on the same grid. `mixture_fit` measures the samples against the
# mixture: the largest error of a cluster's weight, the spread around the cluster means (the data's: 0.10) and the
# share of samples far from every cluster.

# %%
schedule = NoiseSchedule.linear(T=1000)
eps_model = GaussianMixtureEps(EIGHT_GAUSSIANS, schedule)
n = pick(2000, 500)
x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(1))
grid = solver_timesteps(schedule, 10).tolist()
print("grid:", grid)

# %%
if checks.ready("dpmpp_2m_sample_loop", dpmpp_2m_sample_loop, "the comparison"):
    exact = ddim_sample(eps_model, schedule, x_T.shape, x_T=x_T, num_steps=1000, progress=False)
    results = {"DDIM, 1000 calls (the exact path)": exact,
               "DDIM, 10 calls": solve("DDIM", eps_model, schedule, x_T.shape, x_T=x_T, timesteps=grid,
                                       num_steps=10, progress=False),
               "yours: DPM-Solver++(2M), 10 calls": dpmpp_2m_sample_loop(eps_model, schedule, x_T, grid)}
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for ax, (title, x) in zip(axes, results.items()):
        plot_points(x, ax=ax, title=title)
        ax.add_patch(plt.Circle((0, 0), 1.5, fill=False, ls="--", lw=0.8, color="gray"))   # the clusters' radius
    fig.tight_layout()
    plt.show()
    for title, x in results.items():
        fit = mixture_fit(x)
        print(f"{title}: distance to the exact end points {(x - exact).norm(dim=1).mean():.4f}\n"
              f"    weights off by {fit['weight_error']:.3f}, spread {fit['spread']:.3f}, far from every cluster "
              f"{fit['outliers']:.1%}\n    mean distance from the centre {x.norm(dim=1).mean():.2f} (the data's "
              f"clusters lie at 1.5)")

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-05", "locked": true, "schema_version": 3, "solution": false, "task": false}
# Above (2,000 points; 500 in quick mode, whose numbers differ), with 10 network calls each, both samplers keep the eight clusters and their weights (off
# by 0.010, like the exact path's), but neither keeps them on the dashed circle of radius 1.5 where the data's
# lie: DDIM pulls the ring inwards (mean distance from the centre 1.41), DPM-Solver++(2M) pushes it a little
# outwards (1.58). The spread is measured around the data's cluster means, so it counts that shift as well as the
# clusters' width: 0.144 for DDIM, whose clusters are also wider and leave 1.6% of its samples between clusters,
# against 0.115 for DPM-Solver++(2M), whose clusters keep about the data's width (0.10) with 0.3% between. Its
# samples land closer to the exact end points (mean distance 0.082 against DDIM's 0.108). One network call
# per step for both: the second-order step gets its extra accuracy from the previous step's prediction, for free.
#
# **Things to try.** Give both samplers 5 and 20 calls (`solver_timesteps(schedule, 5)`): how does the distance to
# the exact end points change for each? Pass `x0_pred_last=None` at every step: what does your sampler become?
#
# ## Next
#
# Lesson 7's section 5 drives the trained MNIST model with `diffusers`' `DPMSolverMultistepScheduler`, which does
# step for step what you just wrote.
