# %% [markdown]
# # Lesson 5: DDPM and DDIM sampling
#
# A trained noise predictor $\epsilon_\theta(x_t, t)$ does not generate anything by itself: a *sampler*
# turns it into images. This lesson compares the two classic samplers on the same network.
#
# 1. **DDPM** (Ho et al. 2020, Algorithm 2): 1000 small stochastic steps, with two choices of the noise
#    variance.
# 2. **DDIM** (Song, Meng, Ermon 2021): the same network, a family of samplers indexed by $\eta$, on a
#    sub-sequence of the timesteps, so 10-100 steps instead of 1000. We check numerically that
#    $\eta = 1$ on the full grid *is* DDPM.
# 3. The reverse process, seen: $x_t$ and the network's guess of $x_0$ along the sampling steps, for
#    images and for 2-D points, with a slider over the step.
# 4. Wall time measured here for DDPM 1000 steps and DDIM 10, 20, 50, 100 steps, and their sample quality
#    (FID on the course classifier's features, and the share of confidently classified samples) from a
#    stored run on 300 samples each; a widget for the number of steps and $\eta$.
# 5. Because $\eta = 0$ DDIM is deterministic and invertible, images can be mapped back to noise
#    (**DDIM inversion**) and **interpolated** in noise space.
#
# **Time.** About 4 to 10 minutes on a 2-core CPU in full mode (3.9 and 5.7 minutes measured on two that compute
# bfloat16 natively, 9.5 on one with AVX2 only: the start page's table); three quarters of it are the two
# 1000-step DDPM runs, 1000 network calls per sample. With `COURSE_QUICK=1`
# the sample counts shrink and it takes a minute or two.

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
import time

import matplotlib.pyplot as plt
import torch
import ipywidgets as widgets

import torch.nn.functional as F

from course_utils import metrics
from course_utils.analytic import GaussianMixtureEps
from course_utils.checkpoints import load_pretrained
from course_utils.data import EIGHT_GAUSSIANS, have, load_images_or_digits, make_toy
from course_utils.device import get_device
from course_utils.forward import q_posterior
from course_utils.guidance import predict_eps
from course_utils.progress import tqdm
from course_utils.samplers import ddim_invert, ddim_sample, ddim_sigma, ddim_step, ddim_timesteps, ddpm_sample
from course_utils.settings import pick, quick_mode, say_if_quick, wrapped
from course_utils.viz import label_log_axis, plot_points, plot_trajectory_2d, show_images

torch.manual_seed(0)
device = get_device()
N_EVAL = pick(48, 8)         # samples per sampler for the quality table
N_SHOW = pick(16, 4)                     # samples shown per figure
print(f"device: {device}, quick mode: {quick_mode()}, samples per sampler: {N_EVAL}")
say_if_quick()

# %%
name, model, schedule, card = load_pretrained("mnist-unet", "digits-unet-cond", device=device)
image_shape = tuple(card["image_shape"])         # (C, H, W)
card_dataset = card["dataset"]["name"]           # the data it was trained on ("mnist" or "digits")
print(f"model: {name}, images {image_shape}, T = {schedule.T}")


# %% [markdown]
# ## 1. DDPM: Algorithm 2
#
# DDPM samples by running the learned reverse chain from pure noise, one timestep at a time
# (Ho et al. 2020, Algorithm 2):
#
# $$
# x_T \sim \mathcal N(0, I), \qquad
# x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta(x_t, t)\Big) + \sigma_t z,
# \qquad z \sim \mathcal N(0, I) \text{ for } t > 1,\; z = 0 \text{ at the last step.}
# $$
#
# The first term is the mean of the true posterior $q(x_{t-1} \mid x_t, x_0)$ with $x_0$ replaced by the
# network's guess. The variance $\sigma_t^2$ is not learned; the paper tries two values:
#
# * $\sigma_t^2 = \beta_t$: the right choice if the data were pure noise, $x_0 \sim \mathcal N(0, I)$;
# * $\sigma_t^2 = \tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\,\beta_t$ (the posterior
#   variance): the right choice if the data were a single point.
#
# Real data sit in between; Ho et al. report similar results for both. `ddpm_sample(..., variance="posterior")`
# uses $\tilde\beta_t$ (the default), `variance="beta"` uses $\beta_t$.
#
# **If you also read the lab handout:** it writes the mean as
# $\frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\big)\epsilon_\theta(x_t, t)$, with the
# closing parenthesis misplaced. The noise prediction belongs *inside*, multiplied by
# $\frac{\beta_t}{\sqrt{1-\bar\alpha_t}}$, as above and in Ho et al.'s Algorithm 2:
# $\mu_\theta(x_t, t) = \frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta(x_t, t)\big)$.
#
# Written out, Algorithm 2 is a short loop. We run it on 2-D points with the *exact* noise predictor of a
# mixture of 8 Gaussians (`GaussianMixtureEps`, no training involved), and check that it matches
# `ddpm_sample` draw for draw (same generator, same order of random numbers), up to round-off: the package
# multiplies by a stored $1/\sqrt{\alpha_t}$ where the loop divides by $\sqrt{\alpha_t}$, and over 1,000 steps these
# last-digit differences grow, for the worst of 2,000 points, to the thousandths or less printed below (from 1e-4
# to about 4e-3 on the CPUs we ran it on: the rounding differs between them), where a wrong coefficient would move points
# by tenths.

# %%
def ddpm_loop(model, schedule, shape, generator, variance="posterior"):
    """Algorithm 2 of DDPM, one line per step."""
    x = torch.randn(shape, generator=generator)                                 # x_T ~ N(0, I)
    sigma2 = schedule.posterior_variance if variance == "posterior" else schedule.betas
    for i in reversed(range(schedule.T)):                                       # code t = T-1, ..., 0
        t = torch.full((shape[0],), i, dtype=torch.long)
        eps_pred = model(x, t)                                                  # eps_theta(x_t, t)
        mean = (x - schedule.betas[i] / schedule.sqrt_one_minus_alpha_bar[i] * eps_pred) / schedule.alphas[i].sqrt()
        z = torch.randn(shape, generator=generator) if i > 0 else torch.zeros(shape)  # no noise at the end
        x = mean + sigma2[i].sqrt() * z                                         # x_{t-1}
    return x


cpu_schedule = schedule.to("cpu")
exact_eps = GaussianMixtureEps(EIGHT_GAUSSIANS, cpu_schedule)
points = {}
for variance in ("posterior", "beta"):
    ours = ddpm_loop(exact_eps, cpu_schedule, (2000, 2), torch.Generator().manual_seed(0), variance)
    package = ddpm_sample(exact_eps, cpu_schedule, (2000, 2), variance=variance,
                          generator=torch.Generator().manual_seed(0), progress=False)
    points[variance] = package
    print(f"variance={variance!r}: largest difference between our loop and ddpm_sample: "
          f"{(ours - package).abs().max():.1e}")

