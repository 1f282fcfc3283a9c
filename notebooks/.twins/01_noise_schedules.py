# %% [markdown]
# # Lesson 1: Noise schedules
#
# A diffusion model learns to undo a process that slowly turns data into noise. Before any network, we
# have to decide **how fast** that noise is added: this is the *noise schedule*. It is a handful of
# numbers, yet it decides which noise levels the network practises on and how much of the image is left
# at each step.
#
# In this lesson:
#
# 1. the three quantities of every schedule, $\beta_t$, $\alpha_t$ and $\bar\alpha_t$;
# 2. the **linear** schedule of DDPM (Ho et al. 2020);
# 3. the **cosine** schedule of Improved DDPM (Nichol and Dhariwal 2021);
# 4. the lab's **continuous cosine** schedule, written with a signal rate and a noise rate on the unit circle;
# 5. all three side by side ($\beta_t$, $\bar\alpha_t$, log-SNR), and why the linear schedule destroys a
#    small image too early;
# 6. an explorer: pick a schedule and $T$, and watch the curves and a noised digit change.
#
# No training happens here; the whole notebook runs in seconds.

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
import torch.nn.functional as F

from course_utils.data import load_images_or_digits
from course_utils.device import get_device
from course_utils.forward import q_sample
from course_utils.schedules import NoiseSchedule, diffusion_schedule
from course_utils.settings import pick, quick_mode
from course_utils.viz import plot_schedules, show_images
from course_utils.widgets import schedule_explorer

torch.manual_seed(0)
device = get_device()
NUM_IMAGES = pick(64, 16)        # test images used to measure how much of the digit is left
T = 1000                         # the number of diffusion steps of DDPM (the same in both modes)
print(f"device: {device}, quick mode: {quick_mode()}, images: {NUM_IMAGES}")

# %% [markdown]
# ## 1. $\beta_t$, $\alpha_t$ and $\bar\alpha_t$
#
# The forward process adds a little Gaussian noise at every step $t = 1, \dots, T$:
# $$
# q(x_t \mid x_{t-1}) = \mathcal N\big(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big)
# \qquad \text{(DDPM, Eq. 2)}
# $$
# $\beta_t \in (0, 1)$ is the **variance of the noise added at step $t$**. The old signal is shrunk by
# $\sqrt{1-\beta_t}$ at the same time, so that an input of unit variance keeps unit variance. Two derived
# quantities appear everywhere:
# $$
# \alpha_t = 1 - \beta_t, \qquad \bar\alpha_t = \prod_{i=1}^{t} \alpha_i .
# $$
# $\bar\alpha_t$ is the fraction of the signal's *variance* still left after $t$ steps: lesson 2 shows that
# $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$. A schedule is good when $\bar\alpha_t$
# falls from about 1 (clean data) to about 0 (pure noise), and does so at a pace that leaves the network
# something to learn at every step.
#
# **Indexing.** Papers count steps $1..T$; the code counts $t = 0..T-1$, and code index `t` stands for the
# paper's step $t+1$ (see GLOSSARY.md). So `alpha_bar[0]` is $\bar\alpha_1$.
#
# Here are the three quantities for a made-up schedule of $T = 5$ steps, computed by hand and by
# `NoiseSchedule.from_betas`, the package's constructor that derives everything from the betas:

# %%
# NBVAL_CHECK_OUTPUT
betas = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=torch.float64)   # beta_t, t = 1..5
alphas = 1 - betas                                                       # alpha_t = 1 - beta_t
alpha_bar = torch.cumprod(alphas, dim=0)                                 # alpha_bar_t = prod_{i<=t} alpha_i
tiny = NoiseSchedule.from_betas(betas)

print(" t   beta_t  alpha_t  alpha_bar_t")
for t in range(5):
    print(f"{t + 1:2d}   {betas[t]:.3f}   {alphas[t]:.3f}    {alpha_bar[t]:.4f}")
print("same as NoiseSchedule.from_betas:", torch.allclose(alpha_bar.float(), tiny.alpha_bar))

