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
# 3. A table of wall time and sample quality (FID on the course classifier's features) for DDPM 1000 steps
#    and DDIM 10, 20, 50, 100 steps, and a widget for the number of steps and $\eta$.
# 4. Because $\eta = 0$ DDIM is deterministic and invertible, images can be mapped back to noise
#    (**DDIM inversion**) and **interpolated** in noise space.
#
# **Time.** About 6 minutes (326 s measured on an idle 2-core AVX2 CPU, in float32) on a 2-core CPU in full mode (most of it the 1000-step DDPM run); with
# `COURSE_QUICK=1` the sample counts shrink and it takes a few minutes, with FID figures that are then too
# noisy to compare. Almost all of the time is the 1000-step DDPM run: 1000 network calls per sample.

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
from course_utils.data import EIGHT_GAUSSIANS, load_images_or_digits, make_toy
from course_utils.device import get_device
from course_utils.samplers import ddim_invert, ddim_sample, ddim_sigma, ddim_step, ddim_timesteps, ddpm_sample
from course_utils.settings import pick, quick_mode
from course_utils.viz import plot_points, show_images

torch.manual_seed(0)
device = get_device()
N_EVAL = pick(48, 8)         # samples per sampler for the quality table
N_SHOW = pick(16, 8)                     # samples shown per figure
print(f"device: {device}, quick mode: {quick_mode()}, samples per sampler: {N_EVAL}")

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
# Written out, Algorithm 2 is a short loop. We run it on 2-D points with the *exact* noise predictor of a
# mixture of 8 Gaussians (`GaussianMixtureEps`, no training involved), and check that it matches
# `ddpm_sample` draw for draw (same generator, same order of random numbers).

# %%
def ddpm_loop(model, schedule, shape, generator, variance="posterior"):
    """Algorithm 2 of DDPM, one line per step."""
    x = torch.randn(shape, generator=generator)                                 # x_T ~ N(0, I)
    sigma2 = schedule.posterior_variance if variance == "posterior" else schedule.betas
    for i in reversed(range(schedule.T)):                                       # code t = T-1, ..., 0
        t = torch.full((shape[0],), i, dtype=torch.long)
        eps = model(x, t)                                                       # eps_theta(x_t, t)
        mean = (x - schedule.betas[i] / schedule.sqrt_one_minus_alpha_bar[i] * eps) / schedule.alphas[i].sqrt()
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
    print(f"{variance:>9}: mean distance from the centre {radius.mean():.3f} (data: {x_data.norm(dim=1).mean():.3f}), "
          f"spread around the blob centres {(radius - 1.5).abs().mean():.3f} "
          f"(data: {(x_data.norm(dim=1) - 1.5).abs().mean():.3f})")


# %% [markdown]
# With the exact $\epsilon$ both choices reproduce the mixture; the larger $\sigma_t^2 = \beta_t$ leaves
# slightly wider blobs, because the noise it adds in the last few steps is not fully removed.
#
# Now the image model. The cell below draws `N_EVAL` samples with DDPM ($\tilde\beta_t$, 1000 network calls
# per sample) and keeps the wall time for the table of section 4, then `N_SHOW` with $\sigma_t^2 = \beta_t$
# from the same starting noise and the same random numbers.

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
# as the "direction pointing to $x_t$" and adding fresh noise of size $\sigma_t$. With $\eta = 0$ there is
# no fresh noise: sampling is a deterministic function of $x_T$. The step works for any $t' < t$, so DDIM
# visits only a sub-sequence $\tau$ of the timesteps. `ddim_timesteps(T, S)` spaces $S$ of them evenly
# (the DDIM paper's "uniform" choice):

# %%
# NBVAL_CHECK_OUTPUT
for S in (10, 20):
    print(f"S = {S}:", ddim_timesteps(1000, S).tolist())
print("S = 1000: the full grid", ddim_timesteps(1000, 1000)[:3].tolist(), "...", ddim_timesteps(1000, 1000)[-3:].tolist())

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
                       generator=torch.Generator().manual_seed(0), progress=False)
run_ddpm = ddpm_sample(exact_eps, cpu_schedule, (2000, 2), generator=torch.Generator().manual_seed(0), progress=False)
print("3. DDIM(S=T, eta=1) == DDPM, whole runs from the same seed:", torch.allclose(run_ddim, run_ddpm, atol=1e-2))

# %%
print(f"largest difference, step check: {worst:.1e}; whole runs: {(run_ddim - run_ddpm).abs().max():.1e} "
      "(float32 round-off over 1000 steps)")

# %% [markdown]
# ## 3. How many steps? Time and quality
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