# %%
# NBVAL_CHECK_OUTPUT
print("our Algorithm 2 equals ddpm_sample for both variances:",
      all(torch.allclose(ddpm_loop(exact_eps, cpu_schedule, (200, 2), torch.Generator().manual_seed(0), v),
                         ddpm_sample(exact_eps, cpu_schedule, (200, 2), variance=v, progress=False,
                                     generator=torch.Generator().manual_seed(0)), atol=1e-4)
          for v in ("posterior", "beta")))

# %%
x_data, _ = make_toy("8gaussians", n=2000)
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
plot_points(x_data, ax=axes[0], title="data: 8 Gaussians (std 0.1)", c="tab:green")
plot_points(points["posterior"], ax=axes[1], title=r"DDPM, $\sigma_t^2 = \tilde\beta_t$")
plot_points(points["beta"], ax=axes[2], title=r"DDPM, $\sigma_t^2 = \beta_t$")
fig.suptitle("Algorithm 2 with the exact noise predictor, 1000 steps")
fig.tight_layout()
plt.show()
for variance, x in points.items():
    radius = x.norm(dim=1)
    print(wrapped(f"{variance:>9}: mean distance from the centre {radius.mean():.3f} "
                  f"(data: {x_data.norm(dim=1).mean():.3f}), mean distance from the ring r = 1.5 "
                  f"{(radius - 1.5).abs().mean():.3f} (data: {(x_data.norm(dim=1) - 1.5).abs().mean():.3f})",
                  indent=" " * 11))


# %% [markdown]
# With the exact $\epsilon$ both choices reproduce the mixture: eight blobs at the right distance from the
# centre. The printed spreads (the mean distance from the ring of radius 1.5, so the blobs' radial width only: a
# blob of std 0.1 gives $0.1\sqrt{2/\pi} \approx 0.080$, where lesson 6's distance to the blob's centre gives 0.12)
# say which variance fits better here: with $\sigma_t^2 = \beta_t$ the blobs are as wide as the data's (0.080
# and 0.080), with the smaller $\tilde\beta_t$ they come out about 5%
# too narrow (0.076). $\tilde\beta_t$ is the right variance when $x_0$ is known exactly; here each blob has a
# width of its own (std 0.1), which the larger $\beta_t$ happens to account for. The difference is small,
# too small to see in the scatter plots, as Ho et al. found for images.
#
# ### From the ELBO to the noise predictor
#
# Why is the mean of Algorithm 2 written with $\epsilon_\theta$? DDPM's training objective (the ELBO) has
# one term per step, $\mathrm{KL}\big(q(x_{t-1} \mid x_t, x_0)\,\|\,p_\theta(x_{t-1} \mid x_t)\big)$. Both are
# Gaussians: $p_\theta$ with the fixed variance $\sigma_t^2$, $q$ with $\tilde\beta_t$, and neither variance depends
# on $\theta$, so the term is
# $\frac{1}{2\sigma_t^2}\|\tilde\mu_t(x_t, x_0) - \mu_\theta(x_t, t)\|^2$ plus a constant: the network's mean
# must imitate the posterior mean of lesson 2,
#
# $$
# \tilde\mu_t(x_t, x_0) = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1 - \bar\alpha_t}\,x_0
#     + \frac{\sqrt{\alpha_t}\,(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t}\,x_t .
# $$
#
# Solve the forward process $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$ for
# $x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon)/\sqrt{\bar\alpha_t}$ and substitute. Since
# $\sqrt{\bar\alpha_{t-1}}/\sqrt{\bar\alpha_t} = 1/\sqrt{\alpha_t}$, the coefficient of $x_t$ becomes
# $\frac{\beta_t + \alpha_t(1 - \bar\alpha_{t-1})}{\sqrt{\alpha_t}(1 - \bar\alpha_t)} = \frac{1 - \bar\alpha_t}{\sqrt{\alpha_t}(1 - \bar\alpha_t)} = \frac{1}{\sqrt{\alpha_t}}$
# and that of $\epsilon$ is $-\frac{\beta_t}{\sqrt{\alpha_t}\sqrt{1-\bar\alpha_t}}$:
#
# $$
# \tilde\mu_t = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon\Big).
# $$
#
# So give $\mu_\theta$ the same form with $\epsilon_\theta(x_t, t)$ in place of the unknown $\epsilon$: the
# KL term becomes $\frac{\beta_t^2}{2\sigma_t^2\alpha_t(1-\bar\alpha_t)}\|\epsilon - \epsilon_\theta(x_t, t)\|^2$, and
# dropping the weight in front gives lesson 4's $L_\text{simple}$. Equivalently: the DDPM mean *is* the
# posterior mean with $x_0$ replaced by the network's guess
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta)/\sqrt{\bar\alpha_t}$. The cell checks it with lesson 2's
# `q_posterior`, for the exact noise predictor of the 2-D mixture at five timesteps.

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(4)
worst = 0.0
for i in (999, 500, 100, 10, 1):
    t = torch.full((500,), i)
    xt = torch.randn(500, 2, generator=g)
    eps_pred = exact_eps(xt, t)                                                     # eps_theta(x_t, t)
    x0_pred = (xt - cpu_schedule.sqrt_one_minus_alpha_bar[i] * eps_pred) / cpu_schedule.sqrt_alpha_bar[i]
    mu_tilde, _ = q_posterior(x0_pred, xt, t, cpu_schedule)                         # posterior mean, x_0 -> x0_pred
    mu_eps = (xt - cpu_schedule.betas[i] / cpu_schedule.sqrt_one_minus_alpha_bar[i] * eps_pred) / cpu_schedule.alphas[i].sqrt()
    worst = max(worst, ((mu_tilde - mu_eps).abs() / (1 + mu_eps.abs())).max().item())
print("mu_tilde(x_t, x0_pred) == the eps-form of the DDPM mean, t = 999, 500, 100, 10, 1:", worst < 1e-4)

# %% [markdown]
# Now the image model. The cell below draws `N_EVAL` samples with DDPM ($\tilde\beta_t$, 1000 network calls
# per sample) and keeps the wall time for the table of section 4, then `N_SHOW` with $\sigma_t^2 = \beta_t$
# from the same starting noise $x_T$. The two panels show different digits: DDPM adds fresh noise at every
# step, and a batch of 16 draws other numbers than a batch of 48 from the same seed, so after the first step
# the two runs part ways. Compare the panels for quality, not digit by digit (DDIM, below, is the sampler
# whose digit is fixed by $x_T$).

