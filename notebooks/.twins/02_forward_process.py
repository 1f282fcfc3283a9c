# %% [markdown]
# # Lesson 2: The forward process
#
# Lesson 1 chose *how much* noise to add at each step. This lesson is about the process itself:
#
# 1. the Markov chain $q(x_t \mid x_{t-1})$, one small step at a time;
# 2. its **closed form** $q(x_t \mid x_0)$, which jumps to any $t$ in one go, and an empirical check that
#    the two agree (means, variances, histograms);
# 3. a digit noised at a $t$ of your choice (a slider);
# 4. the true **posterior** $q(x_{t-1} \mid x_t, x_0)$, the target that the reverse process imitates, and its
#    variance $\tilde\beta_t$ next to $\beta_t$;
# 5. 2-D toy data diffusing into a Gaussian, as a row of snapshots and as an animation.
#
# No training here either; the notebook runs in well under a minute.

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
from IPython.display import HTML

from course_utils.data import load_images_or_digits, make_toy
from course_utils.device import get_device
from course_utils.forward import q_posterior, q_sample, q_sample_chain
from course_utils.schedules import NoiseSchedule
from course_utils.settings import pick, quick_mode, say_if_quick
from course_utils.viz import animate_trajectory, label_log_axis, plot_points, show_images
from course_utils.widgets import noising_explorer

torch.manual_seed(0)
device = get_device()
NUM_COPIES = pick(4000, 800)     # copies of one digit pushed through the chain (empirical check)
NUM_POINTS = pick(2000, 1000)    # 2-D toy points
NUM_FRAMES = pick(30, 15)        # frames of the animation
T = 1000
schedule = NoiseSchedule.linear(T).to(device)      # DDPM's schedule; everything below works for any schedule
print(f"device: {device}, quick mode: {quick_mode()}, copies: {NUM_COPIES}, points: {NUM_POINTS}")
say_if_quick()

# %% [markdown]
# ## 1. The Markov chain $q(x_t \mid x_{t-1})$
#
# The forward process adds noise one step at a time (DDPM, Eq. 2):
# $$
# q(x_t \mid x_{t-1}) = \mathcal N\big(x_t;\ \sqrt{\alpha_t}\,x_{t-1},\ \beta_t I\big)
# \quad\Longleftrightarrow\quad
# x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{\beta_t}\,\epsilon_t, \quad \epsilon_t \sim \mathcal N(0, I),
# $$
# with a fresh $\epsilon_t$ at every step. It is a *Markov* chain: $x_t$ depends on the past only through
# $x_{t-1}$. Every step shrinks the signal a little ($\sqrt{\alpha_t} < 1$) and adds a little noise.
# Written out, the chain is a loop; `q_sample_chain` runs the same loop (with `return_all=True` it keeps
# every state). Let us push one digit through it:

# %%
x_images, _, source = load_images_or_digits("mnist", split="test", limit=16)   # (16, 1, H, W) in [-1, 1]
x0 = x_images[:1].to(device)                                          # (1, 1, H, W)


def chain_inline(x0, t, schedule, generator):
    """From the clean x0, x <- sqrt(alpha_i) x + sqrt(beta_i) eps_i for code steps i = 0..t; returns x_t."""
    x = x0
    for i in range(t + 1):
        eps = torch.randn(x.shape, generator=generator, device=x.device)
        x = schedule.alphas[i].sqrt() * x + schedule.betas[i].sqrt() * eps
    return x


ours = chain_inline(x0, 99, schedule, torch.Generator(device=device).manual_seed(0))
package = q_sample_chain(x0, 99, schedule, generator=torch.Generator(device=device).manual_seed(0))
print("inline chain equals q_sample_chain (same seed):", torch.allclose(ours, package))

states = q_sample_chain(x0, T - 1, schedule, generator=torch.Generator(device=device).manual_seed(0),
                        return_all=True)                              # (T + 1, 1, 1, H, W): x_0 first
show_at = [0, 50, 100, 200, 300, 400, 500, 600, 800, 1000]
show_images(states[show_at, 0], nrow=len(show_at), figsize=(11, 1.8),
            title="the chain, one step at a time: states after " + ", ".join(map(str, show_at)) + " steps")
plt.show()