# %% [markdown]
# Even with these large betas, $\bar\alpha_t$ is still 0.15 after five steps.
# With a thousand small betas the product can be shaped much more finely. That shape is what the three
# schedules below disagree about.
#
# ## 2. The linear schedule (Ho et al. 2020)
#
# DDPM uses $T = 1000$ and betas rising **linearly** from $\beta_1 = 10^{-4}$ to $\beta_T = 0.02$
# (Sec. 4 of the paper). Small steps first, so the image is disturbed gently; larger steps later, when
# little of the image is left anyway.
# $$
# \beta_t = \beta_1 + \frac{t-1}{T-1}\,(\beta_T - \beta_1)
# $$

# %%
betas_linear = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)    # beta_t, evenly spaced
alpha_bar_linear = torch.cumprod(1 - betas_linear, dim=0)             # alpha_bar_t

linear = NoiseSchedule.linear(T)
print("inline alpha_bar equals NoiseSchedule.linear:", torch.allclose(alpha_bar_linear.float(), linear.alpha_bar))
print(f"alpha_bar at the last step: {linear.alpha_bar[-1].item():.2e} "
      f"(signal rate sqrt(alpha_bar) = {linear.sqrt_alpha_bar[-1].item():.4f})")

# %% [markdown]
# At $t = T$ only $\sqrt{\bar\alpha_T} \approx 0.006$ of the image is left: $x_T$ is, for practical purposes,
# $\mathcal N(0, I)$, which is where sampling will start.
#
# ## 3. The cosine schedule (Nichol and Dhariwal 2021)
#
# Improved DDPM defines $\bar\alpha_t$ directly and derives the betas from it (Eq. 17 of that paper):
# $$
# \bar\alpha_t = \frac{f(t)}{f(0)}, \qquad f(t) = \cos^2\!\Big(\frac{t/T + s}{1 + s}\cdot\frac{\pi}{2}\Big),
# \qquad \beta_t = \min\Big(1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}},\ 0.999\Big).
# $$
# - $\cos^2$ falls slowly near both ends and steadily in the middle, so $\bar\alpha_t$ is nearly linear in
#   the middle of the chain instead of collapsing early.
# - The offset $s = 0.008$ keeps $\beta_1$ from being vanishingly small: at $s = 0$, $\sqrt{\beta_1}$ would
#   be $\sin(\pi/(2T)) \approx 0.0016$ for $T = 1000$; with the offset it is about $0.0064$ (printed below),
#   four times more, and still *below* a pixel's quantisation step of $2/255 \approx 0.0078$. Nichol and
#   Dhariwal chose $s$ so that $\sqrt{\beta_1}$ is just under that step: the first step adds a little less
#   noise than one grey level, not a vanishing amount.
# - Near $t = T$, $\bar\alpha_t \to 0$ and the ratio would give $\beta_T = 1$; the clip at 0.999 avoids that
#   singularity.

# %%
steps = torch.arange(T + 1, dtype=torch.float64)                      # 0, 1, ..., T
s = 0.008
f = torch.cos((steps / T + s) / (1 + s) * math.pi / 2) ** 2           # f(t)
alpha_bar_cos = f / f[0]                                              # alpha_bar_t = f(t) / f(0)
betas_cos = (1 - alpha_bar_cos[1:] / alpha_bar_cos[:-1]).clamp(max=0.999)   # beta_t, t = 1..T

cosine = NoiseSchedule.cosine(T)
print("inline betas equal NoiseSchedule.cosine:", torch.allclose(betas_cos.float(), cosine.betas))
print(f"beta_1 = {cosine.betas[0].item():.2e} (sqrt(beta_1) = {cosine.betas[0].sqrt().item():.4f}, pixel step 2/255 = {2 / 255:.4f}), beta_T = {cosine.betas[-1].item():.3f} (clipped)")