# %%
def timed(fn):
    """(result, seconds) of fn(), waiting for the GPU to finish if there is one."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


x_T = torch.randn(N_EVAL, *image_shape, generator=torch.Generator().manual_seed(0)).to(device)  # shared by every sampler
samples, seconds = {}, {}
samples["DDPM 1000"], seconds["DDPM 1000"] = timed(lambda: ddpm_sample(
    model, schedule, x_T.shape, x_T=x_T, generator=torch.Generator(device=device).manual_seed(1)))
ddpm_beta = ddpm_sample(model, schedule, (N_SHOW, *image_shape), x_T=x_T[:N_SHOW], variance="beta",
                        generator=torch.Generator(device=device).manual_seed(1))
print(f"DDPM, 1000 steps, {N_EVAL} samples: {seconds['DDPM 1000']:.1f} s")

fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
show_images(samples["DDPM 1000"][:N_SHOW], ax=axes[0], title=r"DDPM, $\sigma_t^2 = \tilde\beta_t$ (posterior)")
show_images(ddpm_beta, ax=axes[1], title=r"DDPM, $\sigma_t^2 = \beta_t$")
plt.show()

# %% [markdown]
# ## 2. DDIM: the same network, fewer steps
#
# Song et al. noticed that the training loss only involves the marginals $q(x_t \mid x_0)$, never the
# chain $x_{t-1} \to x_t$. Many reverse processes share those marginals, so one trained $\epsilon_\theta$
# serves them all. DDIM's step from $t$ to an earlier $t'$ (their Eq. 12; their $\alpha_t$ is our
# $\bar\alpha_t$):
#
# $$
# \hat x_0 = \frac{x_t - \sqrt{1 - \bar\alpha_t}\,\epsilon_\theta(x_t, t)}{\sqrt{\bar\alpha_t}}, \qquad
# x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1 - \bar\alpha_{t'} - \sigma_t^2}\;\epsilon_\theta(x_t, t) + \sigma_t z,
# $$
#
# $$
# \sigma_t(\eta) = \eta \sqrt{\frac{1 - \bar\alpha_{t'}}{1 - \bar\alpha_t}}\sqrt{1 - \frac{\bar\alpha_t}{\bar\alpha_{t'}}}.
# $$
#
# Read it as: guess the clean image, then re-noise it to the level of $t'$, re-using the predicted noise
# as the "direction pointing to $x_t$" and adding fresh noise of size $\sigma_t$ (the lab handout writes
# this last term as $\sigma_t^2 z$, a typo: $\sigma_t$ is a standard deviation, so the noise added is
# $\sigma_t z$, as in the DDIM paper's Eq. 12 and in `ddim_step`). With $\eta = 0$ there is
# no fresh noise: sampling is a deterministic function of $x_T$. The step works for any $t' < t$, so DDIM
# visits only a sub-sequence $\tau$ of the timesteps. `ddim_timesteps(T, S)` spaces $S$ of them evenly
# (the DDIM paper's "linear" choice, $\tau_i = \lfloor c\,i \rfloor$, Appendix D.2):

# %%
# NBVAL_CHECK_OUTPUT
for S in (10, 20):
    print(wrapped(f"S = {S}: {ddim_timesteps(1000, S).tolist()}", indent=" " * 8))
print("S = 1000: the full grid", ddim_timesteps(1000, 1000)[:3].tolist(), "...", ddim_timesteps(1000, 1000)[-3:].tolist())

# %% [markdown]
# ### Where the steps fall: leading and trailing grids
#
# This grid counts *up* from 0 in strides of $T/S$ (diffusers calls it **leading** spacing), so its first
# step is not the noisiest timestep $T - 1 = 999$ but $T - T/S$: 900 for 10 steps, and 500 for 2 steps. The
# sampler still starts from $x_T \sim \mathcal N(0, I)$ and treats it as $x_{500}$, although a real $x_{500}$
# is not pure noise: there $\bar\alpha_t = 0.078$ and 28% of the image's amplitude ($\sqrt{0.078}$) is still
# in it. With 10 steps or more the first $\bar\alpha$ is tiny and the mismatch harmless; with 2 steps it is
# not (set `steps` to 2 in the widget of section 5). **Trailing** spacing (Lin et al. 2024, "Common
# diffusion noise schedules and sample steps are flawed") counts *down* from $T - 1$ instead,
# $\tau_k = \mathrm{round}(T - kT/S) - 1$: 999 and 499 for 2 steps, so the first step starts where $x_T$
# really is noise. The lab's continuous-time sampler is trailing too: its diffusion time $t \in [0, 1]$
# starts at $t = 1$, where the signal rate is at its minimum (0.02, almost pure noise), and goes down by
# $1/S$ per step. `ddim_sample(..., timesteps=...)` takes any descending grid, so you can try both. In the left panel below,
# each row's dots are its grid, and the hollow ring at the far left is where every grid's last step goes: clean data,
# $\bar\alpha = 1$ (from $t = 499$ in one step for trailing $S = 2$).

# %%
def trailing_timesteps(T, num_steps):
    """Trailing spacing (Lin et al. 2024): round(T - k T / S) - 1, k = 0..S-1; [999, 499] for T = 1000, S = 2."""
    return (T - torch.arange(num_steps) * T / num_steps).round().long() - 1


T = cpu_schedule.T
grids = {}
for S in (2, 10):
    grids[f"leading, S = {S}"] = ddim_timesteps(T, S)
    grids[f"trailing, S = {S}"] = trailing_timesteps(T, S)
    grids[f"lab, S = {S} (time x {T})"] = (T * (1 - torch.arange(S) / S)).round().long()   # t = 1, 1 - 1/S, ...

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 3.4), gridspec_kw=dict(width_ratios=[1.4, 1]))
for row, (label, taus) in enumerate(grids.items()):
    ax0.plot(taus, [row] * len(taus), "o", color=f"C{row % 3}")
    ax0.plot(-40, row, "o", mfc="none", color=f"C{row % 3}")          # every grid's last step goes to clean data
    ax0.annotate("start", (taus[0], row), textcoords="offset points", xytext=(6, 3), fontsize=8)
ax0.axvline(-20, color="0.8", lw=0.8)
ax0.set(yticks=range(len(grids)), yticklabels=list(grids), xlim=(-60, T + 80),
        xlabel="code timestep t (0 almost clean, 999 noisiest; the lab: time x 1000); left of the line: clean data",
        title="where each grid's steps fall (sampling goes right to left)")
ax0.invert_yaxis()
ax1.plot(torch.arange(T), cpu_schedule.alpha_bar, color="gray")
for S, marker, size in ((2, "o", 13), (10, "s", 6)):      # S = 2's hollow rings around S = 10's squares
    for kind, color in (("leading", "C0"), ("trailing", "C1")):
        first = grids[f"{kind}, S = {S}"][0].item()
        ax1.plot(first, cpu_schedule.alpha_bar[first], marker, color=color, ms=size, mfc="none" if S == 2 else color,
                 mew=2, label=f"{kind}, S = {S}: start at t = {first}")
ax1.set(xlabel="timestep t", ylabel=r"$\bar\alpha_t$", title="the signal left where sampling starts")
ax1.legend(fontsize=8)
fig.tight_layout()
plt.show()
for S in (2, 10):
    lead, trail = grids[f"leading, S = {S}"][0].item(), grids[f"trailing, S = {S}"][0].item()
    print(f"S = {S:>2}: leading starts at t = {lead} (alpha_bar {cpu_schedule.alpha_bar[lead]:.2e}), "
          f"trailing at t = {trail} (alpha_bar {cpu_schedule.alpha_bar[trail]:.2e})")

# %% [markdown]
# ### $\eta = 1$ on the full grid is DDPM
#
# With $t' = t - 1$ and $\eta = 1$, $\sigma_t^2$ becomes $\frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\big(1 - \alpha_t\big) = \tilde\beta_t$,
# the posterior variance, and the DDIM mean becomes DDPM's. Three checks, from the formula to whole runs:
#
# 1. $\sigma_t(1)^2 = \tilde\beta_t$ for every $t$;
# 2. one step: `ddim_step` with $\eta = 1$ and DDPM's update, given the same $x_t$, the same $\epsilon$ and the
#    same noise $z$, land on the same $x_{t-1}$;
# 3. whole runs: `ddim_sample(num_steps=T, eta=1)` and `ddpm_sample` from the same seed give the same samples
#    (up to float32 round-off accumulated over 1000 steps).

# %%
# NBVAL_CHECK_OUTPUT
sigma2 = torch.stack([ddim_sigma(cpu_schedule, t, t - 1, eta=1.0) ** 2 for t in range(1, cpu_schedule.T)])
print("1. sigma_t(eta=1)^2 == tilde beta_t for t = 1..T-1:",
      torch.allclose(sigma2, cpu_schedule.posterior_variance[1:], rtol=1e-3))

g = torch.Generator().manual_seed(3)
worst = 0.0
for i in (999, 500, 100, 10, 1):
    xt = torch.randn(500, 2, generator=g)
    z = torch.randn(500, 2, generator=g)
    eps_pred = exact_eps(xt, torch.full((500,), i))
    x_ddim, _ = ddim_step(xt, eps_pred, cpu_schedule.alpha_bar[i], cpu_schedule.alpha_bar[i - 1], eta=1.0, noise=z)
    x_ddpm = ((xt - cpu_schedule.betas[i] / cpu_schedule.sqrt_one_minus_alpha_bar[i] * eps_pred)
              / cpu_schedule.alphas[i].sqrt() + cpu_schedule.posterior_variance[i].sqrt() * z)
    worst = max(worst, (x_ddim - x_ddpm).abs().max().item())
print("2. one DDIM step (eta=1) == one DDPM step, same noise:", worst < 1e-4)

run_ddim = ddim_sample(exact_eps, cpu_schedule, (2000, 2), num_steps=cpu_schedule.T, eta=1.0,
                       generator=torch.Generator().manual_seed(0), progress=True)
run_ddpm = ddpm_sample(exact_eps, cpu_schedule, (2000, 2), generator=torch.Generator().manual_seed(0), progress=True)
print("3. DDIM(S=T, eta=1) == DDPM, whole runs from the same seed:", torch.allclose(run_ddim, run_ddpm, atol=1e-2))

# %%
print(f"largest difference, step check: {worst:.1e}; whole runs: {(run_ddim - run_ddpm).abs().max():.1e} "
      "(float32 round-off over 1000 steps)")

# %% [markdown]
# ## 3. The reverse process, seen
#
# What happens between $x_T$ and $x_0$? At every step the sampler holds a noisy $x_t$ and, from the
# network's $\epsilon_\theta(x_t, t)$, a guess of the clean image
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta)/\sqrt{\bar\alpha_t}$ (the first half of the DDIM
# update). `ddim_sample(..., return_trajectory=True)` returns every $x_t$; one more network call per step
# gives the $\hat x_0$ of each. The figures show 8 of the states, more of them near the end, where most
# of the visible change happens. Below, DDIM with $\eta = 0$ on 8 images (one of them followed across the
# steps) and on 2,000 points of the 8-Gaussian toy data, driven by its exact noise predictor.

# %%
SEEN_STEPS = pick(50, 20)
x_T_seen = torch.randn(8, *image_shape, generator=torch.Generator().manual_seed(11)).to(device)
_, trajectory = ddim_sample(model, schedule, x_T_seen.shape, x_T=x_T_seen, num_steps=SEEN_STEPS, progress=False,
                            return_trajectory=True)                          # (S + 1, 8, C, H, W), x_T first
taus = ddim_timesteps(schedule.T, SEEN_STEPS).tolist()                      # the t of trajectory[k], k < S
x0_preds = []
with torch.no_grad():
    for k, i in enumerate(taus):
        xt = trajectory[k].to(device)
        eps_pred = predict_eps(model, xt, torch.full((len(xt),), i, device=device))
        x0_preds.append(((xt - schedule.sqrt_one_minus_alpha_bar[i] * eps_pred) / schedule.sqrt_alpha_bar[i]).cpu())
x0_preds.append(trajectory[-1])                                              # after the last step: the sample
x0_preds = torch.stack(x0_preds)                                             # (S + 1, 8, C, H, W)
step_labels = [f"t = {i}" for i in taus] + ["x_0"]

shown = sorted({round(f * SEEN_STEPS) for f in (0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.96, 1.0)})  # 8 states, more near the end
fig, axes = plt.subplots(2, 1, figsize=(10, 3.7))
show_images(trajectory[shown, 0], nrow=len(shown), ax=axes[0], title="x_t")
show_images(x0_preds[shown, 0], nrow=len(shown), ax=axes[1], title="the network's guess x0_pred at the same steps",
            col_labels=[step_labels[k] for k in shown])
fig.suptitle(f"one sample, DDIM {SEEN_STEPS} steps (images clipped to [-1, 1])")
fig.tight_layout()
plt.show()

_, points_trajectory = ddim_sample(exact_eps, cpu_schedule, (2000, 2), num_steps=SEEN_STEPS, progress=False,
                                   generator=torch.Generator().manual_seed(0), return_trajectory=True)
fig = plot_trajectory_2d(points_trajectory[shown], num_frames=len(shown), labels=[step_labels[k] for k in shown])
fig.suptitle(f"2-D points, DDIM {SEEN_STEPS} steps with the exact noise predictor")
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to notice.** The $x_t$ row stays noise-like down to about $t = 480$ (the first half of the 50
# steps); the digit surfaces at $t = 280$, is plain by $t = 80$ (a faint
# noise is left in the background) and clean by $t = 20$. The $\hat x_0$ row runs ahead of it: a
# noisy blob at $t = 980$, a blurry digit-like average at $t = 680$, at $t = 480$ already the final digit's
# upper loop and slanted stroke (its lower loop still open: it closes by $t = 280$, into the 8 that the remaining
# steps only sharpen): the sampler decides the coarse shape at high noise and the details at low noise. The 2-D points do the same: the cloud stays one Gaussian blob down to about $t = 280$, is still a filled
# disc (a little thinner in the middle) at $t = 180$, is a ring of eight visible clumps at $t = 80$, and the
# clumps tighten into the eight blobs by $t = 20$. Move the slider
# to step through all the states. (In quick mode the figure shows 20 steps, so its panels sit at other times
# than those quoted: read them by position, the first half of the row noise-like, the digit appearing in the
# second half.)

# %%
def reverse_process_explorer(k=SEEN_STEPS // 2):
    fig = plt.figure(figsize=(12, 3.2))
    ax_xt, ax_x0, ax_pts = fig.add_subplot(2, 3, (1, 2)), fig.add_subplot(2, 3, (4, 5)), fig.add_subplot(1, 3, 3)
    show_images(trajectory[k], nrow=8, ax=ax_xt, title=f"x_t, state {k} of {SEEN_STEPS} ({step_labels[k]})")
    show_images(x0_preds[k], nrow=8, ax=ax_x0, title="x0_pred")
    plot_points(points_trajectory[k], ax=ax_pts, title=f"2-D points, {step_labels[k]}")
    fig.tight_layout()
    plt.show()


_ = widgets.interact(reverse_process_explorer, k=widgets.IntSlider(value=SEEN_STEPS // 2, min=0, max=SEEN_STEPS,
                                                                 description="step", continuous_update=False))

# %% [markdown]
# ## 4. How many steps? Time and quality
#
# Now the comparison that matters in practice: DDPM with 1000 steps against deterministic DDIM
# ($\eta = 0$) with 10, 20, 50 and 100 steps, all from the same starting noise $x_T$.
#
# **Quality** is measured with the course's metric (`course_utils.metrics`): the Fréchet distance
# between the course classifier's features of generated and of real test images (FID; lower is better;
# 0 = same feature statistics), and KID, a kernel version of the same idea that is unbiased for small
# sample counts. FID with a few hundred samples is biased upwards, so compare rows of one table (same
# number of samples) and not with FID figures from papers (Inception features, 50,000 samples).
# To see how low FID can go with this few samples, the table starts with real training images scored the
# same way: that is the floor, not 0.
#
# **KID can be negative.** KID estimates a squared distance between two distributions, which is never
# negative, but the estimate is *unbiased*: its random errors average out to zero, so when the true
# distance is about 0 (real images against real images) the estimate falls below 0 about half the time.
# A negative KID means "no difference this sample size can detect"; read it as 0, within the estimate's
# noise, which is large with 48 samples.
#
# The live run below uses `N_EVAL` = 48 samples per sampler (8 in quick mode) so that the lesson stays within
# its time budget. That is enough to time the samplers, not to rank them: with 48 samples every FID sits just above
# the real-data floor (with quick mode's 8, FID and KID are noise: a sampler can even score below the floor). Ranking them needs more samples; section 4's figure loads a stored run on 300.

# %%
feature_net = metrics.feature_classifier(device)        # the course classifier (mnist-classifier)


def to_metric_size(x):
    """The metric's classifier reads 28x28 images; other sizes are resized (bilinear)."""
    return x if tuple(x.shape[-2:]) == (28, 28) else F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)