# %%
feature_net = metrics.feature_classifier(device)        # the course classifier (mnist-classifier)


def to_metric_size(x):
    """The metric's classifier reads 28x28 images; other sizes are resized (bilinear)."""
    return x if tuple(x.shape[-2:]) == (28, 28) else F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)


x_ref, _, ref_name = load_images_or_digits(card_dataset, split="test", image_size=image_shape[-1])
reference_features = metrics.features(to_metric_size(x_ref[:2000]), feature_net)
reference_description = f"{len(reference_features)} real {ref_name} test images"


def sample_quality(x):
    """FID and KID of images x (N, C, H, W) in [-1, 1] against the reference test images."""
    f = metrics.features(to_metric_size(x.float().cpu()), feature_net)
    return dict(fid=metrics.fid_from_features(f, reference_features), kid=metrics.kid_from_features(f, reference_features)[0])


x_real, _, _ = load_images_or_digits(card_dataset, split="train", image_size=image_shape[-1], limit=N_EVAL)
floor = sample_quality(x_real)
print(f"{N_EVAL} real training images against {reference_description}: FID {floor['fid']:.2f}, KID {floor['kid']:.4f}")

# %%
for steps in (10, 20, 50, 100):
    key = f"DDIM {steps}"
    samples[key], seconds[key] = timed(lambda: ddim_sample(model, schedule, x_T.shape, x_T=x_T, num_steps=steps, eta=0.0))

quality = {key: sample_quality(x) for key, x in samples.items()}
print(f"{'sampler':<10} {'network calls':>13} {'wall time (s)':>14} {'ms / sample':>12} {'FID':>8} {'KID x 1000':>11}")
print(f"{'real data':<10} {0:>13} {'':>14} {'':>12} {floor['fid']:>8.2f} {1000 * floor['kid']:>11.2f}")
for key in samples:
    calls = int(key.split()[1])
    print(f"{key:<10} {calls:>13} {seconds[key]:>14.1f} {1000 * seconds[key] / N_EVAL:>12.1f} "
          f"{quality[key]['fid']:>8.2f} {1000 * quality[key]['kid']:>11.2f}")
print(f"({N_EVAL} samples per sampler, on {device}; reference: {reference_description})")

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.6))
ddim_keys = [k for k in samples if k.startswith("DDIM")]
steps = [int(k.split()[1]) for k in ddim_keys]
ax0.plot(steps, [quality[k]["fid"] for k in ddim_keys], "o-", label=r"DDIM, $\eta = 0$")
ax0.axhline(quality["DDPM 1000"]["fid"], color="tab:red", linestyle="--", label="DDPM, 1000 steps")
ax0.axhline(floor["fid"], color="tab:green", linestyle=":", label=f"{N_EVAL} real images")
ax0.set(xscale="log", xlabel="number of sampling steps (network calls)", ylabel="FID (lower is better)",
        title=f"sample quality, {N_EVAL} samples each")
ax0.legend()
ax1.plot(steps, [seconds[k] for k in ddim_keys], "o-", label=r"DDIM, $\eta = 0$")
ax1.axhline(seconds["DDPM 1000"], color="tab:red", linestyle="--", label="DDPM, 1000 steps")
ax1.set(xscale="log", yscale="log", xlabel="number of sampling steps (network calls)",
        ylabel="wall time (s)", title=f"time for {N_EVAL} samples on {device.type}")
ax1.legend()
fig.tight_layout()
plt.show()

fig, axes = plt.subplots(len(samples), 1, figsize=(10, 1.6 * len(samples)))
for ax, (key, x) in zip(axes, samples.items()):
    show_images(x[:12], nrow=12, ax=ax, title=f"{key} steps: FID {quality[key]['fid']:.1f}, {seconds[key]:.0f} s")