# %% [markdown]
# ## 2. The closed form $q(x_t \mid x_0)$
#
# A sum of independent Gaussians is Gaussian, so we can unroll the chain. Two steps:
# $$
# x_t = \sqrt{\alpha_t}\big(\sqrt{\alpha_{t-1}}\,x_{t-2} + \sqrt{\beta_{t-1}}\,\epsilon_{t-1}\big) + \sqrt{\beta_t}\,\epsilon_t
# = \sqrt{\alpha_t\alpha_{t-1}}\,x_{t-2} + \underbrace{\sqrt{\alpha_t\beta_{t-1}}\,\epsilon_{t-1} + \sqrt{\beta_t}\,\epsilon_t}_{\text{variance } \alpha_t(1-\alpha_{t-1}) + 1 - \alpha_t \;=\; 1 - \alpha_t\alpha_{t-1}} .
# $$
# By induction, after $t$ steps the coefficient of $x_0$ is $\sqrt{\bar\alpha_t}$ and the noise variance is
# $1 - \bar\alpha_t$ (DDPM, Eq. 4):
# $$
# q(x_t \mid x_0) = \mathcal N\big(x_t;\ \sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big)
# \quad\Longleftrightarrow\quad
# x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon .
# $$
# This is what makes training cheap: a training example at step $t$ costs one line, not $t$ steps.
# The induction step for the variance, $1 - \bar\alpha_t = \alpha_t(1 - \bar\alpha_{t-1}) + \beta_t$, can be
# checked on the whole schedule at once:

# %%
# NBVAL_CHECK_OUTPUT
var_closed = 1 - schedule.alpha_bar.double()                                   # 1 - alpha_bar_t
var_recursion = schedule.alphas.double() * (1 - schedule.alpha_bar_prev.double()) + schedule.betas.double()
print("1 - alpha_bar_t == alpha_t (1 - alpha_bar_{t-1}) + beta_t for every t:",
      torch.allclose(var_closed, var_recursion, atol=1e-6))

# %% [markdown]
# ### The chain and the closed form agree, empirically
#
# The closed form is a statement about *distributions*: a single run of the chain and a single draw of
# `q_sample` give different images. So take many copies of the same digit, run each through $t$ steps of
# the chain, and draw as many samples of the closed form directly. Per pixel, both sets should have mean
# $\sqrt{\bar\alpha_t}\,x_0$ and variance $1-\bar\alpha_t$.

# %%
t_check = 300
copies = x0.expand(NUM_COPIES, -1, -1, -1)                                         # (N, 1, H, W)
x_chain = q_sample_chain(copies, t_check, schedule, generator=torch.Generator(device=device).manual_seed(1),
                         progress=True)
eps = torch.randn(copies.shape, generator=torch.Generator(device=device).manual_seed(2), device=device)
x_closed = q_sample(copies, torch.full((NUM_COPIES,), t_check, device=device), eps, schedule)

mean_theory = schedule.sqrt_alpha_bar[t_check] * x0[0]                             # sqrt(alpha_bar_t) x_0
var_theory = 1 - schedule.alpha_bar[t_check]                                       # 1 - alpha_bar_t
se_mean = (var_theory / NUM_COPIES).sqrt()                                         # standard error of a mean
se_var = var_theory * math.sqrt(2 / (NUM_COPIES - 1))                              # ... of a Gaussian variance
print(f"t = {t_check}: alpha_bar_t = {schedule.alpha_bar[t_check]:.4f}, {NUM_COPIES} copies, "
      f"{x0[0].numel()} pixels")
for name, x in [("chain", x_chain), ("closed form", x_closed)]:
    mean_err = (x.mean(0) - mean_theory).abs().max() / se_mean
    var_err = (x.var(0) - var_theory).abs().max() / se_var
    print(f"{name:>12}: largest deviation over all pixels, in standard errors: mean {mean_err:.2f}, "
          f"variance {var_err:.2f}")

# %% [markdown]
# With hundreds of pixels, the *largest* deviation of a correct sampler is typically 3-4 standard errors
# (the maximum of ~800 standard normals); a wrong formula is off by many more ($\bar\alpha_t$ for
# $\sqrt{\bar\alpha_t}$ moves the mean of a white pixel by about 19 of them at $t = 300$, 8.5 in quick mode's
# fewer copies). What it cannot see is an
# index off by one: `alpha_bar[t-1]` for `alpha_bar[t]` moves that mean by a sixth of a standard error (the
# worksheet's checks test the indices exactly). A pass/fail version, with a threshold of 5.5 standard errors:

