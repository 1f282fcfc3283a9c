# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-01", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Worksheet 6: guidance
#
# Companion of lesson 6 (`notebooks/06_guidance.ipynb`). Four functions:
#
# 1. `cfg_combine`: the classifier-free guidance combination of two noise predictions;
# 2. `guided_ddim_sample`: classifier-free guidance inside a DDIM sampler;
# 3. `cfg_loss`: the training loss with **label dropout**, which teaches one network both the conditional
#    and the unconditional prediction; then you train a model and measure what the guidance scale $w$ trades;
# 4. `classifier_guided_eps`: classifier guidance, the gradient of $\log p(y \mid x_t)$ through a noisy classifier.
#
# Class labels are int64 tensors (B,); the label **-1** is the null class ("no label").
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
import torch.nn.functional as F

from course_utils import checks
from course_utils.analytic import GaussianMixtureEps
from course_utils.checks import (check_cfg_combine, check_cfg_loss, check_classifier_guided_eps,
                                 check_guided_ddim_sample, run_check)
from course_utils.data import EIGHT_GAUSSIANS
from course_utils.forward import q_sample
from course_utils.nets import MLPDenoiser
from course_utils.progress import tqdm
from course_utils.samplers import ddim_step, ddim_timesteps
from course_utils.schedules import NoiseSchedule
from course_utils.settings import pick
from course_utils.viz import plot_points

_ = torch.manual_seed(0)          # the same random numbers on every run


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-04", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 1. The guidance combination
#
# Ho and Salimans (2022, Eq. 6) write the guided noise prediction with their scale $w_\text{HS}$ as
#
# $$\tilde\epsilon_\theta(x_t, t, y) = (1 + w_\text{HS})\,\epsilon_\theta(x_t, t, y) - w_\text{HS}\,\epsilon_\theta(x_t, t, \varnothing).$$
#
# The course (lesson 6, and diffusers' `guidance_scale`) uses $w = 1 + w_\text{HS}$ instead, so that $w = 0$ is the
# unconditional model, $w = 1$ the plain conditional one, $w > 1$ pushes further in the direction of the class,
# and $w < 0$ pushes away from it (any real $w$ is valid).
# Rewrite Eq. 6 with the course's $w$, as one prediction plus $w$ times a difference of the two, and check your
# result at $w = 0$ and $w = 1$ before you code it.

# %% nbgrader={"grade": false, "grade_id": "cfg_combine", "locked": false, "schema_version": 3, "solution": true, "task": false}
def cfg_combine(eps_pred_uncond, eps_pred_cond, guidance_scale):
    """The guided prediction at the course's scale w = guidance_scale, any real number (w = 0: eps_pred_uncond,
    w = 1: eps_pred_cond, linear in w), shaped like the inputs."""
    ### BEGIN SOLUTION
    return eps_pred_uncond + guidance_scale * (eps_pred_cond - eps_pred_uncond)
    ### END SOLUTION


