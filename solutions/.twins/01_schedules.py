# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-01", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Worksheet 1: noise schedules
#
# Companion of lesson 1 (`notebooks/01_noise_schedules.ipynb`). You write the three schedules of the
# course, from the simplest to the one the lab uses, and then put one to work:
#
# 1. `linear_beta_schedule`: the betas of Ho et al. (DDPM);
# 2. `cosine_beta_schedule`: the betas of Nichol and Dhariwal (Improved DDPM);
# 3. `diffusion_schedule`: the lab's continuous cosine schedule (signal and noise rates for times in [0, 1]);
# 4. `respace`: a short chain with the noise levels of a long one, which is what a fast sampler runs on.
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
import math

import matplotlib.pyplot as plt
import torch

from course_utils import checks
from course_utils.checks import (check_cosine_beta_schedule, check_diffusion_schedule,
                                 check_linear_beta_schedule, check_respace, run_check)
from course_utils.schedules import NoiseSchedule

_ = torch.manual_seed(0)          # the same random numbers on every run


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-04", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 1. The linear schedule
#
# The forward process adds Gaussian noise of variance $\beta_t$ at each step,
# $q(x_t \mid x_{t-1}) = \mathcal N(\sqrt{1-\beta_t}\,x_{t-1}, \beta_t I)$.
# Ho et al. take $T = 1000$ betas **evenly spaced** from $\beta_1 = 10^{-4}$ to $\beta_T = 0.02$.
# In the code, steps are numbered $t = 0, \dots, T-1$ (see GLOSSARY.md), so `betas[0]` is `beta_start`
# and `betas[T-1]` is `beta_end`.

# %% nbgrader={"grade": false, "grade_id": "linear_beta_schedule", "locked": false, "schema_version": 3, "solution": true, "task": false}
def linear_beta_schedule(T, beta_start=1e-4, beta_end=0.02):
    """The betas of DDPM: T values evenly spaced from beta_start to beta_end (both included).

    Returns a float32 tensor of shape (T,).
    """
    ### BEGIN SOLUTION
    return torch.linspace(beta_start, beta_end, T)
    ### END SOLUTION