fig.suptitle("the first 12 samples of each sampler, from the same x_T")
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to notice.** Time is proportional to the number of network calls: DDIM with 50 steps is 20 times
# faster than DDPM. Quality drops only slowly as the steps shrink: with 50-100 steps DDIM is on a par
# with DDPM, with 10 the digits get thicker and smoother and FID rises. The deterministic samplers
# draw visibly *the same digit* from the same $x_T$ whatever the step count: the map $x_T \mapsto x_0$
# of DDIM is a property of the model, and fewer steps only approximate it more coarsely. DDPM, stochastic,
# draws a different digit from the same $x_T$.
#
# ## 4. Explore: steps and $\eta$
#
# Sixteen samples from one fixed $x_T$ and one fixed noise sequence. Move `steps` with $\eta = 0$: the
# digits stay the same and sharpen. Raise $\eta$: fresh noise enters at every step and the samples
# drift away from the $\eta = 0$ ones; at $\eta = 1$ with few steps the added noise is large and images get
# noisy or blotchy.

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
# ## 5. DDIM inversion: from an image back to its noise
#
# With $\eta = 0$ the DDIM update is a deterministic map $x_t \mapsto x_{t'}$, the discretisation of an
# ordinary differential equation. Running it the other way (from $t'$ up to $t$) maps a *real* image to a
# latent $x_T$ that DDIM decodes back to (nearly) the same image:
#
# $$
# x_{t} = \sqrt{\bar\alpha_{t}}\,\underbrace{\frac{x_{t'} - \sqrt{1 - \bar\alpha_{t'}}\,\epsilon}{\sqrt{\bar\alpha_{t'}}}}_{\hat x_0}
#       + \sqrt{1 - \bar\alpha_{t}}\;\epsilon, \qquad \epsilon = \epsilon_\theta(x_{t'}, t),
# $$
#
# which is `ddim_invert`. The only approximation is using $\epsilon_\theta(x_{t'}, t)$ in place of the
# unknown $\epsilon_\theta(x_t, t)$, so the round trip is closer with more steps.

# %%
INVERT_STEPS = pick(50, 20)
x_test, y_test, test_name = load_images_or_digits(card_dataset, split="test", image_size=image_shape[-1])
originals = x_test[:8].to(device)
latents = ddim_invert(model, schedule, originals, num_steps=INVERT_STEPS)
reconstructions = ddim_sample(model, schedule, latents.shape, x_T=latents, num_steps=INVERT_STEPS, progress=False)

fig, axes = plt.subplots(3, 1, figsize=(8, 4.2))
show_images(originals, ax=axes[0], title=f"real {test_name} test images x_0")
show_images(latents.clamp(-3, 3) / 3, ax=axes[1], title="their DDIM latents x_T (shown as x_T / 3)")
show_images(reconstructions, ax=axes[2], title=f"DDIM({INVERT_STEPS} steps) of the latents")
fig.tight_layout()
plt.show()
print(f"latents: mean {latents.mean():.2f}, std {latents.std():.2f} (pure noise: 0, 1)")
print(f"round-trip error: mean |x_0 - reconstruction| = {(originals - reconstructions).abs().mean():.3f} "
      f"(pixel range 2); mean |x_0| = {originals.abs().mean():.3f}")


# %% [markdown]
# ## 6. Interpolation in noise space
#
# Two real images give two latents $z_a, z_b$. Decoding points between them gives images between the two
# digits. Straight-line mixing $(1-\lambda) z_a + \lambda z_b$ is the wrong path: halfway, two independent
# Gaussian vectors average to a vector of norm $\approx 0.71\sqrt d$, far shorter than any noise the model
# has seen ($\approx \sqrt d$), and the decoded image fades. Spherical interpolation keeps the norm:
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


i_a, i_b = 0, 1                                    # two test images of different digits
z_a, z_b = latents[i_a], latents[i_b]
lams = torch.linspace(0, 1, 9).tolist()
z_slerp = torch.stack([slerp(z_a, z_b, lam) for lam in lams])
z_lerp = torch.stack([(1 - lam) * z_a + lam * z_b for lam in lams])
row_slerp = ddim_sample(model, schedule, z_slerp.shape, x_T=z_slerp, num_steps=INVERT_STEPS, progress=False)
row_lerp = ddim_sample(model, schedule, z_lerp.shape, x_T=z_lerp, num_steps=INVERT_STEPS, progress=False)

fig, axes = plt.subplots(2, 1, figsize=(9, 2.8))
show_images(row_slerp, nrow=9, ax=axes[0], title="slerp in noise space, lambda = 0 ... 1")
show_images(row_lerp, nrow=9, ax=axes[1], title="straight-line (lerp) mixing, for contrast")
fig.tight_layout()
plt.show()
print("latent norms along the path, slerp:", [f"{z.norm():.0f}" for z in z_slerp[::2]],
      " lerp:", [f"{z.norm():.0f}" for z in z_lerp[::2]])

# %% [markdown]
# **What to notice.** The ends of the slerp row reproduce the two test images (up to the inversion
# error); in between, one digit morphs into the other through shapes that are themselves digit-like.
# The lerp row loses contrast in the middle, where the latent's norm dips: the model decodes a
# "too clean" latent into a faint, smooth image.
#
# ## Next
#
# * Worksheet **exercises/05_samplers.ipynb**: write the DDPM and DDIM steps yourself and check them against
#   the package.
# * Lab **exercises/lab_ddim.ipynb**: the continuous-time cosine schedule and the deterministic DDIM reverse
#   process of the university lab.