# %% [markdown]
# ## 4. The lab's continuous cosine schedule: signal and noise on the unit circle
#
# The lab handout (following the Keras DDIM example) starts from the closed form
# $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$ and names its two coefficients:
# $$
# \text{signal rate} = \sqrt{\bar\alpha_t}, \qquad \text{noise rate} = \sqrt{1 - \bar\alpha_t},
# \qquad \text{signal rate}^2 + \text{noise rate}^2 = 1 .
# $$
# If $x_0$ and $\epsilon$ both have unit variance, then $\mathrm{Var}(x_t) = 1$ at every $t$. The pair
# (signal rate, noise rate) is a point on the unit circle, $(\cos\theta, \sin\theta)$, so a schedule is just a
# way of moving an **angle** $\theta$ from near 0 (all signal) to near $\pi/2$ (all noise). The lab moves it
# at constant speed over a *continuous* diffusion time $t \in [0, 1]$:
# $$
# \theta(t) = (1-t)\,\arccos(s_\max) + t\,\arccos(s_\min), \qquad
# \text{signal rate}(t) = \cos\theta(t), \quad \text{noise rate}(t) = \sin\theta(t),
# $$
# with $s_\max = 0.95$ and $s_\min = 0.02$ (the lab's `max_signal_rate` and `min_signal_rate`: here $s$ names a
# signal rate, not the cosine offset of section 3). There is no $T$ here at all: a sampler may pick any times in
# $[0, 1]$. The package's version is `course_utils.schedules.diffusion_schedule`, which returns
# `(noise_rates, signal_rates)` like the lab's function.

# %%
diffusion_times = torch.linspace(0, 1, 1001)                          # continuous time t in [0, 1]
start_angle = math.acos(0.95)                                         # theta(0) = arccos(max_signal_rate)
end_angle = math.acos(0.02)                                           # theta(1) = arccos(min_signal_rate)
angles = (1 - diffusion_times) * start_angle + diffusion_times * end_angle   # theta(t)
signal_rates_inline, noise_rates_inline = torch.cos(angles), torch.sin(angles)

noise_rates, signal_rates = diffusion_schedule(diffusion_times)      # the package (note the order)
print("inline rates equal diffusion_schedule:",
      torch.allclose(signal_rates, signal_rates_inline) and torch.allclose(noise_rates, noise_rates_inline))
print("max |signal^2 + noise^2 - 1| =", f"{(signal_rates**2 + noise_rates**2 - 1).abs().max().item():.1e}")

# %% [markdown]
# The unit circle is not special to the lab: **every** schedule has
# $\sqrt{\bar\alpha_t}^2 + \sqrt{1-\bar\alpha_t}^2 = 1$, so every schedule walks along the same quarter circle.
# What differs is only the *speed* of the walk, the angle $\theta = \arccos\sqrt{\bar\alpha_t}$ as a function of
# time. The left panel marks where each schedule is at $t/T = 0, 0.25, 0.5, 0.75$ and $1$; the right panel
# plots the angle against time.

# %%
quarter = torch.linspace(0, math.pi / 2, 200)
frac = (torch.arange(T) + 1) / T                                      # code index t is the paper's step t + 1
marks = [0.0, 0.25, 0.5, 0.75, 1.0]
curves = {
    "linear (Ho et al.)": (frac, linear.sqrt_alpha_bar, linear.sqrt_one_minus_alpha_bar),
    "cosine (Nichol & Dhariwal)": (frac, cosine.sqrt_alpha_bar, cosine.sqrt_one_minus_alpha_bar),
    "lab continuous cosine": (diffusion_times, signal_rates, noise_rates),
}

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.5))
ax0.plot(torch.cos(quarter), torch.sin(quarter), color="lightgray", lw=6, label="unit circle")
for (label, (times, signal, noise)), marker, z in zip(curves.items(), ["o", "s", "^"], [4, 3, 2]):
    idx = [int((times - m).abs().argmin()) for m in marks]            # the point nearest each t/T
    ax0.plot(signal[idx], noise[idx], marker, ms=8, label=label, zorder=z)       # the linear schedule's on top
    ax1.plot(times, torch.arccos(signal.clamp(max=1)), label=label,
             ls="--" if label.startswith("lab") else "-")              # told apart without colour too
for m, (x, y) in zip(marks, zip(cosine.sqrt_alpha_bar[[0, 249, 499, 749, 999]],      # the paper's steps 1, 250, ...
                                cosine.sqrt_one_minus_alpha_bar[[0, 249, 499, 749, 999]])):
    ax0.annotate(f"cosine t/T={m}", (x, y), textcoords="offset points", xytext=(14, -34) if m == 1 else (8, 2),
                 fontsize=8, arrowprops=dict(arrowstyle="-", lw=0.6, color="tab:orange") if m == 1 else None)