# %% course={"check": "cfg_combine", "target": "cfg_combine"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_cfg_combine", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_cfg_combine(cfg_combine)
### BEGIN HIDDEN TESTS
assert run_check("cfg_combine", cfg_combine, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-05", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 2. Classifier-free guidance inside a sampler
#
# Write deterministic DDIM ($\eta = 0$) whose noise prediction is guided towards the classes `y`:
#
# - **Inputs.** `model(x, t, y)` returns a noise prediction shaped like `x` (N, D), for int64 timesteps `t` (N,)
#   and labels `y` (N,), where the label **-1** asks for the unconditional prediction. `x_T` (N, D) is the
#   starting noise, `y` (N,) the class each sample should belong to, `guidance_scale` the $w$ of section 1.
# - **Each step** needs the model's unconditional and conditional predictions at the current `x`, combined by
#   your `cfg_combine`, then one `ddim_step` (imported from `course_utils.samplers`, as in worksheet 5) with that
#   guided prediction.
# - **The time grid** is worksheet 5's: `ddim_timesteps(schedule.T, num_steps)`, the last step going to
#   $\bar\alpha_\text{prev} = 1$.
# - **Output.** The samples (N, D).
#
# The check runs your sampler with the exact conditional noise predictor of eight Gaussians (`GaussianMixtureEps`
# below), with $w$ = 3 and 0 on a linear schedule and $w = 0.5$ on a cosine schedule of $T = 500$ (take $T$ and
# $\bar\alpha$ from the `schedule` argument; the hidden tests add $w = 1.5$ on a cosine schedule of $T = 200$), and
# compares with the course's sampler to 1e-3.

# %% nbgrader={"grade": false, "grade_id": "guided_ddim_sample", "locked": false, "schema_version": 3, "solution": true, "task": false}
def guided_ddim_sample(model, schedule, x_T, y, guidance_scale, num_steps=50):
    """Deterministic DDIM from x_T (N, D) towards the classes y (N,), with classifier-free guidance; returns (N, D)."""
    ### BEGIN SOLUTION
    timesteps = ddim_timesteps(schedule.T, num_steps).tolist()
    null = torch.full_like(y, -1)                                     # the unconditional label
    x = x_T
    with torch.no_grad():
        for k, t in enumerate(timesteps):
            t_prev = timesteps[k + 1] if k + 1 < len(timesteps) else -1
            tt = torch.full((len(x),), t, dtype=torch.long)
            eps_pred = cfg_combine(model(x, tt, null), model(x, tt, y), guidance_scale)
            alpha_bar_prev = schedule.alpha_bar[t_prev] if t_prev >= 0 else torch.tensor(1.0)
            x, _ = ddim_step(x, eps_pred, schedule.alpha_bar[t], alpha_bar_prev)
    return x
    ### END SOLUTION


# %% course={"check": "guided_ddim_sample", "target": "guided_ddim_sample"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_guided_ddim_sample", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_guided_ddim_sample(guided_ddim_sample)
### BEGIN HIDDEN TESTS
assert run_check("guided_ddim_sample", guided_ddim_sample, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-exact", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### Guidance on eight Gaussians, with the exact noise predictor
#
# `GaussianMixtureEps` gives the exact $\epsilon^*$ of the mixture, conditioned on a component `y` or not
# (`y = -1`). Sampling class 0 (the cluster on the right) with growing $w$: $w = 0$ draws all eight clusters,
# $w = 1$ class 0 alone, and a larger $w$ shrinks the class and pushes it outwards, beyond the data's radius of 1.5
# (from these 1,000 points, 400 in quick mode, mean distance from the centre 1.50 at $w = 1$, 1.64 at $w = 3$,
# 1.81 at $w = 8$).

# %%
schedule = NoiseSchedule.linear(T=1000)
exact = GaussianMixtureEps(EIGHT_GAUSSIANS, schedule)
n = pick(1000, 400)
x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
y = torch.zeros(n, dtype=torch.long)

# %%
if checks.ready("guided_ddim_sample", guided_ddim_sample, "guided sampling"):
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.3))
    for ax, w in zip(axes, [0.0, 1.0, 3.0, 8.0]):
        plot_points(guided_ddim_sample(exact, schedule, x_T, y, w), ax=ax, title=f"class 0, w = {w}")
    plt.show()


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-08", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 3. Label dropout
#
# To get $\epsilon_\text{uncond}$ from the same network, training replaces each label by the null class with
# some probability (10-20%). The random choice is an argument here: `drop` is a bool tensor (B,), True where
# the label is dropped. Replace those labels by -1 (`torch.where`), then take the usual loss
# $\|\epsilon - \epsilon_\theta(x_t, t, y)\|^2$ with `q_sample(x0, t, eps, schedule)` (worksheet 2's) and
# `model(xt, t, y)`.

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
# A small MLP learns the eight classes with your loss (20% label dropout), then your sampler draws class 0 with
# growing guidance. The figures quoted below are a full run's; quick mode trains 500 steps instead of 4,000, and
# its rougher model can differ a lot at large $w$ (class 0 may collapse to a single point instead of moving out).