# %%
# NBVAL_CHECK_OUTPUT
for name, x in [("chain", x_chain), ("closed form", x_closed)]:
    ok_mean = bool(((x.mean(0) - mean_theory).abs() / se_mean).max() < 5.5)
    ok_var = bool(((x.var(0) - var_theory).abs() / se_var).max() < 5.5)
    print(f"{name}: mean matches sqrt(alpha_bar_t) x_0: {ok_mean}; variance matches 1 - alpha_bar_t: {ok_var}")

# %% [markdown]
# And the whole distribution, not just two moments: histograms of one stroke pixel ($x_0 = +1$ there)
# and one background pixel ($x_0 = -1$), from both samplers, over the density of
# $\mathcal N(\sqrt{\bar\alpha_t}\,x_0,\ 1-\bar\alpha_t)$:

# %%
flat0 = x0[0].flatten()
pixels = {"stroke pixel": int(flat0.argmax()), "background pixel": int(flat0.argmin())}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for ax, (label, p) in zip(axes, pixels.items()):
    mu, sd = mean_theory.flatten()[p].item(), var_theory.sqrt().item()
    grid = torch.linspace(mu - 4 * sd, mu + 4 * sd, 200)
    ax.hist(x_chain.flatten(1)[:, p].cpu(), bins=50, density=True, alpha=0.5, label="Markov chain, 301 steps")
    ax.hist(x_closed.flatten(1)[:, p].cpu(), bins=50, density=True, alpha=0.5, label="closed form q_sample")
    ax.plot(grid, torch.exp(-(grid - mu) ** 2 / (2 * sd ** 2)) / (sd * math.sqrt(2 * math.pi)), "k--",
            label=rf"$\mathcal{{N}}({mu:.2f}, {sd ** 2:.2f})$")
    ax.set_xlabel(f"value of x_t at the {label} (x_0 = {flat0[p].item():+.0f})"), ax.set_ylabel("density")
    ax.set_title(f"{label}, t = {t_check}"), ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to notice.** The two histograms lie on top of each other and on the dashed density; the two
# pixels differ only by the *mean* $\pm\sqrt{\bar\alpha_t}$, the spread is the same everywhere. That shift
# of the mean is all that is left of the image at step $t$.
#
# ## 3. A digit noised at a chosen $t$
#
# Move the slider: the same eight digits, with the same $\epsilon$, noised with the closed form at step $t$
# under the linear and the cosine schedule. The right panel is the histogram of all pixel values of
# $x_t$; it starts as two spikes at $-1$ and $+1$ (MNIST pixels are mostly black or white) and melts into
# $\mathcal N(0, 1)$.

# %%
noising_explorer(x_images[:8], {"linear": NoiseSchedule.linear(T), "cosine": NoiseSchedule.cosine(T)},
                 device=device)

# %% [markdown]
# ## 4. The true posterior $q(x_{t-1} \mid x_t, x_0)$
#
# Generation runs the chain backwards, and needs $q(x_{t-1} \mid x_t)$, which depends on the whole data
# distribution and is intractable. But if we also know $x_0$, Bayes' rule on two Gaussians gives a
# Gaussian in closed form (DDPM, Eqs. 6-7):
# $$
# q(x_{t-1} \mid x_t, x_0) = \mathcal N\big(x_{t-1};\ \tilde\mu_t(x_t, x_0),\ \tilde\beta_t I\big),
# $$
# $$
# \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0
#             + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t,
# \qquad
# \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t .
# $$
# The reverse process $p_\theta(x_{t-1} \mid x_t)$ is trained to match it, with the network's guess of
# $x_0$ in place of the true one (lesson 5). `q_posterior(x0, xt, t, schedule)` returns $\tilde\mu_t$ and
# $\tilde\beta_t$.
#
# **Checking Bayes' rule by simulation.** Fix a scalar $x_0$, draw many pairs: $x_{t-1} \sim q(x_{t-1}\mid x_0)$
# (closed form), then $x_t$ by one step of the chain. Within these pairs, $x_{t-1}$ given $x_t$ is Gaussian
# with a mean linear in $x_t$; a least-squares fit of $x_{t-1}$ on $x_t$ must recover the slope
# (coefficient of $x_t$), the intercept (coefficient of $x_0$ times $x_0$) and, as the residual variance,
# $\tilde\beta_t$.