for m, offset in ((0.25, (-78, -4)), (0.5, (4, -36))):                # the linear schedule's markers
    t = int((frac - m).abs().argmin())
    ax0.annotate(f"linear t/T={m}", (linear.sqrt_alpha_bar[t], linear.sqrt_one_minus_alpha_bar[t]), fontsize=8,
                 color="tab:blue", textcoords="offset points", xytext=offset,
                 arrowprops=dict(arrowstyle="-", lw=0.6, color="tab:blue"))
ax0.set_xlabel(r"signal rate $\sqrt{\bar\alpha_t}$"), ax0.set_ylabel(r"noise rate $\sqrt{1-\bar\alpha_t}$")
ax0.set_aspect("equal"), ax0.legend(fontsize=8, loc="lower left")
ax0.set_title("where each schedule is at t/T = 0, 0.25, 0.5, 0.75, 1")
ax1.set_xlabel("t / T (diffusion time)"), ax1.set_ylabel(r"angle $\theta = \arccos\sqrt{\bar\alpha_t}$ (rad)")
ax1.axhline(math.pi / 2, color="gray", ls=":"), ax1.legend(fontsize=8)
ax1.set_title("the speed of the walk along the circle")
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to notice.**
# - Both cosine schedules move the angle at an almost **constant speed**, but not the same one: Nichol and
#   Dhariwal's $\bar\alpha_t$ is $\cos^2$ of an angle linear in $t$ (up to the normalisation by $f(0)$), about
#   1.56 rad per unit of $t/T$, while the lab's starts at $\theta = \arccos 0.95 \approx 0.32$ (some noise even
#   at $t = 0$) and runs 1.23 rad to $\arccos 0.02$, just short of $\pi/2$. So the lab's schedule is ahead by
#   0.32 rad at the start, 0.14 half-way, and the two nearly meet at the end: it keeps less of the signal through
#   most of the chain ($\bar\alpha$ 0.35 against 0.49 half-way, the table of section 6).
# - The linear schedule races ahead: by $t/T = 0.5$ its angle is already 1.29 of the
#   $\pi/2 \approx 1.57$ it ends at (on the circle,
#   its markers for $t/T = 0.75$ and $1$ sit side by side at the top), and for the second half of the chain
#   it crawls along the last 0.28 rad (16 of the circle's 90 degrees), where there is almost no signal left.
#
# ## 5. All three schedules side by side
#
# `course_utils.viz.plot_schedules` draws $\beta_t$ (log scale), $\bar\alpha_t$ and the
# **log signal-to-noise ratio**
# $$
# \log \mathrm{SNR}(t) = \log \frac{\bar\alpha_t}{1 - \bar\alpha_t}
# = 2 \log \frac{\text{signal rate}}{\text{noise rate}}
# $$
# for the discrete schedules. We add the lab's continuous schedule to the same axes with
# $\bar\alpha = \text{signal rate}^2$ over $t \in [0, 1]$; its $\beta$ is that of a discretisation into
# $T = 1000$ steps, $\beta_i = 1 - \bar\alpha(t_i) / \bar\alpha(t_{i-1})$ with $t_i = i/T$.

# %%
axes = plot_schedules({"linear (Ho et al.)": linear, "cosine (Nichol & Dhariwal)": cosine})
alpha_bar_lab = signal_rates ** 2                                     # alpha_bar(t) = signal_rate(t)^2
grid_T = torch.arange(T + 1) * (len(diffusion_times) - 1) // T        # the times i/T on the 1001-point grid
betas_lab = 1 - alpha_bar_lab[grid_T][1:] / alpha_bar_lab[grid_T][:-1] # beta_i of a T-step discretisation
axes[0].plot(diffusion_times[grid_T][1:], betas_lab, "--", label="lab continuous cosine")
axes[1].plot(diffusion_times, alpha_bar_lab, "--", label="lab continuous cosine")
axes[2].plot(diffusion_times, torch.log(alpha_bar_lab) - torch.log1p(-alpha_bar_lab), "--",
             label="lab continuous cosine")
