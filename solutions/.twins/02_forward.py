# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-01", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Worksheet 2: the forward process
#
# Companion of lesson 2 (`notebooks/02_forward_process.ipynb`). Four functions of increasing difficulty:
#
# 1. `q_sample`: noise clean data to step $t$ in one jump;
# 2. `predict_x0`: undo it when the noise is known (what a sampler does with the *predicted* noise);
# 3. `q_posterior`: the mean and variance of the true reverse step $q(x_{t-1} \mid x_t, x_0)$;
# 4. `q_sample_chain`: the forward process as it is defined, one step at a time, every state returned.
#
# Shapes: `x0`, `xt`, `eps` are (B, ...) (images (B, C, H, W) or points (B, D)); `t` is an int64 tensor of
# shape (B,) with values in 0..T-1 (code index `t` is the paper's step t+1, see GLOSSARY.md).
# `schedule` is a `course_utils.schedules.NoiseSchedule`; `schedule.alpha_bar[t]` is $\bar\alpha_t$,
# `schedule.alpha_bar_prev[t]` is $\bar\alpha_{t-1}$ (1 at t = 0), `schedule.betas[t]`, `schedule.alphas[t]`.
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
from course_utils.checks import check_predict_x0, check_q_posterior, check_q_sample, check_q_sample_chain, run_check
from course_utils.data import load_images
from course_utils.schedules import NoiseSchedule
from course_utils.viz import label_log_axis, show_images

torch.manual_seed(0)
schedule = NoiseSchedule.linear(T=1000)


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-04", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 1. Noising in one jump
#
# Composing the Gaussian steps up to $t$ (the steps 0, 1, ..., $t$ of the code's numbering, $t + 1$ of them; $t$ in
# the paper's, which counts from 1) gives a Gaussian (DDPM Eq. 4):
#
# $$q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big)
# \quad\Longleftrightarrow\quad x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\ \ \epsilon \sim \mathcal N(0, I).$$
#
# The noise `eps` is given as an argument, so the function is deterministic. `schedule.alpha_bar[t]` has
# shape (B,): reshape it to (B, 1, ..., 1) so that it broadcasts over `x0` (`x0.ndim` tells you how many ones).

# %% nbgrader={"grade": false, "grade_id": "q_sample", "locked": false, "schema_version": 3, "solution": true, "task": false}
def q_sample(x0, t, eps, schedule):
    """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, shaped like x0.

    x0, eps: (B, ...); t: int64 (B,) in 0..T-1; schedule: a NoiseSchedule.
    """
    ### BEGIN SOLUTION
    alpha_bar = schedule.alpha_bar[t].reshape(-1, *([1] * (x0.ndim - 1)))   # (B, 1, ..., 1)
    return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps
    ### END SOLUTION