# %%
if checks.ready("cfg_loss", cfg_loss, "the training") and checks.ready("guided_ddim_sample", guided_ddim_sample,
                                                                     "the training"):
    torch.manual_seed(0)
    data, labels = EIGHT_GAUSSIANS.sample(20000, generator=torch.Generator().manual_seed(0))
    model = MLPDenoiser(data_dim=2, hidden_dim=128, num_classes=8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    steps = pick(4000, 500)
    for step in tqdm(range(steps), desc="training"):
        idx = torch.randint(0, len(data), (256,))
        t = torch.randint(0, schedule.T, (256,))
        loss = cfg_loss(model, data[idx], labels[idx], t, torch.randn(256, 2), torch.rand(256) < 0.2, schedule)
        optimizer.zero_grad(), loss.backward(), optimizer.step()
    model.eval()
    print(f"trained {steps} steps, last loss {loss.item():.3f}")
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.3))
    for ax, w in zip(axes, [0.0, 1.0, 3.0, 8.0]):
        plot_points(guided_ddim_sample(model, schedule, x_T, y, w), ax=ax, lim=3.5,   # w = 8 lands near 2.8
                    title=f"trained, class 0, w = {w}")
    plt.show()

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-sweep", "locked": true, "schema_version": 3, "solution": false, "task": false}
# In the figure above, the unconditional prediction of this small, briefly trained model ($w = 0$) blurs the
# eight clusters into a ring; $w = 1$ draws class 0 only; $w = 3$ squeezes it into a thin streak reaching outwards,
# beyond the cluster, and $w = 8$ pushes the whole class to about 2.8 from the centre, where the data has no
# points at all.
#
# ### What does $w$ trade? A sweep
#
# Run the cell: for each $w$ it draws class 0 from the same noise with the trained model and measures three
# things. **On target**: the share of samples nearer to class 0's mean $(1.5, 0)$ than to any other cluster's (how
# often a sample has the class asked for). **Spread**: the RMS distance per coordinate of those samples from their
# own mean (the data's is 0.1: how varied the samples of the class are; below $w = 1$, where few samples are on
# target, it measures the piece of the blurred ring nearest class 0, not the class). **Distance from the centre**: the mean
# distance of all samples from $(0, 0)$ (the clusters lie at 1.5).