axes[0].set_ylabel(r"$\beta_t$ (log scale)"), axes[1].set_ylabel(r"$\bar\alpha_t$"), axes[2].set_ylabel("log-SNR")
for ax in axes:
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()


# %% [markdown]
# **What to notice.**
# - **$\beta_t$:** the linear betas are a straight line on a linear axis (a curve on this log axis);
#   the cosine betas start even smaller, stay small for most of the chain and shoot up at the end,
#   where they hit the 0.999 clip.
# - **$\bar\alpha_t$:** the linear curve is near 0 from $t/T \approx 0.6$ on; the cosine curves fall almost
#   linearly through the middle. The lab's curve starts at $0.95^2 = 0.9025$, not at 1.
# - **log-SNR:** the cosine schedules spend their steps evenly across noise levels (a nearly straight
#   line in the middle; the cosine curve's plunge at the very end, to about $-20$, is its last $\beta$ clipped at
#   0.999); the linear schedule drops to a log-SNR of $-5$ (SNR below 1%) by about
#   $t/T = 0.7$ and then keeps going down, to about $-10$. Those last steps all look like pure noise.
#
# ## 6. Why the linear schedule destroys a small image too early
#
# Nichol and Dhariwal noticed that on low-resolution images (64x64 and 32x32 in their experiments) the end of the linear
# schedule is wasted: $x_t$ is already indistinguishable from noise, so those steps do little, and skipping
# the noisiest 20% of the reverse process when sampling (starting the sampler at $t = 0.8T$) hardly changed the
# FID of a model trained with it (their Fig. 4). Let us look at it with
# our own eyes. Here are $\bar\alpha_t$ at a few fractions of the chain:

# %%
# NBVAL_CHECK_OUTPUT
def lab_alpha_bar(frac):
    _, signal = diffusion_schedule(torch.tensor([frac], dtype=torch.float64))
    return (signal ** 2).item()

print(f"{'t/T':>5} {'linear':>9} {'cosine':>9} {'lab':>9}")
for frac_t in [0.25, 0.5, 0.75]:
    t = int(frac_t * T) - 1                                           # the paper's step t/T * T, code index - 1
    print(f"{frac_t:5.2f} {linear.alpha_bar[t].item():9.4f} {cosine.alpha_bar[t].item():9.4f} "
          f"{lab_alpha_bar(frac_t):9.4f}")

# %% [markdown]
# Half-way through the chain the linear schedule has kept $\bar\alpha_t \approx 0.08$: a signal rate of
# $\sqrt{0.08} \approx 0.28$ against a noise rate of $0.96$. Nichol and Dhariwal's cosine schedule still
# keeps about half of the signal variance, the lab's schedule about a third. Now the same digit, with the **same noise $\epsilon$**, noised at the same $t/T$
# under each schedule (images are always shown on the fixed range $[-1, 1]$; values outside are clipped):

# %%
x_images, _, source = load_images_or_digits("mnist", split="test", limit=NUM_IMAGES)   # (N, 1, H, W) in [-1, 1]
x0 = x_images[:1].to(device)                                          # one digit, (1, 1, H, W)
fracs = torch.linspace(0, 1, 11)[:-1]                                 # t/T = 0, 0.1, ..., 0.9
ts = (fracs * T).round().long() - 1                                   # the paper's step t/T * T; -1: x_0 itself
eps = torch.randn((len(ts), *x0.shape[1:]), generator=torch.Generator().manual_seed(0)).to(device)

fig, axes = plt.subplots(3, 1, figsize=(11, 4.9))
for ax, (label, sched) in zip(axes[:2], [("linear", linear), ("cosine", cosine)]):
    xt = q_sample(x0.expand_as(eps), ts.clamp(min=0).to(device), eps, sched.to(device))
    xt[ts < 0] = x0                                                   # t/T = 0: the clean digit, before any step
    show_images(xt, nrow=len(ts), ax=ax, title=label)
noise_lab, signal_lab = diffusion_schedule(fracs.to(device))
xt_lab = signal_lab[:, None, None, None] * x0 + noise_lab[:, None, None, None] * eps   # lab: continuous t = t/T
show_images(xt_lab, nrow=len(ts), ax=axes[2], title="lab continuous cosine",
            col_labels=[f"t/T = {f:.1f}" for f in fracs])