# %% course={"check": "q_sample", "target": "q_sample"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_q_sample", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_q_sample(q_sample)
### BEGIN HIDDEN TESTS
assert run_check("q_sample", q_sample, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-05", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### A digit, noised
#
# scikit-learn's 8x8 digits (shipped with scikit-learn, no download), enlarged to 16x16, noised at a few steps
# with the same noise.

# %%
x0_digits, _ = load_images("digits", image_size=16, limit=8)      # (8, 1, 16, 16) in [-1, 1]
if checks.ready("q_sample", q_sample, "the picture"):
    eps = torch.randn_like(x0_digits[:1])
    steps = [0, 50, 100, 250, 500, 750, 999]
    row = torch.cat([q_sample(x0_digits[:1], torch.tensor([step]), eps, schedule) for step in steps])
    show_images(row, nrow=len(steps), title="x_t at t = " + ", ".join(map(str, steps)))
    plt.show()


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-07", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 2. Back to $x_0$ when the noise is known
#
# If the noise $\epsilon$ that made $x_t$ is known, part 1's equation
# $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$ can be solved for $x_0$. Do it on paper, then
# write the result as `predict_x0`. (DDIM's Eq. 9 uses the same expression with the network's $\epsilon_\theta$ in
# place of $\epsilon$: the sampler's guess $\hat x_0$ of the clean image.)
#
# Two ways to test your algebra before the check does: feeding it `q_sample(x0, t, eps, schedule)` and the same
# `eps` must give back `x0` (up to float32 round-off), and for $\bar\alpha_t$ near 1 (small $t$) $\hat x_0$ must be
# close to $x_t$ itself.

# %% nbgrader={"grade": false, "grade_id": "predict_x0", "locked": false, "schema_version": 3, "solution": true, "task": false}
def predict_x0(xt, t, eps, schedule):
    """x0_pred: the x0 for which q_sample(x0, t, eps, schedule) == xt; shaped like xt."""
    ### BEGIN SOLUTION
    alpha_bar = schedule.alpha_bar[t].reshape(-1, *([1] * (xt.ndim - 1)))   # (B, 1, ..., 1)
    return (xt - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()
    ### END SOLUTION


# %% course={"check": "predict_x0", "target": "predict_x0"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_predict_x0", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_predict_x0(predict_x0)
### BEGIN HIDDEN TESTS
assert run_check("predict_x0", predict_x0, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-08", "locked": true, "schema_version": 3, "solution": false, "task": false}
# Round trip: noise with `q_sample`, recover with `predict_x0`. With the true noise the error is rounding
# only; at large $t$ it grows, because we divide by a small $\sqrt{\bar\alpha_t}$: errors in a predicted
# noise are amplified the same way, which is why samplers do not jump from $x_T$ to $x_0$ in one step.

# %%
if checks.ready("q_sample", q_sample, "the round trip") and checks.ready("predict_x0", predict_x0, "the round trip"):
    eps = torch.randn_like(x0_digits)
    for step in [10, 500, 999]:
        t = torch.full((8,), step)
        error = (predict_x0(q_sample(x0_digits, t, eps, schedule), t, eps, schedule) - x0_digits).abs().max()
        print(f"t = {step:3d}: sqrt(alpha_bar) = {schedule.sqrt_alpha_bar[step]:.4f}, round-trip error {error:.1e}")


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-10", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 3. The true reverse step
#
# Given both $x_t$ and $x_0$, the previous state is Gaussian (DDPM Eq. 6-7):
#
# $$q(x_{t-1} \mid x_t, x_0) = \mathcal N(\tilde\mu_t, \tilde\beta_t I), \qquad
# \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0 + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t,
# \qquad \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t .$$
#
# Return the mean (shaped like `x0`) and the variance of shape (B, 1, ..., 1). At $t = 0$ ($\bar\alpha_{t-1} = 1$)
# the variance is 0 and the mean is $x_0$.

# %% nbgrader={"grade": false, "grade_id": "q_posterior", "locked": false, "schema_version": 3, "solution": true, "task": false}
def q_posterior(x0, xt, t, schedule):
    """Mean (B, ...) and variance (B, 1, ..., 1) of q(x_{t-1} | x_t, x_0) (DDPM Eq. 7)."""
    ### BEGIN SOLUTION
    shape = (-1, *([1] * (x0.ndim - 1)))
    alpha_bar = schedule.alpha_bar[t].reshape(shape)
    alpha_bar_prev = schedule.alpha_bar_prev[t].reshape(shape)
    beta = schedule.betas[t].reshape(shape)
    alpha = schedule.alphas[t].reshape(shape)
    mean = (alpha_bar_prev.sqrt() * beta / (1 - alpha_bar) * x0
            + alpha.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar) * xt)
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar) * beta
    return mean, variance
    ### END SOLUTION


# %% course={"check": "q_posterior", "target": "q_posterior"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_q_posterior", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_q_posterior(q_posterior)
### BEGIN HIDDEN TESTS
assert run_check("q_posterior", q_posterior, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-11", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### $\tilde\beta_t$ against $\beta_t$
#
# The two variances DDPM's sampler may use for $\sigma_t^2$: they agree except over the first few dozen steps,
# which the logarithmic axis stretches ($\tilde\beta_t / \beta_t$ is 0.45 at $t = 1$, 0.86 at $t = 10$ and 0.96 at
# $t = 50$), down to $\tilde\beta_0 = 0$.

# %%
if checks.ready("q_posterior", q_posterior, "the plot"):
    t = torch.arange(schedule.T)
    x = torch.zeros(schedule.T, 1)
    _, variance = q_posterior(x, x, t, schedule)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(t, schedule.betas, label=r"$\beta_t$")
    ax.plot(t, variance.flatten(), "--", label=r"$\tilde\beta_t$ (yours)")
    ax.set_xscale("log"), ax.set_yscale("log"), ax.set_xlabel("t (log scale; t = 0 lies off it)"), ax.set_ylabel("variance")
    label_log_axis(ax, "x", [1, 10, 100, 1000])
    ax.set_title("reverse-step variances")
    ax.legend()
    plt.show()


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-chain", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 4. The chain, one step at a time
#
# `q_sample` jumps from $x_0$ to $x_t$ in one go (Eq. 4). That jump is a consequence; the forward process itself
# is *defined* one step at a time, as a Markov chain (DDPM Eq. 2):
#
# $$q(x_t \mid x_{t-1}) = \mathcal N\big(\sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big).$$
#
# Write `q_sample_chain(x0, t, schedule, generator=None)`, which runs this chain from `x0` and returns every state:
#
# - `x0`: (B, ...); `t`: a Python int in 0..T-1 (a code index: the state it names comes after the steps
#   0, 1, ..., t); `generator`: a `torch.Generator` to pass to `torch.randn`, or None;
# - returns one tensor of shape (t + 2, B, ...): `x0` first, then the state after each step, the last one $x_t$.
#
# The check runs 8,000 chains on a short schedule with large betas and judges them by statistics, not by your
# random numbers: how each step scales the previous state, whether the noise a step adds is new and has the right
# variance. So states drawn from `x0` in one jump each will not pass, even though each of them has the right
# distribution: the states must form one chain. It also runs the chain twice with generators of the same seed:
# the two runs must be equal, so draw every noise from `generator`; and twice in a row with one generator: the two
# runs must differ, so don't reseed it (or torch) inside your function.

# %% nbgrader={"grade": false, "grade_id": "q_sample_chain", "locked": false, "schema_version": 3, "solution": true, "task": false}
def q_sample_chain(x0, t, schedule, generator=None):
    """Every state of the forward chain from x0 through steps 0..t, stacked: (t + 2, B, ...), x0 first."""
    ### BEGIN SOLUTION
    states, x = [x0], x0
    for i in range(t + 1):                                     # code steps 0..t: the paper's steps 1..t+1
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype)     # fresh noise at every step
        x = schedule.alphas[i].sqrt() * x + schedule.betas[i].sqrt() * eps
        states.append(x)
    return torch.stack(states)
    ### END SOLUTION


# %% course={"check": "q_sample_chain", "target": "q_sample_chain"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_q_sample_chain", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_q_sample_chain(q_sample_chain)
### BEGIN HIDDEN TESTS
assert run_check("q_sample_chain", q_sample_chain, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-chain-plot", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### The chain and the jump agree
#
# Left: five chains from the same $x_0 = 1.5$ (one number each) through 300 steps of the linear schedule, with the
# band $\sqrt{\bar\alpha_t}\,x_0 \pm 2\sqrt{1-\bar\alpha_t}$ that Eq. 4 predicts. Right: where 5,000 chains end
# at $t = 299$, against 5,000 one-jump draws of your `q_sample`.

# %%
if checks.ready("q_sample_chain", q_sample_chain, "the plot") and checks.ready("q_sample", q_sample, "the plot"):
    g = torch.Generator().manual_seed(0)
    t_end, x_start = 299, torch.full((5000, 1), 1.5)
    chains = q_sample_chain(x_start, t_end, schedule, generator=g)           # (301, 5000, 1)
    jumps = q_sample(x_start, torch.full((5000,), t_end), torch.randn(5000, 1, generator=g), schedule)
    steps = torch.arange(-1, t_end + 1)                                     # -1: x0, before the first step
    a = torch.cat([torch.ones(1), schedule.alpha_bar[:t_end + 1]])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.5))
    ax1.plot(steps, chains[:, :5, 0], lw=0.8)
    ax1.fill_between(steps, a.sqrt() * 1.5 - 2 * (1 - a).sqrt(), a.sqrt() * 1.5 + 2 * (1 - a).sqrt(), color="0.85",
                     label=r"Eq. 4: mean $\pm$ 2 std")
    ax1.set_xlabel("step t"), ax1.set_ylabel("first coordinate of x_t")
    ax1.set_title("five chains"), ax1.legend(loc="lower left")
    bins = torch.linspace(-4, 5, 61)
    ax2.hist(chains[-1, :, 0], bins=bins, alpha=0.5, density=True, label="chain, 300 steps")
    ax2.hist(jumps[:, 0], bins=bins, alpha=0.5, density=True, label="q_sample, one jump")
    ax2.set_xlabel("first coordinate of x_t"), ax2.set_ylabel("density")
    ax2.set_title(f"x_t at t = {t_end}"), ax2.legend()
    plt.show()
    print(f"t = {t_end}: chain mean {chains[-1].mean():.3f}, std {chains[-1].std():.3f}; jump mean "
          f"{jumps.mean():.3f}, std {jumps.std():.3f}; Eq. 4: mean {1.5 * a[-1].sqrt():.3f}, "
          f"std {(1 - a[-1]).sqrt():.3f}")

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-chain-after", "locked": true, "schema_version": 3, "solution": false, "task": false}
# Each chain wanders, yet the crowd stays inside the band, and after 300 steps the two histograms match: a sum
# of independent Gaussian steps is Gaussian, its mean shrinks by $\sqrt{\alpha}$ at each step and the variances
# add up to $1 - \bar\alpha_t$. That is Eq. 4, and it is why training draws $x_t$ with one `q_sample` (one random
# draw) instead of running $t + 1$ steps. The chain still matters: the reverse process of worksheet 5 undoes it
# one step at a time.

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-13", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Next
#
# Worksheet 3 (`exercises/03_unet.ipynb`) builds the pieces of the noise predictor $\epsilon_\theta(x_t, t)$.