# %%
n_pairs, x0_value = 50 * NUM_COPIES, 0.7
gen = torch.Generator(device=device).manual_seed(3)
print(f"{'t':>4} {'':>10} {'slope':>8} {'intercept':>10} {'variance':>10}")
for t in [1, 10, 100, 500]:
    x0_pairs = torch.full((n_pairs, 1), x0_value, device=device)
    t_prev = torch.full((n_pairs,), t - 1, device=device)
    x_prev = q_sample(x0_pairs, t_prev, torch.randn(x0_pairs.shape, generator=gen, device=device), schedule)
    x_t = schedule.alphas[t].sqrt() * x_prev + schedule.betas[t].sqrt() * torch.randn(
        x_prev.shape, generator=gen, device=device)                            # one step of the chain
    A = torch.cat([x_t, torch.ones_like(x_t)], dim=1).double()                # regress x_{t-1} on [x_t, 1]
    coef = torch.linalg.lstsq(A, x_prev.double()).solution.flatten()
    resid_var = (x_prev.double() - A @ coef[:, None]).var().item()
    # the package: the mean is coef_x0 x0 + coef_xt x_t, so read the two coefficients off q_posterior
    probe = torch.tensor([[0.0], [1.0]], device=device)
    mean, var = q_posterior(torch.full_like(probe, x0_value), probe, torch.tensor([t, t], device=device), schedule)
    slope, intercept = (mean[1] - mean[0]).item(), mean[0].item()
    print(f"{t:4d} {'fitted':>10} {coef[0].item():8.4f} {coef[1].item():10.4f} {resid_var:10.2e}")
    print(f"{'':4} {'q_posterior':>10} {slope:8.4f} {intercept:10.4f} {var[0].item():10.2e}")

# %% [markdown]
# The fitted numbers match the formulas to about three decimal places (two in quick mode, with five times
# fewer pairs; the residual error is sampling noise).
# Note the pattern: at small $t$ the mean leans on $x_0$ (intercept large, slope small), at large $t$ it
# leans on $x_t$. In the code, `posterior_variance[0]` is exactly 0: at the first step $x_{t-1}$ *is* $x_0$.
#
# ### $\tilde\beta_t$ against $\beta_t$
#
# DDPM's sampler adds noise of variance $\sigma_t^2$ at each reverse step, and the paper tried both
# $\sigma_t^2 = \beta_t$ and $\sigma_t^2 = \tilde\beta_t$, with similar results. Here is why:

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for label, sched in [("linear", NoiseSchedule.linear(T)), ("cosine", NoiseSchedule.cosine(T))]:
    frac = (torch.arange(T) + 1) / T                 # code index t is the paper's step t + 1
    line, = axes[0].plot(frac, sched.betas, label=rf"$\beta_t$ ({label})")
    axes[0].plot(frac[1:], sched.posterior_variance[1:], "--", color=line.get_color(),
                 label=rf"$\tilde\beta_t$ ({label})")
    axes[1].plot(frac[1:], (sched.posterior_variance / sched.betas)[1:], label=label)