# %%
if checks.ready("guided_ddim_sample", guided_ddim_sample, "the sweep") and "model" in globals():
    scales = [0.0, 0.5, 1.0, 2.0, 4.0, 8.0]
    means = torch.tensor(EIGHT_GAUSSIANS.means)
    on_target, spread, distance = [], [], []
    for w in scales:
        x = guided_ddim_sample(model, schedule, x_T, y, w)
        hit = torch.cdist(x, means).argmin(1) == 0
        on_target.append(hit.float().mean().item())
        spread.append(((x[hit] - x[hit].mean(0)) ** 2).mean().sqrt().item() if hit.sum() > 1 else float("nan"))
        distance.append(x.norm(dim=1).mean().item())
        print(f"w = {w:3.1f}: on target {on_target[-1]:6.1%} | spread {spread[-1]:.3f} | "
              f"mean distance from the centre {distance[-1]:.2f}")
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.2))
    ax1.plot(scales, on_target, "o-"), ax1.set_xlabel("guidance scale w"), ax1.set_ylabel("on target")
    ax2.plot(scales, spread, "o-"), ax2.axhline(0.1, color="gray", ls="--", label="data (0.1)")
    ax2.set_xlabel("guidance scale w"), ax2.set_ylabel("spread of class 0"), ax2.legend()
    ax3.plot(scales, distance, "o-"), ax3.axhline(1.5, color="gray", ls="--", label="the clusters (1.5)")
    ax3.set_xlabel("guidance scale w"), ax3.set_ylabel("mean distance from the centre"), ax3.legend()
    plt.tight_layout()
    plt.show()


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-sweep-q", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Interpret your sweep** (not graded, but your instructor may ask). Where does "on target" reach 100%? What
# happens to the spread beyond that $w$, and to the distance from the centre? (In the reference run: 8% on target
# at $w = 0$, 78% at 0.5, 100% from $w = 1$ on; the spread falls from 0.08 at $w = 1$ to 0.05 at $w = 2$, below
# the data's 0.1, rises to 0.15 at $w = 4$ where the samples smear out along a line, and is 0.04 at $w = 8$; the
# distance from the centre grows from 1.50 at $w = 1$ to 2.78 at $w = 8$: the samples leave the data.) Image models show the same
# trade-off: a larger $w$ gives samples that look more like their class and less like each other (Ho and
# Salimans 2022, Fig. 4: FID against Inception score).
#
# ## 4. Classifier guidance
#
# Before classifier-free guidance, Dhariwal and Nichol (2021) steered an *unconditional* model with a separate
# classifier $p_\phi(y \mid x_t, t)$ trained on noisy inputs. Bayes' rule splits the conditional score:
# $\nabla_{x_t} \log p(x_t \mid y) = \nabla_{x_t} \log p(x_t) + \nabla_{x_t} \log p_\phi(y \mid x_t)$, and the noise
# prediction is the score times $-\sqrt{1 - \bar\alpha_t}$ (lesson 6). Guidance multiplies the classifier's term
# by a scale $s$ (`classifier_scale`; Algorithm 2 and Eq. 14 of their paper).
#
# Write the guided noise prediction $\hat\epsilon$:
#
# - **Inputs.** `eps_pred` (B, ...) the model's noise prediction at `xt` (B, ...); `t` int64 (B,); `y` int64 (B,)
#   the target classes; `classifier(xt, t)` returns **logits** (B, K); `schedule.alpha_bar` (T,);
#   `classifier_scale` a float.
# - **The gradient** of $\log p_\phi(y \mid x_t, t)$ with respect to $x_t$, for each sample its own class, through
#   the classifier with `torch.autograd.grad` (the logits are not probabilities). It must work even when the
#   caller runs under `torch.no_grad()` (samplers do), and must not change `xt`.
# - **Output.** $\hat\epsilon$, shaped like `eps_pred`: the prediction moved so that sampling climbs
#   $\log p_\phi(y \mid x_t)$, by `classifier_scale` times the gradient in units of the score.
#
# The check uses a linear noisy classifier, whose gradient is known in closed form, on batches of 4 and 5 samples
# with different classes and shapes, with $s$ = 2 and 0.5 (the hidden tests add a batch of 3 with $s = 10$).

# %% nbgrader={"grade": false, "grade_id": "classifier_guided_eps", "locked": false, "schema_version": 3, "solution": true, "task": false}
def classifier_guided_eps(eps_pred, xt, t, y, classifier, schedule, classifier_scale):
    """eps_hat (B, ...): eps_pred moved along the gradient of log p(y | x_t, t) of a noisy classifier (logits (B, K))."""
    ### BEGIN SOLUTION
    with torch.enable_grad():
        x = xt.detach().requires_grad_(True)
        log_probs = F.log_softmax(classifier(x, t), dim=-1)                     # (B, K)
        selected = log_probs[torch.arange(len(x)), y]                            # (B,) log p(y_i | x_i)
        (grad,) = torch.autograd.grad(selected.sum(), x)                        # each x_i only in its own term
    alpha_bar = schedule.alpha_bar[t].reshape(-1, *([1] * (xt.ndim - 1)))       # (B, 1, ...)
    # score of p(x_t | y) = score of p(x_t) + s grad log p(y | x_t);  eps = -sqrt(1 - alpha_bar_t) score
    return eps_pred - classifier_scale * (1 - alpha_bar).sqrt() * grad
    ### END SOLUTION