x_ref, _, ref_name = load_images_or_digits(card_dataset, split="test", image_size=image_shape[-1])
real_mnist = have("mnist", ref_name, cell="scores the samples against real MNIST images with the MNIST classifier's "
                  "features")                   # the metric means nothing on other images
if real_mnist:
    reference_features = metrics.features(to_metric_size(x_ref[:2000]), feature_net)
    reference_description = f"{len(reference_features)} real {ref_name} test images"


def sample_quality(x):
    """FID and KID of images x (N, C, H, W) in [-1, 1] against the reference test images."""
    f = metrics.features(to_metric_size(x.float().cpu()), feature_net)
    return dict(fid=metrics.fid_from_features(f, reference_features), kid=metrics.kid_from_features(f, reference_features)[0])


if real_mnist:
    x_real, _, _ = load_images_or_digits(card_dataset, split="train", image_size=image_shape[-1], limit=N_EVAL)
    floor = sample_quality(x_real)
    print(f"{N_EVAL} real training images against {reference_description}: FID {floor['fid']:.2f}, "
          f"KID {floor['kid']:.4f}")

# %%
for steps in (10, 20, 50, 100):
    key = f"DDIM {steps}"
    samples[key], seconds[key] = timed(lambda: ddim_sample(model, schedule, x_T.shape, x_T=x_T, num_steps=steps, eta=0.0))