axes[0].set_xscale("log"), axes[0].set_yscale("log")
axes[0].set_xlabel("t / T (log scale)"), axes[0].set_ylabel("variance (log scale)")
axes[0].set_title(r"$\beta_t$ (solid) and $\tilde\beta_t$ (dashed)"), axes[0].legend(fontsize=8)
axes[1].set_xscale("log"), axes[1].set_xlabel("t / T (log scale)")
axes[1].set_ylabel(r"$\tilde\beta_t / \beta_t = (1-\bar\alpha_{t-1})/(1-\bar\alpha_t)$")
axes[1].set_title(r"the ratio $\tilde\beta_t / \beta_t$"), axes[1].legend(fontsize=8)
for ax in axes:
    label_log_axis(ax, "x", [0.001, 0.01, 0.1, 1])          # plain fractions, not 10^-3 ... 10^0
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to notice.** $\tilde\beta_t \le \beta_t$ always (the ratio $(1-\bar\alpha_{t-1})/(1-\bar\alpha_t)$
# is below 1), and the two are practically equal after the first few percent of the chain (the dashed
# curves hide behind the solid ones there). They differ only at the very start: the ratio is 0.85 at 1% of the chain,
# and $\tilde\beta_t = 0$ at the very first step (not on the log axis): knowing $x_0$ pins $x_{t-1}$ down almost exactly.
# These are the two extremes for the reverse noise: $\beta_t$ is right when $x_0$ is pure noise,
# $\tilde\beta_t$ when $x_0$ is a single known point (Ho et al., Sec. 3.2).
#
# ## 5. 2-D data diffusing into a Gaussian
#
# Images have hundreds of dimensions; points in the plane show the same process where we can see the
# whole distribution. A Swiss roll, noised with the closed form at several steps:

# %%
x_toy, _ = make_toy("swiss_roll", n=NUM_POINTS)                        # (N, 2)
x_toy = x_toy.to(device)
colour = x_toy[:, 0].cpu()                                             # colour each point by where it started
eps_toy = torch.randn(x_toy.shape, generator=torch.Generator(device=device).manual_seed(4), device=device)
snap_ts = [0, 50, 100, 200, 300, 500, 999]

fig, axes = plt.subplots(2, 4, figsize=(10.4, 5.6))                   # two rows: legible on a laptop
axes = axes.ravel()
for ax, t in zip(axes, snap_ts):
    xt = q_sample(x_toy, torch.full((NUM_POINTS,), t, device=device), eps_toy, schedule)
    plot_points(xt, ax=ax, c=colour, title=rf"t = {t}, $\bar\alpha_t$ = {schedule.alpha_bar[t].item():.2f}")
plot_points(torch.randn(NUM_POINTS, 2, generator=torch.Generator().manual_seed(5)), ax=axes[-1],
            title=r"$\mathcal{N}(0, I)$ for reference")
for ax in axes:
    ax.set_xlabel("$x_1$")
axes[0].set_ylabel("$x_2$"), axes[4].set_ylabel("$x_2$")
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to notice.** The roll first blurs (small $t$: each point jitters in place), then shrinks towards
# the origin while the blur grows (the $\sqrt{\bar\alpha_t}$ factor), and by $t = 500$ it is a round blob in
# which the colours, i.e. where each point came from, are mostly mixed: a trace is left (the purple points
# still lean left), since `schedule.sqrt_alpha_bar[500]` $\approx 0.28$ of the roll remains (code index 500: the panel's $t$). The last panel is a
# fresh sample of $\mathcal N(0, I)$: at $t = 999$ the colours are thoroughly mixed and the two are
# indistinguishable. Reversing this, from the blob
# back to the roll, is what a diffusion model learns.
#
# The same process as an animation, this time run as the Markov chain step by step
# (`q_sample_chain(..., return_all=True)` keeps all $T+1$ states; `animate_trajectory` shows a subset of
# them as frames; press play):

# %%
trajectory = q_sample_chain(x_toy, T - 1, schedule, generator=torch.Generator(device=device).manual_seed(6),
                            return_all=True).cpu()                    # (T + 1, N, 2), x_0 first
final = trajectory[-1].double()
mean, cov = final.mean(0), torch.cov(final.T)
print(f"trajectory: {tuple(trajectory.shape)} (T + 1 states of {NUM_POINTS} points)")
print(f"final state: mean ({mean[0]:.2f}, {mean[1]:.2f}), "
      f"covariance [[{cov[0, 0]:.2f}, {cov[0, 1]:.2f}], [{cov[1, 0]:.2f}, {cov[1, 1]:.2f}]]")
with plt.rc_context({"figure.dpi": 80}):                              # small frames keep the notebook light
    animation_html = animate_trajectory(trajectory, num_frames=NUM_FRAMES, interval=150)
HTML(animation_html)

# %% [markdown]
# The final mean is about $(0, 0)$ and the covariance about the identity: the chain forgets its
# starting distribution. That is why sampling can start from $\mathcal N(0, I)$.
#
# ## Summary
#
# - One step: $x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{\beta_t}\,\epsilon_t$. Many steps collapse into one:
#   $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$; we checked that both give the same
#   distribution.
# - Given $x_0$, the reverse step is Gaussian with mean $\tilde\mu_t$ (a mix of $x_0$ and $x_t$) and
#   variance $\tilde\beta_t \approx \beta_t$ (except at the first steps).
# - Any data distribution diffuses into $\mathcal N(0, I)$.
#
# **Next:** lesson 3 ([`03_unet.ipynb`](03_unet.ipynb)) builds the network $\epsilon_\theta(x_t, t)$ that will learn to undo
# this process.
#
# **Exercises:** open the worksheet [`exercises/02_forward.ipynb`](../exercises/02_forward.ipynb).