# %% course={"check": "classifier_guided_eps", "target": "classifier_guided_eps"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_classifier_guided_eps", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_classifier_guided_eps(classifier_guided_eps)
### BEGIN HIDDEN TESTS
assert run_check("classifier_guided_eps", classifier_guided_eps, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-cg-demo", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### Classifier guidance on eight Gaussians
#
# For the mixture, the exact noisy classifier is known too: $p(y = k \mid x_t) \propto w_k\,
# \mathcal N(x_t; \sqrt{\bar\alpha_t}\mu_k, v_k I)$ with $v_k = \bar\alpha_t \sigma_k^2 + 1 - \bar\alpha_t$ (given below).
# Guiding the exact *unconditional* $\epsilon^*$ towards class 0 with your `classifier_guided_eps`: at $s = 1$
# Bayes' rule is exact, so the samples should match the conditional model's (classifier-free guidance at
# the $w = 1$ panel of section 2). With exact models the two guidances are one knob at every scale: here
# $\epsilon^*(x_t, y) - \epsilon^*(x_t) = -\sqrt{1 - \bar\alpha_t}\,\nabla_{x_t} \log p(y \mid x_t)$ exactly, so the
# classifier at scale $s$ gives classifier-free guidance at $w = s$, and each panel below is the $w = s$ panel of
# section 2. They differ only where the classifier or $\epsilon_\text{uncond}$ is learned, as with the model above.
#
# Below: $s = 0$ draws all eight clusters, $s = 1$ only class 0, with the conditional model's spread (the printed
# difference from the exact conditional sampler is at the level of float32 rounding), and $s = 3$ and $s = 8$ squeeze
# class 0 into a tighter, slightly outward-shifted blob.

# %%
class MixtureClassifier(torch.nn.Module):
    """The exact p(y | x_t, t) of the eight Gaussians: logits log w_k + log N(x_t; sqrt(alpha_bar_t) mu_k, v_k I)."""

    def __init__(self, mixture, schedule):
        super().__init__()
        self.log_w = torch.tensor(mixture.weights).log()                          # (K,)
        self.means, self.var = torch.tensor(mixture.means), torch.tensor(mixture.stds) ** 2   # (K, D), (K,)
        self.alpha_bar = schedule.alpha_bar

    def forward(self, xt, t):
        a = self.alpha_bar[t][:, None]                                            # (B, 1)
        v = a * self.var + 1 - a                                                  # (B, K)
        d2 = ((xt[:, None, :] - a.sqrt()[:, :, None] * self.means) ** 2).sum(-1)  # (B, K)
        return self.log_w - 0.5 * d2 / v - 0.5 * xt.shape[1] * v.log()


def classifier_guided_ddim(classifier_scale, num_steps=50):
    classifier, timesteps, x = MixtureClassifier(EIGHT_GAUSSIANS, schedule), ddim_timesteps(schedule.T, num_steps), x_T
    with torch.no_grad():
        for k, t in enumerate(timesteps.tolist()):
            tt = torch.full((len(x),), t, dtype=torch.long)
            eps_pred = classifier_guided_eps(exact(x, tt), x, tt, y, classifier, schedule, classifier_scale)
            alpha_bar_prev = schedule.alpha_bar[timesteps[k + 1]] if k + 1 < len(timesteps) else torch.tensor(1.0)
            x, _ = ddim_step(x, eps_pred, schedule.alpha_bar[t], alpha_bar_prev)
    return x


if checks.ready("classifier_guided_eps", classifier_guided_eps, "classifier guidance"):
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.3))
    for ax, classifier_scale in zip(axes, [0.0, 1.0, 3.0, 8.0]):
        plot_points(classifier_guided_ddim(classifier_scale), ax=ax,
                    title=f"classifier guidance, s = {classifier_scale}")
    plt.show()
    if checks.ready("guided_ddim_sample", guided_ddim_sample, "the comparison"):
        gap = (classifier_guided_ddim(1.0) - guided_ddim_sample(exact, schedule, x_T, y, 1.0)).abs().max()
        print(f"s = 1 against the exact conditional model (w = 1), same noise: largest difference {gap:.1e}")

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-11", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Question.** Why does guidance with a large $w$ (or $s$) pull the samples *away* from the other clusters,
# beyond the conditional distribution itself? (Hint: $\tilde\epsilon$ follows the gradient of $\log p(y \mid x_t)$
# scaled by $w - 1$, on top of the conditional score; at $s = 1$ classifier guidance adds exactly one such
# gradient to the unconditional score.)