if real_mnist:
    quality = {key: sample_quality(x) for key, x in samples.items()}
    print(f"{'sampler':<10} {'network calls':>13} {'wall time (s)':>14} {'ms / sample':>12} {'FID':>8} {'KID':>8}")
    print(f"{'real data':<10} {0:>13} {'':>14} {'':>12} {floor['fid']:>8.2f} {floor['kid']:>8.4f}")
    for key in samples:
        calls = int(key.split()[1])
        print(f"{key:<10} {calls:>13} {seconds[key]:>14.1f} {1000 * seconds[key] / N_EVAL:>12.1f} "
              f"{quality[key]['fid']:>8.2f} {quality[key]['kid']:>8.4f}")
    print(f"({N_EVAL} samples per sampler, on {device}; reference: {reference_description})")
else:                                                  # the times need no data; FID and KID need MNIST (see above)
    print(f"{'sampler':<10} {'network calls':>13} {'wall time (s)':>14} {'ms / sample':>12}")
    for key in samples:
        print(f"{key:<10} {int(key.split()[1]):>13} {seconds[key]:>14.1f} {1000 * seconds[key] / N_EVAL:>12.1f}")
    print(f"({N_EVAL} samples per sampler, on {device}; no FID or KID without MNIST)")

# %% [markdown]
# With 48 samples the FIDs differ by less than their own noise, and the KIDs scatter by a few tenths, the real
# images' own included (KID is unbiased, so a set of real images can score below 0). To separate the samplers
# we load a stored run of the same comparison with 300 samples per sampler
# (`course_utils/checkpoints/runs/sampler_quality_n300.json`, written from the output of
# `python bench/bench_quality.py --n 300 --threads 1`: the same model, all samplers from one $x_T$, FID and
# KID against the 10,000 MNIST test images). Its DDPM row alone took 44 minutes, which is why it is not
# re-run here. It adds a second measure: the share of samples that a held-out classifier (not the metric's
# own) labels with probability above 0.9, "confident". Its error bars are binomial,
# $\pm\sqrt{p(1-p)/n}$ (one standard error). FID has no error bar: the run drew one set of 300 samples per
# sampler, and an honest spread would need several independent sets (or a bootstrap over them), which
# were not stored. What this notebook *can* show is how much FID moves from one set of 300 images to
# another: the green band is the FID of four random sets of 300 real training images, scored the same way.