fig.suptitle(f"one {source} test digit noised at t/T = 0, 0.1, ..., 0.9 (under the columns)", y=1.0)
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to notice.** Under the linear schedule the digit is hard to make out from $t/T = 0.5$ on and gone
# by $0.6$; the remaining 40% of the chain is noise looking at noise. Under the cosine schedules the
# digit fades steadily and can still be made out at $t/T = 0.6$ (the top bar of the 7).
#
# To put a number on "how much of the image is left", measure the correlation between $x_t$ and $x_0$
# over the pixels of many test images. For unit-variance data it would be $\sqrt{\bar\alpha_t}$
# (in expectation); real digits, mostly black background, vary less than the noise does, and with a pixel
# standard deviation $\sigma < 1$ the correlation is $\sqrt{\bar\alpha_t}\,\sigma / \sqrt{\bar\alpha_t\sigma^2 + 1 - \bar\alpha_t}$:
# markedly lower in the middle of the chain. The digits' pixel standard deviation is about 0.57, so at
# $t/T = 0.5$ the correlation is about 30% below $\sqrt{\bar\alpha_t}$ for the cosine schedule (0.49 against
# 0.70) and 40% below for the linear one (0.16 against 0.28):

# %%
x_many = x_images.to(device)                                          # (N, 1, H, W)
eps_many = torch.randn(x_many.shape, generator=torch.Generator().manual_seed(1)).to(device)
t_grid = torch.arange(0, T, 10)


def correlation_with_x0(sched):
    """Mean over images of the Pearson correlation between the pixels of x_t and of x_0, for each t."""
    out = []
    for t in t_grid.tolist():
        xt = q_sample(x_many, torch.full((len(x_many),), t, device=device), eps_many, sched)
        a = x_many.flatten(1) - x_many.flatten(1).mean(1, keepdim=True)
        b = xt.flatten(1) - xt.flatten(1).mean(1, keepdim=True)
        out.append((F.cosine_similarity(a, b, dim=1)).mean().item())
    return out


plt.figure(figsize=(6, 3.8))
for label, sched in [("linear", linear), ("cosine", cosine)]:
    corr = torch.tensor(correlation_with_x0(sched.to(device)))
    plt.plot((t_grid + 1) / T, corr, label=label)                    # code index t: the paper's step t + 1
    below = t_grid[corr < 0.1]
    print(f"{label:>7}: correlation with x_0 falls below 0.1 at t/T = {(below[0].item() + 1) / T:.2f}")
plt.axhline(0.1, color="gray", ls=":", label="correlation 0.1")
plt.xlabel("t / T"), plt.ylabel(r"corr($x_t$, $x_0$) over pixels")
plt.title(f"how much of the image is left ({len(x_many)} {source} test images)")
plt.legend()
plt.show()

# %% [markdown]
# **Why "at low resolution"?** The noise is independent from pixel to pixel, while an image is smooth: at
# higher resolution one stroke of a digit covers many pixels, and the eye (or a network) averages them, so
# the same per-pixel noise level hides much less. Here is one digit upscaled to 4x its size and noised
# with the linear schedule at $t/T = 0.5$, next to the original size with the same $\bar\alpha_t$:

# %%
t_half = torch.tensor([T // 2], device=device)
x0_big = F.interpolate(x0, scale_factor=4, mode="bilinear", align_corners=False).clamp(-1, 1)   # (1, 1, 4H, 4W)
gen = torch.Generator().manual_seed(2)
xt_small = q_sample(x0, t_half, torch.randn(x0.shape, generator=gen).to(device), linear.to(device))
xt_big = q_sample(x0_big, t_half, torch.randn(x0_big.shape, generator=gen).to(device), linear.to(device))
xt_big_pooled = F.avg_pool2d(xt_big, 4)                              # mean of each 4x4 block, (1, 1, H, W)

fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.8))
show_images(xt_small, ax=axes[0], title=f"{x0.shape[-1]}x{x0.shape[-1]}, linear, t/T = 0.5")
show_images(xt_big, ax=axes[1], title=f"{x0_big.shape[-1]}x{x0_big.shape[-1]}, linear, t/T = 0.5")
show_images(xt_big_pooled, ax=axes[2], title=f"the {x0_big.shape[-1]}x{x0_big.shape[-1]} one,\n"
            "each 4x4 block averaged")