# %% course={"check": "linear_beta_schedule", "target": "linear_beta_schedule"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_linear_beta_schedule", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_linear_beta_schedule(linear_beta_schedule)
### BEGIN HIDDEN TESTS
assert run_check("linear_beta_schedule", linear_beta_schedule, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-05", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 2. The cosine schedule
#
# Nichol and Dhariwal (2021, Eq. 17) choose $\bar\alpha_t$ directly, so that it falls smoothly:
#
# $$f(t) = \cos^2\!\Big(\frac{t/T + s}{1 + s}\cdot\frac{\pi}{2}\Big), \qquad \bar\alpha(t) = \frac{f(t)}{f(0)}, \qquad t = 0, 1, \dots, T$$
#
# and derive the betas from consecutive ratios, clipped so that no beta reaches 1:
#
# $$\beta_t = \min\Big(1 - \frac{\bar\alpha(t+1)}{\bar\alpha(t)},\ \beta_{\max}\Big), \qquad t = 0, \dots, T-1,$$
#
# with the small offset $s = 0.008$ and $\beta_{\max} = 0.999$. Note the $T + 1$ values of $f$ for $T$ betas, and
# the two numberings: $\bar\alpha(0) = 1$ is the clean data, before any step, while the code's `alpha_bar[t]`
# $= \prod_{i \le t}(1 - \beta_i)$ comes after step $t$, so `alpha_bar[t]` is $\bar\alpha(t + 1)$ (up to the clip).

# %% nbgrader={"grade": false, "grade_id": "cosine_beta_schedule", "locked": false, "schema_version": 3, "solution": true, "task": false}
def cosine_beta_schedule(T, s=0.008, max_beta=0.999):
    """The betas of the cosine schedule (Nichol and Dhariwal 2021, Eq. 17), float32 of shape (T,).

    alpha_bar(t) = f(t) / f(0) with f(t) = cos^2(((t/T + s) / (1 + s)) * pi/2) for t = 0..T,
    beta_t = 1 - alpha_bar(t+1) / alpha_bar(t), clipped at max_beta.
    """
    ### BEGIN SOLUTION
    steps = torch.arange(T + 1, dtype=torch.float64)                     # t = 0..T
    f = torch.cos(((steps / T + s) / (1 + s)) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(max=max_beta).float()
    ### END SOLUTION


# %% course={"check": "cosine_beta_schedule", "target": "cosine_beta_schedule"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_cosine_beta_schedule", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_cosine_beta_schedule(cosine_beta_schedule)
### BEGIN HIDDEN TESTS
assert run_check("cosine_beta_schedule", cosine_beta_schedule, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-06", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### Compare the two
#
# $\bar\alpha_t = \prod_{i \le t}(1 - \beta_i)$ is the fraction of the signal's variance left at step $t$.
# The linear schedule destroys the signal early: its $\bar\alpha_t$ is almost 0 for the last third of the
# steps, which are then wasted; the cosine schedule spreads the destruction out. This cell also checks your
# betas against the package's `NoiseSchedule`.

# %%
if (checks.ready("linear_beta_schedule", linear_beta_schedule, "the comparison")
        and checks.ready("cosine_beta_schedule", cosine_beta_schedule, "the comparison")):
    T = 1000
    mine = {"linear": linear_beta_schedule(T), "cosine": cosine_beta_schedule(T)}
    package = {"linear": NoiseSchedule.linear(T).betas, "cosine": NoiseSchedule.cosine(T).betas}
    fig, ax = plt.subplots(figsize=(5, 3))
    for label, betas in mine.items():
        alpha_bar = torch.cumprod(1 - betas.double(), 0)
        ax.plot(torch.arange(T) / T, alpha_bar, label=label)
        print(f"{label}: largest difference from the package's betas "
              f"{(betas.double() - package[label].double()).abs().max():.1e}")
    ax.set_xlabel("t / T"), ax.set_ylabel(r"$\bar\alpha_t$"), ax.set_title("signal variance left")
    ax.legend()
    plt.show()


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-08", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 3. The lab's continuous cosine schedule
#
# The lab (and the Keras DDIM example it follows) uses a **continuous** diffusion time $t \in [0, 1]$ and
# names the two square roots: the *signal rate* $\sqrt{\bar\alpha}$ and the *noise rate* $\sqrt{1-\bar\alpha}$.
# Since $\text{signal}^2 + \text{noise}^2 = 1$, both sit on the unit circle: pick an angle $\theta(t)$ and take
#
# $$\theta(t) = (1-t)\,\arccos(s_{\max}) + t\,\arccos(s_{\min}), \qquad
# \text{signal\_rate}(t) = \cos\theta(t), \quad \text{noise\_rate}(t) = \sin\theta(t)$$
#
# so the signal rate is `max_signal_rate` = 0.95 at $t=0$ and `min_signal_rate` = 0.02 at $t = 1$.
# The function works elementwise on `diffusion_times` of any shape (the lab passes shape (B, 1, 1, 1)).

# %% nbgrader={"grade": false, "grade_id": "diffusion_schedule", "locked": false, "schema_version": 3, "solution": true, "task": false}
def diffusion_schedule(diffusion_times, min_signal_rate=0.02, max_signal_rate=0.95):
    """The continuous cosine schedule: returns (noise_rates, signal_rates), each float32 shaped like
    diffusion_times."""
    ### BEGIN SOLUTION
    start_angle = math.acos(max_signal_rate)      # theta at t = 0
    end_angle = math.acos(min_signal_rate)        # theta at t = 1
    diffusion_angles = start_angle + diffusion_times * (end_angle - start_angle)
    signal_rates = torch.cos(diffusion_angles)
    noise_rates = torch.sin(diffusion_angles)
    return noise_rates, signal_rates
    ### END SOLUTION


# %% course={"check": "diffusion_schedule", "target": "diffusion_schedule"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_diffusion_schedule", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_diffusion_schedule(diffusion_schedule)
### BEGIN HIDDEN TESTS
assert run_check("diffusion_schedule", diffusion_schedule, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-09", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### The rates over time
#
# The left panel shows both rates against $t$; the right one shows the same points on the unit circle.

# %%
if checks.ready("diffusion_schedule", diffusion_schedule, "the plot"):
    times = torch.linspace(0, 1, 101)
    noise_rates, signal_rates = diffusion_schedule(times)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(times, signal_rates, label="signal rate")
    ax1.plot(times, noise_rates, label="noise rate")
    ax1.set_xlabel("diffusion time t"), ax1.set_ylabel("rate"), ax1.set_title("the lab's schedule"), ax1.legend()
    ax2.plot(signal_rates, noise_rates, ".")
    ax2.set_aspect("equal"), ax2.set_xlabel("signal rate"), ax2.set_ylabel("noise rate")
    ax2.set_title("on the unit circle")
    plt.show()


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-respace", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 4. Fewer steps at the same noise levels
#
# The samplers of lessons 5 and 7 run a network trained on a chain of $T = 1000$ steps on a grid of a few of
# them, 10 say. The 10 steps must then form a forward chain of their own: a short schedule whose betas bring the
# data, step after step, to exactly the noise levels the network was trained at (Nichol and Dhariwal 2021,
# Sec. 4, call this *respacing*).
#
# Write `respace(schedule, timesteps)`:
#
# - `schedule`: a `NoiseSchedule` (`schedule.betas` and `schedule.alpha_bar`, each of shape (T,));
# - `timesteps`: an int64 tensor of shape (K,), strictly increasing, in 0..T-1: the steps the short chain keeps;
# - returns the short chain's K betas, a float tensor of shape (K,), such that after its k-th step the short
#   chain's $\bar\alpha$ equals `schedule.alpha_bar[timesteps[k]]`, for every k. Like every chain, it starts from
#   clean data.
#
# The check tries a linear schedule of 1,000 steps kept at 10 evenly spaced steps; the hidden tests add a cosine
# schedule on an irregular grid, a grid that does not start at 0, and a grid that keeps every step (which must
# give back the original betas). Think first: why is `schedule.betas[timesteps]` not the answer?

# %% nbgrader={"grade": false, "grade_id": "respace", "locked": false, "schema_version": 3, "solution": true, "task": false}
def respace(schedule, timesteps):
    """The betas (K,), float32, of the short chain that keeps only `timesteps` and has the schedule's alpha_bar
    there."""
    ### BEGIN SOLUTION
    alpha_bar = schedule.alpha_bar[timesteps]                                # (K,): the noise levels to keep
    alpha_bar_prev = torch.cat([torch.ones(1, dtype=alpha_bar.dtype), alpha_bar[:-1]])   # 1: clean data first
    return 1 - alpha_bar / alpha_bar_prev       # alpha_bar is a product, so each new alpha is a ratio
    ### END SOLUTION


# %% course={"check": "respace", "target": "respace"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_respace", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_respace(respace)
### BEGIN HIDDEN TESTS
assert run_check("respace", respace, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-respace-plot", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### The short chain against the long one
#
# The grey curve is $\bar\alpha_t$ of the 1,000-step linear schedule. The dots: the cumulative product of
# $1 - \beta$ of your 10-step chain, placed at the steps it keeps. The crosses: the same for the tempting answer,
# ten of the old betas.

# %%
if checks.ready("respace", respace, "the plot"):
    long_chain = NoiseSchedule.linear(T=1000)
    kept = torch.linspace(0, 999, 10).round().long()                  # (10,): 0, 111, ..., 999
    respaced = torch.cumprod(1 - respace(long_chain, kept), 0)        # alpha_bar of the short chain
    picked = torch.cumprod(1 - long_chain.betas[kept], 0)             # ... of ten old betas
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(long_chain.alpha_bar, color="0.6", label="1,000 steps")
    ax.plot(kept, respaced, "o", label="10 steps: respace")
    ax.plot(kept, picked, "x", ms=8, label="10 steps: betas[kept]")
    ax.set_xlabel("step t of the long chain"), ax.set_ylabel(r"$\bar\alpha$"), ax.legend()
    plt.show()
    print(f"last kept step: alpha_bar = {long_chain.alpha_bar[-1]:.2e} (long chain), "
          f"{respaced[-1]:.2e} (respaced), {picked[-1]:.3f} (ten old betas)")

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-respace-after", "locked": true, "schema_version": 3, "solution": false, "task": false}
# The dots sit on the curve: at every kept step the short chain has noised the data exactly as much as the long
# one, so a network trained on the long chain sees the inputs it knows, and a sampler may start from pure noise.
# The ten old betas leave almost all the signal in: they skip the 990 steps in between, and the chain ends at
# $\bar\alpha = 0.904$ (printed above), where the long one stands after 96 of its 1,000 steps. DDIM's grid (lesson 5) and DPM-Solver's (lesson 7) keep
# $\bar\alpha$ at their steps in exactly this way.

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-11", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Next
#
# Worksheet 2 (`exercises/02_forward.ipynb`) uses a schedule to noise images: the forward process.