# %%
from course_utils.checkpoints import load_run

stored = load_run("sampler_quality_n300")               # course_utils/checkpoints/runs/sampler_quality_n300.json
n_stored = stored["n"]
print(wrapped(f"stored run: {stored['command']}, n = {n_stored} per sampler; {stored['conditions']}"))
print(f"{'sampler':<10} {'calls':>6} {'seconds':>8} {'FID':>6} {'KID':>8} {'confident > 0.9':>18}")
for row in stored["rows"]:
    se = (row["confident"] * (1 - row["confident"]) / n_stored) ** 0.5
    print(f"{row['sampler']:<10} {row['network_calls']:>6} {row['seconds']:>8.1f} {row['fid']:>6.2f} {row['kid']:>8.4f} "
          f"{row['confident']:>10.1%} ± {se:.1%}")

real_fids = []
if real_mnist:                                         # the images loaded, not the model's card, decide
    all_test_features = metrics.features(to_metric_size(x_ref), feature_net, progress=True)   # all 10,000 test images
    x_real_pool, _, _ = load_images_or_digits("mnist", split="train", image_size=image_shape[-1], limit=3000)
    pool_features = metrics.features(to_metric_size(x_real_pool), feature_net)
    subset_generator = torch.Generator().manual_seed(0)
    for _ in range(4):                                                                  # 4 random sets of 300
        subset = torch.randperm(len(pool_features), generator=subset_generator)[:n_stored].numpy()
        real_fids.append(metrics.fid_from_features(pool_features[subset], all_test_features))
    print(f"{n_stored} real training images (4 random sets) against {len(all_test_features)} test images: FID "
          + ", ".join(f"{f:.2f}" for f in real_fids))
else:
    print("(the stored run is for mnist-unet; this kernel has no MNIST, so the real-data band is not computed)")

# %%
fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(14, 3.6))
labels = [row["sampler"] for row in stored["rows"]]
positions = range(len(labels))
colors = ["tab:red" if label.startswith("DDPM") else "tab:blue" for label in labels]
ax0.scatter(positions, [row["fid"] for row in stored["rows"]], c=colors, zorder=3)
if real_fids:
    ax0.axhspan(min(real_fids), max(real_fids), color="tab:green", alpha=0.25,
                label=f"{n_stored} real training images\n(4 random sets: lowest to highest)")
    ax0.legend(fontsize=8)
ax0.set(xticks=list(positions), xticklabels=labels, ylim=(0, None), ylabel="FID (lower is better)",
        title=f"FID, {n_stored} samples each (no error bars)")
shares = [row["confident"] for row in stored["rows"]]
errors = [(p * (1 - p) / n_stored) ** 0.5 for p in shares]
ax1.errorbar(positions, shares, yerr=errors, fmt="none", ecolor="black", capsize=4, zorder=2)
ax1.scatter(positions, shares, c=colors, zorder=3)
ax1.set(xticks=list(positions), xticklabels=labels, ylim=(0.7, 1.0), ylabel="share with confidence > 0.9",
        title="confidently classified, ± 1 standard error")
ddim_keys = [k for k in samples if k.startswith("DDIM")]
steps = [int(k.split()[1]) for k in ddim_keys]
ax2.plot(steps, [seconds[k] for k in ddim_keys], "o-", label=r"DDIM, $\eta = 0$")
ax2.axhline(seconds["DDPM 1000"], color="tab:red", linestyle="--", label="DDPM, 1000 steps")
ax2.set(xscale="log", yscale="log", xlabel="number of sampling steps (network calls)",
        ylabel="wall time (s)", title=f"time for {N_EVAL} samples here, on {device.type}")
label_log_axis(ax2, "x", steps)                  # 10, 20, 50, 100 rather than 10^1, 10^2
label_log_axis(ax2, "y")
ax2.legend()
fig.suptitle(f"left, middle: stored run, {n_stored} samples per sampler; right: measured in this notebook")
fig.tight_layout()
plt.show()

# %%
fig, axes = plt.subplots(len(samples), 1, figsize=(10, 1.6 * len(samples)))
for ax, (key, x) in zip(axes, samples.items()):
    show_images(x[:12], nrow=12, ax=ax, title=f"{key} steps: {seconds[key]:.0f} s for {N_EVAL} samples")
fig.suptitle("the first 12 samples of each sampler, from the same x_T")
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to notice.** Time is proportional to the number of network calls: in the stored run DDIM with 50
# steps took 133 s against DDPM's 2,654 s, 20 times less for 20 times fewer calls; in this notebook's run 7.5 s
# against 145.3 s (19 times), and the DDIM rows of the right panel grow with the steps.
# On quality, the stored 300-sample run separates what 48
# samples cannot, through the confident share: DDIM with 10 steps is clearly behind (80% confident, against
# 87% for 50 or 100 steps; about two and a half standard errors apart), 50 and 100 steps are
# indistinguishable, and DDPM's samples are confidently classified more often than DDIM 50's (92% against
# 87%, about two standard errors apart). FID tells a weaker story. DDIM with 20, 50 and 100 steps (6.0 to 6.3) lies
# *below* the green band of real training images, DDPM (6.8) at its lower edge and DDIM with 10 steps (7.9)
# inside it: at n = 300 the course FID does not even rank real digits above the samples, and it moves by more than a unit from one set of 300 real images to another, as much as
# the gaps between samplers. So FID alone cannot rank these samplers at this sample size; read its values
# as "all close to the data", and use the confident share to separate them. KID, with 300 samples, reads about
# 0 for every sampler but DDIM with 10 steps (-0.07 to 0.01, against 0.12): it singles out the same weakest
# sampler and cannot rank the rest either (the 48-sample KIDs above scatter by a few tenths, so they rank
# nothing). In the grids above the rows
# look alike to the eye, 10 steps included: differences of this size show up in statistics over hundreds of
# samples, not in 12 images. The deterministic samplers draw visibly *the same digit* from the same $x_T$
# whatever the step count: the map $x_T \mapsto x_0$ of DDIM is a property of the model, and fewer steps only
# approximate it more coarsely. DDPM, stochastic, draws a different digit from the same $x_T$.
#
# ## 5. Explore: steps and $\eta$
#
# Sixteen samples from one fixed $x_T$ and one fixed noise sequence. Move `steps` with $\eta = 0$: the
# digits stay the same and sharpen. Raise $\eta$: fresh noise enters at every step and the samples
# drift away from the $\eta = 0$ ones; at $\eta = 1$ with few steps the added noise is large and images get
# noisy or blotchy. With 2 steps the leading grid of section 2 is [500, 0]: the sampler treats pure noise
# as $x_{500}$, where real data would still hold 28% of the image: compare it with 5 steps.