fig.suptitle(r"same $\bar\alpha_t$ = " + f"{linear.alpha_bar[T // 2].item():.3f}, same noise level per pixel")
fig.tight_layout()
plt.show()

# %% [markdown]
# In the large version the digit can be made out if you look from a distance, and averaging each 4x4 block,
# the crudest denoiser there is, brings out a faint 7 (a lighter bar at the top and the diagonal stroke below
# it): 16 noisy copies of each value cut the noise's standard
# deviation by 4 while keeping the signal (dim, since only $\sqrt{\bar\alpha_t} \approx 0.28$ of it is left;
# the display range stays fixed). The small image has no such redundancy to exploit. This is why
# the linear schedule, which Nichol and Dhariwal (2021) found "worked well for high resolution images" but
# sub-optimal at 64x64 and 32x32, wastes its last steps on 28x28 digits, and why
# later work (e.g. Hoogeboom et al. 2023, "simple diffusion") *shifts* the schedule with the resolution.
#
# ## 7. Explore: pick a schedule and $T$
#
# `course_utils.widgets.schedule_explorer` redraws the three curves of the chosen schedule and the digit
# noised at eight evenly spaced $t/T$ (the noise $\epsilon$ stays fixed, so only the schedule changes).
# Things to try:
# - **linear, $T = 100$**: the betas still stop at 0.02, so $\bar\alpha_T = \prod (1-\beta_t)$ is about
#   $e^{-1}$: the chain **never reaches noise**, and sampling from $\mathcal N(0, I)$ would start from the
#   wrong distribution. The linear schedule's betas must be rescaled with $T$.
# - **cosine, any $T$**: $\bar\alpha$ is a function of $t/T$ only, so the $\bar\alpha_t$ and log-SNR curves
#   do not move when $T$ changes (all but their last point, the step whose $\beta$ is clipped at 0.999). The $\beta_t$ panel does: each $\beta_t$ is the drop of $\bar\alpha$ over
#   one step of width $1/T$, so doubling $T$ roughly halves every $\beta_t$ (the curve slides down on its log
#   axis) while the product of the $1 - \beta_t$ stays the same.
# - **lab continuous cosine**: it has no $T$; the slider only changes how finely it is discretised
#   (its first $\beta$ is large because its $\bar\alpha$ starts at 0.9025 rather than at 1: the explorer, like
#   `NoiseSchedule`, takes $\bar\alpha = 1$ before the first step, so $\beta_1 = 1 - 0.9025 \approx 0.10$; section 5's
#   plot discretises the same curve from its own start $\bar\alpha(0)$, so there its $\beta$ starts near 1e-3).

# %%
schedule_explorer(x0, device=device)

# %% [markdown]
# ## Summary
#
# - A schedule is the sequence $\beta_1..\beta_T$; $\bar\alpha_t = \prod_{i\le t}(1-\beta_i)$ is the share
#   of signal variance left at step $t$, and $(\sqrt{\bar\alpha_t}, \sqrt{1-\bar\alpha_t})$ walks along the
#   unit circle.
# - Linear (Ho et al.): betas $10^{-4} \to 0.02$ over $T = 1000$ steps; on small images it reaches pure
#   noise by $t/T \approx 0.6$.
# - Cosine (Nichol and Dhariwal): $\bar\alpha_t = f(t)/f(0)$ with $f = \cos^2$; signal fades at a steady
#   pace, and the curves depend on $t/T$ only.
# - Lab: a continuous time $t \in [0, 1]$, angle linear in $t$, signal rate $\cos\theta$, noise rate
#   $\sin\theta$, with the angle running from $\arccos 0.95$ to $\arccos 0.02$ (signal rates from 0.95 down to 0.02).
#
# **Next:** lesson 2 ([`02_forward_process.ipynb`](02_forward_process.ipynb)) shows why $x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\epsilon$
# holds, and what the reverse step looks like.
#
# **Exercises:** open the worksheet [`exercises/01_schedules.ipynb`](../exercises/01_schedules.ipynb).