# %%
x_T_widget = torch.randn(N_SHOW, *image_shape, generator=torch.Generator().manual_seed(42)).to(device)


def ddim_explorer(steps=20, eta=0.0):
    x = ddim_sample(model, schedule, x_T_widget.shape, x_T=x_T_widget, num_steps=steps, eta=eta, progress=False,
                    generator=torch.Generator(device=device).manual_seed(0))
    show_images(x, nrow=8, title=f"DDIM, {steps} steps, eta = {eta:.2f}", figsize=(8, 2.3))
    plt.show()


_ = widgets.interact(ddim_explorer,
                     steps=widgets.SelectionSlider(options=[2, 5, 10, 20, 50, 100, 200], value=20, description="steps",
                                                   continuous_update=False),
                     eta=widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.1, description="eta",
                                             continuous_update=False))

# %% [markdown]
# ## 6. DDIM inversion: from an image back to its noise
#
# With $\eta = 0$ the DDIM update is a deterministic map $x_t \mapsto x_{t'}$, the discretisation of an
# ordinary differential equation. Running it the other way (from $t'$ up to $t$) maps a *real* image to a
# latent $x_T$ that DDIM decodes back to (nearly) the same image:
#
# $$
# x_{t} = \sqrt{\bar\alpha_{t}}\,\underbrace{\frac{x_{t'} - \sqrt{1 - \bar\alpha_{t'}}\,\epsilon_\theta(x_{t'}, t)}{\sqrt{\bar\alpha_{t'}}}}_{\hat x_0}
#       + \sqrt{1 - \bar\alpha_{t}}\;\epsilon_\theta(x_{t'}, t),
# $$
#
# which is `ddim_invert`. The only approximation is using $\epsilon_\theta(x_{t'}, t)$ in place of the
# unknown $\epsilon_\theta(x_t, t)$, so the round trip is closer with more steps.

# %%
INVERT_STEPS = pick(50, 20)
x_test, y_test, test_name = load_images_or_digits(card_dataset, split="test", image_size=image_shape[-1])
real_inversion = have(card_dataset, test_name, cell="inverts real MNIST test images with the MNIST model")
if real_inversion:
    originals = x_test[:8].to(device)
    latents = ddim_invert(model, schedule, originals, num_steps=INVERT_STEPS)
    reconstructions = ddim_sample(model, schedule, latents.shape, x_T=latents, num_steps=INVERT_STEPS, progress=False)

    fig, axes = plt.subplots(3, 1, figsize=(8, 4.2))
    show_images(originals, ax=axes[0], title=f"real {test_name} test images x_0")
    show_images(latents.clamp(-3, 3) / 3, ax=axes[1], title="their DDIM latents x_T (shown as x_T / 3)")
    show_images(reconstructions, ax=axes[2], title=f"DDIM({INVERT_STEPS} steps) of the latents")
    fig.tight_layout()
    plt.show()
    print(wrapped(f"latents: mean {latents.mean():.2f}, std {latents.std():.2f} (pure noise: 0, 1); norms "
                  f"{[round(v) for v in latents.flatten(1).norm(dim=1).tolist()]} "
                  f"(pure noise: about sqrt(d) = {image_shape[-1]})"))
    print(f"round-trip error: mean |x_0 - reconstruction| = {(originals - reconstructions).abs().mean():.3f} "
          f"(pixel range 2); mean |x_0| = {originals.abs().mean():.3f}")

# %% [markdown]
# The round trip works: the reconstructions match the test images closely. But look at the middle row
# and the printed numbers: the latents are **not** like the noise the sampler starts from. Their standard
# deviation is about a third of 1, their norms about a third of $\sqrt{784} = 28$, and each latent still
# shows its digit. Is that the test images' fault? The next cell inverts the model's *own* samples, drawn from
# known noise $x_T \sim \mathcal N(0, I)$, and compares both sets of latents with $\mathcal N(0, 1)$.

# %%
x_T_own = torch.randn(8, *image_shape, generator=torch.Generator().manual_seed(5)).to(device)
own_samples = ddim_sample(model, schedule, x_T_own.shape, x_T=x_T_own, num_steps=INVERT_STEPS, progress=False)
own_latents = ddim_invert(model, schedule, own_samples, num_steps=INVERT_STEPS)
own_reconstructions = ddim_sample(model, schedule, own_latents.shape, x_T=own_latents, num_steps=INVERT_STEPS,
                                  progress=False)

grid = torch.linspace(-4, 4, 200)
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw=dict(width_ratios=[1, 1]))
if real_inversion:                                     # the test images' latents of the cell above
    ax0.hist(latents.flatten().cpu(), bins=80, range=(-4, 4), density=True, alpha=0.5, label="test images' latents")
ax0.hist(own_latents.flatten().cpu(), bins=80, range=(-4, 4), density=True, alpha=0.5, label="samples' latents")
ax0.hist(x_T_own.flatten().cpu(), bins=80, range=(-4, 4), density=True, histtype="step", color="black",
         label="their x_T")
ax0.plot(grid, torch.exp(-grid ** 2 / 2) / (2 * torch.pi) ** 0.5, "k--", label="N(0, 1)")
ax0.set(xlabel="pixel value of the latent", ylabel="density", title="inverted latents against N(0, 1)")
ax0.legend(fontsize=9, loc="upper left")
show_images(torch.cat([x_T_own[:4].clamp(-3, 3) / 3, own_samples[:4], own_latents[:4].clamp(-3, 3) / 3,
                       own_reconstructions[:4]]), nrow=4, ax=ax1,
            title="rows: x_T / 3, its sample,\nthe sample's latent / 3, decoded again")
fig.tight_layout()
plt.show()
print(wrapped(f"model's samples: x_T std {x_T_own.std():.2f}, their inverted latents std {own_latents.std():.2f}; "
              f"mean |latent - x_T| = {(own_latents - x_T_own).abs().mean():.2f}; "
              f"round-trip error {(own_samples - own_reconstructions).abs().mean():.3f}"))

# %% [markdown]
# **What to notice.** The histograms of both sets of latents are far narrower than $\mathcal N(0, 1)$, and
# even the model's own samples do not invert back to the noise they came from: they land on different,
# smaller latents that decode to the same digits. So the test images are not to blame. The learned sampler
# contracts whole regions of noise space onto images that look the same (in exact arithmetic its ODE is still one
# to one, but the differences shrink far below a pixel's level), and inversion, which runs the update backwards
# with $\epsilon_\theta(x_{t'}, t)$ in place of the unknown $\epsilon_\theta(x_t, t)$, cannot tell those latents
# apart: it finds one near the digit's own shape, not a typical noise vector. Smaller steps make the round trip
# exact, not the latents typical. Here more steps make the *round trip*
# closer without changing the latents' size: with `INVERT_STEPS` = 10, 50 and 200, measured on the same 8
# test images while writing this lesson, the round-trip error was 0.038, 0.010 and 0.004 and the latent
# std 0.39, 0.34 and 0.36. A better model brings the learned map closer to the exact one, where the data
# are carried onto $\mathcal N(0, I)$; how close a small MNIST model gets is what you see above.


# %% [markdown]
# ## 7. Interpolation in noise space
#
# Two latents $z_a, z_b$ decode to two digits; decoding points between them gives images in between.
# Straight-line mixing $(1-\lambda) z_a + \lambda z_b$ of two independent $\mathcal N(0, I)$ vectors has a
# problem: halfway, their average has norm $\approx 0.71\sqrt d$ ($\approx 20$ here), shorter than any noise
# the sampler starts from ($\approx \sqrt d = 28$). We interpolate between fresh noise vectors (the
# $x_T$ of the model's samples in section 6), not between the inverted test images: those latents have
# norms near 10, not 28, and the argument does not apply to them. Spherical interpolation keeps the norm:
#
# $$
# \operatorname{slerp}(z_a, z_b; \lambda) = \frac{\sin((1-\lambda)\theta)}{\sin\theta}\, z_a + \frac{\sin(\lambda\theta)}{\sin\theta}\, z_b,
# \qquad \cos\theta = \frac{\langle z_a, z_b\rangle}{\|z_a\|\,\|z_b\|}.
# $$

# %%
def slerp(z_a, z_b, lam):
    """Spherical interpolation between two tensors of the same shape, lam in [0, 1]."""
    cos_theta = (z_a * z_b).sum() / (z_a.norm() * z_b.norm())
    theta = torch.arccos(cos_theta.clamp(-1, 1))
    return (torch.sin((1 - lam) * theta) * z_a + torch.sin(lam * theta) * z_b) / torch.sin(theta)


def ink(x):
    """Share of each image's pixels that are stroke (above the mid-grey 0), a measure of how bold it is."""
    return (x > 0).float().flatten(1).mean(1)


lams = torch.linspace(0, 1, 9).tolist()
pairs = [(0, 1), (2, 3), (4, 5)]                   # pairs of the N(0, I) starting points x_T_own above
fig, axes = plt.subplots(2 * len(pairs), 1, figsize=(9, 1.45 * 2 * len(pairs)))
for row, (i_a, i_b) in enumerate(tqdm(pairs, desc="pairs")):      # 6 samplings of 9 images
    z_a, z_b = x_T_own[i_a], x_T_own[i_b]
    z_slerp = torch.stack([slerp(z_a, z_b, lam) for lam in lams])
    z_lerp = torch.stack([(1 - lam) * z_a + lam * z_b for lam in lams])
    row_slerp = ddim_sample(model, schedule, z_slerp.shape, x_T=z_slerp, num_steps=INVERT_STEPS, progress=False)
    row_lerp = ddim_sample(model, schedule, z_lerp.shape, x_T=z_lerp, num_steps=INVERT_STEPS, progress=False)
    show_images(row_slerp, nrow=9, ax=axes[2 * row], title=f"pair {row + 1}: slerp, lambda = 0 ... 1")
    show_images(row_lerp, nrow=9, ax=axes[2 * row + 1], title=f"pair {row + 1}: lerp (straight line)")
    print(f"pair {row + 1}: latent norms, slerp {[round(z.norm().item()) for z in z_slerp[::2]]}, "
          f"lerp {[round(z.norm().item()) for z in z_lerp[::2]]}")
    print(f"    ink of the middle frame: slerp {ink(row_slerp[4:5]).item():.0%}, lerp {ink(row_lerp[4:5]).item():.0%}; "
          f"mean ink of the 7 inner frames: slerp {ink(row_slerp[1:-1]).mean():.0%}, "
          f"lerp {ink(row_lerp[1:-1]).mean():.0%}")
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to notice.** Nearly every frame of both rows is a clean digit: DDIM decodes any noise of typical
# size to *some* digit. The change is not gradual, though: the digit jumps from one class to the next within a frame or
# two (pair 1: 9s, then only 1s, with one 4 between them on the slerp row; pair 3: 4, then 7s, with two blotchy 4-7 hybrids between them on the slerp row), and a path can pass through a
# third digit or go back and forth (pair 2's straight line goes 3, 5, 9, 5; its slerp 3, 5, back to 3, then 5).
# These are the regions of section 6's map $x_T \mapsto x_0$: one digit each, with sharp borders between them.
# What slerp buys is in the printed numbers: its latents keep a norm of 26-29 all the way, while the straight
# line's dip to 19-22 in the middle, and the images decoded there carry less ink (middle frames: 6-9% of the
# pixels lit for lerp, 8-13% for slerp): fainter, thinner strokes, not the grey blur a much shorter latent
# would give.
#
# ## Next
#
# * Worksheet [`exercises/05_samplers.ipynb`](../exercises/05_samplers.ipynb): write the DDPM and DDIM steps, then the DDIM sampling
#   loop, yourself and check them against the package.
# * Lab [`exercises/lab_ddim.ipynb`](../exercises/lab_ddim.ipynb): the continuous-time cosine schedule and the deterministic DDIM reverse
#   process of the university lab.
# * **Lesson 6** ([`06_guidance.ipynb`](06_guidance.ipynb)): steering the sampler towards a class, with
#   classifier and classifier-free guidance.
